//! Health certificates (docs/specs/kps.md, "Health certificate"): issued by the Attestation
//! Service over a host's IDK, checked by the Key Protection Service before any release.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _, UnparsedPublicKey};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyUsagePurpose,
    PKCS_RSA_SHA256, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use zeroize::Zeroizing;

/// Health certificates are valid from this long before they are issued, for hosts whose
/// clock is a little behind the service's.
pub const BACKDATE: Duration = Duration::minutes(5);
/// Their default lifetime after issue.
pub const DEFAULT_VALIDITY: Duration = Duration::hours(8);

/// The SAN URI scheme that names the host key a certificate was issued for.
pub const HOST_KEY_URN: &str = "urn:vmsec:host-key:";

/// sha256WithRSAEncryption, 1.2.840.113549.1.1.11
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";

/// Lowercase hex SHA-256: how a host key is named (its DER SubjectPublicKeyInfo's digest).
pub fn key_hash(spki_der: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The DER SubjectPublicKeyInfo of an RSA public key given as PEM (a public key or a
/// certificate) or DER (either), checked to be RSA of at least 2048 bits.
pub fn rsa_spki_from_pem_or_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let der = match std::str::from_utf8(bytes)
        .ok()
        .filter(|t| t.contains("-----BEGIN"))
    {
        Some(_) => {
            use rustls_pki_types::pem::PemObject;
            use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
            if let Ok(spki) = SubjectPublicKeyInfoDer::from_pem_slice(bytes) {
                spki.to_vec()
            } else if let Ok(cert) = CertificateDer::from_pem_slice(bytes) {
                cert_spki(&cert)?
            } else {
                return Err("no PEM PUBLIC KEY or CERTIFICATE in it".into());
            }
        }
        None => cert_spki(bytes).unwrap_or_else(|_| bytes.to_vec()),
    };
    check_rsa_spki(&der)?;
    Ok(der)
}

/// A certificate given as PEM or DER, as DER (checked to parse).
pub fn certificate_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let der = match std::str::from_utf8(bytes)
        .ok()
        .filter(|t| t.contains("-----BEGIN"))
    {
        Some(_) => CertificateDer::from_pem_slice(bytes)
            .map_err(|e| format!("no PEM CERTIFICATE in it: {e}"))?
            .to_vec(),
        None => bytes.to_vec(),
    };
    cert_spki(&der)?;
    Ok(der)
}

fn cert_spki(der: &[u8]) -> Result<Vec<u8>, String> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err("bytes after the certificate".into());
    }
    Ok(cert.public_key().raw.to_vec())
}

/// Checks a DER SubjectPublicKeyInfo holds an RSA key of at least 2048 bits.
pub fn check_rsa_spki(spki: &[u8]) -> Result<(), String> {
    let key = aws_lc_rs::rsa::PublicEncryptingKey::from_der(spki)
        .map_err(|_| "not an RSA public key (DER SubjectPublicKeyInfo)".to_owned())?;
    if key.key_size_bits() < 2048 {
        return Err(format!(
            "an RSA key of {} bits; at least 2048",
            key.key_size_bits()
        ));
    }
    Ok(())
}

/// The PKCS#1 RSAPublicKey inside a SubjectPublicKeyInfo (what signature verification takes).
fn rsa_public(spki: &[u8]) -> Result<Vec<u8>, String> {
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki)
        .map_err(|e| format!("SubjectPublicKeyInfo: {e}"))?;
    Ok(info.subject_public_key.data.to_vec())
}

/// RSASSA-PKCS1-v1_5 SHA-256 verification with a DER SubjectPublicKeyInfo.
pub fn verify_rsa_sha256(spki: &[u8], message: &[u8], sig: &[u8]) -> bool {
    rsa_public(spki).is_ok_and(|k| {
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, k)
            .verify(message, sig)
            .is_ok()
    })
}

/// Whether certificate `der` is signed (sha256WithRSAEncryption) by the key of certificate
/// `issuer_der` and names it as its issuer: one link of an EK certificate's chain.
pub fn signed_by(der: &[u8], issuer_der: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, issuer))) = (
        X509Certificate::from_der(der),
        X509Certificate::from_der(issuer_der),
    ) else {
        return false;
    };
    cert.signature_algorithm.algorithm.to_id_string() == SHA256_WITH_RSA
        && cert.issuer().as_raw() == issuer.subject().as_raw()
        && verify_rsa_sha256(
            issuer.public_key().raw,
            cert.tbs_certificate.as_ref(),
            &cert.signature_value.data,
        )
}

/// An RSA key with its self-signed certificate: the attestation signer, the communications
/// key. `Debug` shows the certificate only.
pub struct CertifiedKey {
    cert_der: Vec<u8>,
    pkcs8: Zeroizing<Vec<u8>>,
    key: KeyPair,
    /// The same key loaded for rcgen once: loading validates the RSA key, which costs more
    /// than the signature of a health certificate.
    signer: rcgen::KeyPair,
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("cert_sha256", &key_hash(&self.cert_der))
            .finish_non_exhaustive()
    }
}

fn random_serial() -> Result<(SerialNumber, String), String> {
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| "no randomness")?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01; // no leading zero byte: the serial reads back as all 16 bytes
    let hex = serial.iter().map(|b| format!("{b:02x}")).collect();
    Ok((SerialNumber::from_slice(&serial), hex))
}

fn rcgen_key(pkcs8: &[u8]) -> Result<rcgen::KeyPair, String> {
    let der = rustls_pki_der(pkcs8);
    rcgen::KeyPair::from_der_and_sign_algo(&der, &PKCS_RSA_SHA256)
        .map_err(|e| format!("loading the RSA key: {e}"))
}

fn rustls_pki_der(pkcs8: &[u8]) -> rustls_pki_types::PrivateKeyDer<'static> {
    rustls_pki_types::PrivateKeyDer::Pkcs8(pkcs8.to_vec().into())
}

impl CertifiedKey {
    /// A new key and self-signed certificate. `ca`: a certificate signer (CA:TRUE,
    /// keyCertSign), else a document signer (digitalSignature).
    pub fn generate(subject: &str, size: KeySize, ca: bool) -> Result<CertifiedKey, String> {
        let key = KeyPair::generate(size).map_err(|_| "RSA key generation failed")?;
        let pkcs8 = Zeroizing::new(
            key.as_der()
                .map_err(|_| "encoding the key")?
                .as_ref()
                .to_vec(),
        );
        let signer = rcgen_key(&pkcs8)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, subject);
        params.distinguished_name = dn;
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::DigitalSignature,
            ];
        } else {
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        }
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(3650);
        params.serial_number = Some(random_serial()?.0);
        let cert = params
            .self_signed(&signer)
            .map_err(|e| format!("building the certificate: {e}"))?;
        Ok(CertifiedKey {
            cert_der: cert.der().to_vec(),
            pkcs8,
            key,
            signer,
        })
    }

    /// From a stored certificate (DER) and PKCS#8 key, checked to belong together.
    pub fn from_parts(
        cert_der: Vec<u8>,
        pkcs8: Zeroizing<Vec<u8>>,
    ) -> Result<CertifiedKey, String> {
        let key = KeyPair::from_pkcs8(&pkcs8).map_err(|e| format!("the private key: {e}"))?;
        let spki = cert_spki(&cert_der)?;
        if rsa_public(&spki)? != key.public_key().as_ref() {
            return Err("the private key is not the certificate's".into());
        }
        let signer = rcgen_key(&pkcs8)?;
        Ok(CertifiedKey {
            cert_der,
            pkcs8,
            key,
            signer,
        })
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    pub fn pkcs8(&self) -> &Zeroizing<Vec<u8>> {
        &self.pkcs8
    }

    pub fn key_pair(&self) -> &KeyPair {
        &self.key
    }

    /// Issues a health certificate for `idk_spki` to the host registered as `host_name` with
    /// the host key of hash `host_key_hash`.
    pub fn issue(
        &self,
        host_name: &str,
        host_key_hash: &str,
        idk_spki: &[u8],
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<Issued, String> {
        let idk =
            rcgen::SubjectPublicKeyInfo::from_der(idk_spki).map_err(|e| format!("the IDK: {e}"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host_name);
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
        params.subject_alt_names = vec![SanType::URI(
            format!("{HOST_KEY_URN}{host_key_hash}")
                .try_into()
                .map_err(|_| "the host key URN")?,
        )];
        let (serial, serial_hex) = random_serial()?;
        params.serial_number = Some(serial);
        params.not_before = now - BACKDATE;
        params.not_after = now + validity;
        let ca = rustls_pki_types::CertificateDer::from(self.cert_der.clone());
        let issuer = Issuer::from_ca_cert_der(&ca, &self.signer)
            .map_err(|e| format!("the attestation signer's certificate: {e}"))?;
        let cert = params
            .signed_by(&idk, &issuer)
            .map_err(|e| format!("signing the health certificate: {e}"))?;
        Ok(Issued {
            der: cert.der().to_vec(),
            serial: serial_hex,
            not_after: params.not_after,
        })
    }
}

/// A health certificate just issued.
#[derive(Clone, Debug)]
pub struct Issued {
    pub der: Vec<u8>,
    pub serial: String,
    pub not_after: OffsetDateTime,
}

/// The end of a certificate's validity, read without checking anything else (a host reads its
/// cached health certificate's with it).
pub fn not_after(der: &[u8]) -> Option<OffsetDateTime> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).ok()
}

/// What a valid health certificate says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthClaims {
    /// The name the host was registered under.
    pub host_name: String,
    /// The host key's hash (`urn:vmsec:host-key:…`).
    pub host_key_hash: String,
    /// The certified key: released keys are encrypted to it.
    pub idk_spki: Vec<u8>,
    /// Lowercase hex.
    pub serial: String,
    /// When it was issued (`notBefore` + [`BACKDATE`]).
    pub issued: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// Checks `der` is a health certificate signed by one of `signers` (DER certificates) and
/// valid at `now`, and returns what it says.
pub fn verify(
    der: &[u8],
    signers: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<HealthClaims, String> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| format!("not X.509 DER: {e}"))?;
    if !rest.is_empty() {
        return Err("bytes after the certificate".into());
    }
    if cert.signature_algorithm.algorithm.to_id_string() != SHA256_WITH_RSA {
        return Err("not signed with sha256WithRSAEncryption".into());
    }
    let signed_by = signers.iter().find(|s| {
        X509Certificate::from_der(s).is_ok_and(|(_, signer)| {
            signer.subject().as_raw() == cert.issuer().as_raw()
                && verify_rsa_sha256(
                    signer.public_key().raw,
                    cert.tbs_certificate.as_ref(),
                    &cert.signature_value.data,
                )
        })
    });
    if signed_by.is_none() {
        return Err("not signed by a trusted attestation signer".into());
    }
    let ts = |t: x509_parser::time::ASN1Time| {
        OffsetDateTime::from_unix_timestamp(t.timestamp())
            .map_err(|_| "a validity time out of range".to_owned())
    };
    let not_before = ts(cert.validity().not_before)?;
    let not_after = ts(cert.validity().not_after)?;
    if now < not_before || now > not_after {
        return Err(format!(
            "valid from {not_before} to {not_after}, not now ({now})"
        ));
    }
    match cert.key_usage() {
        Ok(Some(ku)) if ku.value.key_encipherment() => {}
        _ => return Err("no keyUsage keyEncipherment".into()),
    }
    let host_key_hash = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|n| match n {
                GeneralName::URI(u) => u.strip_prefix(HOST_KEY_URN).map(str::to_owned),
                _ => None,
            })
        })
        .ok_or("no host key URN in the subjectAltName")?;
    let host_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or("no subject common name")?
        .to_owned();
    Ok(HealthClaims {
        host_name,
        host_key_hash,
        idk_spki: cert.public_key().raw.to_vec(),
        serial: cert
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        issued: not_before + BACKDATE,
        not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idk_spki() -> Vec<u8> {
        let kp = KeyPair::generate(KeySize::Rsa2048).unwrap();
        kp.public_key().as_der().unwrap().as_ref().to_vec()
    }

    #[test]
    fn an_issued_certificate_verifies_and_says_who_and_what() {
        let signer =
            CertifiedKey::generate("vmsec attestation signer", KeySize::Rsa2048, true).unwrap();
        let idk = idk_spki();
        let now = OffsetDateTime::now_utc();
        let issued = signer
            .issue("h1", "ab12", &idk, now, DEFAULT_VALIDITY)
            .unwrap();
        let claims = verify(&issued.der, &[signer.cert_der().to_vec()], now).unwrap();
        assert_eq!(claims.host_name, "h1");
        assert_eq!(claims.host_key_hash, "ab12");
        assert_eq!(claims.idk_spki, idk);
        assert_eq!(claims.serial, issued.serial);
        assert!((claims.issued - now).abs() < Duration::seconds(2));
    }

    #[test]
    fn another_signer_an_expired_one_or_a_changed_byte_is_refused() {
        let signer = CertifiedKey::generate("s", KeySize::Rsa2048, true).unwrap();
        let other = CertifiedKey::generate("s", KeySize::Rsa2048, true).unwrap();
        let now = OffsetDateTime::now_utc();
        let issued = signer
            .issue("h1", "ab", &idk_spki(), now, DEFAULT_VALIDITY)
            .unwrap();
        let trusted = [signer.cert_der().to_vec()];
        assert!(
            verify(&issued.der, &[other.cert_der().to_vec()], now)
                .unwrap_err()
                .contains("trusted")
        );
        assert!(
            verify(&issued.der, &trusted, now + Duration::hours(9))
                .unwrap_err()
                .contains("not now")
        );
        assert!(verify(&issued.der, &trusted, now - Duration::minutes(6)).is_err());
        let mut tampered = issued.der.clone();
        let at = tampered.len() / 2;
        tampered[at] ^= 1;
        assert!(verify(&tampered, &trusted, now).is_err());
    }

    #[test]
    fn host_keys_read_from_pem_der_or_a_certificate_and_small_keys_are_refused() {
        let signer = CertifiedKey::generate("s", KeySize::Rsa2048, false).unwrap();
        let from_cert = rsa_spki_from_pem_or_der(signer.cert_der()).unwrap();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            crate::msgs::b64(&from_cert)
        );
        assert_eq!(rsa_spki_from_pem_or_der(pem.as_bytes()).unwrap(), from_cert);
        assert!(rsa_spki_from_pem_or_der(b"junk").is_err());
        let small = KeyPair::generate(KeySize::Rsa2048).unwrap();
        assert!(check_rsa_spki(small.public_key().as_der().unwrap().as_ref()).is_ok());
    }
}
