//! Errors of running swtpm. None of them carries key material: the state key
//! only ever travels through pipes, and swtpm's log (quoted in some variants)
//! never prints it.

use std::path::PathBuf;
use std::time::Duration;

use crate::state_key::SealError;

/// Why a vTPM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    /// A required program is not on `PATH`.
    #[error("{program} is not installed (Debian: apt-get install swtpm swtpm-tools)")]
    NotInstalled {
        /// The program looked for.
        program: &'static str,
    },
    /// A path that swtpm, its config files or the kernel would misread.
    #[error("{what} path {path:?} is unusable: {reason}")]
    InvalidPath {
        /// What the path is for.
        what: String,
        /// The path given.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An endpoint swtpm cannot listen on.
    #[error("invalid vTPM endpoint: {0}")]
    InvalidEndpoint(String),
    /// `manufacture` on a state directory that already holds a vTPM.
    #[error("vTPM state already exists in {0:?}; refusing to overwrite it")]
    AlreadyManufactured(PathBuf),
    /// `start` on a state directory that holds no manufactured vTPM.
    #[error("no vTPM state in {0:?}; manufacture it first")]
    NotManufactured(PathBuf),
    /// `start` while this vTPM's swtpm is already running.
    #[error("swtpm for {state_dir:?} is already running as pid {pid}")]
    AlreadyRunning {
        /// The state directory.
        state_dir: PathBuf,
        /// The running swtpm's pid.
        pid: u32,
    },
    /// swtpm could not decrypt its state: the state key is not the one the
    /// state was written with (or the state file is corrupted).
    #[error("swtpm could not decrypt the vTPM state with this state key; swtpm log:\n{log}")]
    WrongStateKey {
        /// swtpm's log lines from this attempt.
        log: String,
    },
    /// swtpm_setup failed.
    #[error("swtpm_setup failed ({status}); its log:\n{log}")]
    ManufactureFailed {
        /// How the process ended.
        status: String,
        /// swtpm_setup's log lines from this attempt.
        log: String,
    },
    /// swtpm exited with an error while starting.
    #[error("swtpm failed to start ({status}); swtpm log:\n{log}")]
    StartFailed {
        /// How the process ended.
        status: String,
        /// swtpm's log lines from this attempt.
        log: String,
    },
    /// A step did not finish in its time bound.
    #[error("{step} did not finish within {waited:?}; log:\n{log}")]
    Timeout {
        /// What was being waited for.
        step: &'static str,
        /// How long we waited.
        waited: Duration,
        /// The relevant log lines, if any.
        log: String,
    },
    /// swtpm's control channel answered a command with an error code.
    #[error("swtpm control command 0x{command:08x} returned error 0x{code:08x}")]
    ControlRefused {
        /// The control command sent.
        command: u32,
        /// The TPM result code swtpm returned.
        code: u32,
    },
    /// The process would not exit even after SIGKILL.
    #[error("swtpm pid {pid} is still running after SIGTERM and SIGKILL")]
    WouldNotStop {
        /// The process that survived.
        pid: u32,
    },
    /// The pid file holds something other than a pid.
    #[error("pid file {path:?} does not hold a process id")]
    BadPidFile {
        /// The pid file.
        path: PathBuf,
    },
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Generating or handling the state key failed.
    #[error(transparent)]
    StateKey(#[from] SealError),
}

impl TpmError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TpmError {
        let context = context.into();
        move |source| TpmError::Io { context, source }
    }
}
