//! Jobs: ordering, concurrency without lost writes, and recovery after a crash.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use support::*;
use time::OffsetDateTime;
use uuid::Uuid;
use vmsec_service::Service;
use vmsec_store::{Job, JobOwner, JobState, Store};

#[test]
fn thirty_two_concurrent_set_key_protectors_on_one_vm_all_complete_in_order_with_full_history() {
    let w = world();
    let vm = w.vm("a");
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|n| {
                let w = &w;
                s.spawn(move || {
                    w.service
                        .set_key_protector(&admin(), vm.id.into(), kp(n))
                        .unwrap()
                        .instance_id
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let jobs: Vec<Job> = ids
        .iter()
        .map(|id| {
            w.service
                .wait_job(&admin(), id, Duration::from_secs(60))
                .unwrap()
        })
        .collect();
    assert!(jobs.iter().all(|j| j.state == JobState::Completed));
    let last = jobs.iter().max_by_key(|j| j.finish_time).unwrap();
    let sec = w.store.vm_security(vm.id).unwrap();
    // The job that completed last wrote the final state.
    let last_n = ids.iter().position(|i| *i == last.instance_id).unwrap() as u32;
    assert_eq!(sec.key_protector, Some(kp(last_n)));
    // Every other KP is in the history exactly once: no write was lost.
    let history: Vec<Vec<u8>> = w
        .store
        .kp_history(vm.id)
        .unwrap()
        .into_iter()
        .map(|h| h.key_protector)
        .collect();
    assert_eq!(history.len(), 31);
    let mut all: HashSet<Vec<u8>> = history.into_iter().collect();
    all.insert(sec.key_protector.unwrap());
    assert_eq!(all.len(), 32);
    // Jobs of one VM run in the order they were submitted: finish times follow submission.
    let mut by_submission = jobs.clone();
    by_submission.sort_by_key(|j| (j.time_submitted, j.start_time));
    for pair in by_submission.windows(2) {
        assert!(
            pair[0].finish_time <= pair[1].start_time,
            "jobs of one VM must not overlap"
        );
    }
}

#[test]
fn thirty_two_concurrent_set_key_protectors_on_thirty_two_vms_all_land() {
    let w = world();
    let vms: Vec<_> = (0..32).map(|i| w.vm(&format!("vm{i}"))).collect();
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = vms
            .iter()
            .enumerate()
            .map(|(n, vm)| {
                let w = &w;
                s.spawn(move || {
                    w.service
                        .set_key_protector(&admin(), vm.id.into(), kp(n as u32))
                        .unwrap()
                        .instance_id
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for id in &ids {
        let job = w
            .service
            .wait_job(&admin(), id, Duration::from_secs(60))
            .unwrap();
        assert_eq!(job.state, JobState::Completed);
    }
    for (n, vm) in vms.iter().enumerate() {
        assert_eq!(
            w.store.vm_security(vm.id).unwrap().key_protector,
            Some(kp(n as u32))
        );
    }
}

/// A job left Running by a process that is gone.
fn orphan(host: Uuid, pid: u32) -> Job {
    let now = OffsetDateTime::now_utc();
    Job {
        instance_id: Uuid::new_v4().to_string().to_uppercase(),
        method: "SetKeyProtector".into(),
        vm: None,
        state: JobState::Running,
        error_code: 0,
        error_description: String::new(),
        percent_complete: 0,
        submitted_by: "someone".into(),
        time_submitted: now,
        start_time: Some(now),
        finish_time: None,
        time_before_removal: vmsec_service::TIME_BEFORE_REMOVAL,
        owner: JobOwner {
            host,
            pid,
            start_ticks: 1,
        },
    }
}

#[test]
fn a_job_whose_process_died_is_marked_failed_at_next_start_and_others_are_left_alone() {
    let w = world();
    let host = w.store.host().unwrap().guid;
    // A pid that surely ran and ended: a child we spawned and reaped.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let dead = orphan(host, dead_pid);
    let other_host = orphan(Uuid::new_v4(), dead_pid);
    w.store.insert_job(&dead).unwrap();
    w.store.insert_job(&other_host).unwrap();

    let reopened = Service::open(
        w.store.clone() as Arc<dyn Store>,
        vmsec_service::MasterKey::at(w.dir.path().join("master.key")),
    )
    .unwrap();
    let job = w.store.job(&dead.instance_id).unwrap().unwrap();
    assert_eq!(job.state, JobState::Exception);
    assert_eq!(job.error_code, 32768);
    assert!(
        job.error_description.contains("interrupted"),
        "{}",
        job.error_description
    );
    assert!(job.error_description.contains("nothing of it was applied"));
    // A job of another host (a shared PostgreSQL store) is that host's to recover.
    assert_eq!(
        w.store.job(&other_host.instance_id).unwrap().unwrap().state,
        JobState::Running
    );
    drop(reopened);
}

#[test]
fn finished_jobs_are_removed_after_time_before_removal() {
    let w = world();
    let vm = w.vm("a");
    let job = w.set_kp(&vm, kp(1));
    let later =
        job.finish_time.unwrap() + vmsec_service::TIME_BEFORE_REMOVAL + time::Duration::seconds(1);
    assert_eq!(
        w.store
            .remove_expired_jobs(job.finish_time.unwrap())
            .unwrap(),
        0
    );
    assert_eq!(w.store.remove_expired_jobs(later).unwrap(), 1);
    assert!(w.store.job(&job.instance_id).unwrap().is_none());
}
