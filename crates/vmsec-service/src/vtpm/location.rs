//! Where a VM's vTPM lives on this host, and the host-local facts kept beside it: the state
//! directory chosen with `--state`, the lock that serializes starts and stops, and the marks
//! saying it was manufactured here or moved away.

use std::path::{Path, PathBuf};

use uuid::Uuid;
use vmsec_store::Vm;
use vmsec_tpm::VtpmPaths;

use crate::ServiceError;

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

    pub(super) fn choose_state_dir(&mut self, state_dir: &Path) -> Result<(), ServiceError> {
        let abs = absolute_state_dir(state_dir)?;
        std::fs::write(
            self.dir.join(STATE_DIR_FILE),
            format!("{}\n", abs.display()),
        )
        .map_err(|e| ServiceError::Internal(format!("cannot record the state directory: {e}")))?;
        self.paths.state_dir = abs;
        Ok(())
    }
}

pub(super) fn absolute_state_dir(state_dir: &Path) -> Result<PathBuf, ServiceError> {
    std::path::absolute(state_dir).map_err(|e| {
        ServiceError::InvalidParameter(format!("--state {}: {e}", state_dir.display()))
    })
}

/// Serializes starts and stops of one VM's vTPM across processes.
pub(super) fn lock(dir: &Path) -> Result<std::fs::File, ServiceError> {
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

pub(super) fn create_private_dir(dir: &Path) -> Result<(), ServiceError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| ServiceError::Internal(format!("cannot create {}: {e}", dir.display())))
}

/// A file in the VM's vTPM directory saying it was exported with `--move` (when, and where to).
pub(crate) const MOVED_MARK: &str = "moved";

/// A file in the VM's vTPM directory, written once its vTPM has been manufactured here.
const MANUFACTURED_MARK: &str = "manufactured";

pub(super) fn mark_manufactured(dir: &Path) -> Result<(), ServiceError> {
    std::fs::write(dir.join(MANUFACTURED_MARK), b"")
        .map_err(|e| ServiceError::Internal(format!("cannot mark the vTPM manufactured: {e}")))
}

/// A VM whose vTPM was manufactured on this host: if its state is not where this start looks
/// (another `--state`, a deleted file), starting would silently manufacture a new vTPM with a
/// new EK and none of the old NV data. That takes `--reset`. A first start that crashed
/// before manufacturing left no mark, so it is simply done again.
pub(super) fn refuse_silent_manufacture(
    vm: &Vm,
    vtpm_dir: &Path,
    paths: &VtpmPaths,
    reset: bool,
) -> Result<(), ServiceError> {
    let has_state = paths
        .state_dir
        .join(vmsec_tpm::PERMANENT_STATE_FILE)
        .exists();
    if vtpm_dir.join(MANUFACTURED_MARK).exists() && !has_state && !reset {
        return Err(ServiceError::InvalidState(format!(
            "the vTPM of {} was started before, but no vTPM state is at {}: starting would manufacture a new \
             vTPM without its keys and NV data. Give the state directory it used (`--state DIR`), or `--reset` \
             to manufacture a new one on purpose",
            vm.name,
            paths.state_dir.display()
        )));
    }
    Ok(())
}
