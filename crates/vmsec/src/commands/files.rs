//! Reading the files verbs take and writing the ones they make.

use std::io::{Read, Write};
use std::path::Path;

use crate::CliError;
use crate::output;

/// Largest file `kp set` and `policy set` read (the service refuses smaller limits itself).
const MAX_INPUT: u64 = 16 * 1024 * 1024;

/// The contents of `file`, or of standard input for `-`, at most [`MAX_INPUT`] bytes.
pub(super) fn read_input(file: &Path) -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    let name = file.display();
    if file == Path::new("-") {
        std::io::stdin()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut buf)
            .map_err(|e| CliError::new(format!("cannot read standard input: {e}")))?;
    } else {
        std::fs::File::open(file)
            .and_then(|f| f.take(MAX_INPUT + 1).read_to_end(&mut buf))
            .map_err(|e| CliError::new(format!("cannot read {name}: {e}")))?;
    }
    if buf.len() as u64 > MAX_INPUT {
        return Err(CliError::new(format!(
            "{name} is larger than {MAX_INPUT} bytes"
        )));
    }
    Ok(buf)
}

/// Whether a write may replace a regular file that is already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Existing {
    /// Refused, naming the file and `--force` (a made file, `--out FILE`).
    Keep,
    /// Replaced (`--force`, or a file the verb rewrites, as `kp grant FILE` does).
    Replace,
}

impl Existing {
    /// What `--force` asks for.
    pub(super) fn when(force: bool) -> Existing {
        if force {
            Existing::Replace
        } else {
            Existing::Keep
        }
    }
}

/// Writes `bytes` to `path`. A regular file (new, or replaced as `existing` allows) is
/// written whole or not at all, through a temporary file renamed into place: a crash never
/// leaves half a key protector. Anything else that is there (a FIFO, a terminal, a device)
/// is opened and written in place: renaming over it would replace the node with a regular
/// file, and writing to it overwrites no file, so it needs no `--force`.
pub(super) fn write_atomic(path: &Path, bytes: &[u8], existing: Existing) -> Result<(), CliError> {
    let fail = |e: std::io::Error| CliError::new(format!("cannot write {}: {e}", path.display()));
    let exists = || {
        CliError::new(format!(
            "{} exists; use --force to replace it",
            path.display()
        ))
    };
    // Follows a symbolic link: what matters is what a write would reach.
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(CliError::new(format!(
            "cannot write {}: it is a directory",
            path.display()
        ))),
        Ok(m) if !m.is_file() => std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(fail),
        Ok(_) if existing == Existing::Keep => Err(exists()),
        Ok(_) => {
            // Through a link, the file it names is replaced and the link stays.
            let target = std::fs::canonicalize(path).map_err(fail)?;
            let tmp = write_temporary(&target, bytes).map_err(fail)?;
            std::fs::rename(&tmp, &target).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                fail(e)
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tmp = write_temporary(path, bytes).map_err(fail)?;
            let placed = place_new(&tmp, path, existing);
            let _ = std::fs::remove_file(&tmp);
            match placed {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists()),
                other => other.map_err(fail),
            }
        }
        Err(e) => Err(fail(e)),
    }
}

/// Puts the finished temporary file `tmp` at `path`, where nothing was a moment ago. A hard
/// link, unlike a rename, fails if something appeared there since, so a file made meanwhile
/// is never replaced without `--force`; where the file system has no hard links, a rename.
fn place_new(tmp: &Path, path: &Path, existing: Existing) -> std::io::Result<()> {
    match std::fs::hard_link(tmp, path) {
        Err(e)
            if e.kind() != std::io::ErrorKind::AlreadyExists || existing == Existing::Replace =>
        {
            std::fs::rename(tmp, path)
        }
        other => other,
    }
}

/// A new file beside `path` holding `bytes`, synced; its name says whose it is.
fn write_temporary(path: &Path, bytes: &[u8]) -> std::io::Result<std::path::PathBuf> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp)?;
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// Writes `bytes` to `out`, or to standard output when there is none.
pub(super) fn write_output(out: Option<&Path>, bytes: &[u8]) -> Result<(), CliError> {
    match out {
        Some(p) => std::fs::write(p, bytes)
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", p.display()))),
        None => output::write_stdout(bytes),
    }
}

/// [`write_output`] for a command that may run under `--json`: then the result is a JSON
/// object too, with the file written (absolute), or, without one, the bytes in base64.
pub(super) fn write_output_or_json(
    json: bool,
    out: Option<&Path>,
    bytes: &[u8],
) -> Result<(), CliError> {
    if !json {
        return write_output(out, bytes);
    }
    use base64::Engine as _;
    let v = match out {
        Some(p) => {
            write_output(Some(p), bytes)?;
            serde_json::json!({ "ok": true, "file": absolute(p), "bytes": bytes.len() })
        }
        None => serde_json::json!({
            "bytes": bytes.len(),
            "base64": base64::engine::general_purpose::STANDARD.encode(bytes),
        }),
    };
    output::write_stdout(
        format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()).as_bytes(),
    )
}

/// A path as `--json` reports it: absolute.
pub(super) fn absolute(p: &Path) -> std::path::PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}
