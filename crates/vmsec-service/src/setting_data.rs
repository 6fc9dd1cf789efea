//! `Msvm_SecuritySettingData`'s settings: which a call asks to change ([`SettingsPatch`]),
//! the rules a change must obey ([`check_rules`]), and how Hyper-V names a VM's setting data.
//! Decoding the embedded instance a client sends is the edge's work, not the service's.

use uuid::Uuid;
use vmsec_store::SecuritySettings;

use crate::ServiceError;

pub const CLASS: &str = "Msvm_SecuritySettingData";

/// The VM an `InstanceID` names: Hyper-V's `Microsoft:<VM GUID>` (optionally followed by `\`
/// and a suffix, as some Hyper-V setting data carry), or a bare GUID.
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

/// The eight settings of `Msvm_SecuritySettingData`, by their property names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Setting {
    TpmEnabled,
    KsdEnabled,
    ShieldingRequested,
    DataProtectionRequested,
    EncryptStateAndVmMigrationTraffic,
    VirtualizationBasedSecurityOptOut,
    BindToHostTpm,
    AppContainerLaunchOptOut,
}

impl Setting {
    /// Every setting, in the order of the class definition.
    pub const ALL: [Setting; 8] = [
        Setting::TpmEnabled,
        Setting::KsdEnabled,
        Setting::ShieldingRequested,
        Setting::DataProtectionRequested,
        Setting::EncryptStateAndVmMigrationTraffic,
        Setting::VirtualizationBasedSecurityOptOut,
        Setting::BindToHostTpm,
        Setting::AppContainerLaunchOptOut,
    ];

    /// The CIM property name.
    pub fn name(self) -> &'static str {
        match self {
            Setting::TpmEnabled => "TpmEnabled",
            Setting::KsdEnabled => "KsdEnabled",
            Setting::ShieldingRequested => "ShieldingRequested",
            Setting::DataProtectionRequested => "DataProtectionRequested",
            Setting::EncryptStateAndVmMigrationTraffic => "EncryptStateAndVmMigrationTraffic",
            Setting::VirtualizationBasedSecurityOptOut => "VirtualizationBasedSecurityOptOut",
            Setting::BindToHostTpm => "BindToHostTpm",
            Setting::AppContainerLaunchOptOut => "AppContainerLaunchOptOut",
        }
    }

    fn field(self, s: &mut SecuritySettings) -> &mut bool {
        match self {
            Setting::TpmEnabled => &mut s.tpm_enabled,
            Setting::KsdEnabled => &mut s.ksd_enabled,
            Setting::ShieldingRequested => &mut s.shielding_requested,
            Setting::DataProtectionRequested => &mut s.data_protection_requested,
            Setting::EncryptStateAndVmMigrationTraffic => {
                &mut s.encrypt_state_and_vm_migration_traffic
            }
            Setting::VirtualizationBasedSecurityOptOut => {
                &mut s.virtualization_based_security_opt_out
            }
            Setting::BindToHostTpm => &mut s.bind_to_host_tpm,
            Setting::AppContainerLaunchOptOut => &mut s.app_container_launch_opt_out,
        }
    }
}

/// The settings a call asks to change; the others keep their current values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SettingsPatch([Option<bool>; 8]);

impl SettingsPatch {
    /// This patch, also setting `setting` to `value`.
    pub fn with(mut self, setting: Setting, value: bool) -> SettingsPatch {
        self.0[setting as usize] = Some(value);
        self
    }

    /// What the patch asks of `setting`, if anything.
    pub fn get(&self, setting: Setting) -> Option<bool> {
        self.0[setting as usize]
    }

    /// `current` with the requested values in place.
    pub fn apply(&self, current: SecuritySettings) -> SecuritySettings {
        let mut s = current;
        for setting in Setting::ALL {
            if let Some(b) = self.get(setting) {
                *setting.field(&mut s) = b;
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
    fn a_patch_changes_only_the_settings_it_names() {
        let current = SecuritySettings {
            ksd_enabled: true,
            ..Default::default()
        };
        let patch = SettingsPatch::default()
            .with(Setting::TpmEnabled, true)
            .with(Setting::KsdEnabled, false);
        let after = patch.apply(current);
        assert!(after.tpm_enabled && !after.ksd_enabled);
        assert_eq!(
            SecuritySettings {
                tpm_enabled: false,
                ksd_enabled: false,
                ..after
            },
            SecuritySettings::default()
        );
        for (i, setting) in Setting::ALL.into_iter().enumerate() {
            assert_eq!(setting as usize, i, "ALL is in declaration order");
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
        assert!(check_rules(&before, &after, true).is_ok());
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
        assert!(check_rules(&before, &after, false).is_ok());
    }
}
