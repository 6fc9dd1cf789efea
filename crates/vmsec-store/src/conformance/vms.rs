//! VMs, their security records, key protector history, and jobs finished with a change.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{as_stored, at, completed_job, set_kp, vm};
use crate::*;

/// A VM is found by its GUID and by its name, the list is by name, and a removal is
/// reported once.
pub fn vms_are_found_by_id_and_by_name_and_listed_by_name(s: &dyn Store) {
    let (b, a) = (vm("b"), vm("a"));
    s.add_vm(&b).unwrap();
    s.add_vm(&a).unwrap();
    assert_eq!(s.vm(a.id).unwrap(), Some(a.clone()));
    assert_eq!(s.vm_by_name("b").unwrap(), Some(b.clone()));
    assert_eq!(s.vm(Uuid::new_v4()).unwrap(), None);
    assert_eq!(s.vm_by_name("c").unwrap(), None);
    assert_eq!(s.vms().unwrap(), [a.clone(), b.clone()]);
    assert!(s.remove_vm(b.id).unwrap());
    assert!(!s.remove_vm(b.id).unwrap());
    assert_eq!(s.vms().unwrap(), [a]);
}

/// A second VM with a taken name or a taken GUID is [`StoreError::AlreadyExists`], and is
/// not added.
pub fn vm_names_and_guids_are_unique(s: &dyn Store) {
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
    assert_eq!(s.vms().unwrap(), [a]);
}

/// A VM added with a security record (moved from another host) has exactly that record,
/// provenance included; one added without has the empty record.
pub fn a_vm_starts_with_the_security_record_it_was_added_with(s: &dyn Store) {
    let moved = vm("moved");
    let sec = VmSecurity {
        settings: SecuritySettings {
            tpm_enabled: true,
            shielding_requested: true,
            encrypt_state_and_vm_migration_traffic: true,
            ..SecuritySettings::default()
        },
        key_protector: Some(b"kp".to_vec()),
        key_protector_set: Some(Provenance {
            by: "admin@other-host".into(),
            at: at(5),
        }),
        last_known_good: Some(b"lkg".to_vec()),
        security_policy: Some(b"policy".to_vec()),
        sealed_state_key: Some(b"sealed".to_vec()),
    };
    s.add_vm_with_security(&moved, &sec).unwrap();
    assert!(
        sec == s.vm_security(moved.id).unwrap(),
        "the record as given"
    );
    let plain = vm("plain");
    s.add_vm(&plain).unwrap();
    assert_eq!(s.vm_security(plain.id).unwrap(), VmSecurity::empty());
    assert!(s.kp_history(moved.id).unwrap().is_empty());
}

/// Removing a VM removes its security record and key protector history with it: a VM
/// added again with the same GUID starts empty.
pub fn removing_a_vm_removes_its_security_record_and_history(s: &dyn Store) {
    let v = vm("a");
    s.add_vm(&v).unwrap();
    set_kp(s, v.id, "t", Some(b"one"));
    set_kp(s, v.id, "t", Some(b"two"));
    assert_eq!(s.kp_history(v.id).unwrap().len(), 1);
    assert!(s.remove_vm(v.id).unwrap());
    assert!(s.kp_history(v.id).unwrap().is_empty());
    assert!(matches!(s.vm_security(v.id), Err(StoreError::NotFound(_))));
    assert!(s.key_protectors().unwrap().is_empty());
    s.add_vm(&v).unwrap();
    assert_eq!(s.vm_security(v.id).unwrap(), VmSecurity::empty());
    assert!(s.kp_history(v.id).unwrap().is_empty());
}

/// The security record of a VM the store does not have is [`StoreError::NotFound`] (or
/// `None` where the method returns an option), and an update of it never runs the change.
pub fn the_security_of_an_unknown_vm_is_not_found(s: &dyn Store) {
    let id = Uuid::new_v4();
    assert!(matches!(s.vm_security(id), Err(StoreError::NotFound(_))));
    assert!(s.vm_with_security(id).unwrap().is_none());
    assert!(s.vm_summary(id).unwrap().is_none());
    let mut ran = false;
    let r = s.update_vm_security(
        id,
        "t",
        &mut |_| {
            ran = true;
            Ok(())
        },
        None,
    );
    assert!(matches!(
        r,
        Err(UpdateError::Store(StoreError::NotFound(_)))
    ));
    assert!(!ran);
}

/// What a change sets is stored as a whole, returned by the update, and read back the same
/// by every method that reads the record.
pub fn a_security_change_is_stored_whole_and_read_back_the_same_every_way(s: &dyn Store) {
    let v = vm("a");
    s.add_vm(&v).unwrap();
    let stored = s
        .update_vm_security(
            v.id,
            "t",
            &mut |sec| {
                sec.settings.ksd_enabled = true;
                sec.settings.app_container_launch_opt_out = true;
                sec.last_known_good = Some(b"lkg".to_vec());
                sec.security_policy = Some(b"policy".to_vec());
                sec.sealed_state_key = Some(b"sealed".to_vec());
                Ok(())
            },
            None,
        )
        .unwrap();
    assert!(stored.settings.ksd_enabled && stored.settings.app_container_launch_opt_out);
    assert!(!stored.settings.tpm_enabled);
    assert_eq!(stored.last_known_good.as_deref(), Some(&b"lkg"[..]));
    assert_eq!(stored.security_policy.as_deref(), Some(&b"policy"[..]));
    assert_eq!(stored.sealed_state_key.as_deref(), Some(&b"sealed"[..]));
    assert_eq!(s.vm_security(v.id).unwrap(), stored);
    let (read_vm, read) = s.vm_with_security(v.id).unwrap().unwrap();
    assert_eq!(read_vm, v);
    assert_eq!(read, stored);
    let page = s.vms_with_security_after(None, 10).unwrap();
    assert_eq!(page, [(v, stored)]);
}

/// Setting a key protector records the actor and the time as its provenance, whatever the
/// change wrote there; the one it replaces goes to the history with its own provenance and
/// the replacing actor. A change that leaves the key protector alone touches neither, and
/// clearing it leaves no provenance.
pub fn setting_a_key_protector_records_who_and_when_and_keeps_the_old_one_in_history(
    s: &dyn Store,
) {
    // One story, over 80 lines: each step checks the provenance and history that the steps
    // before it left, so split cases would each have to replay them.
    let v = vm("a");
    s.add_vm(&v).unwrap();
    let before = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let first = set_kp(s, v.id, "alice", Some(b"one"));
    let after = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    let alice = first.key_protector_set.clone().unwrap();
    assert_eq!(alice.by, "alice");
    assert!(
        before < alice.at && alice.at < after,
        "set now: {}",
        alice.at
    );
    assert!(s.kp_history(v.id).unwrap().is_empty(), "nothing replaced");

    let settings_only = as_stored(
        s.update_vm_security(
            v.id,
            "bob",
            &mut |sec| {
                sec.settings.tpm_enabled = true;
                Ok(())
            },
            None,
        )
        .unwrap(),
    );
    assert_eq!(settings_only.key_protector_set, Some(alice.clone()));
    let same = set_kp(s, v.id, "bob", Some(b"one"));
    assert_eq!(
        same.key_protector_set,
        Some(alice.clone()),
        "an equal one is no change"
    );
    assert!(s.kp_history(v.id).unwrap().is_empty());

    let forged = as_stored(
        s.update_vm_security(
            v.id,
            "carol",
            &mut |sec| {
                sec.key_protector = Some(b"two".to_vec());
                sec.key_protector_set = Some(Provenance {
                    by: "mallory".into(),
                    at: at(0),
                });
                Ok(())
            },
            None,
        )
        .unwrap(),
    );
    let carol = forged.key_protector_set.clone().unwrap();
    assert_eq!(
        carol.by, "carol",
        "the store records the actor, not the change"
    );
    assert!(carol.at >= alice.at);
    assert_eq!(s.vm_security(v.id).unwrap(), forged);
    let history = s.kp_history(v.id).unwrap();
    assert_eq!(
        history,
        [KpHistoryEntry {
            key_protector: b"one".to_vec(),
            set: Some(alice),
            replaced: carol.clone(),
        }]
    );

    let cleared = set_kp(s, v.id, "erin", None);
    assert_eq!(
        (cleared.key_protector, cleared.key_protector_set),
        (None, None)
    );
    let history = s.kp_history(v.id).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].key_protector, b"two");
    assert_eq!(history[0].set, Some(carol));
    assert_eq!(history[0].replaced.by, "erin");
}

/// The history keeps the newest [`KP_HISTORY_LIMIT`] replaced key protectors, newest first.
pub fn key_protector_history_is_bounded_and_newest_first(s: &dyn Store) {
    let v = vm("a");
    s.add_vm(&v).unwrap();
    for n in 0..(KP_HISTORY_LIMIT + 5) {
        set_kp(
            s,
            v.id,
            &format!("actor{n}"),
            Some(n.to_string().as_bytes()),
        );
    }
    let h = s.kp_history(v.id).unwrap();
    assert_eq!(h.len(), KP_HISTORY_LIMIT);
    let last = KP_HISTORY_LIMIT + 5 - 1;
    assert_eq!(h[0].key_protector, (last - 1).to_string().into_bytes());
    assert_eq!(h[0].set.as_ref().unwrap().by, format!("actor{}", last - 1));
    assert_eq!(h[0].replaced.by, format!("actor{last}"));
    let oldest = &h[KP_HISTORY_LIMIT - 1];
    assert_eq!(
        oldest.key_protector,
        (last - KP_HISTORY_LIMIT).to_string().into_bytes()
    );
}

/// A change that fails leaves the record, its provenance and the history as they were, and
/// its own error comes back.
pub fn a_rejected_change_writes_nothing(s: &dyn Store) {
    let v = vm("a");
    s.add_vm(&v).unwrap();
    let kept = set_kp(s, v.id, "t", Some(b"one"));
    let r = s.update_vm_security(
        v.id,
        "u",
        &mut |sec| {
            sec.settings.tpm_enabled = true;
            sec.key_protector = Some(b"two".to_vec());
            Err("no".into())
        },
        None,
    );
    assert!(matches!(r, Err(UpdateError::Rejected(e)) if e.to_string() == "no"));
    assert_eq!(s.vm_security(v.id).unwrap(), kept);
    assert!(s.kp_history(v.id).unwrap().is_empty());
}

/// The job and audit record given with a change are written exactly when the change is: not
/// at all when it is rejected, once when it is stored.
pub fn a_job_finished_with_its_change_is_one_transaction(s: &dyn Store) {
    let v = vm("a");
    s.add_vm(&v).unwrap();
    let now = at(10);
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
    assert_eq!(s.job("J1").unwrap().unwrap(), job);
    let log = s.audit(0, 10).unwrap();
    assert_eq!(
        log.len(),
        1,
        "the completion is audited once, with the change"
    );
    assert_eq!(log[0].detail, "job J1");
    assert_eq!(log[0].outcome, AuditOutcome::Succeeded);
}

/// Every VM with a key protector, and only those, with its current key protector.
pub fn key_protectors_lists_every_vm_that_has_one(s: &dyn Store) {
    let (a, b, c) = (vm("a"), vm("b"), vm("c"));
    for v in [&a, &b, &c] {
        s.add_vm(v).unwrap();
    }
    set_kp(s, a.id, "t", Some(b"old"));
    set_kp(s, a.id, "t", Some(b"a"));
    set_kp(s, c.id, "t", Some(b"c"));
    let mut all = s.key_protectors().unwrap();
    all.sort();
    let mut expected = vec![(a.id, b"a".to_vec()), (c.id, b"c".to_vec())];
    expected.sort();
    assert_eq!(all, expected);
}

/// A summary has the VM, its settings and whether it has a key protector, agreeing with the
/// full record; summaries are listed by name.
pub fn a_summary_has_the_settings_and_whether_a_key_protector_is_set(s: &dyn Store) {
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

/// A user read with a VM's summary, or with its security record, is the same user and
/// record as read apart, and either may be missing without the other being lost.
pub fn a_user_read_with_a_summary_or_security_record_is_each_read_apart(s: &dyn Store) {
    let a = vm("a");
    s.add_vm(&a).unwrap();
    let bob = User {
        name: "bob".into(),
        role: Role::Operator,
        password_hash: "$argon2id$bob".into(),
        created: at(5),
    };
    s.add_user(&bob).unwrap();
    let (user, summary) = s.user_and_vm_summary("bob", a.id).unwrap();
    assert_eq!(user, Some(bob.clone()));
    assert_eq!(summary, s.vm_summary(a.id).unwrap());
    assert!(summary.is_some());
    let unknown = Uuid::new_v4();
    assert_eq!(
        s.user_and_vm_summary("bob", unknown).unwrap(),
        (Some(bob.clone()), None)
    );
    let (nobody, summary) = s.user_and_vm_summary("carol", a.id).unwrap();
    assert_eq!(nobody, None);
    assert_eq!(summary.map(|v| v.vm.id), Some(a.id));

    s.update_vm_security(
        a.id,
        "t",
        &mut |sec| {
            sec.key_protector = Some(b"kp".to_vec());
            Ok(())
        },
        None,
    )
    .unwrap();
    let (user, security) = s.user_and_vm_security("bob", a.id).unwrap();
    assert_eq!(user, Some(bob.clone()));
    assert!(
        security == Some(s.vm_security(a.id).unwrap()),
        "the record read with the user is the record read alone"
    );
    assert_eq!(
        security.and_then(|sec| sec.key_protector),
        Some(b"kp".to_vec())
    );
    let (user, security) = s.user_and_vm_security("bob", unknown).unwrap();
    assert_eq!(user, Some(bob));
    assert!(security.is_none(), "an unknown VM has no security record");
    let (nobody, security) = s.user_and_vm_security("carol", a.id).unwrap();
    assert_eq!(nobody, None);
    assert!(security.is_some());
}

/// VMs, their summaries and their full records page alike, by name in byte order (not a
/// locale's), each page starting after the last name of the one before.
pub fn vms_are_listed_in_pages_by_name_from_where_the_last_page_ended(s: &dyn Store) {
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
