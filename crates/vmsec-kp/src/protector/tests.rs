//! Checks that need the crate-private writer: they build protectors whose
//! signatures are valid yet whose content is wrong in one precise way.

use std::sync::OnceLock;

use super::*;
use crate::guardian::KeySize;

fn pool() -> &'static [Guardian; 2] {
    static POOL: OnceLock<[Guardian; 2]> = OnceLock::new();
    POOL.get_or_init(|| {
        [
            Guardian::generate("owner", KeySize::Rsa2048).expect("keygen"),
            Guardian::generate("guardian", KeySize::Rsa2048).expect("keygen"),
        ]
    })
}

#[test]
fn a_flipped_cipher_value_under_a_valid_guardian_signature_fails_decryption() {
    let [owner, guardian] = pool();
    let kp = Protector::new(owner, std::slice::from_ref(guardian)).expect("new");
    let tk = kp.unwrap(std::slice::from_ref(guardian)).expect("unwraps");
    let mut wrappings = kp.wrappings().to_vec();
    if let Some(b) = wrappings
        .iter_mut()
        .find(|w| w.id == 2)
        .and_then(|w| w.encrypted_key.get_mut(10))
    {
        *b ^= 0x01;
    }
    let owner_key = owner.signing_key().expect("owner keys");
    let tampered = assemble(0, wrappings, &tk, 1, owner_key).expect("re-signed");
    assert_eq!(
        tampered.unwrap(std::slice::from_ref(guardian)),
        Err(Error::DecryptionFailed { wrapping: 2 })
    );
    // The owner's own wrapping is untouched and still opens.
    assert_eq!(tampered.unwrap(std::slice::from_ref(owner)), Ok(tk));
}

#[test]
fn a_transport_key_of_the_wrong_length_is_refused() {
    let [owner, guardian] = pool();
    let kp = Protector::new(owner, std::slice::from_ref(guardian)).expect("new");
    let tk = kp.unwrap(std::slice::from_ref(owner)).expect("unwraps");
    let mut wrappings = kp.wrappings().to_vec();
    let spki = cert::keys(guardian.encryption_cert_der(), CertRole::Encryption, None)
        .expect("cert")
        .spki;
    if let Some(w) = wrappings.iter_mut().find(|w| w.id == 2) {
        w.encrypted_key = KeyEncryption::VMSEC
            .encrypt(&spki, &[1u8; 16])
            .expect("encrypts");
    }
    let tampered =
        assemble(0, wrappings, &tk, 1, owner.signing_key().expect("keys")).expect("re-signed");
    assert_eq!(
        tampered.unwrap(std::slice::from_ref(guardian)),
        Err(Error::TransportKeyLength {
            wrapping: 2,
            len: 16
        })
    );
}

#[test]
fn legacy_oaep_sha1_wrappings_are_written_without_parameters_and_unwrap() {
    let [owner, guardian] = pool();
    let tk = TransportKey::generate().expect("rng");
    let owner_key = owner.signing_key().expect("keys");
    let mut w1 = make_wrapping(1, 1, owner, owner_key, &tk).expect("wrapping");
    let mut w2 = make_wrapping(2, 1, guardian, owner_key, &tk).expect("wrapping");
    let sha1 = KeyEncryption::RsaOaep {
        hash: crate::crypto::Hash::Sha1,
        uri_mgf1p: false,
    };
    for (w, g) in [(&mut w1, owner), (&mut w2, guardian)] {
        let spki = cert::keys(g.encryption_cert_der(), CertRole::Encryption, None)
            .expect("cert")
            .spki;
        w.key_encryption = sha1;
        w.encrypted_key = sha1.encrypt(&spki, tk.as_bytes()).expect("encrypts");
    }
    let kp = assemble(0, vec![w1, w2], &tk, 1, owner_key).expect("assembles");
    let text = String::from_utf8(kp.as_bytes().to_vec()).expect("utf-8");
    assert!(!text.contains("DigestMethod"), "{text}");
    assert_eq!(kp.unwrap(std::slice::from_ref(guardian)), Ok(tk.clone()));
    // Rolling moves every wrapping to what vmsec writes.
    let rolled = kp.roll(std::slice::from_ref(guardian)).expect("rolls");
    // What assemble returns is exactly its own bytes parsed, and it verifies.
    for p in [&kp, &rolled.protector] {
        assert_eq!(&Protector::parse(p.as_bytes()).expect("parses"), p);
        p.verify().expect("verifies");
    }
    assert!(
        rolled
            .protector
            .wrappings()
            .iter()
            .all(|w| w.key_encryption == KeyEncryption::VMSEC)
    );
}
