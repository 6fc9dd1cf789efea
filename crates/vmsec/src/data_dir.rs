//! The data directory: where the store and the host's secrets live.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vmsec_service::Service;
use vmsec_store::postgres::PgStore;
use vmsec_store::sqlite::SqliteStore;

use crate::CliError;

#[derive(Clone)]
pub struct DataDir {
    pub path: PathBuf,
    /// The PostgreSQL URL of a shared store, or `None` for the SQLite file in `path`.
    pub store: Option<String>,
}

/// What a data directory's store is opened as: the one store, with the fabric's part (a
/// KPS's) beside the host's.
pub trait AnyStore: vmsec_store::Store + vmsec_store::FabricStore {}
impl<T: vmsec_store::Store + vmsec_store::FabricStore> AnyStore for T {}

impl DataDir {
    /// Opens the data directory, creating it (mode 0700) when it does not exist.
    pub fn open_or_create(path: &Path) -> Result<DataDir, CliError> {
        // Absolute, so that every path vmsec prints (`--json` included) is.
        let path = &std::path::absolute(path)
            .map_err(|e| CliError::new(format!("data directory {}: {e}", path.display())))?;
        if !path.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(|e| {
                    CliError::new(format!(
                        "cannot create data directory {}: {e}",
                        path.display()
                    ))
                })?;
        } else if !path.is_dir() {
            return Err(CliError::new(format!(
                "data directory {} exists and is not a directory",
                path.display()
            )));
        } else {
            make_private(path, "the data directory")?;
        }
        Ok(DataDir {
            path: path.to_owned(),
            store: None,
        })
    }

    /// Where the VMs' vTPMs live: `vtpm/<VM GUID>/`.
    pub fn vtpm_root(&self) -> PathBuf {
        self.path.join("vtpm")
    }

    pub fn store_path(&self) -> PathBuf {
        self.path.join("vmsec.db")
    }

    pub fn open_service(&self) -> Result<Service, CliError> {
        let store = self.open_store()?;
        self.open_service_on(store)
    }

    /// The store: the shared PostgreSQL database when a URL is configured, else the SQLite
    /// file of this directory, made owner-only.
    pub fn open_store(&self) -> Result<Arc<dyn AnyStore>, CliError> {
        if let Some(url) = &self.store {
            if !vmsec_store::postgres::is_url(url) {
                return Err(CliError::new(
                    "the store must be a postgres:// URL (or none, for the SQLite file in the data directory)",
                ));
            }
            // The error names the URL without its password.
            let store = PgStore::open(url, &host_name())
                .map_err(|e| CliError::new(format!("cannot open the store: {e}")))?;
            return Ok(Arc::new(store));
        }
        let store = SqliteStore::open(self.store_path(), &host_name()).map_err(|e| {
            CliError::new(format!(
                "cannot open the store {}: {e}",
                self.store_path().display()
            ))
        })?;
        // The store holds password hashes and (sealed) keys: owner-only, like the directory.
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", self.store_path().display()));
            if p.exists() {
                let _ = fs::set_permissions(&p, fs::Permissions::from_mode(0o600));
            }
        }
        Ok(Arc::new(store))
    }

    /// The service over `store`, with this directory's master key.
    pub fn open_service_on(&self, store: Arc<dyn AnyStore>) -> Result<Service, CliError> {
        let service = Service::open(store, self.master_key())
            .map_err(|e| CliError::new(format!("cannot start the service: {e}")))?;
        service.set_vtpm_root(self.vtpm_root());
        Ok(service)
    }

    pub fn master_key(&self) -> vmsec_service::MasterKey {
        vmsec_service::MasterKey::at(self.path.join("master.key"))
    }

    pub fn hgs(&self) -> vmsec_service::hgs::HgsDir {
        vmsec_service::hgs::HgsDir::under(&self.path)
    }

    /// Writes a secret file in the data directory, refusing to overwrite one that exists.
    pub fn write_secret_new(&self, name: &str, contents: &[u8]) -> Result<PathBuf, CliError> {
        let p = self.path.join(name);
        write_private(&p, contents)?;
        Ok(p)
    }
}

/// This host's name: `VMSEC_HOST_NAME` (several vmsec hosts on one machine, as in the
/// tests), else the machine's, as the kernel has it.
pub fn host_name() -> String {
    if let Ok(name) = std::env::var("VMSEC_HOST_NAME")
        && !name.trim().is_empty()
    {
        return name.trim().to_owned();
    }
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Writes a new secret file with mode 0600 from the start (never readable by others, not even
/// briefly), refusing to overwrite one that exists.
pub fn write_private(p: &Path, contents: &[u8]) -> Result<(), CliError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)
        .map_err(|e| CliError::new(format!("cannot create {}: {e}", p.display())))?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", p.display())))
}

/// The one rule for the data directory and every secret file (master.key, tls/key.pem,
/// initial-admin-password, guardian private keys, vTPM CA keys): no access at all for group
/// or others. A path that breaks it is made private (0700 or 0600) with a warning naming it,
/// before anything in it is used. Fixed rather than refused because `mkdir` and most
/// temporary directories make 0755: refusing would stop a first start on a common setup
/// for a fix that has only one right answer. The warning stays, because a mode someone
/// widened may mean a secret was already read (README, "Files").
pub fn make_private(path: &Path, what: &str) -> Result<(), CliError> {
    let meta = fs::metadata(path)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let private = if meta.is_dir() { 0o700 } else { 0o600 };
    fs::set_permissions(path, fs::Permissions::from_mode(private)).map_err(|e| {
        CliError::new(format!(
            "{what} {} is open to other users (mode {mode:o}) and cannot be made private: {e}; \
             run chmod {private:o} {}",
            path.display(),
            path.display()
        ))
    })?;
    tracing::warn!(
        "{what} {} was open to other users (mode {mode:o}); made it {private:o}. \
         If others could read it, treat the secrets in it as exposed",
        path.display()
    );
    Ok(())
}
