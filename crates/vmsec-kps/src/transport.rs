//! The keys a release carries to the host ([MS-KPS] 2.2.3.10 and this profile's algorithms):
//! the TransportKey blob (TK1 ‖ TK2), AES-256-GCM under a fresh wrapping key, which is
//! AES-key-wrapped under a fresh transfer key, which is RSA-OAEP-encrypted to the IDK that the
//! health certificate certifies. Only the holder of the IDK's private key reads them.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::key_wrap::{AES_256, KeyEncryptionKey, KeyWrap};
use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PublicEncryptingKey,
};
use vmsec_kp::TransportKey;
use zeroize::Zeroizing;

use crate::msgs::roll::Version;

const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// DataSize, Version, NumberOfKeys, KeyLength.
const HEADER_LEN: usize = 16;

/// TK1 (the ingress protector's) and TK2 (the egress protector's).
pub struct TransportKeys {
    pub ingress: TransportKey,
    pub egress: TransportKey,
}

impl std::fmt::Debug for TransportKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransportKeys { .. }")
    }
}

/// The three encrypted fields of a `RollTransportKeyResponse`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedKeys {
    pub transfer_key: Vec<u8>,
    pub wrapping_key: Vec<u8>,
    pub transport_keys: Vec<u8>,
}

fn blob_len(version: Version) -> usize {
    HEADER_LEN + 2 * KEY_LEN + if version == Version::V2 { 4 } else { 0 }
}

/// The TransportKey blob: little-endian uint32 fields, then the keys.
fn encode(version: Version, keys: &TransportKeys) -> Zeroizing<Vec<u8>> {
    let len = blob_len(version);
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    let v = if version == Version::V2 { 2u32 } else { 1 };
    for field in [len as u32, v, 2, KEY_LEN as u32] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    out.extend_from_slice(keys.ingress.as_bytes());
    out.extend_from_slice(keys.egress.as_bytes());
    if version == Version::V2 {
        out.extend_from_slice(&0u32.to_le_bytes()); // NumberOfPolicies
    }
    out
}

fn decode(version: Version, blob: &[u8]) -> Result<TransportKeys, String> {
    let want = blob_len(version);
    if blob.len() != want {
        return Err(format!(
            "TransportKey blob of {} bytes, not {want}",
            blob.len()
        ));
    }
    let u32_at = |i: usize| u32::from_le_bytes(blob[i..i + 4].try_into().expect("4 bytes"));
    let v = if version == Version::V2 { 2 } else { 1 };
    let header = [u32_at(0), u32_at(4), u32_at(8), u32_at(12)];
    if header != [want as u32, v, 2, KEY_LEN as u32] {
        return Err(format!(
            "TransportKey blob header {header:?}, not [DataSize {want}, Version {v}, 2 keys, 32 bytes]"
        ));
    }
    if version == Version::V2 && u32_at(HEADER_LEN + 2 * KEY_LEN) != 0 {
        return Err("TransportKey blob carries policies; this profile has none".into());
    }
    let key =
        |at: usize| TransportKey::from_bytes(blob[at..at + KEY_LEN].try_into().expect("32 bytes"));
    Ok(TransportKeys {
        ingress: key(HEADER_LEN),
        egress: key(HEADER_LEN + KEY_LEN),
    })
}

fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>, String> {
    let mut k = Zeroizing::new([0u8; KEY_LEN]);
    aws_lc_rs::rand::fill(k.as_mut()).map_err(|_| "no randomness".to_owned())?;
    Ok(k)
}

/// Encrypts `keys` to the IDK (DER SubjectPublicKeyInfo).
pub fn encrypt(
    idk_spki: &[u8],
    version: Version,
    keys: &TransportKeys,
) -> Result<EncryptedKeys, String> {
    let not_rsa = |_| "the IDK is not an RSA public key".to_owned();
    let idk = PublicEncryptingKey::from_der(idk_spki).map_err(not_rsa)?;
    let idk = OaepPublicEncryptingKey::new(idk)
        .map_err(|_| "the IDK is not an RSA public key".to_owned())?;
    let transfer = random_key()?;
    let wrapping = random_key()?;

    let mut transfer_key = vec![0u8; idk.ciphertext_size()];
    let n = idk
        .encrypt(
            &OAEP_SHA256_MGF1SHA256,
            transfer.as_ref(),
            &mut transfer_key,
            None,
        )
        .map_err(|_| "RSA-OAEP to the IDK failed".to_owned())?
        .len();
    transfer_key.truncate(n);

    let kek = KeyEncryptionKey::new(&AES_256, transfer.as_ref()).map_err(|_| "AES-KW key")?;
    let mut wrapping_key = vec![0u8; KEY_LEN + 8];
    let n = kek
        .wrap(wrapping.as_ref(), &mut wrapping_key)
        .map_err(|_| "AES key wrap failed".to_owned())?
        .len();
    wrapping_key.truncate(n);

    let mut iv = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut iv).map_err(|_| "no randomness".to_owned())?;
    let aead =
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, wrapping.as_ref()).map_err(|_| "AES key")?);
    let mut sealed = encode(version, keys);
    aead.seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut *sealed)
        .map_err(|_| "AES-GCM failed".to_owned())?;
    let mut transport_keys = Vec::with_capacity(NONCE_LEN + sealed.len());
    transport_keys.extend_from_slice(&iv);
    transport_keys.extend_from_slice(&sealed);
    Ok(EncryptedKeys {
        transfer_key,
        wrapping_key,
        transport_keys,
    })
}

/// Decrypts what [`encrypt`] made, with the IDK's private key (the host side).
pub fn decrypt(
    idk: &OaepPrivateDecryptingKey,
    version: Version,
    enc: &EncryptedKeys,
) -> Result<TransportKeys, String> {
    decrypt_with(
        &mut |ct| {
            let mut transfer = Zeroizing::new(vec![0u8; idk.min_output_size()]);
            let n = idk
                .decrypt(&OAEP_SHA256_MGF1SHA256, ct, &mut transfer, None)
                .map_err(|_| "the transfer key does not decrypt with this host's IDK".to_owned())?
                .len();
            transfer.truncate(n);
            Ok(transfer)
        },
        version,
        enc,
    )
}

/// An RSA-OAEP (SHA-256, no label) decryption by the IDK, wherever it is held.
pub type RsaOaepDecrypt<'a> = dyn FnMut(&[u8]) -> Result<Zeroizing<Vec<u8>>, String> + 'a;

/// [`decrypt`] with the RSA-OAEP (SHA-256, no label) decryption of the transfer key done by
/// `rsa_oaep`: a TPM-resident IDK's TPM2_RSA_Decrypt.
pub fn decrypt_with(
    rsa_oaep: &mut RsaOaepDecrypt<'_>,
    version: Version,
    enc: &EncryptedKeys,
) -> Result<TransportKeys, String> {
    let transfer = rsa_oaep(&enc.transfer_key)?;
    let n = transfer.len();
    if n != KEY_LEN {
        return Err(format!("a transfer key of {n} bytes, not 32"));
    }
    let kek = KeyEncryptionKey::new(&AES_256, &transfer[..n]).map_err(|_| "AES-KW key")?;
    let mut wrapping = Zeroizing::new(vec![0u8; enc.wrapping_key.len()]);
    let n = kek
        .unwrap(&enc.wrapping_key, &mut wrapping)
        .map_err(|_| "the wrapping key does not unwrap".to_owned())?
        .len();
    if n != KEY_LEN {
        return Err(format!("a wrapping key of {n} bytes, not 32"));
    }
    if enc.transport_keys.len() < NONCE_LEN + TAG_LEN {
        return Err("EncryptedTransportKeys is too short".into());
    }
    let (iv, sealed) = enc.transport_keys.split_at(NONCE_LEN);
    let aead =
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &wrapping[..n]).map_err(|_| "AES key")?);
    let mut buf = Zeroizing::new(sealed.to_vec());
    let nonce = Nonce::try_assume_unique_for_key(iv).map_err(|_| "IV")?;
    let blob = aead
        .open_in_place(nonce, Aad::empty(), &mut buf)
        .map_err(|_| "the transport keys do not decrypt (AES-GCM tag)".to_owned())?;
    decode(version, blob)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeyPair, KeySize, PrivateDecryptingKey};

    fn idk() -> (OaepPrivateDecryptingKey, Vec<u8>) {
        let kp = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let der = kp.as_der().unwrap();
        let private = PrivateDecryptingKey::from_pkcs8(der.as_ref()).unwrap();
        let spki = private.public_key().as_der().unwrap().as_ref().to_vec();
        (OaepPrivateDecryptingKey::new(private).unwrap(), spki)
    }

    fn keys() -> TransportKeys {
        TransportKeys {
            ingress: TransportKey::from_bytes([1; 32]),
            egress: TransportKey::from_bytes([2; 32]),
        }
    }

    #[test]
    fn both_versions_round_trip_to_the_idk() {
        let (private, spki) = idk();
        for version in [Version::V1, Version::V2] {
            let enc = encrypt(&spki, version, &keys()).unwrap();
            assert_eq!(
                enc.transport_keys.len(),
                NONCE_LEN + blob_len(version) + TAG_LEN
            );
            let got = decrypt(&private, version, &enc).unwrap();
            assert_eq!(got.ingress, keys().ingress);
            assert_eq!(got.egress, keys().egress);
        }
    }

    #[test]
    fn the_blob_is_the_specs_layout() {
        let blob = encode(Version::V2, &keys());
        assert_eq!(
            &blob[..16],
            &[84, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 32, 0, 0, 0]
        );
        assert_eq!(&blob[16..48], &[1; 32]);
        assert_eq!(&blob[80..], &[0; 4]);
        assert_eq!(encode(Version::V1, &keys()).len(), 80);
        assert!(
            decode(Version::V1, &blob).is_err(),
            "a V2 blob is not a V1 one"
        );
    }

    #[test]
    fn another_idk_or_a_changed_byte_does_not_decrypt() {
        let (_, spki) = idk();
        let (other, _) = idk();
        let enc = encrypt(&spki, Version::V2, &keys()).unwrap();
        assert!(decrypt(&other, Version::V2, &enc).is_err());
        let (private, spki) = idk();
        let mut enc = encrypt(&spki, Version::V2, &keys()).unwrap();
        enc.transport_keys[20] ^= 1;
        assert!(
            decrypt(&private, Version::V2, &enc)
                .unwrap_err()
                .contains("tag")
        );
    }
}
