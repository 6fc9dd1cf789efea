//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so that a
//! transaction reported committed survives a crash of the process or the machine.
//!
//! [`SqliteStore`] only wires the parts together: `schema` (migrations), `pool`
//! (connections and the writers' turn), `wal` (keeping the WAL bounded), `values` (how
//! values and errors cross into SQLite), and one file per kind of record.

use std::path::Path;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::*;

/// The two statements of a page of `SELECT …` by its unique column `key`: the page after a
/// key (`?1` the key, `?2` the limit) and the first page (`?1` the limit). The key's index
/// serves both, so a page costs the same wherever it starts.
macro_rules! pages {
    ($select:expr, $key:literal) => {
        $crate::sqlite::pool::Pages {
            after: concat!(
                $select,
                " WHERE ",
                $key,
                " > ?1 ORDER BY ",
                $key,
                " LIMIT ?2"
            ),
            first: concat!($select, " ORDER BY ", $key, " LIMIT ?1"),
        }
    };
}

mod audit;
mod fabric;
mod fleet;
mod guardians;
mod host;
mod jobs;
mod pool;
mod schema;
mod unchanged;
mod users;
mod values;
mod vms;
mod wal;

use pool::Pool;

/// The SQLite [`Store`].
pub struct SqliteStore {
    pool: Pool,
    me: HostIdentity,
    audit: audit::AuditWriter,
    reads: unchanged::ReadCache,
    /// Dropped last, after every other connection: see [`wal::Checkpointer`].
    _checkpointer: Option<wal::Checkpointer>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.pool.path())
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, runs pending migrations, and records
    /// this host's identity on first open with `host_name`.
    pub fn open(path: impl AsRef<Path>, host_name: &str) -> Result<Self, StoreError> {
        let pool = Pool::new(path.as_ref().to_owned());
        let mut conn = pool.connect()?;
        wal::enable(&conn)?;
        schema::migrate(&mut conn)?;
        host::record_once(&mut conn, host_name)?;
        let reads = unchanged::ReadCache::open(path.as_ref());
        pool.put_back(conn);
        let me = host::read(&pool)?;
        let checkpointer = wal::Checkpointer::start(pool.connect()?)?;
        Ok(SqliteStore {
            pool,
            me,
            audit: audit::AuditWriter::new(),
            reads,
            _checkpointer: Some(checkpointer),
        })
    }

    /// The schema version this build writes.
    pub fn schema_version() -> usize {
        schema::MIGRATIONS.len()
    }
}

impl Store for SqliteStore {
    fn host(&self) -> Result<HostIdentity, StoreError> {
        host::read(&self.pool)
    }

    fn hosts(&self) -> Result<Vec<HostRecord>, StoreError> {
        fleet::hosts(&self.pool)
    }

    fn touch_host(&self) -> Result<(), StoreError> {
        fleet::touch_host(&self.pool)
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

    fn acquire_vm_lease(&self, vm: Uuid, ttl: std::time::Duration) -> Result<VmLease, StoreError> {
        fleet::acquire(&self.pool, &self.me, vm, ttl)
    }

    fn renew_vm_lease(
        &self,
        lease: &VmLease,
        ttl: std::time::Duration,
    ) -> Result<VmLease, StoreError> {
        fleet::renew(&self.pool, lease, ttl)
    }

    fn release_vm_lease(&self, vm: Uuid, token: Option<i64>) -> Result<bool, StoreError> {
        fleet::release(&self.pool, &self.me, vm, token)
    }

    fn vm_lease(&self, vm: Uuid) -> Result<Option<LeaseInfo>, StoreError> {
        fleet::info(&self.pool, &self.me, vm)
    }

    fn add_user(&self, user: &User) -> Result<(), StoreError> {
        users::add(&self.pool, user)
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        users::get(&self.pool, name)
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        users::all(&self.pool)
    }

    fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        users::remove(&self.pool, name)
    }

    fn update_user(&self, user: &User) -> Result<bool, StoreError> {
        users::update(&self.pool, user)
    }

    fn add_vm_with_security(&self, vm: &Vm, sec: &VmSecurity) -> Result<(), StoreError> {
        vms::add(&self.pool, vm, sec)
    }

    fn vm(&self, id: Uuid) -> Result<Option<Vm>, StoreError> {
        vms::get(&self.pool, id)
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

    fn user_and_vm_summary(
        &self,
        name: &str,
        id: Uuid,
    ) -> Result<(Option<User>, Option<VmSummary>), StoreError> {
        // A read transaction's locks (WAL read mark, shared-memory mutex) cost more than its
        // two point reads: one transaction, not two, and none while the file is unchanged.
        self.reads.user_and_vm_summary(name, id, || {
            self.pool
                .read(|c| Ok((users::get_on(c, name)?, vms::summary_on(c, id)?)))
        })
    }

    fn user_and_vm_security(
        &self,
        name: &str,
        id: Uuid,
    ) -> Result<(Option<User>, Option<VmSecurity>), StoreError> {
        self.pool
            .read(|c| Ok((users::get_on(c, name)?, vms::security_on(c, id)?)))
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

    fn kp_history(&self, id: Uuid) -> Result<Vec<KpHistoryEntry>, StoreError> {
        vms::kp_history(&self.pool, id)
    }

    fn insert_job(&self, job: &Job) -> Result<(), StoreError> {
        jobs::insert(&self.pool, job)
    }

    fn update_job(&self, job: &Job) -> Result<(), StoreError> {
        self.pool.write(|tx| jobs::write(tx, job))
    }

    fn job(&self, instance_id: &str) -> Result<Option<Job>, StoreError> {
        jobs::get(&self.pool, instance_id)
    }

    fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        jobs::all(&self.pool)
    }

    fn jobs_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Job>, StoreError> {
        jobs::page(&self.pool, after, limit)
    }

    fn unfinished_jobs(&self) -> Result<Vec<Job>, StoreError> {
        jobs::unfinished(&self.pool)
    }

    fn remove_expired_jobs(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        jobs::remove_expired(&self.pool, now)
    }

    fn add_guardian(&self, guardian: &GuardianRecord) -> Result<(), StoreError> {
        guardians::add(&self.pool, guardian)
    }

    fn guardian(&self, name: &str) -> Result<Option<GuardianRecord>, StoreError> {
        guardians::get(&self.pool, name)
    }

    fn guardians(&self) -> Result<Vec<GuardianRecord>, StoreError> {
        guardians::all(&self.pool)
    }

    fn remove_guardian(&self, name: &str) -> Result<bool, StoreError> {
        guardians::remove(&self.pool, name)
    }

    fn key_protectors(&self) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError> {
        vms::key_protectors(&self.pool)
    }

    fn append_audit(&self, record: &AuditRecord) -> Result<i64, StoreError> {
        self.audit.append(&self.pool, record)
    }

    fn audit_would_start_at_once(&self) -> bool {
        self.pool.writer_is_free() && self.audit.is_idle()
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

impl FabricStore for SqliteStore {
    fn add_attested_host(&self, host: &AttestedHost) -> Result<(), StoreError> {
        fabric::add_host(&self.pool, host)
    }

    fn attested_host_by_key(&self, key_hash: &str) -> Result<Option<AttestedHost>, StoreError> {
        fabric::host_by_key(&self.pool, key_hash)
    }

    fn attested_hosts(&self) -> Result<Vec<AttestedHost>, StoreError> {
        fabric::hosts(&self.pool)
    }

    fn remove_attested_host(&self, name: &str) -> Result<bool, StoreError> {
        fabric::remove_host(&self.pool, name)
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
        fabric::add_baseline(&self.pool, baseline)
    }

    fn tpm_baselines(&self) -> Result<Vec<TpmBaselineRecord>, StoreError> {
        fabric::baselines(&self.pool)
    }

    fn remove_tpm_baseline(&self, name: &str) -> Result<bool, StoreError> {
        fabric::remove_baseline(&self.pool, name)
    }

    fn fabric_settings(&self) -> Result<FabricSettings, StoreError> {
        fabric::settings(&self.pool)
    }

    fn set_fabric_settings(&self, settings: &FabricSettings) -> Result<(), StoreError> {
        fabric::set_settings(&self.pool, settings)
    }
}
