//! The services' rules, end to end without sockets: a host attests with its host key, sends
//! its VM's protector, and gets back the rolled protector and both transport keys; every
//! refusal of docs/specs/kps.md gets its code.

use std::cell::RefCell;
use std::collections::HashMap;

use aws_lc_rs::rsa::KeySize as RsaSize;
use time::{Duration, OffsetDateTime};
use vmsec_kp::{Guardian, KeySize, Protector};
use vmsec_kps::fabric::{AttestationService, KeyProtection, RegisteredHost, Registry};
use vmsec_kps::host::{self, HostKey, Idk};
use vmsec_kps::msgs::attestation::{AttestReply, parse_reply};
use vmsec_kps::msgs::roll;
use vmsec_kps::{CertifiedKey, Version, key_hash};

#[derive(Default)]
struct Hosts {
    by_hash: RefCell<HashMap<String, RegisteredHost>>,
    deny_before: RefCell<Option<OffsetDateTime>>,
}

impl Hosts {
    fn add(&self, name: &str, key: &HostKey) {
        let h = RegisteredHost {
            name: name.into(),
            key_hash: key_hash(key.public_key()),
            host_key: key.public_key().to_vec(),
        };
        self.by_hash.borrow_mut().insert(h.key_hash.clone(), h);
    }
    fn remove(&self, key: &HostKey) {
        self.by_hash
            .borrow_mut()
            .remove(&key_hash(key.public_key()));
    }
}

impl Registry for Hosts {
    fn host_by_key(&self, key_hash: &str) -> Result<Option<RegisteredHost>, String> {
        Ok(self.by_hash.borrow().get(key_hash).cloned())
    }
    fn deny_before(&self) -> Result<Option<OffsetDateTime>, String> {
        Ok(*self.deny_before.borrow())
    }
}

struct Fabric {
    attestation: AttestationService,
    kps: KeyProtection,
    fabric: Guardian,
    owner: Guardian,
    hosts: Hosts,
}

fn fabric() -> Fabric {
    let signer = CertifiedKey::generate("attestation signer", RsaSize::Rsa2048, true).unwrap();
    let trusted = vec![signer.cert_der().to_vec()];
    let fabric = Guardian::generate("fabric", KeySize::Rsa2048).unwrap();
    Fabric {
        attestation: AttestationService::new(signer, Duration::hours(8)),
        kps: KeyProtection::new(vec![fabric.clone()], trusted),
        owner: Guardian::generate("owner", KeySize::Rsa2048).unwrap(),
        fabric,
        hosts: Hosts::default(),
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn health_certificate(f: &Fabric, key: &HostKey, idk: &Idk) -> Vec<u8> {
    let body = key.attestation_request(idk).unwrap();
    let attested = f
        .attestation
        .host_key_attest(&body, now(), &f.hosts)
        .unwrap();
    match parse_reply(&attested.reply).unwrap() {
        AttestReply::HealthCertificate(der) => der,
        other => panic!("{other:?}"),
    }
}

fn roll_body(kp: &[u8], health: &[u8]) -> Vec<u8> {
    host::roll_request(kp, health).into_bytes()
}

fn refusal_code(f: &Fabric, body: &[u8]) -> &'static str {
    f.kps
        .roll_transport_key(Version::V2, body, now(), &f.hosts)
        .map(|_| ())
        .unwrap_err()
        .error
        .code()
}

#[test]
fn a_registered_host_gets_the_rolled_protector_and_both_transport_keys() {
    let f = fabric();
    let key = HostKey::generate().unwrap();
    f.hosts.add("h1", &key);
    let idk = Idk::generate().unwrap();
    let health = health_certificate(&f, &key, &idk);
    let kp = Protector::new(&f.owner, &[f.fabric.public()]).unwrap();
    for version in [Version::V1, Version::V2] {
        let released = f
            .kps
            .roll_transport_key(version, &roll_body(kp.as_bytes(), &health), now(), &f.hosts)
            .unwrap();
        assert_eq!(released.host, "h1");
        assert_eq!(released.guardian, "fabric");
        let release = host::open_release(&idk, version, &released.response).unwrap();
        // TK1 is the ingress protector's: its owner unwraps the same key.
        assert_eq!(
            release.keys.ingress,
            kp.unwrap(std::slice::from_ref(&f.owner)).unwrap()
        );
        let egress = Protector::parse(&release.egress).unwrap();
        assert_eq!(
            release.keys.egress,
            egress.unwrap(std::slice::from_ref(&f.owner)).unwrap()
        );
        assert_ne!(release.keys.ingress, release.keys.egress);
        // Signed by the fabric's wrapping, whose signing certificate is the fabric's.
        let signer = egress.guardian_signature().wrapping_id;
        let w = egress.wrappings().iter().find(|w| w.id == signer).unwrap();
        assert_eq!(w.signing_cert, f.fabric.signing_cert_der());
    }
}

#[test]
fn an_unregistered_host_gets_no_health_certificate() {
    let f = fabric();
    let key = HostKey::generate().unwrap();
    let body = key.attestation_request(&Idk::generate().unwrap()).unwrap();
    let (e, _) = f
        .attestation
        .host_key_attest(&body, now(), &f.hosts)
        .unwrap_err();
    assert_eq!(e.reply_type(), "UnauthorizedErrorReply");
    assert_eq!(e.http_status(), 403);
}

#[test]
fn a_signature_by_another_key_over_a_registered_public_key_is_refused() {
    let f = fabric();
    let registered = HostKey::generate().unwrap();
    f.hosts.add("h1", &registered);
    let thief = HostKey::generate().unwrap();
    let body = String::from_utf8(
        thief
            .attestation_request(&Idk::generate().unwrap())
            .unwrap(),
    )
    .unwrap();
    let swapped = body.replace(
        &vmsec_kps_b64(thief.public_key()),
        &vmsec_kps_b64(registered.public_key()),
    );
    let (e, host) = f
        .attestation
        .host_key_attest(swapped.as_bytes(), now(), &f.hosts)
        .unwrap_err();
    assert_eq!(e.reply_type(), "UnauthorizedErrorReply");
    assert_eq!(host.as_deref(), Some("h1"));
}

fn vmsec_kps_b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn removed_hosts_denied_times_and_foreign_signers_refuse_the_health_certificate() {
    let f = fabric();
    let key = HostKey::generate().unwrap();
    f.hosts.add("h1", &key);
    let idk = Idk::generate().unwrap();
    let health = health_certificate(&f, &key, &idk);
    let kp = Protector::new(&f.owner, &[f.fabric.public()]).unwrap();
    let body = roll_body(kp.as_bytes(), &health);

    *f.hosts.deny_before.borrow_mut() = Some(now() + Duration::seconds(1));
    assert_eq!(refusal_code(&f, &body), "HealthCertificateException");
    *f.hosts.deny_before.borrow_mut() = None;

    f.hosts.remove(&key);
    assert_eq!(refusal_code(&f, &body), "HealthCertificateException");

    // A certificate from another fabric's signer.
    let other = fabric();
    other.hosts.add("h1", &key);
    f.hosts.add("h1", &key);
    let foreign = health_certificate(&other, &key, &idk);
    assert_eq!(
        refusal_code(&f, &roll_body(kp.as_bytes(), &foreign)),
        "HealthCertificateException"
    );
}

#[test]
fn tampered_protectors_and_protectors_without_the_fabric_are_invalid() {
    let f = fabric();
    let key = HostKey::generate().unwrap();
    f.hosts.add("h1", &key);
    let health = health_certificate(&f, &key, &Idk::generate().unwrap());

    let without = Protector::new(&f.owner, &[]).unwrap();
    assert_eq!(
        refusal_code(&f, &roll_body(without.as_bytes(), &health)),
        "InvalidProtectorException"
    );

    let kp = Protector::new(&f.owner, &[f.fabric.public()]).unwrap();
    let text = String::from_utf8(kp.as_bytes().to_vec()).unwrap();
    // One changed character inside the fabric's wrapped key.
    let start = text
        .rfind("<CipherValue>")
        .map(|i| i + "<CipherValue>".len() + 10);
    let mut bytes = text.into_bytes();
    let i = start.expect("the last wrapping's CipherValue");
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        refusal_code(&f, &roll_body(&bytes, &health)),
        "InvalidProtectorException"
    );

    // Re-signed by a guardian that is not in the protector's chain.
    let stranger = Guardian::generate("stranger", KeySize::Rsa2048).unwrap();
    let forged = Protector::new(&stranger, &[f.fabric.public()]).unwrap();
    let owned = String::from_utf8(kp.as_bytes().to_vec()).unwrap();
    let forged_text = String::from_utf8(forged.as_bytes().to_vec()).unwrap();
    let sig = |t: &str| {
        let a = t.find("<GuardianSignature").unwrap();
        let b = t.find("</GuardianSignature>").unwrap() + "</GuardianSignature>".len();
        t[a..b].to_owned()
    };
    let spliced = owned.replace(&sig(&owned), &sig(&forged_text));
    assert_eq!(
        refusal_code(&f, &roll_body(spliced.as_bytes(), &health)),
        "InvalidProtectorException"
    );

    assert_eq!(
        refusal_code(&f, b"<RollTransportKeyRequest/>"),
        "MalformedRequest"
    );
    let odd = String::from_utf8(roll_body(kp.as_bytes(), &health))
        .unwrap()
        .replace(roll::RSA_OAEP, "http://www.w3.org/2001/04/xmlenc#rsa-1_5");
    assert_eq!(refusal_code(&f, odd.as_bytes()), "UnsupportedAlgorithm");
}

#[test]
fn an_older_fabric_key_still_unwraps_after_rotation() {
    let mut f = fabric();
    let key = HostKey::generate().unwrap();
    f.hosts.add("h1", &key);
    let idk = Idk::generate().unwrap();
    let health = health_certificate(&f, &key, &idk);
    let old_kp = Protector::new(&f.owner, &[f.fabric.public()]).unwrap();
    let newer = Guardian::generate("fabric-2", KeySize::Rsa2048).unwrap();
    f.kps = KeyProtection::new(
        vec![newer, f.fabric.clone()],
        vec![f.attestation.signer().cert_der().to_vec()],
    );
    let released = f
        .kps
        .roll_transport_key(
            Version::V2,
            &roll_body(old_kp.as_bytes(), &health),
            now(),
            &f.hosts,
        )
        .unwrap();
    assert_eq!(released.guardian, "fabric");
}
