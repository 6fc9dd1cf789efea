//! Shared set-up for the service tests: a real SQLite store in a temporary directory.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use uuid::Uuid;
use vmsec_service::{Caller, JobStarted, MasterKey, Service};
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
            .set_key_protector(&admin(), &ssd(vm.id), kp)
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

/// The embedded instance naming a VM, hand-written in the CIM-XML form WMI's GetText_(1)
/// produces, so the tests do not depend on our own serializer.
pub fn ssd(vm: Uuid) -> String {
    ssd_with(vm, "")
}

pub fn ssd_with(vm: Uuid, extra_properties: &str) -> String {
    format!(
        r#"<INSTANCE CLASSNAME="Msvm_SecuritySettingData"><PROPERTY NAME="__CLASS" CLASSORIGIN="___SYSTEM" TYPE="string"><VALUE>Msvm_SecuritySettingData</VALUE></PROPERTY><PROPERTY NAME="InstanceID" CLASSORIGIN="CIM_SettingData" TYPE="string"><VALUE>Microsoft:{}</VALUE></PROPERTY>{extra_properties}</INSTANCE>"#,
        vm.to_string().to_uppercase()
    )
}

pub fn bool_prop(name: &str, on: bool) -> String {
    format!(
        r#"<PROPERTY NAME="{name}" CLASSORIGIN="Msvm_SecuritySettingData" TYPE="boolean"><VALUE>{}</VALUE></PROPERTY>"#,
        if on { "TRUE" } else { "FALSE" }
    )
}
