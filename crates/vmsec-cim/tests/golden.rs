//! Real-world shapes of embedded instances parse to the expected typed values.

use vmsec_cim::{
    CimType, Format, ObjectPath, Value, detect_format, parse_embedded_instance,
    parse_embedded_instance_bytes, schema,
};

fn golden(name: &str) -> String {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn golden_bytes(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const VM_ID: &str = "Microsoft:6F2A9B1C-3D4E-4F50-8A61-72B3C4D5E6F7";

#[test]
fn gettext1_instance_with_system_properties_parses_to_typed_values() {
    let text = golden("gettext1_security_setting_data.xml");
    assert_eq!(detect_format(&text).unwrap(), Format::CimXml);
    let inst = parse_embedded_instance(&text).unwrap();
    assert_eq!(inst.class_name(), "Msvm_SecuritySettingData");
    assert_eq!(inst.value("TpmEnabled"), Some(&Value::Boolean(true)));
    assert_eq!(inst.value("tpmenabled"), Some(&Value::Boolean(true)));
    assert_eq!(
        inst.value("ShieldingRequested"),
        Some(&Value::Boolean(false))
    );
    assert_eq!(
        inst.value("InstanceID").and_then(Value::as_str),
        Some(VM_ID)
    );
    assert_eq!(inst.value("ChangeableType"), Some(&Value::Null));
    let cs = inst.get("ComponentSetting").unwrap();
    assert!(cs.is_array && cs.value.is_null());
    assert!(inst.properties().iter().all(|p| !p.name.starts_with("__")));
    assert_eq!(inst.system_properties().len(), 10);
    assert_eq!(inst.value("__GENUS"), Some(&Value::SInt32(2)));
    let derivation = inst
        .value("__DERIVATION")
        .and_then(Value::as_array)
        .unwrap();
    assert_eq!(derivation.len(), 2);
    schema::class("Msvm_SecuritySettingData")
        .unwrap()
        .check(&inst)
        .unwrap();
}

#[test]
fn powershell_text_with_qualifiers_cdata_and_utf16_declaration_parses() {
    let inst = parse_embedded_instance(&golden("powershell_gettext1_qualifiers.xml")).unwrap();
    assert_eq!(
        inst.value("ElementName").and_then(Value::as_str),
        Some("Web & DB <prod>")
    );
    assert_eq!(
        inst.value("Description").and_then(Value::as_str),
        Some("Settings for <vm> & \"friends\"")
    );
    assert_eq!(inst.value("TpmEnabled"), Some(&Value::Boolean(true)));
    assert_eq!(inst.value("KsdEnabled"), Some(&Value::Null));
    assert_eq!(inst.get("KsdEnabled").unwrap().cim_type, CimType::Boolean);
    schema::class("Msvm_SecuritySettingData")
        .unwrap()
        .check(&inst)
        .unwrap();
}

#[test]
fn utf16le_bytes_with_bom_parse_like_the_utf8_text() {
    let from_bytes =
        parse_embedded_instance_bytes(&golden_bytes("utf16le_bom_security_setting_data.xml"))
            .unwrap();
    let from_text = parse_embedded_instance(&golden("powershell_gettext1_qualifiers.xml")).unwrap();
    assert_eq!(from_bytes, from_text);
}

#[test]
fn libvirt_form_with_declaration_and_mixed_case_booleans_parses() {
    let inst = parse_embedded_instance(&golden("libvirt_embedded_param.xml")).unwrap();
    assert_eq!(inst.value("TpmEnabled"), Some(&Value::Boolean(true)));
    assert_eq!(
        inst.value("EncryptStateAndVmMigrationTraffic"),
        Some(&Value::Boolean(false))
    );
    assert_eq!(inst.properties().len(), 3);
}

#[test]
fn mof_with_comments_pragma_qualifiers_alias_and_escapes_parses_with_schema_types() {
    let text = golden("security_setting_data.mof");
    assert_eq!(detect_format(&text).unwrap(), Format::Mof);
    let inst = parse_embedded_instance(&text).unwrap();
    assert_eq!(inst.class_name(), "Msvm_SecuritySettingData");
    assert_eq!(
        inst.value("InstanceID").and_then(Value::as_str),
        Some(VM_ID)
    );
    assert_eq!(
        inst.value("ElementName").and_then(Value::as_str),
        Some("Web \"front\" \\ tier!\n")
    );
    assert_eq!(inst.value("TpmEnabled"), Some(&Value::Boolean(true)));
    assert_eq!(inst.value("KsdEnabled"), Some(&Value::Boolean(false)));
    assert_eq!(
        inst.value("ShieldingRequested"),
        Some(&Value::Boolean(true))
    );
    let dp = inst.get("DataProtectionRequested").unwrap();
    assert_eq!((dp.cim_type, &dp.value), (CimType::Boolean, &Value::Null));
    assert_eq!(
        inst.value("Description").and_then(Value::as_str),
        Some("two parts")
    );
    schema::class("Msvm_SecuritySettingData")
        .unwrap()
        .check(&inst)
        .unwrap();
}

#[test]
fn all_three_codecs_give_the_same_instance_for_the_same_settings() {
    let xml = parse_embedded_instance(&golden("libvirt_embedded_param.xml")).unwrap();
    let mof = parse_embedded_instance(
        "instance of Msvm_SecuritySettingData { InstanceID = \"Microsoft:6F2A9B1C-3D4E-4F50-8A61-72B3C4D5E6F7\"; \
         TpmEnabled = TRUE; EncryptStateAndVmMigrationTraffic = FALSE; };",
    )
    .unwrap();
    assert_eq!(xml, mof);
    let wmi = vmsec_cim::codec::wmixml::parse(&vmsec_cim::codec::wmixml::serialize(&xml)).unwrap();
    assert_eq!(wmi, xml);
}

#[test]
fn wmi_dtd_instance_with_refarray_and_embedded_object_parses() {
    let text = golden("tpm_setting_data_wmi_dtd.xml");
    assert_eq!(detect_format(&text).unwrap(), Format::WmiXml);
    let inst = parse_embedded_instance(&text).unwrap();
    assert_eq!(
        inst.value("KeyProtector").and_then(Value::to_bytes),
        Some(vec![0, 255, 16, 7])
    );
    let related = inst.value("Related").and_then(Value::as_array).unwrap();
    let expected = ObjectPath::new("Msvm_ComputerSystem")
        .in_namespace("root/virtualization/v2")
        .with_key(
            "CreationClassName",
            Value::String("Msvm_ComputerSystem".into()),
        )
        .with_key(
            "Name",
            Value::String("6F2A9B1C-3D4E-4F50-8A61-72B3C4D5E6F7".into()),
        );
    assert_eq!(*related, [Value::Reference(expected), Value::Null]);
    let extra = inst.value("Extra").and_then(Value::as_str).unwrap();
    let nested = parse_embedded_instance(extra).unwrap();
    assert_eq!(nested.value("Shielded"), Some(&Value::Boolean(true)));
}

#[test]
fn utf16_without_bom_and_utf8_with_bom_are_recognised() {
    let text = golden("libvirt_embedded_param.xml");
    let expected = parse_embedded_instance(&text).unwrap();
    let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let bom8 = [&[0xEF, 0xBB, 0xBF][..], text.as_bytes()].concat();
    let bom16be = [&[0xFE, 0xFF][..], &be].concat();
    for bytes in [le, be, bom8, bom16be] {
        assert_eq!(parse_embedded_instance_bytes(&bytes).unwrap(), expected);
    }
    let mof_with_bom = "\u{feff}instance of X { A = TRUE; };";
    assert_eq!(
        parse_embedded_instance(mof_with_bom).unwrap().value("A"),
        Some(&Value::Boolean(true))
    );
}
