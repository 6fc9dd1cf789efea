//! Everything that can go wrong in a service call. [`crate::codes`] maps each to the one
//! return code a client sees.

use vmsec_store::StoreError;

/// Why a service call failed. The message is written for the person who made the call and
/// never holds key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    #[error("no VM {0}")]
    UnknownVm(String),
    #[error("{0}")]
    InvalidKeyProtector(String),
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
    Vtpm(String),
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
