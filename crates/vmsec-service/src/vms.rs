//! VMs: registering, finding by name or GUID, removing, and reading their security records.

use time::OffsetDateTime;
use uuid::Uuid;
use vmsec_store::{AuditOutcome, KpHistoryEntry, Vm, VmSecurity};

use crate::{
    Caller, MAX_VM_NAME, Role, Service, ServiceError, not_found_is_unknown_vm, setting_data,
};

fn check_vm_name(name: &str) -> Result<(), ServiceError> {
    if name.trim().is_empty() || name.len() > MAX_VM_NAME || name.chars().any(char::is_control) {
        return Err(ServiceError::InvalidParameter(format!(
            "VM name {name:?}: use 1 to {MAX_VM_NAME} bytes of printable text"
        )));
    }
    if Uuid::parse_str(name.trim_matches(|c| c == '{' || c == '}')).is_ok() {
        return Err(ServiceError::InvalidParameter(format!(
            "VM name {name:?} is a GUID; a name must not be mistaken for another VM's GUID"
        )));
    }
    Ok(())
}

impl Service {
    pub fn add_vm(&self, who: &Caller, name: &str, id: Option<Uuid>) -> Result<Vm, ServiceError> {
        let id = id.unwrap_or_else(Uuid::new_v4);
        self.audited(
            who,
            &format!("AddVm {name}"),
            Some(id),
            AuditOutcome::Succeeded,
            || {
                who.require(Role::Operator, "adding a VM")?;
                check_vm_name(name)?;
                let vm = Vm {
                    id,
                    name: name.to_owned(),
                    created: OffsetDateTime::now_utc(),
                };
                self.store.add_vm(&vm).map_err(|e| match e {
                    vmsec_store::StoreError::AlreadyExists(m) => {
                        ServiceError::AlreadyExists(format!("{m} already exists"))
                    }
                    e => e.into(),
                })?;
                Ok(vm)
            },
        )
    }

    /// The hosts that share the store, by name.
    pub fn hosts(&self, who: &Caller) -> Result<Vec<vmsec_store::HostRecord>, ServiceError> {
        who.require(Role::Reader, "listing hosts")?;
        Ok(self.store.hosts()?)
    }

    /// Which host holds `vm`'s vTPM lease, if any.
    pub fn vm_lease(
        &self,
        who: &Caller,
        vm: &Vm,
    ) -> Result<Option<vmsec_store::LeaseInfo>, ServiceError> {
        who.require(Role::Reader, "reading a vTPM lease")?;
        Ok(self.store.vm_lease(vm.id)?)
    }

    pub fn vms(&self, who: &Caller) -> Result<Vec<Vm>, ServiceError> {
        who.require(Role::Reader, "listing VMs")?;
        Ok(self.store.vms()?)
    }

    /// Finds a VM by GUID (any common spelling) or by friendly name.
    pub fn find_vm(&self, who: &Caller, name_or_id: &str) -> Result<Vm, ServiceError> {
        who.require(Role::Reader, "reading a VM")?;
        if let Ok(id) = setting_data::parse_instance_id(name_or_id)
            && let Some(vm) = self.store.vm(id)?
        {
            return Ok(vm);
        }
        self.store
            .vm_by_name(name_or_id)?
            .ok_or_else(|| ServiceError::NoSuchVm(name_or_id.to_owned()))
    }

    pub fn remove_vm(&self, who: &Caller, vm: &Vm, force: bool) -> Result<(), ServiceError> {
        self.audited(who, &format!("RemoveVm {}", vm.name), Some(vm.id), AuditOutcome::Succeeded, || {
            who.require(Role::Operator, "removing a VM")?;
            let security = self.store.vm_security(vm.id)?;
            if security.key_protector.is_some() && !force {
                return Err(ServiceError::InvalidState(format!(
                    "VM {:?} has a key protector; removing it loses the only way to its vTPM state. \
                     Use --force if that is what you want",
                    vm.name
                )));
            }
            if !self.store.remove_vm(vm.id)? {
                return Err(ServiceError::UnknownVm(vm.id.into()));
            }
            Ok(())
        })
    }

    /// The VM's security record: settings, KP, last known good, policy.
    pub fn vm_security(&self, who: &Caller, vm: Uuid) -> Result<VmSecurity, ServiceError> {
        who.require(Role::Reader, "reading a VM's security settings")?;
        self.store
            .vm_security(vm)
            .map_err(|e| not_found_is_unknown_vm(e, vm))
    }

    pub fn kp_history(&self, who: &Caller, vm: Uuid) -> Result<Vec<KpHistoryEntry>, ServiceError> {
        who.require(Role::Reader, "reading a VM's key protector history")?;
        Ok(self.store.kp_history(vm)?)
    }
}
