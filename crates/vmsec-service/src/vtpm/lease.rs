//! Which host runs a VM's vTPM, when several share one store: a lease in the store, taken
//! at start, kept alive while swtpm runs, given up at stop (docs/fleet.md).
//!
//! The holder's own deadline is earlier than the store's expiry: it is counted on this
//! host's monotonic clock from *before* each renewal was sent, while the store counts from
//! when it received it, and it keeps a margin for clock rates. So a holder that cannot renew
//! stops its swtpm before the store lets another host take the VM.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use vmsec_store::{AuditOutcome, StoreError, Vm, VmLease};

use super::VtpmLocation;
use crate::{Caller, Service, ServiceError};

/// How long a lease lasts without renewal.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// The lease time: `VMSEC_LEASE_SECS` (how fast a crashed host's VMs may move, against how
/// long a database outage a running vTPM survives), else [`DEFAULT_LEASE_TTL`].
pub fn lease_ttl() -> Duration {
    std::env::var("VMSEC_LEASE_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_LEASE_TTL)
}

/// The holder's deadline after a renewal sent at `sent`: a sixth of the lease earlier than
/// the store's expiry.
fn deadline(sent: Instant, ttl: Duration) -> Instant {
    sent + ttl - ttl / 6
}

/// Why [`Service::keep_lease`] returned.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseEnd {
    /// The vTPM stopped; the lease was given up.
    VtpmStopped,
    /// The lease was lost (taken over, or expired); the vTPM was stopped.
    Lost(String),
    /// The store could not be reached before the deadline; the vTPM was stopped.
    Unreachable(String),
    /// This host started the vTPM again since (a newer lease, with a keeper of its own):
    /// this keeper leaves the vTPM to it.
    Superseded,
}

impl Service {
    /// Keeps `lease` alive while the vTPM at `location` runs, renewing it every third of
    /// `ttl`. Stops the vTPM if the lease is lost or cannot be renewed before this host's
    /// deadline; gives the lease up once the vTPM has stopped.
    pub fn keep_lease(
        &self,
        vm: &Vm,
        location: &VtpmLocation,
        lease: VmLease,
        ttl: Duration,
        acquired: Instant,
    ) -> LeaseEnd {
        let mut due = deadline(acquired, ttl);
        loop {
            std::thread::sleep((ttl / 3).min(due.saturating_duration_since(Instant::now())));
            if !matches!(
                vmsec_tpm::status(&location.paths),
                Ok(vmsec_tpm::Status::Running { .. })
            ) {
                let _ = self.store.release_vm_lease(vm.id, Some(lease.token));
                return LeaseEnd::VtpmStopped;
            }
            let sent = Instant::now();
            // On a thread of its own, so that a renewal stuck on a dead connection cannot keep
            // this loop past the deadline.
            let (tx, rx) = mpsc::channel();
            let store = self.store.clone();
            let l = lease.clone();
            std::thread::spawn(move || {
                let _ = tx.send(store.renew_vm_lease(&l, ttl));
            });
            let end = match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(Ok(_)) => {
                    due = deadline(sent, ttl);
                    continue;
                }
                Ok(Err(StoreError::LeaseLost(_))) if self.superseded(&lease) => {
                    return LeaseEnd::Superseded;
                }
                Ok(Err(StoreError::LeaseLost(m))) => LeaseEnd::Lost(m),
                Ok(Err(e)) if Instant::now() < due => {
                    tracing::warn!("cannot renew the vTPM lease of {} yet: {e}", vm.name);
                    continue;
                }
                Ok(Err(e)) => LeaseEnd::Unreachable(e.to_string()),
                Err(_) => LeaseEnd::Unreachable("the store did not answer in time".into()),
            };
            let _ = vmsec_tpm::stop(&location.paths);
            tracing::error!("stopped the vTPM of {}: {end:?}", vm.name);
            let detail = match &end {
                LeaseEnd::Lost(m) | LeaseEnd::Unreachable(m) => m.clone(),
                LeaseEnd::VtpmStopped | LeaseEnd::Superseded => String::new(),
            };
            self.audit(
                &Caller::local_admin().name,
                "TpmLeaseLost",
                Some(vm.id),
                AuditOutcome::Failed,
                &detail,
            );
            return end;
        }
    }

    /// Whether this host holds the VM's lease with a newer token than `lease`'s: a later
    /// start on this host, whose own keeper keeps it.
    fn superseded(&self, lease: &VmLease) -> bool {
        matches!(
            self.store.vm_lease(lease.vm),
            Ok(Some(now)) if now.lease.host == lease.host && now.lease.token > lease.token
        )
    }

    /// Whether the store is shared with other hosts (then a started vTPM's lease must be kept).
    pub fn store_is_shared(&self) -> bool {
        self.store.is_shared()
    }
}

/// Gives the lease up when a start fails after taking it, so the failure does not hold the
/// VM for the lease's whole time.
pub(super) struct HeldForStart<'a> {
    pub(super) service: &'a Service,
    pub(super) lease: VmLease,
    pub(super) started: bool,
}

impl Drop for HeldForStart<'_> {
    fn drop(&mut self) {
        if !self.started {
            let _ = self
                .service
                .store
                .release_vm_lease(self.lease.vm, Some(self.lease.token));
        }
    }
}

pub(super) fn take(service: &Service, vm: &Vm) -> Result<VmLease, ServiceError> {
    Ok(service.store.acquire_vm_lease(vm.id, lease_ttl())?)
}
