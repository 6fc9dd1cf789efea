//! Running swtpm's programs with a time bound, secrets on a pipe, and their
//! error output captured for the error message.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::TpmError;
use crate::process::Backoff;

/// Most stderr text kept from one program run.
const MAX_STDERR: u64 = 64 * 1024;

/// The absolute path of `name` found on `PATH`, or [`TpmError::NotInstalled`].
pub(crate) fn find_program(name: &'static str) -> Result<PathBuf, TpmError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or(TpmError::NotInstalled { program: name })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// How a bounded run ended.
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stderr: String,
}

/// Runs `cmd` to completion within `limit`, writing `stdin_secret` (if any)
/// to its standard input and then closing it.
///
/// On timeout the process is killed and [`TpmError::Timeout`] returned.
pub(crate) fn run_bounded(
    mut cmd: Command,
    what: &'static str,
    stdin_secret: Option<&[u8]>,
    limit: Duration,
) -> Result<Finished, TpmError> {
    cmd.stdin(if stdin_secret.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(TpmError::io(format!("starting {what}")))?;

    if let (Some(secret), Some(mut stdin)) = (stdin_secret, child.stdin.take()) {
        // A write error means the program exited without reading; its exit
        // status and log explain why better than EPIPE would.
        if let Err(e) = stdin.write_all(secret) {
            tracing::debug!(what, error = %e, "writing the key to stdin failed");
        }
    }

    // A daemonizing program may leave a grandchild holding stderr for a
    // moment; read it on a thread so waiting for exit never blocks on it.
    let (tx, rx) = mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stderr.take(MAX_STDERR).read_to_end(&mut text);
            let _ = tx.send(String::from_utf8_lossy(&text).into_owned());
        });
    }

    let deadline = Instant::now() + limit;
    let mut backoff = Backoff::new();
    let status = loop {
        match child
            .try_wait()
            .map_err(TpmError::io(format!("waiting for {what}")))?
        {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
                return Err(TpmError::Timeout {
                    step: what,
                    waited: limit,
                    log: stderr,
                });
            }
            None => backoff.wait(),
        }
    };
    let stderr = rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
    Ok(Finished { status, stderr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_program_is_reported_as_not_installed() {
        assert!(matches!(
            find_program("vmsec-no-such-program"),
            Err(TpmError::NotInstalled {
                program: "vmsec-no-such-program"
            })
        ));
    }

    #[test]
    fn stdin_secret_reaches_the_program_and_stderr_is_captured() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "read line; echo \"got $line\" >&2; exit 3"]);
        let done = run_bounded(cmd, "sh", Some(b"abc\n"), Duration::from_secs(10)).expect("run");
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stderr, "got abc\n");
    }

    #[test]
    fn a_program_over_its_time_bound_is_killed() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let started = Instant::now();
        let result = run_bounded(cmd, "sleep", None, Duration::from_millis(200));
        assert!(matches!(
            result,
            Err(TpmError::Timeout { step: "sleep", .. })
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
