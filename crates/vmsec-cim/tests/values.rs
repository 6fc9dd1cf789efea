//! Values, datetimes, object paths and instances.

use vmsec_cim::codec::{cimxml, mof, wmixml};
use vmsec_cim::{CimDateTime, CimType, ErrorKind, Instance, ObjectPath, Property, Value};

#[test]
fn cim_type_names_round_trip_case_insensitively() {
    for t in CimType::ALL {
        assert_eq!(CimType::from_name(t.name()), Some(t));
        assert_eq!(CimType::from_name(&t.name().to_uppercase()), Some(t));
    }
    assert_eq!(CimType::from_name("Boolean"), Some(CimType::Boolean));
    assert_eq!(CimType::from_name("int"), None);
}

#[test]
fn timestamp_is_parsed_into_fields() {
    let dt: CimDateTime = "20240229235958.123456-300".parse().unwrap();
    assert_eq!(
        dt,
        CimDateTime::Timestamp {
            year: 2024,
            month: 2,
            day: 29,
            hour: 23,
            minute: 59,
            second: 58,
            microsecond: 123_456,
            utc_offset_minutes: -300
        }
    );
    assert_eq!(dt.to_string(), "20240229235958.123456-300");
    let odt = dt.to_offset_datetime().unwrap();
    assert_eq!(odt.offset().whole_minutes(), -300);
    assert_eq!(CimDateTime::from_offset_datetime(odt).unwrap(), dt);
}

#[test]
fn interval_is_parsed_into_fields_and_converts_to_a_duration() {
    let dt: CimDateTime = "00000001020304.000005:000".parse().unwrap();
    assert_eq!(
        dt,
        CimDateTime::Interval {
            days: 1,
            hours: 2,
            minutes: 3,
            seconds: 4,
            microseconds: 5
        }
    );
    let d = dt.to_duration().unwrap();
    assert_eq!(
        d,
        std::time::Duration::from_micros(((86_400 + 7_384) * 1_000_000) + 5)
    );
    assert_eq!(CimDateTime::from_duration(d).unwrap(), dt);
    assert!(dt.to_offset_datetime().is_none());
}

#[test]
fn malformed_datetimes_are_refused() {
    for bad in [
        "",
        "2024010100000.000000+000",
        "20241301000000.000000+000",
        "20240101240000.000000+000",
        "20240101000000,000000+000",
        "20240101000000.000000*000",
        "00000001020304.000005:001",
        "0000000102030x.000005:000",
        "20240101000000.000000+0é0",
    ] {
        assert_eq!(
            bad.parse::<CimDateTime>().unwrap_err().kind(),
            ErrorKind::InvalidDateTime,
            "{bad}"
        );
    }
}

#[test]
fn object_path_text_parses_wmi_paths_with_host_and_backslashes() {
    let p: ObjectPath = r#"\\HV01\root\virtualization\v2:Msvm_ComputerSystem.CreationClassName="Msvm_ComputerSystem",Name="A\"B""#
        .parse()
        .unwrap();
    assert_eq!(p.namespace.as_deref(), Some("root/virtualization/v2"));
    assert_eq!(p.class_name, "Msvm_ComputerSystem");
    assert_eq!(p.key("name"), Some(&Value::String("A\"B".into())));
    assert_eq!(
        p.to_string(),
        r#"root/virtualization/v2:Msvm_ComputerSystem.CreationClassName="Msvm_ComputerSystem",Name="A\"B""#
    );
    let single: ObjectPath = "Singleton=@".parse().unwrap();
    assert!(single.keys.is_empty());
    let typed: ObjectPath = "C.A=TRUE,B=-5,C=7".parse().unwrap();
    assert_eq!(typed.keys[0].1, Value::Boolean(true));
    assert_eq!(typed.keys[1].1, Value::SInt64(-5));
    assert_eq!(typed.keys[2].1, Value::UInt64(7));
}

#[test]
fn malformed_object_paths_are_invalid_reference() {
    for bad in [
        "",
        "1Class.A=1",
        "C.A=\"open",
        "C.A",
        "C.A=1 B=2",
        r"\\host",
    ] {
        assert_eq!(
            bad.parse::<ObjectPath>().unwrap_err().kind(),
            ErrorKind::InvalidReference,
            "{bad}"
        );
    }
}

#[test]
fn value_accessors_expose_the_payload_only_for_their_variant() {
    assert_eq!(Value::Boolean(true).as_bool(), Some(true));
    assert_eq!(Value::String("x".into()).as_bool(), None);
    assert_eq!(Value::UInt8(7).as_u64(), Some(7));
    assert_eq!(Value::UInt32(7).as_u64(), Some(7));
    assert_eq!(Value::SInt8(7).as_u64(), None);
    assert_eq!(Value::String("x".into()).as_str(), Some("x"));
    assert!(Value::Null.is_null());
    assert_eq!(
        Value::from_bytes(&[1, 2]).as_array().as_deref(),
        Some([Value::UInt8(1), Value::UInt8(2)].as_slice())
    );
    assert_eq!(Value::from_bytes(&[1, 2]).to_bytes(), Some(vec![1, 2]));
    assert_eq!(Value::Array(vec![Value::UInt16(1)]).to_bytes(), None);
}

#[test]
fn bytes_are_the_same_value_as_the_array_of_their_uint8s() {
    let bytes = Value::from_bytes(&[0, 7, 255]);
    let array = Value::Array(vec![Value::UInt8(0), Value::UInt8(7), Value::UInt8(255)]);
    assert_eq!(bytes, array);
    assert_eq!(array, bytes);
    assert_eq!(array.to_bytes(), bytes.to_bytes());
    assert_eq!(bytes.cim_type(), Some(CimType::UInt8));
    assert!(bytes.is_array() && bytes.scalar_text().is_none());
    assert_eq!(Value::from_bytes(&[]), Value::Array(vec![]));
    assert_eq!(Value::from_bytes(&[]).cim_type(), None);
    // Not equal to a shorter, a longer, a differently typed or a nulled array.
    assert_ne!(bytes, Value::from_bytes(&[0, 7]));
    assert_ne!(bytes, Value::from_bytes(&[0, 7, 255, 1]));
    assert_ne!(
        bytes,
        Value::Array(vec![Value::UInt16(0), Value::UInt16(7), Value::UInt16(255)])
    );
    assert_ne!(
        bytes,
        Value::Array(vec![Value::UInt8(0), Value::Null, Value::UInt8(255)])
    );
    // Every codec writes both forms alike, and reads back the same value.
    type Parse = fn(&str) -> Result<Instance, vmsec_cim::Error>;
    type Serialize = fn(&Instance) -> String;
    let codecs: [(Serialize, Parse); 3] = [
        (cimxml::serialize, cimxml::parse),
        (wmixml::serialize, wmixml::parse),
        (mof::serialize, mof::parse),
    ];
    let with = |v: &Value| Instance::new("C").with("B", CimType::UInt8, v.clone());
    for (serialize, parse) in codecs {
        let text = serialize(&with(&bytes));
        assert_eq!(text, serialize(&with(&array)));
        assert_eq!(parse(&text).unwrap().value("B"), Some(&bytes));
    }
}

#[test]
fn instance_lookup_ignores_case_and_push_replaces_in_place() {
    let mut inst = Instance::new("C")
        .with("First", CimType::UInt8, Value::UInt8(1))
        .with("Second", CimType::Boolean, Value::Boolean(false));
    inst.push(Property::new("FIRST", CimType::UInt8, Value::UInt8(9)));
    assert_eq!(inst.properties().len(), 2);
    assert_eq!(inst.properties()[0].name, "FIRST");
    assert_eq!(inst.value("first"), Some(&Value::UInt8(9)));
    assert!(inst.get("missing").is_none());
    let arr = Instance::new("C").with("A", CimType::UInt8, Value::from_bytes(&[1]));
    assert!(arr.get("a").unwrap().is_array);
    inst.push(Property::new(
        "__PATH",
        CimType::String,
        Value::String("p".into()),
    ));
    assert_eq!(inst.properties().len(), 2);
    assert_eq!(inst.system_properties().len(), 1);
    assert_eq!(inst.remove("second").map(|p| p.name), Some("Second".into()));
}

#[test]
fn error_display_names_kind_detail_property_and_position() {
    let err = vmsec_cim::parse_embedded_instance(
        "<INSTANCE CLASSNAME=\"X\">\n  <PROPERTY NAME=\"Level\" TYPE=\"uint8\"><VALUE>999</VALUE></PROPERTY></INSTANCE>",
    )
    .unwrap_err();
    let shown = err.to_string();
    assert!(shown.starts_with("value out of range"), "{shown}");
    assert!(shown.contains("property Level"), "{shown}");
    assert!(shown.contains("line 2"), "{shown}");
}
