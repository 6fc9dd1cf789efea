//! VMs, their security records, and the history of their key protectors.

use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::pool::{Pool, collect};
use super::values::{guid_at, map_err, provenance_at, time_at, to_us};
use super::{audit, jobs};
use crate::*;

/// The VM's own columns, in [`vm_from_row`]'s order.
macro_rules! vm_columns {
    () => {
        "guid, name, created_us"
    };
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

/// What [`vm_with_security_from_row`] reads.
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

/// What a [`VmSummary`] is read from: the VM's columns, its settings, and whether it has a
/// key protector. `typeof()` is answered from the record header; `IS NOT NULL` would read the
/// whole blob from its overflow pages.
macro_rules! summary_select {
    () => {
        concat!(
            "SELECT ",
            vm_columns!(),
            ", ",
            settings_columns!(),
            ", typeof(key_protector) <> 'null' FROM vms"
        )
    };
}

/// Reads `vm_columns!()` from column 0.
fn vm_from_row(r: &Row<'_>) -> rusqlite::Result<Vm> {
    Ok(Vm {
        id: guid_at(r, 0)?,
        name: r.get(1)?,
        created: time_at(r, 2)?,
    })
}

/// Reads `settings_columns!()` starting at column `at`.
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

/// Reads `security_columns!()` starting at column `at`.
fn security_from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<VmSecurity> {
    Ok(VmSecurity {
        settings: settings_from_row(r, at)?,
        key_protector: r.get(at + 8)?,
        key_protector_set: provenance_at(r, at + 9)?,
        last_known_good: r.get(at + 11)?,
        security_policy: r.get(at + 12)?,
        sealed_state_key: r.get(at + 13)?,
    })
}

fn vm_with_security_from_row(r: &Row<'_>) -> rusqlite::Result<(Vm, VmSecurity)> {
    Ok((vm_from_row(r)?, security_from_row(r, 3)?))
}

fn summary_from_row(r: &Row<'_>) -> rusqlite::Result<VmSummary> {
    Ok(VmSummary {
        vm: vm_from_row(r)?,
        settings: settings_from_row(r, 3)?,
        has_key_protector: r.get(11)?,
    })
}

fn kp_history_from_row(r: &Row<'_>) -> rusqlite::Result<KpHistoryEntry> {
    Ok(KpHistoryEntry {
        key_protector: r.get(0)?,
        set: provenance_at(r, 1)?,
        replaced: Provenance {
            by: r.get(3)?,
            at: time_at(r, 4)?,
        },
    })
}

pub(super) fn add(pool: &Pool, vm: &Vm, sec: &VmSecurity) -> Result<(), StoreError> {
    pool.write(|tx| {
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

pub(super) fn get(pool: &Pool, id: Uuid) -> Result<Option<Vm>, StoreError> {
    pool.with_conn(|c| {
        c.prepare_cached(concat!(
            "SELECT ",
            vm_columns!(),
            " FROM vms WHERE guid = ?1"
        ))
        .map_err(map_err)?
        .query_row([id.to_string()], vm_from_row)
        .optional()
        .map_err(map_err)
    })
}

pub(super) fn by_name(pool: &Pool, name: &str) -> Result<Option<Vm>, StoreError> {
    pool.with_conn(|c| {
        c.prepare_cached(concat!(
            "SELECT ",
            vm_columns!(),
            " FROM vms WHERE name = ?1"
        ))
        .map_err(map_err)?
        .query_row([name], vm_from_row)
        .optional()
        .map_err(map_err)
    })
}

pub(super) fn all(pool: &Pool) -> Result<Vec<Vm>, StoreError> {
    pool.query_all(
        concat!("SELECT ", vm_columns!(), " FROM vms ORDER BY name"),
        vm_from_row,
    )
}

pub(super) fn page(pool: &Pool, after: Option<&str>, limit: usize) -> Result<Vec<Vm>, StoreError> {
    pool.page(
        pages!(concat!("SELECT ", vm_columns!(), " FROM vms"), "name"),
        after,
        limit,
        vm_from_row,
    )
}

pub(super) fn remove(pool: &Pool, id: Uuid) -> Result<bool, StoreError> {
    pool.write(|tx| {
        Ok(tx
            .execute("DELETE FROM vms WHERE guid = ?1", [id.to_string()])
            .map_err(map_err)?
            > 0)
    })
}

pub(super) fn security(pool: &Pool, id: Uuid) -> Result<VmSecurity, StoreError> {
    pool.with_conn(|c| read_security(c, id))
}

pub(super) fn with_security(pool: &Pool, id: Uuid) -> Result<Option<(Vm, VmSecurity)>, StoreError> {
    pool.with_conn(|c| {
        // One statement, so one implicit read transaction: each costs WAL read locks.
        c.prepare_cached(concat!(vm_with_security_select!(), " WHERE guid = ?1"))
            .map_err(map_err)?
            .query_row([id.to_string()], vm_with_security_from_row)
            .optional()
            .map_err(map_err)
    })
}

pub(super) fn page_with_security(
    pool: &Pool,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<(Vm, VmSecurity)>, StoreError> {
    pool.page(
        pages!(vm_with_security_select!(), "name"),
        after,
        limit,
        vm_with_security_from_row,
    )
}

pub(super) fn summary(pool: &Pool, id: Uuid) -> Result<Option<VmSummary>, StoreError> {
    pool.with_conn(|c| summary_on(c, id))
}

/// [`summary`] on a connection (or in a transaction) the caller holds.
pub(super) fn summary_on(
    c: &rusqlite::Connection,
    id: Uuid,
) -> Result<Option<VmSummary>, StoreError> {
    c.prepare_cached(concat!(summary_select!(), " WHERE guid = ?1"))
        .map_err(map_err)?
        .query_row([id.to_string()], summary_from_row)
        .optional()
        .map_err(map_err)
}

pub(super) fn page_summaries(
    pool: &Pool,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<VmSummary>, StoreError> {
    pool.page(
        pages!(summary_select!(), "name"),
        after,
        limit,
        summary_from_row,
    )
}

pub(super) fn key_protectors(pool: &Pool) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError> {
    pool.query_all(
        "SELECT guid, key_protector FROM vms WHERE key_protector IS NOT NULL",
        |r| Ok((guid_at(r, 0)?, r.get(1)?)),
    )
}

pub(super) fn kp_history(pool: &Pool, id: Uuid) -> Result<Vec<KpHistoryEntry>, StoreError> {
    pool.with_conn(|c| {
        collect(
            c,
            "SELECT key_protector, set_by, set_us, replaced_by, replaced_us FROM kp_history \
             WHERE vm_guid = ?1 ORDER BY id DESC",
            [id.to_string()],
            kp_history_from_row,
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
                push_history(tx, id, old, before.key_protector_set.as_ref(), actor, now)?;
            }
            after.key_protector_set = after.key_protector.as_ref().map(|_| Provenance {
                by: actor.to_owned(),
                at: now,
            });
        }
        write_security(tx, id, &after)?;
        if let Some(done) = finish {
            jobs::write(tx, done.job)?;
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

/// Records `old`, set as `set` says, as replaced by `actor` at `now`, and drops history
/// beyond [`KP_HISTORY_LIMIT`], inside the caller's transaction.
fn push_history(
    tx: &Connection,
    id: Uuid,
    old: &[u8],
    set: Option<&Provenance>,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO kp_history (vm_guid, key_protector, set_by, set_us, replaced_by, replaced_us) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .map_err(map_err)?
    .execute(params![
        id.to_string(),
        old,
        set.map(|p| &p.by),
        set.map(|p| to_us(p.at)),
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
    Ok(())
}

fn read_security(c: &Connection, id: Uuid) -> Result<VmSecurity, StoreError> {
    security_on(c, id)?.ok_or_else(|| StoreError::NotFound(format!("VM {id}")))
}

/// The VM's security record on a connection (or in a transaction) the caller holds, or
/// `None` for a VM that does not exist.
pub(super) fn security_on(c: &Connection, id: Uuid) -> Result<Option<VmSecurity>, StoreError> {
    c.prepare_cached(concat!(
        "SELECT ",
        security_columns!(),
        " FROM vms WHERE guid = ?1"
    ))
    .map_err(map_err)?
    .query_row([id.to_string()], |r| security_from_row(r, 0))
    .optional()
    .map_err(map_err)
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
