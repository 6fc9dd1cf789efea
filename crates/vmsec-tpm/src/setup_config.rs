//! The configuration files that keep swtpm_setup's certificate authority in
//! a directory we choose.
//!
//! Without `--config`, swtpm_setup reads `/etc/swtpm_setup.conf`, whose local
//! CA lives in `/var/lib/swtpm-localca`: state outside vmsec's data directory,
//! shared with every other swtpm user of the host. Our own three files point
//! `swtpm_localca` at `ca_dir` instead; it creates the CA there on first use
//! and signs every later VM's EK and platform certificates with it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::TpmError;

/// Name of the swtpm_setup configuration file inside the CA directory.
pub const SETUP_CONF: &str = "swtpm_setup.conf";
/// Name of the swtpm_localca configuration file inside the CA directory.
pub const LOCALCA_CONF: &str = "swtpm-localca.conf";
/// Name of the swtpm_localca options file inside the CA directory.
pub const LOCALCA_OPTIONS: &str = "swtpm-localca.options";

/// The three files for a CA in `ca_dir` (absolute), as (name, contents);
/// `localca` is the absolute path of the `swtpm_localca` program.
pub(crate) fn files(ca_dir: &Path, localca: &Path) -> [(&'static str, String); 3] {
    let ca = ca_dir.display();
    let tool = localca.display();
    [
        (
            SETUP_CONF,
            format!(
                "# Written by vmsec: keeps swtpm_setup's local CA in this directory.\n\
                 create_certs_tool = {tool}\n\
                 create_certs_tool_config = {ca}/{LOCALCA_CONF}\n\
                 create_certs_tool_options = {ca}/{LOCALCA_OPTIONS}\n\
                 active_pcr_banks = sha256\n"
            ),
        ),
        (
            LOCALCA_CONF,
            format!(
                "# Written by vmsec: the local CA that signs vTPM EK and platform certificates.\n\
                 statedir = {ca}\n\
                 signingkey = {ca}/signkey.pem\n\
                 issuercert = {ca}/issuercert.pem\n\
                 certserial = {ca}/certserial\n"
            ),
        ),
        (
            LOCALCA_OPTIONS,
            "--platform-manufacturer vmsec\n--platform-version 2.1\n--platform-model QEMU\n"
                .to_string(),
        ),
    ]
}

/// Writes the files into `ca_dir` unless identical ones are already there.
/// Each is written to a temporary name and renamed, so a concurrent
/// manufacture never reads half a file. Returns the swtpm_setup.conf path.
pub(crate) fn install(ca_dir: &Path, localca: &Path) -> Result<PathBuf, TpmError> {
    for (name, contents) in files(ca_dir, localca) {
        let path = ca_dir.join(name);
        if std::fs::read(&path).is_ok_and(|old| old == contents.as_bytes()) {
            continue;
        }
        let tmp = ca_dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut file = std::fs::File::create(&tmp)
            .map_err(TpmError::io(format!("creating {}", tmp.display())))?;
        file.write_all(contents.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(TpmError::io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(TpmError::io(format!(
            "renaming {} to {}",
            tmp.display(),
            path.display()
        )))?;
    }
    Ok(ca_dir.join(SETUP_CONF))
}

/// Whether a file of the CA directory is a private key: swtpm_localca's `signkey.pem` and
/// `swtpm-localca-rootca-privkey.pem` (the certificates beside them are public).
fn is_ca_key(name: &str) -> bool {
    name.ends_with(".pem") && name.contains("key")
}

/// Gives the CA's private keys mode 0600. swtpm_localca creates them 0640, group-readable,
/// against vmsec's rule for secret files: no access for group or others. `warn` says so in
/// the log when a key found open is one that existed before this run (a wider mode someone
/// set, or one left by an older vmsec); keys just created by swtpm_localca are fixed quietly.
pub(crate) fn make_keys_private(ca_dir: &Path, warn: bool) -> Result<(), TpmError> {
    use std::os::unix::fs::PermissionsExt;
    let entries = match std::fs::read_dir(ca_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(TpmError::Io {
                context: format!("listing {}", ca_dir.display()),
                source: e,
            });
        }
    };
    for entry in entries {
        let entry = entry.map_err(TpmError::io(format!("listing {}", ca_dir.display())))?;
        let path = entry.path();
        let is_key = entry.file_name().to_str().is_some_and(is_ca_key);
        let meta = std::fs::symlink_metadata(&path)
            .map_err(TpmError::io(format!("reading {}", path.display())))?;
        let mode = meta.permissions().mode() & 0o777;
        if !is_key || !meta.is_file() || mode & 0o077 == 0 {
            continue;
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(TpmError::io(format!("making {} private", path.display())))?;
        if warn {
            tracing::warn!(
                "the vTPM CA key {} was open to other users (mode {mode:o}); made it 600",
                path.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_private_keys_are_made_0600_and_certificates_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let mode_of = |n: &str| {
            std::fs::metadata(dir.path().join(n))
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777
        };
        for (name, mode) in [
            ("signkey.pem", 0o640),
            ("swtpm-localca-rootca-privkey.pem", 0o644),
            ("issuercert.pem", 0o644),
            ("certserial", 0o644),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, "x").expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        make_keys_private(dir.path(), true).expect("make private");
        assert_eq!(mode_of("signkey.pem"), 0o600);
        assert_eq!(mode_of("swtpm-localca-rootca-privkey.pem"), 0o600);
        assert_eq!(mode_of("issuercert.pem"), 0o644);
        assert_eq!(mode_of("certserial"), 0o644);
    }

    #[test]
    fn every_ca_path_points_into_the_ca_dir() {
        let files = files(
            Path::new("/data/tpm-ca"),
            Path::new("/usr/bin/swtpm_localca"),
        );
        let setup = &files[0].1;
        assert!(setup.contains("create_certs_tool = /usr/bin/swtpm_localca\n"));
        assert!(setup.contains("create_certs_tool_config = /data/tpm-ca/swtpm-localca.conf\n"));
        assert!(setup.contains("create_certs_tool_options = /data/tpm-ca/swtpm-localca.options\n"));
        let localca = &files[1].1;
        for line in localca.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.contains("= /data/tpm-ca"), "{line}");
        }
        assert!(!files.iter().any(|(_, c)| c.contains("/var/lib")));
    }

    #[test]
    fn install_writes_the_files_and_is_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = install(dir.path(), Path::new("/usr/bin/swtpm_localca")).expect("install");
        assert_eq!(conf, dir.path().join(SETUP_CONF));
        let first = std::fs::read_to_string(&conf).expect("read");
        install(dir.path(), Path::new("/usr/bin/swtpm_localca")).expect("install again");
        assert_eq!(std::fs::read_to_string(&conf).expect("read"), first);
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("readdir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        assert_eq!(names, [LOCALCA_CONF, LOCALCA_OPTIONS, SETUP_CONF]);
    }
}
