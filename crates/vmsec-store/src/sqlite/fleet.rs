//! Hosts and vTPM leases on one file: the one host, and leases by the local clock.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::pool::Pool;
use super::values::{guid_at, map_err, time_at, to_us};
use crate::*;

fn ttl_us(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX)
}

pub(super) fn hosts(pool: &Pool) -> Result<Vec<HostRecord>, StoreError> {
    pool.query_all(
        "SELECT guid, name, last_seen_us FROM host ORDER BY name",
        |r| {
            Ok(HostRecord {
                guid: guid_at(r, 0)?,
                name: r.get(1)?,
                last_seen: time_at(r, 2)?,
            })
        },
    )
}

pub(super) fn touch_host(pool: &Pool) -> Result<(), StoreError> {
    pool.write(|tx| {
        tx.execute(
            "UPDATE host SET last_seen_us = ?1",
            [to_us(OffsetDateTime::now_utc())],
        )
        .map(drop)
        .map_err(map_err)
    })
}

fn lease_from_row(r: &Row<'_>) -> rusqlite::Result<VmLease> {
    Ok(VmLease {
        vm: guid_at(r, 0)?,
        host: guid_at(r, 1)?,
        token: r.get(2)?,
        expires: time_at(r, 3)?,
    })
}

fn read_lease(c: &Connection, vm: Uuid) -> Result<Option<VmLease>, StoreError> {
    c.prepare_cached(
        "SELECT vm_guid, host_guid, token, expires_us FROM vm_leases WHERE vm_guid = ?1",
    )
    .map_err(map_err)?
    .query_row([vm.to_string()], lease_from_row)
    .optional()
    .map_err(map_err)
}

pub(super) fn acquire(
    pool: &Pool,
    me: &HostIdentity,
    vm: Uuid,
    ttl: Duration,
) -> Result<VmLease, StoreError> {
    pool.write(|tx| {
        let now = OffsetDateTime::now_utc();
        let exists: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM vms WHERE guid = ?1)",
                [vm.to_string()],
                |r| r.get(0),
            )
            .map_err(map_err)?;
        if !exists {
            return Err(StoreError::NotFound(format!("VM {vm}")));
        }
        if let Some(held) = read_lease(tx, vm)?
            && held.host != me.guid
            && held.expires > now
        {
            return Err(crate::fleet::held_error(vm, &held, "another host"));
        }
        let token: i64 = tx
            .query_row(
                "UPDATE lease_tokens SET last = last + 1 WHERE id = 1 RETURNING last",
                [],
                |r| r.get(0),
            )
            .map_err(map_err)?;
        let expires_us = to_us(now).saturating_add(ttl_us(ttl));
        tx.execute(
            "INSERT INTO vm_leases (vm_guid, host_guid, token, expires_us) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (vm_guid) DO UPDATE SET host_guid = ?2, token = ?3, expires_us = ?4",
            params![vm.to_string(), me.guid.to_string(), token, expires_us],
        )
        .map_err(map_err)?;
        read_lease(tx, vm)?.ok_or_else(|| StoreError::Corrupt("lease not written".into()))
    })
}

/// Fails with [`StoreError::LeaseLost`] unless `lease` is still held as it was, unexpired.
pub(super) fn check(tx: &Connection, lease: &VmLease) -> Result<(), StoreError> {
    match read_lease(tx, lease.vm)? {
        Some(l)
            if l.host == lease.host
                && l.token == lease.token
                && l.expires > OffsetDateTime::now_utc() =>
        {
            Ok(())
        }
        _ => Err(crate::fleet::lost_error(lease)),
    }
}

pub(super) fn renew(pool: &Pool, lease: &VmLease, ttl: Duration) -> Result<VmLease, StoreError> {
    pool.write(|tx| {
        check(tx, lease)?;
        let expires_us = to_us(OffsetDateTime::now_utc()).saturating_add(ttl_us(ttl));
        tx.execute(
            "UPDATE vm_leases SET expires_us = ?2 WHERE vm_guid = ?1",
            params![lease.vm.to_string(), expires_us],
        )
        .map_err(map_err)?;
        read_lease(tx, lease.vm)?.ok_or_else(|| crate::fleet::lost_error(lease))
    })
}

pub(super) fn release(
    pool: &Pool,
    me: &HostIdentity,
    vm: Uuid,
    token: Option<i64>,
) -> Result<bool, StoreError> {
    pool.write(|tx| {
        tx.execute(
            "DELETE FROM vm_leases WHERE vm_guid = ?1 AND host_guid = ?2 \
             AND (?3 IS NULL OR token = ?3)",
            params![vm.to_string(), me.guid.to_string(), token],
        )
        .map(|n| n > 0)
        .map_err(map_err)
    })
}

pub(super) fn info(
    pool: &Pool,
    me: &HostIdentity,
    vm: Uuid,
) -> Result<Option<LeaseInfo>, StoreError> {
    let lease = pool.with_conn(|c| read_lease(c, vm))?;
    Ok(lease.map(|lease| LeaseInfo {
        expired: lease.expires <= OffsetDateTime::now_utc(),
        host_name: if lease.host == me.guid {
            me.name.clone()
        } else {
            lease.host.to_string()
        },
        lease,
    }))
}
