//! Costs of the key protector operations at RSA 2048 and 3072, each beside
//! the raw aws-lc-rs operations it is made of, in the same run.
//! Short by design: `cargo bench -p vmsec-kp` takes about a minute.
//!
//! The raw baselines are exactly the aws-lc-rs calls each step needs, made on
//! the benchmarked protector's own messages, signatures and ciphertexts, with
//! private keys loaded once (as `Guardian` holds them); a protector with an
//! owner and 3 guardians, so 4 wrappings and 9 RSA signatures:
//! - verify: 9 RSA-SHA256 verifications (4 signing certificates by their
//!   parent, 4 encryption certificates by their own signing key, the
//!   GuardianSignature over canonical `<Wrappings>`), each from the PKCS#1
//!   public key bytes as a certificate gives them.
//! - unwrap: verify + 1 RSA-OAEP decryption + HKDF/HMAC check of the
//!   TransportKeySignature.
//! - roll: unwrap + 64 random bytes (new key, HKDF salt) + per wrapping
//!   loading its SPKI and 1 RSA-OAEP encryption + HKDF/HMAC + 1 RSA signature.

use std::collections::HashMap;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::KeyPair as _;
use aws_lc_rs::{hkdf, hmac, rand, rsa, signature};
use base64::Engine;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vmsec_kp::{Guardian, KeySize, Protector};

fn pkcs8(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body")
}

/// A guardian's public keys as its certificates carry them: the signing key as
/// PKCS#1 RSAPublicKey (what signature verification takes), the encryption key
/// as SubjectPublicKeyInfo (what OAEP encryption loads).
struct PublicKeys {
    signing: Vec<u8>,
    encryption_spki: Vec<u8>,
}

fn public_keys(g: &Guardian) -> PublicKeys {
    let (enc_pem, sign_pem) = g.export_private_pkcs8_pem().expect("keys");
    let signing = rsa::KeyPair::from_pkcs8(&pkcs8(&sign_pem))
        .expect("key")
        .public_key()
        .as_ref()
        .to_vec();
    let encryption_spki = rsa::PrivateDecryptingKey::from_pkcs8(&pkcs8(&enc_pem))
        .expect("key")
        .public_key()
        .as_der()
        .expect("SPKI")
        .as_ref()
        .to_vec();
    PublicKeys {
        signing,
        encryption_spki,
    }
}

fn hmac_key(tk: &[u8], salt: &[u8], info: &[u8]) -> hmac::Key {
    let info = [info];
    hmac::Key::from(
        hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
            .extract(tk)
            .expand(&info, hmac::HMAC_SHA256)
            .expect("HKDF"),
    )
}

fn bench(c: &mut Criterion) {
    for (bits, size) in [(2048, KeySize::Rsa2048), (3072, KeySize::Rsa3072)] {
        let g: Vec<Guardian> = (0..4)
            .map(|i| Guardian::generate(&format!("b{i}"), size).expect("keygen"))
            .collect();
        let guardians: Vec<Guardian> = g[1..].iter().map(Guardian::public).collect();
        let kp = Protector::new(&g[0], &guardians).expect("new");
        let me = std::slice::from_ref(&g[3]);

        let mut group = c.benchmark_group(format!("rsa{bits}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));

        group.bench_function(BenchmarkId::new("kp", "new owner+3"), |b| {
            b.iter(|| Protector::new(&g[0], &guardians).expect("new"))
        });
        group.bench_function(BenchmarkId::new("kp", "parse"), |b| {
            b.iter(|| Protector::parse(kp.as_bytes()).expect("parse"))
        });
        group.bench_function(BenchmarkId::new("kp", "verify"), |b| {
            b.iter(|| kp.verify().expect("verify"))
        });
        group.bench_function(BenchmarkId::new("kp", "unwrap"), |b| {
            b.iter(|| kp.unwrap(me).expect("unwrap"))
        });
        group.bench_function(BenchmarkId::new("kp", "roll"), |b| {
            b.iter(|| kp.roll(me).expect("roll"))
        });

        // The inputs of the raw operations, taken from `kp` itself.
        let keys: HashMap<u32, PublicKeys> = g
            .iter()
            .map(|x| (kp.wrapping_of(x).expect("granted").id, public_keys(x)))
            .collect();
        let canonical = kp.canonical_wrappings();
        let gs = kp.guardian_signature();
        let mut signatures: Vec<(&[u8], &[u8], &[u8])> = Vec::new();
        for w in kp.wrappings() {
            let (parent, own) = (&keys[&w.parent_id].signing, &keys[&w.id].signing);
            signatures.push((parent, &w.signing_cert, &w.signing_cert_signature.value));
            signatures.push((own, &w.encryption_cert, &w.encryption_cert_signature.value));
        }
        signatures.push((
            &keys[&gs.wrapping_id].signing,
            canonical,
            &gs.signature.value,
        ));
        assert_eq!(signatures.len(), 9);
        let raw_verify = || {
            for (key, message, sig) in &signatures {
                signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, key)
                    .verify(message, sig)
                    .expect("verify");
            }
        };

        let (enc_pem, sign_pem) = g[3].export_private_pkcs8_pem().expect("keys");
        let sign_key = rsa::KeyPair::from_pkcs8(&pkcs8(&sign_pem)).expect("key");
        let dec_key = rsa::OaepPrivateDecryptingKey::new(
            rsa::PrivateDecryptingKey::from_pkcs8(&pkcs8(&enc_pem)).expect("key"),
        )
        .expect("key");
        let ciphertext = &kp.wrapping_of(&g[3]).expect("granted").encrypted_key;
        let tks = kp.transport_key_signature();
        let raw_unwrap = || {
            raw_verify();
            let mut plain = vec![0u8; dec_key.min_output_size()];
            let tk = dec_key
                .decrypt(&rsa::OAEP_SHA256_MGF1SHA256, ciphertext, &mut plain, None)
                .expect("decrypt");
            assert_eq!(tk.len(), 32);
            hmac::verify(
                &hmac_key(tk, &tks.kdf.salt, &tks.kdf.info),
                canonical,
                &tks.mac,
            )
            .expect("TransportKeySignature");
        };

        let rng = rand::SystemRandom::new();
        let spkis: Vec<&[u8]> = kp
            .wrappings()
            .iter()
            .map(|w| keys[&w.id].encryption_spki.as_slice())
            .collect();
        let raw_roll = || {
            raw_unwrap();
            let (mut tk, mut salt) = ([0u8; 32], [0u8; 32]);
            rand::fill(&mut tk).expect("rng");
            rand::fill(&mut salt).expect("rng");
            let mut out = vec![0u8; dec_key.min_output_size()];
            for spki in &spkis {
                let public = rsa::OaepPublicEncryptingKey::new(
                    rsa::PublicEncryptingKey::from_der(spki).expect("SPKI"),
                )
                .expect("key");
                public
                    .encrypt(&rsa::OAEP_SHA256_MGF1SHA256, &tk, &mut out, None)
                    .expect("encrypt");
            }
            let mac = hmac::sign(&hmac_key(&tk, &salt, &tks.kdf.info), canonical);
            let mut sig = vec![0u8; sign_key.public_modulus_len()];
            sign_key
                .sign(&signature::RSA_PKCS1_SHA256, &rng, canonical, &mut sig)
                .expect("sign");
            (mac, sig)
        };

        group.bench_function(BenchmarkId::new("raw", "verify"), |b| b.iter(raw_verify));
        group.bench_function(BenchmarkId::new("raw", "unwrap"), |b| b.iter(raw_unwrap));
        group.bench_function(BenchmarkId::new("raw", "roll"), |b| b.iter(raw_roll));
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
