//! The parsed shape of a `Protector`.

use crate::crypto::{Hkdf, KeyEncryption, Signature};

/// Namespace of the MS-KPS Protector and metadata schemas.
pub const NS_KPS: &str = "http://schemas.microsoft.com/kps/2014/07";

/// One wrapping of the transport key: a guardian's certificates, their
/// signatures, and the transport key encrypted to that guardian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapping {
    /// `Id`, unique within the protector.
    pub id: u32,
    /// `SigningCertificate`, DER.
    pub signing_cert: Vec<u8>,
    /// `SigningCertificateSignature/@ParentWrappingId`; equal to `id` for the owner.
    pub parent_id: u32,
    /// The parent's signature over `signing_cert`.
    pub signing_cert_signature: Signature,
    /// `EncryptionCertificate`, DER.
    pub encryption_cert: Vec<u8>,
    /// This wrapping's signing key's signature over `encryption_cert`.
    pub encryption_cert_signature: Signature,
    /// How the transport key is encrypted.
    pub key_encryption: KeyEncryption,
    /// `CipherValue`: the encrypted transport key.
    pub encrypted_key: Vec<u8>,
}

impl Wrapping {
    /// True for the owner's wrapping (its own parent).
    pub fn is_owner(&self) -> bool {
        self.parent_id == self.id
    }
}

/// `TransportKeySignature`: HMAC-SHA256 over canonical `<Wrappings>` under a key
/// derived from the transport key with HKDF-SHA256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportKeySignature {
    /// The key derivation parameters.
    pub kdf: Hkdf,
    /// The MAC.
    pub mac: Vec<u8>,
}

/// `GuardianSignature`: a wrapping's signing key over canonical `<Wrappings>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardianSignature {
    /// The signer's wrapping `Id`.
    pub wrapping_id: u32,
    /// The signature.
    pub signature: Signature,
}
