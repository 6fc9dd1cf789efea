//! Where a command works when nothing says: the data directory and `serve`'s configuration.

use std::path::PathBuf;

/// Whether this process runs as root (from /proc, without libc).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

/// Where the store lives when nothing says: a system service's place for root
/// (`/var/lib/vmsec`, `/var/lib/vmsec-kps`), the user's data directory otherwise
/// (`$XDG_DATA_HOME/vmsec`, by default `~/.local/share/vmsec`), never the working directory,
/// so that a command run from another folder finds the same store.
pub fn default_data_dir(kps: bool) -> PathBuf {
    default_data_dir_for(
        kps,
        is_root(),
        std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

fn default_data_dir_for(
    kps: bool,
    root: bool,
    xdg_data_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> PathBuf {
    let name = if kps { "vmsec-kps" } else { "vmsec" };
    if root {
        return PathBuf::from("/var/lib").join(name);
    }
    // The XDG Base Directory rule: a relative $XDG_DATA_HOME is invalid and ignored.
    xdg_data_home
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| h.join(".local/share")))
        .map(|d| d.join(name))
        .unwrap_or_else(|| PathBuf::from(format!("./{name}-data")))
}

/// `serve`'s configuration when `--config` is not given: `/etc/vmsec/vmsec.toml` for root, if
/// it exists.
pub fn default_serve_config() -> Option<PathBuf> {
    let p = PathBuf::from("/etc/vmsec/vmsec.toml");
    (is_root() && p.is_file()).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_data_directory_is_the_systems_for_root_and_the_users_otherwise() {
        let d = |kps, root, xdg: Option<&str>, home: Option<&str>| {
            default_data_dir_for(kps, root, xdg.map(PathBuf::from), home.map(PathBuf::from))
        };
        assert_eq!(
            d(false, true, Some("/x"), Some("/root")),
            PathBuf::from("/var/lib/vmsec")
        );
        assert_eq!(
            d(true, true, None, None),
            PathBuf::from("/var/lib/vmsec-kps")
        );
        assert_eq!(
            d(false, false, Some("/data"), Some("/home/u")),
            PathBuf::from("/data/vmsec")
        );
        assert_eq!(
            d(false, false, Some("rel"), Some("/home/u")),
            PathBuf::from("/home/u/.local/share/vmsec")
        );
        assert_eq!(
            d(true, false, None, Some("/home/u")),
            PathBuf::from("/home/u/.local/share/vmsec-kps")
        );
        assert_eq!(d(false, false, None, None), PathBuf::from("./vmsec-data"));
    }
}
