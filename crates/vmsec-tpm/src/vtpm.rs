//! One VM's vTPM: manufacture its state, start, stop and query its swtpm.
//!
//! The state is encrypted with the VM's state key (AES-256-CBC, swtpm's own
//! format) from the first byte written. The key reaches swtpm only through
//! pipes:
//! - `swtpm socket` reads the 32 raw bytes from its stdin (`--key fd=0`);
//! - `swtpm_setup` does not hand its own stdin to the swtpm it spawns, so it
//!   gets `--keyfile /proc/<our pid>/fd/<n>`, the read end of a pipe this
//!   process holds, carrying the key in hex. Opening that path reopens the
//!   pipe; the key never touches a filesystem. This needs swtpm_setup to run
//!   as our user (it does: we never pass `--runas`).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;
use zeroize::Zeroizing;

use crate::ctrl::{self, CMD_SHUTDOWN, Channel};
use crate::endpoint::{ChannelAddr, Endpoint, check_option_path};
use crate::error::TpmError;
use crate::log_excerpt::LogMark;
use crate::process::{self, Backoff, SwtpmProcess};
use crate::spawn::{find_program, run_bounded};
use crate::state_key::StateKey;

/// The file swtpm keeps a TPM 2.0's permanent state in.
pub const PERMANENT_STATE_FILE: &str = "tpm2-00.permall";

/// Bound on swtpm_setup (key generation and certificates; ~2 s when idle).
pub const MANUFACTURE_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on `start` until both channels accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on a graceful shutdown before signals are used.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Bound on each signal (SIGTERM, then SIGKILL) taking effect.
pub const SIGNAL_GRACE: Duration = Duration::from_secs(3);
/// Bound on each control-channel connect, read and write.
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// swtpm's log level: 1 reports errors and startup without TPM traffic.
const LOG_LEVEL: u8 = 1;

/// Where one vTPM keeps its files. Paths must not contain `,` (swtpm's option
/// separator) or control characters; relative paths are made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VtpmPaths {
    /// swtpm's state directory (encrypted state only).
    pub state_dir: PathBuf,
    /// Log of swtpm_setup and swtpm (appended to; never holds the key).
    pub log_file: PathBuf,
    /// swtpm's pid file while it runs.
    pub pid_file: PathBuf,
}

impl VtpmPaths {
    /// The conventional layout under one per-VM directory:
    /// `DIR/state/`, `DIR/swtpm.log`, `DIR/swtpm.pid`.
    pub fn under(dir: &Path) -> Self {
        Self {
            state_dir: dir.join("state"),
            log_file: dir.join("swtpm.log"),
            pid_file: dir.join("swtpm.pid"),
        }
    }

    /// Checks the paths and makes them absolute: swtpm daemonizes and may
    /// change directory.
    fn resolved(&self) -> Result<VtpmPaths, TpmError> {
        let absolute = |what: &str, p: &Path| -> Result<PathBuf, TpmError> {
            check_option_path(what, p)?;
            std::path::absolute(p).map_err(TpmError::io(format!("resolving {}", p.display())))
        };
        Ok(VtpmPaths {
            state_dir: absolute("state directory", &self.state_dir)?,
            log_file: absolute("log file", &self.log_file)?,
            pid_file: absolute("pid file", &self.pid_file)?,
        })
    }

    fn permanent_state(&self) -> PathBuf {
        self.state_dir.join(PERMANENT_STATE_FILE)
    }
}

/// What [`manufacture`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manufactured {
    /// How long swtpm_setup took.
    pub elapsed: Duration,
}

/// A swtpm that [`start`] left running as a daemon. Dropping this does not
/// stop it: the vTPM must outlive the command that started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunningTpm {
    /// The daemon's process id.
    pub pid: u32,
    /// Where it listens.
    pub endpoint: Endpoint,
    /// From spawning swtpm to both channels accepting connections.
    pub startup: Duration,
}

/// Whether a vTPM's swtpm is running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Status {
    /// A live swtpm serves this state directory.
    Running {
        /// Its process id.
        pid: u32,
        /// Where it listens; `None` if its command line is not one we wrote.
        endpoint: Option<Endpoint>,
    },
    /// No swtpm serves this state directory.
    Stopped {
        /// A pid file was left behind (swtpm was killed or crashed).
        stale_pid_file: bool,
    },
}

/// How [`stop`] ended the vTPM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopOutcome {
    /// It was not running.
    NotRunning,
    /// It saved its state and exited on the control channel's shutdown.
    Graceful,
    /// It exited on SIGTERM.
    Terminated,
    /// It had to be killed with SIGKILL (volatile state lost).
    Killed,
}

/// Creates a new vTPM in `paths.state_dir`: EK (RSA and ECC) with
/// certificates from the local CA in `ca_dir`, platform certificate, NVRAM
/// locked, state encrypted with `dek` from the start.
///
/// `ca_dir` is shared by all VMs of a host; the CA is created on first use.
/// Refuses a state directory that already holds a vTPM. A failed run is not
/// cleaned up (a concurrent successful run may own the files): the caller
/// removes the fresh state directory before retrying.
pub fn manufacture(
    paths: &VtpmPaths,
    ca_dir: &Path,
    dek: &StateKey,
) -> Result<Manufactured, TpmError> {
    let paths = paths.resolved()?;
    check_option_path("CA directory", ca_dir)?;
    let ca_dir = std::path::absolute(ca_dir)
        .map_err(TpmError::io(format!("resolving {}", ca_dir.display())))?;
    let setup = find_program("swtpm_setup")?;
    find_program("swtpm")?;
    let localca = find_program("swtpm_localca")?;

    create_private_dir(&paths.state_dir)?;
    create_private_dir(&ca_dir)?;
    if let Some(parent) = paths.log_file.parent() {
        create_private_dir(parent)?;
    }
    if paths.permanent_state().exists() {
        return Err(TpmError::AlreadyManufactured(paths.state_dir));
    }
    let config = crate::setup_config::install(&ca_dir, &localca)?;
    crate::setup_config::make_keys_private(&ca_dir, true)?;

    let (reader, mut writer) =
        std::io::pipe().map_err(TpmError::io("creating the state key pipe"))?;
    let hex = hex_key(dek);
    writer
        .write_all(&hex)
        .map_err(TpmError::io("writing the state key pipe"))?;
    // Closing the write end lets swtpm's read end at the key, not block.
    drop(writer);
    let keyfile = format!("/proc/{}/fd/{}", std::process::id(), reader.as_raw_fd());

    let mut cmd = Command::new(setup);
    cmd.arg("--tpm2")
        .arg("--tpmstate")
        .arg(&paths.state_dir)
        .args(["--create-ek-cert", "--create-platform-cert", "--lock-nvram"])
        .arg("--config")
        .arg(&config)
        .args(["--keyfile", &keyfile, "--cipher", "aes-256-cbc"])
        .arg("--logfile")
        .arg(&paths.log_file);

    let mark = LogMark::new(&paths.log_file);
    let started = Instant::now();
    let outcome = run_bounded(cmd, "swtpm_setup", None, MANUFACTURE_TIMEOUT);
    drop(reader);
    // swtpm_localca made the CA's keys on first use, group-readable.
    crate::setup_config::make_keys_private(&ca_dir, false)?;
    let done = outcome.map_err(|e| with_log(e, &mark))?;
    let elapsed = started.elapsed();

    if !done.status.success() || !paths.permanent_state().exists() {
        return Err(TpmError::ManufactureFailed {
            status: done.status.to_string(),
            log: join_logs(&mark.appended(), &done.stderr),
        });
    }
    tracing::info!(state_dir = %paths.state_dir.display(), ?elapsed, "vTPM manufactured");
    Ok(Manufactured { elapsed })
}

/// Starts swtpm as a daemon on `endpoint` with the state in
/// `paths.state_dir` decrypted by `dek`, and waits (bounded) until both
/// channels accept connections.
///
/// A wrong `dek` fails with [`TpmError::WrongStateKey`]; other failures quote
/// swtpm's log.
pub fn start(
    paths: &VtpmPaths,
    endpoint: &Endpoint,
    dek: &StateKey,
) -> Result<RunningTpm, TpmError> {
    endpoint.validate()?;
    let paths = paths.resolved()?;
    let swtpm = find_program("swtpm")?;
    if !paths.permanent_state().is_file() {
        return Err(TpmError::NotManufactured(paths.state_dir));
    }
    // Canonical so that `status` can match the daemon's command line.
    let state_dir = canonical(&paths.state_dir)?;
    if let Status::Running { pid, .. } = status(&paths)? {
        return Err(TpmError::AlreadyRunning { state_dir, pid });
    }
    remove_if_exists(&paths.pid_file)?;
    for addr in [endpoint.data(), endpoint.ctrl()] {
        if let ChannelAddr::Unix(path) = addr {
            clear_stale_socket(&path)?;
        }
    }

    let mut cmd = Command::new(swtpm);
    cmd.args(["socket", "--tpm2", "--tpmstate"])
        .arg(format!("dir={}", state_dir.display()))
        .args([
            "--key",
            "fd=0,format=binary,mode=aes-256-cbc",
            "--flags",
            "not-need-init,startup-clear",
            "--daemon",
        ])
        .args(endpoint.swtpm_args())
        .arg("--pid")
        .arg(format!("file={}", paths.pid_file.display()))
        .arg("--log")
        .arg(format!(
            "file={},level={LOG_LEVEL}",
            paths.log_file.display()
        ));

    let mark = LogMark::new(&paths.log_file);
    let started = Instant::now();
    let done = run_bounded(cmd, "swtpm", Some(dek.expose_secret()), START_TIMEOUT)
        .map_err(|e| with_log(e, &mark))?;
    if !done.status.success() {
        let log = join_logs(&mark.appended(), &done.stderr);
        return Err(if is_decryption_failure(&log) {
            TpmError::WrongStateKey { log }
        } else {
            TpmError::StartFailed {
                status: done.status.to_string(),
                log,
            }
        });
    }

    let deadline = started + START_TIMEOUT;
    let pid = wait_for_pid(&paths.pid_file, deadline, &mark)?;
    wait_until_listening(pid, endpoint, deadline, &mark)?;
    let startup = started.elapsed();
    tracing::info!(pid, %endpoint, ?startup, "vTPM started");
    Ok(RunningTpm {
        pid,
        endpoint: endpoint.clone(),
        startup,
    })
}

/// Stops this vTPM's swtpm: a control-channel shutdown (state saved), then
/// SIGTERM, then SIGKILL, each bounded in time.
pub fn stop(paths: &VtpmPaths) -> Result<StopOutcome, TpmError> {
    let paths = paths.resolved()?;
    let Some(running) = find_running(&paths)? else {
        remove_if_exists(&paths.pid_file)?;
        return Ok(StopOutcome::NotRunning);
    };
    let pid = running.pid;

    let graceful = match running.endpoint() {
        Some(endpoint) => ctrl::send(&endpoint.ctrl(), CMD_SHUTDOWN, IO_TIMEOUT),
        None => Err(TpmError::InvalidEndpoint(format!(
            "cannot find the control channel of swtpm pid {pid} on its command line"
        ))),
    };
    let outcome = match graceful {
        Ok(()) if process::wait_exit(pid, SHUTDOWN_GRACE) => StopOutcome::Graceful,
        result => {
            if let Err(e) = result {
                tracing::warn!(pid, error = %e, "graceful swtpm shutdown failed");
            }
            signal_until_gone(&paths, pid)?
        }
    };
    remove_if_exists(&paths.pid_file)?;
    tracing::info!(pid, ?outcome, "vTPM stopped");
    Ok(outcome)
}

/// Whether this vTPM's swtpm is running, and where it listens.
pub fn status(paths: &VtpmPaths) -> Result<Status, TpmError> {
    let paths = paths.resolved()?;
    match find_running(&paths)? {
        Some(running) => Ok(Status::Running {
            pid: running.pid,
            endpoint: running.endpoint(),
        }),
        None => Ok(Status::Stopped {
            stale_pid_file: paths.pid_file.exists(),
        }),
    }
}

/// The live swtpm that the pid file names and that serves our state dir.
fn find_running(paths: &VtpmPaths) -> Result<Option<SwtpmProcess>, TpmError> {
    let pid = match process::read_pid_file(&paths.pid_file) {
        Ok(Some(pid)) => pid,
        // A garbled pid file is left by a crash mid-write: nothing runs.
        Ok(None) | Err(TpmError::BadPidFile { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Ok(state_dir) = std::fs::canonicalize(&paths.state_dir) else {
        return Ok(None);
    };
    Ok(process::inspect(pid).filter(|p| p.serves(&state_dir)))
}

fn signal_until_gone(paths: &VtpmPaths, pid: u32) -> Result<StopOutcome, TpmError> {
    let mut outcome = StopOutcome::Graceful;
    for (signal, next) in [
        ("TERM", StopOutcome::Terminated),
        ("KILL", StopOutcome::Killed),
    ] {
        // Re-check right before signalling so that a pid reused by another
        // process is never hit.
        if find_running(paths)?.is_none_or(|p| p.pid != pid) {
            return Ok(outcome);
        }
        process::signal(pid, signal)?;
        outcome = next;
        if process::wait_exit(pid, SIGNAL_GRACE) {
            return Ok(outcome);
        }
    }
    Err(TpmError::WouldNotStop { pid })
}

fn wait_for_pid(pid_file: &Path, deadline: Instant, mark: &LogMark) -> Result<u32, TpmError> {
    let mut backoff = Backoff::new();
    loop {
        match process::read_pid_file(pid_file) {
            Ok(Some(pid)) => return Ok(pid),
            // Still being written by the daemon; look again.
            Ok(None) | Err(TpmError::BadPidFile { .. }) => {}
            Err(e) => return Err(e),
        }
        if Instant::now() >= deadline {
            return Err(TpmError::Timeout {
                step: "swtpm writing its pid file",
                waited: START_TIMEOUT,
                log: mark.appended(),
            });
        }
        backoff.wait();
    }
}

fn wait_until_listening(
    pid: u32,
    endpoint: &Endpoint,
    deadline: Instant,
    mark: &LogMark,
) -> Result<(), TpmError> {
    for addr in [endpoint.ctrl(), endpoint.data()] {
        let mut backoff = Backoff::new();
        loop {
            if accepts(&addr) {
                break;
            }
            if !process::is_alive(pid) {
                let log = mark.appended();
                return Err(if is_decryption_failure(&log) {
                    TpmError::WrongStateKey { log }
                } else {
                    TpmError::StartFailed {
                        status: format!("daemon pid {pid} exited while starting"),
                        log,
                    }
                });
            }
            if Instant::now() >= deadline {
                return Err(TpmError::Timeout {
                    step: "swtpm accepting connections",
                    waited: START_TIMEOUT,
                    log: mark.appended(),
                });
            }
            backoff.wait();
        }
    }
    Ok(())
}

fn accepts(addr: &ChannelAddr) -> bool {
    Channel::connect(addr, IO_TIMEOUT).is_ok()
}

/// swtpm's messages when the key does not decrypt the state (HMAC check of
/// its encrypted blob, or libtpms failing to load it).
fn is_decryption_failure(log: &str) -> bool {
    log.contains("Verification of HMAC failed") || log.contains("GetDecryptedData")
}

/// Adds the log written so far to a timeout that had none.
fn with_log(error: TpmError, mark: &LogMark) -> TpmError {
    match error {
        TpmError::Timeout { step, waited, log } => TpmError::Timeout {
            step,
            waited,
            log: join_logs(&mark.appended(), &log),
        },
        other => other,
    }
}

fn join_logs(log: &str, stderr: &str) -> String {
    match (log.trim_end(), stderr.trim_end()) {
        (log, "") => log.to_string(),
        ("", stderr) => stderr.to_string(),
        (log, stderr) => format!("{log}\n{stderr}"),
    }
}

/// The key as swtpm_setup's `--keyfile` wants it: 64 lowercase hex digits.
fn hex_key(dek: &StateKey) -> Zeroizing<Vec<u8>> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = Zeroizing::new(Vec::with_capacity(64));
    for byte in dek.expose_secret() {
        hex.push(DIGITS[usize::from(byte >> 4)]);
        hex.push(DIGITS[usize::from(byte & 0x0f)]);
    }
    hex
}

fn create_private_dir(dir: &Path) -> Result<(), TpmError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(TpmError::io(format!(
            "creating directory {}",
            dir.display()
        )))
}

fn canonical(path: &Path) -> Result<PathBuf, TpmError> {
    let canonical = std::fs::canonicalize(path)
        .map_err(TpmError::io(format!("resolving {}", path.display())))?;
    check_option_path("state directory", &canonical)?;
    Ok(canonical)
}

fn remove_if_exists(path: &Path) -> Result<(), TpmError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(TpmError::Io {
            context: format!("removing {}", path.display()),
            source: e,
        }),
    }
}

/// Removes a socket file nobody listens on (left by a killed swtpm); refuses
/// a path that is not a socket or that another process still serves.
fn clear_stale_socket(path: &Path) -> Result<(), TpmError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(TpmError::InvalidEndpoint(format!(
            "{} exists and is not a socket",
            path.display()
        )));
    }
    if accepts(&ChannelAddr::Unix(path.to_path_buf())) {
        return Err(TpmError::InvalidEndpoint(format!(
            "{} is in use by another process",
            path.display()
        )));
    }
    remove_if_exists(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_key_is_lowercase_and_64_digits() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xAB;
        bytes[31] = 0x0F;
        let hex = hex_key(&StateKey::from_bytes(bytes));
        assert_eq!(hex.len(), 64);
        assert!(hex.starts_with(b"ab00"));
        assert!(hex.ends_with(b"000f"));
    }

    #[test]
    fn conventional_paths_live_under_one_directory() {
        let p = VtpmPaths::under(Path::new("/data/vm1/tpm"));
        assert_eq!(p.state_dir, Path::new("/data/vm1/tpm/state"));
        assert_eq!(p.log_file, Path::new("/data/vm1/tpm/swtpm.log"));
        assert_eq!(p.pid_file, Path::new("/data/vm1/tpm/swtpm.pid"));
    }

    #[test]
    fn paths_with_commas_are_refused_before_anything_runs() {
        let p = VtpmPaths::under(Path::new("/data/a,b"));
        assert!(matches!(status(&p), Err(TpmError::InvalidPath { .. })));
    }

    #[test]
    fn status_of_a_never_started_vtpm_is_stopped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = VtpmPaths::under(dir.path());
        assert_eq!(
            status(&p).expect("status"),
            Status::Stopped {
                stale_pid_file: false
            }
        );
    }

    #[test]
    fn a_pid_file_naming_another_program_is_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = VtpmPaths::under(dir.path());
        std::fs::create_dir(&p.state_dir).expect("mkdir");
        std::fs::write(&p.pid_file, std::process::id().to_string()).expect("write");
        assert_eq!(
            status(&p).expect("status"),
            Status::Stopped {
                stale_pid_file: true
            }
        );
        assert_eq!(stop(&p).expect("stop"), StopOutcome::NotRunning);
        assert!(!p.pid_file.exists());
        assert!(process::is_alive(std::process::id()));
    }

    #[test]
    fn start_without_manufactured_state_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = VtpmPaths::under(dir.path());
        let dek = StateKey::from_bytes([1; 32]);
        let result = start(&p, &Endpoint::Tcp { port: 2321 }, &dek);
        assert!(
            matches!(
                result,
                Err(TpmError::NotManufactured(_) | TpmError::NotInstalled { .. })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn decryption_failures_are_recognised_in_swtpm_logs() {
        assert!(is_decryption_failure(
            "Verification of HMAC failed. Data integrity is compromised\n"
        ));
        assert!(!is_decryption_failure("Could not bind to port\n"));
    }

    #[test]
    fn status_json_names_state_and_endpoint() {
        let running = Status::Running {
            pid: 42,
            endpoint: Some(Endpoint::Tcp { port: 2321 }),
        };
        assert_eq!(
            serde_json::to_string(&running).expect("json"),
            r#"{"state":"running","pid":42,"endpoint":{"type":"tcp","port":2321}}"#
        );
    }
}
