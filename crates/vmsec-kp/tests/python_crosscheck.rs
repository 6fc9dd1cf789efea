//! Cross-check against an independent implementation in Python (lxml +
//! cryptography): tests/python/kp_crosscheck.py. `$VMSEC_PYTHON` names a
//! Python with tests/python/requirements.txt installed. Unset: skipped
//! locally, a failure under CI=true.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{only, pool};
use vmsec_kp::{
    Guardian, PrivateKeys, Protector, cert_der_from_pem_or_der, export_metadata, import_metadata,
};

fn python() -> Option<String> {
    match std::env::var("VMSEC_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "VMSEC_PYTHON is not set: under CI the Python cross-check must run \
                 (python3 -m venv V && V/bin/pip install -r crates/vmsec-kp/tests/python/requirements.txt; \
                 VMSEC_PYTHON=V/bin/python)"
            );
            eprintln!("skipped: VMSEC_PYTHON is not set");
            None
        }
    }
}

fn run(python: &str, mode: &str, dir: &Path) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/kp_crosscheck.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(mode)
        .arg(dir)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "kp_crosscheck.py {mode} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_vmsec_case(dir: &Path, kp: &Protector, tk_hex: &str, guardian: &Guardian) {
    std::fs::write(dir.join("kp.xml"), kp.as_bytes()).expect("write");
    std::fs::write(
        dir.join("canonical-wrappings.bin"),
        kp.canonical_wrappings(),
    )
    .expect("write");
    std::fs::write(dir.join("tk.hex"), tk_hex).expect("write");
    let (enc, _) = guardian.export_private_pkcs8_pem().expect("keys");
    std::fs::write(dir.join("guardian.encryption.key.pem"), enc.as_bytes()).expect("write");
}

#[test]
fn python_verifies_a_vmsec_protector_its_canonical_form_and_metadata() {
    let Some(py) = python() else { return };
    let p = pool();
    let kp = Protector::new(&p[0], &[p[1].public(), p[2].public()]).expect("new");
    let tk = kp.unwrap(only(&p[2])).expect("unwrap");
    let dir = tempfile::tempdir().expect("tempdir");
    write_vmsec_case(dir.path(), &kp, &hex(tk.as_bytes()), &p[2]);
    std::fs::write(
        dir.path().join("metadata.xml"),
        export_metadata(&p[1]).expect("metadata"),
    )
    .expect("write");
    run(&py, "verify-vmsec", dir.path());

    // And after a roll by a guardian (GuardianSignature by wrapping 2).
    let rolled = kp.roll(only(&p[1])).expect("roll");
    let dir = tempfile::tempdir().expect("tempdir");
    write_vmsec_case(
        dir.path(),
        &rolled.protector,
        &hex(rolled.current.as_bytes()),
        &p[0],
    );
    run(&py, "verify-vmsec", dir.path());
}

fn load(dir: &Path, name: &str) -> Guardian {
    let read = |f: String| std::fs::read(dir.join(f)).expect("read");
    let text = |f: String| String::from_utf8(read(f)).expect("utf-8");
    Guardian::from_parts(
        name,
        cert_der_from_pem_or_der(&read(format!("{name}.encryption.cert.pem"))).expect("cert"),
        cert_der_from_pem_or_der(&read(format!("{name}.signing.cert.pem"))).expect("cert"),
        None,
        Some(
            PrivateKeys::from_pkcs8_pem(
                &text(format!("{name}.encryption.key.pem")),
                &text(format!("{name}.signing.key.pem")),
            )
            .expect("keys"),
        ),
    )
    .expect("guardian")
}

#[test]
fn vmsec_verifies_unwraps_and_administers_a_protector_python_built() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    run(&py, "make-kp", dir.path());
    let bytes = std::fs::read(dir.path().join("kp.xml")).expect("kp");
    let expected = std::fs::read_to_string(dir.path().join("tk.hex")).expect("tk");
    let kp = Protector::parse(&bytes).expect("parses");
    kp.verify().expect("verifies");
    let owner = load(dir.path(), "owner");
    let guardian = load(dir.path(), "guardian");
    for g in [&owner, &guardian] {
        assert_eq!(
            hex(kp.unwrap(only(g)).expect("unwraps").as_bytes()),
            expected.trim()
        );
    }
    let extra = &pool()[3];
    let granted = kp.grant(&owner, &extra.public()).expect("grant");
    assert_eq!(
        hex(granted.unwrap(only(extra)).expect("unwraps").as_bytes()),
        expected.trim()
    );
}

#[test]
fn vmsec_imports_hgs_style_metadata_signed_with_inclusive_c14n() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    run(&py, "make-metadata", dir.path());
    let xml = std::fs::read(dir.path().join("hgs-metadata.xml")).expect("metadata");
    let g = import_metadata("hgs", &xml).expect("imports");
    let cert =
        |f: &str| cert_der_from_pem_or_der(&std::fs::read(dir.path().join(f)).expect("read"));
    assert_eq!(
        g.signing_cert_der(),
        cert("hgs.signing.cert.pem").expect("cert")
    );
    assert_eq!(
        g.encryption_cert_der(),
        cert("hgs.encryption.cert.pem").expect("cert")
    );
    let tampered = String::from_utf8(xml).expect("utf-8").replacen(
        "<Version>1</Version>",
        "<Version>7</Version>",
        1,
    );
    assert!(import_metadata("hgs", tampered.as_bytes()).is_err());
}
