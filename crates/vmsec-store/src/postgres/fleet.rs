//! Hosts and vTPM leases. Every lease comparison uses the server's `clock_timestamp()`: one
//! clock for every host.

use std::time::Duration;

use ::postgres::{GenericClient, Row};
use uuid::Uuid;

use super::get;
use super::pool::{Pool, Session};
use crate::*;

/// Records this host by name, with a new GUID the first time; returns its identity.
pub(super) fn register(pool: &Pool, name: &str) -> Result<HostIdentity, StoreError> {
    pool.write(|tx| {
        let row = tx.query_one(
            "INSERT INTO hosts (guid, name) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET last_seen = clock_timestamp() RETURNING guid",
            &[&Uuid::new_v4(), &name],
        )?;
        Ok(HostIdentity {
            name: name.to_owned(),
            guid: get(&row, 0)?,
        })
    })
}

pub(super) fn hosts(pool: &Pool) -> Result<Vec<HostRecord>, StoreError> {
    pool.with(|c| {
        c.query("SELECT guid, name, last_seen FROM hosts ORDER BY name", &[])?
            .iter()
            .map(|r| {
                Ok(HostRecord {
                    guid: get(r, 0)?,
                    name: get(r, 1)?,
                    last_seen: get(r, 2)?,
                })
            })
            .collect()
    })
}

pub(super) fn touch(pool: &Pool, me: Uuid) -> Result<(), StoreError> {
    pool.with(|c| {
        c.execute(
            "UPDATE hosts SET last_seen = clock_timestamp() WHERE guid = $1",
            &[&me],
        )
        .map(drop)
    })
}

fn ttl_us(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX)
}

fn lease_from_row(r: &Row) -> Result<VmLease, StoreError> {
    Ok(VmLease {
        vm: get(r, 0)?,
        host: get(r, 1)?,
        token: get(r, 2)?,
        expires: get(r, 3)?,
    })
}

pub(super) fn acquire(
    pool: &Pool,
    me: Uuid,
    vm: Uuid,
    ttl: Duration,
) -> Result<VmLease, StoreError> {
    // Twice at most: a lease released between the two statements is taken on the second go.
    for _ in 0..2 {
        // One statement: taken when free, expired, or already this host's; otherwise no row.
        let taken = pool.with(|c| {
            c.query_opt(
                "INSERT INTO vm_leases AS l (vm_guid, host_guid, token, expires) \
                 VALUES ($1, $2, nextval('lease_tokens'), clock_timestamp() + $3::bigint * interval '1 microsecond') \
                 ON CONFLICT (vm_guid) DO UPDATE SET host_guid = EXCLUDED.host_guid, \
                 token = EXCLUDED.token, expires = EXCLUDED.expires \
                 WHERE l.host_guid = EXCLUDED.host_guid OR l.expires <= clock_timestamp() \
                 RETURNING vm_guid, host_guid, token, expires",
                &[&vm, &me, &ttl_us(ttl)],
            )
        });
        match taken {
            Ok(Some(r)) => return lease_from_row(&r),
            Ok(None) => {
                if let Some(held) = info(pool, vm)? {
                    return Err(crate::fleet::held_error(vm, &held.lease, &held.host_name));
                }
            }
            // The VM's row is the lease's foreign key.
            Err(StoreError::Constraint(_)) => return Err(StoreError::NotFound(format!("VM {vm}"))),
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Busy(format!(
        "the lease of VM {vm} changed hands while it was taken"
    )))
}

/// Fails with [`StoreError::LeaseLost`] unless `lease` is still held as it was, unexpired.
/// `FOR SHARE` keeps a takeover waiting until the caller's transaction ends.
pub(super) fn check<C: GenericClient>(
    tx: &mut Session<'_, C>,
    lease: &VmLease,
) -> Result<(), StoreError> {
    let held = tx.query_opt(
        "SELECT 1 FROM vm_leases WHERE vm_guid = $1 AND host_guid = $2 AND token = $3 \
         AND expires > clock_timestamp() FOR SHARE",
        &[&lease.vm, &lease.host, &lease.token],
    )?;
    held.map(drop)
        .ok_or_else(|| crate::fleet::lost_error(lease))
}

pub(super) fn renew(pool: &Pool, lease: &VmLease, ttl: Duration) -> Result<VmLease, StoreError> {
    pool.with(|c| {
        c.query_opt(
            "UPDATE vm_leases SET expires = clock_timestamp() + $4::bigint * interval '1 microsecond' \
             WHERE vm_guid = $1 AND host_guid = $2 AND token = $3 AND expires > clock_timestamp() \
             RETURNING vm_guid, host_guid, token, expires",
            &[&lease.vm, &lease.host, &lease.token, &ttl_us(ttl)],
        )?
        .as_ref()
        .map(lease_from_row)
        .transpose()?
        .ok_or_else(|| crate::fleet::lost_error(lease))
    })
}

pub(super) fn release(
    pool: &Pool,
    me: Uuid,
    vm: Uuid,
    token: Option<i64>,
) -> Result<bool, StoreError> {
    pool.with(|c| {
        Ok(c.execute(
            "DELETE FROM vm_leases WHERE vm_guid = $1 AND host_guid = $2 \
             AND ($3::bigint IS NULL OR token = $3)",
            &[&vm, &me, &token],
        )? > 0)
    })
}

pub(super) fn info(pool: &Pool, vm: Uuid) -> Result<Option<LeaseInfo>, StoreError> {
    pool.with(|c| {
        c.query_opt(
            "SELECT l.vm_guid, l.host_guid, l.token, l.expires, h.name, \
             l.expires <= clock_timestamp() FROM vm_leases l JOIN hosts h ON h.guid = l.host_guid \
             WHERE l.vm_guid = $1",
            &[&vm],
        )?
        .map(|r| {
            Ok(LeaseInfo {
                lease: lease_from_row(&r)?,
                host_name: get(&r, 4)?,
                expired: get(&r, 5)?,
            })
        })
        .transpose()
    })
}
