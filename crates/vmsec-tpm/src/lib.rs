#![forbid(unsafe_code)]
#![deny(missing_docs)]
//! vmsec's vTPM: swtpm with its state encrypted by a key that only an
//! unwrapped transport key can reach (docs/specs/key-protector.md,
//! "vTPM state key").
//!
//! - [`state_key`]: the per-VM state key (DEK) and its AES-256-GCM sealing
//!   under the transport key. Pure.
//! - [`manufacture`], [`start`], [`stop`], [`status`]: one VM's swtpm, run as
//!   a daemon, the DEK handed over through pipes only.
//! - [`Endpoint`]: where swtpm listens, with the matching QEMU arguments
//!   ([`Endpoint::qemu_args`]) and tpm2-tools TCTI ([`Endpoint::tcti`]).
//!
//! - [`host`]: a host's own TPM in the fabric's TPM mode (EK, AK, IDK, quotes), through
//!   tss-esapi.
//!
//! No dependency on other vmsec crates: the caller unwraps the key protector
//! and stores the sealed DEK.

pub mod attesting;
mod ctrl;
mod endpoint;
mod error;
pub mod host;
mod log_excerpt;
mod process;
mod setup_config;
mod spawn;
pub mod state_key;
mod vtpm;

pub use ctrl::CMD_SHUTDOWN;
pub use endpoint::{CTRL_SUFFIX, Endpoint};
pub use error::TpmError;
pub use setup_config::{LOCALCA_CONF, LOCALCA_OPTIONS, SETUP_CONF};
pub use state_key::{SealError, StateKey, seal, unseal};
pub use vtpm::{
    MANUFACTURE_TIMEOUT, Manufactured, PERMANENT_STATE_FILE, RunningTpm, SHUTDOWN_GRACE,
    SIGNAL_GRACE, START_TIMEOUT, Status, StopOutcome, VtpmPaths, manufacture, start, status, stop,
};
