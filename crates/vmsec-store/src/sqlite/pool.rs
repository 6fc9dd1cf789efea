//! Connections: how each is set up, the pool that reuses them, and the turn in-process
//! writers take.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, Row, TransactionBehavior};

use super::values::map_err;
use super::wal;
use crate::StoreError;

/// Connections kept open for reuse; more are opened on demand when all are in use.
const POOL_IDLE_MAX: usize = 32;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const STATEMENT_CACHE: usize = 64;

pub(super) struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// In-process writers take turns here rather than in SQLite's busy handler, which sleeps
    /// between retries (up to 100 ms each) and so turned contention into tail latency.
    /// Other processes (the CLI beside `vmsec serve`) still meet the busy timeout.
    writer: Mutex<()>,
}

impl Pool {
    pub(super) fn new(path: PathBuf) -> Pool {
        Pool {
            path,
            idle: Mutex::new(Vec::new()),
            writer: Mutex::new(()),
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// A new connection, set up as every connection of the store is.
    pub(super) fn connect(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open(&self.path).map_err(|e| {
            StoreError::Unavailable(format!("cannot open {}: {e}", self.path.display()))
        })?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
        // Room for every statement the store prepares (about 25), so none is prepared twice.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(map_err)?;
        wal::configure(&conn)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(map_err)?;
        Ok(conn)
    }

    /// Whether no in-process writer holds the turn (see [`Pool::writer_turn`]) right now.
    pub(super) fn writer_is_free(&self) -> bool {
        self.writer.try_lock().is_ok()
    }

    /// The in-process writers' turn: held for the whole of each write transaction.
    pub(super) fn writer_turn(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn with_conn<T>(
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

    /// Runs `f` in one read transaction on a pooled connection. BEGIN and COMMIT are cached
    /// statements: `Connection::transaction` prepares both anew each time, which cost a small
    /// Get more instructions than its two point reads.
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let run = |c: &Connection, sql: &str| {
            c.prepare_cached(sql)
                .and_then(|mut s| s.execute([]))
                .map_err(map_err)
        };
        self.with_conn(|c| {
            run(c, "BEGIN")?;
            let out = f(c);
            // A read transaction has nothing to keep: COMMIT and ROLLBACK both just end it.
            let ended = run(c, if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
            let out = out?;
            ended.map(|_| out)
        })
    }

    pub(super) fn put_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < POOL_IDLE_MAX {
            idle.push(conn);
        }
    }

    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _turn = self.writer_turn();
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

    /// Every row `sql` (no parameters) reads, each made a record by `row`.
    pub(super) fn query_all<T>(
        &self,
        sql: &'static str,
        row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        self.with_conn(|c| collect(c, sql, [], row))
    }

    /// Up to `limit` rows of `pages` after the key `after` (from the first when `None`), each
    /// made a record by `row`.
    pub(super) fn page<T>(
        &self,
        pages: Pages,
        after: Option<&str>,
        limit: usize,
        row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (sql, args): (_, &[&dyn rusqlite::ToSql]) = match &after {
            Some(key) => (pages.after, &[key, &limit]),
            None => (pages.first, &[&limit]),
        };
        self.with_conn(|c| collect(c, sql, args, row))
    }
}

/// Every row `sql` reads with `params`, each made a record by `row`.
pub(super) fn collect<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut st = c.prepare_cached(sql).map_err(map_err)?;
    let rows = st.query_map(params, row).map_err(map_err)?;
    rows.map(|r| r.map_err(map_err)).collect()
}

/// See [`pages!`].
pub(super) struct Pages {
    pub(super) after: &'static str,
    pub(super) first: &'static str,
}
