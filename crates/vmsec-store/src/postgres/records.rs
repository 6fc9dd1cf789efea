//! Users, guardians and jobs: records read and written whole, by their key.

use ::postgres::{GenericClient, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::get;
use super::pool::{Pool, Session};
use super::vms::limit;
use crate::*;

macro_rules! user_select {
    () => {
        "SELECT name, role, password_hash, created FROM users"
    };
}

fn user_from_row(r: &Row) -> Result<User, StoreError> {
    let role: String = get(r, 1)?;
    Ok(User {
        name: get(r, 0)?,
        role: role.parse().map_err(StoreError::Corrupt)?,
        password_hash: get(r, 2)?,
        created: get(r, 3)?,
    })
}

pub(super) fn add_user(pool: &Pool, u: &User) -> Result<(), StoreError> {
    pool.write(|tx| {
        let n = tx.execute(
            "INSERT INTO users (name, role, password_hash, created) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
            &[&u.name, &u.role.as_str(), &u.password_hash, &u.created],
        )?;
        if n == 0 {
            return Err(StoreError::AlreadyExists(format!("user {:?}", u.name)));
        }
        Ok(())
    })
}

pub(super) fn user(pool: &Pool, name: &str) -> Result<Option<User>, StoreError> {
    pool.with(|c| {
        c.query_opt(concat!(user_select!(), " WHERE name = $1"), &[&name])?
            .as_ref()
            .map(user_from_row)
            .transpose()
    })
}

pub(super) fn users(pool: &Pool) -> Result<Vec<User>, StoreError> {
    pool.with(|c| {
        c.query(concat!(user_select!(), " ORDER BY name"), &[])?
            .iter()
            .map(user_from_row)
            .collect()
    })
}

pub(super) fn remove_user(pool: &Pool, name: &str) -> Result<bool, StoreError> {
    pool.write(|tx| Ok(tx.execute("DELETE FROM users WHERE name = $1", &[&name])? > 0))
}

pub(super) fn update_user(pool: &Pool, u: &User) -> Result<bool, StoreError> {
    pool.write(|tx| {
        Ok(tx.execute(
            "UPDATE users SET role = $2, password_hash = $3 WHERE name = $1",
            &[&u.name, &u.role.as_str(), &u.password_hash],
        )? > 0)
    })
}

/// The guardian's shared columns and this host's sealed keys (`$1`, the host's GUID).
macro_rules! guardian_select {
    () => {
        "SELECT g.name, g.encryption_cert, g.signing_cert, g.encryption_cert_sig_alg, \
         g.encryption_cert_sig, g.metadata, k.sealed_private_keys, g.created FROM guardians g \
         LEFT JOIN guardian_keys k ON k.name = g.name AND k.host_guid = $1"
    };
}

fn guardian_from_row(r: &Row) -> Result<GuardianRecord, StoreError> {
    Ok(GuardianRecord {
        name: get(r, 0)?,
        encryption_cert: get(r, 1)?,
        signing_cert: get(r, 2)?,
        encryption_cert_signature_algorithm: get(r, 3)?,
        encryption_cert_signature: get(r, 4)?,
        metadata: get(r, 5)?,
        sealed_private_keys: get(r, 6)?,
        created: get(r, 7)?,
    })
}

pub(super) fn add_guardian(pool: &Pool, me: Uuid, g: &GuardianRecord) -> Result<(), StoreError> {
    pool.write(|tx| {
        let n = tx.execute(
            "INSERT INTO guardians (name, encryption_cert, signing_cert, encryption_cert_sig_alg, \
             encryption_cert_sig, metadata, created) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (name) DO NOTHING",
            &[
                &g.name,
                &g.encryption_cert,
                &g.signing_cert,
                &g.encryption_cert_signature_algorithm,
                &g.encryption_cert_signature,
                &g.metadata,
                &g.created,
            ],
        )?;
        if n == 0 {
            return Err(StoreError::AlreadyExists(format!("guardian {:?}", g.name)));
        }
        if let Some(keys) = &g.sealed_private_keys {
            tx.execute(
                "INSERT INTO guardian_keys (host_guid, name, sealed_private_keys) VALUES ($1, $2, $3)",
                &[&me, &g.name, keys],
            )?;
        }
        Ok(())
    })
}

pub(super) fn guardian(
    pool: &Pool,
    me: Uuid,
    name: &str,
) -> Result<Option<GuardianRecord>, StoreError> {
    pool.with(|c| {
        c.query_opt(
            concat!(guardian_select!(), " WHERE g.name = $2"),
            &[&me, &name],
        )?
        .as_ref()
        .map(guardian_from_row)
        .transpose()
    })
}

pub(super) fn guardians(pool: &Pool, me: Uuid) -> Result<Vec<GuardianRecord>, StoreError> {
    pool.with(|c| {
        c.query(concat!(guardian_select!(), " ORDER BY g.name"), &[&me])?
            .iter()
            .map(guardian_from_row)
            .collect()
    })
}

pub(super) fn remove_guardian(pool: &Pool, name: &str) -> Result<bool, StoreError> {
    pool.write(|tx| Ok(tx.execute("DELETE FROM guardians WHERE name = $1", &[&name])? > 0))
}

macro_rules! job_columns {
    () => {
        "instance_id, method, vm_guid, job_state, error_code, error_description, \
         percent_complete, submitted_by, time_submitted, start_time, finish_time, \
         time_before_removal_us, owner"
    };
}

fn job_from_row(r: &Row) -> Result<Job, StoreError> {
    let instance_id: String = get(r, 0)?;
    let bad = |what: &str| StoreError::Corrupt(format!("job {instance_id}: bad {what}"));
    Ok(Job {
        method: get(r, 1)?,
        vm: get(r, 2)?,
        state: JobState::from_code(i64::from(get::<i32>(r, 3)?)).ok_or_else(|| bad("JobState"))?,
        error_code: u32::try_from(get::<i64>(r, 4)?).map_err(|_| bad("ErrorCode"))?,
        error_description: get(r, 5)?,
        percent_complete: u16::try_from(get::<i32>(r, 6)?).map_err(|_| bad("PercentComplete"))?,
        submitted_by: get(r, 7)?,
        time_submitted: get(r, 8)?,
        start_time: get(r, 9)?,
        finish_time: get(r, 10)?,
        time_before_removal: time::Duration::microseconds(get(r, 11)?),
        owner: get::<String>(r, 12)?.parse().map_err(StoreError::Corrupt)?,
        instance_id,
    })
}

/// Binds `f` to the job's columns, in [`job_columns!`]'s order.
fn with_job_params<T>(
    job: &Job,
    f: impl FnOnce(&[&(dyn ::postgres::types::ToSql + Sync)]) -> T,
) -> T {
    let state = i32::from(job.state.code());
    let error_code = i64::from(job.error_code);
    let percent = i32::from(job.percent_complete);
    let removal = job.time_before_removal.whole_microseconds() as i64;
    let owner = job.owner.to_string();
    f(&[
        &job.instance_id,
        &job.method,
        &job.vm,
        &state,
        &error_code,
        &job.error_description,
        &percent,
        &job.submitted_by,
        &job.time_submitted,
        &job.start_time,
        &job.finish_time,
        &removal,
        &owner,
    ])
}

pub(super) fn insert_job(pool: &Pool, job: &Job) -> Result<(), StoreError> {
    pool.write(|tx| {
        with_job_params(job, |p| {
            tx.execute(
                concat!(
                    "INSERT INTO jobs (",
                    job_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                ),
                p,
            )
        })?;
        Ok(())
    })
}

/// Overwrites the job of that `InstanceID` inside the caller's transaction.
pub(super) fn write_job<C: GenericClient>(
    tx: &mut Session<'_, C>,
    job: &Job,
) -> Result<(), StoreError> {
    let n = with_job_params(job, |p| {
        tx.execute(
            "UPDATE jobs SET method = $2, vm_guid = $3, job_state = $4, error_code = $5, \
             error_description = $6, percent_complete = $7, submitted_by = $8, \
             time_submitted = $9, start_time = $10, finish_time = $11, \
             time_before_removal_us = $12, owner = $13 WHERE instance_id = $1",
            p,
        )
    })?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("job {}", job.instance_id)));
    }
    Ok(())
}

pub(super) fn job(pool: &Pool, id: &str) -> Result<Option<Job>, StoreError> {
    pool.with(|c| {
        c.query_opt(
            concat!(
                "SELECT ",
                job_columns!(),
                " FROM jobs WHERE instance_id = $1"
            ),
            &[&id],
        )?
        .as_ref()
        .map(job_from_row)
        .transpose()
    })
}

fn job_list(
    pool: &Pool,
    sql: &'static str,
    p: &[&(dyn ::postgres::types::ToSql + Sync)],
) -> Result<Vec<Job>, StoreError> {
    pool.with(|c| c.query(sql, p)?.iter().map(job_from_row).collect())
}

pub(super) fn jobs(pool: &Pool) -> Result<Vec<Job>, StoreError> {
    job_list(
        pool,
        concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs ORDER BY time_submitted, instance_id"
        ),
        &[],
    )
}

pub(super) fn jobs_page(
    pool: &Pool,
    after: Option<&str>,
    n: usize,
) -> Result<Vec<Job>, StoreError> {
    job_list(
        pool,
        concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE ($1::text IS NULL OR instance_id > $1) ORDER BY instance_id LIMIT $2"
        ),
        &[&after, &limit(n)],
    )
}

pub(super) fn unfinished_jobs(pool: &Pool) -> Result<Vec<Job>, StoreError> {
    job_list(
        pool,
        concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE job_state IN (2, 4) ORDER BY time_submitted, instance_id"
        ),
        &[],
    )
}

pub(super) fn remove_expired_jobs(pool: &Pool, now: OffsetDateTime) -> Result<usize, StoreError> {
    pool.write(|tx| {
        let n = tx.execute(
            "DELETE FROM jobs WHERE job_state IN (7, 10) AND finish_time IS NOT NULL \
             AND finish_time + time_before_removal_us * interval '1 microsecond' <= $1",
            &[&now],
        )?;
        Ok(n as usize)
    })
}
