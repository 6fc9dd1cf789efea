//! Golden files: a protector (owner + 2 guardians) and a metadata.xml written
//! once by `generate_golden_files` and committed. Every later version of the
//! crate must read, verify and unwrap them to the recorded transport key.

use std::path::PathBuf;

use vmsec_kp::{Guardian, KeySize, PrivateKeys, Protector, export_metadata, import_metadata};

const NAMES: [&str; 3] = ["owner", "guardian1", "guardian2"];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("testdata/{name}: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The three identities, rebuilt from the certificates in the golden protector
/// (wrapping i+1) and the committed PKCS#8 keys.
fn identities(kp: &Protector) -> Vec<Guardian> {
    NAMES
        .iter()
        .zip(kp.wrappings())
        .map(|(name, w)| {
            let keys = PrivateKeys::from_pkcs8_pem(
                &read(&format!("{name}.encryption.key.pem")),
                &read(&format!("{name}.signing.key.pem")),
            )
            .expect("key PEM");
            Guardian::from_parts(
                name,
                w.encryption_cert.clone(),
                w.signing_cert.clone(),
                None,
                Some(keys),
            )
            .expect("keys match the certificates")
        })
        .collect()
}

#[test]
#[ignore = "rewrites testdata/: run by hand only when the golden files must change"]
fn generate_golden_files() {
    let guardians: Vec<Guardian> = NAMES
        .iter()
        .map(|n| Guardian::generate(n, KeySize::Rsa2048).expect("keygen"))
        .collect();
    let kp = Protector::new(
        &guardians[0],
        &[guardians[1].public(), guardians[2].public()],
    )
    .expect("new");
    let tk = kp
        .unwrap(std::slice::from_ref(&guardians[0]))
        .expect("unwrap");
    std::fs::create_dir_all(dir()).expect("mkdir");
    std::fs::write(dir().join("golden-kp.xml"), kp.as_bytes()).expect("write");
    std::fs::write(dir().join("golden-kp.tk.hex"), hex(tk.as_bytes()) + "\n").expect("write");
    for (name, g) in NAMES.iter().zip(&guardians) {
        let (enc, sign) = g.export_private_pkcs8_pem().expect("keys");
        std::fs::write(
            dir().join(format!("{name}.encryption.key.pem")),
            enc.as_bytes(),
        )
        .expect("write");
        std::fs::write(
            dir().join(format!("{name}.signing.key.pem")),
            sign.as_bytes(),
        )
        .expect("write");
    }
    std::fs::write(
        dir().join("owner-metadata.xml"),
        export_metadata(&guardians[0]).expect("metadata"),
    )
    .expect("write");
}

#[test]
fn the_golden_protector_verifies_and_every_guardian_unwraps_the_recorded_key() {
    let kp = Protector::parse(read("golden-kp.xml").as_bytes()).expect("parses");
    kp.verify().expect("verifies");
    let expected = read("golden-kp.tk.hex").trim().to_owned();
    let ids = identities(&kp);
    for g in &ids {
        let tk = kp.unwrap(std::slice::from_ref(g)).expect("unwraps");
        assert_eq!(hex(tk.as_bytes()), expected, "{}", g.name());
    }
}

#[test]
fn the_golden_protector_can_still_be_administered_and_rolled() {
    let kp = Protector::parse(read("golden-kp.xml").as_bytes()).expect("parses");
    let ids = identities(&kp);
    let revoked = kp.revoke(&ids[0], &ids[2].public()).expect("owner revokes");
    let rolled = revoked.roll(&ids[1..2]).expect("guardian rolls");
    assert_eq!(
        hex(rolled.previous.as_bytes()),
        read("golden-kp.tk.hex").trim()
    );
    assert_eq!(
        rolled.protector.unwrap(&ids[..1]),
        Ok(rolled.current.clone())
    );
}

#[test]
fn the_golden_metadata_imports_as_the_golden_owner() {
    let kp = Protector::parse(read("golden-kp.xml").as_bytes()).expect("parses");
    let owner = import_metadata("owner", read("owner-metadata.xml").as_bytes()).expect("imports");
    let w = kp.owner().expect("owner");
    assert_eq!(owner.signing_cert_der(), w.signing_cert.as_slice());
    assert_eq!(owner.encryption_cert_der(), w.encryption_cert.as_slice());
}
