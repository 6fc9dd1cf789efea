//! VMs, their security records, and the history of their key protectors.

use ::postgres::{GenericClient, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::pool::{Pool, Session};
use super::{audit, get, records};
use crate::*;

macro_rules! vm_columns {
    () => {
        "guid, name, created"
    };
}

macro_rules! settings_columns {
    () => {
        "tpm_enabled, ksd_enabled, shielding_requested, data_protection_requested, \
         encrypt_state_and_vm_migration_traffic, virtualization_based_security_opt_out, \
         bind_to_host_tpm, app_container_launch_opt_out"
    };
}

macro_rules! security_columns {
    () => {
        concat!(
            settings_columns!(),
            ", key_protector, kp_set_by, kp_set, last_known_good, security_policy, \
             sealed_state_key"
        )
    };
}

macro_rules! vm_with_security_select {
    () => {
        concat!(
            "SELECT ",
            vm_columns!(),
            ", ",
            security_columns!(),
            " FROM vms"
        )
    };
}

macro_rules! summary_select {
    () => {
        concat!(
            "SELECT ",
            vm_columns!(),
            ", ",
            settings_columns!(),
            ", key_protector IS NOT NULL FROM vms"
        )
    };
}

fn vm_from_row(r: &Row) -> Result<Vm, StoreError> {
    Ok(Vm {
        id: get(r, 0)?,
        name: get(r, 1)?,
        created: get(r, 2)?,
    })
}

fn settings_from_row(r: &Row, at: usize) -> Result<SecuritySettings, StoreError> {
    let b = |i: usize| get::<bool>(r, at + i);
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

fn provenance(r: &Row, at: usize) -> Result<Option<Provenance>, StoreError> {
    let by: Option<String> = get(r, at)?;
    let when: Option<OffsetDateTime> = get(r, at + 1)?;
    Ok(by.zip(when).map(|(by, at)| Provenance { by, at }))
}

fn security_from_row(r: &Row, at: usize) -> Result<VmSecurity, StoreError> {
    Ok(VmSecurity {
        settings: settings_from_row(r, at)?,
        key_protector: get(r, at + 8)?,
        key_protector_set: provenance(r, at + 9)?,
        last_known_good: get(r, at + 11)?,
        security_policy: get(r, at + 12)?,
        sealed_state_key: get(r, at + 13)?,
    })
}

fn vm_with_security_from_row(r: &Row) -> Result<(Vm, VmSecurity), StoreError> {
    Ok((vm_from_row(r)?, security_from_row(r, 3)?))
}

fn summary_from_row(r: &Row) -> Result<VmSummary, StoreError> {
    Ok(VmSummary {
        vm: vm_from_row(r)?,
        settings: settings_from_row(r, 3)?,
        has_key_protector: get(r, 11)?,
    })
}

fn rows<T>(
    rows: Vec<Row>,
    f: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(f).collect()
}

/// A page's limit as PostgreSQL takes it.
pub(super) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn add(pool: &Pool, vm: &Vm, sec: &VmSecurity) -> Result<(), StoreError> {
    pool.write(|tx| {
        if let Some(r) = tx.query_opt(
            "SELECT guid FROM vms WHERE guid = $1 OR name = $2",
            &[&vm.id, &vm.name],
        )? {
            let guid: Uuid = get(&r, 0)?;
            return Err(StoreError::AlreadyExists(if guid == vm.id {
                format!("VM {}", vm.id)
            } else {
                format!("a VM named {:?}", vm.name)
            }));
        }
        tx.execute(
            "INSERT INTO vms (guid, name, created) VALUES ($1, $2, $3)",
            &[&vm.id, &vm.name, &vm.created],
        )?;
        write_security(tx, vm.id, sec)
    })
}

pub(super) fn get_vm(pool: &Pool, id: Uuid) -> Result<Option<Vm>, StoreError> {
    pool.with(|c| {
        c.query_opt(
            concat!("SELECT ", vm_columns!(), " FROM vms WHERE guid = $1"),
            &[&id],
        )?
        .as_ref()
        .map(vm_from_row)
        .transpose()
    })
}

pub(super) fn by_name(pool: &Pool, name: &str) -> Result<Option<Vm>, StoreError> {
    pool.with(|c| {
        c.query_opt(
            concat!("SELECT ", vm_columns!(), " FROM vms WHERE name = $1"),
            &[&name],
        )?
        .as_ref()
        .map(vm_from_row)
        .transpose()
    })
}

pub(super) fn all(pool: &Pool) -> Result<Vec<Vm>, StoreError> {
    pool.with(|c| {
        rows(
            c.query(
                concat!("SELECT ", vm_columns!(), " FROM vms ORDER BY name"),
                &[],
            )?,
            vm_from_row,
        )
    })
}

/// A page by name: `$1` the name after which it starts (`NULL`: from the first), `$2` its
/// length. One statement for both cases; the name index serves it either way.
macro_rules! page_by_name {
    ($select:expr) => {
        concat!(
            $select,
            " WHERE ($1::text IS NULL OR name > $1) ORDER BY name LIMIT $2"
        )
    };
}

pub(super) fn page(pool: &Pool, after: Option<&str>, n: usize) -> Result<Vec<Vm>, StoreError> {
    pool.with(|c| {
        rows(
            c.query(
                page_by_name!(concat!("SELECT ", vm_columns!(), " FROM vms")),
                &[&after, &limit(n)],
            )?,
            vm_from_row,
        )
    })
}

pub(super) fn remove(pool: &Pool, id: Uuid) -> Result<bool, StoreError> {
    pool.write(|tx| Ok(tx.execute("DELETE FROM vms WHERE guid = $1", &[&id])? > 0))
}

pub(super) fn security(pool: &Pool, id: Uuid) -> Result<VmSecurity, StoreError> {
    pool.with(|c| read_security(c, id, false))
}

pub(super) fn with_security(pool: &Pool, id: Uuid) -> Result<Option<(Vm, VmSecurity)>, StoreError> {
    pool.with(|c| {
        c.query_opt(
            concat!(vm_with_security_select!(), " WHERE guid = $1"),
            &[&id],
        )?
        .as_ref()
        .map(vm_with_security_from_row)
        .transpose()
    })
}

pub(super) fn page_with_security(
    pool: &Pool,
    after: Option<&str>,
    n: usize,
) -> Result<Vec<(Vm, VmSecurity)>, StoreError> {
    pool.with(|c| {
        rows(
            c.query(
                page_by_name!(vm_with_security_select!()),
                &[&after, &limit(n)],
            )?,
            vm_with_security_from_row,
        )
    })
}

pub(super) fn summary(pool: &Pool, id: Uuid) -> Result<Option<VmSummary>, StoreError> {
    pool.with(|c| {
        c.query_opt(concat!(summary_select!(), " WHERE guid = $1"), &[&id])?
            .as_ref()
            .map(summary_from_row)
            .transpose()
    })
}

pub(super) fn page_summaries(
    pool: &Pool,
    after: Option<&str>,
    n: usize,
) -> Result<Vec<VmSummary>, StoreError> {
    pool.with(|c| {
        rows(
            c.query(page_by_name!(summary_select!()), &[&after, &limit(n)])?,
            summary_from_row,
        )
    })
}

pub(super) fn key_protectors(pool: &Pool) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError> {
    pool.with(|c| {
        rows(
            c.query(
                "SELECT guid, key_protector FROM vms WHERE key_protector IS NOT NULL",
                &[],
            )?,
            |r| Ok((get(r, 0)?, get(r, 1)?)),
        )
    })
}

pub(super) fn kp_history(pool: &Pool, id: Uuid) -> Result<Vec<KpHistoryEntry>, StoreError> {
    pool.with(|c| {
        rows(
            c.query(
                "SELECT key_protector, set_by, set_at, replaced_by, replaced_at FROM kp_history \
                 WHERE vm_guid = $1 ORDER BY id DESC",
                &[&id],
            )?,
            |r| {
                Ok(KpHistoryEntry {
                    key_protector: get(r, 0)?,
                    set: provenance(r, 1)?,
                    replaced: Provenance {
                        by: get(r, 3)?,
                        at: get(r, 4)?,
                    },
                })
            },
        )
    })
}

pub(super) fn update_security(
    pool: &Pool,
    id: Uuid,
    actor: &str,
    change: &mut dyn FnMut(&mut VmSecurity) -> Result<(), Rejection>,
    finish: Option<JobDone<'_>>,
    fence: Option<&VmLease>,
) -> Result<VmSecurity, UpdateError> {
    let mut rejected = None;
    let out = pool.write(|tx| {
        if let Some(lease) = fence {
            super::fleet::check(tx, lease)?;
        }
        // FOR UPDATE: concurrent updates of this VM, from any host, wait here for this one.
        let before = read_security(tx, id, true)?;
        let mut after = before.clone();
        if let Err(e) = change(&mut after) {
            rejected = Some(e);
            return Err(StoreError::Unavailable("change rejected".into()));
        }
        rejected = None;
        let now = OffsetDateTime::now_utc();
        if after.key_protector != before.key_protector {
            if let Some(old) = &before.key_protector {
                push_history(tx, id, old, before.key_protector_set.as_ref(), actor, now)?;
            }
            after.key_protector_set = after.key_protector.as_ref().map(|_| Provenance {
                by: actor.to_owned(),
                at: now,
            });
        }
        write_security(tx, id, &after)?;
        if let Some(done) = finish {
            records::write_job(tx, done.job)?;
            // Last: the audit counter's row lock is held only until the commit just after.
            audit::insert(tx, done.audit)?;
        }
        Ok(after)
    });
    match (out, rejected) {
        (_, Some(e)) => Err(UpdateError::Rejected(e)),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(UpdateError::Store(e)),
    }
}

fn push_history<C: GenericClient>(
    tx: &mut Session<'_, C>,
    id: Uuid,
    old: &[u8],
    set: Option<&Provenance>,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO kp_history (vm_guid, key_protector, set_by, set_at, replaced_by, replaced_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &id,
            &old,
            &set.map(|p| &p.by),
            &set.map(|p| p.at),
            &actor,
            &now,
        ],
    )?;
    tx.execute(
        "DELETE FROM kp_history WHERE vm_guid = $1 AND id NOT IN \
         (SELECT id FROM kp_history WHERE vm_guid = $1 ORDER BY id DESC LIMIT $2)",
        &[&id, &(KP_HISTORY_LIMIT as i64)],
    )?;
    Ok(())
}

fn read_security<C: GenericClient>(
    c: &mut Session<'_, C>,
    id: Uuid,
    for_update: bool,
) -> Result<VmSecurity, StoreError> {
    let sql = if for_update {
        concat!(
            "SELECT ",
            security_columns!(),
            " FROM vms WHERE guid = $1 FOR UPDATE"
        )
    } else {
        concat!("SELECT ", security_columns!(), " FROM vms WHERE guid = $1")
    };
    c.query_opt(sql, &[&id])?
        .as_ref()
        .map(|r| security_from_row(r, 0))
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("VM {id}")))
}

fn write_security<C: GenericClient>(
    tx: &mut Session<'_, C>,
    id: Uuid,
    sec: &VmSecurity,
) -> Result<(), StoreError> {
    let s = &sec.settings;
    tx.execute(
        "UPDATE vms SET tpm_enabled = $2, ksd_enabled = $3, shielding_requested = $4, \
         data_protection_requested = $5, encrypt_state_and_vm_migration_traffic = $6, \
         virtualization_based_security_opt_out = $7, bind_to_host_tpm = $8, \
         app_container_launch_opt_out = $9, key_protector = $10, kp_set_by = $11, \
         kp_set = $12, last_known_good = $13, security_policy = $14, \
         sealed_state_key = $15 WHERE guid = $1",
        &[
            &id,
            &s.tpm_enabled,
            &s.ksd_enabled,
            &s.shielding_requested,
            &s.data_protection_requested,
            &s.encrypt_state_and_vm_migration_traffic,
            &s.virtualization_based_security_opt_out,
            &s.bind_to_host_tpm,
            &s.app_container_launch_opt_out,
            &sec.key_protector,
            &sec.key_protector_set.as_ref().map(|p| &p.by),
            &sec.key_protector_set.as_ref().map(|p| p.at),
            &sec.last_known_good,
            &sec.security_policy,
            &sec.sealed_state_key,
        ],
    )?;
    Ok(())
}
