//! This host's identity, recorded when the store is first opened.

use rusqlite::{Connection, TransactionBehavior, params};
use uuid::Uuid;

use super::pool::Pool;
use super::values::{guid_at, map_err};
use crate::{HostIdentity, StoreError};

/// Records the host as `host_name` with a new GUID, unless the file already has one.
pub(super) fn record_once(conn: &mut Connection, host_name: &str) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let exists: bool = tx
        .query_row("SELECT EXISTS (SELECT 1 FROM host)", [], |r| r.get(0))
        .map_err(map_err)?;
    if !exists {
        tx.execute(
            "INSERT INTO host (id, name, guid) VALUES (1, ?1, ?2)",
            params![host_name, Uuid::new_v4().to_string()],
        )
        .map_err(map_err)?;
    }
    tx.commit().map_err(map_err)
}

fn host_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HostIdentity> {
    Ok(HostIdentity {
        name: r.get(0)?,
        guid: guid_at(r, 1)?,
    })
}

pub(super) fn read(pool: &Pool) -> Result<HostIdentity, StoreError> {
    pool.with_conn(|c| {
        c.query_row(
            "SELECT name, guid FROM host WHERE id = 1",
            [],
            host_from_row,
        )
        .map_err(map_err)
    })
}
