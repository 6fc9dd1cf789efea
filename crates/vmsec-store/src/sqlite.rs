//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so that a
//! transaction reported committed survives a crash of the process or the machine.

use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::group_commit::GroupCommit;
use crate::*;

/// Forward migrations, applied in order on open; `PRAGMA user_version` counts those applied.
/// Never edit a released one: add another.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE host (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    name  TEXT NOT NULL,
    guid  TEXT NOT NULL
);
CREATE TABLE users (
    name           TEXT PRIMARY KEY,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'reader')),
    password_hash  TEXT NOT NULL,
    created_us     INTEGER NOT NULL
);
CREATE TABLE vms (
    guid        TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_us  INTEGER NOT NULL,
    tpm_enabled                             INTEGER NOT NULL DEFAULT 0,
    ksd_enabled                             INTEGER NOT NULL DEFAULT 0,
    shielding_requested                     INTEGER NOT NULL DEFAULT 0,
    data_protection_requested               INTEGER NOT NULL DEFAULT 0,
    encrypt_state_and_vm_migration_traffic  INTEGER NOT NULL DEFAULT 0,
    virtualization_based_security_opt_out   INTEGER NOT NULL DEFAULT 0,
    bind_to_host_tpm                        INTEGER NOT NULL DEFAULT 0,
    app_container_launch_opt_out            INTEGER NOT NULL DEFAULT 0,
    key_protector     BLOB,
    kp_set_by         TEXT,
    kp_set_us         INTEGER,
    last_known_good   BLOB,
    security_policy   BLOB,
    sealed_state_key  BLOB
);
CREATE TABLE kp_history (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    vm_guid         TEXT NOT NULL REFERENCES vms (guid) ON DELETE CASCADE,
    key_protector   BLOB NOT NULL,
    set_by          TEXT,
    set_us          INTEGER,
    replaced_by     TEXT NOT NULL,
    replaced_us     INTEGER NOT NULL
);
CREATE INDEX kp_history_vm ON kp_history (vm_guid, id);
CREATE TABLE jobs (
    instance_id        TEXT PRIMARY KEY,
    method             TEXT NOT NULL,
    vm_guid            TEXT,
    job_state          INTEGER NOT NULL,
    error_code         INTEGER NOT NULL,
    error_description  TEXT NOT NULL,
    percent_complete   INTEGER NOT NULL,
    submitted_by       TEXT NOT NULL,
    time_submitted_us  INTEGER NOT NULL,
    start_time_us      INTEGER,
    finish_time_us     INTEGER,
    time_before_removal_us INTEGER NOT NULL,
    owner              TEXT NOT NULL
);
CREATE INDEX jobs_unfinished ON jobs (job_state) WHERE job_state IN (2, 4);
CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us      INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    operation  TEXT NOT NULL,
    vm_guid    TEXT,
    outcome    TEXT NOT NULL,
    detail     TEXT NOT NULL
);
"#,
    r#"
CREATE TABLE guardians (
    name                        TEXT PRIMARY KEY,
    encryption_cert             BLOB NOT NULL,
    signing_cert                BLOB NOT NULL,
    encryption_cert_sig_alg     TEXT NOT NULL,
    encryption_cert_sig         BLOB NOT NULL,
    metadata                    BLOB,
    sealed_private_keys         BLOB,
    created_us                  INTEGER NOT NULL
);
"#,
];

/// Connections kept open for reuse; more are opened on demand when all are in use.
const POOL_IDLE_MAX: usize = 32;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite [`Store`].
pub struct SqliteStore {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// In-process writers take turns here rather than in SQLite's busy handler, which sleeps
    /// between retries (up to 100 ms each) and so turned contention into tail latency.
    /// Other processes (the CLI beside `vmsec serve`) still meet the busy timeout.
    writer: Mutex<()>,
    audit: GroupCommit<AuditRecord, i64, StoreError>,
    /// The connection audit batches are written on: `synchronous=NORMAL`, so a batch is
    /// durable against a crash of the process at once (it is in the WAL file), and against a
    /// crash of the machine with the next `FULL` commit of any connection, which syncs the
    /// WAL up to and including it. The log therefore never loses a record that precedes a
    /// state change that survived, and reads do not cost an fsync each.
    audit_conn: Mutex<Option<Connection>>,
    /// Dropped last, after every other connection: see [`Checkpointer`].
    _checkpointer: Option<Checkpointer>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, runs pending migrations, and records
    /// this host's identity on first open with `host_name`.
    pub fn open(path: impl AsRef<Path>, host_name: &str) -> Result<Self, StoreError> {
        let store = SqliteStore {
            path: path.as_ref().to_owned(),
            idle: Mutex::new(Vec::new()),
            writer: Mutex::new(()),
            audit: GroupCommit::new(),
            audit_conn: Mutex::new(None),
            _checkpointer: None,
        };
        let mut conn = store.connect()?;
        // WAL is a property of the file: set once; it persists.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(map_err)?;
        migrate(&mut conn)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        let exists: bool = tx
            .query_row("SELECT EXISTS (SELECT 1 FROM host)", [], |r| r.get(0))
            .map_err(map_err)?;
        if !exists {
            tx.execute(
                "INSERT INTO host (id, name, guid) VALUES (1, ?1, ?2)",
                params![host_name, Uuid::new_v4().to_string()],
            )
            .map_err(map_err)?;
        }
        tx.commit().map_err(map_err)?;
        store.put_back(conn);
        let checkpointer = Checkpointer::start(store.connect()?)?;
        Ok(SqliteStore {
            _checkpointer: Some(checkpointer),
            ..store
        })
    }

    /// The schema version this build writes.
    pub fn schema_version() -> usize {
        MIGRATIONS.len()
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open(&self.path).map_err(|e| {
            StoreError::Unavailable(format!("cannot open {}: {e}", self.path.display()))
        })?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(map_err)?;
        // Frames are copied on the checkpointer thread, not inside whichever commit crossed
        // SQLite's 4 MiB threshold: that commit's caller waited for the copy and its fsyncs
        // (1% of GetKeyProtector calls, at several times the median latency). The pragma
        // replaces the WAL hook, so ours goes in after it.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(map_err)?;
        conn.wal_hook(Some(restart_full_wal));
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(map_err)?;
        Ok(conn)
    }

    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        let out = f(&mut conn);
        // A connection left inside a transaction by a failed call is not reused.
        if conn.is_autocommit() {
            self.put_back(conn);
        }
        out
    }

    fn put_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < POOL_IDLE_MAX {
            idle.push(conn);
        }
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _turn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.with_conn(|conn| {
            // IMMEDIATE takes the write lock at BEGIN, so a read-then-write transaction never
            // fails half-way with SQLITE_BUSY on lock upgrade.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(map_err)?;
            let out = f(&tx)?;
            tx.commit().map_err(map_err)?;
            Ok(out)
        })
    }
}

/// How often the checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// WAL pages (4 KiB each) past which a commit starts the WAL file over: 64 MiB.
const WAL_RESET_PAGES: c_int = 16 * 1024;

/// The WAL hook of every connection: a commit that leaves more than [`WAL_RESET_PAGES`] in
/// the WAL checkpoints with RESTART before its caller goes on.
///
/// Copying frames (the [`Checkpointer`]) does not bound the WAL file: SQLite writes the file
/// from its start again only when a writer finds every frame copied and no reader in the
/// WAL, which under steady reads and writes may never happen (a fill of 100,000 VMs left a
/// 10 GB WAL, and the next start spent 3.5 s reading it). RESTART waits, under the busy
/// timeout, for readers to move off the WAL, so the next write starts at the beginning of
/// the file (which keeps its size: TRUNCATE would shrink it, and cost SetKeyProtector jobs
/// ~10% at 16 clients to grow it again). Doing it here, in the commit that crossed the
/// limit, bounds the file at the limit plus one transaction whatever the write rate, in
/// this process and in any other (the CLI): an earlier version had the checkpointer do it
/// every 500 ms, and a fast disk outran it by 140 MiB. It runs once per 64 MiB written, and
/// the checkpointer has copied all but the last half second of frames by then.
///
/// The commit has happened when the hook runs: a busy checkpoint (a reader stayed past the
/// busy timeout) is left for the next commit, never reported as the write's failure.
fn restart_full_wal(wal: &rusqlite::hooks::Wal, pages: c_int) -> rusqlite::Result<()> {
    if pages > WAL_RESET_PAGES {
        let _turn = CHECKPOINTS.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = wal.checkpoint_v2(rusqlite::hooks::CheckpointMode::RESTART) {
            tracing::debug!("WAL of {pages} pages not started over yet: {e}");
        }
    }
    Ok(())
}

/// Checkpoints of this process take turns here. SQLite answers a checkpoint that finds
/// another one running with SQLITE_BUSY at once, without the busy handler, so a RESTART
/// meeting the checkpointer's copy would fail and leave the WAL to grow until a later
/// commit; waiting here for the copy to end lets it succeed. (One lock for every store in
/// the process: checkpoints of different files wait for each other, which costs only tests
/// that open many stores.)
static CHECKPOINTS: Mutex<()> = Mutex::new(());

/// The thread that copies WAL frames into the database in the background, off the request
/// path: every [`CHECKPOINT_EVERY`], as much as it can without waiting (PASSIVE).
///
/// Dropping it stops the thread and waits for it, so that its connection closes before the
/// process can exit: the last connection to close checkpoints and removes the WAL.
struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(conn: Connection) -> Result<Checkpointer, StoreError> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    let _turn = CHECKPOINTS.lock().unwrap_or_else(|p| p.into_inner());
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!("WAL checkpoint failed: {e}");
                    }
                }
            })
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the WAL checkpointer: {e}"))
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The two statements of a page of `SELECT …` by its unique column `key`: the page after a
/// key (`?1` the key, `?2` the limit) and the first page (`?1` the limit). The key's index
/// serves both, so a page costs the same wherever it starts.
macro_rules! pages {
    ($select:expr, $key:literal) => {
        Pages {
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

/// See [`pages!`].
struct Pages {
    after: &'static str,
    first: &'static str,
}

fn read_vm(c: &Connection, id: Uuid) -> Result<Option<Vm>, StoreError> {
    c.prepare_cached("SELECT guid, name, created_us FROM vms WHERE guid = ?1")
        .map_err(map_err)?
        .query_row([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
        .map_err(map_err)?
        .map(vm_from_parts)
        .transpose()
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let applied: usize = tx
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(map_err)?
        .try_into()
        .map_err(|_| StoreError::Corrupt("negative schema version".into()))?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the store has schema version {applied}, newer than this vmsec ({}); upgrade vmsec",
            MIGRATIONS.len()
        )));
    }
    for sql in &MIGRATIONS[applied..] {
        tx.execute_batch(sql).map_err(map_err)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)
        .map_err(map_err)?;
    tx.commit().map_err(map_err)
}

fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            DatabaseBusy | DatabaseLocked => StoreError::Busy(e.to_string()),
            ConstraintViolation => StoreError::AlreadyExists(e.to_string()),
            DatabaseCorrupt | NotADatabase => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Unavailable(e.to_string()),
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

fn to_us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

fn from_us(us: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {us}: {e}")))
}

fn parse_guid(s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|e| StoreError::Corrupt(format!("GUID {s:?}: {e}")))
}

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<(String, String, String, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn user_from_parts(p: (String, String, String, i64)) -> Result<User, StoreError> {
    Ok(User {
        role: p.1.parse().map_err(StoreError::Corrupt)?,
        name: p.0,
        password_hash: p.2,
        created: from_us(p.3)?,
    })
}

fn vm_from_parts(p: (String, String, i64)) -> Result<Vm, StoreError> {
    Ok(Vm {
        id: parse_guid(&p.0)?,
        name: p.1,
        created: from_us(p.2)?,
    })
}

macro_rules! job_columns {
    () => {
        "instance_id, method, vm_guid, job_state, error_code, error_description, \
         percent_complete, submitted_by, time_submitted_us, start_time_us, finish_time_us, \
         time_before_removal_us, owner"
    };
}

type JobRow = (
    String,
    String,
    Option<String>,
    i64,
    i64,
    String,
    i64,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    String,
);

fn job_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
    ))
}

fn job_from_row(r: JobRow) -> Result<Job, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("job {}: bad {what}", r.0));
    Ok(Job {
        method: r.1.clone(),
        vm: r.2.as_deref().map(parse_guid).transpose()?,
        state: JobState::from_code(r.3).ok_or_else(|| corrupt("JobState"))?,
        error_code: u32::try_from(r.4).map_err(|_| corrupt("ErrorCode"))?,
        error_description: r.5.clone(),
        percent_complete: u16::try_from(r.6).map_err(|_| corrupt("PercentComplete"))?,
        submitted_by: r.7.clone(),
        time_submitted: from_us(r.8)?,
        start_time: r.9.map(from_us).transpose()?,
        finish_time: r.10.map(from_us).transpose()?,
        time_before_removal: time::Duration::microseconds(r.11),
        owner: r.12.parse().map_err(StoreError::Corrupt)?,
        instance_id: r.0,
    })
}

fn job_params(job: &Job) -> [Box<dyn rusqlite::ToSql + '_>; 13] {
    [
        Box::new(&job.instance_id),
        Box::new(&job.method),
        Box::new(job.vm.map(|v| v.to_string())),
        Box::new(i64::from(job.state.code())),
        Box::new(i64::from(job.error_code)),
        Box::new(&job.error_description),
        Box::new(i64::from(job.percent_complete)),
        Box::new(&job.submitted_by),
        Box::new(to_us(job.time_submitted)),
        Box::new(job.start_time.map(to_us)),
        Box::new(job.finish_time.map(to_us)),
        Box::new(job.time_before_removal.whole_microseconds() as i64),
        Box::new(job.owner.to_string()),
    ]
}

/// Appends one audit record inside the caller's transaction; returns its sequence number.
fn insert_audit(tx: &Connection, record: &AuditRecord) -> Result<i64, StoreError> {
    tx.prepare_cached(
        "INSERT INTO audit (at_us, actor, operation, vm_guid, outcome, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .map_err(map_err)?
    .execute(params![
        to_us(record.at),
        record.actor,
        record.operation,
        record.vm.map(|v| v.to_string()),
        record.outcome.as_str(),
        record.detail,
    ])
    .map_err(map_err)?;
    Ok(tx.last_insert_rowid())
}

fn write_job(tx: &Connection, job: &Job) -> Result<(), StoreError> {
    let p = job_params(job);
    let n = tx
        .prepare_cached(
            "UPDATE jobs SET method = ?2, vm_guid = ?3, job_state = ?4, error_code = ?5, \
             error_description = ?6, percent_complete = ?7, submitted_by = ?8, \
             time_submitted_us = ?9, start_time_us = ?10, finish_time_us = ?11, \
             time_before_removal_us = ?12, owner = ?13 WHERE instance_id = ?1",
        )
        .map_err(map_err)?
        .execute(rusqlite::params_from_iter(p.iter()))
        .map_err(map_err)?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("job {}", job.instance_id)));
    }
    Ok(())
}

fn write_security(tx: &Connection, id: Uuid, sec: &VmSecurity) -> Result<(), StoreError> {
    let s = &sec.settings;
    tx.prepare_cached(
        "UPDATE vms SET tpm_enabled = ?2, ksd_enabled = ?3, shielding_requested = ?4, \
         data_protection_requested = ?5, encrypt_state_and_vm_migration_traffic = ?6, \
         virtualization_based_security_opt_out = ?7, bind_to_host_tpm = ?8, \
         app_container_launch_opt_out = ?9, key_protector = ?10, kp_set_by = ?11, \
         kp_set_us = ?12, last_known_good = ?13, security_policy = ?14, \
         sealed_state_key = ?15 WHERE guid = ?1",
    )
    .map_err(map_err)?
    .execute(params![
        id.to_string(),
        s.tpm_enabled,
        s.ksd_enabled,
        s.shielding_requested,
        s.data_protection_requested,
        s.encrypt_state_and_vm_migration_traffic,
        s.virtualization_based_security_opt_out,
        s.bind_to_host_tpm,
        s.app_container_launch_opt_out,
        sec.key_protector,
        sec.key_protector_set.as_ref().map(|p| &p.by),
        sec.key_protector_set.as_ref().map(|p| to_us(p.at)),
        sec.last_known_good,
        sec.security_policy,
        sec.sealed_state_key,
    ])
    .map_err(map_err)?;
    Ok(())
}

/// The eight settings columns, in [`settings_from_row`]'s order. Column lists are macros so
/// that every query is one `&'static str` built by `concat!`, not formatted per call.
macro_rules! settings_columns {
    () => {
        "tpm_enabled, ksd_enabled, shielding_requested, data_protection_requested, \
         encrypt_state_and_vm_migration_traffic, virtualization_based_security_opt_out, \
         bind_to_host_tpm, app_container_launch_opt_out"
    };
}

fn settings_from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<SecuritySettings> {
    let b = |i: usize| r.get::<_, bool>(at + i);
    Ok(SecuritySettings {
        tpm_enabled: b(0)?,
        ksd_enabled: b(1)?,
        shielding_requested: b(2)?,
        data_protection_requested: b(3)?,
        encrypt_state_and_vm_migration_traffic: b(4)?,
        virtualization_based_security_opt_out: b(5)?,
        bind_to_host_tpm: b(6)?,
        app_container_launch_opt_out: b(7)?,
    })
}

/// A security record as its columns hold it; see [`security_from_parts`].
type SecurityRow = (
    SecuritySettings,
    Option<Vec<u8>>,
    Option<String>,
    Option<i64>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
);

/// The security record's columns: the settings, then the rest in [`security_from_row`]'s
/// order.
macro_rules! security_columns {
    () => {
        concat!(
            settings_columns!(),
            ", key_protector, kp_set_by, kp_set_us, last_known_good, security_policy, \
             sealed_state_key"
        )
    };
}

/// Reads `security_columns!()` starting at column `at`.
fn security_from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<SecurityRow> {
    Ok((
        settings_from_row(r, at)?,
        r.get(at + 8)?,
        r.get(at + 9)?,
        r.get(at + 10)?,
        r.get(at + 11)?,
        r.get(at + 12)?,
        r.get(at + 13)?,
    ))
}

fn security_from_parts(row: SecurityRow) -> Result<VmSecurity, StoreError> {
    let (settings, key_protector, set_by, set_us, last_known_good, security_policy, sealed) = row;
    let key_protector_set = match (set_by, set_us) {
        (Some(by), Some(us)) => Some(Provenance {
            by,
            at: from_us(us)?,
        }),
        _ => None,
    };
    Ok(VmSecurity {
        settings,
        key_protector,
        key_protector_set,
        last_known_good,
        security_policy,
        sealed_state_key: sealed,
    })
}

fn read_security(tx: &Connection, id: Uuid) -> Result<VmSecurity, StoreError> {
    let row = tx
        .prepare_cached(concat!(
            "SELECT ",
            security_columns!(),
            " FROM vms WHERE guid = ?1"
        ))
        .map_err(map_err)?
        .query_row([id.to_string()], |r| security_from_row(r, 0))
        .optional()
        .map_err(map_err)?
        .ok_or_else(|| StoreError::NotFound(format!("VM {id}")))?;
    security_from_parts(row)
}

/// What a [`VmSummary`] is read from: the VM's columns, its settings, and whether it has a
/// key protector. `typeof()` is answered from the record header; `IS NOT NULL` would read the
/// whole blob from its overflow pages.
macro_rules! summary_select {
    () => {
        concat!(
            "SELECT guid, name, created_us, ",
            settings_columns!(),
            ", typeof(key_protector) <> 'null' FROM vms"
        )
    };
}

type SummaryRow = ((String, String, i64), SecuritySettings, bool);

fn summary_from_row(r: &Row<'_>) -> rusqlite::Result<SummaryRow> {
    Ok((
        (r.get(0)?, r.get(1)?, r.get(2)?),
        settings_from_row(r, 3)?,
        r.get(11)?,
    ))
}

fn summary_from_parts(
    (vm, settings, has_key_protector): SummaryRow,
) -> Result<VmSummary, StoreError> {
    Ok(VmSummary {
        vm: vm_from_parts(vm)?,
        settings,
        has_key_protector,
    })
}

impl Store for SqliteStore {
    fn host(&self) -> Result<HostIdentity, StoreError> {
        self.with_conn(|c| {
            let (name, guid): (String, String) = c
                .query_row("SELECT name, guid FROM host WHERE id = 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(map_err)?;
            Ok(HostIdentity {
                name,
                guid: parse_guid(&guid)?,
            })
        })
    }

    fn add_user(&self, user: &User) -> Result<(), StoreError> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "INSERT INTO users (name, role, password_hash, created_us) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (name) DO NOTHING",
                    params![user.name, user.role.as_str(), user.password_hash, to_us(user.created)],
                )
                .map_err(map_err)?;
            if n == 0 {
                return Err(StoreError::AlreadyExists(format!("user {:?}", user.name)));
            }
            Ok(())
        })
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.with_conn(|c| {
            c.prepare_cached(
                "SELECT name, role, password_hash, created_us FROM users WHERE name = ?1",
            )
            .map_err(map_err)?
            .query_row([name], user_from_row)
            .optional()
            .map_err(map_err)?
            .map(user_from_parts)
            .transpose()
        })
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        self.with_conn(|c| {
            let mut st = c
                .prepare_cached(
                    "SELECT name, role, password_hash, created_us FROM users ORDER BY name",
                )
                .map_err(map_err)?;
            let rows = st.query_map([], user_from_row).map_err(map_err)?;
            rows.map(|r| user_from_parts(r.map_err(map_err)?)).collect()
        })
    }

    fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            Ok(tx
                .execute("DELETE FROM users WHERE name = ?1", [name])
                .map_err(map_err)?
                > 0)
        })
    }

    fn update_user(&self, user: &User) -> Result<bool, StoreError> {
        self.write(|tx| {
            Ok(tx
                .execute(
                    "UPDATE users SET role = ?2, password_hash = ?3 WHERE name = ?1",
                    params![user.name, user.role.as_str(), user.password_hash],
                )
                .map_err(map_err)?
                > 0)
        })
    }

    fn add_vm_with_security(&self, vm: &Vm, sec: &VmSecurity) -> Result<(), StoreError> {
        self.write(|tx| {
            let taken: Option<String> = tx
                .query_row(
                    "SELECT guid FROM vms WHERE guid = ?1 OR name = ?2",
                    params![vm.id.to_string(), vm.name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(map_err)?;
            if let Some(guid) = taken {
                return Err(StoreError::AlreadyExists(if guid == vm.id.to_string() {
                    format!("VM {}", vm.id)
                } else {
                    format!("a VM named {:?}", vm.name)
                }));
            }
            tx.execute(
                "INSERT INTO vms (guid, name, created_us) VALUES (?1, ?2, ?3)",
                params![vm.id.to_string(), vm.name, to_us(vm.created)],
            )
            .map_err(map_err)?;
            write_security(tx, vm.id, sec)
        })
    }

    fn vm(&self, id: Uuid) -> Result<Option<Vm>, StoreError> {
        self.with_conn(|c| read_vm(c, id))
    }

    fn vm_with_security(&self, id: Uuid) -> Result<Option<(Vm, VmSecurity)>, StoreError> {
        self.with_conn(|c| {
            // One statement, so one implicit read transaction: each costs WAL read locks.
            c.prepare_cached(concat!(
                "SELECT guid, name, created_us, ",
                security_columns!(),
                " FROM vms WHERE guid = ?1"
            ))
            .map_err(map_err)?
            .query_row([id.to_string()], |r| {
                Ok(((r.get(0)?, r.get(1)?, r.get(2)?), security_from_row(r, 3)?))
            })
            .optional()
            .map_err(map_err)?
            .map(|(vm, sec)| Ok((vm_from_parts(vm)?, security_from_parts(sec)?)))
            .transpose()
        })
    }

    fn vms_with_security_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Vm, VmSecurity)>, StoreError> {
        self.page(
            pages!(
                concat!(
                    "SELECT guid, name, created_us, ",
                    security_columns!(),
                    " FROM vms"
                ),
                "name"
            ),
            after,
            limit,
            |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), security_from_row(r, 3)?)),
            |(vm, sec)| Ok((vm_from_parts(vm)?, security_from_parts(sec)?)),
        )
    }

    fn vm_summary(&self, id: Uuid) -> Result<Option<VmSummary>, StoreError> {
        self.with_conn(|c| {
            c.prepare_cached(concat!(summary_select!(), " WHERE guid = ?1"))
                .map_err(map_err)?
                .query_row([id.to_string()], summary_from_row)
                .optional()
                .map_err(map_err)?
                .map(summary_from_parts)
                .transpose()
        })
    }

    fn vm_summaries_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<VmSummary>, StoreError> {
        self.page(
            pages!(summary_select!(), "name"),
            after,
            limit,
            summary_from_row,
            summary_from_parts,
        )
    }

    fn vm_by_name(&self, name: &str) -> Result<Option<Vm>, StoreError> {
        self.with_conn(|c| {
            c.prepare_cached("SELECT guid, name, created_us FROM vms WHERE name = ?1")
                .map_err(map_err)?
                .query_row([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .map_err(map_err)?
                .map(vm_from_parts)
                .transpose()
        })
    }

    fn vms(&self) -> Result<Vec<Vm>, StoreError> {
        self.with_conn(|c| {
            let mut st = c
                .prepare_cached("SELECT guid, name, created_us FROM vms ORDER BY name")
                .map_err(map_err)?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(map_err)?;
            rows.map(|r| vm_from_parts(r.map_err(map_err)?)).collect()
        })
    }

    fn vms_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Vm>, StoreError> {
        self.page(
            pages!("SELECT guid, name, created_us FROM vms", "name"),
            after,
            limit,
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            vm_from_parts,
        )
    }

    fn remove_vm(&self, id: Uuid) -> Result<bool, StoreError> {
        self.write(|tx| {
            Ok(tx
                .execute("DELETE FROM vms WHERE guid = ?1", [id.to_string()])
                .map_err(map_err)?
                > 0)
        })
    }

    fn vm_security(&self, id: Uuid) -> Result<VmSecurity, StoreError> {
        self.with_conn(|c| read_security(c, id))
    }

    fn update_vm_security(
        &self,
        id: Uuid,
        actor: &str,
        change: &mut dyn FnMut(&mut VmSecurity) -> Result<(), Rejection>,
        finish: Option<JobDone<'_>>,
    ) -> Result<VmSecurity, UpdateError> {
        let mut rejected = None;
        let out = self.write(|tx| {
            let before = read_security(tx, id)?;
            let mut after = before.clone();
            if let Err(e) = change(&mut after) {
                rejected = Some(e);
                // Rolled back by dropping the transaction; the error is reported below.
                return Err(StoreError::Unavailable("change rejected".into()));
            }
            let now = OffsetDateTime::now_utc();
            if after.key_protector != before.key_protector {
                if let Some(old) = &before.key_protector {
                    tx.prepare_cached(
                        "INSERT INTO kp_history (vm_guid, key_protector, set_by, set_us, replaced_by, replaced_us) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .map_err(map_err)?
                    .execute(params![
                        id.to_string(),
                        old,
                        before.key_protector_set.as_ref().map(|p| &p.by),
                        before.key_protector_set.as_ref().map(|p| to_us(p.at)),
                        actor,
                        to_us(now),
                    ])
                    .map_err(map_err)?;
                    tx.prepare_cached(
                        "DELETE FROM kp_history WHERE vm_guid = ?1 AND id NOT IN \
                         (SELECT id FROM kp_history WHERE vm_guid = ?1 ORDER BY id DESC LIMIT ?2)",
                    )
                    .map_err(map_err)?
                    .execute(params![id.to_string(), KP_HISTORY_LIMIT as i64])
                    .map_err(map_err)?;
                }
                after.key_protector_set = after.key_protector.as_ref().map(|_| Provenance {
                    by: actor.to_owned(),
                    at: now,
                });
            }
            write_security(tx, id, &after)?;
            if let Some(done) = finish {
                write_job(tx, done.job)?;
                insert_audit(tx, done.audit)?;
            }
            Ok(after)
        });
        match (out, rejected) {
            (_, Some(e)) => Err(UpdateError::Rejected(e)),
            (Ok(v), None) => Ok(v),
            (Err(e), None) => Err(UpdateError::Store(e)),
        }
    }

    fn kp_history(&self, id: Uuid) -> Result<Vec<KpHistoryEntry>, StoreError> {
        self.with_conn(|c| {
            let mut st = c
                .prepare_cached(
                    "SELECT key_protector, set_by, set_us, replaced_by, replaced_us FROM kp_history \
                     WHERE vm_guid = ?1 ORDER BY id DESC",
                )
                .map_err(map_err)?;
            let rows = st
                .query_map([id.to_string()], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .map_err(map_err)?;
            rows.map(|r| {
                let (kp, by, at, rby, rat) = r.map_err(map_err)?;
                Ok(KpHistoryEntry {
                    key_protector: kp,
                    set: match (by, at) {
                        (Some(by), Some(at)) => Some(Provenance {
                            by,
                            at: from_us(at)?,
                        }),
                        _ => None,
                    },
                    replaced: Provenance {
                        by: rby,
                        at: from_us(rat)?,
                    },
                })
            })
            .collect()
        })
    }

    fn insert_job(&self, job: &Job) -> Result<(), StoreError> {
        self.write(|tx| {
            let p = job_params(job);
            tx.prepare_cached(concat!(
                "INSERT INTO jobs (",
                job_columns!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ))
            .map_err(map_err)?
            .execute(rusqlite::params_from_iter(p.iter()))
            .map_err(map_err)?;
            Ok(())
        })
    }

    fn update_job(&self, job: &Job) -> Result<(), StoreError> {
        self.write(|tx| write_job(tx, job))
    }

    fn job(&self, instance_id: &str) -> Result<Option<Job>, StoreError> {
        self.with_conn(|c| {
            c.prepare_cached(concat!(
                "SELECT ",
                job_columns!(),
                " FROM jobs WHERE instance_id = ?1"
            ))
            .map_err(map_err)?
            .query_row([instance_id], job_row)
            .optional()
            .map_err(map_err)?
            .map(job_from_row)
            .transpose()
        })
    }

    fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.query_jobs(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs ORDER BY time_submitted_us, instance_id"
        ))
    }

    fn jobs_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Job>, StoreError> {
        self.page(
            pages!(
                concat!("SELECT ", job_columns!(), " FROM jobs"),
                "instance_id"
            ),
            after,
            limit,
            job_row,
            job_from_row,
        )
    }

    fn unfinished_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.query_jobs(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE job_state IN (2, 4) ORDER BY time_submitted_us, instance_id"
        ))
    }

    fn remove_expired_jobs(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        self.write(|tx| {
            tx.prepare_cached(
                "DELETE FROM jobs WHERE job_state IN (7, 10) AND finish_time_us IS NOT NULL \
                 AND finish_time_us + time_before_removal_us <= ?1",
            )
            .map_err(map_err)?
            .execute([to_us(now)])
            .map_err(map_err)
        })
    }

    fn add_guardian(&self, g: &GuardianRecord) -> Result<(), StoreError> {
        self.write(|tx| {
            let n = tx
                .execute(
                    &format!(
                        "INSERT INTO guardians ({GUARDIAN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                         ON CONFLICT (name) DO NOTHING"
                    ),
                    params![
                        g.name,
                        g.encryption_cert,
                        g.signing_cert,
                        g.encryption_cert_signature_algorithm,
                        g.encryption_cert_signature,
                        g.metadata,
                        g.sealed_private_keys,
                        to_us(g.created)
                    ],
                )
                .map_err(map_err)?;
            if n == 0 {
                return Err(StoreError::AlreadyExists(format!("guardian {:?}", g.name)));
            }
            Ok(())
        })
    }

    fn guardian(&self, name: &str) -> Result<Option<GuardianRecord>, StoreError> {
        self.with_conn(|c| {
            c.prepare_cached(&format!(
                "SELECT {GUARDIAN_COLUMNS} FROM guardians WHERE name = ?1"
            ))
            .map_err(map_err)?
            .query_row([name], guardian_row)
            .optional()
            .map_err(map_err)?
            .map(guardian_from)
            .transpose()
        })
    }

    fn guardians(&self) -> Result<Vec<GuardianRecord>, StoreError> {
        self.with_conn(|c| {
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {GUARDIAN_COLUMNS} FROM guardians ORDER BY name"
                ))
                .map_err(map_err)?;
            let rows = st.query_map([], guardian_row).map_err(map_err)?;
            rows.map(|r| guardian_from(r.map_err(map_err)?)).collect()
        })
    }

    fn remove_guardian(&self, name: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            Ok(tx
                .execute("DELETE FROM guardians WHERE name = ?1", [name])
                .map_err(map_err)?
                > 0)
        })
    }

    fn key_protectors(&self) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError> {
        self.with_conn(|c| {
            let mut st = c
                .prepare_cached(
                    "SELECT guid, key_protector FROM vms WHERE key_protector IS NOT NULL",
                )
                .map_err(map_err)?;
            let rows = st
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
                })
                .map_err(map_err)?;
            rows.map(|r| {
                let (g, kp) = r.map_err(map_err)?;
                Ok((parse_guid(&g)?, kp))
            })
            .collect()
        })
    }

    fn append_audit(&self, record: &AuditRecord) -> Result<i64, StoreError> {
        self.audit.submit(
            record.clone(),
            |batch| {
                let _turn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
                let mut slot = self.audit_conn.lock().unwrap_or_else(|p| p.into_inner());
                let conn = match slot.take() {
                    Some(c) => c,
                    None => {
                        let c = self.connect()?;
                        c.pragma_update(None, "synchronous", "NORMAL")
                            .map_err(map_err)?;
                        c
                    }
                };
                let conn = slot.insert(conn);
                let result = (|| {
                    let tx = conn
                        .transaction_with_behavior(TransactionBehavior::Immediate)
                        .map_err(map_err)?;
                    let seqs = batch
                        .iter()
                        .map(|record| insert_audit(&tx, record))
                        .collect::<Result<Vec<_>, _>>()?;
                    tx.commit().map_err(map_err)?;
                    Ok(seqs)
                })();
                // A connection left inside a failed transaction is not reused.
                if !conn.is_autocommit() {
                    *slot = None;
                }
                result
            },
            || StoreError::Unavailable("the audit record's batch was abandoned".into()),
        )
    }

    fn audit(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.with_conn(|c| {
            let mut st = c
                .prepare_cached(
                    "SELECT seq, at_us, actor, operation, vm_guid, outcome, detail FROM audit \
                     WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(map_err)?;
            let rows = st
                .query_map(params![after, limit as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                })
                .map_err(map_err)?;
            rows.map(|r| {
                let (seq, at, actor, operation, vm, outcome, detail) = r.map_err(map_err)?;
                Ok(AuditRecord {
                    seq,
                    at: from_us(at)?,
                    actor,
                    operation,
                    vm: vm.as_deref().map(parse_guid).transpose()?,
                    outcome: AuditOutcome::parse(&outcome)
                        .ok_or_else(|| StoreError::Corrupt(format!("audit outcome {outcome:?}")))?,
                    detail,
                })
            })
            .collect()
        })
    }

    fn prune_audit(
        &self,
        retention: &AuditRetention,
        now: OffsetDateTime,
        batch: usize,
        actor: &str,
    ) -> Result<Vec<AuditPruned>, StoreError> {
        let batch = batch.max(1);
        // Both bounds are fixed before the first write, read outside any write transaction
        // (counting from the newest record walks up to `max_records` rows). Records written
        // meanwhile, this run's own range records among them, are newer than either bound,
        // so the run ends, and it never prunes more than the retention asked for.
        let keep_from = match retention.max_records {
            None => None,
            Some(0) => Some(i64::MAX),
            Some(n) => self.with_conn(|c| {
                c.query_row(
                    "SELECT seq FROM audit ORDER BY seq DESC LIMIT 1 OFFSET ?1",
                    [i64::try_from(n - 1).unwrap_or(i64::MAX)],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
                .map_err(map_err)
            })?,
        };
        let older_than = retention.max_age.map(|age| now - age);
        let mut why = Vec::new();
        if let Some(n) = retention.max_records {
            why.push(format!("beyond the newest {n}"));
        }
        if let Some(t) = older_than {
            let t = t
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| t.to_string());
            why.push(format!("older than {t}"));
        }
        let why = why.join(" or ");
        let cut_us = older_than.map(to_us);
        let pruned = |seq: i64, at_us: i64| {
            keep_from.is_some_and(|k| seq < k) || cut_us.is_some_and(|c| at_us < c)
        };
        let mut out = Vec::new();
        loop {
            let done = self.write(|tx| {
                // Only the oldest `batch` records are looked at: the work of this transaction
                // is bounded whatever the size of the log.
                let mut st = tx
                    .prepare_cached("SELECT seq, at_us FROM audit ORDER BY seq LIMIT ?1")
                    .map_err(map_err)?;
                let rows = st
                    .query_map([i64::try_from(batch).unwrap_or(i64::MAX)], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                    })
                    .map_err(map_err)?;
                let mut range: Option<(i64, i64)> = None;
                let mut count = 0usize;
                for row in rows {
                    let (seq, at_us) = row.map_err(map_err)?;
                    // A prefix only: the first record kept ends the range, so what remains
                    // of the log has no gap.
                    if !pruned(seq, at_us) {
                        break;
                    }
                    range = Some((range.map_or(seq, |r| r.0), seq));
                    count += 1;
                }
                drop(st);
                let Some((first, last)) = range else {
                    return Ok(None);
                };
                tx.prepare_cached("DELETE FROM audit WHERE seq BETWEEN ?1 AND ?2")
                    .map_err(map_err)?
                    .execute(params![first, last])
                    .map_err(map_err)?;
                let record = insert_audit(
                    tx,
                    &AuditRecord {
                        seq: 0,
                        at: OffsetDateTime::now_utc(),
                        actor: actor.to_owned(),
                        operation: AUDIT_PRUNED.to_owned(),
                        vm: None,
                        outcome: AuditOutcome::Succeeded,
                        detail: format!(
                            "records {first}\u{2013}{last} pruned ({count} records): {why}"
                        ),
                    },
                )?;
                Ok(Some((
                    AuditPruned {
                        first,
                        last,
                        record,
                    },
                    count,
                )))
            })?;
            match done {
                Some((p, count)) => {
                    out.push(p);
                    if count < batch {
                        break;
                    }
                }
                None => break,
            }
        }
        Ok(out)
    }
}

const GUARDIAN_COLUMNS: &str = "name, encryption_cert, signing_cert, encryption_cert_sig_alg, \
     encryption_cert_sig, metadata, sealed_private_keys, created_us";

fn guardian_row(r: &Row<'_>) -> rusqlite::Result<(GuardianRecord, i64)> {
    Ok((
        GuardianRecord {
            name: r.get(0)?,
            encryption_cert: r.get(1)?,
            signing_cert: r.get(2)?,
            encryption_cert_signature_algorithm: r.get(3)?,
            encryption_cert_signature: r.get(4)?,
            metadata: r.get(5)?,
            sealed_private_keys: r.get(6)?,
            created: OffsetDateTime::UNIX_EPOCH,
        },
        r.get(7)?,
    ))
}

fn guardian_from(row: (GuardianRecord, i64)) -> Result<GuardianRecord, StoreError> {
    let (mut g, us) = row;
    g.created = from_us(us)?;
    Ok(g)
}

impl SqliteStore {
    /// Jobs read by `sql` (`SELECT job_columns!() …`, no parameters).
    fn query_jobs(&self, sql: &'static str) -> Result<Vec<Job>, StoreError> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(sql).map_err(map_err)?;
            let rows = st.query_map([], job_row).map_err(map_err)?;
            rows.map(|r| job_from_row(r.map_err(map_err)?)).collect()
        })
    }

    /// Up to `limit` rows of `pages` after the key `after` (from the first when `None`), each
    /// read by `row` and made a record by `record`.
    fn page<R, T>(
        &self,
        pages: Pages,
        after: Option<&str>,
        limit: usize,
        row: impl FnMut(&Row<'_>) -> rusqlite::Result<R>,
        record: impl Fn(R) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (sql, args): (_, &[&dyn rusqlite::ToSql]) = match &after {
            Some(key) => (pages.after, &[key, &limit]),
            None => (pages.first, &[&limit]),
        };
        self.with_conn(|c| {
            let mut st = c.prepare_cached(sql).map_err(map_err)?;
            let rows = st.query_map(args, row).map_err(map_err)?;
            rows.map(|r| record(r.map_err(map_err)?)).collect()
        })
    }
}
