//! The algorithms of the profile, named by their URIs, and the aws-lc-rs
//! operations behind them.

use std::fmt;

use aws_lc_rs::{digest, hkdf, hmac, rand, rsa, signature};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// `ds:` namespace (XML-DSig 1.0).
pub const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
/// `xenc11:` namespace (XML Encryption 1.1).
pub const NS_XENC11: &str = "http://www.w3.org/2009/xmlenc11#";
/// vmsec's own parameter namespace.
pub const NS_VMSEC: &str = "urn:vmsec:kp:v1";

/// RSA-OAEP (XML Encryption 1.1).
pub const URI_RSA_OAEP: &str = "http://www.w3.org/2009/xmlenc11#rsa-oaep";
/// RSA-OAEP with MGF1-SHA1 (XML Encryption 1.0).
pub const URI_RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
/// RSASSA-PKCS1-v1_5 with SHA-1 (read only).
pub const URI_RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
/// RSASSA-PKCS1-v1_5 with SHA-256.
pub const URI_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
/// RSASSA-PKCS1-v1_5 with SHA-384.
pub const URI_RSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384";
/// RSASSA-PKCS1-v1_5 with SHA-512.
pub const URI_RSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";
/// HKDF key derivation.
pub const URI_HKDF: &str = "http://www.w3.org/2021/04/xmldsig-more#hkdf";
/// HMAC-SHA256.
pub const URI_HMAC_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256";
/// SHA-1 digest.
pub const URI_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
/// SHA-256 digest.
pub const URI_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
/// SHA-384 digest.
pub const URI_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#sha384";
/// SHA-512 digest.
pub const URI_SHA512: &str = "http://www.w3.org/2001/04/xmlenc#sha512";
/// MGF1 with SHA-1.
pub const URI_MGF1_SHA1: &str = "http://www.w3.org/2009/xmlenc11#mgf1sha1";
/// MGF1 with SHA-256.
pub const URI_MGF1_SHA256: &str = "http://www.w3.org/2009/xmlenc11#mgf1sha256";
/// MGF1 with SHA-384.
pub const URI_MGF1_SHA384: &str = "http://www.w3.org/2009/xmlenc11#mgf1sha384";
/// MGF1 with SHA-512.
pub const URI_MGF1_SHA512: &str = "http://www.w3.org/2009/xmlenc11#mgf1sha512";

/// The HKDF `info` vmsec writes for the transport key signature.
pub const TKS_INFO: &[u8] = b"vmsec kp transport key signature v1";

/// Hash functions that appear as digest or MGF parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SHA-1 (legacy: OAEP default, old signatures).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Hash {
    /// Reads a digest method URI.
    pub fn from_digest_uri(uri: &str) -> Option<Self> {
        Some(match uri {
            URI_SHA1 => Self::Sha1,
            URI_SHA256 => Self::Sha256,
            URI_SHA384 => Self::Sha384,
            URI_SHA512 => Self::Sha512,
            _ => return None,
        })
    }

    /// Reads an MGF1 URI.
    pub fn from_mgf_uri(uri: &str) -> Option<Self> {
        Some(match uri {
            URI_MGF1_SHA1 => Self::Sha1,
            URI_MGF1_SHA256 => Self::Sha256,
            URI_MGF1_SHA384 => Self::Sha384,
            URI_MGF1_SHA512 => Self::Sha512,
            _ => return None,
        })
    }

    /// The digest method URI.
    pub fn digest_uri(self) -> &'static str {
        match self {
            Self::Sha1 => URI_SHA1,
            Self::Sha256 => URI_SHA256,
            Self::Sha384 => URI_SHA384,
            Self::Sha512 => URI_SHA512,
        }
    }

    /// The MGF1 URI.
    pub fn mgf_uri(self) -> &'static str {
        match self {
            Self::Sha1 => URI_MGF1_SHA1,
            Self::Sha256 => URI_MGF1_SHA256,
            Self::Sha384 => URI_MGF1_SHA384,
            Self::Sha512 => URI_MGF1_SHA512,
        }
    }

    /// Digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            Self::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &digest::SHA256,
            Self::Sha384 => &digest::SHA384,
            Self::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }
}

/// Signature algorithms accepted on certificates, GuardianSignature and metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// RSASSA-PKCS1-v1_5 SHA-1: verified for old documents, never written.
    RsaSha1,
    /// RSASSA-PKCS1-v1_5 SHA-256: what vmsec writes.
    RsaSha256,
    /// RSASSA-PKCS1-v1_5 SHA-384.
    RsaSha384,
    /// RSASSA-PKCS1-v1_5 SHA-512.
    RsaSha512,
}

impl SignatureAlgorithm {
    /// Reads an `Algorithm` URI.
    pub fn from_uri(uri: &str) -> Option<Self> {
        Some(match uri {
            URI_RSA_SHA1 => Self::RsaSha1,
            URI_RSA_SHA256 => Self::RsaSha256,
            URI_RSA_SHA384 => Self::RsaSha384,
            URI_RSA_SHA512 => Self::RsaSha512,
            _ => return None,
        })
    }

    /// The `Algorithm` URI.
    pub fn uri(self) -> &'static str {
        match self {
            Self::RsaSha1 => URI_RSA_SHA1,
            Self::RsaSha256 => URI_RSA_SHA256,
            Self::RsaSha384 => URI_RSA_SHA384,
            Self::RsaSha512 => URI_RSA_SHA512,
        }
    }

    fn verification(self) -> &'static signature::RsaParameters {
        match self {
            Self::RsaSha1 => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            Self::RsaSha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Self::RsaSha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Self::RsaSha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        }
    }

    /// Verifies `sig` over `message` with an RSA public key given as PKCS#1 RSAPublicKey DER.
    pub fn verify(self, rsa_public_key: &[u8], message: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(self.verification(), rsa_public_key)
            .verify(message, sig)
            .is_ok()
    }
}

/// A signature together with the algorithm that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The algorithm.
    pub algorithm: SignatureAlgorithm,
    /// The signature bytes.
    pub value: Vec<u8>,
}

/// Signs with RSASSA-PKCS1-v1_5 SHA-256, the only signature vmsec writes.
pub fn sign_rsa_sha256(key: &rsa::KeyPair, message: &[u8]) -> Result<Signature> {
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &signature::RSA_PKCS1_SHA256,
        &rand::SystemRandom::new(),
        message,
        &mut sig,
    )
    .map_err(|_| Error::Crypto("RSA signing"))?;
    Ok(Signature {
        algorithm: SignatureAlgorithm::RsaSha256,
        value: sig,
    })
}

/// How a transport key is encrypted to a wrapping's encryption certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncryption {
    /// RSA-OAEP with the same hash for the digest and MGF1, no label.
    /// `uri_mgf1p` records that the XML Encryption 1.0 URI was used.
    RsaOaep {
        /// Digest and MGF1 hash.
        hash: Hash,
        /// Written with the `rsa-oaep-mgf1p` URI rather than `xmlenc11#rsa-oaep`.
        uri_mgf1p: bool,
    },
}

impl KeyEncryption {
    /// What vmsec writes: `xmlenc11#rsa-oaep`, SHA-256 / MGF1-SHA-256.
    pub const VMSEC: Self = Self::RsaOaep {
        hash: Hash::Sha256,
        uri_mgf1p: false,
    };

    fn oaep(self) -> &'static rsa::OaepAlgorithm {
        let Self::RsaOaep { hash, .. } = self;
        match hash {
            Hash::Sha1 => &rsa::OAEP_SHA1_MGF1SHA1,
            Hash::Sha256 => &rsa::OAEP_SHA256_MGF1SHA256,
            Hash::Sha384 => &rsa::OAEP_SHA384_MGF1SHA384,
            Hash::Sha512 => &rsa::OAEP_SHA512_MGF1SHA512,
        }
    }

    /// Encrypts to an RSA public key given as SubjectPublicKeyInfo DER.
    pub fn encrypt(self, spki: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let public = rsa::PublicEncryptingKey::from_der(spki)
            .map_err(|_| Error::Crypto("loading RSA encryption key"))?;
        let public = rsa::OaepPublicEncryptingKey::new(public)
            .map_err(|_| Error::Crypto("loading RSA encryption key"))?;
        let mut out = vec![0u8; public.ciphertext_size()];
        let written = public
            .encrypt(self.oaep(), plaintext, &mut out, None)
            .map_err(|_| Error::Crypto("RSA-OAEP encryption"))?
            .len();
        out.truncate(written);
        Ok(out)
    }

    /// Decrypts with an RSA private key; `None` when the ciphertext does not decrypt.
    pub fn decrypt(
        self,
        private: &rsa::OaepPrivateDecryptingKey,
        ciphertext: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; private.min_output_size()]);
        let len = private
            .decrypt(self.oaep(), ciphertext, &mut out, None)
            .ok()?
            .len();
        out.truncate(len);
        Some(out)
    }
}

/// A 256-bit transport key. Zeroized on drop; its `Debug` shows nothing secret.
#[derive(Clone)]
pub struct TransportKey(Zeroizing<[u8; 32]>);

impl TransportKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::fill(key.as_mut()).map_err(|_| Error::Crypto("random number generator"))?;
        Ok(Self(key))
    }

    /// Wraps existing key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The HMAC-SHA256 key for the TransportKeySignature: HKDF-SHA256(ikm = TK, salt, info).
    fn mac_key(&self, kdf: &Hkdf) -> Result<hmac::Key> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &kdf.salt).extract(self.as_bytes());
        let info = [kdf.info.as_slice()];
        let okm = prk
            .expand(&info, hmac::HMAC_SHA256)
            .map_err(|_| Error::Crypto("HKDF expand"))?;
        Ok(hmac::Key::from(okm))
    }

    /// A 256-bit key derived from this transport key with HKDF-SHA256 (for
    /// example the vTPM state key: info `vmsec vtpm state key v1`).
    pub fn derive_key(&self, salt: &[u8], info: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(self.as_bytes());
        let info = [info];
        let mut out = Zeroizing::new([0u8; 32]);
        prk.expand(&info, hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(out.as_mut()))
            .map_err(|_| Error::Crypto("HKDF expand"))?;
        Ok(out)
    }

    /// HMAC-SHA256 of `message` under the HKDF-derived key.
    pub fn sign(&self, kdf: &Hkdf, message: &[u8]) -> Result<Vec<u8>> {
        Ok(hmac::sign(&self.mac_key(kdf)?, message).as_ref().to_vec())
    }

    /// Checks an HMAC-SHA256 tag (constant time).
    pub fn verify(&self, kdf: &Hkdf, message: &[u8], tag: &[u8]) -> Result<bool> {
        Ok(hmac::verify(&self.mac_key(kdf)?, message, tag).is_ok())
    }
}

impl PartialEq for TransportKey {
    fn eq(&self, other: &Self) -> bool {
        // Constant time: equality of secrets must not leak where they differ.
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl Eq for TransportKey {}

impl fmt::Debug for TransportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransportKey(<secret>)")
    }
}

/// HKDF-SHA256 parameters of the TransportKeySignature's key derivation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hkdf {
    /// The salt (vmsec writes 32 random bytes).
    pub salt: Vec<u8>,
    /// The info string.
    pub info: Vec<u8>,
}

impl Hkdf {
    /// Fresh parameters as vmsec writes them.
    pub fn fresh() -> Result<Self> {
        let mut salt = vec![0u8; 32];
        rand::fill(&mut salt).map_err(|_| Error::Crypto("random number generator"))?;
        Ok(Self {
            salt,
            info: TKS_INFO.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_key_debug_hides_the_key() {
        let tk = TransportKey::from_bytes([0xAB; 32]);
        let shown = format!("{tk:?}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
    }

    #[test]
    fn hmac_key_follows_rfc5869_hkdf_sha256() {
        // RFC 5869 test case 1 has a 22-byte IKM; with a 32-byte IKM we check against
        // an independent HKDF built from HMAC directly (extract then one expand block).
        let tk = TransportKey::from_bytes([7u8; 32]);
        let kdf = Hkdf {
            salt: b"salt".to_vec(),
            info: b"info".to_vec(),
        };
        let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"salt"), &[7u8; 32]);
        let mut block = b"info".to_vec();
        block.push(1);
        let okm = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()), &block);
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, okm.as_ref()), b"msg");
        assert_eq!(
            tk.sign(&kdf, b"msg").expect("hmac"),
            expected.as_ref().to_vec()
        );
        assert!(tk.verify(&kdf, b"msg", expected.as_ref()).expect("hmac"));
        assert!(!tk.verify(&kdf, b"msG", expected.as_ref()).expect("hmac"));
        // derive_key is the same HKDF: its output is the MAC key used above.
        let derived = tk.derive_key(b"salt", b"info").expect("hkdf");
        assert_eq!(derived.as_slice(), okm.as_ref());
    }
}
