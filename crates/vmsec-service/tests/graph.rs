//! The object graph: each VM's Msvm_VirtualSystemSettingData and the association instances
//! that reach it, its security settings and the security service, from either end.

mod support;

use support::{caller, world};
use vmsec_cim::schema::ServedClass;
use vmsec_cim::{Instance, Value};
use vmsec_store::Role;

fn all(mut e: vmsec_service::classes::Instances) -> Vec<Instance> {
    let mut out = Vec::new();
    loop {
        let got = e.next(100).unwrap();
        if got.is_empty() {
            return out;
        }
        out.extend(got);
    }
}

/// The text of key `key` of the reference `role` holds.
fn referenced(i: &Instance, role: &str, key: &str) -> String {
    let Some(Value::Reference(path)) = i.value(role) else {
        panic!("{role} of {i:?} is not a reference")
    };
    path.key(key).and_then(Value::scalar_text).unwrap()
}

fn keys(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn each_association_of_a_vm_is_found_from_either_end() {
    let w = world();
    let vm = w.vm("web1");
    w.vm("web2");
    let guid = vm.id.to_string().to_uppercase();
    let setting = format!("Microsoft:{guid}");
    let reader = caller(Role::Reader);
    let from = |class, role, k: &[(&str, &str)]| {
        all(w
            .service
            .references(&reader, class, role, &keys(k))
            .unwrap())
    };
    let cs = [
        ("CreationClassName", "Msvm_ComputerSystem"),
        ("Name", guid.as_str()),
    ];
    let by_id = [("InstanceID", setting.as_str())];
    for (class, role, k, other, key, want) in [
        (
            ServedClass::SettingsDefineState,
            "ManagedElement",
            &cs[..],
            "SettingData",
            "InstanceID",
            setting.as_str(),
        ),
        (
            ServedClass::SettingsDefineState,
            "SettingData",
            &by_id[..],
            "ManagedElement",
            "Name",
            guid.as_str(),
        ),
        (
            ServedClass::VirtualSystemSettingDataComponent,
            "GroupComponent",
            &by_id[..],
            "PartComponent",
            "InstanceID",
            setting.as_str(),
        ),
        (
            ServedClass::VirtualSystemSettingDataComponent,
            "PartComponent",
            &by_id[..],
            "GroupComponent",
            "InstanceID",
            setting.as_str(),
        ),
        (
            ServedClass::ServiceAffectsElement,
            "AffectedElement",
            &cs[..],
            "AffectingElement",
            "Name",
            "vmsecuritywmi",
        ),
    ] {
        let found = from(class, role, k);
        assert_eq!(found.len(), 1, "{class} by {role}");
        assert_eq!(found[0].class_name(), class.name());
        assert_eq!(referenced(&found[0], other, key), want, "{class} by {role}");
    }
    let vssd = w
        .service
        .instance(
            &reader,
            ServedClass::VirtualSystemSettingData,
            &keys(&by_id),
            &w.hgs(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        vssd.value("ConfigurationID").and_then(Value::scalar_text),
        Some(guid.clone())
    );
    assert_eq!(
        vssd.value("VirtualSystemType")
            .and_then(Value::scalar_text)
            .as_deref(),
        Some("Microsoft:Hyper-V:System:Realized")
    );
}

#[test]
fn the_security_service_affects_every_vm_across_pages_and_the_host_hosts_it() {
    let w = world();
    for i in 0..300 {
        w.vm(&format!("vm{i:03}"));
    }
    let reader = caller(Role::Reader);
    let service = keys(&[
        ("CreationClassName", "Msvm_SecurityService"),
        ("Name", "vmsecuritywmi"),
        ("SystemCreationClassName", "Msvm_ComputerSystem"),
        ("SystemName", "testhost"),
    ]);
    let affected = all(w
        .service
        .references(
            &reader,
            ServedClass::ServiceAffectsElement,
            "AffectingElement",
            &service,
        )
        .unwrap());
    assert_eq!(affected.len(), 300, "one per VM, over two pages of 256");
    assert_eq!(
        affected[0].value("ElementEffects"),
        Some(&Value::Array(vec![Value::UInt16(5)]))
    );
    let hosted = all(w
        .service
        .references(&reader, ServedClass::HostedService, "Dependent", &service)
        .unwrap());
    assert_eq!(hosted.len(), 1);
    assert_eq!(referenced(&hosted[0], "Antecedent", "Name"), "testhost");
    let other_service = keys(&[("Name", "another")]);
    assert!(
        all(w
            .service
            .references(
                &reader,
                ServedClass::ServiceAffectsElement,
                "AffectingElement",
                &other_service
            )
            .unwrap())
        .is_empty(),
        "a service that is not ours affects nothing"
    );
    let enumerated = all(w
        .service
        .instances(&reader, ServedClass::SettingsDefineState, &[], &w.hgs())
        .unwrap());
    assert_eq!(
        enumerated.len(),
        300,
        "enumerating an association class reads every VM's"
    );
}

#[test]
fn unknown_instances_and_roles_are_referenced_by_nothing() {
    let w = world();
    w.vm("web1");
    let reader = caller(Role::Reader);
    for (class, role, k) in [
        (
            ServedClass::SettingsDefineState,
            "ManagedElement",
            keys(&[("Name", "00000000-0000-0000-0000-000000000001")]),
        ),
        (
            ServedClass::SettingsDefineState,
            "ManagedElement",
            keys(&[("Name", "testhost")]),
        ),
        (
            ServedClass::VirtualSystemSettingDataComponent,
            "PartComponent",
            keys(&[("InstanceID", "Microsoft:not-a-guid")]),
        ),
        (
            ServedClass::HostedService,
            "Antecedent",
            keys(&[("Name", "elsewhere")]),
        ),
        (
            ServedClass::SettingsDefineState,
            "NoSuchRole",
            keys(&[("Name", "testhost")]),
        ),
    ] {
        assert!(
            all(w.service.references(&reader, class, role, &k).unwrap()).is_empty(),
            "{class} {role} {k:?}"
        );
    }
}
