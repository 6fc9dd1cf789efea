//! Hostile or broken input fails with the specific error kind, never a panic.

use vmsec_cim::limits::{
    MAX_ARRAY_LEN, MAX_DEPTH, MAX_INPUT_BYTES, MAX_PROPERTIES, MAX_STRING_BYTES,
    MAX_XML_NAMESPACE_DECLARATIONS,
};
use vmsec_cim::{ErrorKind, parse_embedded_instance, parse_embedded_instance_bytes};

fn kind(text: &str) -> ErrorKind {
    match parse_embedded_instance(text) {
        Ok(i) => panic!("accepted: {i:?}"),
        Err(e) => e.kind(),
    }
}

fn prop(name: &str, ty: &str, value: &str) -> String {
    format!("<PROPERTY NAME=\"{name}\" TYPE=\"{ty}\"><VALUE>{value}</VALUE></PROPERTY>")
}

fn instance(body: &str) -> String {
    format!("<INSTANCE CLASSNAME=\"Msvm_SecuritySettingData\">{body}</INSTANCE>")
}

#[test]
fn truncated_xml_is_truncated() {
    assert_eq!(
        kind("<INSTANCE CLASSNAME=\"X\"><PROPERTY NAME=\"a\" TYPE=\"boolean\"><VALUE>TRUE"),
        ErrorKind::Truncated
    );
    assert_eq!(
        kind("<INSTANCE CLASSNAME=\"X\"><PROPERTY NAME=\"a"),
        ErrorKind::Truncated
    );
}

#[test]
fn truncated_mof_is_truncated() {
    assert_eq!(kind("instance of X { A = TRUE;"), ErrorKind::Truncated);
    assert_eq!(
        kind("instance of X { A = \"open string"),
        ErrorKind::Truncated
    );
    assert_eq!(
        kind("instance of X { A = TRUE; /* open comment"),
        ErrorKind::Truncated
    );
}

#[test]
fn unbalanced_tags_are_syntax_errors_with_position() {
    let text = "<INSTANCE CLASSNAME=\"X\">\n<PROPERTY NAME=\"a\" TYPE=\"string\"><VALUE>x</PROPERTY></INSTANCE>";
    let err = parse_embedded_instance(text).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Syntax);
    assert_eq!(err.position().map(|p| p.line), Some(2));
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn mof_syntax_errors_are_syntax_errors() {
    assert_eq!(kind("instance of X { A TRUE; };"), ErrorKind::Syntax);
    assert_eq!(
        kind("instance of X { A = TRUE; }; extra"),
        ErrorKind::Syntax
    );
    assert_eq!(
        kind("instance of X { A = \"bad \\q escape\"; };"),
        ErrorKind::Syntax
    );
}

#[test]
fn text_that_is_not_a_number_for_a_numeric_type_is_invalid_value_naming_the_property() {
    let err =
        parse_embedded_instance(&instance(&prop("ChangeableType", "uint16", "abc"))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidValue);
    assert_eq!(err.property(), Some("ChangeableType"));
    assert!(err.to_string().contains("ChangeableType"), "{err}");
    assert_eq!(
        kind(&instance(&prop("TpmEnabled", "boolean", "yes"))),
        ErrorKind::InvalidValue
    );
}

#[test]
fn mof_literal_of_the_wrong_kind_for_the_schema_type_is_invalid_value() {
    let err =
        parse_embedded_instance("instance of Msvm_SecuritySettingData { TpmEnabled = \"yes\"; };")
            .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidValue);
    assert_eq!(err.property(), Some("TpmEnabled"));
    assert_eq!(
        kind("instance of Msvm_TPMSettingData { KeyProtector = 5; };"),
        ErrorKind::InvalidValue
    );
    assert_eq!(
        kind("instance of Msvm_SecuritySettingData { TpmEnabled = {TRUE}; };"),
        ErrorKind::InvalidValue
    );
}

#[test]
fn value_outside_its_type_is_out_of_range() {
    let text = String::from(
        "<INSTANCE CLASSNAME=\"Msvm_TPMSettingData\"><PROPERTY.ARRAY NAME=\"KeyProtector\" TYPE=\"uint8\">\
         <VALUE.ARRAY><VALUE>1</VALUE><VALUE>300</VALUE></VALUE.ARRAY></PROPERTY.ARRAY></INSTANCE>",
    );
    let err = parse_embedded_instance(&text).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfRange);
    assert_eq!(err.property(), Some("KeyProtector"));
    assert_eq!(
        kind(&instance(&prop("X", "sint8", "-129"))),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        kind(&instance(&prop("X", "uint64", "18446744073709551616"))),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        kind(&instance(&prop("X", "uint32", "-1"))),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        kind(&instance(&prop("X", "real32", "1e39"))),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        kind("instance of Msvm_TPMSettingData { KeyProtector = {1, 300}; };"),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        kind("instance of Msvm_ConcreteJob { PercentComplete = 65536; };"),
        ErrorKind::OutOfRange
    );
}

#[test]
fn unknown_type_attribute_is_unknown_type() {
    assert_eq!(
        kind(&instance(&prop("X", "uint128", "1"))),
        ErrorKind::UnknownType
    );
    assert_eq!(
        kind("instance of X { [CIMTYPE(\"quaternion\")] A = 1; };"),
        ErrorKind::UnknownType
    );
}

#[test]
fn malformed_datetime_is_invalid_datetime() {
    assert_eq!(
        kind(&instance(&prop("X", "datetime", "2024-01-01T00:00:00Z"))),
        ErrorKind::InvalidDateTime
    );
    assert_eq!(
        kind(&instance(&prop(
            "X",
            "datetime",
            "20240230000000.000000+000"
        ))),
        ErrorKind::InvalidDateTime
    );
}

#[test]
fn input_over_the_size_limit_is_too_large_before_parsing() {
    let padding = " ".repeat(MAX_INPUT_BYTES);
    assert_eq!(
        kind(&format!("{padding}<INSTANCE CLASSNAME=\"X\"/>")),
        ErrorKind::TooLarge
    );
    assert_eq!(
        kind(&format!("instance of X {{ }};{padding}")),
        ErrorKind::TooLarge
    );
    let bytes = vec![b' '; MAX_INPUT_BYTES * 3];
    assert_eq!(
        parse_embedded_instance_bytes(&bytes).unwrap_err().kind(),
        ErrorKind::TooLarge
    );
}

#[test]
fn nesting_beyond_the_depth_limit_is_too_deep() {
    let depth = MAX_DEPTH + 5;
    let text = format!(
        "<INSTANCE CLASSNAME=\"X\">{}{}</INSTANCE>",
        "<QUALIFIER NAME=\"q\">".repeat(depth),
        "</QUALIFIER>".repeat(depth)
    );
    assert_eq!(kind(&text), ErrorKind::TooDeep);
    let mof = format!(
        "instance of X {{ {}{} A = 1; }};",
        "[q(".repeat(depth),
        ")]".repeat(depth)
    );
    assert_eq!(kind(&mof), ErrorKind::TooDeep);
}

#[test]
fn more_properties_than_the_limit_is_too_many_properties() {
    let body: String = (0..=MAX_PROPERTIES)
        .map(|i| prop(&format!("P{i}"), "uint8", "1"))
        .collect();
    assert_eq!(kind(&instance(&body)), ErrorKind::TooManyProperties);
    let mof: String = (0..=MAX_PROPERTIES).map(|i| format!("P{i} = 1;")).collect();
    assert_eq!(
        kind(&format!("instance of X {{ {mof} }};")),
        ErrorKind::TooManyProperties
    );
}

#[test]
fn array_longer_than_the_limit_is_array_too_long() {
    let values = "<VALUE/>".repeat(MAX_ARRAY_LEN + 1);
    let text = instance(&format!(
        "<PROPERTY.ARRAY NAME=\"KeyProtector\" TYPE=\"uint8\"><VALUE.ARRAY>{values}</VALUE.ARRAY></PROPERTY.ARRAY>"
    ));
    assert_eq!(kind(&text), ErrorKind::ArrayTooLong);
    let items = "1,".repeat(MAX_ARRAY_LEN) + "1";
    assert_eq!(
        kind(&format!(
            "instance of Msvm_TPMSettingData {{ KeyProtector = {{{items}}}; }};"
        )),
        ErrorKind::ArrayTooLong
    );
}

#[test]
fn string_longer_than_the_limit_is_string_too_long() {
    let long = "a".repeat(MAX_STRING_BYTES + 1);
    assert_eq!(
        kind(&instance(&prop("ElementName", "string", &long))),
        ErrorKind::StringTooLong
    );
    assert_eq!(
        kind(&format!("instance of X {{ A = \"{long}\"; }};")),
        ErrorKind::StringTooLong
    );
}

#[test]
fn doctype_and_entity_bombs_are_refused_as_dtd_or_entity() {
    let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">\
                <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;\">]><INSTANCE CLASSNAME=\"X\">\
                <PROPERTY NAME=\"a\" TYPE=\"string\"><VALUE>&lol3;</VALUE></PROPERTY></INSTANCE>";
    let err = parse_embedded_instance(bomb).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DtdOrEntityNotAllowed);
    assert!(err.to_string().contains("DTD/entity not allowed"), "{err}");
    let external = "<!DOCTYPE x SYSTEM \"file:///etc/passwd\"><INSTANCE CLASSNAME=\"X\"/>";
    assert_eq!(kind(external), ErrorKind::DtdOrEntityNotAllowed);
    assert_eq!(
        kind(&instance(&prop("a", "string", "&undeclared;"))),
        ErrorKind::DtdOrEntityNotAllowed
    );
}

#[test]
fn a_namespace_nesting_bomb_is_refused_where_it_crosses_the_declaration_limit() {
    // Each level declares a new prefix: the parse used to cost about n³ before the depth was
    // looked at (20,000 levels, 0.8 MB: over an hour); now the pre-scan stops at the first
    // declaration over the limit, long before the depth limit.
    let levels = 20_000;
    let open = |n: usize| -> String {
        (0..n)
            .map(|i| format!("<QUALIFIER xmlns:p{i}=\"u\">"))
            .collect()
    };
    let text = instance(&format!(
        "{}{}",
        open(levels),
        "</QUALIFIER>".repeat(levels)
    ));
    assert!(text.len() < MAX_INPUT_BYTES);
    let err = parse_embedded_instance(&text).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(err.to_string().contains("namespace declarations"), "{err}");
    let at = err.position().expect("a position");
    let allowed = instance(&open(MAX_XML_NAMESPACE_DECLARATIONS));
    let expected = allowed.len() - "</INSTANCE>".len() + 1;
    assert_eq!((at.line, at.column as usize), (1, expected));
    // Without declarations the same nest is refused by depth, at the first level too deep.
    let plain = instance(&format!(
        "{}{}",
        "<QUALIFIER>".repeat(levels),
        "</QUALIFIER>".repeat(levels)
    ));
    assert_eq!(kind(&plain), ErrorKind::TooDeep);
}

#[test]
fn namespace_declarations_beyond_the_limit_are_refused_even_when_shallow() {
    // CIM-XML declares no namespaces; a flood of them on sibling elements is refused before
    // the tree is built, however valid the instance around them.
    let flood = |n: usize| {
        let props: String = (0..n)
            .map(|i| {
                format!("<PROPERTY xmlns:p{i}=\"u\" NAME=\"P{i}\" TYPE=\"boolean\"><VALUE>TRUE</VALUE></PROPERTY>")
            })
            .collect();
        instance(&props)
    };
    assert!(parse_embedded_instance(&flood(MAX_XML_NAMESPACE_DECLARATIONS)).is_ok());
    let err = parse_embedded_instance(&flood(MAX_XML_NAMESPACE_DECLARATIONS + 1)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert!(err.to_string().contains("namespace declarations"), "{err}");
    let one_element: String = (0..=MAX_XML_NAMESPACE_DECLARATIONS)
        .map(|i| format!(" xmlns:p{i}=\"u\""))
        .collect();
    let text = format!("<INSTANCE CLASSNAME=\"X\"{one_element}/>");
    assert_eq!(kind(&text), ErrorKind::TooLarge);
}

#[test]
fn two_byte_order_marks_are_an_encoding_error_one_is_accepted() {
    let text = instance(&prop("TpmEnabled", "boolean", "TRUE"));
    assert!(parse_embedded_instance(&format!("\u{feff}{text}")).is_ok());
    assert_eq!(
        kind(&format!("\u{feff}\u{feff}{text}")),
        ErrorKind::Encoding
    );
    let bom = [0xEF, 0xBB, 0xBF];
    assert!(parse_embedded_instance_bytes(&[&bom[..], text.as_bytes()].concat()).is_ok());
    let err =
        parse_embedded_instance_bytes(&[&bom[..], &bom, text.as_bytes()].concat()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Encoding);
    assert!(err.to_string().contains("byte-order marks"), "{err}");
}

#[test]
fn text_in_no_known_format_is_unknown_codec() {
    assert_eq!(kind("{\"TpmEnabled\": true}"), ErrorKind::UnknownCodec);
    assert_eq!(kind(""), ErrorKind::UnknownCodec);
    assert_eq!(kind("   // only a comment\n"), ErrorKind::UnknownCodec);
    assert_eq!(kind("instanceof X {};"), ErrorKind::UnknownCodec);
}

#[test]
fn xml_that_is_not_an_instance_is_a_structure_error() {
    assert_eq!(kind("<CLASS NAME=\"X\"/>"), ErrorKind::Structure);
    assert_eq!(kind("<INSTANCE/>"), ErrorKind::Structure);
    assert_eq!(
        kind(&instance("<PROPERTY TYPE=\"string\"/>")),
        ErrorKind::Structure
    );
    assert_eq!(kind(&instance("<BOGUS NAME=\"a\"/>")), ErrorKind::Structure);
    assert_eq!(kind(&instance("stray text")), ErrorKind::Structure);
    assert_eq!(
        kind(&instance(
            "<PROPERTY NAME=\"a\" TYPE=\"string\"><VALUE>x</VALUE><VALUE>y</VALUE></PROPERTY>"
        )),
        ErrorKind::Structure
    );
}

#[test]
fn the_same_property_twice_is_a_duplicate_whatever_its_case() {
    let body = prop("TpmEnabled", "boolean", "TRUE") + &prop("tpmenabled", "boolean", "FALSE");
    assert_eq!(kind(&instance(&body)), ErrorKind::DuplicateProperty);
    assert_eq!(
        kind("instance of X { A = 1; a = 2; };"),
        ErrorKind::DuplicateProperty
    );
}

#[test]
fn bytes_that_are_not_valid_text_are_encoding_errors() {
    assert_eq!(
        parse_embedded_instance_bytes(&[0xFF, 0xFE, b'<'])
            .unwrap_err()
            .kind(),
        ErrorKind::Encoding
    );
    assert_eq!(
        parse_embedded_instance_bytes(&[0xFF, 0xFE, 0x00, 0xD8])
            .unwrap_err()
            .kind(),
        ErrorKind::Encoding
    );
    assert_eq!(
        parse_embedded_instance_bytes(b"<INSTANCE CLASSNAME=\"\xC3\x28\"/>")
            .unwrap_err()
            .kind(),
        ErrorKind::Encoding
    );
}

#[test]
fn malformed_reference_is_invalid_reference() {
    let text = instance(
        "<PROPERTY.REFERENCE NAME=\"R\"><VALUE.REFERENCE><CLASSPATH/></VALUE.REFERENCE></PROPERTY.REFERENCE>",
    );
    assert_eq!(kind(&text), ErrorKind::InvalidReference);
    assert_eq!(
        kind("instance of X { [CIMTYPE(\"ref:Y\")] R = \"not a path!\"; };"),
        ErrorKind::InvalidReference
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    let samples: [&[u8]; 6] = [
        b"<INSTANCE CLASSNAME=\"X\"><PROPERTY.REFERENCE NAME=\"r\"><VALUE.REFERENCE>\\\\h</VALUE.REFERENCE></PROPERTY.REFERENCE></INSTANCE>",
        b"instance of X { A = -; };",
        b"instance of X { A = 0x; };",
        b"instance of X { A = '\\x'; };",
        b"\xFE\xFF\x00<",
        b"[",
    ];
    for s in samples {
        assert!(parse_embedded_instance_bytes(s).is_err());
    }
}
