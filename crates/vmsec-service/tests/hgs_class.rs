//! `MSFT_HgsClientConfiguration`: the host's guarded-fabric mode as WS-Man Get and Enumerate
//! read it from the host's HGS files.

mod support;

use support::*;
use vmsec_cim::schema::ServedClass;
use vmsec_cim::{Instance, Value};
use vmsec_service::hgs::{ClientConfig, Mode};
use vmsec_store::Role;

const CLASS: ServedClass = ServedClass::HgsClientConfiguration;

fn text<'a>(i: &'a Instance, name: &str) -> &'a str {
    i.value(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{name} is not a string in {i:?}"))
}

fn strings(i: &Instance, name: &str) -> Vec<String> {
    match i.value(name) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect(),
        other => panic!("{name} is {other:?}"),
    }
}

/// The instance by Get (no selectors: a singleton) and by Enumerate, which must agree.
fn read(w: &World) -> Instance {
    let reader = caller(Role::Reader);
    let got = w
        .service
        .instance(&reader, CLASS, &[], &w.hgs())
        .unwrap()
        .expect("the singleton is there");
    let mut e = w.service.instances(&reader, CLASS, &[], &w.hgs()).unwrap();
    let listed = e.next(10).unwrap();
    assert_eq!(
        listed,
        vec![got.clone()],
        "Enumerate returns the one instance"
    );
    CLASS.def().check(&got).unwrap();
    got
}

#[test]
fn a_host_without_configuration_is_in_local_mode() {
    let w = world();
    let i = read(&w);
    assert_eq!(i.class_name(), "MSFT_HgsClientConfiguration");
    assert_eq!(text(&i, "Mode"), "Local");
    assert_eq!(text(&i, "AttestationServerUrl"), "");
    assert_eq!(text(&i, "KeyProtectionServerUrl"), "");
    assert!(strings(&i, "FallbackAttestationServerUrl").is_empty());
    assert!(strings(&i, "FallbackKeyProtectionServerUrl").is_empty());
    assert_eq!(text(&i, "AttestationStatus"), "NotConfigured");
    assert_eq!(text(&i, "AttestationSubstatus"), "NoInformation");
    assert_eq!(i.value("IsHostGuarded"), Some(&Value::Boolean(false)));
    assert_eq!(text(&i, "AttestationOperationMode"), "Unknown");
}

#[test]
fn an_hgs_configuration_shows_its_urls_and_is_guarded_once_attested() {
    let w = world();
    w.hgs()
        .set_config(&ClientConfig {
            mode: Mode::Hgs,
            attestation_url: Some("https://hgs.example/Attestation".into()),
            key_protection_url: Some("https://hgs.example/KeyProtection".into()),
            fallback_attestation_url: Some("https://hgs2.example/Attestation".into()),
            fallback_key_protection_url: None,
            ca: None,
            tpm: None,
        })
        .unwrap();
    let i = read(&w);
    assert_eq!(text(&i, "Mode"), "HostGuardianService");
    assert_eq!(
        text(&i, "AttestationServerUrl"),
        "https://hgs.example/Attestation"
    );
    assert_eq!(
        text(&i, "KeyProtectionServerUrl"),
        "https://hgs.example/KeyProtection"
    );
    assert_eq!(
        strings(&i, "FallbackAttestationServerUrl"),
        vec!["https://hgs2.example/Attestation"]
    );
    assert!(strings(&i, "FallbackKeyProtectionServerUrl").is_empty());
    assert_eq!(text(&i, "AttestationStatus"), "NotAttested");
    assert_eq!(i.value("IsHostGuarded"), Some(&Value::Boolean(false)));
    assert_eq!(text(&i, "AttestationOperationMode"), "HostKey");

    // A cached health certificate: attestation passed.
    w.hgs()
        .set_health_certificate(&health_certificate())
        .unwrap();
    let i = read(&w);
    assert_eq!(text(&i, "AttestationStatus"), "Passed");
    assert_eq!(i.value("IsHostGuarded"), Some(&Value::Boolean(true)));

    // Back to local mode: a cached certificate does not make a local host guarded.
    w.hgs().set_config(&ClientConfig::default()).unwrap();
    w.hgs()
        .set_health_certificate(&health_certificate())
        .unwrap();
    let i = read(&w);
    assert_eq!(text(&i, "Mode"), "Local");
    assert_eq!(text(&i, "AttestationStatus"), "NotConfigured");
    assert_eq!(i.value("IsHostGuarded"), Some(&Value::Boolean(false)));
}

#[test]
fn an_enumeration_filter_applies_to_the_singleton() {
    let w = world();
    let reader = caller(Role::Reader);
    let filter = |name: &str, value: &str| vec![(name.to_owned(), value.to_owned())];
    let count = |f: Vec<(String, String)>| {
        w.service
            .instances(&reader, CLASS, &f, &w.hgs())
            .unwrap()
            .next(10)
            .unwrap()
            .len()
    };
    assert_eq!(count(filter("Mode", "local")), 1);
    assert_eq!(count(filter("IsHostGuarded", "true")), 0);
}

#[test]
fn the_status_rule() {
    use time::{Duration, OffsetDateTime};
    use vmsec_service::hgs::{AttestationStatus as S, attestation_status};
    let now = OffsetDateTime::now_utc();
    let later = Some(now + Duration::hours(1));
    let earlier = Some(now - Duration::seconds(1));
    assert_eq!(
        attestation_status(Mode::Local, later, now),
        S::NotConfigured
    );
    assert_eq!(attestation_status(Mode::Local, None, now), S::NotConfigured);
    assert_eq!(attestation_status(Mode::Hgs, None, now), S::NotAttested);
    assert_eq!(attestation_status(Mode::Hgs, later, now), S::Passed);
    assert_eq!(attestation_status(Mode::Hgs, earlier, now), S::Expired);
}

/// A health certificate as an Attestation Service issues one, valid for an hour.
fn health_certificate() -> Vec<u8> {
    let signer =
        vmsec_kps::CertifiedKey::generate("signer", aws_lc_rs::rsa::KeySize::Rsa2048, true)
            .unwrap();
    let idk = vmsec_kps::host::Idk::generate().unwrap();
    signer
        .issue(
            "h1",
            "00",
            idk.public_key(),
            time::OffsetDateTime::now_utc(),
            time::Duration::hours(1),
        )
        .unwrap()
        .der
}

#[test]
fn an_unreadable_configuration_is_an_error_not_local_mode() {
    let w = world();
    std::fs::create_dir_all(w.hgs().path()).unwrap();
    std::fs::write(w.hgs().path().join("client.json"), b"{not json").unwrap();
    let reader = caller(Role::Reader);
    assert!(w.service.instance(&reader, CLASS, &[], &w.hgs()).is_err());
    assert!(w.service.instances(&reader, CLASS, &[], &w.hgs()).is_err());
}
