//! What several hosts sharing one store need: who the hosts are, and which one runs a VM's
//! vTPM (a lease with an expiry and a fencing token).
//!
//! A lease's times are the store's clock, never a host's: every host compares against the
//! same clock, so skew between hosts cannot make two of them believe they hold one VM. A
//! holder keeps its own, earlier deadline on its monotonic clock (see `docs/fleet.md`).

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// A host that opened the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostRecord {
    pub guid: Uuid,
    pub name: String,
    /// When the host last said it was alive ([`crate::Store::touch_host`]), by the store's clock.
    #[serde(with = "crate::rfc3339")]
    pub last_seen: OffsetDateTime,
}

/// A host's hold on a VM's vTPM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VmLease {
    pub vm: Uuid,
    pub host: Uuid,
    /// Strictly greater than every token issued before it for any VM: a write fenced by an
    /// older token (a holder that lost the lease and does not know it yet) is refused.
    pub token: i64,
    /// By the store's clock.
    #[serde(with = "crate::rfc3339")]
    pub expires: OffsetDateTime,
}

/// A lease as a reader sees it: with the holder's name and whether it has expired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaseInfo {
    pub lease: VmLease,
    pub host_name: String,
    pub expired: bool,
}

/// The refusal of a lease `held` by `holder` (a host's name).
pub(crate) fn held_error(vm: Uuid, held: &VmLease, holder: &str) -> crate::StoreError {
    crate::StoreError::LeaseHeld(format!(
        "the vTPM of VM {vm} runs on host {holder} (lease {} until {}); stop it there first, \
         or wait for the lease to expire if that host is down",
        held.token,
        crate::rfc3339::format(held.expires)
    ))
}

pub(crate) fn lost_error(lease: &VmLease) -> crate::StoreError {
    crate::StoreError::LeaseLost(format!(
        "this host's lease {} on the vTPM of VM {} is gone (expired, or taken by another host)",
        lease.token, lease.vm
    ))
}
