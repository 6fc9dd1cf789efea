//! What only a shared PostgreSQL store has: several hosts on one database, host-only keys,
//! the server going away, and a schema from a newer vmsec.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;
use vmsec_store::conformance::pg::TestDb;
use vmsec_store::postgres::PgStore;
use vmsec_store::*;

fn vm(name: &str) -> Vm {
    Vm {
        id: Uuid::new_v4(),
        name: name.into(),
        created: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    }
}

#[test]
fn each_host_has_its_own_identity_and_sees_the_same_vms() {
    let Some(db) = TestDb::create() else { return };
    let a = PgStore::open(&db.url, "host-a").unwrap();
    let b = PgStore::open(&db.url, "host-b").unwrap();
    assert_ne!(a.host().unwrap().guid, b.host().unwrap().guid);
    // The same name is the same host: a second process of host A (the CLI beside serve).
    let a2 = PgStore::open(&db.url, "host-a").unwrap();
    assert_eq!(a2.host().unwrap().guid, a.host().unwrap().guid);
    let v = vm("shared");
    a.add_vm(&v).unwrap();
    assert_eq!(b.vm_by_name("shared").unwrap(), Some(v));
    let names: Vec<String> = b.hosts().unwrap().into_iter().map(|h| h.name).collect();
    assert_eq!(names, ["host-a", "host-b"]);
}

#[test]
fn a_lease_held_by_one_host_refuses_another_until_it_expires_or_is_released() {
    let Some(db) = TestDb::create() else { return };
    let a = PgStore::open(&db.url, "host-a").unwrap();
    let b = PgStore::open(&db.url, "host-b").unwrap();
    let v = vm("leased");
    a.add_vm(&v).unwrap();
    let held = a.acquire_vm_lease(v.id, Duration::from_secs(30)).unwrap();
    match b.acquire_vm_lease(v.id, Duration::from_secs(30)) {
        Err(StoreError::LeaseHeld(m)) => assert!(m.contains("host-a"), "{m}"),
        other => panic!("{other:?}"),
    }
    // B cannot release or renew what A holds.
    assert!(!b.release_vm_lease(v.id, None).unwrap());
    assert!(a.release_vm_lease(v.id, None).unwrap());
    let by_b = b
        .acquire_vm_lease(v.id, Duration::from_millis(200))
        .unwrap();
    assert!(by_b.token > held.token);
    assert!(matches!(
        a.renew_vm_lease(&held, Duration::from_secs(30)),
        Err(StoreError::LeaseLost(_))
    ));
    // B's host crashes: its lease runs out, and A may take the VM.
    std::thread::sleep(Duration::from_millis(300));
    let again = a.acquire_vm_lease(v.id, Duration::from_secs(30)).unwrap();
    assert!(again.token > by_b.token);
    let fenced = b.update_vm_security_fenced(v.id, "b", &by_b, &mut |s| {
        s.key_protector = Some(b"late".to_vec());
        Ok(())
    });
    assert!(matches!(
        fenced,
        Err(UpdateError::Store(StoreError::LeaseLost(_)))
    ));
}

#[test]
fn concurrent_takeovers_of_a_free_lease_leave_exactly_one_holder() {
    let Some(db) = TestDb::create() else { return };
    let stores: Vec<Arc<PgStore>> = (0..3)
        .map(|i| Arc::new(PgStore::open(&db.url, &format!("host-{i}")).unwrap()))
        .collect();
    let v = vm("raced");
    stores[0].add_vm(&v).unwrap();
    let winners: Vec<bool> = stores
        .iter()
        .map(|s| {
            let s = s.clone();
            std::thread::spawn(move || s.acquire_vm_lease(v.id, Duration::from_secs(30)).is_ok())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(winners.iter().filter(|w| **w).count(), 1, "{winners:?}");
}

#[test]
fn a_guardians_private_keys_are_seen_only_by_the_host_that_stored_them() {
    let Some(db) = TestDb::create() else { return };
    let a = PgStore::open(&db.url, "host-a").unwrap();
    let b = PgStore::open(&db.url, "host-b").unwrap();
    let g = GuardianRecord {
        name: "owner".into(),
        encryption_cert: vec![1],
        signing_cert: vec![2],
        encryption_cert_signature_algorithm: "alg".into(),
        encryption_cert_signature: vec![3],
        metadata: None,
        sealed_private_keys: Some(vec![9, 9, 9]),
        created: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    };
    a.add_guardian(&g).unwrap();
    assert_eq!(a.guardian("owner").unwrap(), Some(g.clone()));
    let seen_by_b = b.guardian("owner").unwrap().unwrap();
    assert_eq!(seen_by_b.signing_cert, g.signing_cert);
    assert_eq!(seen_by_b.sealed_private_keys, None);
    assert!(matches!(
        b.add_guardian(&g),
        Err(StoreError::AlreadyExists(_))
    ));
}

#[test]
fn audit_records_appended_by_several_hosts_are_numbered_in_commit_order_without_gaps() {
    let Some(db) = TestDb::create() else { return };
    let stores: Vec<Arc<PgStore>> = (0..3)
        .map(|i| Arc::new(PgStore::open(&db.url, &format!("host-{i}")).unwrap()))
        .collect();
    let threads: Vec<_> = (0..12)
        .map(|i| {
            let s = stores[i % 3].clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    vmsec_store::conformance::audit_at(&*s, OffsetDateTime::now_utc(), "Op");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let seqs = vmsec_store::conformance::seqs(&*stores[0]);
    assert_eq!(seqs, (1..=240).collect::<Vec<i64>>());
}

#[test]
fn a_connection_the_server_closed_fails_its_request_and_the_next_one_reconnects() {
    let Some(db) = TestDb::create() else { return };
    let s = PgStore::open(&db.url, "host-a").unwrap();
    s.add_vm(&vm("before")).unwrap();
    db.terminate_connections();
    // The pooled connection is dead: that request fails as unavailable (or has already
    // reconnected), never hangs; the one after it works.
    match s.vms() {
        Ok(_) | Err(StoreError::Unavailable(_)) => {}
        Err(e) => panic!("{e:?}"),
    }
    assert_eq!(s.vms().unwrap().len(), 1);
    s.add_vm(&vm("after")).unwrap();
}

#[test]
fn an_unreachable_server_is_named_without_its_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://vmsec:s3cret-pw@127.0.0.1:{port}/fleet");
    let e = PgStore::open(&url, "h").unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, StoreError::Unavailable(_)), "{m}");
    assert!(
        m.contains(&format!("postgres://vmsec@127.0.0.1:{port}/fleet")),
        "{m}"
    );
    assert!(!m.contains("s3cret-pw"), "{m}");
}

#[test]
fn a_database_of_a_newer_vmsec_is_refused() {
    let Some(db) = TestDb::create() else { return };
    drop(PgStore::open(&db.url, "h").unwrap());
    db.execute(&format!(
        "UPDATE vmsec_schema SET version = {}",
        PgStore::schema_version() + 1
    ));
    let m = PgStore::open(&db.url, "h").unwrap_err().to_string();
    assert!(m.contains("newer than this vmsec"), "{m}");
}
