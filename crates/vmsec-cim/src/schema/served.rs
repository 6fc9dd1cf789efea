//! The served classes as a type, so that callers compare variants instead of class strings.

use super::{ClassDef, classes};

/// A class vmsec serves: one variant per class of the schema, in the order of
/// [`super::classes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServedClass {
    /// `Msvm_SecurityService`, the singleton whose methods manage key protectors.
    SecurityService,
    /// `Msvm_SecuritySettingData`, one per VM.
    SecuritySettingData,
    /// `Msvm_ComputerSystem`: the host and the VMs.
    ComputerSystem,
    /// `Msvm_SecurityElement`, one per VM.
    SecurityElement,
    /// `Msvm_TPMSettingData`, one per VM.
    TpmSettingData,
    /// `Msvm_ConcreteJob`: the jobs methods started.
    ConcreteJob,
    /// `MSFT_HgsClientConfiguration` (in `root/microsoft/windows/hgs`), the singleton that
    /// shows the host's guarded-fabric mode.
    HgsClientConfiguration,
    /// `Msvm_VirtualSystemSettingData`, one per VM: its realized configuration.
    VirtualSystemSettingData,
    /// `Msvm_SettingsDefineState`, the association of a VM's computer system and its
    /// `Msvm_VirtualSystemSettingData`.
    SettingsDefineState,
    /// `Msvm_VirtualSystemSettingDataComponent`, the association of a VM's
    /// `Msvm_VirtualSystemSettingData` and its `Msvm_SecuritySettingData`.
    VirtualSystemSettingDataComponent,
    /// `Msvm_ServiceAffectsElement`, the association of the security service and each VM's
    /// computer system.
    ServiceAffectsElement,
    /// `Msvm_HostedService`, the association of the host's computer system and the
    /// security service.
    HostedService,
}

impl ServedClass {
    /// Every served class, in schema order.
    pub const ALL: [ServedClass; 12] = [
        ServedClass::SecurityService,
        ServedClass::SecuritySettingData,
        ServedClass::ComputerSystem,
        ServedClass::SecurityElement,
        ServedClass::TpmSettingData,
        ServedClass::ConcreteJob,
        ServedClass::HgsClientConfiguration,
        ServedClass::VirtualSystemSettingData,
        ServedClass::SettingsDefineState,
        ServedClass::VirtualSystemSettingDataComponent,
        ServedClass::ServiceAffectsElement,
        ServedClass::HostedService,
    ];

    /// The class name as Microsoft spells it.
    pub const fn name(self) -> &'static str {
        self.def().name
    }

    /// The WMI namespace the class lives in.
    pub const fn namespace(self) -> &'static str {
        self.def().namespace
    }

    /// The class's definition.
    pub const fn def(self) -> &'static ClassDef {
        // `ALL` in classes.rs is in the order of the variants; a test keeps them in step.
        &classes::ALL[self as usize]
    }

    /// The served class named `name`, ignoring ASCII case.
    pub fn from_name(name: &str) -> Option<ServedClass> {
        ServedClass::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }
}

impl std::fmt::Display for ServedClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_of_the_schema_has_its_variant_in_order() {
        let names: Vec<&str> = ServedClass::ALL.iter().map(|c| c.name()).collect();
        let schema: Vec<&str> = super::super::classes().iter().map(|c| c.name).collect();
        assert_eq!(names, schema);
        assert_eq!(
            ServedClass::from_name("msvm_tpmsettingdata"),
            Some(ServedClass::TpmSettingData)
        );
        assert_eq!(
            ServedClass::from_name("Msvm_VirtualSystemSettingData"),
            Some(ServedClass::VirtualSystemSettingData)
        );
        assert_eq!(ServedClass::from_name("Msvm_SystemDevice"), None);
    }

    #[test]
    fn each_class_names_its_namespace() {
        assert_eq!(
            ServedClass::SecurityService.namespace(),
            "root/virtualization/v2"
        );
        let hgs = ServedClass::HgsClientConfiguration.def();
        assert_eq!(hgs.namespace, "root/microsoft/windows/hgs");
        assert!(hgs.in_namespace("root/Microsoft/Windows/Hgs"));
        assert!(hgs.in_namespace("Root\\Microsoft\\Windows\\Hgs"));
        assert!(!hgs.in_namespace("root/virtualization/v2"));
        assert!(!hgs.in_namespace("root/microsoft/windows"));
        assert_eq!(hgs.keys().count(), 0, "a singleton without keys");
    }
}
