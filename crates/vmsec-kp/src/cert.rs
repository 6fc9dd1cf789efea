//! Reading guardian certificates: the RSA keys inside, key usage, and the
//! facts shown to people (subject, thumbprints, validity, key size).

use aws_lc_rs::{digest, rsa};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{CertRole, Error, Result};

/// The parts of a certificate this crate computes with.
#[derive(Debug, Clone)]
pub(crate) struct CertKeys {
    /// SubjectPublicKeyInfo DER (for RSA-OAEP encryption).
    pub spki: Vec<u8>,
    /// PKCS#1 RSAPublicKey DER (for signature verification).
    pub rsa_public: Vec<u8>,
}

fn parse(der: &[u8], role: CertRole, wrapping: Option<u32>) -> Result<X509Certificate<'_>> {
    let invalid = |detail: String| Error::InvalidCertificate {
        wrapping,
        role,
        detail,
    };
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| invalid(format!("not X.509 DER: {e}")))?;
    if !rest.is_empty() {
        return Err(invalid(format!(
            "{} bytes after the certificate",
            rest.len()
        )));
    }
    Ok(cert)
}

/// Parses a guardian certificate, checks it holds an RSA key usable in `role`,
/// and returns that key.
pub(crate) fn keys(der: &[u8], role: CertRole, wrapping: Option<u32>) -> Result<CertKeys> {
    let cert = parse(der, role, wrapping)?;
    let spki = cert.public_key();
    if rsa::PublicEncryptingKey::from_der(spki.raw).is_err() {
        return Err(Error::InvalidCertificate {
            wrapping,
            role,
            detail: "key is not an RSA public key".into(),
        });
    }
    // Certificates without a key usage extension are unrestricted (RFC 5280 §4.2.1.3).
    if let Ok(Some(ku)) = cert.key_usage() {
        let (ok, usage) = match role {
            CertRole::Encryption => (ku.value.key_encipherment(), "keyEncipherment"),
            CertRole::Signing => (ku.value.digital_signature(), "digitalSignature"),
        };
        if !ok {
            return Err(Error::WrongKeyUsage {
                wrapping,
                role,
                usage,
            });
        }
    }
    Ok(CertKeys {
        spki: spki.raw.to_vec(),
        rsa_public: spki.subject_public_key.data.to_vec(),
    })
}

/// Whether a certificate holds an RSA key its key usage allows in `role` (a certificate
/// without a key usage extension is unrestricted, so usable in both).
pub fn usable_for(der: &[u8], role: CertRole) -> bool {
    keys(der, role, None).is_ok()
}

/// What a person needs to recognise a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject distinguished name, e.g. `CN=Shielded VM Signing Certificate (host1)`.
    pub subject: String,
    /// Issuer distinguished name (equal to the subject for self-signed certificates).
    pub issuer: String,
    /// SHA-1 of the DER, uppercase hex without separators: the "Thumbprint" Windows shows.
    pub thumbprint_sha1: String,
    /// SHA-256 of the DER, uppercase hex without separators.
    pub fingerprint_sha256: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// RSA modulus size in bits.
    pub key_bits: usize,
}

impl CertInfo {
    /// Reads the facts of a DER certificate.
    pub fn from_der(der: &[u8], role: CertRole) -> Result<Self> {
        let cert = parse(der, role, None)?;
        let key_bits = rsa::PublicEncryptingKey::from_der(cert.public_key().raw)
            .map_err(|_| Error::InvalidCertificate {
                wrapping: None,
                role,
                detail: "key is not an RSA public key".into(),
            })?
            .key_size_bits();
        let time = |t: i64| {
            OffsetDateTime::from_unix_timestamp(t).map_err(|_| Error::InvalidCertificate {
                wrapping: None,
                role,
                detail: "validity out of range".into(),
            })
        };
        Ok(Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            thumbprint_sha1: hex_upper(
                digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref(),
            ),
            fingerprint_sha256: hex_upper(digest::digest(&digest::SHA256, der).as_ref()),
            not_before: time(cert.validity().not_before.timestamp())?,
            not_after: time(cert.validity().not_after.timestamp())?,
            key_bits,
        })
    }
}

/// Uppercase hex, as Windows shows thumbprints.
pub fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}
