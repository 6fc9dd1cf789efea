//! TPM mode end to end (issue 15), with real processes on loopback: `vmsec kps serve`, a
//! host whose own TPM is a swtpm (manufactured with an EK certificate by its local CA), a
//! synthetic boot (events extended into that TPM and written to an event log file), and the
//! host's VM whose vTPM starts through the KPS only while its boot matches a baseline.

mod common;

use std::path::Path;

use common::fabric::*;
use common::tools_present;
use vmsec_kps::tpm::eventlog;
use vmsec_tpm::host::{HostTpm, SwtpmHost};

/// One test at a time: libtss2's swtpm TCTI opens its socket without close-on-exec, so a
/// swtpm one test spawns would inherit another test's open TPM connection.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The host's TPM and the log of what its "firmware" measured.
struct Boot {
    swtpm: SwtpmHost,
    log: std::path::PathBuf,
    events: Vec<eventlog::Event>,
}

impl Boot {
    fn new(dir: &Path) -> Boot {
        let swtpm = SwtpmHost::start(&dir.join("host-tpm")).unwrap();
        let mut b = Boot {
            swtpm,
            log: dir.join("binary_bios_measurements"),
            events: Vec::new(),
        };
        b.measure(0, b"firmware 1.0");
        b.measure(4, b"bootloader");
        b
    }

    /// Extends an event into the TPM and the log. The TPM is closed again at once: it serves
    /// one connection at a time, and the vmsec commands need it.
    fn measure(&mut self, pcr: u32, data: &[u8]) {
        let e = eventlog::event(pcr, data);
        HostTpm::open(&self.swtpm.tcti())
            .unwrap()
            .extend_pcr(pcr, &e.sha256)
            .unwrap();
        self.events.push(e);
        std::fs::write(&self.log, eventlog::write(&self.events)).unwrap();
    }

    fn tcti(&self) -> String {
        self.swtpm.tcti()
    }
}

fn tpm_host(kps: &Dir, server: &KpsProcess, ca: &Path, boot: &Boot, name: &str) -> Dir {
    let host = Dir::new();
    host.ok(&[
        "hgs",
        "set",
        "--attestation-url",
        &server.attestation(),
        "--key-protection-url",
        &server.key_protection(),
        "--ca",
        s(ca),
        "--tpm",
        "--tcti",
        &boot.tcti(),
        "--event-log",
        s(&boot.log),
    ]);
    let ek = host.ok(&["hgs", "ek", "--tcti", &boot.tcti()]);
    assert!(ek.starts_with("-----BEGIN CERTIFICATE-----"), "{ek}");
    let file = host.path("ek.pem");
    std::fs::write(&file, ek).unwrap();
    kps.ok(&["kps", "host", "add", name, "--ek-cert", s(&file)]);
    host
}

fn capture_baseline(kps: &Dir, host: &Dir, boot: &Boot, name: &str) {
    let file = host.path(&format!("{name}.json"));
    host.ok(&[
        "hgs",
        "tpm-baseline",
        "--out",
        s(&file),
        "--force",
        "--tcti",
        &boot.tcti(),
        "--event-log",
        s(&boot.log),
    ]);
    kps.ok(&["kps", "baseline", "add", name, "--from", s(&file)]);
}

#[test]
fn a_host_whose_boot_matches_a_baseline_starts_its_vm_and_a_changed_boot_is_refused_by_pcr() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (kps, ca) = new_kps();
    let server = KpsProcess::start(&kps);
    let work = tempfile::tempdir().unwrap();
    let mut boot = Boot::new(work.path());
    let h1 = tpm_host(&kps, &server, &ca, &boot, "h1");

    // Registered, but no baseline yet: refused by policy.
    let err = h1.fails(&["hgs", "attest"]);
    assert!(
        err.contains("PolicyEvaluationErrorReply") && err.contains("no TPM baseline"),
        "{err}"
    );
    capture_baseline(&kps, &h1, &boot, "golden");
    h1.ok(&["hgs", "attest"]);
    let shown = h1.json(&["hgs", "show"]);
    assert_eq!(shown["attestation_status"], "Passed", "{shown}");
    assert_eq!(shown["attestation_mode"], "TPM", "{shown}");

    // Its VM's vTPM starts through the KPS.
    let (_owner, kp) = owner_kp(&server, &ca);
    h1.ok(&[
        "guardian",
        "import",
        "fabric",
        "--url",
        &server.key_protection(),
        "--ca",
        s(&ca),
    ]);
    add_vm(&h1, &kp);
    let started = start(&h1);
    assert_eq!(started["manufactured"], true, "{started}");
    stop(&h1);
    assert_ne!(kp_of(&h1), std::fs::read(&kp).unwrap(), "rolled by the KPS");

    // A changed boot: refused, naming the PCR, and shown by hgs show.
    boot.measure(4, b"another bootloader");
    let err = h1.fails(&["hgs", "attest"]);
    assert!(
        err.contains("PolicyEvaluationErrorReply") && err.contains("PCR 4 differ"),
        "{err}"
    );
    let shown = h1.json(&["hgs", "show"]);
    assert_eq!(
        shown["attestation_status"], "InsecureHostConfiguration",
        "{shown}"
    );
    assert!(
        shown["last_failure"].as_str().unwrap().contains("PCR 4"),
        "{shown}"
    );
    let before = kp_of(&h1);
    let err = h1.fails(&["tpm", "start", "vm1", "--socket", s(&h1.path("vm1.sock"))]);
    assert!(err.contains("PCR 4"), "{err}");
    assert_eq!(kp_of(&h1), before, "a refused start changes nothing");
    let audit = kps.ok(&["kps", "audit", "--limit", "20"]);
    assert!(
        audit.contains("PolicyEvaluationErrorReply") && audit.contains("PCR 4"),
        "{audit}"
    );

    // The baseline updated: accepted again, and the VM starts.
    kps.ok(&["kps", "baseline", "remove", "golden"]);
    capture_baseline(&kps, &h1, &boot, "golden-2");
    start(&h1);
    stop(&h1);

    // The IDK's private part never leaves the TPM: DATA/hgs holds it only as the TPM wrapped
    // it, which no other TPM loads, and no software key.
    let hgs = h1.data.join("hgs");
    let mut names: Vec<String> = std::fs::read_dir(&hgs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "client.json",
            "health-certificate.der",
            "last-attestation.json",
            "tpm-ak.priv",
            "tpm-ak.pub",
            "tpm-idk.priv",
            "tpm-idk.pub"
        ]
    );
    let blob = vmsec_tpm::host::KeyBlob {
        private: std::fs::read(hgs.join("tpm-idk.priv")).unwrap(),
        public: std::fs::read(hgs.join("tpm-idk.pub")).unwrap(),
    };
    let other_dir = tempfile::tempdir().unwrap();
    let other = SwtpmHost::start(&other_dir.path().join("tpm")).unwrap();
    let mut other = HostTpm::open(&other.tcti()).unwrap();
    assert!(other.load(&blob).is_err(), "another TPM loads the IDK");
    let mut own = HostTpm::open(&boot.tcti()).unwrap();
    let k = own.load(&blob).expect("its own TPM loads it");
    own.unload(k);
}

#[test]
fn an_unregistered_ek_is_refused_and_audited() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (kps, ca) = new_kps();
    let server = KpsProcess::start(&kps);
    let work = tempfile::tempdir().unwrap();
    let boot = Boot::new(work.path());
    let host = Dir::new();
    host.ok(&[
        "hgs",
        "set",
        "--attestation-url",
        &server.attestation(),
        "--key-protection-url",
        &server.key_protection(),
        "--ca",
        s(&ca),
        "--tpm",
        "--tcti",
        &boot.tcti(),
        "--event-log",
        s(&boot.log),
    ]);
    let err = host.fails(&["hgs", "attest"]);
    assert!(
        err.contains("UnauthorizedErrorReply") && err.contains("unknown EK"),
        "{err}"
    );
    assert_eq!(
        host.json(&["hgs", "show"])["attestation_status"],
        "UnauthorizedHost"
    );
    let audit = kps.ok(&["kps", "audit", "--limit", "5"]);
    assert!(audit.contains("unknown EK"), "{audit}");
}
