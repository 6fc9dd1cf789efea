//! Costs of the key protector operations at RSA 2048 and 3072, each beside
//! the raw aws-lc-rs operations it is made of, in the same run.
//! Short by design: `cargo bench -p vmsec-kp` takes about a minute.

use std::time::Duration;

use aws_lc_rs::signature::KeyPair as _;
use aws_lc_rs::{rand, rsa, signature};
use base64::Engine;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vmsec_kp::{Guardian, KeySize, Protector};

fn pkcs8(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body")
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

        // The raw operations: new = 4 OAEP encrypt + 5 signs; verify = 9 verifies;
        // unwrap = verify + 1 OAEP decrypt + HKDF/HMAC; roll = unwrap + 4 encrypt + 1 sign.
        let (enc_pem, sign_pem) = g[3].export_private_pkcs8_pem().expect("keys");
        let sign_key = rsa::KeyPair::from_pkcs8(&pkcs8(&sign_pem)).expect("key");
        let dec_key = rsa::OaepPrivateDecryptingKey::new(
            rsa::PrivateDecryptingKey::from_pkcs8(&pkcs8(&enc_pem)).expect("key"),
        )
        .expect("key");
        let enc_key =
            rsa::OaepPublicEncryptingKey::new(dec_key_public(&pkcs8(&enc_pem))).expect("key");
        let message = kp.canonical_wrappings().to_vec();
        let mut sig = vec![0u8; sign_key.public_modulus_len()];
        let rng = rand::SystemRandom::new();
        group.bench_function(BenchmarkId::new("raw", "rsa-sha256 sign"), |b| {
            b.iter(|| {
                sign_key
                    .sign(&signature::RSA_PKCS1_SHA256, &rng, &message, &mut sig)
                    .expect("sign")
            })
        });
        let public = sign_key.public_key().as_ref().to_vec();
        group.bench_function(BenchmarkId::new("raw", "rsa-sha256 verify"), |b| {
            b.iter(|| {
                signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &public)
                    .verify(&message, &sig)
                    .expect("verify")
            })
        });
        let mut ct = vec![0u8; enc_key.ciphertext_size()];
        // A valid ciphertext for the decrypt benchmark, whatever runs first.
        let ciphertext = enc_key
            .encrypt(&rsa::OAEP_SHA256_MGF1SHA256, &[7u8; 32], &mut ct, None)
            .expect("encrypt")
            .to_vec();
        group.bench_function(BenchmarkId::new("raw", "oaep-sha256 encrypt"), |b| {
            b.iter(|| {
                enc_key
                    .encrypt(&rsa::OAEP_SHA256_MGF1SHA256, &[7u8; 32], &mut ct, None)
                    .map(|c| c.len())
                    .expect("encrypt")
            })
        });
        let mut pt = vec![0u8; dec_key.min_output_size()];
        group.bench_function(BenchmarkId::new("raw", "oaep-sha256 decrypt"), |b| {
            b.iter(|| {
                dec_key
                    .decrypt(&rsa::OAEP_SHA256_MGF1SHA256, &ciphertext, &mut pt, None)
                    .map(|p| p.len())
                    .expect("decrypt")
            })
        });
        group.finish();
    }
}

fn dec_key_public(pkcs8: &[u8]) -> rsa::PublicEncryptingKey {
    rsa::PrivateDecryptingKey::from_pkcs8(pkcs8)
        .expect("key")
        .public_key()
}

criterion_group!(benches, bench);
criterion_main!(benches);
