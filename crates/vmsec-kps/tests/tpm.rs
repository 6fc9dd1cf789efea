//! TPM mode end to end without sockets, with a real TPM per host (swtpm, manufactured with
//! an EK certificate by its local CA): registration, the two round trips, the health
//! certificate over the TPM-resident IDK, a release opened by TPM2_RSA_Decrypt, and every
//! refusal with the check that failed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::process::Command;

use aws_lc_rs::rsa::KeySize as RsaSize;
use time::{Duration, OffsetDateTime};
use vmsec_kps::fabric::{RegisteredHost, Registry};
use vmsec_kps::msgs::attestation::{AttestReply, parse_reply};
use vmsec_kps::msgs::tpm::{Challenge, parse_challenge};
use vmsec_kps::tpm::client::{self, AttestingTpm};
use vmsec_kps::tpm::eventlog::{self, Event};
use vmsec_kps::tpm::service::TpmOutcome;
use vmsec_kps::tpm::wire::RsaPublic;
use vmsec_kps::tpm::{Baseline, TpmAttestation, TpmHost};
use vmsec_kps::{AttestError, CertifiedKey, key_hash};
use vmsec_tpm::attesting::Attesting;
use vmsec_tpm::host::{HostTpm, KeyBlob, SwtpmHost};

/// One test at a time: libtss2's swtpm TCTI opens its socket without close-on-exec, so a
/// swtpm that one test spawns inherits another test's open TPM connection, and that TPM,
/// which serves one connection at a time, then never sees it close.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn tools_present() -> bool {
    let ok = ["swtpm", "swtpm_setup", "swtpm_localca"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok && std::env::var("CI").as_deref() == Ok("true") {
        panic!("swtpm and tpm2-tools must be installed in CI (scripts/setup)");
    }
    ok
}

/// A host: its swtpm, the TPM opened, its AK and IDK, and the events its "firmware"
/// measured (extended into the TPM and written to its log).
/// Fields drop in order: the TPM connection, then swtpm (stopped through its pid file), and
/// the directory last.
struct Host {
    tpm: HostTpm,
    _swtpm: SwtpmHost,
    dir: tempfile::TempDir,
    ak: KeyBlob,
    idk: KeyBlob,
    events: Vec<Event>,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let swtpm = SwtpmHost::start(dir.path()).unwrap();
        let mut tpm = HostTpm::open(&swtpm.tcti()).unwrap();
        let ak = tpm.create_ak().unwrap();
        let idk = tpm.create_idk().unwrap();
        let mut h = Host {
            dir,
            _swtpm: swtpm,
            tpm,
            ak,
            idk,
            events: Vec::new(),
        };
        h.measure(0, b"firmware 1.0");
        h.measure(4, b"bootloader");
        h
    }

    /// Extends an event into the TPM and the log, as firmware does.
    fn measure(&mut self, pcr: u32, data: &[u8]) {
        let e = eventlog::event(pcr, data);
        self.tpm.extend_pcr(pcr, &e.sha256).unwrap();
        self.events.push(e);
    }

    fn log(&self) -> Vec<u8> {
        eventlog::write(&self.events)
    }

    fn ek_spki(&mut self) -> Vec<u8> {
        RsaPublic::parse(&self.tpm.ek_public().unwrap())
            .unwrap()
            .spki()
            .unwrap()
    }

    fn begin(&mut self, ak_public: Vec<u8>) -> Vec<u8> {
        let cert = self.tpm.ek_certificate();
        assert!(cert.is_some(), "swtpm_setup --create-ek-cert wrote one");
        client::begin_body(cert, self.tpm.ek_public().unwrap(), ak_public).unwrap()
    }

    fn loaded(&mut self) -> Attesting<'_> {
        Attesting::load(&mut self.tpm, &self.ak, &self.idk).unwrap()
    }

    /// The PCRs this host's TPM has now, as a baseline.
    fn baseline(&mut self) -> Baseline {
        let pcrs: Vec<u32> = (0..8).collect();
        Baseline {
            pcrs: self.tpm.read_pcrs(&pcrs).unwrap().into_iter().collect(),
            event_log_sha256: None,
        }
    }
}

#[derive(Default)]
struct Fabric {
    hosts: RefCell<HashMap<String, TpmHost>>,
    baselines: RefCell<Vec<(String, Baseline)>>,
}

impl Fabric {
    fn register(&self, name: &str, ek_spki: Vec<u8>) {
        let h = TpmHost {
            host: RegisteredHost {
                name: name.into(),
                key_hash: key_hash(&ek_spki),
                host_key: ek_spki,
            },
            ek_certificate: None,
        };
        self.hosts.borrow_mut().insert(h.host.key_hash.clone(), h);
    }
}

impl Registry for Fabric {
    fn host_by_key(&self, hash: &str) -> Result<Option<RegisteredHost>, String> {
        Ok(self.hosts.borrow().get(hash).map(|h| h.host.clone()))
    }
    fn deny_before(&self) -> Result<Option<OffsetDateTime>, String> {
        Ok(None)
    }
    fn tpm_host_by_ek(&self, hash: &str) -> Result<Option<TpmHost>, String> {
        Ok(self.hosts.borrow().get(hash).cloned())
    }
    fn tpm_baselines(&self) -> Result<Vec<(String, Baseline)>, String> {
        Ok(self.baselines.borrow().clone())
    }
}

struct Service {
    tpm: TpmAttestation,
    signer: CertifiedKey,
}

impl Service {
    fn new() -> Service {
        Service::with_ek_roots(Vec::new())
    }

    fn with_ek_roots(roots: Vec<Vec<u8>>) -> Service {
        Service {
            tpm: TpmAttestation::new(roots),
            signer: CertifiedKey::generate("signer", RsaSize::Rsa2048, true).unwrap(),
        }
    }

    fn call(&self, body: &[u8], fabric: &Fabric) -> Result<TpmOutcome, AttestError> {
        self.tpm
            .attest(
                &self.signer,
                Duration::hours(8),
                body,
                OffsetDateTime::now_utc(),
                "127.0.0.1",
                fabric,
            )
            .map_err(|(e, _)| e)
    }

    fn challenge(&self, host: &mut Host, fabric: &Fabric) -> Challenge {
        let ak = host.ak.public.clone();
        match self.call(&host.begin(ak), fabric) {
            Ok(TpmOutcome::Challenge { reply, .. }) => parse_challenge(&reply).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    /// Both round trips.
    fn attest(&self, host: &mut Host, fabric: &Fabric) -> Result<Vec<u8>, AttestError> {
        let challenge = self.challenge(host, fabric);
        let idk = host.idk.public.clone();
        let log = host.log();
        let body = client::finish_body(&mut host.loaded(), &challenge, idk, log).unwrap();
        match self.call(&body, fabric)? {
            TpmOutcome::Issued(i) => {
                assert_eq!(
                    parse_reply(&i.reply).unwrap(),
                    AttestReply::HealthCertificate(i.certificate.der.clone())
                );
                Ok(i.certificate.der)
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_registered_host_with_a_matching_baseline_gets_a_certificate_over_its_tpm_idk() {
    if !tools_present() {
        return;
    }
    let _serial = serial();
    let mut host = Host::new();
    let fabric = Fabric::default();
    let ek = host.ek_spki();
    fabric.register("h1", ek.clone());
    fabric
        .baselines
        .borrow_mut()
        .push(("golden".into(), host.baseline()));
    let service = Service::new();
    let der = service.attest(&mut host, &fabric).unwrap();
    let claims = vmsec_kps::health::verify(
        &der,
        &[service.signer.cert_der().to_vec()],
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(claims.host_name, "h1");
    assert_eq!(claims.host_key_hash, key_hash(&ek), "the SAN names the EK");
    let idk_spki = RsaPublic::parse(&host.idk.public).unwrap().spki().unwrap();
    assert_eq!(claims.idk_spki, idk_spki);

    // A release encrypted to the certified IDK opens only inside the TPM.
    let keys = vmsec_kps::transport::TransportKeys {
        ingress: vmsec_kp::TransportKey::from_bytes([1; 32]),
        egress: vmsec_kp::TransportKey::from_bytes([2; 32]),
    };
    let enc =
        vmsec_kps::transport::encrypt(&claims.idk_spki, vmsec_kps::Version::V2, &keys).unwrap();
    let idk = host.tpm.load(&host.idk).unwrap();
    let got = vmsec_kps::transport::decrypt_with(
        &mut |ct| {
            host.tpm
                .rsa_oaep_decrypt(idk, ct)
                .map_err(|e| e.to_string())
        },
        vmsec_kps::Version::V2,
        &enc,
    )
    .unwrap();
    assert_eq!(got.egress, keys.egress);
    assert_eq!(
        service.tpm.pending(OffsetDateTime::now_utc()),
        0,
        "the challenge was consumed"
    );
}

#[test]
fn a_changed_boot_is_refused_naming_the_pcr_until_the_baseline_is_updated() {
    if !tools_present() {
        return;
    }
    let _serial = serial();
    let mut host = Host::new();
    let fabric = Fabric::default();
    fabric.register("h1", host.ek_spki());
    fabric
        .baselines
        .borrow_mut()
        .push(("golden".into(), host.baseline()));
    let service = Service::new();
    service.attest(&mut host, &fabric).unwrap();

    host.measure(4, b"another bootloader");
    let err = service.attest(&mut host, &fabric).unwrap_err();
    assert!(
        matches!(&err, AttestError::Policy(m) if m.contains("PCR 4 differ") && m.contains("golden")),
        "{err:?}"
    );
    assert_eq!(err.reply_type(), "PolicyEvaluationErrorReply");

    *fabric.baselines.borrow_mut() = vec![("golden-2".into(), host.baseline())];
    service.attest(&mut host, &fabric).unwrap();
}

#[test]
fn an_unregistered_ek_is_refused_before_any_challenge() {
    if !tools_present() {
        return;
    }
    let _serial = serial();
    let mut host = Host::new();
    let fabric = Fabric::default();
    let service = Service::new();
    let ak = host.ak.public.clone();
    let err = service.call(&host.begin(ak), &fabric).unwrap_err();
    assert!(
        matches!(&err, AttestError::Unauthorized(m) if m.starts_with("unknown EK")),
        "{err:?}"
    );
    assert_eq!(service.tpm.pending(OffsetDateTime::now_utc()), 0);
}

#[test]
fn a_replayed_quote_a_tampered_log_and_an_ak_of_another_tpm_are_each_refused() {
    if !tools_present() {
        return;
    }
    let _serial = serial();
    let mut host = Host::new();
    let fabric = Fabric::default();
    fabric.register("h1", host.ek_spki());
    fabric
        .baselines
        .borrow_mut()
        .push(("golden".into(), host.baseline()));
    let service = Service::new();
    let idk = host.idk.public.clone();

    // Replay: the second request of an earlier exchange, sent again.
    let challenge = service.challenge(&mut host, &fabric);
    let log = host.log();
    let old = client::finish_body(&mut host.loaded(), &challenge, idk.clone(), log).unwrap();
    assert!(matches!(
        service.call(&old, &fabric),
        Ok(TpmOutcome::Issued(_))
    ));
    let err = service.call(&old, &fabric).unwrap_err();
    assert!(
        matches!(&err, AttestError::Unauthorized(m) if m.starts_with("stale nonce")),
        "{err:?}"
    );

    // An old quote under a new challenge: its nonce is not this one's.
    let fresh = service.challenge(&mut host, &fabric);
    let log = host.log();
    let mut loaded = host.loaded();
    let secret = loaded
        .activate_credential(&fresh.credential_blob, &fresh.encrypted_secret)
        .unwrap();
    let (ci, cs) = loaded.certify_idk(&fresh.nonce).unwrap();
    let (q, qs) = loaded.quote(&challenge.nonce, &fresh.pcrs).unwrap();
    drop(loaded);
    let body = vmsec_kps::msgs::tpm::finish_request(
        &[0; 16],
        &vmsec_kps::msgs::tpm::Finish {
            challenge_id: fresh.id.clone(),
            activated_credential: secret.to_vec(),
            idk_public: idk.clone(),
            certify_info: ci,
            certify_signature: cs,
            quote: q,
            quote_signature: qs,
            event_log: log,
        },
    );
    let err = service.call(&body, &fabric).unwrap_err();
    assert!(
        matches!(&err, AttestError::Unauthorized(m) if m.contains("stale nonce") && m.contains("quote")),
        "{err:?}"
    );

    // A tampered event log: one digest changed.
    let challenge = service.challenge(&mut host, &fabric);
    let mut log = host.log();
    let at = log.len() - 20;
    log[at] ^= 1;
    let body = client::finish_body(&mut host.loaded(), &challenge, idk.clone(), log).unwrap();
    let err = service.call(&body, &fabric).unwrap_err();
    assert!(
        matches!(&err, AttestError::TcgLog(m) if m.contains("does not replay")),
        "{err:?}"
    );
    assert_eq!(err.reply_type(), "TcgLogValidationErrorReply");

    // An AK from another TPM: the credential is for this EK, the other TPM cannot activate it.
    let mut other = Host::new();
    let ak_b = other.ak.public.clone();
    let challenge = match service.call(&host.begin(ak_b), &fabric) {
        Ok(TpmOutcome::Challenge { reply, .. }) => parse_challenge(&reply).unwrap(),
        o => panic!("{o:?}"),
    };
    let other_log = other.log();
    let other_idk = other.idk.public.clone();
    let mut theirs = other.loaded();
    assert!(
        theirs
            .activate_credential(&challenge.credential_blob, &challenge.encrypted_secret)
            .is_err(),
        "another TPM's EK cannot open the credential"
    );
    // Its best try: any secret, with a quote and certification by its own AK.
    let (ci, cs) = theirs.certify_idk(&challenge.nonce).unwrap();
    let (q, qs) = theirs.quote(&challenge.nonce, &challenge.pcrs).unwrap();
    drop(theirs);
    let body = vmsec_kps::msgs::tpm::finish_request(
        &[0; 16],
        &vmsec_kps::msgs::tpm::Finish {
            challenge_id: challenge.id.clone(),
            activated_credential: vec![0; 32],
            idk_public: other_idk,
            certify_info: ci,
            certify_signature: cs,
            quote: q,
            quote_signature: qs,
            event_log: other_log,
        },
    );
    let err = service.call(&body, &fabric).unwrap_err();
    assert!(
        matches!(&err, AttestError::Unauthorized(m) if m.starts_with("credential not activated")),
        "{err:?}"
    );
}

#[test]
fn with_an_ek_ca_configured_only_an_ek_certificate_it_signed_is_accepted() {
    if !tools_present() {
        return;
    }
    let _serial = serial();
    let mut host = Host::new();
    let fabric = Fabric::default();
    fabric.register("h1", host.ek_spki());
    fabric
        .baselines
        .borrow_mut()
        .push(("golden".into(), host.baseline()));
    // swtpm_localca's issuer, in the host's CA directory, signed its EK certificate.
    let pem = std::fs::read(host.dir.path().join("ca/issuercert.pem")).unwrap();
    let issuer = vmsec_kps::health::certificate_der(&pem).unwrap();
    Service::with_ek_roots(vec![issuer])
        .attest(&mut host, &fabric)
        .unwrap();

    let other = CertifiedKey::generate("another EK CA", RsaSize::Rsa2048, true).unwrap();
    let service = Service::with_ek_roots(vec![other.cert_der().to_vec()]);
    let ak = host.ak.public.clone();
    let err = service.call(&host.begin(ak), &fabric).unwrap_err();
    assert!(
        matches!(&err, AttestError::Unauthorized(m) if m.contains("does not chain to a configured EK CA")),
        "{err:?}"
    );
}
