//! The CIM classes this service serves, built from the store's records: what a WS-Man Get or
//! Enumerate returns. Names and values follow Hyper-V's own instances so that clients written
//! for Hyper-V find what they look for.

use std::collections::VecDeque;
use std::sync::Arc;
use vmsec_cim::schema::ServedClass;

use time::OffsetDateTime;
use uuid::Uuid;
use vmsec_cim::{CimDateTime, CimType, Instance, Value};
use vmsec_store::{HostIdentity, Job, Role, Store, Vm, VmSecurity, VmSummary};

use crate::hgs::{AttestationStatus, ClientConfig, HgsDir, Mode};
use crate::setting_data::{instance_id, parse_instance_id};
use crate::{Caller, Service, ServiceError};

/// The `Name` key of the one `Msvm_SecurityService`.
pub const SECURITY_SERVICE_NAME: &str = "vmsecuritywmi";

pub const SECURITY_SERVICE: &str = "Msvm_SecurityService";
pub const COMPUTER_SYSTEM: &str = "Msvm_ComputerSystem";
pub const SECURITY_SETTING_DATA: &str = "Msvm_SecuritySettingData";
pub const SECURITY_ELEMENT: &str = "Msvm_SecurityElement";
pub const TPM_SETTING_DATA: &str = "Msvm_TPMSettingData";
pub const CONCRETE_JOB: &str = "Msvm_ConcreteJob";
pub const HGS_CLIENT_CONFIGURATION: &str = "MSFT_HgsClientConfiguration";

/// VMs an enumeration reads at a time for the classes with one small instance per VM.
const PAGE: usize = 256;

/// VMs an enumeration of `Msvm_TPMSettingData` reads at a time: each instance carries the
/// VM's key protector and last known good (some 14 KB each, up to 1 MiB each).
const TPM_PAGE: usize = 4;

/// CIM `EnabledState`: Enabled / Disabled.
const ENABLED: u16 = 2;
const DISABLED: u16 = 3;

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

fn dt(t: OffsetDateTime) -> Value {
    CimDateTime::from_offset_datetime(t)
        .map(Value::DateTime)
        .unwrap_or(Value::Null)
}

fn interval(d: time::Duration) -> Value {
    std::time::Duration::try_from(d)
        .ok()
        .and_then(|d| CimDateTime::from_duration(d).ok())
        .map(Value::DateTime)
        .unwrap_or(Value::Null)
}

fn bytes(b: &Option<Vec<u8>>) -> Value {
    match b {
        Some(b) => Value::from_bytes(b),
        None => Value::Null,
    }
}

fn vm_guid(vm: Uuid) -> String {
    vm.to_string().to_uppercase()
}

pub fn security_service(host: &HostIdentity, started: bool) -> Instance {
    Instance::new(SECURITY_SERVICE)
        .with("CreationClassName", CimType::String, s(SECURITY_SERVICE))
        .with("Name", CimType::String, s(SECURITY_SERVICE_NAME))
        .with(
            "SystemCreationClassName",
            CimType::String,
            s(COMPUTER_SYSTEM),
        )
        .with("SystemName", CimType::String, s(&host.name))
        .with("Caption", CimType::String, s("Security Service"))
        .with(
            "Description",
            CimType::String,
            s("Keeps the security settings and key protectors of virtual machines"),
        )
        .with("ElementName", CimType::String, s("Security Service"))
        .with(
            "EnabledState",
            CimType::UInt16,
            Value::UInt16(if started { ENABLED } else { DISABLED }),
        )
        .with("HealthState", CimType::UInt16, Value::UInt16(5))
        .with(
            "OperationalStatus",
            CimType::UInt16,
            Value::Array(vec![Value::UInt16(2)]),
        )
        .with("StartMode", CimType::String, s("Automatic"))
        .with("Started", CimType::Boolean, Value::Boolean(started))
}

pub fn host_computer_system(host: &HostIdentity) -> Instance {
    Instance::new(COMPUTER_SYSTEM)
        .with("CreationClassName", CimType::String, s(COMPUTER_SYSTEM))
        .with("Name", CimType::String, s(&host.name))
        .with("Caption", CimType::String, s("Hosting Computer System"))
        .with(
            "Description",
            CimType::String,
            s("Microsoft Hosting Computer System"),
        )
        .with("ElementName", CimType::String, s(&host.name))
        .with("EnabledState", CimType::UInt16, Value::UInt16(ENABLED))
        .with("HealthState", CimType::UInt16, Value::UInt16(5))
}

pub fn vm_computer_system(vm: &Vm) -> Instance {
    Instance::new(COMPUTER_SYSTEM)
        .with("CreationClassName", CimType::String, s(COMPUTER_SYSTEM))
        .with("Name", CimType::String, s(vm_guid(vm.id)))
        .with("Caption", CimType::String, s("Virtual Machine"))
        .with(
            "Description",
            CimType::String,
            s("Microsoft Virtual Machine"),
        )
        .with("ElementName", CimType::String, s(&vm.name))
        .with("InstallDate", CimType::DateTime, dt(vm.created))
        .with("HealthState", CimType::UInt16, Value::UInt16(5))
}

pub fn security_setting_data(v: &VmSummary) -> Instance {
    let (vm, st) = (&v.vm, &v.settings);
    let b = |v: bool| Value::Boolean(v);
    Instance::new(SECURITY_SETTING_DATA)
        .with("InstanceID", CimType::String, s(instance_id(vm.id)))
        .with("Caption", CimType::String, s("Security Settings"))
        .with(
            "Description",
            CimType::String,
            s("Microsoft Virtual Machine Security Settings"),
        )
        .with("ElementName", CimType::String, s(&vm.name))
        .with("TpmEnabled", CimType::Boolean, b(st.tpm_enabled))
        .with("KsdEnabled", CimType::Boolean, b(st.ksd_enabled))
        .with(
            "ShieldingRequested",
            CimType::Boolean,
            b(st.shielding_requested),
        )
        .with(
            "DataProtectionRequested",
            CimType::Boolean,
            b(st.data_protection_requested),
        )
        .with(
            "EncryptStateAndVmMigrationTraffic",
            CimType::Boolean,
            b(st.encrypt_state_and_vm_migration_traffic),
        )
        .with(
            "VirtualizationBasedSecurityOptOut",
            CimType::Boolean,
            b(st.virtualization_based_security_opt_out),
        )
        .with("BindToHostTpm", CimType::Boolean, b(st.bind_to_host_tpm))
        .with(
            "AppContainerLaunchOptOut",
            CimType::Boolean,
            b(st.app_container_launch_opt_out),
        )
}

/// The runtime security state: what is in force, not only what was asked for. Shielding and
/// state encryption are in force only while a key protector is there to hold their keys.
pub fn security_element(v: &VmSummary) -> Instance {
    let (vm, has_kp) = (&v.vm, v.has_key_protector);
    // Keyed as Hyper-V's MOF has it: by the system the element belongs to.
    Instance::new(SECURITY_ELEMENT)
        .with("CreationClassName", CimType::String, s(SECURITY_ELEMENT))
        .with(
            "SystemCreationClassName",
            CimType::String,
            s(COMPUTER_SYSTEM),
        )
        .with("SystemName", CimType::String, s(vm_guid(vm.id)))
        .with("InstanceID", CimType::String, s(instance_id(vm.id)))
        .with("Caption", CimType::String, s("Security"))
        .with("ElementName", CimType::String, s(&vm.name))
        .with("Name", CimType::String, s(vm_guid(vm.id)))
        .with(
            "Shielded",
            CimType::Boolean,
            Value::Boolean(has_kp && v.settings.shielding_requested),
        )
        .with(
            "EncryptStateAndVmMigrationTrafficEnabled",
            CimType::Boolean,
            Value::Boolean(has_kp && v.settings.encrypt_state_and_vm_migration_traffic),
        )
}

pub fn tpm_setting_data(vm: &Vm, sec: &VmSecurity) -> Instance {
    Instance::new(TPM_SETTING_DATA)
        .with("InstanceID", CimType::String, s(instance_id(vm.id)))
        .with("Caption", CimType::String, s("Virtual TPM"))
        .with("ElementName", CimType::String, s(&vm.name))
        .with(
            "EnabledState",
            CimType::UInt16,
            Value::UInt16(if sec.settings.tpm_enabled {
                ENABLED
            } else {
                DISABLED
            }),
        )
        .with(
            "Shielded",
            CimType::Boolean,
            Value::Boolean(sec.settings.shielding_requested && sec.key_protector.is_some()),
        )
        .with(
            "DataProtected",
            CimType::Boolean,
            Value::Boolean(sec.settings.data_protection_requested),
        )
        .with("KeyProtector", CimType::UInt8, bytes(&sec.key_protector))
        .with(
            "LastKnownGoodKeyProtector",
            CimType::UInt8,
            bytes(&sec.last_known_good),
        )
}

pub fn concrete_job(job: &Job) -> Instance {
    let now = OffsetDateTime::now_utc();
    let elapsed = match (job.start_time, job.finish_time) {
        (Some(start), Some(end)) => end - start,
        (Some(start), None) => now - start,
        _ => time::Duration::ZERO,
    };
    let status = match job.state {
        vmsec_store::JobState::Completed => "Job completed successfully".to_string(),
        vmsec_store::JobState::Exception => format!("Job failed: {}", job.error_description),
        other => other.name().to_string(),
    };
    Instance::new(CONCRETE_JOB)
        .with("InstanceID", CimType::String, s(&job.instance_id))
        .with("Caption", CimType::String, s(&job.method))
        .with(
            "Description",
            CimType::String,
            s(format!("{} job", job.method)),
        )
        .with("ElementName", CimType::String, s(&job.method))
        .with("Name", CimType::String, s(&job.method))
        .with("JobStatus", CimType::String, s(status))
        .with("JobState", CimType::UInt16, Value::UInt16(job.state.code()))
        .with(
            "ErrorCode",
            CimType::UInt16,
            Value::UInt16(u16::try_from(job.error_code).unwrap_or(u16::MAX)),
        )
        .with(
            "ErrorDescription",
            CimType::String,
            if job.error_description.is_empty() {
                Value::Null
            } else {
                s(&job.error_description)
            },
        )
        .with(
            "PercentComplete",
            CimType::UInt16,
            Value::UInt16(job.percent_complete),
        )
        .with("TimeSubmitted", CimType::DateTime, dt(job.time_submitted))
        .with(
            "StartTime",
            CimType::DateTime,
            job.start_time.map(dt).unwrap_or(Value::Null),
        )
        .with("ElapsedTime", CimType::DateTime, interval(elapsed))
        .with(
            "TimeBeforeRemoval",
            CimType::DateTime,
            interval(job.time_before_removal),
        )
        .with("Owner", CimType::String, s(&job.submitted_by))
        .with("Cancellable", CimType::Boolean, Value::Boolean(false))
        .with(
            "DeleteOnCompletion",
            CimType::Boolean,
            Value::Boolean(false),
        )
}

/// The host's guarded-fabric configuration as `Get-HgsClientConfiguration` shows it: the
/// enumerations by the names the cmdlet prints, unset URLs empty; `AttestationStatus` by
/// [`crate::hgs::attestation_status`], the rule `vmsec hgs show` reports too.
pub fn hgs_client_configuration(config: &ClientConfig, status: AttestationStatus) -> Instance {
    let status = status.as_str();
    let url = |u: &Option<String>| s(u.clone().unwrap_or_default());
    let urls = |u: &Option<String>| Value::Array(u.iter().map(s).collect());
    let hgs = config.mode == Mode::Hgs;
    Instance::new(HGS_CLIENT_CONFIGURATION)
        .with(
            "Mode",
            CimType::String,
            s(if hgs { "HostGuardianService" } else { "Local" }),
        )
        .with(
            "AttestationServerUrl",
            CimType::String,
            url(&config.attestation_url),
        )
        .with(
            "KeyProtectionServerUrl",
            CimType::String,
            url(&config.key_protection_url),
        )
        .with(
            "FallbackAttestationServerUrl",
            CimType::String,
            urls(&config.fallback_attestation_url),
        )
        .with(
            "FallbackKeyProtectionServerUrl",
            CimType::String,
            urls(&config.fallback_key_protection_url),
        )
        .with("AttestationStatus", CimType::String, s(status))
        .with("AttestationSubstatus", CimType::String, s("NoInformation"))
        .with(
            "IsHostGuarded",
            CimType::Boolean,
            Value::Boolean(hgs && status == "Passed"),
        )
        .with(
            "AttestationOperationMode",
            CimType::String,
            s(match (hgs, config.tpm.is_some()) {
                (false, _) => "Unknown",
                (true, false) => "HostKey",
                (true, true) => "TPM",
            }),
        )
}

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
        let key = |name: &str| {
            keys.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        // Msvm_SecurityElement is keyed by SystemName (the VM GUID), the others by InstanceID.
        let vm_key = || {
            key("InstanceID")
                .or_else(|| key("SystemName"))
                .and_then(|v| parse_instance_id(v).ok())
        };
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
                Ok(self.store.vm(id)?.map(|vm| vm_computer_system(&vm)))
            }
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
            ServedClass::SecuritySettingData
                | ServedClass::SecurityElement
                | ServedClass::TpmSettingData
                | ServedClass::ConcreteJob
        );
        let has = |name: &str| filter.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        let read = |listed: Vec<Instance>, paged: Option<ServedClass>| Instances {
            store: self.store.clone(),
            buffer: listed.into_iter().filter(|i| matches(i, filter)).collect(),
            paged: paged.map(|class| (class, None)),
            filter: filter.to_vec(),
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
            ServedClass::ConcreteJob => {
                self.store.remove_expired_jobs(OffsetDateTime::now_utc())?;
                read(Vec::new(), Some(class))
            }
            ServedClass::ComputerSystem => {
                read(vec![host_computer_system(&self.host)], Some(class))
            }
            ServedClass::SecuritySettingData
            | ServedClass::SecurityElement
            | ServedClass::TpmSettingData => read(Vec::new(), Some(class)),
        })
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
            ServedClass::ComputerSystem => {
                let page = store.vms_after(after_key, PAGE)?;
                buffer.extend(
                    page.iter()
                        .map(vm_computer_system)
                        .filter(|i| matches(i, filter)),
                );
                (page.len() == PAGE, page.last().map(|vm| vm.name.clone()))
            }
            // The singletons are read at once, never in pages.
            ServedClass::SecurityService | ServedClass::HgsClientConfiguration => (false, None),
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
