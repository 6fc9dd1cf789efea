//! Guardians as MS-KPS metadata.xml: export, import, and every check on import.

mod common;

use common::{flip_in_element, only, pool};
use vmsec_kp::{Error, Protector, SignatureKind, export_metadata, import_metadata};

#[test]
fn exported_metadata_imports_as_the_same_public_guardian() {
    let g = &pool()[1];
    let xml = export_metadata(g).expect("exports");
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Metadata "));
    let imported = import_metadata("remote", xml.as_bytes()).expect("imports");
    assert_eq!(imported.name(), "remote");
    assert!(!imported.has_private_keys());
    assert_eq!(imported.encryption_cert_der(), g.encryption_cert_der());
    assert_eq!(imported.signing_cert_der(), g.signing_cert_der());
    assert_eq!(
        imported.encryption_cert_signature(),
        g.encryption_cert_signature()
    );
}

#[test]
fn an_imported_guardian_can_be_granted_and_then_unwraps_with_its_own_keys() {
    let p = pool();
    let imported = import_metadata("g2", export_metadata(&p[2]).expect("exports").as_bytes())
        .expect("imports");
    let kp = Protector::new(&p[0], &[imported]).expect("new");
    let tk = kp.unwrap(only(&p[0])).expect("owner");
    assert_eq!(kp.unwrap(only(&p[2])), Ok(tk));
}

#[test]
fn export_needs_the_signing_key() {
    assert!(matches!(
        export_metadata(&pool()[1].public()),
        Err(Error::MissingPrivateKey { .. })
    ));
}

#[test]
fn any_change_to_the_signed_content_breaks_the_digest() {
    let xml = export_metadata(&pool()[1]).expect("exports");
    let changed = xml.replacen("<Version>1</Version>", "<Version>2</Version>", 1);
    assert!(matches!(
        import_metadata("x", changed.as_bytes()),
        Err(Error::MetadataSignature(m)) if m.contains("DigestValue")
    ));
}

#[test]
fn a_flipped_document_signature_is_refused() {
    let xml = export_metadata(&pool()[1]).expect("exports");
    let changed = flip_in_element(&xml, "ds:SignatureValue", 0);
    assert_eq!(
        import_metadata("x", changed.as_bytes()).map(|_| ()),
        Err(Error::BadSignature {
            kind: SignatureKind::MetadataDocument,
            wrapping: None
        })
    );
}

#[test]
fn a_flipped_encryption_certificate_signature_is_refused() {
    // Re-signing is not possible without the key, so this also breaks the digest:
    // the digest check runs after the certificate self-signature check and before
    // the encryption certificate signature, so the document check reports it.
    let xml = export_metadata(&pool()[1]).expect("exports");
    let changed = flip_in_element(&xml, "SignatureValue", 0);
    assert!(matches!(
        import_metadata("x", changed.as_bytes()),
        Err(Error::MetadataSignature(_))
    ));
}

#[test]
fn a_flipped_self_signature_is_refused_by_name() {
    let xml = export_metadata(&pool()[1]).expect("exports");
    let changed = flip_in_element(&xml, "SignatureValue", 1);
    assert_eq!(
        import_metadata("x", changed.as_bytes()).map(|_| ()),
        Err(Error::BadSignature {
            kind: SignatureKind::SigningCertificateSelf,
            wrapping: None
        })
    );
}

#[test]
fn key_info_naming_a_certificate_that_did_not_sign_is_refused() {
    let p = pool();
    let xml = export_metadata(&p[1]).expect("exports");
    let mine = vmsec_kp_b64(p[1].signing_cert_der());
    let other = vmsec_kp_b64(p[2].signing_cert_der());
    let tail_at = xml.find("<ds:X509Certificate>").expect("key info");
    let changed = format!(
        "{}{}",
        &xml[..tail_at],
        xml[tail_at..].replacen(&mine, &other, 1)
    );
    let e = import_metadata("x", changed.as_bytes()).unwrap_err();
    assert!(
        e.to_string().contains("ds:Signature does not verify"),
        "{e}"
    );
}

#[test]
fn metadata_signed_by_a_kps_communications_key_imports_as_the_guardian() {
    let p = pool();
    let (comms_key, _) = p[2].export_private_pkcs8_pem().unwrap();
    let der = vmsec_kp::cert_der_from_pem_or_der(p[2].signing_cert_pem().as_bytes()).unwrap();
    // pool()[2]'s signing key and certificate stand for a KPS's communications key; its
    // encryption key with that certificate is a mismatched pair, refused.
    let (_, signing_pem) = p[2].export_private_pkcs8_pem().unwrap();
    let pkcs8 = |pem: &str| {
        use base64::Engine as _;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    };
    assert!(vmsec_kp::export_metadata_signed_by(&p[1], &pkcs8(&comms_key), &der).is_err());
    let xml =
        vmsec_kp::export_metadata_signed_by(&p[1], &pkcs8(&signing_pem), &der).expect("exports");
    assert!(xml.contains(&vmsec_kp_b64(&der)));
    let g = import_metadata("fabric", xml.as_bytes()).expect("imports");
    assert_eq!(g.signing_cert_der(), p[1].signing_cert_der());
    assert_eq!(g.encryption_cert_der(), p[1].encryption_cert_der());
}

#[test]
fn an_unknown_canonicalization_is_named() {
    let xml = export_metadata(&pool()[1]).expect("exports");
    let changed = xml.replacen(
        "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
        "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2006/12/xml-c14n11\"/>",
        1,
    );
    assert_eq!(
        import_metadata("x", changed.as_bytes()).map(|_| ()),
        Err(Error::UnsupportedAlgorithm {
            element: "ds:CanonicalizationMethod".into(),
            uri: "http://www.w3.org/2006/12/xml-c14n11".into()
        })
    );
}

#[test]
fn metadata_without_a_signature_is_refused() {
    let xml = export_metadata(&pool()[1]).expect("exports");
    let start = xml.find("<ds:Signature").expect("sig");
    let end = xml.find("</ds:Signature>").expect("sig end") + "</ds:Signature>".len();
    let unsigned = format!("{}{}", &xml[..start], &xml[end..]);
    assert!(matches!(
        import_metadata("x", unsigned.as_bytes()),
        Err(Error::MissingElement { expected, .. }) if expected == "ds:Signature"
    ));
}

#[test]
fn metadata_with_a_doctype_is_refused() {
    let xml = export_metadata(&pool()[1]).expect("exports");
    let with_dtd = xml.replacen(
        "<Metadata ",
        "<!DOCTYPE Metadata [<!ENTITY e \"x\">]><Metadata ",
        1,
    );
    assert_eq!(
        import_metadata("x", with_dtd.as_bytes()).map(|_| ()),
        Err(Error::DtdForbidden)
    );
}

#[test]
fn metadata_with_a_namespace_nesting_bomb_is_refused_as_too_deep() {
    let xml = export_metadata(&pool()[1]).expect("exports");
    let levels = 20_000;
    let open: String = (0..levels)
        .map(|i| format!("<a xmlns:p{i}=\"u\">"))
        .collect();
    let bomb = format!("{open}{}", "</a>".repeat(levels));
    let with_bomb = xml.replacen(
        "<GuardianInformation>",
        &format!("<GuardianInformation>{bomb}"),
        1,
    );
    assert_eq!(
        import_metadata("x", with_bomb.as_bytes()).map(|_| ()),
        Err(Error::TooDeep {
            limit: vmsec_kp::MAX_DEPTH
        })
    );
    let flood: String = (0..=vmsec_kp::MAX_NAMESPACE_DECLARATIONS)
        .map(|i| format!("<x xmlns:q{i}=\"u\"/>"))
        .collect();
    let with_flood = xml.replacen(
        "<GuardianInformation>",
        &format!("<GuardianInformation>{flood}"),
        1,
    );
    match import_metadata("x", with_flood.as_bytes()) {
        Err(Error::Malformed(m)) => assert!(m.contains("namespace declarations"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

fn vmsec_kp_b64(der: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(der)
}
