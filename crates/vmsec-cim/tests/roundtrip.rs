//! Any instance serialized by any codec parses back equal.

use proptest::prelude::*;
use vmsec_cim::codec::{cimxml, mof, wmixml};
use vmsec_cim::{
    CimDateTime, CimType, Instance, ObjectPath, Property, Value, parse_embedded_instance,
};

/// Characters XML 1.0 can carry, biased towards markup and escapes.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[\t\n\r\u{20}-\u{D7FF}\u{E000}-\u{FFFD}\u{10000}-\u{10FFFF}]{0,24}",
        "[<>&\"'\\\\ ]{0,8}(\\]\\]>)?[a-z\r\n]{0,4}",
    ]
}

fn xml_char() -> impl Strategy<Value = char> {
    prop_oneof![
        Just('<'),
        Just('&'),
        Just('\''),
        Just('"'),
        Just('\\'),
        Just('\n'),
        Just('\r'),
        "[\u{20}-\u{D7FF}\u{E000}-\u{FFFD}\u{10000}-\u{10FFFF}]"
            .prop_map(|s| s.chars().next().unwrap_or('x')),
    ]
}

fn ident() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_]{0,12}"
}

fn datetime() -> impl Strategy<Value = CimDateTime> {
    prop_oneof![
        (
            0u16..=9999,
            1u8..=12,
            1u8..=28,
            0u8..24,
            0u8..60,
            0u8..60,
            0u32..1_000_000,
            -999i16..=999
        )
            .prop_map(
                |(year, month, day, hour, minute, second, microsecond, utc_offset_minutes)| {
                    CimDateTime::Timestamp {
                        year,
                        month,
                        day,
                        hour,
                        minute,
                        second,
                        microsecond,
                        utc_offset_minutes,
                    }
                }
            ),
        (
            0u32..=99_999_999,
            0u8..24,
            0u8..60,
            0u8..60,
            0u32..1_000_000
        )
            .prop_map(|(days, hours, minutes, seconds, microseconds)| {
                CimDateTime::Interval {
                    days,
                    hours,
                    minutes,
                    seconds,
                    microseconds,
                }
            }),
    ]
}

/// Object paths whose keys survive WMI object-path text too (string, boolean, uint64).
fn path() -> impl Strategy<Value = ObjectPath> {
    let key_value = prop_oneof![
        text().prop_map(Value::String),
        any::<bool>().prop_map(Value::Boolean),
        any::<u64>().prop_map(Value::UInt64),
    ];
    (
        proptest::option::of(proptest::collection::vec(ident(), 1..4).prop_map(|p| p.join("/"))),
        ident(),
        proptest::collection::vec((ident(), key_value), 0..4),
    )
        .prop_map(|(namespace, class_name, keys)| {
            let mut seen = std::collections::HashSet::new();
            let keys = keys
                .into_iter()
                .filter(|(k, _)| seen.insert(k.to_ascii_lowercase()))
                .collect();
            ObjectPath {
                namespace,
                class_name,
                keys,
            }
        })
}

fn scalar(t: CimType) -> BoxedStrategy<Value> {
    match t {
        CimType::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        CimType::UInt8 => any::<u8>().prop_map(Value::UInt8).boxed(),
        CimType::UInt16 => any::<u16>().prop_map(Value::UInt16).boxed(),
        CimType::UInt32 => any::<u32>().prop_map(Value::UInt32).boxed(),
        CimType::UInt64 => any::<u64>().prop_map(Value::UInt64).boxed(),
        CimType::SInt8 => any::<i8>().prop_map(Value::SInt8).boxed(),
        CimType::SInt16 => any::<i16>().prop_map(Value::SInt16).boxed(),
        CimType::SInt32 => any::<i32>().prop_map(Value::SInt32).boxed(),
        CimType::SInt64 => any::<i64>().prop_map(Value::SInt64).boxed(),
        CimType::Real32 => proptest::num::f32::NORMAL.prop_map(Value::Real32).boxed(),
        CimType::Real64 => proptest::num::f64::NORMAL.prop_map(Value::Real64).boxed(),
        CimType::Char16 => xml_char().prop_map(Value::Char16).boxed(),
        CimType::String => text().prop_map(Value::String).boxed(),
        CimType::DateTime => datetime().prop_map(Value::DateTime).boxed(),
        CimType::Reference => path().prop_map(Value::Reference).boxed(),
    }
}

fn property() -> impl Strategy<Value = Property> {
    (
        ident(),
        proptest::sample::select(CimType::ALL.to_vec()),
        0u8..4,
    )
        .prop_flat_map(|(name, t, shape)| {
            let value: BoxedStrategy<Value> = match shape {
                0 => Just(Value::Null).boxed(),
                // A uint8[] built compactly, as the service builds key protectors.
                1 if t == CimType::UInt8 => prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..6).prop_map(Value::Bytes),
                    proptest::collection::vec(
                        prop_oneof![4 => scalar(t), 1 => Just(Value::Null)],
                        0..6,
                    )
                    .prop_map(Value::Array),
                ]
                .boxed(),
                1 => proptest::collection::vec(
                    prop_oneof![4 => scalar(t), 1 => Just(Value::Null)],
                    0..6,
                )
                .prop_map(Value::Array)
                .boxed(),
                _ => scalar(t),
            };
            (Just(name), Just(t), any::<bool>(), value).prop_map(
                |(name, cim_type, null_array, value)| Property {
                    is_array: value.is_array() || (value.is_null() && null_array),
                    name,
                    cim_type,
                    value,
                },
            )
        })
}

fn instance() -> impl Strategy<Value = Instance> {
    (ident(), proptest::collection::vec(property(), 0..8)).prop_map(|(class, props)| {
        let mut inst = Instance::new(class);
        for p in props {
            if inst.get(&p.name).is_none() {
                inst.push(p);
            }
        }
        inst
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn cimxml_round_trips_any_instance(inst in instance()) {
        let text = cimxml::serialize(&inst);
        prop_assert_eq!(cimxml::parse(&text).map_err(|e| e.to_string()), Ok(inst.clone()), "{}", text);
        prop_assert_eq!(parse_embedded_instance(&text).map_err(|e| e.to_string()), Ok(inst));
    }

    #[test]
    fn wmixml_round_trips_any_instance(inst in instance()) {
        let text = wmixml::serialize(&inst);
        prop_assert_eq!(wmixml::parse(&text).map_err(|e| e.to_string()), Ok(inst.clone()), "{}", text);
        prop_assert_eq!(parse_embedded_instance(&text).map_err(|e| e.to_string()), Ok(inst));
    }

    #[test]
    fn mof_round_trips_any_instance(inst in instance()) {
        let text = mof::serialize(&inst);
        prop_assert_eq!(mof::parse(&text).map_err(|e| e.to_string()), Ok(inst.clone()), "{}", text);
        prop_assert_eq!(parse_embedded_instance(&text).map_err(|e| e.to_string()), Ok(inst));
    }

    #[test]
    fn datetime_text_round_trips(dt in datetime()) {
        let text = dt.to_string();
        prop_assert_eq!(text.len(), 25);
        prop_assert_eq!(text.parse::<CimDateTime>(), Ok(dt));
    }

    #[test]
    fn object_path_text_round_trips(p in path()) {
        prop_assert_eq!(p.to_string().parse::<ObjectPath>(), Ok(p));
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = parse_embedded_instance(&s);
        let _ = parse_embedded_instance(&format!("<INSTANCE CLASSNAME=\"X\">{s}</INSTANCE>"));
        let _ = parse_embedded_instance(&format!("instance of X {{ {s} }};"));
    }
}

#[test]
fn schema_typed_instance_round_trips_through_mof_without_type_qualifiers() {
    let inst = Instance::new("Msvm_TPMSettingData")
        .with(
            "InstanceID",
            CimType::String,
            Value::String("Microsoft:X\\TPM".into()),
        )
        .with(
            "KeyProtector",
            CimType::UInt8,
            Value::from_bytes(&[1, 2, 255]),
        )
        .with("EnabledState", CimType::UInt16, Value::UInt16(2))
        .with("Shielded", CimType::Boolean, Value::Boolean(true));
    let text = mof::serialize(&inst);
    assert!(!text.contains("CIMTYPE"), "{text}");
    assert_eq!(mof::parse(&text).unwrap(), inst);
}

#[test]
fn system_properties_survive_xml_but_not_mof() {
    let inst = Instance::new("X")
        .with("__CLASS", CimType::String, Value::String("X".into()))
        .with("A", CimType::Boolean, Value::Boolean(true));
    assert_eq!(cimxml::parse(&cimxml::serialize(&inst)).unwrap(), inst);
    assert!(cimxml::serialize(&inst).contains("CLASSORIGIN=\"___SYSTEM\""));
    assert_eq!(
        mof::parse(&mof::serialize(&inst)).unwrap(),
        inst.clone().without_system_properties()
    );
}
