//! Everything that can go wrong in a service call. [`crate::codes`] maps each to the one
//! return code a client sees.

use vmsec_store::StoreError;

use crate::VmRef;

/// Why a service call failed. The message is written for the person who made the call and
/// never holds key material. Causes from other crates are kept as sources, so a caller can
/// tell them apart without reading the message.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("authentication failed")]
    AuthenticationFailed,
    /// The embedded `SecuritySettingData` instance could not be read.
    #[error("SecuritySettingData is not a readable embedded instance: {0}")]
    MalformedInstance(String),
    /// A readable instance of the wrong class, or a property of the wrong type.
    #[error("{0}")]
    IncorrectType(String),
    #[error("{0}")]
    InvalidParameter(String),
    /// A call named a VM that does not exist.
    #[error("no VM {0}")]
    UnknownVm(VmRef),
    /// No VM has this name or GUID (a lookup by what a person typed).
    #[error("no VM has the name or GUID {0:?}")]
    NoSuchVm(String),
    #[error(transparent)]
    InvalidKeyProtector(#[from] KeyProtectorError),
    /// The VM's state does not allow the call (e.g. no last known good to restore).
    #[error("{0}")]
    InvalidState(String),
    /// Settings that contradict each other.
    #[error("{0}")]
    IncompatibleSettings(String),
    #[error("not supported: {0}")]
    NotSupported(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    NotFound(String),
    /// The service was stopped with StopService.
    #[error("the security service is stopped; StartService resumes it")]
    ServiceStopped,
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("{0}")]
    StoreUnavailable(String),
    /// swtpm could not be set up, started or stopped (the message has swtpm's own words).
    #[error("vTPM: {0}")]
    Vtpm(#[from] vmsec_tpm::TpmError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy(m) => ServiceError::Timeout(format!("the store stayed busy: {m}")),
            StoreError::Unavailable(m) => ServiceError::StoreUnavailable(m),
            StoreError::AlreadyExists(m) => {
                ServiceError::AlreadyExists(format!("{m} already exists"))
            }
            StoreError::NotFound(m) => ServiceError::NotFound(format!("{m} not found")),
            StoreError::Corrupt(m) => {
                ServiceError::Internal(format!("the store holds invalid data: {m}"))
            }
            StoreError::Constraint(m) => {
                ServiceError::Internal(format!("the store refused the write: {m}"))
            }
            StoreError::LeaseHeld(m) | StoreError::LeaseLost(m) => ServiceError::InvalidState(m),
        }
    }
}

impl From<vmsec_store::UpdateError> for ServiceError {
    fn from(e: vmsec_store::UpdateError) -> Self {
        match e {
            vmsec_store::UpdateError::Store(s) => s.into(),
            vmsec_store::UpdateError::Rejected(r) => match r.downcast::<ServiceError>() {
                Ok(s) => *s,
                Err(other) => ServiceError::Internal(other.to_string()),
            },
        }
    }
}

/// What is wrong with a key protector a call gave or the store holds.
#[derive(Debug, thiserror::Error)]
pub enum KeyProtectorError {
    #[error("the key protector is empty")]
    Empty,
    #[error("the key protector is {size} bytes, more than the {limit} allowed")]
    TooLarge { size: usize, limit: usize },
    /// It is not a `Protector` document of the profile.
    #[error("the key protector is malformed: {0}")]
    Malformed(#[source] vmsec_kp::Error),
    /// It parses, but a signature, a certificate chain or a structural rule fails.
    #[error("the key protector does not verify: {0}")]
    Unverified(#[source] vmsec_kp::Error),
    /// The stored key protector, read back to start a vTPM, does not parse.
    #[error("the stored key protector is malformed: {0}")]
    StoredMalformed(#[source] vmsec_kp::Error),
    #[error("rolling the key protector: {0}")]
    Roll(#[source] vmsec_kp::Error),
    /// Making, granting, revoking or unwrapping failed.
    #[error("{0}")]
    Operation(#[source] vmsec_kp::Error),
    #[error("the key protector has no owner")]
    NoOwner,
}
