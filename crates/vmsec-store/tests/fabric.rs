//! The fabric's hosts and settings on SQLite.

use time::OffsetDateTime;
use vmsec_store::sqlite::SqliteStore;
use vmsec_store::{AttestedHost, FabricSettings, FabricStore, StoreError};

fn host(name: &str, hash: &str) -> AttestedHost {
    AttestedHost {
        name: name.into(),
        key_hash: hash.into(),
        host_key: vec![0x30, 1, 2],
        added: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    }
}

#[test]
fn hosts_are_found_by_key_and_a_name_or_key_is_registered_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db"), "kps").unwrap();
    store.add_attested_host(&host("h1", "aa")).unwrap();
    store.add_attested_host(&host("h2", "bb")).unwrap();
    assert!(matches!(
        store.add_attested_host(&host("h1", "cc")),
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.add_attested_host(&host("h3", "aa")),
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(
        store.attested_host_by_key("bb").unwrap(),
        Some(host("h2", "bb"))
    );
    assert!(store.remove_attested_host("h2").unwrap());
    assert!(!store.remove_attested_host("h2").unwrap());
    assert_eq!(store.attested_host_by_key("bb").unwrap(), None);
    assert_eq!(store.attested_hosts().unwrap(), vec![host("h1", "aa")]);
}

#[test]
fn settings_start_empty_and_keep_what_was_set() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db"), "kps").unwrap();
    assert_eq!(store.fabric_settings().unwrap(), FabricSettings::default());
    let s = FabricSettings {
        deny_before: Some(OffsetDateTime::from_unix_timestamp(1_800_000_123).unwrap()),
        primary_guardian: Some("fabric-2".into()),
    };
    store.set_fabric_settings(&s).unwrap();
    drop(store);
    let store = SqliteStore::open(dir.path().join("s.db"), "kps").unwrap();
    assert_eq!(store.fabric_settings().unwrap(), s);
}
