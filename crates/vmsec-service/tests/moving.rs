//! Moving a VM between hosts and removing its vTPM directory, without swtpm: the vTPM state
//! is a directory of files the service only copies, so fake ones stand in for swtpm's.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::{World, admin, caller, world};
use vmsec_service::ServiceError;
use vmsec_store::{AuditOutcome, Role, Store, Vm};

fn vtpm_root(w: &World) -> PathBuf {
    w.dir.path().join("vtpm")
}

/// Gives `vm` a vTPM state of one file, where a start would have left swtpm's.
fn fake_state(w: &World, vm: &Vm) -> PathBuf {
    let state = vtpm_root(w).join(vm.id.to_string()).join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("tpm2-00.permall"), b"encrypted state").unwrap();
    state
}

/// A VM with a key protector that is also its last known good, a sealed state key, a policy
/// and a vTPM state: everything an export carries.
fn full_vm(w: &World, name: &str) -> Vm {
    let vm = w.vm(name);
    w.set_kp(&vm, support::kp(1));
    w.mark_current_known_good(&vm);
    w.store
        .update_vm_security(
            vm.id,
            "test",
            &mut |s| {
                s.sealed_state_key = Some(b"sealed".to_vec());
                s.security_policy = Some(b"policy".to_vec());
                Ok(())
            },
            None,
        )
        .unwrap();
    fake_state(w, &vm);
    vm
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn an_export_imports_on_another_host_with_its_records_and_state() {
    let a = world();
    let vm = full_vm(&a, "vm1");
    let out = a.dir.path().join("export");
    a.service
        .export_vm(&admin(), &vm, &vtpm_root(&a), &out)
        .unwrap();
    assert_eq!(mode(&out), 0o700);
    for secret in [
        "key-protector.xml",
        "state-key.sealed",
        "last-known-good.xml",
    ] {
        assert_eq!(mode(&out.join(secret)), 0o600, "{secret}");
    }

    let b = world();
    let imported = b.service.import_vm(&admin(), &vtpm_root(&b), &out).unwrap();
    assert_eq!((imported.id, &imported.name), (vm.id, &vm.name));
    let (was, is) = (
        a.store.vm_security(vm.id).unwrap(),
        b.store.vm_security(vm.id).unwrap(),
    );
    assert_eq!(is.settings, was.settings);
    assert_eq!(is.key_protector, was.key_protector);
    assert_eq!(is.last_known_good, was.last_known_good);
    assert_eq!(is.sealed_state_key, was.sealed_state_key);
    assert_eq!(is.security_policy, was.security_policy);
    let state = vtpm_root(&b).join(vm.id.to_string()).join("state");
    assert_eq!(
        std::fs::read(state.join("tpm2-00.permall")).unwrap(),
        b"encrypted state"
    );
}

#[test]
fn an_export_needs_an_empty_directory_and_an_operator() {
    let w = world();
    let vm = full_vm(&w, "vm1");
    let out = w.dir.path().join("export");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("other"), b"x").unwrap();
    let err = w
        .service
        .export_vm(&admin(), &vm, &vtpm_root(&w), &out)
        .unwrap_err();
    assert!(err.to_string().contains("exists and is not empty"), "{err}");

    let empty = w.dir.path().join("empty");
    let err = w
        .service
        .export_vm(&caller(Role::Reader), &vm, &vtpm_root(&w), &empty)
        .unwrap_err();
    assert!(matches!(err, ServiceError::AccessDenied(_)), "{err}");
    assert!(!empty.exists(), "a refused export writes nothing");
    let outcomes: Vec<_> = w
        .store
        .audit(0, 100)
        .unwrap()
        .into_iter()
        .filter(|r| r.operation == "ExportVm")
        .map(|r| r.outcome)
        .collect();
    assert_eq!(outcomes, [AuditOutcome::Failed, AuditOutcome::Denied]);
}

fn exported(w: &World, name: &str) -> (Vm, PathBuf) {
    let vm = full_vm(w, name);
    let out = w.dir.path().join(format!("export-{name}"));
    w.service
        .export_vm(&admin(), &vm, &vtpm_root(w), &out)
        .unwrap();
    (vm, out)
}

#[test]
fn an_import_that_breaks_the_rules_registers_nothing() {
    let a = world();
    let (vm, out) = exported(&a, "vm1");
    let b = world();

    // A sealed state key is only readable through its last known good.
    std::fs::rename(out.join("last-known-good.xml"), out.join("lkg.away")).unwrap();
    let err = b
        .service
        .import_vm(&admin(), &vtpm_root(&b), &out)
        .unwrap_err();
    assert!(err.to_string().contains("no last known good"), "{err}");
    std::fs::rename(out.join("lkg.away"), out.join("last-known-good.xml")).unwrap();

    // A key protector that does not verify.
    let kp = out.join("key-protector.xml");
    let good = std::fs::read(&kp).unwrap();
    std::fs::write(&kp, b"<not a key protector/>").unwrap();
    assert!(b.service.import_vm(&admin(), &vtpm_root(&b), &out).is_err());
    std::fs::write(&kp, good).unwrap();

    // Another format.
    let manifest = out.join("vm.json");
    let json = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, json.replace("vmsec-vm-export-v1", "v0")).unwrap();
    let err = b
        .service
        .import_vm(&admin(), &vtpm_root(&b), &out)
        .unwrap_err();
    assert!(err.to_string().contains("this vmsec reads"), "{err}");

    assert!(b.store.vm(vm.id).unwrap().is_none());
    assert!(!vtpm_root(&b).join(vm.id.to_string()).exists());
}

#[test]
fn an_import_keeps_a_state_already_there_and_takes_back_its_own_on_failure() {
    let a = world();
    let (vm, out) = exported(&a, "vm1");

    // A stale state where the VM's would go: refused, the stale one kept.
    let b = world();
    let stale = vtpm_root(&b).join(vm.id.to_string()).join("state");
    std::fs::create_dir_all(&stale).unwrap();
    let err = b
        .service
        .import_vm(&admin(), &vtpm_root(&b), &out)
        .unwrap_err();
    assert!(
        err.to_string().contains("already holds a vTPM state"),
        "{err}"
    );
    assert!(stale.is_dir());

    // The VM is already registered: the state copied for it goes again.
    let c = world();
    c.service.add_vm(&admin(), "vm1", Some(vm.id)).unwrap();
    let err = c
        .service
        .import_vm(&admin(), &vtpm_root(&c), &out)
        .unwrap_err();
    assert!(matches!(err, ServiceError::AlreadyExists(_)), "{err}");
    assert!(!vtpm_root(&c).join(vm.id.to_string()).join("state").exists());
}

#[test]
fn removing_a_vm_takes_its_vtpm_directory_along() {
    let w = world();
    let vm = full_vm(&w, "vm1");
    let dir = vtpm_root(&w).join(vm.id.to_string());
    // The key protector guards the rule: without --force nothing goes.
    assert!(
        w.service
            .remove_vm_and_vtpm(&admin(), &vm, false, &vtpm_root(&w))
            .is_err()
    );
    assert!(dir.is_dir());
    w.service
        .remove_vm_and_vtpm(&admin(), &vm, true, &vtpm_root(&w))
        .unwrap();
    assert!(!dir.exists());
    assert!(w.store.vm(vm.id).unwrap().is_none());

    // A VM that never had a vTPM is removed all the same.
    let plain = w.vm("vm2");
    w.service
        .remove_vm_and_vtpm(&admin(), &plain, false, &vtpm_root(&w))
        .unwrap();
}
