//! The shared store: one PostgreSQL database that several hosts (and several KPS nodes) use
//! at once. Each operation of [`Store`] is one transaction, as on SQLite; what several
//! processes add (hosts, leases, host-only keys, commit-ordered audit numbers) is in
//! `docs/fleet.md`.
//!
//! [`PgStore`] only wires the parts together: `pool` (connections, statements, errors and
//! retries), `schema` (migrations), and one file per kind of record.

use std::time::Duration;

use ::postgres::Row;
use ::postgres::types::FromSqlOwned;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::*;

mod audit;
mod fabric;
mod fleet;
mod pool;
mod records;
mod schema;
mod vms;

use pool::{Pool, Target};

/// The PostgreSQL [`Store`] and [`FabricStore`].
pub struct PgStore {
    pool: Pool,
    me: HostIdentity,
    audit: audit::AuditWriter,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.pool.target().shown())
            .field("host", &self.me.name)
            .finish()
    }
}

/// Whether `s` names a PostgreSQL store (`postgres://…` or `postgresql://…`).
pub fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// `url` as it may be shown: without the password.
pub fn redact(url: &str) -> String {
    Target::parse(url)
        .map(|t| t.shown().to_owned())
        .unwrap_or_else(|_| "the PostgreSQL URL given".to_owned())
}

impl PgStore {
    /// Connects to `url`, runs pending migrations, and records this host as `host_name`
    /// (a new GUID the first time the name is seen). Errors name the URL without its
    /// password.
    pub fn open(url: &str, host_name: &str) -> Result<Self, StoreError> {
        let pool = Pool::new(Target::parse(url)?);
        let mut conn = pool.get()?;
        schema::migrate(&mut conn)?;
        pool.put_back(conn);
        let me = fleet::register(&pool, host_name)?;
        Ok(PgStore {
            pool,
            me,
            audit: audit::AuditWriter::new(),
        })
    }

    /// The schema version this build writes.
    pub fn schema_version() -> usize {
        schema::MIGRATIONS.len()
    }

    /// The URL without its password.
    pub fn url(&self) -> &str {
        self.pool.target().shown()
    }
}

/// Column `idx` of `r` as a `T`; a value of another type is data this vmsec does not know.
fn get<T: FromSqlOwned>(r: &Row, idx: usize) -> Result<T, StoreError> {
    r.try_get(idx)
        .map_err(|e| StoreError::Corrupt(format!("column {idx}: {e}")))
}

impl Store for PgStore {
    fn host(&self) -> Result<HostIdentity, StoreError> {
        Ok(self.me.clone())
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn hosts(&self) -> Result<Vec<HostRecord>, StoreError> {
        fleet::hosts(&self.pool)
    }

    fn touch_host(&self) -> Result<(), StoreError> {
        fleet::touch(&self.pool, self.me.guid)
    }

    fn add_user(&self, user: &User) -> Result<(), StoreError> {
        records::add_user(&self.pool, user)
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        records::user(&self.pool, name)
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        records::users(&self.pool)
    }

    fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        records::remove_user(&self.pool, name)
    }

    fn update_user(&self, user: &User) -> Result<bool, StoreError> {
        records::update_user(&self.pool, user)
    }

    fn add_vm_with_security(&self, vm: &Vm, sec: &VmSecurity) -> Result<(), StoreError> {
        vms::add(&self.pool, vm, sec)
    }

    fn vm(&self, id: Uuid) -> Result<Option<Vm>, StoreError> {
        vms::get_vm(&self.pool, id)
    }

    fn vm_by_name(&self, name: &str) -> Result<Option<Vm>, StoreError> {
        vms::by_name(&self.pool, name)
    }

    fn vms(&self) -> Result<Vec<Vm>, StoreError> {
        vms::all(&self.pool)
    }

    fn vms_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Vm>, StoreError> {
        vms::page(&self.pool, after, limit)
    }

    fn remove_vm(&self, id: Uuid) -> Result<bool, StoreError> {
        vms::remove(&self.pool, id)
    }

    fn vm_security(&self, id: Uuid) -> Result<VmSecurity, StoreError> {
        vms::security(&self.pool, id)
    }

    fn vm_with_security(&self, id: Uuid) -> Result<Option<(Vm, VmSecurity)>, StoreError> {
        vms::with_security(&self.pool, id)
    }

    fn vms_with_security_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Vm, VmSecurity)>, StoreError> {
        vms::page_with_security(&self.pool, after, limit)
    }

    fn vm_summary(&self, id: Uuid) -> Result<Option<VmSummary>, StoreError> {
        vms::summary(&self.pool, id)
    }

    fn vm_summaries_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<VmSummary>, StoreError> {
        vms::page_summaries(&self.pool, after, limit)
    }

    fn update_vm_security(
        &self,
        id: Uuid,
        actor: &str,
        change: &mut dyn FnMut(&mut VmSecurity) -> Result<(), Rejection>,
        finish: Option<JobDone<'_>>,
    ) -> Result<VmSecurity, UpdateError> {
        vms::update_security(&self.pool, id, actor, change, finish, None)
    }

    fn update_vm_security_fenced(
        &self,
        id: Uuid,
        actor: &str,
        lease: &VmLease,
        change: &mut dyn FnMut(&mut VmSecurity) -> Result<(), Rejection>,
    ) -> Result<VmSecurity, UpdateError> {
        vms::update_security(&self.pool, id, actor, change, None, Some(lease))
    }

    fn acquire_vm_lease(&self, vm: Uuid, ttl: Duration) -> Result<VmLease, StoreError> {
        fleet::acquire(&self.pool, self.me.guid, vm, ttl)
    }

    fn renew_vm_lease(&self, lease: &VmLease, ttl: Duration) -> Result<VmLease, StoreError> {
        fleet::renew(&self.pool, lease, ttl)
    }

    fn release_vm_lease(&self, vm: Uuid, token: Option<i64>) -> Result<bool, StoreError> {
        fleet::release(&self.pool, self.me.guid, vm, token)
    }

    fn vm_lease(&self, vm: Uuid) -> Result<Option<LeaseInfo>, StoreError> {
        fleet::info(&self.pool, vm)
    }

    fn kp_history(&self, id: Uuid) -> Result<Vec<KpHistoryEntry>, StoreError> {
        vms::kp_history(&self.pool, id)
    }

    fn insert_job(&self, job: &Job) -> Result<(), StoreError> {
        records::insert_job(&self.pool, job)
    }

    fn update_job(&self, job: &Job) -> Result<(), StoreError> {
        self.pool.write(|tx| records::write_job(tx, job))
    }

    fn job(&self, instance_id: &str) -> Result<Option<Job>, StoreError> {
        records::job(&self.pool, instance_id)
    }

    fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        records::jobs(&self.pool)
    }

    fn jobs_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Job>, StoreError> {
        records::jobs_page(&self.pool, after, limit)
    }

    fn unfinished_jobs(&self) -> Result<Vec<Job>, StoreError> {
        records::unfinished_jobs(&self.pool)
    }

    fn remove_expired_jobs(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        records::remove_expired_jobs(&self.pool, now)
    }

    fn add_guardian(&self, guardian: &GuardianRecord) -> Result<(), StoreError> {
        records::add_guardian(&self.pool, self.me.guid, guardian)
    }

    fn guardian(&self, name: &str) -> Result<Option<GuardianRecord>, StoreError> {
        records::guardian(&self.pool, self.me.guid, name)
    }

    fn guardians(&self) -> Result<Vec<GuardianRecord>, StoreError> {
        records::guardians(&self.pool, self.me.guid)
    }

    fn remove_guardian(&self, name: &str) -> Result<bool, StoreError> {
        records::remove_guardian(&self.pool, name)
    }

    fn key_protectors(&self) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError> {
        vms::key_protectors(&self.pool)
    }

    fn append_audit(&self, record: &AuditRecord) -> Result<i64, StoreError> {
        self.audit.append(&self.pool, record)
    }

    fn audit(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        audit::read(&self.pool, after, limit)
    }

    fn audit_query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        audit::query(&self.pool, query)
    }

    fn prune_audit(
        &self,
        retention: &AuditRetention,
        now: OffsetDateTime,
        batch: usize,
        actor: &str,
    ) -> Result<Vec<AuditPruned>, StoreError> {
        audit::prune(&self.pool, retention, now, batch, actor)
    }
}

impl FabricStore for PgStore {
    fn add_attested_host(&self, host: &AttestedHost) -> Result<(), StoreError> {
        fabric::add_attested_host(&self.pool, host)
    }

    fn attested_host_by_key(&self, key_hash: &str) -> Result<Option<AttestedHost>, StoreError> {
        fabric::attested_host_by_key(&self.pool, key_hash)
    }

    fn attested_hosts(&self) -> Result<Vec<AttestedHost>, StoreError> {
        fabric::attested_hosts(&self.pool)
    }

    fn remove_attested_host(&self, name: &str) -> Result<bool, StoreError> {
        fabric::remove_attested_host(&self.pool, name)
    }

    fn add_tpm_host(&self, host: &TpmHostRecord) -> Result<(), StoreError> {
        fabric::add_tpm_host(&self.pool, host)
    }

    fn tpm_host_by_ek(&self, ek_hash: &str) -> Result<Option<TpmHostRecord>, StoreError> {
        fabric::tpm_host_by_ek(&self.pool, ek_hash)
    }

    fn tpm_hosts(&self) -> Result<Vec<TpmHostRecord>, StoreError> {
        fabric::tpm_hosts(&self.pool)
    }

    fn add_tpm_baseline(&self, baseline: &TpmBaselineRecord) -> Result<(), StoreError> {
        fabric::add_tpm_baseline(&self.pool, baseline)
    }

    fn tpm_baselines(&self) -> Result<Vec<TpmBaselineRecord>, StoreError> {
        fabric::tpm_baselines(&self.pool)
    }

    fn remove_tpm_baseline(&self, name: &str) -> Result<bool, StoreError> {
        fabric::remove_tpm_baseline(&self.pool, name)
    }

    fn fabric_settings(&self) -> Result<FabricSettings, StoreError> {
        fabric::fabric_settings(&self.pool)
    }

    fn set_fabric_settings(&self, settings: &FabricSettings) -> Result<(), StoreError> {
        fabric::set_fabric_settings(&self.pool, settings)
    }
}
