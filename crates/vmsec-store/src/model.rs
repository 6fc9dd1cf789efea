//! The records a [`Store`](crate::Store) keeps. Plain data: no SQL, no I/O.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// This host as the rest of the world names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostIdentity {
    pub name: String,
    pub guid: Uuid,
}

/// What a user may do. Each role includes everything the roles below it may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads settings, key protectors and jobs.
    Reader,
    /// Also changes the security of VMs.
    Operator,
    /// Also manages users and guardians.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "reader" => Ok(Role::Reader),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?}: expected admin, operator or reader"
            )),
        }
    }
}

/// A user who may call the service. The password hash is a PHC string (argon2id).
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub created: OffsetDateTime,
}

// The hash is not a secret in the sense a key is, but it is an offline-guessing target: keep it out of logs.
impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// A virtual machine known to this service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Vm {
    pub id: Uuid,
    pub name: String,
    #[serde(with = "crate::rfc3339")]
    pub created: OffsetDateTime,
}

/// The eight booleans of `Msvm_SecuritySettingData`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecuritySettings {
    pub tpm_enabled: bool,
    pub ksd_enabled: bool,
    pub shielding_requested: bool,
    pub data_protection_requested: bool,
    pub encrypt_state_and_vm_migration_traffic: bool,
    pub virtualization_based_security_opt_out: bool,
    pub bind_to_host_tpm: bool,
    pub app_container_launch_opt_out: bool,
}

/// Who set a key protector, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Provenance {
    pub by: String,
    #[serde(with = "crate::rfc3339")]
    pub at: OffsetDateTime,
}

/// A VM as most of its instances show it: its settings and whether a key protector is set,
/// read without the key protectors themselves (which can be hundreds of kilobytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmSummary {
    pub vm: Vm,
    pub settings: SecuritySettings,
    pub has_key_protector: bool,
}

/// Everything security-related the store keeps for one VM, read and written as a whole in
/// [`Store::update_vm_security`](crate::Store::update_vm_security).
#[derive(Clone, PartialEq, Eq)]
pub struct VmSecurity {
    pub settings: SecuritySettings,
    /// The current key protector (UTF-8 XML of a `Protector`), if any.
    pub key_protector: Option<Vec<u8>>,
    /// Who set the current key protector. Updated by the store when `key_protector` changes.
    pub key_protector_set: Option<Provenance>,
    /// The most recent key protector that unlocked this VM's vTPM on this host.
    pub last_known_good: Option<Vec<u8>>,
    /// Opaque policy blob of `SetSecurityPolicy`.
    pub security_policy: Option<Vec<u8>>,
    /// The vTPM state key, sealed under the last known good's transport key.
    pub sealed_state_key: Option<Vec<u8>>,
}

impl VmSecurity {
    pub fn empty() -> Self {
        VmSecurity {
            settings: SecuritySettings::default(),
            key_protector: None,
            key_protector_set: None,
            last_known_good: None,
            security_policy: None,
            sealed_state_key: None,
        }
    }
}

// The blobs are large and the sealed key is key material: show sizes only.
impl fmt::Debug for VmSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = |b: &Option<Vec<u8>>| b.as_ref().map(Vec::len);
        f.debug_struct("VmSecurity")
            .field("settings", &self.settings)
            .field("key_protector_len", &len(&self.key_protector))
            .field("key_protector_set", &self.key_protector_set)
            .field("last_known_good_len", &len(&self.last_known_good))
            .field("security_policy_len", &len(&self.security_policy))
            .field(
                "sealed_state_key",
                &self.sealed_state_key.as_ref().map(|_| "<sealed>"),
            )
            .finish()
    }
}

/// An earlier key protector of a VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KpHistoryEntry {
    pub key_protector: Vec<u8>,
    pub set: Option<Provenance>,
    pub replaced: Provenance,
}

/// `CIM_ConcreteJob.JobState` values vmsec uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum JobState {
    New = 2,
    Running = 4,
    Completed = 7,
    Exception = 10,
}

impl JobState {
    pub fn code(self) -> u16 {
        self as u16
    }
    pub fn from_code(code: i64) -> Option<JobState> {
        match code {
            2 => Some(JobState::New),
            4 => Some(JobState::Running),
            7 => Some(JobState::Completed),
            10 => Some(JobState::Exception),
            _ => None,
        }
    }
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Completed | JobState::Exception)
    }
    pub fn name(self) -> &'static str {
        match self {
            JobState::New => "New",
            JobState::Running => "Running",
            JobState::Completed => "Completed",
            JobState::Exception => "Exception",
        }
    }
}

/// Which process runs a job: a job whose owner is gone was interrupted by a crash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct JobOwner {
    pub host: Uuid,
    pub pid: u32,
    /// The process start time in clock ticks since boot (`/proc/PID/stat` field 22): with the pid,
    /// it tells a live owner from a later process that reused its pid.
    pub start_ticks: u64,
}

impl fmt::Display for JobOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.host, self.pid, self.start_ticks)
    }
}

impl FromStr for JobOwner {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut it = s.split(':');
        let (Some(h), Some(p), Some(t), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(format!("malformed job owner {s:?}"));
        };
        Ok(JobOwner {
            host: h
                .parse()
                .map_err(|_| format!("malformed job owner host {h:?}"))?,
            pid: p
                .parse()
                .map_err(|_| format!("malformed job owner pid {p:?}"))?,
            start_ticks: t
                .parse()
                .map_err(|_| format!("malformed job owner start {t:?}"))?,
        })
    }
}

/// A `Msvm_ConcreteJob`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Job {
    pub instance_id: String,
    /// The `Msvm_SecurityService` method the job runs.
    pub method: String,
    pub vm: Option<Uuid>,
    pub state: JobState,
    /// The method's return code for the failure (0 when none).
    pub error_code: u32,
    pub error_description: String,
    pub percent_complete: u16,
    pub submitted_by: String,
    #[serde(with = "crate::rfc3339")]
    pub time_submitted: OffsetDateTime,
    #[serde(with = "crate::rfc3339::option")]
    pub start_time: Option<OffsetDateTime>,
    #[serde(with = "crate::rfc3339::option")]
    pub finish_time: Option<OffsetDateTime>,
    /// How long a finished job is kept before it is removed.
    #[serde(skip)]
    pub time_before_removal: time::Duration,
    pub owner: JobOwner,
}

/// How an audited call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    Allowed,
    Denied,
    Succeeded,
    Failed,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Allowed => "allowed",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Succeeded => "succeeded",
            AuditOutcome::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "allowed" => AuditOutcome::Allowed,
            "denied" => AuditOutcome::Denied,
            "succeeded" => AuditOutcome::Succeeded,
            "failed" => AuditOutcome::Failed,
            _ => return None,
        })
    }
}

/// How a job that changed a VM ends: its finished row and the audit record of its
/// completion, written by [`Store::update_vm_security`](crate::Store::update_vm_security) in
/// the same transaction as the change, so none of the three is ever stored without the others.
#[derive(Clone, Copy, Debug)]
pub struct JobDone<'a> {
    pub job: &'a Job,
    pub audit: &'a AuditRecord,
}

/// One line of the append-only audit log. Never holds key material.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Assigned by the store, strictly increasing.
    pub seq: i64,
    #[serde(with = "crate::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub operation: String,
    pub vm: Option<Uuid>,
    pub outcome: AuditOutcome,
    pub detail: String,
}

/// Which audit records [`Store::audit_query`](crate::Store::audit_query) reads: those with
/// `after < seq < before` that match every filter given, in the order asked, at most `limit`.
/// A reader walks the log in pages by passing the last sequence number it got as `before`
/// (newest first) or `after` (oldest first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditQuery {
    pub after: i64,
    /// `None`: up to the newest.
    pub before: Option<i64>,
    /// Only records written at or after this time.
    pub since: Option<OffsetDateTime>,
    pub vm: Option<Uuid>,
    /// Only records of this actor, exactly.
    pub actor: Option<String>,
    pub newest_first: bool,
    pub limit: usize,
}

impl AuditQuery {
    /// The newest `limit` records, newest first, with no filter.
    pub fn newest(limit: usize) -> AuditQuery {
        AuditQuery {
            after: 0,
            before: None,
            since: None,
            vm: None,
            actor: None,
            newest_first: true,
            limit,
        }
    }
}

/// How much of the audit log is kept (docs/audit.md, "Retention"). A record goes when it is
/// beyond the newest `max_records` or older than `max_age`; `None` lifts that limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditRetention {
    pub max_records: Option<u64>,
    pub max_age: Option<time::Duration>,
}

/// The operation of the record that states a pruned range.
pub const AUDIT_PRUNED: &str = "AuditPruned";

/// Audit records `first..=last` removed in one transaction, with the record (`seq = record`)
/// that says so, written in the same transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditPruned {
    pub first: i64,
    pub last: i64,
    pub record: i64,
}

/// A guardian as stored: its certificates, the encryption certificate's signature, the
/// metadata it was imported from (if any), and its private keys sealed under the host's
/// master key (if this host holds them).
#[derive(Clone, PartialEq, Eq)]
pub struct GuardianRecord {
    pub name: String,
    pub encryption_cert: Vec<u8>,
    pub signing_cert: Vec<u8>,
    pub encryption_cert_signature_algorithm: String,
    pub encryption_cert_signature: Vec<u8>,
    pub metadata: Option<Vec<u8>>,
    pub sealed_private_keys: Option<Vec<u8>>,
    pub created: OffsetDateTime,
}

impl fmt::Debug for GuardianRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardianRecord")
            .field("name", &self.name)
            .field("has_private_keys", &self.sealed_private_keys.is_some())
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}
