//! Starting a VM's vTPM under its key protector: the start sequence of the "Last known good"
//! section of shared/specs/key-protector.md.
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

/// Where a VM's vTPM lives: `<vtpm root>/<VM GUID>/` holds the pid file, the log and (unless
/// the operator chose another) the encrypted state.
#[derive(Clone, Debug)]
pub struct VtpmLocation {
    pub dir: PathBuf,
    pub paths: VtpmPaths,
}

/// A file in the VM's vTPM directory naming a state directory chosen with `--state`, so that
/// stop and status find it.
const STATE_DIR_FILE: &str = "state-dir";

impl VtpmLocation {
    /// The location of `vm`'s vTPM under `root`, honouring a state directory recorded by an
    /// earlier start with `--state`.
    pub fn of(root: &Path, vm: Uuid) -> VtpmLocation {
        let dir = root.join(vm.to_string());
        let mut paths = VtpmPaths::under(&dir);
        if let Ok(s) = std::fs::read_to_string(dir.join(STATE_DIR_FILE)) {
            paths.state_dir = PathBuf::from(s.trim_end_matches('\n'));
        }
        VtpmLocation { dir, paths }
    }

    fn choose_state_dir(&mut self, state_dir: &Path) -> Result<(), ServiceError> {
        let abs = std::path::absolute(state_dir).map_err(|e| {
            ServiceError::InvalidParameter(format!("--state {}: {e}", state_dir.display()))
        })?;
        std::fs::write(
            self.dir.join(STATE_DIR_FILE),
            format!("{}\n", abs.display()),
        )
        .map_err(|e| ServiceError::Internal(format!("cannot record the state directory: {e}")))?;
        self.paths.state_dir = abs;
        Ok(())
    }
}

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
    pub timings: StartTimings,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0
}

fn tpm_error(e: vmsec_tpm::TpmError) -> ServiceError {
    ServiceError::Vtpm(e.to_string())
}

/// Serializes starts and stops of one VM's vTPM across processes.
fn lock(dir: &Path) -> Result<std::fs::File, ServiceError> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .map_err(|e| ServiceError::Internal(format!("cannot open the vTPM lock: {e}")))?;
    f.lock()
        .map_err(|e| ServiceError::Internal(format!("cannot lock the vTPM: {e}")))?;
    Ok(f)
}

fn create_private_dir(dir: &Path) -> Result<(), ServiceError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| ServiceError::Internal(format!("cannot create {}: {e}", dir.display())))
}

impl Service {
    /// Starts `vm`'s vTPM: unwrap the current KP with this host's guardians, unseal the state
    /// key with the last known good's TK (first start: make one), roll the KP, reseal, start
    /// swtpm, and only then store current = last known good = the rolled KP with the resealed
    /// key, in one transaction.
    pub fn tpm_start(
        &self,
        who: &Caller,
        vm: &Vm,
        mut location: VtpmLocation,
        state_dir: Option<&Path>,
        ca_dir: &Path,
        endpoint: Endpoint,
    ) -> Result<TpmStarted, ServiceError> {
        self.audited(who, "TpmStart", Some(vm.id), AuditOutcome::Succeeded, |_| {
            who.require(Role::Operator, "starting a vTPM")?;
            endpoint.validate().map_err(|e| ServiceError::InvalidParameter(e.to_string()))?;
            let total = Instant::now();
            let sec = self.store.vm_security(vm.id)?;
            let Some(current_bytes) = sec.key_protector.clone() else {
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
            create_private_dir(&location.dir)?;
            let _lock = lock(&location.dir)?;
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
            let mut timings = StartTimings::default();

            // 1. Unwrap the current KP.
            let t = Instant::now();
            let current = Protector::parse(&current_bytes)
                .map_err(|e| ServiceError::InvalidKeyProtector(format!("the stored key protector is malformed: {e}")))?;
            let identities = self.local_identities_for(&current)?;
            let tk = current.unwrap(&identities).map_err(|e| {
                ServiceError::InvalidState(format!(
                    "the key protector could not be unwrapped on this host ({e}); set a key protector granted to a \
                     guardian of this host, or RestoreLastKnownGoodKeyProtector (`vmsec vm kp restore {}`)",
                    vm.name
                ))
            })?;
            timings.unwrap_ms = ms(t.elapsed());

            // 2. The state key, unsealed with the last known good's TK; made on first start.
            let t = Instant::now();
            // The key is sealed under the last known good's TK. A KP derived from the last known
            // good by grant or revoke keeps its TK, so the current TK is tried first: that is how
            // a host granted after the last start (a VM moved to it) unseals. AES-GCM
            // authenticates, so a wrong key is refused, never misused.
            let by_current = sec
                .sealed_state_key
                .as_ref()
                .and_then(|sealed| vmsec_tpm::unseal(tk.as_bytes(), vm.id, sealed).ok());
            let dek = match (by_current, &sec.sealed_state_key, &sec.last_known_good) {
                (_, Some(_), None) => {
                    return Err(ServiceError::Internal(
                        "the store has a sealed vTPM state key but no last known good key protector".into(),
                    ));
                }
                (Some(dek), _, _) => dek,
                (None, None, _) => {
                    // First start: store the new key sealed under the current KP as last known
                    // good *before* swtpm ever sees it, so no crash can orphan the state it
                    // encrypts.
                    let dek = StateKey::generate().map_err(|e| ServiceError::Internal(e.to_string()))?;
                    let sealed = vmsec_tpm::seal(tk.as_bytes(), vm.id, &dek)
                        .map_err(|e| ServiceError::Internal(e.to_string()))?;
                    let expected = current_bytes.clone();
                    self.store.update_vm_security(
                        vm.id,
                        &who.name,
                        &mut |s| {
                            if s.key_protector.as_deref() != Some(expected.as_slice()) || s.sealed_state_key.is_some() {
                                return Err(Box::new(ServiceError::InvalidState(
                                    "the VM's key protector changed while its vTPM was starting; try again".into(),
                                )));
                            }
                            s.last_known_good = Some(expected.clone());
                            s.sealed_state_key = Some(sealed.clone());
                            Ok(())
                        },
                        None,
                    )?;
                    dek
                }
                (None, Some(sealed), Some(lkg)) => {
                    let lkg_tk = if *lkg == current_bytes {
                        tk.clone()
                    } else {
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
                            })?
                    };
                    vmsec_tpm::unseal(lkg_tk.as_bytes(), vm.id, sealed).map_err(|e| {
                        ServiceError::Internal(format!("the vTPM state key does not unseal with the last known good: {e}"))
                    })?
                }
};
            timings.unseal_ms = ms(t.elapsed());

            // 3. Roll the KP and reseal the state key under the new TK.
            let t = Instant::now();
            let rolled = current
                .roll(&identities)
                .map_err(|e| ServiceError::InvalidKeyProtector(format!("rolling the key protector: {e}")))?;
            let resealed = vmsec_tpm::seal(rolled.current.as_bytes(), vm.id, &dek)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            let rolled_bytes = rolled.protector.into_bytes();
            timings.roll_ms = ms(t.elapsed());

            // 4. Manufacture on first use, then start swtpm with the state key.
            let mut manufactured = false;
            if !paths.state_dir.join(vmsec_tpm::PERMANENT_STATE_FILE).exists() {
                // Whatever a failed earlier attempt left there holds nothing committed.
                if paths.state_dir.exists() {
                    std::fs::remove_dir_all(&paths.state_dir)
                        .map_err(|e| ServiceError::Internal(format!("cannot clear {}: {e}", paths.state_dir.display())))?;
                }
                create_private_dir(ca_dir)?;
                let m = vmsec_tpm::manufacture(&paths, ca_dir, &dek).map_err(tpm_error)?;
                timings.manufacture_ms = Some(ms(m.elapsed));
                manufactured = true;
            }
            let t = Instant::now();
            let running: RunningTpm = vmsec_tpm::start(&paths, &endpoint, &dek).map_err(tpm_error)?;
            timings.swtpm_start_ms = ms(t.elapsed());

            // 5. Commit: current = last known good = rolled, sealed state key = resealed.
            let t = Instant::now();
            let expected = current_bytes.clone();
            let committed = self.store.update_vm_security(
                vm.id,
                &who.name,
                &mut |s| {
                    if s.key_protector.as_deref() != Some(expected.as_slice()) {
                        return Err(Box::new(ServiceError::InvalidState(
                            "the VM's key protector changed while its vTPM was starting; try again".into(),
                        )));
                    }
                    s.key_protector = Some(rolled_bytes.clone());
                    s.last_known_good = Some(rolled_bytes.clone());
                    s.sealed_state_key = Some(resealed.clone());
                    Ok(())
                },
                None,
            );
            if let Err(e) = committed {
                // Nothing stored changed: leave no swtpm running on a key the store does not know.
                let _ = vmsec_tpm::stop(&paths);
                return Err(e.into());
            }
            timings.commit_ms = ms(t.elapsed());
            timings.total_ms = ms(total.elapsed());
            Ok(TpmStarted {
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

    /// Stops `vm`'s vTPM: graceful shutdown through the control channel, then reaped.
    pub fn tpm_stop(
        &self,
        who: &Caller,
        vm: &Vm,
        location: &VtpmLocation,
    ) -> Result<StopOutcome, ServiceError> {
        self.audited(who, "TpmStop", Some(vm.id), AuditOutcome::Succeeded, |_| {
            who.require(Role::Operator, "stopping a vTPM")?;
            if !location.dir.exists() {
                return Ok(StopOutcome::NotRunning);
            }
            let _lock = lock(&location.dir)?;
            vmsec_tpm::stop(&location.paths).map_err(tpm_error)
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
