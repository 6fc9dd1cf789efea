//! Why the services refused, and what each refusal is on the wire: the one place that maps a
//! refusal to its HTTP status and to the spec's error name.

/// A refused attestation: each variant is one of [MS-HGSA]'s `ErrorReply` subtypes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    /// The body is not an attestation request this endpoint takes (`PayloadErrorReply`).
    #[error("malformed attestation request: {0}")]
    Payload(String),
    /// The host key is not registered, was removed, or its signature does not verify
    /// (`UnauthorizedErrorReply`).
    #[error("{0}")]
    Unauthorized(String),
    /// TPM mode: the host's event log does not parse or does not replay to the PCRs its TPM
    /// quoted (`TcgLogValidationErrorReply`).
    #[error("{0}")]
    TcgLog(String),
    /// TPM mode: the host's PCRs match none of the fabric's baselines
    /// (`PolicyEvaluationErrorReply`).
    #[error("{0}")]
    Policy(String),
    /// The request went to an endpoint of another attestation mode
    /// (`OperationModeErrorReply`).
    #[error(
        "this Attestation Service attests with /Attestation/v2.0/hostkeyattest (host key) or /Attestation/v2.0/attest (TPM)"
    )]
    OperationMode,
    /// The service cannot answer now (its store); worth retrying (`UnavailableErrorReply`).
    #[error("the Attestation Service is unavailable: {0}")]
    Unavailable(String),
    /// This host key asked too often (`UnavailableErrorReply`, HTTP 429).
    #[error("too many requests for host {host}; retry in {retry_after_secs} s")]
    RateLimited { host: String, retry_after_secs: u64 },
}

impl AttestError {
    /// Seconds a client should wait before retrying, when it should.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AttestError::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            AttestError::Unavailable(_) => Some(1),
            _ => None,
        }
    }

    /// The `__type` name of the reply, without the `:#…` suffix.
    pub fn reply_type(&self) -> &'static str {
        match self {
            AttestError::Payload(_) => "PayloadErrorReply",
            AttestError::Unauthorized(_) => "UnauthorizedErrorReply",
            AttestError::TcgLog(_) => "TcgLogValidationErrorReply",
            AttestError::Policy(_) => "PolicyEvaluationErrorReply",
            AttestError::OperationMode => "OperationModeErrorReply",
            AttestError::Unavailable(_) | AttestError::RateLimited { .. } => {
                "UnavailableErrorReply"
            }
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            AttestError::Payload(_) | AttestError::OperationMode => 400,
            AttestError::Unauthorized(_) | AttestError::TcgLog(_) | AttestError::Policy(_) => 403,
            AttestError::Unavailable(_) => 503,
            AttestError::RateLimited { .. } => 429,
        }
    }

    /// The spec's `Retryable`: only a passing fault is.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            AttestError::Unavailable(_) | AttestError::RateLimited { .. }
        )
    }
}

/// A refused RollTransportKey: `Code` of the `<Error>` reply (docs/specs/kps.md).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// The body is not a RollTransportKeyRequest (`MalformedRequest`, vmsec's).
    #[error("malformed RollTransportKeyRequest: {0}")]
    Malformed(String),
    /// An algorithm URI this profile does not take (`UnsupportedAlgorithm`).
    #[error("unsupported {field}: {uri}")]
    UnsupportedAlgorithm { field: &'static str, uri: String },
    /// The health certificate is untrusted, expired, denied or its host removed
    /// (`HealthCertificateException`).
    #[error("health certificate refused: {0}")]
    HealthCertificate(String),
    /// The ingress protector is malformed, tampered with, or does not grant this fabric
    /// (`InvalidProtectorException`).
    #[error("invalid protector: {0}")]
    InvalidProtector(String),
    /// The fabric's wrapping in a well-signed protector does not open
    /// (`InvalidWrappingException`).
    #[error("invalid wrapping: {0}")]
    InvalidWrapping(String),
    /// The service cannot answer now (its store, its keys): worth retrying (`ServiceUnavailable`).
    #[error("the Key Protection Service is unavailable: {0}")]
    Unavailable(String),
    /// This host asked too often (`RateLimited`, vmsec's; HTTP 429).
    #[error("too many requests for host {host}; retry in {retry_after_secs} s")]
    RateLimited { host: String, retry_after_secs: u64 },
}

impl ReleaseError {
    /// Seconds a client should wait before retrying, when it should.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ReleaseError::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ReleaseError::Unavailable(_) => Some(1),
            _ => None,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ReleaseError::Malformed(_) => "MalformedRequest",
            ReleaseError::UnsupportedAlgorithm { .. } => "UnsupportedAlgorithm",
            ReleaseError::HealthCertificate(_) => "HealthCertificateException",
            ReleaseError::InvalidProtector(_) => "InvalidProtectorException",
            ReleaseError::InvalidWrapping(_) => "InvalidWrappingException",
            ReleaseError::Unavailable(_) => "ServiceUnavailable",
            ReleaseError::RateLimited { .. } => "RateLimited",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            ReleaseError::HealthCertificate(_) => 403,
            ReleaseError::Unavailable(_) => 503,
            ReleaseError::RateLimited { .. } => 429,
            _ => 400,
        }
    }
}
