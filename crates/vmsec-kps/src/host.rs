//! The host side, sans-IO: the host key that proves a host is a registered one, the IDK that
//! released keys are encrypted to, and the requests and replies of both services.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use zeroize::Zeroizing;

use crate::msgs::attestation::{self, HostKeyRequest};
use crate::msgs::roll::{self, Version};
use crate::transport::{self, EncryptedKeys, TransportKeys};

fn generate(bits: KeySize) -> Result<Zeroizing<Vec<u8>>, String> {
    let kp = KeyPair::generate(bits).map_err(|_| "RSA key generation failed")?;
    Ok(Zeroizing::new(
        kp.as_der()
            .map_err(|_| "encoding the key")?
            .as_ref()
            .to_vec(),
    ))
}

/// The host key (RSA, host-key attestation). `Debug` shows its public half's hash only.
pub struct HostKey {
    pkcs8: Zeroizing<Vec<u8>>,
    key: KeyPair,
    spki: Vec<u8>,
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostKey")
            .field("key_hash", &crate::key_hash(&self.spki))
            .finish_non_exhaustive()
    }
}

impl HostKey {
    pub fn generate() -> Result<HostKey, String> {
        HostKey::from_pkcs8(generate(KeySize::Rsa3072)?)
    }

    pub fn from_pkcs8(pkcs8: Zeroizing<Vec<u8>>) -> Result<HostKey, String> {
        let key = KeyPair::from_pkcs8(&pkcs8).map_err(|e| format!("the host key: {e}"))?;
        let spki = key
            .public_key()
            .as_der()
            .map_err(|_| "encoding the host key")?
            .as_ref()
            .to_vec();
        Ok(HostKey { pkcs8, key, spki })
    }

    pub fn pkcs8(&self) -> &Zeroizing<Vec<u8>> {
        &self.pkcs8
    }

    /// DER SubjectPublicKeyInfo.
    pub fn public_key(&self) -> &[u8] {
        &self.spki
    }

    /// The public key as PEM, what `kps host add` registers.
    pub fn public_key_pem(&self) -> String {
        let b64 = crate::msgs::b64(&self.spki);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64"))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// The `AttestationRequest` asking a health certificate for `idk`.
    pub fn attestation_request(&self, idk: &Idk) -> Result<Vec<u8>, String> {
        let signed = [self.spki.as_slice(), idk.public_key()].concat();
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                &signed,
                &mut signature,
            )
            .map_err(|_| "signing with the host key failed")?;
        let mut session = [0u8; 16];
        aws_lc_rs::rand::fill(&mut session).map_err(|_| "no randomness")?;
        Ok(attestation::host_key_request(
            &session,
            &HostKeyRequest {
                host_key: self.spki.clone(),
                idk: idk.public_key().to_vec(),
                signature,
            },
        ))
    }
}

/// The host identity key (RSA 2048): what health certificates certify and released keys are
/// encrypted to.
pub struct Idk {
    pkcs8: Zeroizing<Vec<u8>>,
    key: OaepPrivateDecryptingKey,
    spki: Vec<u8>,
}

impl std::fmt::Debug for Idk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idk")
            .field("key_hash", &crate::key_hash(&self.spki))
            .finish_non_exhaustive()
    }
}

impl Idk {
    pub fn generate() -> Result<Idk, String> {
        Idk::from_pkcs8(generate(KeySize::Rsa2048)?)
    }

    pub fn from_pkcs8(pkcs8: Zeroizing<Vec<u8>>) -> Result<Idk, String> {
        let private =
            PrivateDecryptingKey::from_pkcs8(&pkcs8).map_err(|e| format!("the IDK: {e}"))?;
        let spki = private
            .public_key()
            .as_der()
            .map_err(|_| "encoding the IDK")?
            .as_ref()
            .to_vec();
        let key =
            OaepPrivateDecryptingKey::new(private).map_err(|_| "the IDK is not an RSA key")?;
        Ok(Idk { pkcs8, key, spki })
    }

    pub fn pkcs8(&self) -> &Zeroizing<Vec<u8>> {
        &self.pkcs8
    }

    pub fn public_key(&self) -> &[u8] {
        &self.spki
    }
}

/// What a RollTransportKey reply gave the host.
#[derive(Debug)]
pub struct Release {
    /// The rolled protector, to commit once the vTPM runs.
    pub egress: Vec<u8>,
    pub keys: TransportKeys,
}

/// The request body of RollTransportKey.
pub fn roll_request(ingress: &[u8], health_certificate: &[u8]) -> String {
    roll::write_request(&roll::RollRequest {
        ingress: ingress.to_vec(),
        health_certificate: health_certificate.to_vec(),
    })
}

/// [`open_release`] for an IDK held elsewhere (a TPM): `rsa_oaep` decrypts the transfer key.
pub fn open_release_with(
    rsa_oaep: &mut transport::RsaOaepDecrypt<'_>,
    version: Version,
    body: &[u8],
) -> Result<Release, String> {
    let r = roll::parse_response(body)?;
    let keys = transport::decrypt_with(
        rsa_oaep,
        version,
        &EncryptedKeys {
            transfer_key: r.encrypted_transfer_key,
            wrapping_key: r.encrypted_wrapping_key,
            transport_keys: r.encrypted_transport_keys,
        },
    )?;
    Ok(Release {
        egress: r.egress,
        keys,
    })
}

/// Decodes a successful RollTransportKey reply and decrypts its keys with the IDK.
pub fn open_release(idk: &Idk, version: Version, body: &[u8]) -> Result<Release, String> {
    let r = roll::parse_response(body)?;
    let keys = transport::decrypt(
        &idk.key,
        version,
        &EncryptedKeys {
            transfer_key: r.encrypted_transfer_key,
            wrapping_key: r.encrypted_wrapping_key,
            transport_keys: r.encrypted_transport_keys,
        },
    )?;
    Ok(Release {
        egress: r.egress,
        keys,
    })
}
