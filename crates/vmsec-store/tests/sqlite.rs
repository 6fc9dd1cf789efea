//! The SQLite store: schema, persistence, transactions.

use time::OffsetDateTime;
use uuid::Uuid;
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

/// A SetKeyProtector job submitted, run and completed at `now`, of no VM.
fn completed_job(instance_id: &str, now: OffsetDateTime) -> Job {
    Job {
        instance_id: instance_id.into(),
        method: "SetKeyProtector".into(),
        vm: None,
        state: JobState::Completed,
        error_code: 0,
        error_description: String::new(),
        percent_complete: 100,
        submitted_by: "t".into(),
        time_submitted: now,
        start_time: Some(now),
        finish_time: Some(now),
        time_before_removal: time::Duration::minutes(5),
        owner: JobOwner {
            host: Uuid::nil(),
            pid: 1,
            start_ticks: 2,
        },
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

#[test]
fn the_schema_runs_in_wal_mode_with_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let v = vm("a");
    s.add_vm(&v).unwrap();
    s.update_vm_security(
        v.id,
        "t",
        &mut |sec| {
            sec.key_protector = Some(b"one".to_vec());
            Ok(())
        },
        None,
    )
    .unwrap();
    s.update_vm_security(
        v.id,
        "t",
        &mut |sec| {
            sec.key_protector = Some(b"two".to_vec());
            Ok(())
        },
        None,
    )
    .unwrap();
    assert_eq!(s.kp_history(v.id).unwrap().len(), 1);
    // Removing the VM removes its history through the foreign key.
    assert!(s.remove_vm(v.id).unwrap());
    assert!(s.kp_history(v.id).unwrap().is_empty());
    let conn = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn vm_names_and_guids_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let a = vm("a");
    s.add_vm(&a).unwrap();
    assert!(matches!(
        s.add_vm(&vm("a")),
        Err(StoreError::AlreadyExists(_))
    ));
    let same_id = Vm {
        name: "b".into(),
        ..a.clone()
    };
    assert!(matches!(
        s.add_vm(&same_id),
        Err(StoreError::AlreadyExists(_))
    ));
}

#[test]
fn a_rejected_change_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let v = vm("a");
    s.add_vm(&v).unwrap();
    let r = s.update_vm_security(
        v.id,
        "t",
        &mut |sec| {
            sec.settings.tpm_enabled = true;
            Err("no".into())
        },
        None,
    );
    assert!(matches!(r, Err(UpdateError::Rejected(e)) if e.to_string() == "no"));
    assert!(!s.vm_security(v.id).unwrap().settings.tpm_enabled);
}

#[test]
fn key_protector_history_is_bounded_and_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let v = vm("a");
    s.add_vm(&v).unwrap();
    for n in 0..(KP_HISTORY_LIMIT + 5) {
        s.update_vm_security(
            v.id,
            &format!("actor{n}"),
            &mut |sec| {
                sec.key_protector = Some(n.to_string().into_bytes());
                Ok(())
            },
            None,
        )
        .unwrap();
    }
    let h = s.kp_history(v.id).unwrap();
    assert_eq!(h.len(), KP_HISTORY_LIMIT);
    let last = KP_HISTORY_LIMIT + 5 - 1;
    assert_eq!(h[0].key_protector, (last - 1).to_string().into_bytes());
    assert_eq!(h[0].set.as_ref().unwrap().by, format!("actor{}", last - 1));
    assert_eq!(h[0].replaced.by, format!("actor{last}"));
}

#[test]
fn a_job_finished_with_its_change_is_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let v = vm("a");
    s.add_vm(&v).unwrap();
    let now = OffsetDateTime::now_utc();
    let mut job = Job {
        vm: Some(v.id),
        state: JobState::Running,
        percent_complete: 0,
        finish_time: None,
        ..completed_job("J1", now)
    };
    s.insert_job(&job).unwrap();
    job.state = JobState::Completed;
    let audit = AuditRecord {
        seq: 0,
        at: now,
        actor: "t".into(),
        operation: "SetKeyProtector".into(),
        vm: Some(v.id),
        outcome: AuditOutcome::Succeeded,
        detail: "job J1".into(),
    };
    let done = JobDone {
        job: &job,
        audit: &audit,
    };
    // The change is rejected: the job must not be recorded complete, nor audited, either.
    let _ = s.update_vm_security(v.id, "t", &mut |_| Err("no".into()), Some(done));
    assert_eq!(s.job("J1").unwrap().unwrap().state, JobState::Running);
    assert!(s.audit(0, 10).unwrap().is_empty());
    s.update_vm_security(
        v.id,
        "t",
        &mut |sec| {
            sec.settings.ksd_enabled = true;
            Ok(())
        },
        Some(done),
    )
    .unwrap();
    assert_eq!(s.job("J1").unwrap().unwrap().state, JobState::Completed);
    assert_eq!(s.job("J1").unwrap().unwrap().owner, job.owner);
    let log = s.audit(0, 10).unwrap();
    assert_eq!(
        log.len(),
        1,
        "the completion is audited once, with the change"
    );
    assert_eq!(log[0].detail, "job J1");
    assert_eq!(log[0].outcome, AuditOutcome::Succeeded);
}

#[test]
fn the_audit_log_appends_in_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    for n in 0..5 {
        let seq = s
            .append_audit(&AuditRecord {
                seq: 0,
                at: OffsetDateTime::now_utc(),
                actor: "a".into(),
                operation: format!("op{n}"),
                vm: None,
                outcome: AuditOutcome::Succeeded,
                detail: String::new(),
            })
            .unwrap();
        assert_eq!(seq, n + 1);
    }
    let after2 = s.audit(2, 10).unwrap();
    assert_eq!(
        after2.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
}

#[test]
fn a_summary_has_the_settings_and_whether_a_key_protector_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let (a, b) = (vm("a"), vm("b"));
    s.add_vm(&b).unwrap();
    s.add_vm(&a).unwrap();
    s.update_vm_security(
        a.id,
        "t",
        &mut |sec| {
            sec.settings.tpm_enabled = true;
            sec.key_protector = Some(vec![b'k'; 100_000]);
            Ok(())
        },
        None,
    )
    .unwrap();
    let one = s.vm_summary(a.id).unwrap().unwrap();
    assert_eq!((one.vm.id, one.vm.name.as_str()), (a.id, "a"));
    assert!(one.settings.tpm_enabled && !one.settings.ksd_enabled);
    assert!(one.has_key_protector);
    assert!(s.vm_summary(Uuid::new_v4()).unwrap().is_none());
    let all = s.vm_summaries_after(None, 10).unwrap();
    let names: Vec<_> = all.iter().map(|v| v.vm.name.as_str()).collect();
    assert_eq!(names, ["a", "b"], "by name");
    assert_eq!(all[0], one);
    assert!(!all[1].has_key_protector && !all[1].settings.tpm_enabled);
    // The summary agrees with the full record.
    let (full_vm, full) = s.vm_with_security(a.id).unwrap().unwrap();
    assert_eq!(full_vm, one.vm);
    assert_eq!(full.settings, one.settings);
    assert_eq!(
        full.key_protector.as_deref().map(<[u8]>::len),
        Some(100_000)
    );
    assert_eq!(full.key_protector_set.unwrap().by, "t");
}

#[test]
fn vms_are_listed_in_pages_by_name_from_where_the_last_page_ended() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    // Added out of order; one name sorts before another's prefix, one is not ASCII.
    for name in ["m", "b", "ab", "a", "é", "z", "b2"] {
        let v = vm(name);
        s.add_vm(&v).unwrap();
        if name == "m" {
            s.update_vm_security(
                v.id,
                "t",
                &mut |sec| {
                    sec.settings.tpm_enabled = true;
                    sec.key_protector = Some(b"kp".to_vec());
                    Ok(())
                },
                None,
            )
            .unwrap();
        }
    }
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s.vms_after(after.as_deref(), 3).unwrap();
        let summaries = s.vm_summaries_after(after.as_deref(), 3).unwrap();
        assert_eq!(
            summaries.iter().map(|v| &v.vm).collect::<Vec<_>>(),
            page.iter().collect::<Vec<_>>(),
            "summaries page like VMs"
        );
        let full = s.vms_with_security_after(after.as_deref(), 3).unwrap();
        assert_eq!(
            full.iter().map(|(vm, _)| vm).collect::<Vec<_>>(),
            page.iter().collect::<Vec<_>>(),
            "full records page like VMs"
        );
        for (vm, sec) in &full {
            assert_eq!(*sec, s.vm_security(vm.id).unwrap());
        }
        let names: Vec<String> = page.iter().map(|v| v.name.clone()).collect();
        after = names.last().cloned();
        let last = names.len() < 3;
        pages.push(names);
        if last {
            break;
        }
    }
    assert_eq!(
        pages,
        [vec!["a", "ab", "b"], vec!["b2", "m", "z"], vec!["é"],]
    );
    assert!(s.vms_after(Some("é"), 3).unwrap().is_empty());
    assert!(s.vms_after(None, 0).unwrap().is_empty());
}

#[test]
fn jobs_are_listed_in_pages_by_instance_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = OffsetDateTime::now_utc();
    for id in ["J3", "J1", "J5", "J2", "J4"] {
        s.insert_job(&completed_job(id, now)).unwrap();
    }
    let ids = |page: Vec<Job>| page.into_iter().map(|j| j.instance_id).collect::<Vec<_>>();
    assert_eq!(ids(s.jobs_after(None, 2).unwrap()), ["J1", "J2"]);
    assert_eq!(ids(s.jobs_after(Some("J2"), 2).unwrap()), ["J3", "J4"]);
    assert_eq!(ids(s.jobs_after(Some("J4"), 2).unwrap()), ["J5"]);
    assert!(s.jobs_after(Some("J5"), 2).unwrap().is_empty());
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

fn audit_at(s: &SqliteStore, at: OffsetDateTime, operation: &str) -> i64 {
    s.append_audit(&AuditRecord {
        seq: 0,
        at,
        actor: "a".into(),
        operation: operation.into(),
        vm: None,
        outcome: AuditOutcome::Succeeded,
        detail: String::new(),
    })
    .unwrap()
}

fn seqs(s: &SqliteStore) -> Vec<i64> {
    s.audit(0, usize::MAX)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect()
}

#[test]
fn pruning_by_count_removes_the_oldest_in_bounded_batches_each_recorded_with_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = OffsetDateTime::now_utc();
    for n in 0..35 {
        audit_at(&s, now, &format!("op{n}"));
    }
    let keep = AuditRetention {
        max_records: Some(10),
        max_age: None,
    };
    let pruned = s.prune_audit(&keep, now, 10, "vmsec").unwrap();
    assert_eq!(
        pruned,
        vec![
            AuditPruned {
                first: 1,
                last: 10,
                record: 36
            },
            AuditPruned {
                first: 11,
                last: 20,
                record: 37
            },
            AuditPruned {
                first: 21,
                last: 25,
                record: 38
            },
        ],
        "at most one batch per transaction, the newest 10 kept"
    );
    // What remains is contiguous from the first kept record: the numbering is accounted
    // for by the range records, never silently missing.
    assert_eq!(seqs(&s), (26..=38).collect::<Vec<_>>());
    let log = s.audit(35, 10).unwrap();
    for (r, (first, last)) in log.iter().zip([(1, 10), (11, 20), (21, 25)]) {
        assert_eq!(r.operation, AUDIT_PRUNED);
        assert_eq!(r.actor, "vmsec");
        assert!(
            r.detail
                .starts_with(&format!("records {first}\u{2013}{last} pruned")),
            "{}",
            r.detail
        );
        assert!(r.detail.contains("beyond the newest 10"), "{}", r.detail);
    }
    // A second run prunes only what the first one's own records pushed out.
    let again = s.prune_audit(&keep, now, 10, "vmsec").unwrap();
    assert_eq!(
        again,
        vec![AuditPruned {
            first: 26,
            last: 28,
            record: 39
        }]
    );
}

#[test]
fn pruning_by_age_removes_only_the_old_prefix_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = OffsetDateTime::now_utc();
    let old = now - time::Duration::days(400);
    for _ in 0..5 {
        audit_at(&s, old, "old");
    }
    audit_at(&s, now - time::Duration::days(1), "recent");
    // Written after a recent one with an old clock: pruning it would leave a hole.
    audit_at(&s, old, "skewed");
    let keep = AuditRetention {
        max_records: None,
        max_age: Some(time::Duration::days(365)),
    };
    let pruned = s.prune_audit(&keep, now, 1000, "vmsec").unwrap();
    assert_eq!(
        pruned,
        vec![AuditPruned {
            first: 1,
            last: 5,
            record: 8
        }]
    );
    assert_eq!(seqs(&s), vec![6, 7, 8]);
    let record = &s.audit(7, 1).unwrap()[0];
    assert!(record.detail.contains("older than"), "{}", record.detail);
}

#[test]
fn a_retention_that_keeps_everything_prunes_nothing_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = OffsetDateTime::now_utc();
    for _ in 0..3 {
        audit_at(&s, now, "op");
    }
    for keep in [
        AuditRetention {
            max_records: None,
            max_age: None,
        },
        AuditRetention {
            max_records: Some(3),
            max_age: Some(time::Duration::days(1)),
        },
    ] {
        assert_eq!(s.prune_audit(&keep, now, 10, "vmsec").unwrap(), vec![]);
    }
    assert_eq!(seqs(&s), vec![1, 2, 3]);
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
    s.insert_job(&completed_job("J1", OffsetDateTime::now_utc()))
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
