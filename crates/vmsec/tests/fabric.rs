//! The guarded fabric end to end (issue 13), with real processes on loopback: a Key
//! Protection Service (`vmsec kps serve`), hosts in HGS mode starting real swtpm vTPMs, an
//! owner who grants only the fabric, and the independent Python client
//! (tests/python/kps_client.py) written from the specs.
//!
//! Every process has its own temporary data directory and listens on port 0, so the tests
//! run in parallel; a [`KpsProcess`] guard kills its server even when an assertion fails.

mod common;

use common::fabric::*;
use common::{python, tools_present};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_registered_host_runs_a_vm_only_the_fabric_can_unwrap_and_others_are_refused() {
    if !tools_present() {
        return;
    }
    let (kps, ca) = new_kps();
    let server = KpsProcess::start(&kps);
    let (_owner, kp) = owner_kp(&server, &ca);
    let h1 = hgs_host(&kps, &server, &ca, "h1", true);
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

    // First start: the KPS rolls the protector; NV written by a guest survives a restart.
    let started = start(&h1);
    assert_eq!(started["manufactured"], true);
    write_nv(&h1, &started);
    stop(&h1);
    let rolled = kp_of(&h1);
    assert_ne!(
        rolled,
        std::fs::read(&kp).unwrap(),
        "the start rolled the protector"
    );
    let started = start(&h1);
    let tcti = started["tcti"].as_str().unwrap().to_owned();
    assert_eq!(
        tpm2(&tcti, "tpm2_nvread", &[NV_INDEX, "-C", "o", "-s", "32"]),
        VALUE
    );
    stop(&h1);

    // The current protector is the last known good, signed by the fabric's key.
    let sec = h1.json(&["vm", "show", "vm1"]);
    assert_eq!(sec["last_known_good_is_current"], true, "{sec}");
    let current = h1.path("current.xml");
    std::fs::write(&current, kp_of(&h1)).unwrap();
    let shown = h1.json(&["kp", "show", s(&current)]);
    let signer = shown["signed_by"].as_u64().unwrap();
    let w = shown["wrappings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"].as_u64() == Some(signer))
        .unwrap();
    assert_eq!(w["local_guardian"], "fabric", "{shown}");
    assert_eq!(
        w["private_keys_here"], false,
        "the host never holds the fabric's keys"
    );
    assert_eq!(shown["verified"], true, "{shown}");
    assert!(
        !contains_file(&h1.data, VALUE),
        "the NV value is on disk in the clear"
    );

    // An unregistered host is refused and nothing of its VM changes.
    let h2 = hgs_host(&kps, &server, &ca, "h2", false);
    add_vm(&h2, &kp);
    let before = kp_of(&h2);
    let err = h2.fails(&["tpm", "start", "vm1", "--socket", s(&h2.path("vm1.sock"))]);
    assert!(
        err.contains("UnauthorizedErrorReply") && err.contains("not registered"),
        "{err}"
    );
    assert_eq!(kp_of(&h2), before);
    assert_eq!(
        h2.json(&["vm", "show", "vm1"])["vtpm_state_key_sealed"],
        false
    );

    // deny-before: the cached health certificate is refused, the host attests anew by itself.
    kps.ok(&[
        "kps",
        "deny-before",
        &time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
    ]);
    std::thread::sleep(Duration::from_millis(1100));
    start(&h1);
    stop(&h1);

    // A removed host is refused at its next start, health certificate or not.
    kps.ok(&["kps", "host", "remove", "h1"]);
    let before = kp_of(&h1);
    let t = Instant::now();
    let err = h1.fails(&["tpm", "start", "vm1", "--socket", s(&h1.path("vm1.sock"))]);
    assert!(err.contains("not registered"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(kp_of(&h1), before);

    // The audit names hosts and outcomes, and holds no key.
    let audit = kps.json(&["kps", "audit", "--limit", "1000"]);
    let records = audit.as_array().unwrap();
    let count = |op: &str, outcome: &str| {
        records
            .iter()
            .filter(|r| r["operation"] == op && r["outcome"] == outcome)
            .count()
    };
    assert!(count("RollTransportKey", "succeeded") >= 3, "{audit}");
    assert!(count("HealthCertificate", "denied") >= 1, "{audit}");
    assert!(count("RollTransportKey", "denied") >= 1, "{audit}");
}

#[test]
fn with_the_kps_down_a_start_fails_quickly_and_the_fallback_serves_it() {
    if !tools_present() {
        return;
    }
    let (kps, ca) = new_kps();
    let primary = KpsProcess::start(&kps);
    let (_owner, kp) = owner_kp(&primary, &ca);
    let h1 = hgs_host(&kps, &primary, &ca, "h1", true);
    add_vm(&h1, &kp);
    let dead = (primary.attestation(), primary.key_protection());
    primary.kill();

    let t = Instant::now();
    let err = h1.fails(&["tpm", "start", "vm1", "--socket", s(&h1.path("vm1.sock"))]);
    assert!(err.contains("unreachable"), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(kp_of(&h1), std::fs::read(&kp).unwrap());

    // A second KPS node on the same state, as the fallback.
    let fallback = KpsProcess::start(&kps);
    h1.ok(&[
        "hgs",
        "set",
        "--attestation-url",
        &dead.0,
        "--key-protection-url",
        &dead.1,
        "--fallback-attestation-url",
        &fallback.attestation(),
        "--fallback-key-protection-url",
        &fallback.key_protection(),
        "--ca",
        s(&ca),
    ]);
    start(&h1);
    stop(&h1);
    assert_ne!(kp_of(&h1), std::fs::read(&kp).unwrap());
}

/// The Python client's own host: its key made by the script, registered at `kps` as "py".
fn python_host(python: &str, kps: &Dir) -> (Dir, PathBuf) {
    let client = Dir::new();
    let dir = client.path("py");
    py_ok(python, &["keygen", s(&dir)]);
    let public = dir.join("host-key.pub.pem");
    kps.ok(&["kps", "host", "add", "py", "--host-key", s(&public)]);
    (client, dir)
}

fn py(python: &str, args: &[&str]) -> Output {
    Command::new(python)
        .arg(repo_root().join("tests/python/kps_client.py"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running kps_client.py")
}

fn py_ok(python: &str, args: &[&str]) -> String {
    let out = py(python, args);
    assert!(
        out.status.success(),
        "kps_client.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn an_independent_client_attests_rolls_and_checks_both_transport_keys_and_every_refusal() {
    let Some(python) = python() else { return };
    py_ok(&python, &["selftest"]);
    let (kps, ca) = new_kps();
    let server = KpsProcess::start(&kps);
    let (owner, kp) = owner_kp(&server, &ca);
    let (client, dir) = python_host(&python, &kps);
    let urls = |att: &str, kp_url: &str| -> Vec<String> {
        [
            "--attestation-url",
            att,
            "--key-protection-url",
            kp_url,
            "--ca",
            s(&ca),
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let ours = urls(&server.attestation(), &server.key_protection());
    let egress = client.path("egress.xml");
    for version in ["V2.0", "V1.0"] {
        let mut a: Vec<String> = vec!["roll".into(), s(&dir).into()];
        a.extend(ours.clone());
        a.extend([
            "--kp".into(),
            s(&kp).into(),
            "--egress".into(),
            s(&egress).into(),
            "--version".into(),
            version.into(),
        ]);
        let line = py_ok(&python, &a.iter().map(String::as_str).collect::<Vec<_>>());
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["version"], version);
        assert_ne!(v["tk1_sha256"], v["tk2_sha256"]);
    }
    // What vmsec's own checker says of the protector the Python client got back.
    // The owner unwraps it too (its wrapping got TK2), and it verifies.
    let shown = owner.json(&["kp", "show", s(&egress)]);
    assert_eq!(shown["verified"], true, "{shown}");
    assert_eq!(shown["unwrapped_here"], true, "{shown}");

    let refusal = |kp_file: &Path, urls: &[String], status: &str, code: &str| {
        let mut a: Vec<String> = vec!["expect-refusal".into(), s(&dir).into()];
        a.extend(urls.iter().cloned());
        a.extend(["--kp", s(kp_file), "--status", status, "--code", code].map(str::to_owned));
        py_ok(&python, &a.iter().map(String::as_str).collect::<Vec<_>>());
    };
    // A changed byte in a wrapping.
    let text = std::fs::read_to_string(&kp).unwrap();
    let at = text.rfind("<CipherValue>").unwrap() + "<CipherValue>".len() + 8;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let tampered = client.path("tampered.xml");
    std::fs::write(&tampered, &bytes).unwrap();
    refusal(&tampered, &ours, "400", "InvalidProtectorException");
    // A KP that does not grant the fabric.
    owner.ok(&["guardian", "new", "other", "--key-size", "2048"]);
    let without = client.path("without.xml");
    owner.ok(&["kp", "new", "--owner", "other", "--out", s(&without)]);
    refusal(&without, &ours, "400", "InvalidProtectorException");
    // A health certificate from another fabric's signer.
    let (other_kps, other_ca) = new_kps();
    let other = KpsProcess::start(&other_kps);
    other_kps.ok(&[
        "kps",
        "host",
        "add",
        "py",
        "--host-key",
        s(&dir.join("host-key.pub.pem")),
    ]);
    let mut mixed = urls(&other.attestation(), &server.key_protection());
    // Both servers' certificates are self-signed; the client trusts them with one bundle.
    let bundle = client.path("both.pem");
    std::fs::write(
        &bundle,
        [
            std::fs::read(&ca).unwrap(),
            std::fs::read(&other_ca).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    *mixed.last_mut().unwrap() = s(&bundle).to_owned();
    refusal(&kp, &mixed, "403", "HealthCertificateException");
    // A removed host gets no health certificate.
    kps.ok(&["kps", "host", "remove", "py"]);
    refusal(&kp, &ours, "403", "UnauthorizedErrorReply");
}

/// Raw requests: malformed bodies and algorithms get the spec's error replies with 4xx.
#[test]
fn malformed_requests_get_the_specs_error_replies_never_a_5xx() {
    let Some(python) = python() else { return };
    let (kps, ca) = new_kps();
    let server = KpsProcess::start(&kps);
    let script = r#"
import json, sys, requests
url, ca = sys.argv[1], sys.argv[2]
def post(path, body, ct):
    try:
        r = requests.post(url + path, data=body, headers={"Content-Type": ct}, verify=ca, timeout=10)
    except requests.ConnectionError:
        # The server answered 413 at the headers and closed before the body was all sent.
        return [0, "closed"]
    return [r.status_code, r.text]
out = {
  "attest_garbage": post("/Attestation/v2.0/hostkeyattest", b"{not json", "application/json"),
  "attest_mode": post("/Attestation/v1.0/attest", b"{}", "application/json"),
  "tpm_attest_empty": post("/Attestation/v2.0/attest", b"{}", "application/json"),
  "roll_garbage": post("/KeyProtection/service/V2.0/rolltransportkey", b"<x", "application/xml"),
  "roll_alg": post("/KeyProtection/service/v2.0/RollTransportKey", b'<RollTransportKeyRequest xmlns="http://schemas.microsoft.com/kps/2014/07/service"><IngressProtector>AA==</IngressProtector><HealthCertificate>AA==</HealthCertificate><TransferKeyEncryptionAlgorithm>urn:x</TransferKeyEncryptionAlgorithm><WrappingKeyEncryptionAlgorithm>http://www.w3.org/2001/04/xmlenc#kw-aes256</WrappingKeyEncryptionAlgorithm><TransportKeysEncryptionAlgorithm>http://www.w3.org/2009/xmlenc11#aes256-gcm</TransportKeysEncryptionAlgorithm></RollTransportKeyRequest>', "application/xml"),
  "roll_bad_cert": post("/KeyProtection/service/V1.0/rolltransportkey", b'<RollTransportKeyRequest xmlns="http://schemas.microsoft.com/kps/2014/07/service"><IngressProtector>AA==</IngressProtector><HealthCertificate>AA==</HealthCertificate><TransferKeyEncryptionAlgorithm>http://www.w3.org/2009/xmlenc11#rsa-oaep</TransferKeyEncryptionAlgorithm><WrappingKeyEncryptionAlgorithm>http://www.w3.org/2001/04/xmlenc#kw-aes256</WrappingKeyEncryptionAlgorithm><TransportKeysEncryptionAlgorithm>http://www.w3.org/2009/xmlenc11#aes256-gcm</TransportKeysEncryptionAlgorithm></RollTransportKeyRequest>', "application/xml"),
  "roll_huge": post("/KeyProtection/service/V2.0/rolltransportkey", b"<" * (2 * 1024 * 1024), "application/xml"),
  "metrics_anon": [requests.get(url + "/metrics", verify=ca, timeout=10).status_code, ""],
}
print(json.dumps(out))
"#;
    let out = Command::new(&python)
        .args(["-c", script, &server.url, s(&ca)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let is = |k: &str, status: u64, needle: &str| {
        assert_eq!(v[k][0], status, "{k}: {}", v[k]);
        assert!(v[k][1].as_str().unwrap().contains(needle), "{k}: {}", v[k]);
    };
    is("attest_garbage", 400, "PayloadErrorReply");
    is("attest_mode", 400, "OperationModeErrorReply");
    is("tpm_attest_empty", 400, "PayloadErrorReply");
    is("roll_garbage", 400, "<Code>MalformedRequest</Code>");
    is("roll_alg", 400, "<Code>UnsupportedAlgorithm</Code>");
    is(
        "roll_bad_cert",
        403,
        "<Code>HealthCertificateException</Code>",
    );
    // Refused from its Content-Length, before a byte of it is read: the reply is a 413, or,
    // if the client was still sending, the closed connection.
    assert!(
        v["roll_huge"][0] == 413 || v["roll_huge"][0] == 0,
        "{}",
        v["roll_huge"]
    );
    assert_eq!(v["metrics_anon"][0], 401);
}

/// Releases answered under load are all in the audit log after a SIGKILL.
#[test]
fn a_kps_killed_under_load_keeps_the_audit_record_of_every_release_it_answered() {
    let Some(python) = python() else { return };
    let (kps, ca) = new_kps();
    let server = KpsProcess::start(&kps);
    let (_owner, kp) = owner_kp(&server, &ca);
    let (_client, dir) = python_host(&python, &kps);
    let load = Command::new(&python)
        .arg(repo_root().join("tests/python/kps_load.py"))
        .args([
            s(&dir),
            &server.attestation(),
            &server.key_protection(),
            s(&ca),
            s(&kp),
            "4",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    server.kill();
    let out = load.wait_with_output().unwrap();
    let answered: usize = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a count");
    assert!(answered > 0, "the load got no release before the kill");
    let audit = kps.json(&["kps", "audit", "--limit", "100000"]);
    let recorded = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["operation"] == "RollTransportKey" && r["outcome"] == "succeeded")
        .count();
    assert!(
        recorded >= answered,
        "{recorded} releases audited, {answered} answered"
    );
}

/// `tpm start` killed at any moment of the HGS exchange (attesting, rolling, unsealing,
/// starting swtpm, committing) leaves the VM startable with its vTPM data: the rolled
/// protector is committed only after swtpm is up, and the KPS keeps nothing per roll.
#[test]
fn a_start_killed_at_any_moment_of_the_hgs_exchange_leaves_the_vm_startable() {
    if !tools_present() {
        return;
    }
    let (kps, ca) = new_kps();
    let server = KpsProcess::start(&kps);
    let (_owner, kp) = owner_kp(&server, &ca);
    let h1 = hgs_host(&kps, &server, &ca, "h1", true);
    add_vm(&h1, &kp);
    let started = start(&h1);
    write_nv(&h1, &started);
    stop(&h1);
    for delay_ms in [5, 30, 80, 150, 250, 400] {
        // A fresh attestation each time, so the kill can land in it too.
        h1.ok(&[
            "hgs",
            "set",
            "--attestation-url",
            &server.attestation(),
            "--key-protection-url",
            &server.key_protection(),
            "--ca",
            s(&ca),
        ]);
        let mut child = Command::new(env!("CARGO_BIN_EXE_vmsec"))
            .arg("--data")
            .arg(&h1.data)
            .args(["tpm", "start", "vm1", "--socket", s(&h1.path("vm1.sock"))])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // A swtpm the killed start had launched is stopped as an operator would.
        h1.ok(&["tpm", "stop", "vm1"]);
    }
    let started = start(&h1);
    let tcti = started["tcti"].as_str().unwrap().to_owned();
    assert_eq!(
        tpm2(&tcti, "tpm2_nvread", &[NV_INDEX, "-C", "o", "-s", "32"]),
        VALUE
    );
    stop(&h1);
    assert_eq!(
        h1.json(&["vm", "show", "vm1"])["last_known_good_is_current"],
        true
    );
}
