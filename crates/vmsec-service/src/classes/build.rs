//! The instances of the classes with one instance per VM, the host's and the singletons,
//! each built from the store's records by one function.

use time::OffsetDateTime;
use uuid::Uuid;
use vmsec_cim::{CimDateTime, CimType, Instance, Value};
use vmsec_store::{HostIdentity, Job, Vm, VmSecurity, VmSummary};

use crate::hgs::{AttestationStatus, ClientConfig, Mode};
use crate::setting_data::instance_id;

/// The `Name` key of the one `Msvm_SecurityService`.
pub const SECURITY_SERVICE_NAME: &str = "vmsecuritywmi";

pub const SECURITY_SERVICE: &str = "Msvm_SecurityService";
pub const COMPUTER_SYSTEM: &str = "Msvm_ComputerSystem";
pub const SECURITY_SETTING_DATA: &str = "Msvm_SecuritySettingData";
pub const SECURITY_ELEMENT: &str = "Msvm_SecurityElement";
pub const TPM_SETTING_DATA: &str = "Msvm_TPMSettingData";
pub const CONCRETE_JOB: &str = "Msvm_ConcreteJob";
pub const HGS_CLIENT_CONFIGURATION: &str = "MSFT_HgsClientConfiguration";

/// CIM `EnabledState`: Enabled / Disabled.
pub(super) const ENABLED: u16 = 2;
pub(super) const DISABLED: u16 = 3;

pub(super) fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

pub(super) fn dt(t: OffsetDateTime) -> Value {
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

pub(super) fn vm_guid(vm: Uuid) -> String {
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

/// A VM's computer system. vmsec does not run VMs, only their vTPMs: the VM counts as
/// running (EnabledState 2, ProcessID the swtpm's) while its vTPM runs, and as off (3) else.
pub fn vm_computer_system(vm: &Vm, vtpm_pid: Option<u32>) -> Instance {
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
        .with(
            "EnabledState",
            CimType::UInt16,
            Value::UInt16(if vtpm_pid.is_some() {
                ENABLED
            } else {
                DISABLED
            }),
        )
        .with("HealthState", CimType::UInt16, Value::UInt16(5))
        .with(
            "ProcessID",
            CimType::UInt32,
            vtpm_pid.map_or(Value::Null, Value::UInt32),
        )
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
