//! Shared set-up for the service tests: a real SQLite store in a temporary directory.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use vmsec_service::{Caller, JobStarted, MasterKey, Service};
pub use vmsec_service::{Setting, SettingsPatch};
use vmsec_store::sqlite::SqliteStore;
use vmsec_store::{Job, Role, Store, Vm};

pub struct World {
    pub dir: tempfile::TempDir,
    pub store: Arc<SqliteStore>,
    pub service: Service,
}

pub fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("vmsec.db"), "testhost").unwrap());
    let service =
        Service::open(store.clone(), MasterKey::at(dir.path().join("master.key"))).unwrap();
    World {
        dir,
        store,
        service,
    }
}

pub fn caller(role: Role) -> Caller {
    Caller {
        name: format!("test-{role}"),
        role,
    }
}

pub fn admin() -> Caller {
    caller(Role::Admin)
}

impl World {
    /// The host's HGS files, in the data directory.
    pub fn hgs(&self) -> vmsec_service::hgs::HgsDir {
        vmsec_service::hgs::HgsDir::under(self.dir.path())
    }

    pub fn vm(&self, name: &str) -> Vm {
        self.service.add_vm(&admin(), name, None).unwrap()
    }

    pub fn wait(&self, started: JobStarted) -> Job {
        self.service
            .wait_job(&admin(), &started.instance_id, Duration::from_secs(30))
            .unwrap()
    }

    pub fn set_kp(&self, vm: &Vm, kp: Vec<u8>) -> Job {
        let started = self
            .service
            .set_key_protector(&admin(), vm.id.into(), kp)
            .unwrap();
        self.wait(started)
    }

    /// What a vTPM start does after unlocking the VM: the current KP becomes the last known good.
    pub fn mark_current_known_good(&self, vm: &Vm) {
        self.store
            .update_vm_security(
                vm.id,
                "test",
                &mut |s| {
                    s.last_known_good = s.key_protector.clone();
                    Ok(())
                },
                None,
            )
            .unwrap();
    }
}

/// The owner of the test key protectors: made once, RSA key generation is slow.
pub fn owner() -> &'static vmsec_kp::Guardian {
    static OWNER: OnceLock<vmsec_kp::Guardian> = OnceLock::new();
    OWNER.get_or_init(|| {
        vmsec_kp::Guardian::generate("test owner", vmsec_kp::KeySize::Rsa2048).unwrap()
    })
}

/// A real, verifying key protector, distinct for each `n` and the same for the same `n`.
pub fn kp(n: u32) -> Vec<u8> {
    static MADE: OnceLock<Mutex<HashMap<u32, Vec<u8>>>> = OnceLock::new();
    MADE.get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(n)
        .or_insert_with(|| vmsec_kp::Protector::new(owner(), &[]).unwrap().into_bytes())
        .clone()
}

/// A patch setting each of `settings`.
pub fn patch(settings: &[(Setting, bool)]) -> SettingsPatch {
    settings
        .iter()
        .fold(SettingsPatch::default(), |p, (s, on)| p.with(*s, *on))
}
