//! The audit log: appends in group commits, reads, and pruning by retention.

use std::sync::Mutex;

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use time::OffsetDateTime;

use super::pool::{Pool, collect};
use super::values::{invalid, map_err, opt_guid_at, time_at, to_us};
use crate::group_commit::GroupCommit;
use crate::prune::Cut;
use crate::*;

/// Writes appended records in batches: see [`GroupCommit`].
pub(super) struct AuditWriter {
    batches: GroupCommit<AuditRecord, i64, StoreError>,
    /// The connection audit batches are written on: `synchronous=NORMAL`, so a batch is
    /// durable against a crash of the process at once (it is in the WAL file), and against a
    /// crash of the machine with the next `FULL` commit of any connection, which syncs the
    /// WAL up to and including it. The log therefore never loses a record that precedes a
    /// state change that survived, and reads do not cost an fsync each.
    conn: Mutex<Option<Connection>>,
}

impl AuditWriter {
    pub(super) fn new() -> AuditWriter {
        AuditWriter {
            batches: GroupCommit::new(),
            conn: Mutex::new(None),
        }
    }

    /// Whether no batch is being written or waiting to be.
    pub(super) fn is_idle(&self) -> bool {
        self.batches.is_idle()
    }

    /// Appends `record` with the batch it joins; returns its sequence number.
    pub(super) fn append(&self, pool: &Pool, record: &AuditRecord) -> Result<i64, StoreError> {
        self.batches.submit(
            record.clone(),
            |batch| {
                let _turn = pool.writer_turn();
                let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
                let conn = match slot.take() {
                    Some(c) => c,
                    None => {
                        let c = pool.connect()?;
                        c.pragma_update(None, "synchronous", "NORMAL")
                            .map_err(map_err)?;
                        c
                    }
                };
                let conn = slot.insert(conn);
                let result = write_batch(conn, &batch);
                // A connection left inside a failed transaction is not reused.
                if !conn.is_autocommit() {
                    *slot = None;
                }
                result
            },
            || StoreError::Unavailable("the audit record's batch was abandoned".into()),
        )
    }
}

fn write_batch(conn: &mut Connection, batch: &[AuditRecord]) -> Result<Vec<i64>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let seqs = batch
        .iter()
        .map(|record| insert(&tx, record))
        .collect::<Result<Vec<_>, _>>()?;
    tx.commit().map_err(map_err)?;
    Ok(seqs)
}

/// Appends one audit record inside the caller's transaction; returns its sequence number.
pub(super) fn insert(tx: &Connection, record: &AuditRecord) -> Result<i64, StoreError> {
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

fn audit_from_row(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    let outcome: String = r.get(5)?;
    Ok(AuditRecord {
        seq: r.get(0)?,
        at: time_at(r, 1)?,
        actor: r.get(2)?,
        operation: r.get(3)?,
        vm: opt_guid_at(r, 4)?,
        outcome: AuditOutcome::parse(&outcome)
            .ok_or_else(|| invalid(5, Type::Text, format!("audit outcome {outcome:?}")))?,
        detail: r.get(6)?,
    })
}

pub(super) fn read(pool: &Pool, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
    pool.with_conn(|c| {
        collect(
            c,
            "SELECT seq, at_us, actor, operation, vm_guid, outcome, detail FROM audit \
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            params![after, limit as i64],
            audit_from_row,
        )
    })
}

pub(super) fn query(pool: &Pool, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
    // One statement per order, each filter skipped when its parameter is NULL: the walk goes
    // along the primary key in either direction and stops at `limit`.
    let sql = if q.newest_first {
        "SELECT seq, at_us, actor, operation, vm_guid, outcome, detail FROM audit \
         WHERE seq > ?1 AND seq < ?2 AND (?3 IS NULL OR at_us >= ?3) \
         AND (?4 IS NULL OR vm_guid = ?4) AND (?5 IS NULL OR actor = ?5) \
         ORDER BY seq DESC LIMIT ?6"
    } else {
        "SELECT seq, at_us, actor, operation, vm_guid, outcome, detail FROM audit \
         WHERE seq > ?1 AND seq < ?2 AND (?3 IS NULL OR at_us >= ?3) \
         AND (?4 IS NULL OR vm_guid = ?4) AND (?5 IS NULL OR actor = ?5) \
         ORDER BY seq LIMIT ?6"
    };
    pool.with_conn(|c| {
        collect(
            c,
            sql,
            params![
                q.after,
                q.before.unwrap_or(i64::MAX),
                q.since.map(to_us),
                q.vm.map(|v| v.to_string()),
                q.actor,
                i64::try_from(q.limit).unwrap_or(i64::MAX),
            ],
            audit_from_row,
        )
    })
}

/// The `max_records`-th newest record's sequence number, read outside any write
/// transaction (counting from the newest walks up to `max_records` rows).
fn nth_newest(pool: &Pool, retention: &AuditRetention) -> Result<Option<i64>, StoreError> {
    match retention.max_records {
        None | Some(0) => Ok(None),
        Some(n) => pool.with_conn(|c| {
            c.query_row(
                "SELECT seq FROM audit ORDER BY seq DESC LIMIT 1 OFFSET ?1",
                [i64::try_from(n - 1).unwrap_or(i64::MAX)],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(map_err)
        }),
    }
}

pub(super) fn prune(
    pool: &Pool,
    retention: &AuditRetention,
    now: OffsetDateTime,
    batch: usize,
    actor: &str,
) -> Result<Vec<AuditPruned>, StoreError> {
    let cut = Cut::new(retention, nth_newest(pool, retention)?, now);
    cut.run(batch, |cut, batch| {
        pool.write(|tx| prune_batch(tx, cut, batch, actor))
    })
}

/// One transaction of [`prune`]: removes what `cut` prunes of the oldest `batch` records
/// and records the range; returns it with how many it removed, or `None` when nothing is
/// left to prune.
fn prune_batch(
    tx: &Connection,
    cut: &Cut,
    batch: usize,
    actor: &str,
) -> Result<Option<(AuditPruned, usize)>, StoreError> {
    // Only the oldest `batch` records are looked at: the work of this transaction is
    // bounded whatever the size of the log.
    let oldest = collect(
        tx,
        "SELECT seq, at_us FROM audit ORDER BY seq LIMIT ?1",
        [i64::try_from(batch).unwrap_or(i64::MAX)],
        |r| Ok((r.get::<_, i64>(0)?, time_at(r, 1)?)),
    )?;
    let count = cut.prefix(&oldest);
    let (Some(&(first, _)), Some(&(last, _))) = (oldest.first(), oldest[..count].last()) else {
        return Ok(None);
    };
    // The range's record first: a record takes the number after the highest, so were the
    // whole log removed before it, it would be numbered 1 again.
    let record = insert(
        tx,
        &AuditRecord {
            seq: 0,
            at: OffsetDateTime::now_utc(),
            actor: actor.to_owned(),
            operation: AUDIT_PRUNED.to_owned(),
            vm: None,
            outcome: AuditOutcome::Succeeded,
            detail: cut.detail(first, last, count),
        },
    )?;
    tx.prepare_cached("DELETE FROM audit WHERE seq BETWEEN ?1 AND ?2")
        .map_err(map_err)?
        .execute(params![first, last])
        .map_err(map_err)?;
    Ok(Some((
        AuditPruned {
            first,
            last,
            record,
        },
        count,
    )))
}
