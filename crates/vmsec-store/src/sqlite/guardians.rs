//! Guardians: the certificates key protectors are wrapped to.

use rusqlite::{OptionalExtension, Row, params};

use super::pool::Pool;
use super::values::{map_err, time_at, to_us};
use crate::{GuardianRecord, StoreError};

/// The columns [`guardian_from_row`] reads, in its order.
macro_rules! guardian_columns {
    () => {
        "name, encryption_cert, signing_cert, encryption_cert_sig_alg, encryption_cert_sig, \
         metadata, sealed_private_keys, created_us"
    };
}

fn guardian_from_row(r: &Row<'_>) -> rusqlite::Result<GuardianRecord> {
    Ok(GuardianRecord {
        name: r.get(0)?,
        encryption_cert: r.get(1)?,
        signing_cert: r.get(2)?,
        encryption_cert_signature_algorithm: r.get(3)?,
        encryption_cert_signature: r.get(4)?,
        metadata: r.get(5)?,
        sealed_private_keys: r.get(6)?,
        created: time_at(r, 7)?,
    })
}

pub(super) fn add(pool: &Pool, g: &GuardianRecord) -> Result<(), StoreError> {
    pool.write(|tx| {
        let n = tx
            .prepare_cached(concat!(
                "INSERT INTO guardians (",
                guardian_columns!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (name) DO NOTHING"
            ))
            .map_err(map_err)?
            .execute(params![
                g.name,
                g.encryption_cert,
                g.signing_cert,
                g.encryption_cert_signature_algorithm,
                g.encryption_cert_signature,
                g.metadata,
                g.sealed_private_keys,
                to_us(g.created)
            ])
            .map_err(map_err)?;
        if n == 0 {
            return Err(StoreError::AlreadyExists(format!("guardian {:?}", g.name)));
        }
        Ok(())
    })
}

pub(super) fn get(pool: &Pool, name: &str) -> Result<Option<GuardianRecord>, StoreError> {
    pool.with_conn(|c| {
        c.prepare_cached(concat!(
            "SELECT ",
            guardian_columns!(),
            " FROM guardians WHERE name = ?1"
        ))
        .map_err(map_err)?
        .query_row([name], guardian_from_row)
        .optional()
        .map_err(map_err)
    })
}

pub(super) fn all(pool: &Pool) -> Result<Vec<GuardianRecord>, StoreError> {
    pool.query_all(
        concat!(
            "SELECT ",
            guardian_columns!(),
            " FROM guardians ORDER BY name"
        ),
        guardian_from_row,
    )
}

pub(super) fn remove(pool: &Pool, name: &str) -> Result<bool, StoreError> {
    pool.write(|tx| {
        Ok(tx
            .execute("DELETE FROM guardians WHERE name = ?1", [name])
            .map_err(map_err)?
            > 0)
    })
}
