//! Class definitions and `ClassDef::check`.

use vmsec_cim::schema::{self, SchemaError};
use vmsec_cim::{CimType, Instance, Value, parse_embedded_instance};

fn ssd() -> &'static schema::ClassDef {
    schema::class("msvm_securitysettingdata").expect("class is defined")
}

#[test]
fn every_served_class_is_defined_with_its_keys() {
    let keys = |name: &str| -> Vec<&str> {
        schema::class(name)
            .unwrap()
            .keys()
            .map(|p| p.name)
            .collect()
    };
    assert_eq!(
        keys("Msvm_SecurityService"),
        [
            "CreationClassName",
            "Name",
            "SystemCreationClassName",
            "SystemName"
        ]
    );
    assert_eq!(keys("Msvm_SecuritySettingData"), ["InstanceID"]);
    assert_eq!(keys("Msvm_ComputerSystem"), ["CreationClassName", "Name"]);
    assert_eq!(
        keys("Msvm_SecurityElement"),
        ["SystemCreationClassName", "SystemName", "CreationClassName"]
    );
    assert_eq!(keys("Msvm_TPMSettingData"), ["InstanceID"]);
    assert_eq!(keys("Msvm_ConcreteJob"), ["InstanceID"]);
    assert!(schema::class("Win32_Process").is_none());
}

#[test]
fn property_types_follow_the_published_mof() {
    let ty = |class: &str, prop: &str| {
        let d = schema::class(class).unwrap().property(prop).unwrap();
        (d.cim_type, d.is_array)
    };
    assert_eq!(
        ty("Msvm_SecuritySettingData", "tpmenabled"),
        (CimType::Boolean, false)
    );
    assert_eq!(
        ty("Msvm_SecuritySettingData", "BindToHostTpm"),
        (CimType::Boolean, false)
    );
    assert_eq!(
        ty("Msvm_TPMSettingData", "KeyProtector"),
        (CimType::UInt8, true)
    );
    assert_eq!(
        ty("Msvm_TPMSettingData", "LastKnownGoodKeyProtector"),
        (CimType::UInt8, true)
    );
    assert_eq!(
        ty("Msvm_ComputerSystem", "OperationalStatus"),
        (CimType::UInt16, true)
    );
    assert_eq!(
        ty("Msvm_ConcreteJob", "ElapsedTime"),
        (CimType::DateTime, false)
    );
    assert_eq!(
        ty("Msvm_ConcreteJob", "Cancellable"),
        (CimType::Boolean, false)
    );
    assert_eq!(
        ty("Msvm_SecurityService", "Started"),
        (CimType::Boolean, false)
    );
    assert_eq!(
        ty(
            "Msvm_SecurityElement",
            "EncryptStateAndVmMigrationTrafficEnabled"
        ),
        (CimType::Boolean, false)
    );
}

#[test]
fn check_accepts_a_partial_instance_of_the_right_types() {
    let inst = Instance::new("Msvm_SecuritySettingData")
        .with(
            "InstanceID",
            CimType::String,
            Value::String("Microsoft:1".into()),
        )
        .with("TpmEnabled", CimType::Boolean, Value::Boolean(true))
        .with("KsdEnabled", CimType::Boolean, Value::Null);
    assert_eq!(ssd().check(&inst), Ok(()));
}

#[test]
fn check_rejects_an_unknown_property() {
    let inst = Instance::new("Msvm_SecuritySettingData").with(
        "Bogus",
        CimType::Boolean,
        Value::Boolean(true),
    );
    assert_eq!(
        ssd().check(&inst),
        Err(SchemaError::UnknownProperty {
            class: "Msvm_SecuritySettingData".into(),
            property: "Bogus".into()
        })
    );
}

#[test]
fn check_rejects_a_wrong_type() {
    let inst = Instance::new("Msvm_SecuritySettingData").with(
        "TpmEnabled",
        CimType::String,
        Value::String("TRUE".into()),
    );
    assert!(matches!(
        ssd().check(&inst),
        Err(SchemaError::WrongType { property, expected, found }) if property == "TpmEnabled" && expected == "boolean" && found == "string"
    ));
    let scalar_for_array =
        Instance::new("Msvm_TPMSettingData").with("KeyProtector", CimType::UInt8, Value::UInt8(1));
    assert!(matches!(
        schema::class("Msvm_TPMSettingData").unwrap().check(&scalar_for_array),
        Err(SchemaError::WrongType { expected, .. }) if expected == "uint8[]"
    ));
}

#[test]
fn check_rejects_a_value_that_does_not_fit_the_type() {
    let inst = Instance::new("Msvm_TPMSettingData").with(
        "KeyProtector",
        CimType::UInt8,
        Value::Array(vec![Value::UInt8(1), Value::UInt64(300)]),
    );
    assert_eq!(
        schema::class("Msvm_TPMSettingData").unwrap().check(&inst),
        Err(SchemaError::OutOfRange {
            property: "KeyProtector".into(),
            value: "300".into(),
            cim_type: CimType::UInt8
        })
    );
}

#[test]
fn check_rejects_another_class() {
    let inst = Instance::new("Msvm_ComputerSystem");
    assert_eq!(
        ssd().check(&inst),
        Err(SchemaError::WrongClass {
            expected: "Msvm_SecuritySettingData".into(),
            found: "Msvm_ComputerSystem".into()
        })
    );
}

#[test]
fn check_ignores_system_properties() {
    let inst = parse_embedded_instance(
        "<INSTANCE CLASSNAME=\"Msvm_SecuritySettingData\"><PROPERTY NAME=\"__GENUS\" TYPE=\"sint32\"><VALUE>2</VALUE></PROPERTY></INSTANCE>",
    )
    .unwrap();
    assert_eq!(ssd().check(&inst), Ok(()));
}

#[test]
fn schema_errors_convert_into_crate_errors_with_the_property() {
    let err: vmsec_cim::Error = SchemaError::UnknownProperty {
        class: "C".into(),
        property: "P".into(),
    }
    .into();
    assert_eq!(err.kind(), vmsec_cim::ErrorKind::Schema);
    assert_eq!(err.property(), Some("P"));
    assert!(err.schema_error().is_some());
}
