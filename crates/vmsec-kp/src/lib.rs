#![forbid(unsafe_code)]
//! vmsec key protectors: guardians, the MS-KPS `Protector` format of
//! `docs/specs/key-protector.md`, and guardian `metadata.xml`.
//!
//! Pure library: bytes in, bytes out; no files, no network, no async.
//!
//! - [`Guardian`]: two RSA certificates (encryption, signing), optionally with
//!   their PKCS#8 private keys.
//! - [`Protector`]: parse, verify, create, unwrap, grant, revoke, roll.
//! - [`export_metadata`] / [`import_metadata`]: guardians as MS-KPS metadata.
//! - [`c14n`]: the exclusive canonicalization the signatures are computed over.

pub mod c14n;
mod cert;
pub mod crypto;
mod error;
mod guardian;
mod metadata;
mod pem;
mod protector;
mod xml;

pub use cert::{CertInfo, hex_upper, usable_for};
pub use crypto::{Hash, Hkdf, KeyEncryption, Signature, SignatureAlgorithm, TransportKey};
pub use error::{CertRole, Error, Result, SignatureKind};
pub use guardian::{Guardian, KeySize, PrivateKeys, cert_der_from_pem_or_der};
pub use metadata::{export_metadata, export_metadata_signed_by, import_metadata};
pub use protector::{
    GuardianSignature, NS_KPS, Protector, Rolled, TransportKeySignature, Wrapping,
};
pub use xml::{MAX_ATTRIBUTES, MAX_DEPTH, MAX_INPUT_BYTES, MAX_NAMESPACE_DECLARATIONS};
