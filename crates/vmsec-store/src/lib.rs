#![forbid(unsafe_code)]
//! Persistent state of vmsec behind one [`Store`] trait.
//!
//! The trait speaks in whole records and whole operations, each of which a backend runs as
//! one transaction, so that the same semantics hold on the embedded SQLite store and on a
//! PostgreSQL server shared by several hosts. Nothing here knows about CIM or XML.

#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod fabric;
mod fleet;
mod group_commit;
mod model;
pub mod postgres;
mod prune;
pub mod rfc3339;
pub mod sqlite;

pub use error::{Rejection, StoreError, UpdateError};
pub use fabric::{AttestedHost, FabricSettings, FabricStore, TpmBaselineRecord, TpmHostRecord};
pub use fleet::{HostRecord, LeaseInfo, VmLease};
pub use model::*;

use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

/// How many earlier key protectors a VM's history keeps.
pub const KP_HISTORY_LIMIT: usize = 32;

/// The persistent state of vmsec. Every method is one transaction.
pub trait Store: Send + Sync {
    /// This host's name and GUID, created when the store was first opened.
    fn host(&self) -> Result<HostIdentity, StoreError>;
    /// Whether other hosts may share this store (PostgreSQL): then a vTPM's lease must be
    /// kept alive while it runs, and others' jobs may be recovered when their host is gone.
    fn is_shared(&self) -> bool {
        false
    }
    /// Every host that has opened the store, by name.
    fn hosts(&self) -> Result<Vec<HostRecord>, StoreError>;
    /// Records that this host is alive now (by the store's clock).
    fn touch_host(&self) -> Result<(), StoreError>;

    fn add_user(&self, user: &User) -> Result<(), StoreError>;
    fn user(&self, name: &str) -> Result<Option<User>, StoreError>;
    fn users(&self) -> Result<Vec<User>, StoreError>;
    /// Returns whether a user was removed.
    fn remove_user(&self, name: &str) -> Result<bool, StoreError>;
    /// Sets the role and password hash of the user of that name (its creation time stays).
    /// Returns whether the user exists.
    fn update_user(&self, user: &User) -> Result<bool, StoreError>;

    /// Adds a VM with default (all off) security settings.
    fn add_vm(&self, vm: &Vm) -> Result<(), StoreError> {
        self.add_vm_with_security(vm, &VmSecurity::empty())
    }
    /// Adds a VM with the given security record (a VM moved from another host), in one
    /// transaction: the VM never exists without its key protector.
    fn add_vm_with_security(&self, vm: &Vm, security: &VmSecurity) -> Result<(), StoreError>;
    fn vm(&self, id: Uuid) -> Result<Option<Vm>, StoreError>;
    fn vm_by_name(&self, name: &str) -> Result<Option<Vm>, StoreError>;
    fn vms(&self) -> Result<Vec<Vm>, StoreError>;
    /// Up to `limit` VMs by name, those whose names sort after `after` (from the first when
    /// `None`): a page of a listing that is read as it is walked.
    fn vms_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Vm>, StoreError>;
    /// Removes a VM with its security record and history. Returns whether it existed.
    fn remove_vm(&self, id: Uuid) -> Result<bool, StoreError>;

    fn vm_security(&self, id: Uuid) -> Result<VmSecurity, StoreError>;
    /// The VM and its security record as of one moment (one read transaction), or `None`.
    fn vm_with_security(&self, id: Uuid) -> Result<Option<(Vm, VmSecurity)>, StoreError>;
    /// [`Store::vm_with_security`] of up to `limit` VMs by name, those whose names sort
    /// after `after` (from the first when `None`), as of one moment.
    fn vms_with_security_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Vm, VmSecurity)>, StoreError>;
    /// The VM with its settings and whether it has a key protector, without reading the key
    /// protectors, or `None`.
    fn vm_summary(&self, id: Uuid) -> Result<Option<VmSummary>, StoreError>;
    /// The user `name` and [`Store::vm_summary`] of `id`, read together: a request whose
    /// caller was accepted from memory confirms the caller in the read that answers it. A
    /// backend reads both in one transaction where that is cheaper than two; the default
    /// reads one after the other.
    fn user_and_vm_summary(
        &self,
        name: &str,
        id: Uuid,
    ) -> Result<(Option<User>, Option<VmSummary>), StoreError> {
        Ok((self.user(name)?, self.vm_summary(id)?))
    }
    /// The user `name` and [`Store::vm_security`] of `id` (`None` for a VM that does not
    /// exist), read together as [`Store::user_and_vm_summary`] reads: the path of a
    /// GetKeyProtector whose caller was accepted from memory.
    fn user_and_vm_security(
        &self,
        name: &str,
        id: Uuid,
    ) -> Result<(Option<User>, Option<VmSecurity>), StoreError> {
        let user = self.user(name)?;
        Ok((user, self.vm_with_security(id)?.map(|(_, sec)| sec)))
    }
    /// [`Store::vm_summary`] of up to `limit` VMs by name, those whose names sort after
    /// `after` (from the first when `None`), as of one moment.
    fn vm_summaries_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<VmSummary>, StoreError>;
    /// Reads the VM's security record, lets `change` modify it, and writes it back, all in one
    /// transaction that excludes concurrent updates of the same VM. When the key protector
    /// changes, the previous one goes to the history with its provenance, and the new one is
    /// recorded as set by `actor` now; history beyond [`KP_HISTORY_LIMIT`] is dropped oldest
    /// first. When `finish` is given, its job row and audit record are written in the same
    /// transaction, so a job is recorded complete, and audited, exactly when its change is
    /// stored. If `change` fails nothing is written and its error is returned.
    ///
    /// `change` runs inside the write transaction, while every other writer of the store
    /// (in this process and in others, such as the CLI beside `vmsec serve`) waits: it must be
    /// bounded work, assignments and comparisons only. No parsing, no cryptography, no I/O:
    /// do those before calling, and let `change` only check that the record is still the one
    /// they were done against.
    fn update_vm_security(
        &self,
        id: Uuid,
        actor: &str,
        change: &mut dyn FnMut(&mut VmSecurity) -> Result<(), Rejection>,
        finish: Option<JobDone<'_>>,
    ) -> Result<VmSecurity, UpdateError>;
    /// [`Store::update_vm_security`] fenced by `lease`: in the same transaction, the store
    /// checks that `lease` is still this host's, unexpired, with the same token, and refuses
    /// with [`StoreError::LeaseLost`] otherwise, writing nothing. A vTPM start commits this
    /// way, so a host whose lease lapsed while it worked cannot overwrite what the next
    /// holder did.
    fn update_vm_security_fenced(
        &self,
        id: Uuid,
        actor: &str,
        lease: &VmLease,
        change: &mut dyn FnMut(&mut VmSecurity) -> Result<(), Rejection>,
    ) -> Result<VmSecurity, UpdateError>;
    /// Takes the VM's vTPM lease for this host for `ttl`, with a new token: refused with
    /// [`StoreError::LeaseHeld`] (naming the holder) while another host holds it unexpired.
    /// A lease this host already holds is taken over with a new token (its vTPM is known
    /// not to run here: the caller checked).
    fn acquire_vm_lease(&self, vm: Uuid, ttl: Duration) -> Result<VmLease, StoreError>;
    /// Extends `lease` to `ttl` from now, keeping its token; [`StoreError::LeaseLost`] when
    /// it expired or another took it.
    fn renew_vm_lease(&self, lease: &VmLease, ttl: Duration) -> Result<VmLease, StoreError>;
    /// Gives up the VM's lease if this host holds it (with that `token`, when given: a
    /// superseded holder's release leaves its successor's lease alone). Returns whether it did.
    fn release_vm_lease(&self, vm: Uuid, token: Option<i64>) -> Result<bool, StoreError>;
    /// The VM's lease, whoever holds it, expired or not.
    fn vm_lease(&self, vm: Uuid) -> Result<Option<LeaseInfo>, StoreError>;
    /// Earlier key protectors, newest first.
    fn kp_history(&self, id: Uuid) -> Result<Vec<KpHistoryEntry>, StoreError>;

    fn insert_job(&self, job: &Job) -> Result<(), StoreError>;
    fn update_job(&self, job: &Job) -> Result<(), StoreError>;
    fn job(&self, instance_id: &str) -> Result<Option<Job>, StoreError>;
    fn jobs(&self) -> Result<Vec<Job>, StoreError>;
    /// Up to `limit` jobs by `InstanceID`, those after `after` (from the first when `None`).
    fn jobs_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Job>, StoreError>;
    /// Jobs not finished, of every owner.
    fn unfinished_jobs(&self) -> Result<Vec<Job>, StoreError>;
    /// Removes finished jobs whose `time_before_removal` has passed at `now`. Returns how many.
    fn remove_expired_jobs(&self, now: OffsetDateTime) -> Result<usize, StoreError>;

    fn add_guardian(&self, guardian: &GuardianRecord) -> Result<(), StoreError>;
    fn guardian(&self, name: &str) -> Result<Option<GuardianRecord>, StoreError>;
    fn guardians(&self) -> Result<Vec<GuardianRecord>, StoreError>;
    /// Returns whether a guardian was removed.
    fn remove_guardian(&self, name: &str) -> Result<bool, StoreError>;
    /// Every VM's current key protector.
    fn key_protectors(&self) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError>;

    /// Appends to the audit log and returns the record's sequence number.
    fn append_audit(&self, record: &AuditRecord) -> Result<i64, StoreError>;
    /// Whether an [`Store::append_audit`] now would start at once, with no other write to
    /// wait for. A hint for a caller that must not wait (a thread serving connections),
    /// true only if no write was under way when asked; the default, false, sends every such
    /// caller to a thread that may wait.
    fn audit_would_start_at_once(&self) -> bool {
        false
    }
    /// Audit records with `seq > after`, oldest first, at most `limit`.
    fn audit(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;
    /// The audit records `query` selects (see [`AuditQuery`]), filtered by the store: a
    /// filter that matches few records reads no more than `limit` of them into memory.
    fn audit_query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
    /// Removes the oldest audit records that `retention` no longer keeps at `now`: always a
    /// prefix of the log, so what remains has no gap. Each transaction removes at most
    /// `batch` records and writes, in the same transaction, an [`AUDIT_PRUNED`] record by
    /// `actor` naming the range it removed, so the numbering stays accounted for and no
    /// transaction holds the writer for long. Returns the ranges, oldest first.
    fn prune_audit(
        &self,
        retention: &AuditRetention,
        now: OffsetDateTime,
        batch: usize,
        actor: &str,
    ) -> Result<Vec<AuditPruned>, StoreError>;
}
