//! `vm export` / `vm import`: a VM as a directory another host can register.
//!
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
use vmsec_service::vtpm::VtpmLocation;
use vmsec_service::{Caller, Service};
use vmsec_store::{SecuritySettings, Vm, VmSecurity};

use crate::CliError;

const FORMAT: &str = "vmsec-vm-export-v1";

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: String,
    id: Uuid,
    name: String,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    settings: SecuritySettings,
}

fn io(what: &str, p: &Path) -> impl FnOnce(std::io::Error) -> CliError {
    let m = format!("cannot {what} {}", p.display());
    move |e| CliError::new(format!("{m}: {e}"))
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(to)
        .map_err(io("create", to))?;
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

pub fn export(
    service: &Service,
    me: &Caller,
    vm: &Vm,
    data: &Path,
    out: &Path,
) -> Result<(), CliError> {
    let location = VtpmLocation::of(&data.join("vtpm"), vm.id);
    let sec = service.export_vm(me, vm, &location)?;
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(io("read", out))?
            .next()
            .is_some()
    {
        return Err(CliError::new(format!(
            "{} exists and is not empty",
            out.display()
        )));
    }
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(out)
        .map_err(io("create", out))?;
    let manifest = Manifest {
        format: FORMAT.into(),
        id: vm.id,
        name: vm.name.clone(),
        created: vm.created,
        settings: sec.settings,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| CliError::new(e.to_string()))?;
    std::fs::write(out.join("vm.json"), json).map_err(io("write", out))?;
    let write = |name: &str, bytes: &Option<Vec<u8>>| -> Result<(), CliError> {
        match bytes {
            Some(b) => crate::data_dir::write_private(&out.join(name), b),
            None => Ok(()),
        }
    };
    write("key-protector.xml", &sec.key_protector)?;
    write("last-known-good.xml", &sec.last_known_good)?;
    write("state-key.sealed", &sec.sealed_state_key)?;
    write("security-policy.bin", &sec.security_policy)?;
    if location.paths.state_dir.is_dir() {
        copy_dir(&location.paths.state_dir, &out.join("vtpm-state"))?;
    }
    Ok(())
}

pub fn import(service: &Service, me: &Caller, data: &Path, dir: &Path) -> Result<Vm, CliError> {
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(dir.join("vm.json")).map_err(io("read", &dir.join("vm.json")))?,
    )
    .map_err(|e| CliError::new(format!("{}: {e}", dir.join("vm.json").display())))?;
    if manifest.format != FORMAT {
        return Err(CliError::new(format!(
            "{} is a {:?} export; this vmsec reads {FORMAT}",
            dir.display(),
            manifest.format
        )));
    }
    let read = |name: &str| -> Result<Option<Vec<u8>>, CliError> {
        let p = dir.join(name);
        if p.exists() {
            std::fs::read(&p).map(Some).map_err(io("read", &p))
        } else {
            Ok(None)
        }
    };
    let security = VmSecurity {
        settings: manifest.settings,
        key_protector: read("key-protector.xml")?,
        key_protector_set: None,
        last_known_good: read("last-known-good.xml")?,
        security_policy: read("security-policy.bin")?,
        sealed_state_key: read("state-key.sealed")?,
    };
    let vm = Vm {
        id: manifest.id,
        name: manifest.name,
        created: manifest.created,
    };
    // The state goes in first: a registered VM whose state is missing would start a blank vTPM.
    let location = VtpmLocation::of(&data.join("vtpm"), vm.id);
    let state = dir.join("vtpm-state");
    if state.is_dir() {
        if location.paths.state_dir.exists() {
            return Err(CliError::new(format!(
                "{} already holds a vTPM state; remove it if it is stale",
                location.paths.state_dir.display()
            )));
        }
        copy_dir(&state, &location.paths.state_dir)?;
    }
    if let Err(e) = service.import_vm(me, &vm, &security) {
        if state.is_dir() {
            let _ = std::fs::remove_dir_all(&location.paths.state_dir);
        }
        return Err(e.into());
    }
    Ok(vm)
}
