//! One RollTransportKey and one health certificate, against the raw aws-lc-rs operations a
//! roll consists of, in the same run (bench/kps.sh reads the figures). The protector has an
//! owner and the fabric (2 wrappings), all keys RSA 2048. The raw floor of one roll:
//!   health certificate: 1 RSA-SHA256 verification
//!   ingress protector:  5 RSA-SHA256 verifications (2 per wrapping's certificates, 1 over
//!                       the wrappings), 1 RSA-OAEP decryption, HKDF + HMAC check
//!   roll:               32 random bytes, 2 RSA-OAEP encryptions, HKDF + HMAC, 1 RSA signature
//!   release:            1 RSA-OAEP encryption to the IDK, AES key wrap, AES-256-GCM

use std::cell::RefCell;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeyPair as RsaKeyPair, KeySize as RsaSize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey,
    OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{self, KeyPair as _, UnparsedPublicKey};
use criterion::{Criterion, criterion_group, criterion_main};
use time::{Duration, OffsetDateTime};
use vmsec_kp::{Guardian, KeySize, Protector};
use vmsec_kps::fabric::{AttestationService, KeyProtection, RegisteredHost, Registry};
use vmsec_kps::host::{self, HostKey, Idk};
use vmsec_kps::{CertifiedKey, Version, key_hash};

struct One(RefCell<Option<RegisteredHost>>);

impl Registry for One {
    fn host_by_key(&self, k: &str) -> Result<Option<RegisteredHost>, String> {
        Ok(self.0.borrow().clone().filter(|h| h.key_hash == k))
    }
    fn deny_before(&self) -> Result<Option<OffsetDateTime>, String> {
        Ok(None)
    }
}

fn bench(c: &mut Criterion) {
    let signer = CertifiedKey::generate("signer", RsaSize::Rsa2048, true).unwrap();
    let fabric = Guardian::generate("fabric", KeySize::Rsa2048).unwrap();
    let owner = Guardian::generate("owner", KeySize::Rsa2048).unwrap();
    let kp = Protector::new(&owner, &[fabric.public()]).unwrap();
    let host_key = HostKey::generate().unwrap();
    let idk = Idk::generate().unwrap();
    let registry = One(RefCell::new(Some(RegisteredHost {
        name: "h1".into(),
        key_hash: key_hash(host_key.public_key()),
        host_key: host_key.public_key().to_vec(),
    })));
    let attestation = AttestationService::new(signer, Duration::hours(8));
    let attest_body = host_key.attestation_request(&idk).unwrap();
    let health = {
        let a = attestation
            .host_key_attest(&attest_body, OffsetDateTime::now_utc(), &registry)
            .unwrap();
        a.certificate.der
    };
    let kps = KeyProtection::new(
        vec![fabric.clone()],
        vec![attestation.signer().cert_der().to_vec()],
    );
    let body = host::roll_request(kp.as_bytes(), &health).into_bytes();

    let mut g = c.benchmark_group("kps");
    g.sample_size(30);
    g.bench_function("roll_transport_key", |b| {
        b.iter(|| {
            kps.roll_transport_key(Version::V2, &body, OffsetDateTime::now_utc(), &registry)
                .unwrap()
        })
    });
    g.bench_function("host_key_attest", |b| {
        b.iter(|| {
            attestation
                .host_key_attest(&attest_body, OffsetDateTime::now_utc(), &registry)
                .unwrap()
        })
    });
    g.finish();

    // The raw floor, on keys and messages of the same sizes.
    let sig_key = RsaKeyPair::generate(RsaSize::Rsa2048).unwrap();
    let message = kp.as_bytes();
    let mut sig = vec![0u8; sig_key.public_modulus_len()];
    sig_key
        .sign(
            &signature::RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            message,
            &mut sig,
        )
        .unwrap();
    let public = sig_key.public_key().as_ref().to_vec();
    let dec_key = RsaKeyPair::generate(RsaSize::Rsa2048).unwrap();
    let private = PrivateDecryptingKey::from_pkcs8(dec_key.as_der().unwrap().as_ref()).unwrap();
    let enc = OaepPublicEncryptingKey::new(
        PublicEncryptingKey::from_der(private.public_key().as_der().unwrap().as_ref()).unwrap(),
    )
    .unwrap();
    let dec = OaepPrivateDecryptingKey::new(private).unwrap();
    let mut ct = vec![0u8; enc.ciphertext_size()];
    enc.encrypt(&OAEP_SHA256_MGF1SHA256, &[7; 32], &mut ct, None)
        .unwrap();
    let tk = vmsec_kp::TransportKey::from_bytes([9; 32]);
    let kdf = vmsec_kp::Hkdf::fresh().unwrap();
    let tag = tk.sign(&kdf, message).unwrap();

    let mut g = c.benchmark_group("raw");
    g.sample_size(30);
    g.bench_function("roll", |b| {
        b.iter(|| {
            let verify = || {
                UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &public)
                    .verify(message, &sig)
                    .unwrap()
            };
            for _ in 0..6 {
                verify();
            }
            let mut out = [0u8; 256];
            dec.decrypt(&OAEP_SHA256_MGF1SHA256, &ct, &mut out, None)
                .unwrap();
            assert!(tk.verify(&kdf, message, &tag).unwrap());
            let mut fresh = [0u8; 32];
            aws_lc_rs::rand::fill(&mut fresh).unwrap();
            let mut wrapped = vec![0u8; enc.ciphertext_size()];
            for _ in 0..3 {
                enc.encrypt(&OAEP_SHA256_MGF1SHA256, &fresh, &mut wrapped, None)
                    .unwrap();
            }
            tk.sign(&kdf, message).unwrap();
            let mut s = vec![0u8; sig_key.public_modulus_len()];
            sig_key
                .sign(
                    &signature::RSA_PKCS1_SHA256,
                    &aws_lc_rs::rand::SystemRandom::new(),
                    message,
                    &mut s,
                )
                .unwrap();
            let kek =
                aws_lc_rs::key_wrap::KeyEncryptionKey::new(&aws_lc_rs::key_wrap::AES_256, &fresh)
                    .unwrap();
            let mut w = [0u8; 40];
            aws_lc_rs::key_wrap::KeyWrap::wrap(kek, &fresh, &mut w).unwrap();
            let aead = aws_lc_rs::aead::LessSafeKey::new(
                aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &fresh).unwrap(),
            );
            let mut blob = vec![0u8; 84];
            aead.seal_in_place_append_tag(
                aws_lc_rs::aead::Nonce::assume_unique_for_key([0; 12]),
                aws_lc_rs::aead::Aad::empty(),
                &mut blob,
            )
            .unwrap();
        })
    });
    g.bench_function("issue", |b| {
        // 1 RSA verification (HostKeySignature) and 1 RSA signature (the certificate).
        b.iter(|| {
            UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &public)
                .verify(message, &sig)
                .unwrap();
            let mut s = vec![0u8; sig_key.public_modulus_len()];
            sig_key
                .sign(
                    &signature::RSA_PKCS1_SHA256,
                    &aws_lc_rs::rand::SystemRandom::new(),
                    message,
                    &mut s,
                )
                .unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
