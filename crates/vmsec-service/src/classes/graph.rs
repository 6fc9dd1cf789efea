//! The part of Hyper-V's object graph vmsec serves beyond the security classes: each VM's
//! `Msvm_VirtualSystemSettingData`, and the association instances that tie a VM's computer
//! system, its settings, its security settings and the security service together, so that
//! clients that walk the graph (`Get-CimAssociatedInstance`, `ASSOCIATORS OF`) find them.

use std::path::Path;

use uuid::Uuid;
use vmsec_cim::schema::ServedClass;
use vmsec_cim::{CimType, Instance, ObjectPath, Value};
use vmsec_store::{HostIdentity, Role, Vm};

use super::build::{COMPUTER_SYSTEM, SECURITY_SERVICE, SECURITY_SETTING_DATA, dt, s, vm_guid};
use super::{Instances, matches};
use crate::setting_data::{instance_id, parse_instance_id};
use crate::vtpm::VtpmLocation;
use crate::{Caller, Service, ServiceError};

pub const VIRTUAL_SYSTEM_SETTING_DATA: &str = "Msvm_VirtualSystemSettingData";

/// The `VirtualSystemType` of a VM's current (not a snapshot's) settings.
pub const REALIZED: &str = "Microsoft:Hyper-V:System:Realized";

/// `ElementEffects` of `Msvm_ServiceAffectsElement`: 5, Manages.
const MANAGES: u16 = 5;

/// The pid of `vm`'s swtpm when its vTPM runs on this host (`None` without a vTPM
/// directory, as for a service that runs no vTPMs).
pub fn vtpm_pid(root: Option<&Path>, vm: Uuid) -> Option<u32> {
    let location = VtpmLocation::of(root?, vm);
    if !location.dir.exists() {
        return None;
    }
    match vmsec_tpm::status(&location.paths) {
        Ok(vmsec_tpm::Status::Running { pid, .. }) => Some(pid),
        _ => None,
    }
}

/// A VM's realized settings, as Hyper-V names them: `InstanceID` and the identifiers are the
/// VM's GUID.
pub fn virtual_system_setting_data(vm: &Vm) -> Instance {
    let guid = vm_guid(vm.id);
    Instance::new(VIRTUAL_SYSTEM_SETTING_DATA)
        .with("InstanceID", CimType::String, s(instance_id(vm.id)))
        .with("Caption", CimType::String, s("Virtual Machine Settings"))
        .with(
            "Description",
            CimType::String,
            s("Active settings for the virtual machine."),
        )
        .with("ElementName", CimType::String, s(&vm.name))
        .with("VirtualSystemIdentifier", CimType::String, s(&guid))
        .with("ConfigurationID", CimType::String, s(&guid))
        .with("VirtualSystemType", CimType::String, s(REALIZED))
        .with("CreationTime", CimType::DateTime, dt(vm.created))
}

fn v2_path(class: &str) -> ObjectPath {
    ObjectPath::new(class).in_namespace(vmsec_cim::schema::VIRTUALIZATION_V2)
}

fn computer_system_path(name: &str) -> Value {
    Value::Reference(
        v2_path(COMPUTER_SYSTEM)
            .with_key("CreationClassName", s(COMPUTER_SYSTEM))
            .with_key("Name", s(name)),
    )
}

fn by_instance_id(class: &str, vm: Uuid) -> Value {
    Value::Reference(v2_path(class).with_key("InstanceID", s(instance_id(vm))))
}

fn security_service_path(host: &HostIdentity) -> Value {
    Value::Reference(
        v2_path(SECURITY_SERVICE)
            .with_key("CreationClassName", s(SECURITY_SERVICE))
            .with_key("Name", s(super::build::SECURITY_SERVICE_NAME))
            .with_key("SystemCreationClassName", s(COMPUTER_SYSTEM))
            .with_key("SystemName", s(&host.name)),
    )
}

fn reference(class: ServedClass, a: (&str, Value), b: (&str, Value)) -> Instance {
    Instance::new(class.name())
        .with(a.0, CimType::Reference, a.1)
        .with(b.0, CimType::Reference, b.1)
}

/// A VM's computer system and its settings.
pub fn settings_define_state(vm: Uuid) -> Instance {
    reference(
        ServedClass::SettingsDefineState,
        ("ManagedElement", computer_system_path(&vm_guid(vm))),
        (
            "SettingData",
            by_instance_id(VIRTUAL_SYSTEM_SETTING_DATA, vm),
        ),
    )
}

/// A VM's settings and its security settings, one of their components.
pub fn virtual_system_setting_data_component(vm: Uuid) -> Instance {
    reference(
        ServedClass::VirtualSystemSettingDataComponent,
        (
            "GroupComponent",
            by_instance_id(VIRTUAL_SYSTEM_SETTING_DATA, vm),
        ),
        ("PartComponent", by_instance_id(SECURITY_SETTING_DATA, vm)),
    )
}

/// The security service, which manages every VM's key protector, and a VM.
pub fn service_affects_element(host: &HostIdentity, vm: Uuid) -> Instance {
    reference(
        ServedClass::ServiceAffectsElement,
        ("AffectedElement", computer_system_path(&vm_guid(vm))),
        ("AffectingElement", security_service_path(host)),
    )
    .with(
        "ElementEffects",
        CimType::UInt16,
        Value::Array(vec![Value::UInt16(MANAGES)]),
    )
}

/// The host and the security service it hosts.
pub fn hosted_service(host: &HostIdentity) -> Instance {
    reference(
        ServedClass::HostedService,
        ("Antecedent", computer_system_path(&host.name)),
        ("Dependent", security_service_path(host)),
    )
}

/// The association instances of `class` for one VM (the ones with one instance per VM).
pub(super) fn per_vm(class: ServedClass, host: &HostIdentity, vm: Uuid) -> Option<Instance> {
    Some(match class {
        ServedClass::SettingsDefineState => settings_define_state(vm),
        ServedClass::VirtualSystemSettingDataComponent => virtual_system_setting_data_component(vm),
        ServedClass::ServiceAffectsElement => service_affects_element(host, vm),
        _ => return None,
    })
}

impl Service {
    /// The VM a key names, when it is one of the store's.
    fn vm_named(
        &self,
        key: Option<&str>,
        by: fn(&str) -> Option<Uuid>,
    ) -> Result<Option<Vm>, ServiceError> {
        match key.and_then(by) {
            Some(id) => self.store.vm(id),
            None => Ok(None),
        }
        .map_err(Into::into)
    }

    /// The instances of the association `class` whose reference `role` points at the
    /// instance with `keys` (names as the schema spells them), to be read as they are asked
    /// for. An instance that does not exist is referenced by none.
    pub fn references(
        &self,
        who: &Caller,
        class: ServedClass,
        role: &str,
        keys: &[(String, String)],
    ) -> Result<Instances, ServiceError> {
        who.require(Role::Reader, "reading associations")?;
        let key = |name: &str| {
            keys.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let guid = |v: &str| Uuid::parse_str(v).ok();
        let setting = |v: &str| parse_instance_id(v).ok();
        let is_service = || matches(&super::build::security_service(&self.host, true), keys);
        let role = role.to_ascii_lowercase();
        let one = |vm: Option<Vm>| -> Vec<Instance> {
            vm.and_then(|vm| per_vm(class, &self.host, vm.id))
                .into_iter()
                .collect()
        };
        let found = match (class, role.as_str()) {
            (ServedClass::SettingsDefineState, "managedelement")
            | (ServedClass::ServiceAffectsElement, "affectedelement") => {
                one(self.vm_named(key("Name"), guid)?)
            }
            (ServedClass::SettingsDefineState, "settingdata")
            | (
                ServedClass::VirtualSystemSettingDataComponent,
                "groupcomponent" | "partcomponent",
            ) => one(self.vm_named(key("InstanceID"), setting)?),
            (ServedClass::ServiceAffectsElement, "affectingelement") if is_service() => {
                return Ok(self.paged(class, Vec::new()));
            }
            (ServedClass::HostedService, "antecedent")
                if key("Name").is_some_and(|n| n.eq_ignore_ascii_case(&self.host.name)) =>
            {
                vec![hosted_service(&self.host)]
            }
            (ServedClass::HostedService, "dependent") if is_service() => {
                vec![hosted_service(&self.host)]
            }
            _ => Vec::new(),
        };
        Ok(self.listed(found))
    }
}
