//! TPM2_MakeCredential in software (TPM 2.0 Library Part 1 §24, "Credential Protection", and
//! Part 3 §12.6): the Attestation Service encrypts a fresh secret so that only the TPM
//! holding the EK can recover it, and only for the key of the given Name (the AK) loaded in
//! that same TPM (TPM2_ActivateCredential).
//!
//! For an RSA EK of the TCG default template (RSA 2048, nameAlg SHA-256, AES-128-CFB):
//! - seed: 32 random bytes, RSA-OAEP (SHA-256, label `"IDENTITY\0"`) to the EK: the secret;
//! - symKey = KDFa(SHA-256, seed, "STORAGE", Name(AK), ∅, 128);
//! - encIdentity = AES-128-CFB(symKey, IV 0, TPM2B_DIGEST(credential));
//! - hmacKey = KDFa(SHA-256, seed, "INTEGRITY", ∅, ∅, 256);
//! - the blob (TPMS_ID_OBJECT) = TPM2B_DIGEST(HMAC-SHA256(hmacKey, encIdentity ‖ Name(AK))) ‖
//!   encIdentity.

use aws_lc_rs::cipher::{AES_128, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
use zeroize::Zeroizing;

/// The OAEP label of a credential's seed (with its terminating NUL, as Part 1 §B.10.3 says).
const IDENTITY: &[u8] = b"IDENTITY\0";

/// KDFa of Part 1 §11.4.10.2 with SHA-256: HMAC(key, [i] ‖ label ‖ 0 ‖ u ‖ v ‖ [bits]).
pub fn kdfa(
    key: &[u8],
    label: &str,
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Zeroizing<Vec<u8>> {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let want = bits.div_ceil(8) as usize;
    let mut out = Zeroizing::new(Vec::with_capacity(want + 32));
    let mut i: u32 = 1;
    while out.len() < want {
        let mut ctx = hmac::Context::with_key(&k);
        ctx.update(&i.to_be_bytes());
        ctx.update(label.as_bytes());
        ctx.update(&[0]);
        ctx.update(context_u);
        ctx.update(context_v);
        ctx.update(&bits.to_be_bytes());
        out.extend_from_slice(ctx.sign().as_ref());
        i += 1;
    }
    out.truncate(want);
    out
}

/// What TPM2_MakeCredential outputs: the two inputs of TPM2_ActivateCredential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MadeCredential {
    /// TPMS_ID_OBJECT (the contents of TPM2B_ID_OBJECT).
    pub credential_blob: Vec<u8>,
    /// The OAEP-encrypted seed (the contents of TPM2B_ENCRYPTED_SECRET).
    pub secret: Vec<u8>,
}

/// Makes a credential carrying `credential` (at most 32 bytes) for the object named
/// `object_name` in the TPM of the RSA EK `ek_spki` (DER SubjectPublicKeyInfo).
pub fn make_credential(
    ek_spki: &[u8],
    object_name: &[u8],
    credential: &[u8],
) -> Result<MadeCredential, String> {
    if credential.len() > 32 {
        return Err("a credential of more than 32 bytes".into());
    }
    let ek = PublicEncryptingKey::from_der(ek_spki)
        .map_err(|_| "the EK is not an RSA public key".to_owned())?;
    let ek = OaepPublicEncryptingKey::new(ek).map_err(|_| "the EK is not an RSA key".to_owned())?;
    let mut seed = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(seed.as_mut()).map_err(|_| "no randomness".to_owned())?;
    let mut secret = vec![0u8; ek.ciphertext_size()];
    let n = ek
        .encrypt(
            &OAEP_SHA256_MGF1SHA256,
            seed.as_ref(),
            &mut secret,
            Some(IDENTITY),
        )
        .map_err(|_| "RSA-OAEP to the EK failed".to_owned())?
        .len();
    secret.truncate(n);

    let sym = kdfa(seed.as_ref(), "STORAGE", object_name, &[], 128);
    let mut enc_identity = Vec::with_capacity(2 + credential.len());
    enc_identity.extend_from_slice(&(credential.len() as u16).to_be_bytes());
    enc_identity.extend_from_slice(credential);
    let key = UnboundCipherKey::new(&AES_128, &sym).map_err(|_| "AES key".to_owned())?;
    let cfb = EncryptingKey::cfb128(key).map_err(|_| "AES-CFB".to_owned())?;
    cfb.less_safe_encrypt(
        &mut enc_identity,
        EncryptionContext::Iv128(FixedLength::from([0u8; 16])),
    )
    .map_err(|_| "AES-CFB failed".to_owned())?;

    let hmac_key = kdfa(seed.as_ref(), "INTEGRITY", &[], &[], 256);
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, &hmac_key));
    ctx.update(&enc_identity);
    ctx.update(object_name);
    let integrity = ctx.sign();
    let mut credential_blob = Vec::with_capacity(2 + 32 + enc_identity.len());
    credential_blob.extend_from_slice(&32u16.to_be_bytes());
    credential_blob.extend_from_slice(integrity.as_ref());
    credential_blob.extend_from_slice(&enc_identity);
    Ok(MadeCredential {
        credential_blob,
        secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_gives_the_length_asked_and_depends_on_every_input() {
        let a = kdfa(b"k", "STORAGE", b"u", b"", 128);
        assert_eq!(a.len(), 16);
        assert_eq!(kdfa(b"k", "INTEGRITY", b"", b"", 256).len(), 32);
        assert_eq!(kdfa(b"k", "X", b"", b"", 520).len(), 65);
        assert_ne!(*a, *kdfa(b"k", "STORAGE", b"v", b"", 128));
        assert_ne!(*a, *kdfa(b"j", "STORAGE", b"u", b"", 128));
        // The first block of a 256-bit output is the whole 128-bit one only if the
        // length is not hashed in: it is.
        assert_ne!(a[..], kdfa(b"k", "STORAGE", b"u", b"", 256)[..16]);
    }

    #[test]
    fn a_credential_has_the_tpm_layout() {
        use aws_lc_rs::encoding::AsDer;
        let ek = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let spki = aws_lc_rs::signature::KeyPair::public_key(&ek)
            .as_der()
            .unwrap()
            .as_ref()
            .to_vec();
        let made = make_credential(&spki, &[0, 0x0b, 1, 2, 3], &[7; 32]).unwrap();
        assert_eq!(made.secret.len(), 256);
        assert_eq!(made.credential_blob.len(), 2 + 32 + 2 + 32);
        assert_eq!(&made.credential_blob[..2], &[0, 32]);
        assert!(make_credential(&spki, &[], &[0; 33]).is_err());
        assert!(make_credential(b"junk", &[], &[0; 32]).is_err());
    }
}
