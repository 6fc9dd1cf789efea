//! The fabric's hosts and settings, on SQLite and on PostgreSQL (each case on a store of its
//! own; PostgreSQL's when the test cluster runs, `VMSEC_TEST_PG`).

use time::OffsetDateTime;
use vmsec_store::conformance::pg::TestDb;
use vmsec_store::postgres::PgStore;
use vmsec_store::sqlite::SqliteStore;
use vmsec_store::{AttestedHost, FabricSettings, FabricStore, StoreError};

/// Opens the store of one case (again, to read what an earlier opening wrote).
type Open<'a> = &'a dyn Fn() -> Box<dyn FabricStore>;

/// Runs `case` on a fresh SQLite store, then on a fresh PostgreSQL database.
fn on_each_backend(case: impl Fn(Open<'_>)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    case(&|| Box::new(SqliteStore::open(&path, "kps").unwrap()));
    if let Some(db) = TestDb::create() {
        case(&|| Box::new(PgStore::open(&db.url, "kps").unwrap()));
    }
}

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
    on_each_backend(|open| {
        let store = open();
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
    });
}

#[test]
fn settings_start_empty_and_keep_what_was_set() {
    on_each_backend(|open| {
        let store = open();
        assert_eq!(store.fabric_settings().unwrap(), FabricSettings::default());
        let s = FabricSettings {
            deny_before: Some(OffsetDateTime::from_unix_timestamp(1_800_000_123).unwrap()),
            primary_guardian: Some("fabric-2".into()),
        };
        store.set_fabric_settings(&s).unwrap();
        drop(store);
        let store = open();
        assert_eq!(store.fabric_settings().unwrap(), s);
    });
}

fn tpm_host(name: &str, hash: &str, cert: Option<Vec<u8>>) -> vmsec_store::TpmHostRecord {
    vmsec_store::TpmHostRecord {
        name: name.into(),
        ek_hash: hash.into(),
        ek_public: vec![0x30, 9],
        ek_certificate: cert,
        added: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    }
}

#[test]
fn a_tpm_host_is_also_a_host_shares_its_names_and_goes_with_it() {
    on_each_backend(|open| {
        let store = open();
        store.add_attested_host(&host("h1", "aa")).unwrap();
        store
            .add_tpm_host(&tpm_host("t1", "ee", Some(vec![0x30, 3])))
            .unwrap();
        store.add_tpm_host(&tpm_host("t2", "ff", None)).unwrap();
        assert!(matches!(
            store.add_tpm_host(&tpm_host("h1", "dd", None)),
            Err(StoreError::AlreadyExists(_))
        ));
        assert!(matches!(
            store.add_tpm_host(&tpm_host("t3", "aa", None)),
            Err(StoreError::AlreadyExists(_))
        ));
        assert_eq!(
            store.tpm_host_by_ek("ee").unwrap(),
            Some(tpm_host("t1", "ee", Some(vec![0x30, 3])))
        );
        assert_eq!(store.tpm_host_by_ek("aa").unwrap(), None, "a host-key host");
        assert_eq!(
            store.attested_host_by_key("ee").unwrap().unwrap().name,
            "t1"
        );
        assert!(store.remove_attested_host("t1").unwrap());
        assert_eq!(store.tpm_host_by_ek("ee").unwrap(), None);
        assert_eq!(store.tpm_hosts().unwrap(), vec![tpm_host("t2", "ff", None)]);
    });
}

#[test]
fn baselines_are_kept_by_name_once_and_removed() {
    on_each_backend(|open| {
        let store = open();
        let b = |name: &str| vmsec_store::TpmBaselineRecord {
            name: name.into(),
            document: b"{}".to_vec(),
            added: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
        };
        store.add_tpm_baseline(&b("golden")).unwrap();
        store.add_tpm_baseline(&b("another")).unwrap();
        assert!(matches!(
            store.add_tpm_baseline(&b("golden")),
            Err(StoreError::AlreadyExists(_))
        ));
        assert_eq!(
            store.tpm_baselines().unwrap(),
            vec![b("another"), b("golden")]
        );
        assert!(store.remove_tpm_baseline("golden").unwrap());
        assert!(!store.remove_tpm_baseline("golden").unwrap());
        assert_eq!(store.tpm_baselines().unwrap(), vec![b("another")]);
    });
}
