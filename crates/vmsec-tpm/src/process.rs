//! Finding and ending a daemonized swtpm through its pid file and `/proc`.
//!
//! swtpm runs with `--daemon`, so it outlives the `vmsec` command that started
//! it and is not our child: we know it only by pid. A pid can be reused, so a
//! pid counts as "our swtpm" only if `/proc/PID` is a live `swtpm` whose
//! command line names our state directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::endpoint::Endpoint;
use crate::error::TpmError;

/// The longest wait between two looks at a process that is to appear or exit.
const POLL: Duration = Duration::from_millis(20);

/// The waits between looks at a step that takes from a millisecond to seconds (swtpm
/// daemonizing, writing its pid file, listening; a process exiting): 1 ms at first,
/// doubling up to [`POLL`]. A fixed 20 ms made every quick step cost 20 ms, which was most
/// of a warm `tpm start`; this sees a quick step within about its own time and a slow one
/// still costs only a look every 20 ms.
pub(crate) struct Backoff(Duration);

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff(Duration::from_millis(1))
    }

    pub(crate) fn wait(&mut self) {
        sleep(self.next());
    }

    fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(POLL);
        now
    }
}

/// What `/proc` says about a live swtpm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SwtpmProcess {
    pub(crate) pid: u32,
    pub(crate) args: Vec<String>,
}

impl SwtpmProcess {
    /// Whether this swtpm serves the state in `state_dir` (absolute).
    pub(crate) fn serves(&self, state_dir: &Path) -> bool {
        let wanted = format!("dir={}", state_dir.display());
        self.option("--tpmstate")
            .is_some_and(|value| value.split(',').any(|part| part == wanted))
    }

    /// The endpoint, recovered from the `--server` option we started it with.
    pub(crate) fn endpoint(&self) -> Option<Endpoint> {
        let server = self.option("--server")?;
        let field = |name: &str| {
            server
                .split(',')
                .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
        };
        match field("type")? {
            "tcp" => Some(Endpoint::Tcp {
                port: field("port")?.parse().ok()?,
            }),
            "unixio" => Some(Endpoint::Unix {
                path: PathBuf::from(field("path")?),
            }),
            _ => None,
        }
    }

    fn option(&self, name: &str) -> Option<&str> {
        let at = self.args.iter().position(|a| a == name)?;
        self.args.get(at + 1).map(String::as_str)
    }
}

/// Reads a pid file; `Ok(None)` when there is none (swtpm removes it on exit).
pub(crate) fn read_pid_file(path: &Path) -> Result<Option<u32>, TpmError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(TpmError::Io {
                context: format!("reading pid file {}", path.display()),
                source: e,
            });
        }
    };
    match text.trim().parse::<u32>() {
        Ok(pid) if pid > 0 => Ok(Some(pid)),
        _ => Err(TpmError::BadPidFile {
            path: path.to_path_buf(),
        }),
    }
}

/// The live swtpm with this pid, or `None` if the pid is gone, a zombie, or
/// some other program.
pub(crate) fn inspect(pid: u32) -> Option<SwtpmProcess> {
    if !is_alive(pid) {
        return None;
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    if comm.trim_end() != "swtpm" {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args = parse_cmdline(&cmdline);
    Some(SwtpmProcess { pid, args })
}

/// Whether `pid` exists and has not yet exited (zombies count as exited:
/// they are waiting to be reaped by whoever adopted them).
pub(crate) fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(proc_state(&stat), Some('Z' | 'X') | None),
        Err(_) => false,
    }
}

/// The state letter of a `/proc/PID/stat` line. The command name in
/// parentheses may itself contain `)` and spaces, so parse from the last `)`.
fn proc_state(stat: &str) -> Option<char> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    after.trim_start().chars().next()
}

fn parse_cmdline(raw: &[u8]) -> Vec<String> {
    raw.split(|&b| b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// Waits until `pid` has exited; `true` if it did within `limit`.
pub(crate) fn wait_exit(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut backoff = Backoff::new();
    loop {
        if !is_alive(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        backoff.wait();
    }
}

/// Sends a signal with the `kill` program: std offers no safe `kill(2)` and
/// this crate forbids `unsafe`.
pub(crate) fn signal(pid: u32, signal: &str) -> Result<(), TpmError> {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(TpmError::io(format!("running kill -s {signal} {pid}")))?;
    // A failure usually means the process exited meanwhile, which is the
    // goal; callers check liveness afterwards rather than trusting this.
    if !status.success() {
        tracing::debug!(pid, signal, %status, "kill reported failure");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_come_quickly_at_first_then_every_20_ms() {
        let mut b = Backoff::new();
        let waits: Vec<u128> = (0..8).map(|_| b.next().as_millis()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 20, 20, 20]);
    }

    fn process(args: &[&str]) -> SwtpmProcess {
        SwtpmProcess {
            pid: 1,
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn state_letter_is_read_after_the_last_parenthesis() {
        assert_eq!(proc_state("42 (swtpm) S 1 2 3"), Some('S'));
        assert_eq!(proc_state("42 (a) b) Z 1 2 3"), Some('Z'));
        assert_eq!(proc_state("garbage"), None);
    }

    #[test]
    fn cmdline_splits_on_nul() {
        assert_eq!(
            parse_cmdline(b"swtpm\0socket\0--tpm2\0"),
            ["swtpm", "socket", "--tpm2"]
        );
    }

    #[test]
    fn tcp_endpoint_is_recovered_from_the_command_line() {
        let p = process(&[
            "swtpm",
            "socket",
            "--server",
            "type=tcp,bindaddr=127.0.0.1,port=4000",
        ]);
        assert_eq!(p.endpoint(), Some(Endpoint::Tcp { port: 4000 }));
    }

    #[test]
    fn unix_endpoint_is_recovered_from_the_command_line() {
        let p = process(&["swtpm", "--server", "type=unixio,path=/run/x.sock"]);
        assert_eq!(
            p.endpoint(),
            Some(Endpoint::Unix {
                path: "/run/x.sock".into()
            })
        );
    }

    #[test]
    fn a_swtpm_serves_only_the_state_dir_on_its_command_line() {
        let p = process(&["swtpm", "--tpmstate", "dir=/var/vm1/state,mode=0600"]);
        assert!(p.serves(Path::new("/var/vm1/state")));
        assert!(!p.serves(Path::new("/var/vm1")));
        assert!(!process(&["swtpm"]).serves(Path::new("/var/vm1/state")));
    }

    #[test]
    fn missing_pid_file_means_no_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            read_pid_file(&dir.path().join("none.pid")).expect("read"),
            None
        );
    }

    #[test]
    fn garbage_pid_file_is_a_precise_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.pid");
        for junk in ["", "abc", "0", "-5"] {
            std::fs::write(&path, junk).expect("write");
            assert!(
                matches!(read_pid_file(&path), Err(TpmError::BadPidFile { .. })),
                "{junk:?}"
            );
        }
        std::fs::write(&path, "123\n").expect("write");
        assert_eq!(read_pid_file(&path).expect("read"), Some(123));
    }

    #[test]
    fn our_own_process_is_alive_but_not_a_swtpm() {
        let me = std::process::id();
        assert!(is_alive(me));
        assert_eq!(inspect(me), None);
    }
}
