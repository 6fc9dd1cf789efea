//! The audit log and its pruning.

use time::OffsetDateTime;

use super::{at, audit_at, seqs};
use crate::*;

/// Appends are numbered 1, 2, 3… in order; a read returns the records after a number,
/// oldest first, at most `limit`, each as appended with its number.
pub fn the_audit_log_appends_in_sequence_and_reads_back_what_was_appended(s: &dyn Store) {
    let vm = uuid::Uuid::new_v4();
    let records: Vec<AuditRecord> = (0..5)
        .map(|n| AuditRecord {
            seq: 0,
            at: at(n),
            actor: format!("actor{n}"),
            operation: format!("op{n}"),
            vm: (n % 2 == 0).then_some(vm),
            outcome: [
                AuditOutcome::Allowed,
                AuditOutcome::Denied,
                AuditOutcome::Failed,
            ][n as usize % 3],
            detail: format!("detail {n}"),
        })
        .collect();
    for (n, record) in records.iter().enumerate() {
        assert_eq!(s.append_audit(record).unwrap(), n as i64 + 1);
    }
    let after2 = s.audit(2, 10).unwrap();
    let expected: Vec<AuditRecord> = records[2..]
        .iter()
        .zip(3..)
        .map(|(r, seq)| AuditRecord { seq, ..r.clone() })
        .collect();
    assert_eq!(after2, expected);
    assert_eq!(seqs_of(&s.audit(0, 2).unwrap()), [1, 2]);
    assert!(s.audit(5, 10).unwrap().is_empty());
}

/// A query reads newest or oldest first between two sequence numbers, keeps only the
/// records of its time, VM and actor (all of them at once), and stops at its limit, so a
/// reader can walk the log in pages from either end.
pub fn audit_queries_filter_by_time_vm_and_actor_in_either_order_and_page(s: &dyn Store) {
    let (v1, v2) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    for n in 0..12i64 {
        s.append_audit(&AuditRecord {
            seq: 0,
            at: at(n * 10),
            actor: ["alice", "bob", "local:root"][n as usize % 3].into(),
            operation: format!("op{n}"),
            vm: [Some(v1), Some(v2), None, Some(v1)][n as usize % 4],
            outcome: AuditOutcome::Succeeded,
            detail: String::new(),
        })
        .unwrap();
    }
    let q = |f: &dyn Fn(&mut AuditQuery)| {
        let mut query = AuditQuery::newest(100);
        f(&mut query);
        seqs_of(&s.audit_query(&query).unwrap())
    };
    assert_eq!(q(&|_| {}), (1..=12).rev().collect::<Vec<_>>());
    assert_eq!(q(&|q| q.limit = 3), [12, 11, 10]);
    // The next page of the newest first starts below the last one.
    assert_eq!(
        q(&|q| {
            q.limit = 3;
            q.before = Some(10)
        }),
        [9, 8, 7]
    );
    assert_eq!(
        q(&|q| {
            q.newest_first = false;
            q.after = 4;
            q.limit = 3
        }),
        [5, 6, 7]
    );
    // Record n (seq n + 1) was written at n * 10 seconds: since 80 s is seq 9 on.
    assert_eq!(q(&|q| q.since = Some(at(80))), [12, 11, 10, 9]);
    // vm v1 is n % 4 in {0, 3}: seqs 1, 4, 5, 8, 9, 12.
    assert_eq!(q(&|q| q.vm = Some(v1)), [12, 9, 8, 5, 4, 1]);
    // bob is n % 3 == 1: seqs 2, 5, 8, 11.
    assert_eq!(q(&|q| q.actor = Some("bob".into())), [11, 8, 5, 2]);
    assert_eq!(
        q(&|q| {
            q.actor = Some("bob".into());
            q.vm = Some(v1)
        }),
        [8, 5]
    );
    assert_eq!(
        q(&|q| {
            q.actor = Some("bob".into());
            q.vm = Some(v1);
            q.since = Some(at(50));
            q.newest_first = false
        }),
        [8]
    );
    // An actor is matched whole, not as a prefix or pattern.
    assert!(q(&|q| q.actor = Some("local".into())).is_empty());
    assert!(q(&|q| q.actor = Some("%".into())).is_empty());
    assert!(q(&|q| q.vm = Some(uuid::Uuid::new_v4())).is_empty());
    // Each record comes back whole.
    let one = s
        .audit_query(&AuditQuery {
            after: 2,
            before: Some(4),
            ..AuditQuery::newest(10)
        })
        .unwrap();
    assert_eq!(one, s.audit(2, 1).unwrap());
}

fn seqs_of(records: &[AuditRecord]) -> Vec<i64> {
    records.iter().map(|r| r.seq).collect()
}

/// Appends from several threads at once each get a number of their own, and the log holds
/// every record under the number its append returned.
pub fn concurrent_appends_each_get_their_own_sequence_number(s: &dyn Store) {
    let returned: Vec<(String, i64)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                scope.spawn(move || {
                    (0..25)
                        .map(|n| {
                            let op = format!("t{t}-{n}");
                            let seq = audit_at(s, at(0), &op);
                            (op, seq)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    let log = s.audit(0, 1000).unwrap();
    assert_eq!(seqs_of(&log), (1..=100).collect::<Vec<_>>());
    for (op, seq) in returned {
        assert_eq!(log[seq as usize - 1].operation, op, "record {seq}");
    }
}

/// Pruning by count removes the oldest records beyond the newest `max_records`, at most
/// `batch` per transaction, each removed range stated by a record of its own; what remains
/// is contiguous.
pub fn pruning_by_count_removes_the_oldest_in_bounded_batches_each_recorded_with_its_range(
    s: &dyn Store,
) {
    let now = OffsetDateTime::now_utc();
    for n in 0..35 {
        audit_at(s, now, &format!("op{n}"));
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
    assert_eq!(seqs(s), (26..=38).collect::<Vec<_>>());
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

/// Pruning by age removes the records older than `max_age`, but only the prefix of the log
/// that is: an old record after a recent one stays, so the log has no hole.
pub fn pruning_by_age_removes_only_the_old_prefix_of_the_log(s: &dyn Store) {
    let now = OffsetDateTime::now_utc();
    let old = now - time::Duration::days(400);
    for _ in 0..5 {
        audit_at(s, old, "old");
    }
    audit_at(s, now - time::Duration::days(1), "recent");
    // Written after a recent one with an old clock: pruning it would leave a hole.
    audit_at(s, old, "skewed");
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
    assert_eq!(seqs(s), vec![6, 7, 8]);
    let record = &s.audit(7, 1).unwrap()[0];
    assert!(record.detail.contains("older than"), "{}", record.detail);
}

/// A retention that keeps every record removes none and writes no range record.
pub fn a_retention_that_keeps_everything_prunes_nothing_and_records_nothing(s: &dyn Store) {
    let now = OffsetDateTime::now_utc();
    for _ in 0..3 {
        audit_at(s, now, "op");
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
    assert_eq!(seqs(s), vec![1, 2, 3]);
}

/// A retention that prunes every record leaves the record that says so, numbered after
/// every record it removed, and appends go on from there: a number once read is never
/// given to another record.
pub fn pruning_every_record_keeps_the_numbering_going(s: &dyn Store) {
    let now = OffsetDateTime::now_utc();
    let old = now - time::Duration::days(400);
    for _ in 0..3 {
        audit_at(s, old, "old");
    }
    let keep = AuditRetention {
        max_records: None,
        max_age: Some(time::Duration::days(365)),
    };
    let pruned = s.prune_audit(&keep, now, 10, "vmsec").unwrap();
    assert_eq!(
        pruned,
        vec![AuditPruned {
            first: 1,
            last: 3,
            record: 4
        }]
    );
    assert_eq!(seqs(s), vec![4]);
    audit_at(s, now, "new");
    assert_eq!(seqs(s), vec![4, 5]);
}
