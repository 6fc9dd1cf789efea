#![forbid(unsafe_code)]
//! The guarded fabric of vmsec (docs/specs/kps.md): the Attestation Service of [MS-HGSA] in
//! host-key mode, the Key Protection Service of [MS-KPS] (RollTransportKey, metadata), and
//! the host side of both.
//!
//! Sans-IO, like `vmsec-wsman`'s engine: functions take a request's bytes, the time and a
//! [`Registry`] view of the fabric's state, and return the reply's bytes with what to audit.
//! The HTTP shell, the store and the audit log belong to the caller.
//!
//! - [`msgs`]: the wire codecs (JSON, XML, PKCS#7), nothing else.
//! - [`health`]: health certificates, issued and checked.
//! - [`transport`]: the TransportKey blob and its encryption to the host's IDK.
//! - [`fabric`]: the services' processing rules.
//! - [`tpm`]: TPM mode: the EK, AK and IDK a host's TPM proves, its quote and event log.
//! - [`host`]: the host key, the IDK, building requests and opening releases.

mod error;
pub mod fabric;
pub mod health;
pub mod host;
pub mod msgs;
pub mod tpm;
pub mod transport;

pub use error::{AttestError, ReleaseError};
pub use fabric::{AttestationService, KeyProtection, RegisteredHost, Registry};
pub use health::{CertifiedKey, key_hash};
pub use msgs::roll::Version;
