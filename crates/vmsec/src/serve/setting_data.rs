//! Decoding the `SecuritySettingData` argument of the `Msvm_SecurityService` methods: the
//! embedded instance text a WS-Man client sends, in any of the three codecs, into the VM it
//! names and the settings it asks for. The service takes only what this returns.

use vmsec_cim::{Instance, Value, schema};
use vmsec_service::setting_data::{CLASS, parse_instance_id};
use vmsec_service::{ServiceError, Setting, SettingsPatch, VmRef};

/// Largest embedded instance accepted, before any parsing.
pub const MAX_TEXT: usize = 256 * 1024;

/// The VM `text` names by its `InstanceID`, and the settings it gives a value (absent or null
/// properties leave theirs unchanged). Errors are those a method reports for its argument:
/// unreadable text is `MalformedInstance`; another class or a property of the wrong type is
/// `IncorrectType`; no usable `InstanceID` or too much text is `InvalidParameter`.
pub fn decode(text: &str) -> Result<(VmRef, SettingsPatch), ServiceError> {
    let instance = parse(text)?;
    let id = instance
        .value("InstanceID")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ServiceError::InvalidParameter(
                "SecuritySettingData has no InstanceID naming the VM (expected \"Microsoft:<VM GUID>\")"
                    .into(),
            )
        })?;
    let vm = VmRef::from(parse_instance_id(id)?);
    let patch = Setting::ALL
        .into_iter()
        .fold(SettingsPatch::default(), |patch, setting| {
            match instance.value(setting.name()).and_then(Value::as_bool) {
                Some(on) => patch.with(setting, on),
                None => patch,
            }
        });
    Ok((vm, patch))
}

fn parse(text: &str) -> Result<Instance, ServiceError> {
    if text.len() > MAX_TEXT {
        return Err(ServiceError::InvalidParameter(format!(
            "SecuritySettingData is {} bytes, more than the {MAX_TEXT} allowed",
            text.len()
        )));
    }
    let instance = vmsec_cim::parse_embedded_instance(text)
        .map_err(|e| ServiceError::MalformedInstance(e.to_string()))?;
    if !instance.class_name().eq_ignore_ascii_case(CLASS) {
        return Err(ServiceError::IncorrectType(format!(
            "SecuritySettingData must be an instance of {CLASS}, not {}",
            instance.class_name()
        )));
    }
    let class = schema::class(CLASS)
        .ok_or_else(|| ServiceError::Internal(format!("no class definition for {CLASS}")))?;
    class
        .check(&instance)
        .map_err(|e| ServiceError::IncorrectType(format!("SecuritySettingData: {e}")))?;
    Ok(instance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmsec_service::Method;

    const VM: &str = "B5314955-3924-42BA-ABF9-793993D340A0";

    fn cimxml(props: &str) -> String {
        format!(
            "<INSTANCE CLASSNAME=\"Msvm_SecuritySettingData\"><PROPERTY NAME=\"InstanceID\" \
             TYPE=\"string\"><VALUE>Microsoft:{VM}</VALUE></PROPERTY>{props}</INSTANCE>"
        )
    }

    fn vm() -> VmRef {
        VmRef::from(uuid::Uuid::parse_str(VM).unwrap())
    }

    /// The return code a method answers for `text`'s decoding error.
    fn code(method: Method, text: &str) -> u32 {
        method.return_code(&decode(text).unwrap_err())
    }

    #[test]
    fn the_three_codecs_and_a_bare_guid_name_the_same_vm() {
        let mof = format!("instance of Msvm_SecuritySettingData {{ InstanceID = \"{VM}\"; }};");
        for text in [cimxml(""), mof] {
            assert_eq!(
                decode(&text).unwrap(),
                (vm(), SettingsPatch::default()),
                "{text}"
            );
        }
    }

    #[test]
    fn the_booleans_present_are_the_patch_and_absent_or_null_ones_are_left_alone() {
        let text = cimxml(
            "<PROPERTY NAME=\"TpmEnabled\" TYPE=\"boolean\"><VALUE>TRUE</VALUE></PROPERTY>\
             <PROPERTY NAME=\"KsdEnabled\" TYPE=\"boolean\"><VALUE>false</VALUE></PROPERTY>\
             <PROPERTY NAME=\"ShieldingRequested\" TYPE=\"boolean\"></PROPERTY>",
        );
        let (_, patch) = decode(&text).unwrap();
        assert_eq!(
            patch,
            SettingsPatch::default()
                .with(Setting::TpmEnabled, true)
                .with(Setting::KsdEnabled, false)
        );
    }

    #[test]
    fn unreadable_text_is_invalid_parameter() {
        for bad in [
            "",
            "not xml at all",
            "<INSTANCE CLASSNAME=\"Msvm_SecuritySettingData\">",
        ] {
            assert!(
                matches!(decode(bad), Err(ServiceError::MalformedInstance(_))),
                "{bad:?}"
            );
            assert_eq!(code(Method::GetKeyProtector, bad), 32773);
            assert_eq!(code(Method::ModifySecuritySettings, bad), 4);
        }
    }

    #[test]
    fn another_class_or_a_property_of_the_wrong_type_is_incorrect_data_type() {
        let other = cimxml("").replace("Msvm_SecuritySettingData", "Msvm_ComputerSystem");
        let wrong_type =
            cimxml("<PROPERTY NAME=\"TpmEnabled\" TYPE=\"string\"><VALUE>yes</VALUE></PROPERTY>");
        for text in [other, wrong_type] {
            assert!(
                matches!(decode(&text), Err(ServiceError::IncorrectType(_))),
                "{text}"
            );
            assert_eq!(code(Method::SetKeyProtector, &text), 32776);
        }
    }

    #[test]
    fn no_instance_id_or_one_naming_no_vm_or_too_much_text_is_invalid_parameter() {
        let no_id = "<INSTANCE CLASSNAME=\"Msvm_SecuritySettingData\"></INSTANCE>".to_owned();
        let not_a_vm = cimxml("").replace(VM, "not-a-guid");
        let huge = format!("{}<!--{}-->", cimxml(""), "x".repeat(MAX_TEXT));
        for text in [no_id, not_a_vm, huge] {
            assert!(matches!(
                decode(&text),
                Err(ServiceError::InvalidParameter(_))
            ));
            assert_eq!(code(Method::RestoreLastKnownGoodKeyProtector, &text), 32773);
        }
    }
}
