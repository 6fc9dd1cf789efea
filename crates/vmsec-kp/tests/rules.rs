//! One test per rule of the profile: a valid protector (owner + 2 guardians)
//! broken in exactly one way must fail with exactly that rule's error.

mod common;

use std::sync::OnceLock;

use common::{edit_wrapping, flip_in_element, only, pool};
use vmsec_kp::{CertRole, Error, Protector, SignatureKind};

/// Owner g0, guardians g1 and g2 (wrappings 1, 2, 3).
fn valid() -> &'static str {
    static KP: OnceLock<String> = OnceLock::new();
    KP.get_or_init(|| {
        let p = pool();
        let kp = Protector::new(&p[0], &[p[1].public(), p[2].public()]).expect("new");
        String::from_utf8(kp.into_bytes()).expect("utf-8")
    })
}

fn verify(xml: &str) -> Result<(), Error> {
    Protector::parse(xml.as_bytes())?.verify()
}

#[test]
fn the_untouched_protector_verifies_and_unwraps_for_every_wrapping() {
    let kp = Protector::parse(valid().as_bytes()).expect("parses");
    kp.verify().expect("verifies");
    let tk = kp.unwrap(only(&pool()[0])).expect("owner unwraps");
    assert_eq!(kp.unwrap(only(&pool()[1])), Ok(tk.clone()));
    assert_eq!(kp.unwrap(only(&pool()[2])), Ok(tk));
}

// Signature values in document order: per wrapping SigningCertificateSignature then
// EncryptionCertificateSignature (0..6), then TransportKeySignature (6), GuardianSignature (7).

#[test]
fn a_flipped_signing_certificate_signature_names_its_wrapping() {
    let xml = edit_wrapping(valid(), 2, |w| flip_in_element(w, "SignatureValue", 0));
    assert_eq!(
        verify(&xml),
        Err(Error::BadSignature {
            kind: SignatureKind::SigningCertificate,
            wrapping: Some(2)
        })
    );
}

#[test]
fn a_flipped_encryption_certificate_signature_names_its_wrapping() {
    let xml = edit_wrapping(valid(), 3, |w| flip_in_element(w, "SignatureValue", 1));
    assert_eq!(
        verify(&xml),
        Err(Error::BadSignature {
            kind: SignatureKind::EncryptionCertificate,
            wrapping: Some(3)
        })
    );
}

#[test]
fn a_flipped_guardian_signature_fails_verification() {
    let xml = flip_in_element(valid(), "SignatureValue", 7);
    assert_eq!(
        verify(&xml),
        Err(Error::BadSignature {
            kind: SignatureKind::Guardian,
            wrapping: Some(1)
        })
    );
}

#[test]
fn a_flipped_transport_key_signature_passes_verify_but_fails_unwrap() {
    let xml = flip_in_element(valid(), "SignatureValue", 6);
    let kp = Protector::parse(xml.as_bytes()).expect("parses");
    kp.verify()
        .expect("the HMAC needs the TK, so verify cannot see it");
    assert_eq!(
        kp.unwrap(only(&pool()[1])),
        Err(Error::BadSignature {
            kind: SignatureKind::TransportKey,
            wrapping: None
        })
    );
}

#[test]
fn a_flipped_cipher_value_is_caught_by_the_guardian_signature() {
    // CipherValue lies inside the signed <Wrappings>; the unit tests re-sign such a
    // protector to show that decryption itself then fails with DecryptionFailed.
    let xml = edit_wrapping(valid(), 2, |w| flip_in_element(w, "CipherValue", 0));
    assert_eq!(
        Protector::parse(xml.as_bytes())
            .expect("parses")
            .unwrap(only(&pool()[1])),
        Err(Error::BadSignature {
            kind: SignatureKind::Guardian,
            wrapping: Some(1)
        })
    );
}

#[test]
fn swapped_certificates_are_refused_by_key_usage() {
    let xml = edit_wrapping(valid(), 2, |w| {
        let cert = |tag: &str| {
            let open = format!("<{tag}>");
            let s = w.find(&open).expect("cert") + open.len();
            let e = s + w[s..].find('<').expect("end");
            w[s..e].to_owned()
        };
        let (sign, enc) = (cert("SigningCertificate"), cert("EncryptionCertificate"));
        w.replace(&sign, "SIGN")
            .replace(&enc, &sign)
            .replace("SIGN", &enc)
    });
    assert_eq!(
        verify(&xml),
        Err(Error::WrongKeyUsage {
            wrapping: Some(2),
            role: CertRole::Signing,
            usage: "digitalSignature"
        })
    );
}

#[test]
fn two_self_parented_wrappings_are_two_owners() {
    let xml = edit_wrapping(valid(), 2, |w| {
        w.replace("ParentWrappingId=\"1\"", "ParentWrappingId=\"2\"")
    });
    assert_eq!(verify(&xml), Err(Error::MultipleOwners { ids: vec![1, 2] }));
}

#[test]
fn no_self_parented_wrapping_is_no_owner() {
    let xml = edit_wrapping(valid(), 1, |w| {
        w.replace("ParentWrappingId=\"1\"", "ParentWrappingId=\"2\"")
    });
    assert_eq!(verify(&xml), Err(Error::NoOwner));
}

#[test]
fn a_parent_cycle_that_never_reaches_the_owner_is_refused() {
    let xml = edit_wrapping(valid(), 2, |w| {
        w.replace("ParentWrappingId=\"1\"", "ParentWrappingId=\"3\"")
    });
    let xml = edit_wrapping(&xml, 3, |w| {
        w.replace("ParentWrappingId=\"1\"", "ParentWrappingId=\"2\"")
    });
    assert_eq!(verify(&xml), Err(Error::ParentCycle { wrapping: 2 }));
}

#[test]
fn a_parent_id_naming_no_wrapping_is_an_unknown_parent() {
    let xml = edit_wrapping(valid(), 3, |w| {
        w.replace("ParentWrappingId=\"1\"", "ParentWrappingId=\"99\"")
    });
    assert_eq!(
        verify(&xml),
        Err(Error::UnknownParent {
            wrapping: 3,
            parent: 99
        })
    );
}

#[test]
fn a_duplicate_wrapping_id_is_refused_at_parse() {
    let xml = edit_wrapping(valid(), 3, |w| w.replace("<Id>3</Id>", "<Id>2</Id>"));
    assert_eq!(
        Protector::parse(xml.as_bytes()),
        Err(Error::DuplicateWrappingId { id: 2 })
    );
}

#[test]
fn a_guardian_signature_naming_no_wrapping_is_refused() {
    let xml = valid().replace(
        "<GuardianSignature WrappingId=\"1\">",
        "<GuardianSignature WrappingId=\"7\">",
    );
    assert_eq!(verify(&xml), Err(Error::UnknownSigner { id: 7 }));
}

#[test]
fn an_unknown_algorithm_uri_is_named_in_the_error() {
    let xml = edit_wrapping(valid(), 2, |w| {
        w.replace(
            "http://www.w3.org/2009/xmlenc11#rsa-oaep",
            "urn:example:rot13",
        )
    });
    assert_eq!(
        Protector::parse(xml.as_bytes()),
        Err(Error::UnsupportedAlgorithm {
            element: "Wrapping 2/TransportKey/EncryptedData".into(),
            uri: "urn:example:rot13".into()
        })
    );
    let xml = valid().replace(
        "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512",
    );
    assert!(matches!(
        Protector::parse(xml.as_bytes()),
        Err(Error::UnsupportedAlgorithm { uri, .. }) if uri.ends_with("hmac-sha512")
    ));
}

#[test]
fn mismatched_oaep_digest_and_mgf_are_unsupported_parameters() {
    let xml = edit_wrapping(valid(), 2, |w| {
        w.replace(
            "http://www.w3.org/2009/xmlenc11#mgf1sha256",
            "http://www.w3.org/2009/xmlenc11#mgf1sha1",
        )
    });
    assert!(matches!(
        Protector::parse(xml.as_bytes()),
        Err(Error::UnsupportedParameters { element, .. }) if element == "Wrapping 2/TransportKey/EncryptedData"
    ));
}

#[test]
fn the_wrong_namespace_is_refused() {
    let xml = valid().replacen(
        "xmlns=\"http://schemas.microsoft.com/kps/2014/07\"",
        "xmlns=\"http://schemas.microsoft.com/kps/2099/01\"",
        1,
    );
    assert_eq!(
        Protector::parse(xml.as_bytes()),
        Err(Error::WrongNamespace {
            element: "Protector".into(),
            expected: "http://schemas.microsoft.com/kps/2014/07",
            found: Some("http://schemas.microsoft.com/kps/2099/01".into())
        })
    );
}

#[test]
fn a_doctype_or_entity_declaration_is_refused() {
    let with_entity = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE Protector [<!ENTITY x \"y\">]>\n{}",
        valid()
    );
    assert_eq!(
        Protector::parse(with_entity.as_bytes()),
        Err(Error::DtdForbidden)
    );
    let bare = format!("<!DOCTYPE Protector>{}", valid());
    assert_eq!(Protector::parse(bare.as_bytes()), Err(Error::DtdForbidden));
}

#[test]
fn a_ten_mebibyte_input_is_refused_before_parsing() {
    let mut big = valid().as_bytes().to_vec();
    big.resize(10 * 1024 * 1024, b' ');
    assert_eq!(
        Protector::parse(&big),
        Err(Error::TooLarge {
            size: 10 * 1024 * 1024,
            limit: vmsec_kp::MAX_INPUT_BYTES
        })
    );
}

#[test]
fn truncated_input_is_malformed() {
    let xml = valid();
    for cut in [0, 10, xml.len() / 2, xml.len() - 3] {
        assert!(
            matches!(
                Protector::parse(&xml.as_bytes()[..cut]),
                Err(Error::Malformed(_))
            ),
            "cut at {cut}"
        );
    }
}

#[test]
fn deep_nesting_is_refused() {
    let deep = format!("{}x{}", "<a>".repeat(100), "</a>".repeat(100));
    assert_eq!(
        Protector::parse(deep.as_bytes()),
        Err(Error::TooDeep {
            limit: vmsec_kp::MAX_DEPTH
        })
    );
}

/// `n` nested elements each declaring a prefix of its own, the shape whose parse cost grew as n³.
fn namespace_nest(n: usize) -> String {
    let open: String = (0..n).map(|i| format!("<a xmlns:p{i}=\"u\">")).collect();
    format!("{open}{}", "</a>".repeat(n))
}

#[test]
fn a_namespace_nesting_bomb_inside_a_protector_is_refused_as_too_deep() {
    // 20,000 levels (0.6 MB) used to cost over an hour of parsing before the depth check ran.
    let xml = valid().replacen(
        "<Wrappings>",
        &format!("<Wrappings>{}", namespace_nest(20_000)),
        1,
    );
    assert!(xml.len() < vmsec_kp::MAX_INPUT_BYTES);
    assert_eq!(
        Protector::parse(xml.as_bytes()),
        Err(Error::TooDeep {
            limit: vmsec_kp::MAX_DEPTH
        })
    );
}

#[test]
fn a_flood_of_namespace_declarations_is_refused_before_the_schema_is_checked() {
    let flood: String = (0..=vmsec_kp::MAX_NAMESPACE_DECLARATIONS)
        .map(|i| format!("<x xmlns:q{i}=\"u\"/>"))
        .collect();
    let xml = valid().replacen("<Wrappings>", &format!("<Wrappings>{flood}"), 1);
    match Protector::parse(xml.as_bytes()) {
        Err(Error::Malformed(m)) => assert!(m.contains("namespace declarations"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn two_byte_order_marks_are_refused_naming_them() {
    let one = format!("\u{feff}{}", valid());
    Protector::parse(one.as_bytes())
        .expect("one BOM is accepted")
        .verify()
        .expect("and verifies");
    let two = format!("\u{feff}\u{feff}{}", valid());
    match Protector::parse(two.as_bytes()) {
        Err(Error::Malformed(m)) => assert!(m.contains("byte-order marks"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn elements_out_of_schema_order_are_refused() {
    let xml = edit_wrapping(valid(), 2, |w| {
        let id = "<Id>2</Id>";
        w.replacen(id, "", 1)
            .replacen("</TransportKey>", &format!("</TransportKey>{id}"), 1)
    });
    assert!(matches!(
        Protector::parse(xml.as_bytes()),
        Err(Error::UnexpectedElement { parent, found, .. }) if parent == "Wrapping" && found == "SigningCertificate"
    ));
}

#[test]
fn stray_text_and_unknown_attributes_are_refused() {
    let xml = valid().replacen("<Wrappings>", "<Wrappings>junk", 1);
    assert_eq!(
        Protector::parse(xml.as_bytes()),
        Err(Error::UnexpectedText {
            element: "Wrappings".into()
        })
    );
    let xml = valid().replacen("<Wrappings>", "<Wrappings extra=\"1\">", 1);
    assert!(matches!(
        Protector::parse(xml.as_bytes()),
        Err(Error::UnexpectedAttribute { .. })
    ));
}

#[test]
fn a_bom_declaration_and_comments_outside_the_signed_form_are_accepted() {
    let xml = format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!-- exported -->\n{}",
        valid().replacen(
            "<Wrapping>",
            "<!-- comments are not canonical --><Wrapping>",
            1
        )
    );
    let kp = Protector::parse(xml.as_bytes()).expect("parses");
    kp.verify()
        .expect("comments are outside the canonical form");
    kp.unwrap(only(&pool()[2])).expect("unwraps");
}

#[test]
fn whitespace_inside_wrappings_is_signed() {
    let xml = valid().replacen("<Wrapping>", "<Wrapping>\n", 1);
    assert_eq!(
        verify(&xml),
        Err(Error::BadSignature {
            kind: SignatureKind::Guardian,
            wrapping: Some(1)
        })
    );
}

#[test]
fn error_messages_name_the_rule_and_never_hold_key_material() {
    let msg = Error::BadSignature {
        kind: SignatureKind::EncryptionCertificate,
        wrapping: Some(3),
    }
    .to_string();
    assert_eq!(
        msg,
        "EncryptionCertificateSignature of wrapping 3 does not verify"
    );
    let msg = Error::UnsupportedAlgorithm {
        element: "GuardianSignature/Signature".into(),
        uri: "urn:x".into(),
    }
    .to_string();
    assert!(msg.contains("urn:x") && msg.contains("GuardianSignature"));
}
