//! The fabric's state (a Key Protection Service's): the hosts it attests, by host key or by
//! TPM endorsement key, the TPM baselines, and the fabric-wide settings.

use ::postgres::Row;

use super::get;
use super::pool::Pool;
use crate::*;

pub(super) fn add_attested_host(pool: &Pool, h: &AttestedHost) -> Result<(), StoreError> {
    pool.write(|tx| {
        let n = tx.execute(
            "INSERT INTO fabric_hosts (name, key_hash, host_key, added) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
            &[&h.name, &h.key_hash, &h.host_key, &h.added],
        )?;
        if n == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "a host named {:?} or with host key {}",
                h.name, h.key_hash
            )));
        }
        Ok(())
    })
}

fn attested_from_row(r: &Row) -> Result<AttestedHost, StoreError> {
    Ok(AttestedHost {
        name: get(r, 0)?,
        key_hash: get(r, 1)?,
        host_key: get(r, 2)?,
        added: get(r, 3)?,
    })
}

pub(super) fn attested_host_by_key(
    pool: &Pool,
    key_hash: &str,
) -> Result<Option<AttestedHost>, StoreError> {
    pool.with(|c| {
        c.query_opt(
            "SELECT name, key_hash, host_key, added FROM fabric_hosts WHERE key_hash = $1",
            &[&key_hash],
        )?
        .as_ref()
        .map(attested_from_row)
        .transpose()
    })
}

pub(super) fn attested_hosts(pool: &Pool) -> Result<Vec<AttestedHost>, StoreError> {
    pool.with(|c| {
        c.query(
            "SELECT name, key_hash, host_key, added FROM fabric_hosts ORDER BY name",
            &[],
        )?
        .iter()
        .map(attested_from_row)
        .collect()
    })
}

pub(super) fn remove_attested_host(pool: &Pool, name: &str) -> Result<bool, StoreError> {
    pool.write(|tx| Ok(tx.execute("DELETE FROM fabric_hosts WHERE name = $1", &[&name])? > 0))
}

pub(super) fn fabric_settings(pool: &Pool) -> Result<FabricSettings, StoreError> {
    pool.with(|c| {
        Ok(c.query_opt(
            "SELECT deny_before, primary_guardian FROM fabric_settings WHERE id = 1",
            &[],
        )?
        .map(|r| {
            Ok::<_, StoreError>(FabricSettings {
                deny_before: get(&r, 0)?,
                primary_guardian: get(&r, 1)?,
            })
        })
        .transpose()?
        .unwrap_or_default())
    })
}

pub(super) fn set_fabric_settings(pool: &Pool, s: &FabricSettings) -> Result<(), StoreError> {
    pool.write(|tx| {
        tx.execute(
            "INSERT INTO fabric_settings (id, deny_before, primary_guardian) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET deny_before = $1, primary_guardian = $2",
            &[&s.deny_before, &s.primary_guardian],
        )
        .map(drop)
    })
}

fn tpm_host_from_row(r: &Row) -> Result<TpmHostRecord, StoreError> {
    Ok(TpmHostRecord {
        name: get(r, 0)?,
        ek_hash: get(r, 1)?,
        ek_public: get(r, 2)?,
        ek_certificate: get(r, 3)?,
        added: get(r, 4)?,
    })
}

/// A TPM host's columns: its fabric host row (keyed by the EK) and its certificate.
macro_rules! tpm_host_select {
    () => {
        "SELECT h.name, h.key_hash, h.host_key, t.ek_cert, h.added \
         FROM fabric_tpm_hosts t JOIN fabric_hosts h ON h.name = t.name"
    };
}

pub(super) fn add_tpm_host(pool: &Pool, h: &TpmHostRecord) -> Result<(), StoreError> {
    pool.write(|tx| {
        let n = tx.execute(
            "INSERT INTO fabric_hosts (name, key_hash, host_key, added) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
            &[&h.name, &h.ek_hash, &h.ek_public, &h.added],
        )?;
        if n == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "a host named {:?} or with key {}",
                h.name, h.ek_hash
            )));
        }
        tx.execute(
            "INSERT INTO fabric_tpm_hosts (name, ek_cert) VALUES ($1, $2)",
            &[&h.name, &h.ek_certificate],
        )
        .map(drop)
    })
}

pub(super) fn tpm_host_by_ek(
    pool: &Pool,
    ek_hash: &str,
) -> Result<Option<TpmHostRecord>, StoreError> {
    pool.with(|c| {
        c.query_opt(
            concat!(tpm_host_select!(), " WHERE h.key_hash = $1"),
            &[&ek_hash],
        )?
        .as_ref()
        .map(tpm_host_from_row)
        .transpose()
    })
}

pub(super) fn tpm_hosts(pool: &Pool) -> Result<Vec<TpmHostRecord>, StoreError> {
    pool.with(|c| {
        c.query(concat!(tpm_host_select!(), " ORDER BY h.name"), &[])?
            .iter()
            .map(tpm_host_from_row)
            .collect()
    })
}

pub(super) fn add_tpm_baseline(pool: &Pool, b: &TpmBaselineRecord) -> Result<(), StoreError> {
    pool.write(|tx| {
        let n = tx.execute(
            "INSERT INTO fabric_tpm_baselines (name, document, added) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
            &[&b.name, &b.document, &b.added],
        )?;
        if n == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "a baseline named {:?}",
                b.name
            )));
        }
        Ok(())
    })
}

pub(super) fn tpm_baselines(pool: &Pool) -> Result<Vec<TpmBaselineRecord>, StoreError> {
    pool.with(|c| {
        c.query(
            "SELECT name, document, added FROM fabric_tpm_baselines ORDER BY name",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(TpmBaselineRecord {
                name: get(r, 0)?,
                document: get(r, 1)?,
                added: get(r, 2)?,
            })
        })
        .collect()
    })
}

pub(super) fn remove_tpm_baseline(pool: &Pool, name: &str) -> Result<bool, StoreError> {
    pool.write(|tx| {
        Ok(tx.execute("DELETE FROM fabric_tpm_baselines WHERE name = $1", &[&name])? > 0)
    })
}
