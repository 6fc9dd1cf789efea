//! What is particular to the SQLite store: its file (WAL mode, WAL size, migrations, host
//! identity across opens), and how SQLite's own refusals and unreadable values are reported.
//! What every backend must do is in `vmsec_store::conformance` (tests/conformance_sqlite.rs).

use time::OffsetDateTime;
use uuid::Uuid;
use vmsec_store::conformance::{audit_at, seqs};
use vmsec_store::sqlite::SqliteStore;
use vmsec_store::*;

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("s.db"), "host-a").unwrap()
}

fn vm(name: &str) -> Vm {
    Vm {
        id: Uuid::new_v4(),
        name: name.into(),
        created: OffsetDateTime::now_utc(),
    }
}

#[test]
fn host_identity_is_created_once_and_kept_across_opens() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(&dir).host().unwrap();
    assert_eq!(first.name, "host-a");
    let again = SqliteStore::open(dir.path().join("s.db"), "renamed")
        .unwrap()
        .host()
        .unwrap();
    assert_eq!(again, first);
}

#[test]
fn a_store_from_a_newer_vmsec_is_refused_not_damaged() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(&dir));
    let conn = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let err = SqliteStore::open(dir.path().join("s.db"), "h").unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(m) if m.contains("newer")));
}

/// That foreign keys are on (a VM's history goes with it) is the conformance case
/// `removing_a_vm_removes_its_security_record_and_history`.
#[test]
fn the_file_is_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(&dir));
    let conn = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn the_wal_stays_bounded_under_steady_reads_and_writes_and_is_gone_after_close() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("s.db-wal");
    let s = std::sync::Arc::new(open(&dir));
    let v = vm("a");
    s.add_vm(&v).unwrap();
    // Readers that never stop: without them SQLite would start the WAL over by itself.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (s, stop) = (s.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    s.vm_with_security(v.id).unwrap();
                }
            })
        })
        .collect();
    // ~2 MiB of pages per write (the key protector, and the previous one into the history).
    let mut largest = 0;
    for n in 0..200u8 {
        s.update_vm_security(
            v.id,
            "t",
            &mut |sec| {
                sec.key_protector = Some(vec![n; 1024 * 1024]);
                Ok(())
            },
            None,
        )
        .unwrap();
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    // 200 writes made ~400 MiB of WAL frames (the file grew to all of it before); the
    // commit that takes it past 64 MiB starts it over, so it stays within that plus a write
    // (more only if a reader held its transaction past the busy timeout).
    assert!(
        largest < 80 * 1024 * 1024,
        "the WAL reached {} MiB",
        largest / (1024 * 1024)
    );
    drop(s);
    assert!(
        !wal.exists(),
        "the last connection to close removes the WAL"
    );
}

#[test]
fn the_range_record_is_written_in_the_transaction_of_its_delete() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = OffsetDateTime::now_utc();
    for _ in 0..5 {
        audit_at(&s, now, "op");
    }
    // Make the range record's insert fail: if the delete were its own transaction, the
    // records would be gone with nothing saying so.
    let c = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
    c.execute_batch(
        "CREATE TRIGGER no_range BEFORE INSERT ON audit WHEN NEW.operation = 'AuditPruned' \
         BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    )
    .unwrap();
    let keep = AuditRetention {
        max_records: Some(1),
        max_age: None,
    };
    assert!(s.prune_audit(&keep, now, 10, "vmsec").is_err());
    assert_eq!(seqs(&s), vec![1, 2, 3, 4, 5], "nothing deleted");
    c.execute_batch("DROP TRIGGER no_range;").unwrap();
    assert_eq!(
        s.prune_audit(&keep, now, 10, "vmsec").unwrap(),
        vec![AuditPruned {
            first: 1,
            last: 4,
            record: 6
        }]
    );
}

#[test]
fn a_value_this_vmsec_cannot_read_is_reported_corrupt_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let v = vm("a");
    s.add_vm(&v).unwrap();
    s.insert_job(&vmsec_store::conformance::completed_job(
        "J1",
        OffsetDateTime::now_utc(),
    ))
    .unwrap();
    let c = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
    c.execute_batch("UPDATE vms SET guid = 'not-a-guid'; UPDATE jobs SET job_state = 99;")
        .unwrap();
    assert!(matches!(s.vms(), Err(StoreError::Corrupt(m)) if m.starts_with("GUID \"not-a-guid\"")));
    assert!(matches!(s.job("J1"), Err(StoreError::Corrupt(m)) if m == "job J1: bad JobState"));
}

#[test]
fn a_write_refused_for_another_reason_than_a_duplicate_key_is_not_already_exists() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let c = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
    c.execute_batch(
        "CREATE TRIGGER no_users BEFORE INSERT ON users BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    )
    .unwrap();
    let user = User {
        name: "alice".into(),
        role: Role::Admin,
        password_hash: "h".into(),
        created: OffsetDateTime::now_utc(),
    };
    let err = s.add_user(&user).unwrap_err();
    assert!(matches!(err, StoreError::Constraint(_)), "{err:?}");
    assert!(s.users().unwrap().is_empty());
}

#[test]
fn an_audit_append_is_said_to_start_at_once_only_while_no_write_is_under_way() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let v = vm("a");
    s.add_vm(&v).unwrap();
    assert!(s.audit_would_start_at_once());
    let mut during = None;
    s.update_vm_security(
        v.id,
        "t",
        &mut |_| {
            during = Some(s.audit_would_start_at_once());
            Ok(())
        },
        None,
    )
    .unwrap();
    assert_eq!(during, Some(false), "asked inside a write transaction");
    assert!(s.audit_would_start_at_once(), "and again once it committed");
}
