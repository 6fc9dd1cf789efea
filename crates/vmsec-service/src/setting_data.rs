//! Reading the `SecuritySettingData` argument: which VM it names and which settings it asks for.

use uuid::Uuid;
use vmsec_cim::{Instance, Value, schema};
use vmsec_store::SecuritySettings;

use crate::ServiceError;

pub const CLASS: &str = "Msvm_SecuritySettingData";

/// Largest embedded instance accepted, before any parsing.
pub const MAX_TEXT: usize = 256 * 1024;

/// Parses and checks an embedded `Msvm_SecuritySettingData` instance in any of the three codecs.
pub fn parse(text: &str) -> Result<Instance, ServiceError> {
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

/// The VM an instance names by its `InstanceID`: Hyper-V's `Microsoft:<VM GUID>` (optionally
/// followed by `\` and a suffix, as some Hyper-V setting data carry), or a bare GUID.
pub fn vm_id(instance: &Instance) -> Result<Uuid, ServiceError> {
    let id = instance
        .value("InstanceID")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ServiceError::InvalidParameter(
                "SecuritySettingData has no InstanceID naming the VM (expected \"Microsoft:<VM GUID>\")"
                    .into(),
            )
        })?;
    parse_instance_id(id)
}

pub fn parse_instance_id(id: &str) -> Result<Uuid, ServiceError> {
    let trimmed = id.trim();
    let guid = match trimmed.get(..10) {
        Some(p) if p.eq_ignore_ascii_case("Microsoft:") => &trimmed[10..],
        _ => trimmed,
    };
    let guid = guid.split('\\').next().unwrap_or(guid);
    Uuid::parse_str(guid.trim_matches(|c| c == '{' || c == '}')).map_err(|_| {
        ServiceError::InvalidParameter(format!(
            "InstanceID {id:?} does not name a VM (expected \"Microsoft:<VM GUID>\" or a GUID)"
        ))
    })
}

/// Hyper-V's InstanceID of a VM's security setting data.
pub fn instance_id(vm: Uuid) -> String {
    format!("Microsoft:{}", vm.to_string().to_uppercase())
}

/// The booleans an instance asks to set; a property that is absent or null is `None` and
/// leaves the current value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SettingsPatch([Option<bool>; 8]);

/// The eight properties, in the order of [`SettingsPatch`] and [`fields`].
const NAMES: [&str; 8] = [
    "TpmEnabled",
    "KsdEnabled",
    "ShieldingRequested",
    "DataProtectionRequested",
    "EncryptStateAndVmMigrationTraffic",
    "VirtualizationBasedSecurityOptOut",
    "BindToHostTpm",
    "AppContainerLaunchOptOut",
];

fn fields(s: &mut SecuritySettings) -> [&mut bool; 8] {
    [
        &mut s.tpm_enabled,
        &mut s.ksd_enabled,
        &mut s.shielding_requested,
        &mut s.data_protection_requested,
        &mut s.encrypt_state_and_vm_migration_traffic,
        &mut s.virtualization_based_security_opt_out,
        &mut s.bind_to_host_tpm,
        &mut s.app_container_launch_opt_out,
    ]
}

impl SettingsPatch {
    pub fn of(instance: &Instance) -> SettingsPatch {
        SettingsPatch(NAMES.map(|n| instance.value(n).and_then(Value::as_bool)))
    }

    /// `current` with the requested values in place.
    pub fn apply(&self, current: SecuritySettings) -> SecuritySettings {
        let mut s = current;
        for (field, want) in fields(&mut s).into_iter().zip(self.0) {
            if let Some(b) = want {
                *field = b;
            }
        }
        s
    }
}

/// The rules ModifySecuritySettings enforces, checked against the state they would produce.
/// docs/security-settings.md explains each.
pub fn check_rules(
    before: &SecuritySettings,
    after: &SecuritySettings,
    has_key_protector: bool,
) -> Result<(), ServiceError> {
    if after.bind_to_host_tpm && !before.bind_to_host_tpm {
        return Err(ServiceError::NotSupported(
            "BindToHostTpm: vmsec does not seal VM keys to a host TPM".into(),
        ));
    }
    if after.shielding_requested && !after.tpm_enabled {
        return Err(ServiceError::IncompatibleSettings(
            "ShieldingRequested needs TpmEnabled: a shielded VM keeps its secrets in its vTPM"
                .into(),
        ));
    }
    if after.shielding_requested && !after.encrypt_state_and_vm_migration_traffic {
        return Err(ServiceError::IncompatibleSettings(
            "ShieldingRequested needs EncryptStateAndVmMigrationTraffic: a shielded VM's state and \
             migration traffic are always encrypted"
                .into(),
        ));
    }
    if !has_key_protector {
        let needs_kp = [
            ("TpmEnabled", before.tpm_enabled, after.tpm_enabled),
            (
                "ShieldingRequested",
                before.shielding_requested,
                after.shielding_requested,
            ),
            (
                "EncryptStateAndVmMigrationTraffic",
                before.encrypt_state_and_vm_migration_traffic,
                after.encrypt_state_and_vm_migration_traffic,
            ),
        ];
        if let Some((name, _, _)) = needs_kp.iter().find(|(_, b, a)| *a && !*b) {
            return Err(ServiceError::InvalidState(format!(
                "{name} cannot be turned on while the VM has no key protector; set one first \
                 (SetKeyProtector, or `vmsec vm kp set`)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_id_accepts_hyper_v_form_bare_guid_braces_and_suffix() {
        let g = Uuid::parse_str("b5314955-3924-42ba-abf9-793993d340a0").unwrap();
        for text in [
            "Microsoft:B5314955-3924-42BA-ABF9-793993D340A0",
            "microsoft:b5314955-3924-42ba-abf9-793993d340a0",
            "B5314955-3924-42BA-ABF9-793993D340A0",
            "{B5314955-3924-42BA-ABF9-793993D340A0}",
            "Microsoft:B5314955-3924-42BA-ABF9-793993D340A0\\Security",
        ] {
            assert_eq!(parse_instance_id(text).unwrap(), g, "{text}");
        }
    }

    #[test]
    fn instance_id_that_names_no_guid_is_an_invalid_parameter() {
        for text in ["", "Microsoft:", "Microsoft:not-a-guid", "Ä"] {
            assert!(matches!(
                parse_instance_id(text),
                Err(ServiceError::InvalidParameter(_))
            ));
        }
    }

    #[test]
    fn turning_tpm_on_without_a_key_protector_is_invalid_state() {
        let before = SecuritySettings::default();
        let after = SecuritySettings {
            tpm_enabled: true,
            ..before
        };
        assert!(matches!(
            check_rules(&before, &after, false),
            Err(ServiceError::InvalidState(m)) if m.contains("TpmEnabled")
        ));
        assert_eq!(check_rules(&before, &after, true), Ok(()));
    }

    #[test]
    fn shielding_without_tpm_or_encryption_is_incompatible() {
        let before = SecuritySettings::default();
        let only_shield = SecuritySettings {
            shielding_requested: true,
            encrypt_state_and_vm_migration_traffic: true,
            ..before
        };
        assert!(matches!(
            check_rules(&before, &only_shield, true),
            Err(ServiceError::IncompatibleSettings(_))
        ));
        let no_encryption = SecuritySettings {
            shielding_requested: true,
            tpm_enabled: true,
            ..before
        };
        assert!(matches!(
            check_rules(&before, &no_encryption, true),
            Err(ServiceError::IncompatibleSettings(_))
        ));
    }

    #[test]
    fn binding_to_a_host_tpm_is_not_supported() {
        let before = SecuritySettings::default();
        let after = SecuritySettings {
            bind_to_host_tpm: true,
            ..before
        };
        assert!(matches!(
            check_rules(&before, &after, true),
            Err(ServiceError::NotSupported(_))
        ));
    }

    #[test]
    fn settings_already_on_stay_allowed_when_the_kp_is_gone() {
        // A VM whose KP was cleared out of band can still have other settings changed.
        let before = SecuritySettings {
            tpm_enabled: true,
            ..Default::default()
        };
        let after = SecuritySettings {
            ksd_enabled: true,
            ..before
        };
        assert_eq!(check_rules(&before, &after, false), Ok(()));
    }
}
