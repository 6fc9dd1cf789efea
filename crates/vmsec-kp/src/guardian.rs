//! Guardians: an encryption and a signing certificate, the encryption
//! certificate's signature by the signing key, and optionally both private keys.

use std::fmt;
use std::sync::{Arc, OnceLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa;
use aws_lc_rs::signature::KeyPair as _;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyUsagePurpose, SerialNumber};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::cert::{self, CertInfo};
use crate::crypto::{Signature, sign_rsa_sha256};
use crate::error::{CertRole, Error, Result, SignatureKind};
use crate::pem;

/// RSA modulus sizes a new guardian can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeySize {
    /// 2048 bits (the default, as Hyper-V).
    #[default]
    Rsa2048,
    /// 3072 bits.
    Rsa3072,
    /// 4096 bits.
    Rsa4096,
}

impl KeySize {
    fn aws(self) -> rsa::KeySize {
        match self {
            Self::Rsa2048 => rsa::KeySize::Rsa2048,
            Self::Rsa3072 => rsa::KeySize::Rsa3072,
            Self::Rsa4096 => rsa::KeySize::Rsa4096,
        }
    }
}

/// How long generated certificates are valid (Hyper-V's own shielding certificates use 10 years).
const VALIDITY_DAYS: i64 = 3650;

/// A guardian's two private keys, PKCS#8 DER, zeroized on drop.
#[derive(Clone)]
pub struct PrivateKeys {
    encryption: Zeroizing<Vec<u8>>,
    signing: Zeroizing<Vec<u8>>,
    /// The keys loaded into aws-lc once: loading validates an RSA key, which costs more
    /// than the decryption or signature it is loaded for.
    loaded: OnceLock<Arc<Loaded>>,
}

struct Loaded {
    encryption: rsa::OaepPrivateDecryptingKey,
    signing: rsa::KeyPair,
}

impl PrivateKeys {
    /// From PKCS#8 DER (encryption key, signing key).
    pub fn from_pkcs8_der(encryption: Zeroizing<Vec<u8>>, signing: Zeroizing<Vec<u8>>) -> Self {
        Self {
            encryption,
            signing,
            loaded: OnceLock::new(),
        }
    }

    /// From PKCS#8 PEM text (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(encryption: &str, signing: &str) -> Result<Self> {
        Ok(Self::from_pkcs8_der(
            pem::decode(pem::PRIVATE_KEY, encryption)?,
            pem::decode(pem::PRIVATE_KEY, signing)?,
        ))
    }

    fn loaded(&self) -> Result<&Loaded> {
        if let Some(l) = self.loaded.get() {
            return Ok(l);
        }
        let invalid = |role| {
            move |e: aws_lc_rs::error::KeyRejected| Error::InvalidPrivateKey {
                role,
                detail: e.to_string(),
            }
        };
        let encryption = rsa::PrivateDecryptingKey::from_pkcs8(&self.encryption)
            .map_err(invalid(CertRole::Encryption))
            .and_then(|k| {
                rsa::OaepPrivateDecryptingKey::new(k).map_err(|_| Error::InvalidPrivateKey {
                    role: CertRole::Encryption,
                    detail: "not usable for RSA-OAEP".into(),
                })
            })?;
        let signing =
            rsa::KeyPair::from_pkcs8(&self.signing).map_err(invalid(CertRole::Signing))?;
        Ok(self.loaded.get_or_init(|| {
            Arc::new(Loaded {
                encryption,
                signing,
            })
        }))
    }
}

impl fmt::Debug for PrivateKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeys(<secret>)")
    }
}

/// A guardian (or owner): who may unwrap a key protector.
#[derive(Clone)]
pub struct Guardian {
    name: String,
    encryption_cert: Vec<u8>,
    signing_cert: Vec<u8>,
    encryption_cert_signature: Signature,
    keys: Option<PrivateKeys>,
}

impl fmt::Debug for Guardian {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guardian")
            .field("name", &self.name)
            .field("has_private_keys", &self.keys.is_some())
            .finish_non_exhaustive()
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(Error::InvalidName(
            "must be 1 to 200 bytes without control characters".into(),
        ));
    }
    Ok(())
}

fn self_signed(kp: &rsa::KeyPair, subject: &str, usage: KeyUsagePurpose) -> Result<Vec<u8>> {
    let pkcs8 = Zeroizing::new(
        kp.as_der()
            .map_err(|_| Error::Crypto("encoding RSA key"))?
            .as_ref()
            .to_vec(),
    );
    let key_pem = pem::encode(pem::PRIVATE_KEY, &pkcs8);
    let signer = rcgen::KeyPair::from_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256)
        .map_err(|_| Error::Crypto("loading RSA key into the certificate builder"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, subject);
    params.distinguished_name = dn;
    params.key_usages = vec![usage];
    let now = OffsetDateTime::now_utc();
    // Backdated a day so hosts with a slightly slow clock accept it at once.
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(VALIDITY_DAYS);
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| Error::Crypto("random number generator"))?;
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = params
        .self_signed(&signer)
        .map_err(|_| Error::Crypto("building certificate"))?;
    Ok(cert.der().to_vec())
}

fn generate_key(size: KeySize) -> Result<(rsa::KeyPair, Zeroizing<Vec<u8>>)> {
    let kp = rsa::KeyPair::generate(size.aws()).map_err(|_| Error::Crypto("RSA key generation"))?;
    let der = Zeroizing::new(
        kp.as_der()
            .map_err(|_| Error::Crypto("encoding RSA key"))?
            .as_ref()
            .to_vec(),
    );
    Ok((kp, der))
}

/// Checks that a PKCS#8 key is the private half of a certificate's key.
fn check_pair(pkcs8: &[u8], cert_der: &[u8], role: CertRole) -> Result<()> {
    let keys = cert::keys(cert_der, role, None)?;
    let kp = rsa::KeyPair::from_pkcs8(pkcs8).map_err(|e| Error::InvalidPrivateKey {
        role,
        detail: e.to_string(),
    })?;
    if kp.public_key().as_ref() != keys.rsa_public.as_slice() {
        return Err(Error::KeyMismatch { role });
    }
    Ok(())
}

impl Guardian {
    /// Makes a new guardian: two RSA keys of `size` and their self-signed certificates.
    pub fn generate(name: &str, size: KeySize) -> Result<Self> {
        check_name(name)?;
        let (enc_kp, enc_der) = generate_key(size)?;
        let (sign_kp, sign_der) = generate_key(size)?;
        let encryption_cert = self_signed(
            &enc_kp,
            &format!("Shielded VM Encryption Certificate ({name})"),
            KeyUsagePurpose::KeyEncipherment,
        )?;
        let signing_cert = self_signed(
            &sign_kp,
            &format!("Shielded VM Signing Certificate ({name})"),
            KeyUsagePurpose::DigitalSignature,
        )?;
        let keys = PrivateKeys::from_pkcs8_der(enc_der, sign_der);
        let encryption_cert_signature = sign_rsa_sha256(&keys.loaded()?.signing, &encryption_cert)?;
        Ok(Self {
            name: name.to_owned(),
            encryption_cert,
            signing_cert,
            encryption_cert_signature,
            keys: Some(keys),
        })
    }

    /// Assembles a guardian from certificates (DER) and, when known, the encryption
    /// certificate's signature and the private keys. Without private keys the
    /// signature is required (only the guardian's signing key can make it); with
    /// them it is made if absent. Everything given is checked.
    pub fn from_parts(
        name: &str,
        encryption_cert_der: Vec<u8>,
        signing_cert_der: Vec<u8>,
        encryption_cert_signature: Option<Signature>,
        keys: Option<PrivateKeys>,
    ) -> Result<Self> {
        check_name(name)?;
        cert::keys(&encryption_cert_der, CertRole::Encryption, None)?;
        let signing = cert::keys(&signing_cert_der, CertRole::Signing, None)?;
        if let Some(keys) = &keys {
            check_pair(&keys.encryption, &encryption_cert_der, CertRole::Encryption)?;
            check_pair(&keys.signing, &signing_cert_der, CertRole::Signing)?;
        }
        let encryption_cert_signature = match (encryption_cert_signature, &keys) {
            (Some(sig), _) => sig,
            (None, Some(keys)) => sign_rsa_sha256(&keys.loaded()?.signing, &encryption_cert_der)?,
            (None, None) => {
                return Err(Error::MissingPrivateKey {
                    guardian: name.to_owned(),
                });
            }
        };
        if !encryption_cert_signature.algorithm.verify(
            &signing.rsa_public,
            &encryption_cert_der,
            &encryption_cert_signature.value,
        ) {
            return Err(Error::BadSignature {
                kind: SignatureKind::EncryptionCertificate,
                wrapping: None,
            });
        }
        Ok(Self {
            name: name.to_owned(),
            encryption_cert: encryption_cert_der,
            signing_cert: signing_cert_der,
            encryption_cert_signature,
            keys,
        })
    }

    /// The same guardian with private keys attached (checked against the certificates).
    pub fn with_private_keys(self, keys: PrivateKeys) -> Result<Self> {
        check_pair(
            &keys.encryption,
            &self.encryption_cert,
            CertRole::Encryption,
        )?;
        check_pair(&keys.signing, &self.signing_cert, CertRole::Signing)?;
        Ok(Self {
            keys: Some(keys),
            ..self
        })
    }

    /// The same guardian without private keys: what others may hold.
    pub fn public(&self) -> Self {
        Self {
            keys: None,
            ..self.clone()
        }
    }

    /// The guardian's local name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True when this guardian can unwrap and sign.
    pub fn has_private_keys(&self) -> bool {
        self.keys.is_some()
    }

    /// Encryption certificate, DER.
    pub fn encryption_cert_der(&self) -> &[u8] {
        &self.encryption_cert
    }

    /// Signing certificate, DER.
    pub fn signing_cert_der(&self) -> &[u8] {
        &self.signing_cert
    }

    /// Encryption certificate, PEM.
    pub fn encryption_cert_pem(&self) -> String {
        pem::encode(pem::CERTIFICATE, &self.encryption_cert).to_string()
    }

    /// Signing certificate, PEM.
    pub fn signing_cert_pem(&self) -> String {
        pem::encode(pem::CERTIFICATE, &self.signing_cert).to_string()
    }

    /// The signing key's signature over the encryption certificate DER.
    pub fn encryption_cert_signature(&self) -> &Signature {
        &self.encryption_cert_signature
    }

    /// Facts about the encryption certificate.
    pub fn encryption_cert_info(&self) -> Result<CertInfo> {
        CertInfo::from_der(&self.encryption_cert, CertRole::Encryption)
    }

    /// Facts about the signing certificate.
    pub fn signing_cert_info(&self) -> Result<CertInfo> {
        CertInfo::from_der(&self.signing_cert, CertRole::Signing)
    }

    /// Both private keys as PKCS#8 PEM: (encryption key, signing key).
    pub fn export_private_pkcs8_pem(&self) -> Result<(Zeroizing<String>, Zeroizing<String>)> {
        let keys = self.private_keys()?;
        Ok((
            pem::encode(pem::PRIVATE_KEY, &keys.encryption),
            pem::encode(pem::PRIVATE_KEY, &keys.signing),
        ))
    }

    fn private_keys(&self) -> Result<&PrivateKeys> {
        self.keys.as_ref().ok_or_else(|| Error::MissingPrivateKey {
            guardian: self.name.clone(),
        })
    }

    /// The signing key, loaded once.
    pub(crate) fn signing_key(&self) -> Result<&rsa::KeyPair> {
        Ok(&self.private_keys()?.loaded()?.signing)
    }

    /// The encryption key, loaded once.
    pub(crate) fn encryption_key(&self) -> Result<&rsa::OaepPrivateDecryptingKey> {
        Ok(&self.private_keys()?.loaded()?.encryption)
    }
}

/// Reads a certificate given as PEM or DER (detected by the PEM armour).
pub fn cert_der_from_pem_or_der(bytes: &[u8]) -> Result<Vec<u8>> {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN") => {
            Ok(pem::decode(pem::CERTIFICATE, text)?.to_vec())
        }
        _ => Ok(bytes.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_guardian_has_profile_subjects_key_usage_and_size() {
        let g = Guardian::generate("host1", KeySize::Rsa2048).expect("generates");
        let enc = g.encryption_cert_info().expect("parses");
        let sign = g.signing_cert_info().expect("parses");
        assert_eq!(enc.subject, "CN=Shielded VM Encryption Certificate (host1)");
        assert_eq!(sign.subject, "CN=Shielded VM Signing Certificate (host1)");
        assert_eq!(enc.issuer, enc.subject);
        assert_eq!(enc.key_bits, 2048);
        assert_eq!(enc.thumbprint_sha1.len(), 40);
        assert!(
            enc.thumbprint_sha1
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
        assert_eq!(enc.fingerprint_sha256.len(), 64);
        assert!(enc.not_before < enc.not_after);
        // Role checks use the key usage extension: swapping the roles must fail.
        assert!(matches!(
            cert::keys(g.encryption_cert_der(), CertRole::Signing, None),
            Err(Error::WrongKeyUsage {
                usage: "digitalSignature",
                ..
            })
        ));
        assert!(matches!(
            cert::keys(g.signing_cert_der(), CertRole::Encryption, None),
            Err(Error::WrongKeyUsage {
                usage: "keyEncipherment",
                ..
            })
        ));
    }

    #[test]
    fn larger_key_sizes_are_generated_on_request() {
        let g = Guardian::generate("big", KeySize::Rsa3072).expect("generates");
        assert_eq!(g.signing_cert_info().expect("parses").key_bits, 3072);
        assert_eq!(g.encryption_cert_info().expect("parses").key_bits, 3072);
    }

    #[test]
    fn names_must_be_printable_and_bounded() {
        for bad in ["", "a\nb", &"x".repeat(201)] {
            assert!(matches!(
                Guardian::generate(bad, KeySize::Rsa2048),
                Err(Error::InvalidName(_))
            ));
        }
    }

    #[test]
    fn private_keys_round_trip_through_pem_and_must_match_the_certificates() {
        let a = Guardian::generate("a", KeySize::Rsa2048).expect("generates");
        let b = Guardian::generate("b", KeySize::Rsa2048).expect("generates");
        let (enc, sign) = a.export_private_pkcs8_pem().expect("has keys");
        assert!(enc.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let back = a
            .public()
            .with_private_keys(PrivateKeys::from_pkcs8_pem(&enc, &sign).expect("pem"))
            .expect("matches");
        assert!(back.has_private_keys());
        let wrong = b
            .public()
            .with_private_keys(PrivateKeys::from_pkcs8_pem(&enc, &sign).expect("pem"));
        assert!(matches!(
            wrong,
            Err(Error::KeyMismatch {
                role: CertRole::Encryption
            })
        ));
    }

    #[test]
    fn from_parts_needs_the_encryption_certificate_signature_or_the_keys() {
        let a = Guardian::generate("a", KeySize::Rsa2048).expect("generates");
        let enc = a.encryption_cert_der().to_vec();
        let sign = a.signing_cert_der().to_vec();
        assert!(matches!(
            Guardian::from_parts("a", enc.clone(), sign.clone(), None, None),
            Err(Error::MissingPrivateKey { .. })
        ));
        let mut bad = a.encryption_cert_signature().clone();
        if let Some(b) = bad.value.last_mut() {
            *b ^= 1;
        }
        assert!(matches!(
            Guardian::from_parts("a", enc.clone(), sign.clone(), Some(bad), None),
            Err(Error::BadSignature {
                kind: SignatureKind::EncryptionCertificate,
                ..
            })
        ));
        let public = Guardian::from_parts(
            "a",
            enc,
            sign,
            Some(a.encryption_cert_signature().clone()),
            None,
        )
        .expect("valid");
        assert!(!public.has_private_keys());
        assert!(matches!(
            public.export_private_pkcs8_pem(),
            Err(Error::MissingPrivateKey { .. })
        ));
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let g = Guardian::generate("dbg", KeySize::Rsa2048).expect("generates");
        let (enc, _) = g.export_private_pkcs8_pem().expect("keys");
        let body_line = enc.lines().nth(1).unwrap_or_default().to_owned();
        let shown = format!("{g:?}");
        assert!(!shown.contains(&body_line));
        assert!(shown.contains("dbg"));
    }

    #[test]
    fn certificates_load_from_pem_and_der() {
        let g = Guardian::generate("p", KeySize::Rsa2048).expect("generates");
        let from_pem =
            cert_der_from_pem_or_der(g.signing_cert_pem().as_bytes()).expect("pem decodes");
        assert_eq!(from_pem, g.signing_cert_der());
        assert_eq!(
            cert_der_from_pem_or_der(g.signing_cert_der()).expect("der passes"),
            g.signing_cert_der()
        );
    }
}
