//! The property tables. Inherited CIM properties are spelled out so that `check` needs no hierarchy.

use super::{ClassDef, HGS, PropertyDef, VIRTUALIZATION_V2};
use crate::cim_type::CimType::{self, *};

const fn p(name: &'static str, cim_type: CimType) -> PropertyDef {
    PropertyDef {
        name,
        cim_type,
        is_array: false,
        is_key: false,
    }
}

const fn a(name: &'static str, cim_type: CimType) -> PropertyDef {
    PropertyDef {
        name,
        cim_type,
        is_array: true,
        is_key: false,
    }
}

const fn k(name: &'static str, cim_type: CimType) -> PropertyDef {
    PropertyDef {
        name,
        cim_type,
        is_array: false,
        is_key: true,
    }
}

/// Msvm_SecurityService : CIM_Service (it adds methods only).
const SECURITY_SERVICE: &[PropertyDef] = &[
    k("CreationClassName", String),
    k("Name", String),
    k("SystemCreationClassName", String),
    k("SystemName", String),
    p("InstanceID", String),
    p("Caption", String),
    p("Description", String),
    p("ElementName", String),
    p("InstallDate", DateTime),
    a("OperationalStatus", UInt16),
    a("StatusDescriptions", String),
    p("Status", String),
    p("HealthState", UInt16),
    p("CommunicationStatus", UInt16),
    p("DetailedStatus", UInt16),
    p("OperatingStatus", UInt16),
    p("PrimaryStatus", UInt16),
    p("EnabledState", UInt16),
    p("OtherEnabledState", String),
    p("RequestedState", UInt16),
    p("EnabledDefault", UInt16),
    p("TimeOfLastStateChange", DateTime),
    a("AvailableRequestedStates", UInt16),
    p("TransitioningToState", UInt16),
    p("PrimaryOwnerName", String),
    p("PrimaryOwnerContact", String),
    p("StartMode", String),
    p("Started", Boolean),
];

/// Msvm_SecuritySettingData : CIM_SettingData. BindToHostTpm and AppContainerLaunchOptOut
/// appear in newer Windows releases than the published page.
const SECURITY_SETTING_DATA: &[PropertyDef] = &[
    k("InstanceID", String),
    p("Caption", String),
    p("Description", String),
    p("ElementName", String),
    p("ConfigurationName", String),
    p("ChangeableType", UInt16),
    a("ComponentSetting", String),
    p("SoID", String),
    p("SoOrgID", String),
    p("TpmEnabled", Boolean),
    p("KsdEnabled", Boolean),
    p("ShieldingRequested", Boolean),
    p("DataProtectionRequested", Boolean),
    p("EncryptStateAndVmMigrationTraffic", Boolean),
    p("VirtualizationBasedSecurityOptOut", Boolean),
    p("BindToHostTpm", Boolean),
    p("AppContainerLaunchOptOut", Boolean),
];

/// Msvm_ComputerSystem : CIM_ComputerSystem : CIM_System.
const COMPUTER_SYSTEM: &[PropertyDef] = &[
    k("CreationClassName", String),
    k("Name", String),
    p("InstanceID", String),
    p("Caption", String),
    p("Description", String),
    p("ElementName", String),
    p("InstallDate", DateTime),
    a("OperationalStatus", UInt16),
    a("StatusDescriptions", String),
    p("Status", String),
    p("HealthState", UInt16),
    p("CommunicationStatus", UInt16),
    p("DetailedStatus", UInt16),
    p("OperatingStatus", UInt16),
    p("PrimaryStatus", UInt16),
    p("EnabledState", UInt16),
    p("OtherEnabledState", String),
    p("RequestedState", UInt16),
    p("EnabledDefault", UInt16),
    p("TimeOfLastStateChange", DateTime),
    a("AvailableRequestedStates", UInt16),
    p("TransitioningToState", UInt16),
    p("NameFormat", String),
    p("PrimaryOwnerName", String),
    p("PrimaryOwnerContact", String),
    a("Roles", String),
    a("OtherIdentifyingInfo", String),
    a("IdentifyingDescriptions", String),
    a("Dedicated", UInt16),
    a("OtherDedicatedDescriptions", String),
    p("ResetCapability", UInt16),
    a("PowerManagementCapabilities", UInt16),
    p("OnTimeInMilliseconds", UInt64),
    p("ProcessID", UInt32),
    p("TimeOfLastConfigurationChange", DateTime),
    p("NumberOfNumaNodes", UInt16),
    p("ReplicationState", UInt16),
    p("ReplicationHealth", UInt16),
    p("ReplicationMode", UInt16),
    p("FailedOverReplicationType", UInt16),
    p("LastReplicationType", UInt16),
    p("LastApplicationConsistentReplicationTime", DateTime),
    p("LastReplicationTime", DateTime),
    p("LastSuccessfulBackupTime", DateTime),
    p("EnhancedSessionModeState", UInt16),
];

/// Msvm_SecurityElement : CIM_EnabledLogicalElement. Keys as Microsoft publishes them
/// (the scoping system plus CreationClassName); InstanceID is the inherited, non-key one.
const SECURITY_ELEMENT: &[PropertyDef] = &[
    k("SystemCreationClassName", String),
    k("SystemName", String),
    k("CreationClassName", String),
    p("InstanceID", String),
    p("Caption", String),
    p("Description", String),
    p("ElementName", String),
    p("InstallDate", DateTime),
    p("Name", String),
    a("OperationalStatus", UInt16),
    a("StatusDescriptions", String),
    p("Status", String),
    p("HealthState", UInt16),
    p("CommunicationStatus", UInt16),
    p("DetailedStatus", UInt16),
    p("OperatingStatus", UInt16),
    p("PrimaryStatus", UInt16),
    p("EnabledState", UInt16),
    p("OtherEnabledState", String),
    p("RequestedState", UInt16),
    p("EnabledDefault", UInt16),
    p("TimeOfLastStateChange", DateTime),
    a("AvailableRequestedStates", UInt16),
    p("TransitioningToState", UInt16),
    p("Shielded", Boolean),
    p("EncryptStateAndVmMigrationTrafficEnabled", Boolean),
];

/// Msvm_TPMSettingData : CIM_ResourceAllocationSettingData : CIM_SettingData.
const TPM_SETTING_DATA: &[PropertyDef] = &[
    k("InstanceID", String),
    p("Caption", String),
    p("Description", String),
    p("ElementName", String),
    p("ConfigurationName", String),
    p("ChangeableType", UInt16),
    a("ComponentSetting", String),
    p("SoID", String),
    p("SoOrgID", String),
    p("ResourceType", UInt16),
    p("OtherResourceType", String),
    p("ResourceSubType", String),
    p("PoolID", String),
    p("ConsumerVisibility", UInt16),
    a("HostResource", String),
    p("AllocationUnits", String),
    p("VirtualQuantity", UInt64),
    p("Reservation", UInt64),
    p("Limit", UInt64),
    p("Weight", UInt32),
    p("AutomaticAllocation", Boolean),
    p("AutomaticDeallocation", Boolean),
    p("Parent", String),
    a("Connection", String),
    p("Address", String),
    p("MappingBehavior", UInt16),
    p("AddressOnParent", String),
    p("VirtualQuantityUnits", String),
    p("Shielded", Boolean),
    p("DataProtected", Boolean),
    p("EnabledState", UInt16),
    a("KeyProtector", UInt8),
    a("LastKnownGoodKeyProtector", UInt8),
];

/// Msvm_ConcreteJob : CIM_ConcreteJob : CIM_Job.
const CONCRETE_JOB: &[PropertyDef] = &[
    k("InstanceID", String),
    p("Caption", String),
    p("Description", String),
    p("ElementName", String),
    p("InstallDate", DateTime),
    p("Name", String),
    a("OperationalStatus", UInt16),
    a("StatusDescriptions", String),
    p("Status", String),
    p("HealthState", UInt16),
    p("CommunicationStatus", UInt16),
    p("DetailedStatus", UInt16),
    p("OperatingStatus", UInt16),
    p("PrimaryStatus", UInt16),
    p("JobStatus", String),
    p("TimeSubmitted", DateTime),
    p("ScheduledStartTime", DateTime),
    p("StartTime", DateTime),
    p("ElapsedTime", DateTime),
    p("JobRunTimes", UInt32),
    p("RunMonth", UInt8),
    p("RunDay", SInt8),
    p("RunDayOfWeek", SInt8),
    p("RunStartInterval", DateTime),
    p("LocalOrUtcTime", UInt16),
    p("UntilTime", DateTime),
    p("Notify", String),
    p("Owner", String),
    p("Priority", UInt32),
    p("PercentComplete", UInt16),
    p("DeleteOnCompletion", Boolean),
    p("ErrorCode", UInt16),
    p("ErrorDescription", String),
    p("ErrorSummaryDescription", String),
    p("RecoveryAction", UInt16),
    p("OtherRecoveryAction", String),
    p("JobState", UInt16),
    p("TimeOfLastStateChange", DateTime),
    p("TimeBeforeRemoval", DateTime),
    p("Cancellable", Boolean),
    p("JobType", UInt16),
];

/// MSFT_HgsClientConfiguration, in `root/microsoft/windows/hgs`: the host's guarded-fabric
/// client configuration. It has no key: a singleton, as Windows serves it (its `Get` method
/// takes no instance). The enumerations Windows declares as uint16 (`Mode`,
/// `AttestationStatus`, `AttestationOperationMode`) and uint64 (`AttestationSubstatus`) are
/// served as the names `Get-HgsClientConfiguration` shows; the fallback URLs are arrays, as
/// Windows declares them.
const HGS_CLIENT_CONFIGURATION: &[PropertyDef] = &[
    p("Mode", String),
    p("AttestationServerUrl", String),
    p("KeyProtectionServerUrl", String),
    a("FallbackAttestationServerUrl", String),
    a("FallbackKeyProtectionServerUrl", String),
    p("LastAttestationServerUrl", String),
    p("LastKeyProtectionServerUrl", String),
    p("AttestationStatus", String),
    p("AttestationSubstatus", String),
    p("IsHostGuarded", Boolean),
    p("AttestationOperationMode", String),
];

/// Msvm_VirtualSystemSettingData : CIM_VirtualSystemSettingData : CIM_SettingData: a VM's
/// configuration. vmsec serves the realized configuration of each VM (no snapshots).
const VIRTUAL_SYSTEM_SETTING_DATA: &[PropertyDef] = &[
    k("InstanceID", String),
    p("Caption", String),
    p("Description", String),
    p("ElementName", String),
    p("ConfigurationName", String),
    p("ChangeableType", UInt16),
    a("ComponentSetting", String),
    p("SoID", String),
    p("SoOrgID", String),
    p("VirtualSystemIdentifier", String),
    p("VirtualSystemType", String),
    a("Notes", String),
    p("CreationTime", DateTime),
    p("ConfigurationID", String),
    p("ConfigurationDataRoot", String),
    p("ConfigurationFile", String),
    p("SnapshotDataRoot", String),
    p("SuspendDataRoot", String),
    p("SwapFileDataRoot", String),
    p("LogDataRoot", String),
    p("AutomaticStartupAction", UInt16),
    p("AutomaticStartupActionDelay", DateTime),
    p("AutomaticStartupActionSequenceNumber", UInt16),
    p("AutomaticShutdownAction", UInt16),
    p("AutomaticRecoveryAction", UInt16),
    p("RecoveryFile", String),
    p("BIOSGUID", String),
    p("BIOSSerialNumber", String),
    p("BaseBoardSerialNumber", String),
    p("ChassisSerialNumber", String),
    p("ChassisAssetTag", String),
    p("BIOSNumLock", Boolean),
    a("BootOrder", UInt16),
    p("Parent", String),
    p("VirtualSystemSubType", String),
    p("IsSaved", Boolean),
    p("SecureBootEnabled", Boolean),
    p("SecureBootTemplateId", String),
    p("TurnOffOnGuestRestart", Boolean),
    p("Version", String),
];

/// Msvm_SettingsDefineState : CIM_SettingsDefineState: a VM's computer system and the
/// settings that define its state.
const SETTINGS_DEFINE_STATE: &[PropertyDef] =
    &[k("ManagedElement", Reference), k("SettingData", Reference)];

/// Msvm_VirtualSystemSettingDataComponent : CIM_Component: a VM's settings and the settings
/// they aggregate (here its Msvm_SecuritySettingData).
const VIRTUAL_SYSTEM_SETTING_DATA_COMPONENT: &[PropertyDef] = &[
    k("GroupComponent", Reference),
    k("PartComponent", Reference),
];

/// Msvm_ServiceAffectsElement : CIM_ServiceAffectsElement: a VM and a service that
/// controls its state (the security service, which holds its key protector).
const SERVICE_AFFECTS_ELEMENT: &[PropertyDef] = &[
    k("AffectedElement", Reference),
    k("AffectingElement", Reference),
    a("ElementEffects", UInt16),
    a("OtherElementEffectsDescriptions", String),
];

/// Msvm_HostedService : CIM_HostedService: the host's computer system and a service it hosts.
const HOSTED_SERVICE: &[PropertyDef] = &[k("Antecedent", Reference), k("Dependent", Reference)];

/// A class of `root/virtualization/v2`.
const fn v2(name: &'static str, properties: &'static [PropertyDef]) -> ClassDef {
    ClassDef {
        name,
        namespace: VIRTUALIZATION_V2,
        properties,
    }
}

pub(super) const ALL: &[ClassDef] = &[
    v2("Msvm_SecurityService", SECURITY_SERVICE),
    v2("Msvm_SecuritySettingData", SECURITY_SETTING_DATA),
    v2("Msvm_ComputerSystem", COMPUTER_SYSTEM),
    v2("Msvm_SecurityElement", SECURITY_ELEMENT),
    v2("Msvm_TPMSettingData", TPM_SETTING_DATA),
    v2("Msvm_ConcreteJob", CONCRETE_JOB),
    ClassDef {
        name: "MSFT_HgsClientConfiguration",
        namespace: HGS,
        properties: HGS_CLIENT_CONFIGURATION,
    },
    v2("Msvm_VirtualSystemSettingData", VIRTUAL_SYSTEM_SETTING_DATA),
    v2("Msvm_SettingsDefineState", SETTINGS_DEFINE_STATE),
    v2(
        "Msvm_VirtualSystemSettingDataComponent",
        VIRTUAL_SYSTEM_SETTING_DATA_COMPONENT,
    ),
    v2("Msvm_ServiceAffectsElement", SERVICE_AFFECTS_ELEMENT),
    v2("Msvm_HostedService", HOSTED_SERVICE),
];
