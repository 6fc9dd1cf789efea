//! Moving a VM to another host (`vm export` / `vm import`) and taking its vTPM directory along
//! when it is removed: the rules live here, the CLI only names the directories.
//!
//! An export directory:
//! ```text
//! DIR/vm.json                  format, GUID, name, created, security settings
//! DIR/key-protector.xml        the current key protector
//! DIR/last-known-good.xml      the last known good (when there is one)
//! DIR/state-key.sealed         the vTPM state key, sealed under the last known good's TK (0600)
//! DIR/security-policy.bin      the policy blob (when there is one)
//! DIR/vtpm-state/              swtpm's state files, still encrypted with the state key
//! ```
//! Nothing in it is readable without a guardian that the key protector grants.

use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;
use vmsec_store::{AuditOutcome, Role, SecuritySettings, Vm, VmSecurity};
use vmsec_tpm::Status;

use crate::vtpm::VtpmLocation;
use crate::{Caller, Service, ServiceError};

const FORMAT: &str = "vmsec-vm-export-v1";
const MANIFEST: &str = "vm.json";
const KEY_PROTECTOR: &str = "key-protector.xml";
const LAST_KNOWN_GOOD: &str = "last-known-good.xml";
const SEALED_STATE_KEY: &str = "state-key.sealed";
const SECURITY_POLICY: &str = "security-policy.bin";
const VTPM_STATE: &str = "vtpm-state";

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: String,
    id: Uuid,
    name: String,
    #[serde(with = "vmsec_store::rfc3339")]
    created: OffsetDateTime,
    settings: SecuritySettings,
}

/// An I/O failure on a path the caller named (or that an export holds): the caller can fix
/// it, so it is an invalid parameter, with the path and the system's words.
fn io(what: &str, p: &Path) -> impl FnOnce(std::io::Error) -> ServiceError {
    let m = format!("cannot {what} {}", p.display());
    move |e| ServiceError::InvalidParameter(format!("{m}: {e}"))
}

fn create_private_dir(dir: &Path) -> Result<(), ServiceError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("create", dir))
}

/// Writes a new file with mode 0600 from the start: the sealed state key and the key
/// protectors are never readable by others, not even briefly.
fn write_private(p: &Path, contents: &[u8]) -> Result<(), ServiceError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)
        .and_then(|mut f| f.write_all(contents).and_then(|()| f.sync_all()))
        .map_err(io("write", p))
}

/// Copies the regular files of `from` (swtpm's state is flat) into a new private `to`.
fn copy_dir(from: &Path, to: &Path) -> Result<(), ServiceError> {
    create_private_dir(to)?;
    for entry in std::fs::read_dir(from).map_err(io("read", from))? {
        let entry = entry.map_err(io("read", from))?;
        let kind = entry.file_type().map_err(io("read", &entry.path()))?;
        if kind.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))
                .map_err(io("copy", &entry.path()))?;
        }
    }
    Ok(())
}

fn refuse_running(status: Status, vm: &Vm, action: &str) -> Result<(), ServiceError> {
    match status {
        Status::Running { pid, .. } => Err(ServiceError::InvalidState(format!(
            "the vTPM of {} is running (pid {pid}); {action}",
            vm.name
        ))),
        Status::Stopped { .. } => Ok(()),
    }
}

impl Service {
    /// Writes `vm` to the new (or empty) directory `out`: settings, key protectors, sealed
    /// state key and the still-encrypted vTPM state under `vtpm_root`. Refused while the vTPM
    /// runs: its state on disk must be the state the sealed key belongs to.
    pub fn export_vm(
        &self,
        who: &Caller,
        vm: &Vm,
        vtpm_root: &Path,
        out: &Path,
    ) -> Result<(), ServiceError> {
        self.audited(
            who,
            "ExportVm",
            Some(vm.id),
            AuditOutcome::Succeeded,
            || {
                who.require(Role::Operator, "exporting a VM")?;
                let location = VtpmLocation::of(vtpm_root, vm.id);
                refuse_running(
                    self.tpm_status(who, &location)?,
                    vm,
                    "stop it before exporting",
                )?;
                let sec = self.store.vm_security(vm.id)?;
                if out.exists()
                    && std::fs::read_dir(out)
                        .map_err(io("read", out))?
                        .next()
                        .is_some()
                {
                    return Err(ServiceError::InvalidParameter(format!(
                        "{} exists and is not empty",
                        out.display()
                    )));
                }
                create_private_dir(out)?;
                let manifest = Manifest {
                    format: FORMAT.into(),
                    id: vm.id,
                    name: vm.name.clone(),
                    created: vm.created,
                    settings: sec.settings,
                };
                let json = serde_json::to_vec_pretty(&manifest)
                    .map_err(|e| ServiceError::Internal(e.to_string()))?;
                std::fs::write(out.join(MANIFEST), json).map_err(io("write", out))?;
                for (name, bytes) in [
                    (KEY_PROTECTOR, &sec.key_protector),
                    (LAST_KNOWN_GOOD, &sec.last_known_good),
                    (SEALED_STATE_KEY, &sec.sealed_state_key),
                    (SECURITY_POLICY, &sec.security_policy),
                ] {
                    if let Some(b) = bytes {
                        write_private(&out.join(name), b)?;
                    }
                }
                if location.paths.state_dir.is_dir() {
                    copy_dir(&location.paths.state_dir, &out.join(VTPM_STATE))?;
                }
                Ok(())
            },
        )
    }

    /// `vm export --move`: the VM, just exported to `to`, now belongs to the host that imports
    /// it, so this host must not start its vTPM again (two hosts rolling one key protector
    /// from forked vTPM states). Recorded in the VM's vTPM directory, which `vm remove` takes
    /// away with it.
    pub fn mark_moved(
        &self,
        who: &Caller,
        vm: &Vm,
        vtpm_root: &Path,
        to: &Path,
    ) -> Result<(), ServiceError> {
        self.audited(who, "MoveVm", Some(vm.id), AuditOutcome::Succeeded, || {
            who.require(Role::Operator, "moving a VM")?;
            let location = VtpmLocation::of(vtpm_root, vm.id);
            create_private_dir(&location.dir)?;
            let to = std::path::absolute(to).unwrap_or_else(|_| to.to_owned());
            let note = format!(
                "{} {}\n",
                time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                to.display()
            );
            write_private(&location.dir.join(crate::vtpm::MOVED_MARK), note.as_bytes())
        })
    }

    /// Registers the VM exported to `dir` on another host, with its key protector, last known
    /// good and sealed state key in one transaction, and its vTPM state under `vtpm_root`. The
    /// key protectors must verify and the settings keep the rules; whether this host can start
    /// the VM depends on its guardians being granted in the key protector.
    pub fn import_vm(
        &self,
        who: &Caller,
        vtpm_root: &Path,
        dir: &Path,
    ) -> Result<Vm, ServiceError> {
        // The operation names the VM, known only once the manifest is read: an export that
        // cannot be read is audited as a bare ImportVm.
        let (vm, security) = match read_export(dir) {
            Ok(read) => read,
            Err(e) => {
                return self.audited(who, "ImportVm", None, AuditOutcome::Succeeded, || {
                    who.require(Role::Operator, "importing a VM")?;
                    Err(e)
                });
            }
        };
        let operation = format!("ImportVm {}", vm.name);
        self.audited(
            who,
            &operation,
            Some(vm.id),
            AuditOutcome::Succeeded,
            || {
                who.require(Role::Operator, "importing a VM")?;
                check_import(&security)?;
                // The state goes in first: a registered VM whose state is missing would start a
                // blank vTPM.
                let location = VtpmLocation::of(vtpm_root, vm.id);
                let state = dir.join(VTPM_STATE);
                if state.is_dir() {
                    if location.paths.state_dir.exists() {
                        return Err(ServiceError::InvalidState(format!(
                            "{} already holds a vTPM state; remove it if it is stale",
                            location.paths.state_dir.display()
                        )));
                    }
                    copy_dir(&state, &location.paths.state_dir)?;
                }
                let added = self.store.add_vm_with_security(&vm, &security);
                if added.is_err() && state.is_dir() {
                    let _ = std::fs::remove_dir_all(&location.paths.state_dir);
                }
                added?;
                Ok(vm.clone())
            },
        )
    }

    /// Removes `vm` ([`Service::remove_vm`]) and then its vTPM directory under `vtpm_root`,
    /// which would otherwise hold an orphaned state. A running vTPM must be stopped first.
    pub fn remove_vm_and_vtpm(
        &self,
        who: &Caller,
        vm: &Vm,
        force: bool,
        vtpm_root: &Path,
    ) -> Result<(), ServiceError> {
        let location = VtpmLocation::of(vtpm_root, vm.id);
        refuse_running(
            self.tpm_status(who, &location)?,
            vm,
            &format!("stop it first with `vmsec tpm stop {}`", vm.name),
        )?;
        self.remove_vm(who, vm, force)?;
        if location.dir.exists() {
            std::fs::remove_dir_all(&location.dir).map_err(|e| {
                ServiceError::Internal(format!(
                    "removed the VM, but not {}: {e}",
                    location.dir.display()
                ))
            })?;
        }
        Ok(())
    }
}

/// The rules an imported record keeps, checked before anything is written: key protectors
/// that verify, settings that agree, and a sealed state key only with the last known good
/// whose transport key it is sealed under.
fn check_import(security: &VmSecurity) -> Result<(), ServiceError> {
    for kp in [&security.key_protector, &security.last_known_good]
        .into_iter()
        .flatten()
    {
        crate::key_protector::check(kp)?;
    }
    crate::setting_data::check_rules(
        &Default::default(),
        &security.settings,
        security.key_protector.is_some(),
    )?;
    if security.sealed_state_key.is_some() && security.last_known_good.is_none() {
        return Err(ServiceError::InvalidParameter(
            "the export has a sealed vTPM state key but no last known good key protector".into(),
        ));
    }
    Ok(())
}

/// The VM and its security record as an export directory holds them.
fn read_export(dir: &Path) -> Result<(Vm, VmSecurity), ServiceError> {
    let path = dir.join(MANIFEST);
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(&path).map_err(io("read", &path))?)
            .map_err(|e| ServiceError::InvalidParameter(format!("{}: {e}", path.display())))?;
    if manifest.format != FORMAT {
        return Err(ServiceError::InvalidParameter(format!(
            "{} is a {:?} export; this vmsec reads {FORMAT}",
            dir.display(),
            manifest.format
        )));
    }
    let read = |name: &str| -> Result<Option<Vec<u8>>, ServiceError> {
        let p = dir.join(name);
        if p.exists() {
            std::fs::read(&p).map(Some).map_err(io("read", &p))
        } else {
            Ok(None)
        }
    };
    let security = VmSecurity {
        settings: manifest.settings,
        key_protector: read(KEY_PROTECTOR)?,
        key_protector_set: None,
        last_known_good: read(LAST_KNOWN_GOOD)?,
        security_policy: read(SECURITY_POLICY)?,
        sealed_state_key: read(SEALED_STATE_KEY)?,
    };
    let vm = Vm {
        id: manifest.id,
        name: manifest.name,
        created: manifest.created,
    };
    Ok((vm, security))
}
