//! The audit log: appends in group commits, numbered in commit order, reads, and pruning.

use ::postgres::{GenericClient, Row};
use time::OffsetDateTime;

use super::get;
use super::pool::{Pool, Session};
use super::vms::limit;
use crate::group_commit::GroupCommit;
use crate::prune::Cut;
use crate::*;

/// Writes appended records in batches (see [`GroupCommit`]): one commit, and one turn at the
/// fleet-wide audit counter, for every caller that arrived while the last batch was written.
pub(super) struct AuditWriter {
    batches: GroupCommit<AuditRecord, i64, StoreError>,
}

impl AuditWriter {
    pub(super) fn new() -> AuditWriter {
        AuditWriter {
            batches: GroupCommit::new(),
        }
    }

    pub(super) fn append(&self, pool: &Pool, record: &AuditRecord) -> Result<i64, StoreError> {
        self.batches.submit(
            record.clone(),
            |batch| pool.with(|c| insert_batch(c, &batch)),
            || StoreError::Unavailable("the audit record's batch was abandoned".into()),
        )
    }
}

/// Appends a batch in one statement, so one round trip and one commit: the counter moves by
/// the batch's length and each record takes its place in the batch's order.
fn insert_batch<C: GenericClient>(
    c: &mut Session<'_, C>,
    batch: &[AuditRecord],
) -> Result<Vec<i64>, StoreError> {
    let n = batch.len() as i64;
    let at: Vec<OffsetDateTime> = batch.iter().map(|r| r.at).collect();
    let actor: Vec<&str> = batch.iter().map(|r| r.actor.as_str()).collect();
    let operation: Vec<&str> = batch.iter().map(|r| r.operation.as_str()).collect();
    let vm: Vec<Option<uuid::Uuid>> = batch.iter().map(|r| r.vm).collect();
    let outcome: Vec<&str> = batch.iter().map(|r| r.outcome.as_str()).collect();
    let detail: Vec<&str> = batch.iter().map(|r| r.detail.as_str()).collect();
    let mut seqs = c
        .query(
            "WITH counter AS (UPDATE audit_counter SET last = last + $1 WHERE id = 1 \
             RETURNING last - $1 AS base) \
             INSERT INTO audit (seq, at, actor, operation, vm_guid, outcome, detail) \
             SELECT counter.base + r.ord, r.at, r.actor, r.operation, r.vm, r.outcome, r.detail \
             FROM counter, unnest($2::timestamptz[], $3::text[], $4::text[], $5::uuid[], \
             $6::text[], $7::text[]) WITH ORDINALITY AS r (at, actor, operation, vm, outcome, detail, ord) \
             RETURNING seq",
            &[&n, &at, &actor, &operation, &vm, &outcome, &detail],
        )?
        .iter()
        .map(|r| get::<i64>(r, 0))
        .collect::<Result<Vec<_>, _>>()?;
    // Numbered in the batch's order; RETURNING's own order is not promised.
    seqs.sort_unstable();
    if seqs.len() != batch.len() {
        return Err(StoreError::Corrupt(
            "the audit counter's row is missing".into(),
        ));
    }
    Ok(seqs)
}

/// Appends one record inside the caller's transaction; returns its sequence number. The
/// counter's row stays locked until the transaction ends, so numbers are handed out in the
/// order transactions commit: call this last in a transaction.
pub(super) fn insert<C: GenericClient>(
    tx: &mut Session<'_, C>,
    record: &AuditRecord,
) -> Result<i64, StoreError> {
    let seq: i64 = get(
        &tx.query_one(
            "UPDATE audit_counter SET last = last + 1 WHERE id = 1 RETURNING last",
            &[],
        )?,
        0,
    )?;
    tx.execute(
        "INSERT INTO audit (seq, at, actor, operation, vm_guid, outcome, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &seq,
            &record.at,
            &record.actor,
            &record.operation,
            &record.vm,
            &record.outcome.as_str(),
            &record.detail,
        ],
    )?;
    Ok(seq)
}

fn audit_from_row(r: &Row) -> Result<AuditRecord, StoreError> {
    let outcome: String = get(r, 5)?;
    Ok(AuditRecord {
        seq: get(r, 0)?,
        at: get(r, 1)?,
        actor: get(r, 2)?,
        operation: get(r, 3)?,
        vm: get(r, 4)?,
        outcome: AuditOutcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("audit outcome {outcome:?}")))?,
        detail: get(r, 6)?,
    })
}

pub(super) fn read(pool: &Pool, after: i64, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
    pool.with(|c| {
        c.query(
            "SELECT seq, at, actor, operation, vm_guid, outcome, detail FROM audit \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&after, &limit(n)],
        )?
        .iter()
        .map(audit_from_row)
        .collect()
    })
}

pub(super) fn query(pool: &Pool, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
    let sql = if q.newest_first {
        "SELECT seq, at, actor, operation, vm_guid, outcome, detail FROM audit \
         WHERE seq > $1 AND seq < $2 AND ($3::timestamptz IS NULL OR at >= $3) \
         AND ($4::uuid IS NULL OR vm_guid = $4) AND ($5::text IS NULL OR actor = $5) \
         ORDER BY seq DESC LIMIT $6"
    } else {
        "SELECT seq, at, actor, operation, vm_guid, outcome, detail FROM audit \
         WHERE seq > $1 AND seq < $2 AND ($3::timestamptz IS NULL OR at >= $3) \
         AND ($4::uuid IS NULL OR vm_guid = $4) AND ($5::text IS NULL OR actor = $5) \
         ORDER BY seq LIMIT $6"
    };
    let before = q.before.unwrap_or(i64::MAX);
    pool.with(|c| {
        c.query(
            sql,
            &[
                &q.after,
                &before,
                &q.since,
                &q.vm,
                &q.actor,
                &limit(q.limit),
            ],
        )?
        .iter()
        .map(audit_from_row)
        .collect()
    })
}

pub(super) fn prune(
    pool: &Pool,
    retention: &AuditRetention,
    now: OffsetDateTime,
    batch: usize,
    actor: &str,
) -> Result<Vec<AuditPruned>, StoreError> {
    let nth_newest = match retention.max_records {
        None | Some(0) => None,
        Some(n) => pool.with(|c| {
            c.query_opt(
                "SELECT seq FROM audit ORDER BY seq DESC LIMIT 1 OFFSET $1",
                &[&i64::try_from(n - 1).unwrap_or(i64::MAX)],
            )?
            .map(|r| get::<i64>(&r, 0))
            .transpose()
        })?,
    };
    let cut = Cut::new(retention, nth_newest, now);
    cut.run(batch, |cut, batch| {
        pool.write(|tx| prune_batch(tx, cut, batch, actor))
    })
}

fn prune_batch<C: GenericClient>(
    tx: &mut Session<'_, C>,
    cut: &Cut,
    batch: usize,
    actor: &str,
) -> Result<Option<(AuditPruned, usize)>, StoreError> {
    let oldest = tx
        .query(
            "SELECT seq, at FROM audit ORDER BY seq LIMIT $1",
            &[&limit(batch)],
        )?
        .iter()
        .map(|r| Ok((get::<i64>(r, 0)?, get::<OffsetDateTime>(r, 1)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    let count = cut.prefix(&oldest);
    let (Some(&(first, _)), Some(&(last, _))) = (oldest.first(), oldest[..count].last()) else {
        return Ok(None);
    };
    tx.execute(
        "DELETE FROM audit WHERE seq BETWEEN $1 AND $2",
        &[&first, &last],
    )?;
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
    Ok(Some((
        AuditPruned {
            first,
            last,
            record,
        },
        count,
    )))
}
