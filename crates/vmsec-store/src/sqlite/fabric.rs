//! The fabric's hosts and settings (a Key Protection Service's store).

use rusqlite::{OptionalExtension, Row, params};

use super::pool::Pool;
use super::values::{map_err, opt_time_at, time_at, to_us};
use crate::{AttestedHost, FabricSettings, StoreError, TpmBaselineRecord, TpmHostRecord};

macro_rules! host_select {
    () => {
        "SELECT name, key_hash, host_key, added_us FROM fabric_hosts"
    };
}

fn host_from_row(r: &Row<'_>) -> rusqlite::Result<AttestedHost> {
    Ok(AttestedHost {
        name: r.get(0)?,
        key_hash: r.get(1)?,
        host_key: r.get(2)?,
        added: time_at(r, 3)?,
    })
}

pub(super) fn add_host(pool: &Pool, h: &AttestedHost) -> Result<(), StoreError> {
    pool.write(|tx| {
        let n = tx
            .execute(
                "INSERT INTO fabric_hosts (name, key_hash, host_key, added_us) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT DO NOTHING",
                params![h.name, h.key_hash, h.host_key, to_us(h.added)],
            )
            .map_err(map_err)?;
        if n == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "a host named {:?} or with host key {}",
                h.name, h.key_hash
            )));
        }
        Ok(())
    })
}

pub(super) fn host_by_key(pool: &Pool, key_hash: &str) -> Result<Option<AttestedHost>, StoreError> {
    pool.with_conn(|c| {
        c.prepare_cached(concat!(host_select!(), " WHERE key_hash = ?1"))
            .map_err(map_err)?
            .query_row([key_hash], host_from_row)
            .optional()
            .map_err(map_err)
    })
}

pub(super) fn hosts(pool: &Pool) -> Result<Vec<AttestedHost>, StoreError> {
    pool.query_all(concat!(host_select!(), " ORDER BY name"), host_from_row)
}

pub(super) fn remove_host(pool: &Pool, name: &str) -> Result<bool, StoreError> {
    pool.write(|tx| {
        tx.execute("DELETE FROM fabric_tpm_hosts WHERE name = ?1", [name])
            .map_err(map_err)?;
        tx.execute("DELETE FROM fabric_hosts WHERE name = ?1", [name])
            .map(|n| n > 0)
            .map_err(map_err)
    })
}

pub(super) fn settings(pool: &Pool) -> Result<FabricSettings, StoreError> {
    pool.with_conn(|c| {
        c.prepare_cached(
            "SELECT deny_before_us, primary_guardian FROM fabric_settings WHERE id = 1",
        )
        .map_err(map_err)?
        .query_row([], |r| {
            Ok(FabricSettings {
                deny_before: opt_time_at(r, 0)?,
                primary_guardian: r.get(1)?,
            })
        })
        .optional()
        .map(Option::unwrap_or_default)
        .map_err(map_err)
    })
}

pub(super) fn set_settings(pool: &Pool, s: &FabricSettings) -> Result<(), StoreError> {
    pool.write(|tx| {
        tx.execute(
            "INSERT INTO fabric_settings (id, deny_before_us, primary_guardian) VALUES (1, ?1, ?2) \
             ON CONFLICT (id) DO UPDATE SET deny_before_us = ?1, primary_guardian = ?2",
            params![s.deny_before.map(to_us), s.primary_guardian],
        )
        .map(drop)
        .map_err(map_err)
    })
}

macro_rules! tpm_host_select {
    () => {
        "SELECT h.name, h.key_hash, h.host_key, t.ek_cert, h.added_us \
         FROM fabric_tpm_hosts t JOIN fabric_hosts h ON h.name = t.name"
    };
}

fn tpm_host_from_row(r: &Row<'_>) -> rusqlite::Result<TpmHostRecord> {
    Ok(TpmHostRecord {
        name: r.get(0)?,
        ek_hash: r.get(1)?,
        ek_public: r.get(2)?,
        ek_certificate: r.get(3)?,
        added: time_at(r, 4)?,
    })
}

pub(super) fn add_tpm_host(pool: &Pool, h: &TpmHostRecord) -> Result<(), StoreError> {
    pool.write(|tx| {
        let n = tx
            .execute(
                "INSERT INTO fabric_hosts (name, key_hash, host_key, added_us) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT DO NOTHING",
                params![h.name, h.ek_hash, h.ek_public, to_us(h.added)],
            )
            .map_err(map_err)?;
        if n == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "a host named {:?} or with key {}",
                h.name, h.ek_hash
            )));
        }
        tx.execute(
            "INSERT INTO fabric_tpm_hosts (name, ek_cert) VALUES (?1, ?2)",
            params![h.name, h.ek_certificate],
        )
        .map(drop)
        .map_err(map_err)
    })
}

pub(super) fn tpm_host_by_ek(
    pool: &Pool,
    ek_hash: &str,
) -> Result<Option<TpmHostRecord>, StoreError> {
    pool.with_conn(|c| {
        c.prepare_cached(concat!(tpm_host_select!(), " WHERE h.key_hash = ?1"))
            .map_err(map_err)?
            .query_row([ek_hash], tpm_host_from_row)
            .optional()
            .map_err(map_err)
    })
}

pub(super) fn tpm_hosts(pool: &Pool) -> Result<Vec<TpmHostRecord>, StoreError> {
    pool.query_all(
        concat!(tpm_host_select!(), " ORDER BY h.name"),
        tpm_host_from_row,
    )
}

pub(super) fn add_baseline(pool: &Pool, b: &TpmBaselineRecord) -> Result<(), StoreError> {
    pool.write(|tx| {
        let n = tx
            .execute(
                "INSERT INTO fabric_tpm_baselines (name, document, added_us) VALUES (?1, ?2, ?3) \
                 ON CONFLICT DO NOTHING",
                params![b.name, b.document, to_us(b.added)],
            )
            .map_err(map_err)?;
        if n == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "a baseline named {:?}",
                b.name
            )));
        }
        Ok(())
    })
}

pub(super) fn baselines(pool: &Pool) -> Result<Vec<TpmBaselineRecord>, StoreError> {
    pool.query_all(
        "SELECT name, document, added_us FROM fabric_tpm_baselines ORDER BY name",
        |r| {
            Ok(TpmBaselineRecord {
                name: r.get(0)?,
                document: r.get(1)?,
                added: time_at(r, 2)?,
            })
        },
    )
}

pub(super) fn remove_baseline(pool: &Pool, name: &str) -> Result<bool, StoreError> {
    pool.write(|tx| {
        tx.execute("DELETE FROM fabric_tpm_baselines WHERE name = ?1", [name])
            .map(|n| n > 0)
            .map_err(map_err)
    })
}
