//! Starting a VM's vTPM under its key protector: the start sequence of the "Last known good"
//! section of docs/specs/key-protector.md.
//!
//! The invariant kept: the stored sealed state key (DEK) is always sealed under the transport
//! key of the stored last known good. Every step that can fail runs before the one
//! transaction that moves current, last known good and the sealed DEK together, so a crash or
//! a failure anywhere leaves the previous consistent triple.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use uuid::Uuid;
use vmsec_kp::Protector;
use vmsec_store::{AuditOutcome, Role, Vm};
use vmsec_tpm::{Endpoint, RunningTpm, StateKey, Status, StopOutcome, VtpmPaths};

use crate::{Caller, Service, ServiceError};

mod lease;
mod location;
mod release;

pub use lease::{DEFAULT_LEASE_TTL, LeaseEnd, lease_ttl};
pub(crate) use location::MOVED_MARK;
pub use location::VtpmLocation;
use location::{
    absolute_state_dir, create_private_dir, lock, mark_manufactured, refuse_silent_manufacture,
};
use release::check_egress;
pub use release::{KeyRelease, Unlock};

/// How long each part of a start took.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StartTimings {
    pub unwrap_ms: f64,
    pub unseal_ms: f64,
    pub roll_ms: f64,
    pub manufacture_ms: Option<f64>,
    pub swtpm_start_ms: f64,
    pub commit_ms: f64,
    pub total_ms: f64,
}

/// What `tpm start` reports.
#[derive(Clone, Debug, Serialize)]
pub struct TpmStarted {
    pub vm: Uuid,
    pub pid: u32,
    pub endpoint: Endpoint,
    /// The tpm2-tss TCTI for tpm2-tools (`TPM2TOOLS_TCTI`).
    pub tcti: String,
    /// The QEMU arguments that attach the vTPM (unix sockets only: QEMU passes the data
    /// channel as a descriptor).
    pub qemu_args: Option<Vec<String>>,
    /// Whether the vTPM was manufactured by this start.
    pub manufactured: bool,
    pub state_dir: PathBuf,
    /// This host's hold on the vTPM, which must be kept alive while it runs when the store
    /// is shared ([`Service::keep_lease`]).
    pub lease: vmsec_store::VmLease,
    pub timings: StartTimings,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0
}

fn tpm_error(e: vmsec_tpm::TpmError) -> ServiceError {
    ServiceError::Vtpm(e)
}

/// Which transport key opens the VM's sealed vTPM state key (DEK) at a start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeySource {
    /// The current key protector's TK opens it: the current KP is the last known good, or
    /// derived from it by grant or revoke (which keep the TK), as on a host a VM moved to.
    Current,
    /// No state key yet: this is the first start, which makes one.
    FirstStart,
    /// The last known good's TK, which the current KP (set since) does not share.
    LastKnownGood,
}

/// The decision of a start's unseal step, from what the store holds. The invariant is that
/// a sealed state key is sealed under the last known good's TK, so a sealed key without a
/// last known good is a store that broke it.
fn key_source(
    opens_with_current: bool,
    has_sealed_key: bool,
    has_last_known_good: bool,
) -> Result<KeySource, ServiceError> {
    match (opens_with_current, has_sealed_key, has_last_known_good) {
        (_, true, false) => Err(ServiceError::Internal(
            "the store has a sealed vTPM state key but no last known good key protector".into(),
        )),
        (true, _, _) => Ok(KeySource::Current),
        (false, false, _) => Ok(KeySource::FirstStart),
        (false, true, true) => Ok(KeySource::LastKnownGood),
    }
}

/// What a start is asked to do.
pub struct TpmStart<'a> {
    pub location: VtpmLocation,
    /// Keep the state here instead of under the location (`--state`).
    pub state_dir: Option<&'a Path>,
    /// Where swtpm_setup's local CA lives (for manufacturing).
    pub ca_dir: &'a Path,
    pub endpoint: Endpoint,
    pub unlock: Unlock<'a>,
    /// Manufacture a new vTPM even though this VM had one whose state is not where it is
    /// looked for (`--reset`): its EK, keys and NV data are then gone for good.
    pub reset: bool,
}

/// The current key protector, unwrapped with this host's guardians or by the fabric.
struct Unwrapped {
    bytes: Vec<u8>,
    protector: Protector,
    identities: Vec<vmsec_kp::Guardian>,
    tk: vmsec_kp::TransportKey,
    /// In HGS mode, the roll the KPS already made: the egress protector and its TK.
    released: Option<(Vec<u8>, vmsec_kp::TransportKey)>,
}

/// The rolled key protector and the state key resealed under its new TK, to be committed.
struct Rolled {
    bytes: Vec<u8>,
    resealed: Vec<u8>,
}

impl Service {
    /// Starts `vm`'s vTPM, in named steps: check what the start needs, unwrap the current KP
    /// with this host's guardians, choose and use the key that unseals the state key (first
    /// start: make one), roll the KP and reseal, launch swtpm (manufacturing on first use),
    /// and only then commit current = last known good = the rolled KP with the resealed key,
    /// in one transaction.
    pub fn tpm_start(
        &self,
        who: &Caller,
        vm: &Vm,
        start: TpmStart<'_>,
    ) -> Result<TpmStarted, ServiceError> {
        let TpmStart {
            mut location,
            state_dir,
            ca_dir,
            endpoint,
            unlock,
            reset,
        } = start;
        self.audited(who, "TpmStart", Some(vm.id), AuditOutcome::Succeeded, || {
            who.require(Role::Operator, "starting a vTPM")?;
            endpoint.validate().map_err(|e| ServiceError::InvalidParameter(e.to_string()))?;
            let total = Instant::now();
            let sec = self.store.vm_security(vm.id)?;
            let current_bytes = startable(vm, &sec)?;
            if let Ok(note) = std::fs::read_to_string(location.dir.join(MOVED_MARK)) {
                return Err(ServiceError::InvalidState(format!(
                    "{} was moved to another host (`vm export --move` at {}); it cannot start here. \
                     `vmsec vm remove {} --force` drops it from this host",
                    vm.name,
                    note.trim(),
                    vm.name
                )));
            }
            create_private_dir(&location.dir)?;
            let _lock = lock(&location.dir)?;
            // Checked before `--state` is recorded, so a refused start leaves the choice as it was.
            let mut candidate = location.paths.clone();
            if let Some(dir) = state_dir {
                candidate.state_dir = absolute_state_dir(dir)?;
            }
            refuse_silent_manufacture(vm, &location.dir, &candidate, reset)?;
            if let Some(dir) = state_dir {
                location.choose_state_dir(dir)?;
            }
            let paths = location.paths.clone();
            if let Status::Running { pid, .. } = vmsec_tpm::status(&paths).map_err(tpm_error)? {
                return Err(ServiceError::InvalidState(format!(
                    "the vTPM of {} is already running (pid {pid}); stop it first with `vmsec tpm stop {}`",
                    vm.name, vm.name
                )));
            }
            // Not running here (checked above, under the lock): now make sure no other host
            // of a shared store runs it either, and hold it while this start works.
            let lease = lease::take(self, vm)?;
            let mut held = lease::HeldForStart {
                service: self,
                lease: lease.clone(),
                started: false,
            };
            let mut timings = StartTimings::default();
            let t = Instant::now();
            let current = self.unwrap_current(vm, current_bytes, unlock)?;
            timings.unwrap_ms = ms(t.elapsed());
            let t = Instant::now();
            let dek = self.unseal_state_key(who, vm, &sec, &current, unlock, &lease)?;
            timings.unseal_ms = ms(t.elapsed());
            let t = Instant::now();
            let rolled = roll(vm, &current, &dek)?;
            timings.roll_ms = ms(t.elapsed());
            let (running, manufactured) = launch(&paths, ca_dir, &endpoint, &dek, &mut timings)?;
            if manufactured {
                mark_manufactured(&location.dir)?;
            }
            let t = Instant::now();
            if let Err(e) = self.commit_start(who, vm, &current.bytes, &rolled, &lease) {
                // Nothing stored changed: leave no swtpm running on a key the store does not know.
                let _ = vmsec_tpm::stop(&paths);
                return Err(e);
            }
            timings.commit_ms = ms(t.elapsed());
            timings.total_ms = ms(total.elapsed());
            held.started = true;
            Ok(TpmStarted {
                lease,
                vm: vm.id,
                pid: running.pid,
                tcti: running.endpoint.tcti(),
                qemu_args: running.endpoint.qemu_args(),
                endpoint: running.endpoint,
                manufactured,
                state_dir: paths.state_dir.clone(),
                timings,
            })
        })
    }

    /// Step 1: the current key protector, unwrapped with the guardians this host holds, or
    /// rolled by the fabric's KPS.
    fn unwrap_current(
        &self,
        vm: &Vm,
        bytes: Vec<u8>,
        unlock: Unlock<'_>,
    ) -> Result<Unwrapped, ServiceError> {
        let protector =
            Protector::parse(&bytes).map_err(crate::error::KeyProtectorError::StoredMalformed)?;
        if let Unlock::Fabric(kps) = unlock {
            let release = kps.roll(&bytes)?;
            let egress = check_egress(&protector, &release)?;
            return Ok(Unwrapped {
                bytes,
                protector,
                identities: Vec::new(),
                tk: release.keys.ingress,
                released: Some((egress, release.keys.egress)),
            });
        }
        let identities = self.local_identities_for(&protector)?;
        let tk = protector.unwrap(&identities).map_err(|e| {
            ServiceError::InvalidState(format!(
                "the key protector could not be unwrapped on this host ({e}); {}; set a key protector \
                 granted to a guardian of this host, or RestoreLastKnownGoodKeyProtector (`vmsec vm kp restore {}`)",
                self.who_can_unwrap(&protector),
                vm.name
            ))
        })?;
        Ok(Unwrapped {
            bytes,
            protector,
            identities,
            tk,
            released: None,
        })
    }

    /// For a refused unwrap: the guardians the protector grants (by this host's name, else by
    /// thumbprint) and those whose keys this host holds.
    fn who_can_unwrap(&self, p: &Protector) -> String {
        let records = self.store.guardians().unwrap_or_default();
        let granted: Vec<String> = p
            .wrappings()
            .iter()
            .map(|w| {
                records
                    .iter()
                    .find(|r| r.signing_cert == w.signing_cert)
                    .map(|r| r.name.clone())
                    .or_else(|| {
                        vmsec_kp::CertInfo::from_der(&w.signing_cert, vmsec_kp::CertRole::Signing)
                            .ok()
                            .map(|c| format!("thumbprint {}", c.thumbprint_sha1))
                    })
                    .unwrap_or_else(|| format!("wrapping {}", w.id))
            })
            .collect();
        let held: Vec<&str> = records
            .iter()
            .filter(|r| r.sealed_private_keys.is_some())
            .map(|r| r.name.as_str())
            .collect();
        format!(
            "it grants {}; this host holds the keys of {}",
            granted.join(", "),
            if held.is_empty() {
                "no guardian".into()
            } else {
                held.join(", ")
            }
        )
    }

    /// Step 2: the state key, unsealed with the key [`key_source`] chooses; on a first start,
    /// a new one, stored sealed under the current KP as last known good *before* swtpm ever
    /// sees it, so that no crash can orphan the state it encrypts.
    fn unseal_state_key(
        &self,
        who: &Caller,
        vm: &Vm,
        sec: &vmsec_store::VmSecurity,
        current: &Unwrapped,
        unlock: Unlock<'_>,
        lease: &vmsec_store::VmLease,
    ) -> Result<StateKey, ServiceError> {
        // AES-GCM authenticates, so trying the current TK first refuses a wrong key, never
        // misuses it.
        let by_current = sec
            .sealed_state_key
            .as_ref()
            .and_then(|sealed| vmsec_tpm::unseal(current.tk.as_bytes(), vm.id, sealed).ok());
        let source = key_source(
            by_current.is_some(),
            sec.sealed_state_key.is_some(),
            sec.last_known_good.is_some(),
        )?;
        match (
            source,
            by_current,
            &sec.sealed_state_key,
            &sec.last_known_good,
        ) {
            (KeySource::Current, Some(dek), _, _) => Ok(dek),
            (KeySource::FirstStart, ..) => self.first_state_key(who, vm, current, lease),
            (KeySource::LastKnownGood, _, Some(sealed), Some(lkg)) => {
                let lkg_tk = if *lkg == current.bytes {
                    current.tk.clone()
                } else {
                    self.unwrap_last_known_good(lkg, unlock)?
                };
                vmsec_tpm::unseal(lkg_tk.as_bytes(), vm.id, sealed).map_err(|e| {
                    ServiceError::Internal(format!(
                        "the vTPM state key does not unseal with the last known good: {e}"
                    ))
                })
            }
            _ => Err(ServiceError::Internal(
                "the vTPM state key's source does not match the store".into(),
            )),
        }
    }

    fn unwrap_last_known_good(
        &self,
        lkg: &[u8],
        unlock: Unlock<'_>,
    ) -> Result<vmsec_kp::TransportKey, ServiceError> {
        if let Unlock::Fabric(kps) = unlock {
            // Only TK1 is wanted; the KPS keeps no state, so the unused roll costs nothing.
            let release = kps.roll(lkg).map_err(|e| {
                ServiceError::InvalidState(format!(
                    "the last known good key protector was not released by the fabric, so the vTPM \
                     state key cannot be unsealed ({e})"
                ))
            })?;
            return Ok(release.keys.ingress);
        }
        Protector::parse(lkg)
            .map_err(|e| e.to_string())
            .and_then(|p| {
                let identities = self.local_identities_for(&p).map_err(|e| e.to_string())?;
                p.unwrap(&identities).map_err(|e| e.to_string())
            })
            .map_err(|e| {
                ServiceError::InvalidState(format!(
                    "the last known good key protector cannot be unwrapped on this host, so the vTPM \
                     state key cannot be unsealed ({e})"
                ))
            })
    }

    fn first_state_key(
        &self,
        who: &Caller,
        vm: &Vm,
        current: &Unwrapped,
        lease: &vmsec_store::VmLease,
    ) -> Result<StateKey, ServiceError> {
        let dek = StateKey::generate().map_err(|e| ServiceError::Internal(e.to_string()))?;
        let sealed = vmsec_tpm::seal(current.tk.as_bytes(), vm.id, &dek)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let expected = &current.bytes;
        self.store
            .update_vm_security_fenced(vm.id, &who.name, lease, &mut |s| {
                if s.key_protector.as_ref() != Some(expected) || s.sealed_state_key.is_some() {
                    return Err(Box::new(changed_meanwhile()));
                }
                s.last_known_good = Some(expected.clone());
                s.sealed_state_key = Some(sealed.clone());
                Ok(())
            })?;
        Ok(dek)
    }

    /// Step 5: current = last known good = the rolled KP, sealed state key = the resealed
    /// one, if the KP is still the one the start unwrapped.
    fn commit_start(
        &self,
        who: &Caller,
        vm: &Vm,
        expected: &[u8],
        rolled: &Rolled,
        lease: &vmsec_store::VmLease,
    ) -> Result<(), ServiceError> {
        // Fenced: a host whose lease lapsed while it started cannot overwrite the next
        // holder's key protector and state key.
        self.store
            .update_vm_security_fenced(vm.id, &who.name, lease, &mut |s| {
                if s.key_protector.as_deref() != Some(expected) {
                    return Err(Box::new(changed_meanwhile()));
                }
                s.key_protector = Some(rolled.bytes.clone());
                s.last_known_good = Some(rolled.bytes.clone());
                s.sealed_state_key = Some(rolled.resealed.clone());
                Ok(())
            })
            .map(drop)
            .map_err(ServiceError::from)
    }

    /// Stops `vm`'s vTPM: graceful shutdown through the control channel, then reaped.
    pub fn tpm_stop(
        &self,
        who: &Caller,
        vm: &Vm,
        location: &VtpmLocation,
    ) -> Result<StopOutcome, ServiceError> {
        self.audited(who, "TpmStop", Some(vm.id), AuditOutcome::Succeeded, || {
            who.require(Role::Operator, "stopping a vTPM")?;
            if !location.dir.exists() {
                return Ok(StopOutcome::NotRunning);
            }
            let _lock = lock(&location.dir)?;
            let outcome = vmsec_tpm::stop(&location.paths).map_err(tpm_error)?;
            // Stopped here: another host may start it now, without waiting for the lease.
            self.store.release_vm_lease(vm.id, None)?;
            Ok(outcome)
        })
    }

    pub fn tpm_status(
        &self,
        who: &Caller,
        location: &VtpmLocation,
    ) -> Result<Status, ServiceError> {
        who.require(Role::Reader, "reading vTPM status")?;
        vmsec_tpm::status(&location.paths).map_err(tpm_error)
    }
}

/// What a start needs of the VM's record: a key protector, and the vTPM turned on.
fn startable(vm: &Vm, sec: &vmsec_store::VmSecurity) -> Result<Vec<u8>, ServiceError> {
    let Some(current) = sec.key_protector.clone() else {
        return Err(ServiceError::InvalidState(format!(
            "{} has no key protector; set one with `vmsec vm kp set` or `vmsec vm kp new-local`",
            vm.name
        )));
    };
    if !sec.settings.tpm_enabled {
        return Err(ServiceError::InvalidState(format!(
            "the vTPM of {} is off; turn it on with `vmsec vm security set {} --tpm on`",
            vm.name, vm.name
        )));
    }
    Ok(current)
}

fn changed_meanwhile() -> ServiceError {
    ServiceError::InvalidState(
        "the VM's key protector changed while its vTPM was starting; try again".into(),
    )
}

/// Step 3: the key protector rolled (a new TK wrapped for the owner and every guardian) and
/// the state key resealed under the new TK.
fn roll(vm: &Vm, current: &Unwrapped, dek: &StateKey) -> Result<Rolled, ServiceError> {
    if let Some((egress, tk2)) = &current.released {
        let resealed = vmsec_tpm::seal(tk2.as_bytes(), vm.id, dek)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        return Ok(Rolled {
            bytes: egress.clone(),
            resealed,
        });
    }
    let rolled = current
        .protector
        .roll(&current.identities)
        .map_err(crate::error::KeyProtectorError::Roll)?;
    let resealed = vmsec_tpm::seal(rolled.current.as_bytes(), vm.id, dek)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(Rolled {
        bytes: rolled.protector.into_bytes(),
        resealed,
    })
}

/// Step 4: swtpm started with the state key, the vTPM manufactured first if this is its
/// first start. Returns whether it was manufactured.
fn launch(
    paths: &VtpmPaths,
    ca_dir: &Path,
    endpoint: &Endpoint,
    dek: &StateKey,
    timings: &mut StartTimings,
) -> Result<(RunningTpm, bool), ServiceError> {
    let mut manufactured = false;
    if !paths
        .state_dir
        .join(vmsec_tpm::PERMANENT_STATE_FILE)
        .exists()
    {
        // Whatever a failed earlier attempt left there holds nothing committed.
        if paths.state_dir.exists() {
            std::fs::remove_dir_all(&paths.state_dir).map_err(|e| {
                ServiceError::Internal(format!("cannot clear {}: {e}", paths.state_dir.display()))
            })?;
        }
        create_private_dir(ca_dir)?;
        let m = vmsec_tpm::manufacture(paths, ca_dir, dek).map_err(tpm_error)?;
        timings.manufacture_ms = Some(ms(m.elapsed));
        manufactured = true;
    }
    let t = Instant::now();
    let running = vmsec_tpm::start(paths, endpoint, dek).map_err(tpm_error)?;
    timings.swtpm_start_ms = ms(t.elapsed());
    Ok((running, manufactured))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_key_that_opens_with_the_current_tk_is_used_as_it_is() {
        assert_eq!(key_source(true, true, true).unwrap(), KeySource::Current);
    }

    #[test]
    fn no_state_key_yet_is_a_first_start_with_or_without_a_last_known_good() {
        assert_eq!(
            key_source(false, false, false).unwrap(),
            KeySource::FirstStart
        );
        // A last known good restored or set by hand before any start.
        assert_eq!(
            key_source(false, false, true).unwrap(),
            KeySource::FirstStart
        );
    }

    #[test]
    fn a_state_key_the_current_tk_does_not_open_takes_the_last_known_goods() {
        assert_eq!(
            key_source(false, true, true).unwrap(),
            KeySource::LastKnownGood
        );
    }

    #[test]
    fn a_sealed_key_without_a_last_known_good_is_a_broken_store_whatever_opens_it() {
        for opens in [false, true] {
            assert!(matches!(
                key_source(opens, true, false),
                Err(ServiceError::Internal(m)) if m.contains("no last known good")
            ));
        }
    }
}
