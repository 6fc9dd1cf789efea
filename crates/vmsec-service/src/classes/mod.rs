//! The CIM classes this service serves, built from the store's records: what a WS-Man Get or
//! Enumerate returns. Names and values follow Hyper-V's own instances so that clients written
//! for Hyper-V find what they look for.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use vmsec_cim::schema::ServedClass;

use time::OffsetDateTime;
use uuid::Uuid;
use vmsec_cim::{Instance, Value};
use vmsec_store::{HostIdentity, Role, Store, VmSummary};

use crate::hgs::HgsDir;
use crate::setting_data::parse_instance_id;
use crate::{Caller, Remembered, Service, ServiceError};

mod build;
mod graph;

pub use build::*;
pub use graph::*;

/// VMs an enumeration reads at a time for the classes with one small instance per VM.
const PAGE: usize = 256;

/// VMs an enumeration of `Msvm_TPMSettingData` reads at a time: each instance carries the
/// VM's key protector and last known good (some 14 KB each, up to 1 MiB each).
const TPM_PAGE: usize = 4;

/// Whether `instance` has every property of `filter` equal to the given text. Strings compare
/// without regard to case, as WQL does; other values by their CIM text form.
pub fn matches(instance: &Instance, filter: &[(String, String)]) -> bool {
    filter
        .iter()
        .all(|(name, want)| match instance.value(name) {
            Some(Value::String(v)) => v.eq_ignore_ascii_case(want),
            Some(Value::Boolean(v)) => want.eq_ignore_ascii_case(if *v { "true" } else { "false" }),
            Some(Value::Null) | None => false,
            Some(Value::DateTime(d)) => d.to_string() == *want,
            Some(v) => {
                v.as_u64().map(|n| n.to_string() == *want).unwrap_or(false)
                    || v.as_i64().map(|n| n.to_string() == *want).unwrap_or(false)
            }
        })
}

/// The value of the key `name` among `keys` (names as a client spelled them).
fn key_value<'a>(keys: &'a [(String, String)], name: &str) -> Option<&'a str> {
    keys.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The VM a per-VM instance's keys name. Msvm_SecurityElement is keyed by SystemName (the
/// VM GUID), the others by InstanceID.
fn vm_key(keys: &[(String, String)]) -> Option<Uuid> {
    key_value(keys, "InstanceID")
        .or_else(|| key_value(keys, "SystemName"))
        .and_then(|v| parse_instance_id(v).ok())
}

/// How an instance of `class` is built from a VM's summary alone, for the classes that are
/// (as [`Service::instance`] builds them).
fn built_from_summary(class: ServedClass) -> Option<fn(&VmSummary) -> Instance> {
    match class {
        ServedClass::SecuritySettingData => Some(security_setting_data),
        ServedClass::SecurityElement => Some(security_element),
        _ => None,
    }
}

impl Service {
    /// This host's `MSFT_HgsClientConfiguration`, from its files under `hgs`.
    fn hgs_configuration(&self, hgs: &HgsDir) -> Result<Instance, ServiceError> {
        let config = hgs.config()?;
        let (status, _) = hgs.attestation(&config, time::OffsetDateTime::now_utc())?;
        Ok(hgs_client_configuration(&config, status))
    }

    /// The instance of `class` with the given key values (names as a client spelled them),
    /// or `None` when no instance has them. `hgs` is this host's HGS directory, which
    /// `MSFT_HgsClientConfiguration` reports (it is the host's own, not the store's).
    pub fn instance(
        &self,
        who: &Caller,
        class: ServedClass,
        keys: &[(String, String)],
        hgs: &HgsDir,
    ) -> Result<Option<Instance>, ServiceError> {
        who.require(Role::Reader, "reading instances")?;
        let key = |name: &str| key_value(keys, name);
        let vm_key = || vm_key(keys);
        let summarized = |build: fn(&VmSummary) -> Instance| -> Result<_, ServiceError> {
            let Some(id) = vm_key() else { return Ok(None) };
            Ok(self.store.vm_summary(id)?.map(|v| build(&v)))
        };
        match class {
            ServedClass::SecurityService => {
                let i = security_service(&self.host, self.is_started());
                Ok(matches(&i, keys).then_some(i))
            }
            ServedClass::HgsClientConfiguration => {
                let i = self.hgs_configuration(hgs)?;
                Ok(matches(&i, keys).then_some(i))
            }
            ServedClass::ComputerSystem => {
                let Some(name) = key("Name") else {
                    return Ok(None);
                };
                if name.eq_ignore_ascii_case(&self.host.name) {
                    return Ok(Some(host_computer_system(&self.host)));
                }
                let Ok(id) = Uuid::parse_str(name) else {
                    return Ok(None);
                };
                let root = self.vtpm_root.get().map(PathBuf::as_path);
                Ok(self
                    .store
                    .vm(id)?
                    .map(|vm| vm_computer_system(&vm, vtpm_pid(root, vm.id))))
            }
            ServedClass::VirtualSystemSettingData => {
                let Some(id) = vm_key() else { return Ok(None) };
                Ok(self
                    .store
                    .vm(id)?
                    .map(|vm| virtual_system_setting_data(&vm)))
            }
            // An association instance is keyed by its references, which a selector cannot
            // carry as text: association instances are reached by association filters and
            // by enumerating their class.
            ServedClass::SettingsDefineState
            | ServedClass::VirtualSystemSettingDataComponent
            | ServedClass::ServiceAffectsElement
            | ServedClass::HostedService => Ok(None),
            ServedClass::SecuritySettingData => summarized(security_setting_data),
            ServedClass::SecurityElement => summarized(security_element),
            ServedClass::TpmSettingData => {
                let Some(id) = vm_key() else { return Ok(None) };
                Ok(self
                    .store
                    .vm_with_security(id)?
                    .map(|(vm, sec)| tpm_setting_data(&vm, &sec)))
            }
            ServedClass::ConcreteJob => {
                let Some(id) = key("InstanceID") else {
                    return Ok(None);
                };
                Ok(self.store.job(id)?.map(|j| concrete_job(&j)))
            }
        }
    }

    /// [`Service::instance`] for credentials accepted from memory: confirms them
    /// ([`Service::confirm`]) and returns the caller they stand for with the instance. The
    /// classes built from a VM's summary read the user in the same transaction as the VM
    /// (one read, not two: this is the path of a small Get).
    pub fn instance_confirming(
        &self,
        r: &Remembered,
        class: ServedClass,
        keys: &[(String, String)],
        hgs: &HgsDir,
    ) -> Result<(Caller, Option<Instance>), ServiceError> {
        if let (Some(build), Some(id)) = (built_from_summary(class), vm_key(keys)) {
            let (user, vm) = self.store.user_and_vm_summary(&r.name, id)?;
            let who = self.confirmed(r, user)?;
            who.require(Role::Reader, "reading instances")?;
            return Ok((who, vm.map(|v| build(&v))));
        }
        let who = self.confirm(r)?;
        let found = self.instance(&who, class, keys, hgs)?;
        Ok((who, found))
    }

    /// The instances of `class` whose properties equal `filter` (WQL `WHERE a = 'x' AND …`),
    /// to be read as they are asked for ([`Instances`]). A filter on the class's key is
    /// answered by a lookup, not a scan. `hgs` as for [`Service::instance`].
    pub fn instances(
        &self,
        who: &Caller,
        class: ServedClass,
        filter: &[(String, String)],
        hgs: &HgsDir,
    ) -> Result<Instances, ServiceError> {
        who.require(Role::Reader, "enumerating instances")?;
        let keyed_by_instance_id = matches!(
            class,
            ServedClass::VirtualSystemSettingData
                | ServedClass::SecuritySettingData
                | ServedClass::SecurityElement
                | ServedClass::TpmSettingData
                | ServedClass::ConcreteJob
        );
        let has = |name: &str| filter.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        let read = |listed: Vec<Instance>, paged: Option<ServedClass>| {
            let mut i = self.paged(class, filter.to_vec());
            i.buffer = listed.into_iter().filter(|i| matches(i, filter)).collect();
            i.paged = paged.map(|class| (class, None));
            i
        };
        if (keyed_by_instance_id && has("InstanceID"))
            || (class == ServedClass::SecurityElement && has("SystemName"))
            || (class == ServedClass::ComputerSystem && has("Name"))
        {
            let found = self.instance(who, class, filter, hgs)?;
            return Ok(read(found.into_iter().collect(), None));
        }
        Ok(match class {
            ServedClass::SecurityService => {
                read(vec![security_service(&self.host, self.is_started())], None)
            }
            ServedClass::HgsClientConfiguration => read(vec![self.hgs_configuration(hgs)?], None),
            ServedClass::HostedService => read(vec![hosted_service(&self.host)], None),
            ServedClass::ConcreteJob => {
                self.store.remove_expired_jobs(OffsetDateTime::now_utc())?;
                read(Vec::new(), Some(class))
            }
            ServedClass::ComputerSystem => {
                read(vec![host_computer_system(&self.host)], Some(class))
            }
            ServedClass::SecuritySettingData
            | ServedClass::SecurityElement
            | ServedClass::TpmSettingData
            | ServedClass::VirtualSystemSettingData
            | ServedClass::SettingsDefineState
            | ServedClass::VirtualSystemSettingDataComponent
            | ServedClass::ServiceAffectsElement => read(Vec::new(), Some(class)),
        })
    }

    /// An enumeration of every instance of `class` matching `filter`, read a page of VMs
    /// (or jobs) at a time.
    fn paged(&self, class: ServedClass, filter: Vec<(String, String)>) -> Instances {
        Instances {
            store: self.store.clone(),
            host: self.host.clone(),
            vtpm_root: self.vtpm_root.get().cloned(),
            filter,
            buffer: VecDeque::new(),
            paged: Some((class, None)),
        }
    }

    /// An enumeration of instances read already.
    fn listed(&self, found: Vec<Instance>) -> Instances {
        Instances {
            buffer: found.into(),
            paged: None,
            ..self.paged(ServedClass::SecurityService, Vec::new())
        }
    }
}

/// The instances of one enumeration, read as they are asked for. The classes with an instance
/// per VM are read a page of VMs at a time, by VM name, and jobs a page at a time by
/// `InstanceID`, so an enumeration holds one page however many there are (100,000 VMs'
/// `Msvm_SecuritySettingData` took ~250 MiB when they were all read at once); one added or
/// removed meanwhile is returned or not according to where the enumeration has got to. The
/// security service and an instance looked up by its key are read at once.
pub struct Instances {
    store: Arc<dyn Store>,
    /// The host the security service runs on, which some associations reference.
    host: HostIdentity,
    /// Where the vTPMs live, for whether a VM's runs.
    vtpm_root: Option<PathBuf>,
    filter: Vec<(String, String)>,
    /// Read, matching the filter, and not yet returned.
    buffer: VecDeque<Instance>,
    /// For a class read in pages, until the last page is read: the class, and the key of
    /// the last instance read (VM name, or job `InstanceID`; none before the first page).
    paged: Option<(ServedClass, Option<String>)>,
}

impl Instances {
    /// Up to `n` next instances; fewer only at the end (none once all were returned).
    pub fn next(&mut self, n: usize) -> Result<Vec<Instance>, ServiceError> {
        let mut out = Vec::with_capacity(n.min(PAGE));
        while out.len() < n {
            match self.buffer.pop_front() {
                Some(inst) => out.push(inst),
                None if self.paged.is_some() => self.read_page()?,
                None => break,
            }
        }
        Ok(out)
    }

    /// Reads the next page into the buffer; the last page (a short one) ends the walk.
    fn read_page(&mut self) -> Result<(), ServiceError> {
        let Instances {
            store,
            host,
            vtpm_root,
            filter,
            buffer,
            paged,
        } = self;
        let Some((class, after)) = paged.as_mut() else {
            return Ok(());
        };
        let after_key = after.as_deref();
        // Whether the page was full (more may follow), and the key it ended at.
        let (full, last) = match *class {
            ServedClass::SecuritySettingData | ServedClass::SecurityElement => {
                let build = if *class == ServedClass::SecuritySettingData {
                    security_setting_data
                } else {
                    security_element
                };
                let page = store.vm_summaries_after(after_key, PAGE)?;
                buffer.extend(page.iter().map(build).filter(|i| matches(i, filter)));
                (page.len() == PAGE, page.last().map(|v| v.vm.name.clone()))
            }
            ServedClass::ConcreteJob => {
                let page = store.jobs_after(after_key, PAGE)?;
                buffer.extend(page.iter().map(concrete_job).filter(|i| matches(i, filter)));
                (
                    page.len() == PAGE,
                    page.last().map(|j| j.instance_id.clone()),
                )
            }
            ServedClass::ComputerSystem
            | ServedClass::VirtualSystemSettingData
            | ServedClass::SettingsDefineState
            | ServedClass::VirtualSystemSettingDataComponent
            | ServedClass::ServiceAffectsElement => {
                let page = store.vms_after(after_key, PAGE)?;
                let class = *class;
                let root = vtpm_root.as_deref();
                buffer.extend(
                    page.iter()
                        .filter_map(|vm| match class {
                            ServedClass::ComputerSystem => {
                                Some(vm_computer_system(vm, vtpm_pid(root, vm.id)))
                            }
                            ServedClass::VirtualSystemSettingData => {
                                Some(virtual_system_setting_data(vm))
                            }
                            _ => per_vm(class, host, vm.id),
                        })
                        .filter(|i| matches(i, filter)),
                );
                (page.len() == PAGE, page.last().map(|vm| vm.name.clone()))
            }
            // The singletons are read at once, never in pages.
            ServedClass::SecurityService
            | ServedClass::HgsClientConfiguration
            | ServedClass::HostedService => (false, None),
            ServedClass::TpmSettingData => {
                let page = store.vms_with_security_after(after_key, TPM_PAGE)?;
                buffer.extend(
                    page.iter()
                        .map(|(vm, sec)| tpm_setting_data(vm, sec))
                        .filter(|i| matches(i, filter)),
                );
                (
                    page.len() == TPM_PAGE,
                    page.last().map(|(vm, _)| vm.name.clone()),
                )
            }
        };
        match last {
            Some(name) if full => *after = Some(name),
            _ => *paged = None,
        }
        Ok(())
    }

    /// About how much memory it holds.
    pub fn heap_bytes(&self) -> usize {
        self.buffer.iter().map(Instance::heap_bytes).sum::<usize>()
            + self
                .filter
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + self
                .paged
                .as_ref()
                .and_then(|(_, after)| after.as_ref())
                .map_or(0, String::len)
    }
}
