//! Jobs: the CIM_ConcreteJob records of asynchronous calls.

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row};
use time::OffsetDateTime;

use super::pool::Pool;
use super::values::{invalid, map_err, opt_guid_at, opt_time_at, time_at, to_us};
use crate::{Job, JobState, StoreError};

/// The columns [`job_from_row`] reads and [`job_params`] binds, in their order.
macro_rules! job_columns {
    () => {
        "instance_id, method, vm_guid, job_state, error_code, error_description, \
         percent_complete, submitted_by, time_submitted_us, start_time_us, finish_time_us, \
         time_before_removal_us, owner"
    };
}

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    let instance_id: String = r.get(0)?;
    let bad = |idx: usize, ty: Type, what: &str| {
        invalid(idx, ty, format!("job {instance_id}: bad {what}"))
    };
    Ok(Job {
        method: r.get(1)?,
        vm: opt_guid_at(r, 2)?,
        state: JobState::from_code(r.get(3)?).ok_or_else(|| bad(3, Type::Integer, "JobState"))?,
        error_code: u32::try_from(r.get::<_, i64>(4)?)
            .map_err(|_| bad(4, Type::Integer, "ErrorCode"))?,
        error_description: r.get(5)?,
        percent_complete: u16::try_from(r.get::<_, i64>(6)?)
            .map_err(|_| bad(6, Type::Integer, "PercentComplete"))?,
        submitted_by: r.get(7)?,
        time_submitted: time_at(r, 8)?,
        start_time: opt_time_at(r, 9)?,
        finish_time: opt_time_at(r, 10)?,
        time_before_removal: time::Duration::microseconds(r.get(11)?),
        owner: r
            .get::<_, String>(12)?
            .parse()
            .map_err(|m| invalid(12, Type::Text, m))?,
        instance_id,
    })
}

/// `?1`…`?13` of the job's columns, in [`job_columns!`]'s order.
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

pub(super) fn insert(pool: &Pool, job: &Job) -> Result<(), StoreError> {
    pool.write(|tx| {
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

/// Overwrites the job of that `InstanceID` inside the caller's transaction.
pub(super) fn write(tx: &Connection, job: &Job) -> Result<(), StoreError> {
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

pub(super) fn get(pool: &Pool, instance_id: &str) -> Result<Option<Job>, StoreError> {
    pool.with_conn(|c| {
        c.prepare_cached(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE instance_id = ?1"
        ))
        .map_err(map_err)?
        .query_row([instance_id], job_from_row)
        .optional()
        .map_err(map_err)
    })
}

pub(super) fn all(pool: &Pool) -> Result<Vec<Job>, StoreError> {
    pool.query_all(
        concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs ORDER BY time_submitted_us, instance_id"
        ),
        job_from_row,
    )
}

pub(super) fn page(pool: &Pool, after: Option<&str>, limit: usize) -> Result<Vec<Job>, StoreError> {
    pool.page(
        pages!(
            concat!("SELECT ", job_columns!(), " FROM jobs"),
            "instance_id"
        ),
        after,
        limit,
        job_from_row,
    )
}

pub(super) fn unfinished(pool: &Pool) -> Result<Vec<Job>, StoreError> {
    pool.query_all(
        concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE job_state IN (2, 4) ORDER BY time_submitted_us, instance_id"
        ),
        job_from_row,
    )
}

pub(super) fn remove_expired(pool: &Pool, now: OffsetDateTime) -> Result<usize, StoreError> {
    pool.write(|tx| {
        tx.prepare_cached(
            "DELETE FROM jobs WHERE job_state IN (7, 10) AND finish_time_us IS NOT NULL \
             AND finish_time_us + time_before_removal_us <= ?1",
        )
        .map_err(map_err)?
        .execute([to_us(now)])
        .map_err(map_err)
    })
}
