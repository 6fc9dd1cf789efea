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

/// Replaces `path` whole or not at all: a crash never leaves half a key protector.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let fail = |e: std::io::Error| CliError::new(format!("cannot write {}: {e}", path.display()));
    let mut f = std::fs::File::create(&tmp).map_err(fail)?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// Writes `bytes` to `out`, or to standard output when there is none.
pub(super) fn write_output(out: Option<&Path>, bytes: &[u8]) -> Result<(), CliError> {
    match out {
        Some(p) => std::fs::write(p, bytes)
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", p.display()))),
        None => output::write_stdout(bytes),
    }
}
