#![forbid(unsafe_code)]
//! The semantics of `Msvm_SecurityService` and its related classes over a [`Store`].
//!
//! Every entry point takes the [`Caller`], checks the caller's role, does its work, and
//! writes one audit record whatever the outcome ([`Service`]'s one audit helper). Errors are
//! [`ServiceError`]s with their causes as sources; the method's return code for each is
//! decided in one place, [`Method::return_code`]. Arguments arrive decoded ([`VmRef`],
//! [`SettingsPatch`]): the service never sees XML.
//!
//! `Service` is a thin façade; its parts live in one module each: `users` (logins, users
//! and roles), `vms` (VMs and their records), `security_service` (the `Msvm_SecurityService`
//! methods and their jobs), `guardians` (guardians and key protectors), `vtpm` (starting and
//! stopping vTPMs), `classes` (instances for WS-Man), `jobs` and `audit`.

pub mod audit;
mod caller;
pub mod classes;
mod codes;
mod error;
pub mod fabric;
mod guardians;
pub mod hgs;
mod jobs;
pub mod key_protector;
pub mod master_key;
mod moving;
pub mod passwords;
mod security_service;
pub mod setting_data;
mod users;
mod vms;
pub mod vtpm;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use time::OffsetDateTime;
use uuid::Uuid;
pub use vmsec_store::Role;
use vmsec_store::{AuditOutcome, AuditRecord, HostIdentity, JobOwner, Store};

pub use caller::Caller;
pub use codes::{Method, describe};
pub use error::{KeyProtectorError, ServiceError};
pub use guardians::{
    CertView, CertWithKey, GuardianView, Inspection, PrivateKeyPems, UNTRUSTED_GUARDIAN,
    WrappingView,
};
pub use jobs::{HEARTBEAT_EVERY, HOST_GONE_AFTER, TIME_BEFORE_REMOVAL};
pub use master_key::MasterKey;
pub use security_service::NO_KEY_PROTECTOR;
pub use setting_data::{Setting, SettingsPatch};
pub use users::Remembered;
pub use vmsec_kp::KeySize;

/// Largest security policy blob SetSecurityPolicy stores.
pub const MAX_POLICY: usize = 64 * 1024;
/// Longest VM friendly name.
pub const MAX_VM_NAME: usize = 256;

/// The security service of one host.
pub struct Service {
    store: Arc<dyn Store>,
    host: HostIdentity,
    owner: JobOwner,
    runner: jobs::JobRunner,
    stopped: AtomicBool,
    master_key: MasterKey,
    /// Credentials already verified, so that HTTP Basic on every request does not cost an
    /// argon2 hash each time: SHA-256(user, password) → the PHC hash they matched. An entry
    /// counts only while the user's stored hash is still that one.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], users::Verified>>,
    /// Passwords checked with argon2 so far (for monitoring, and to show what a login cost).
    password_checks: std::sync::atomic::AtomicU64,
    /// Where this host's vTPMs run (`DATA/vtpm`), when the service is told: then a change that
    /// turns a running vTPM off is refused rather than leave swtpm running for a VM whose TPM
    /// the store says is off.
    vtpm_root: std::sync::OnceLock<std::path::PathBuf>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("host", &self.host)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// The VM a call is about, as the edge decoded it from what the client sent (an
/// `InstanceID`, a name on the command line): the service never parses text to find it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VmRef(Uuid);

impl VmRef {
    pub fn id(self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for VmRef {
    fn from(id: Uuid) -> VmRef {
        VmRef(id)
    }
}

impl std::fmt::Display for VmRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a mutating method returns: the job that carries it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobStarted {
    pub instance_id: String,
}

impl Service {
    /// Starts the service over `store`: marks jobs interrupted by a crash of their process as
    /// failed, drops expired jobs, and starts the job runner.
    pub fn open(store: Arc<dyn Store>, master_key: MasterKey) -> Result<Service, ServiceError> {
        let host = store.host()?;
        // Only a shared store reads it (job recovery of hosts that are gone); on SQLite it
        // would cost every CLI command a write of its own.
        if store.is_shared() {
            store.touch_host()?;
        }
        let recovered = jobs::recover_interrupted(store.as_ref(), host.guid)?;
        if recovered > 0 {
            tracing::warn!("{recovered} job(s) interrupted by a crash were marked failed");
        }
        store.remove_expired_jobs(OffsetDateTime::now_utc())?;
        Ok(Service {
            owner: jobs::this_process(host.guid),
            runner: jobs::JobRunner::start(store.clone()),
            store,
            host,
            stopped: AtomicBool::new(false),
            verified: Default::default(),
            password_checks: Default::default(),
            vtpm_root: Default::default(),
            master_key,
        })
    }

    /// Tells the service where this host's vTPMs run (once; later calls change nothing).
    pub fn set_vtpm_root(&self, root: std::path::PathBuf) {
        let _ = self.vtpm_root.set(root);
    }

    pub fn host(&self) -> &HostIdentity {
        &self.host
    }

    /// Tells a shared store this host is alive, and recovers the jobs of hosts that are not
    /// (`vmsec serve` calls it every [`jobs::HEARTBEAT_EVERY`]).
    pub fn heartbeat(&self) -> Result<(), ServiceError> {
        self.store.touch_host()?;
        let recovered = jobs::recover_interrupted(self.store.as_ref(), self.host.guid)?;
        if recovered > 0 {
            tracing::warn!("{recovered} job(s) of hosts that are gone were marked failed");
        }
        Ok(())
    }

    /// Stops taking jobs and waits for the queued ones to finish.
    pub fn shutdown(&self) {
        self.runner.shutdown();
    }

    pub(crate) fn audit(
        &self,
        who: &str,
        operation: &str,
        vm: Option<Uuid>,
        outcome: AuditOutcome,
        detail: &str,
    ) {
        let record = AuditRecord {
            seq: 0,
            at: OffsetDateTime::now_utc(),
            actor: who.to_owned(),
            operation: operation.to_owned(),
            vm,
            outcome,
            detail: detail.to_owned(),
        };
        if let Err(e) = self.store.append_audit(&record) {
            tracing::error!(operation, "cannot write the audit log: {e}");
        }
    }

    /// Runs `f` and audits its outcome. `ok` is the outcome recorded on success (`Allowed`
    /// for calls that start a job, whose own completion is audited by the job).
    pub(crate) fn audited<T>(
        &self,
        who: &Caller,
        operation: &str,
        vm: Option<Uuid>,
        ok: AuditOutcome,
        f: impl FnOnce() -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let out = f();
        match &out {
            Ok(_) => self.audit(&who.name, operation, vm, ok, ""),
            Err(e @ ServiceError::AccessDenied(_)) => self.audit(
                &who.name,
                operation,
                vm,
                AuditOutcome::Denied,
                &e.to_string(),
            ),
            Err(e) => self.audit(
                &who.name,
                operation,
                vm,
                AuditOutcome::Failed,
                &e.to_string(),
            ),
        }
        out
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.runner.shutdown();
    }
}

fn not_found_is_unknown_vm(e: vmsec_store::StoreError, vm: Uuid) -> ServiceError {
    match e {
        vmsec_store::StoreError::NotFound(_) => ServiceError::UnknownVm(vm.into()),
        e => e.into(),
    }
}
