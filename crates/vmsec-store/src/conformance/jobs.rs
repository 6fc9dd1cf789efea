//! Jobs.

use super::{at, completed_job};
use crate::*;

fn ids(jobs: Vec<Job>) -> Vec<String> {
    jobs.into_iter().map(|j| j.instance_id).collect()
}

fn running_job(instance_id: &str, submitted: i64) -> Job {
    Job {
        state: JobState::Running,
        percent_complete: 40,
        finish_time: None,
        ..completed_job(instance_id, at(submitted))
    }
}

/// A job reads back as inserted and as last updated, field for field; updating a job the
/// store does not have is [`StoreError::NotFound`]; the list is by submission time, then
/// `InstanceID`.
pub fn jobs_are_kept_and_updated_by_instance_id(s: &dyn Store) {
    let mut j2 = running_job("J2", 20);
    j2.vm = Some(uuid::Uuid::new_v4());
    let (j1, j3) = (running_job("J1", 20), running_job("J0", 30));
    for j in [&j2, &j3, &j1] {
        s.insert_job(j).unwrap();
    }
    assert_eq!(s.job("J2").unwrap(), Some(j2.clone()));
    assert_eq!(s.job("J9").unwrap(), None);
    assert_eq!(ids(s.jobs().unwrap()), ["J1", "J2", "J0"]);

    let finished = Job {
        state: JobState::Exception,
        error_code: 32773,
        error_description: "the key protector is not valid".into(),
        percent_complete: 100,
        finish_time: Some(at(25)),
        time_before_removal: time::Duration::hours(1),
        ..j2.clone()
    };
    s.update_job(&finished).unwrap();
    assert_eq!(s.job("J2").unwrap(), Some(finished));
    assert_eq!(s.job("J1").unwrap(), Some(j1), "other jobs stay");
    let err = s.update_job(&running_job("J9", 1)).unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(s.job("J9").unwrap(), None, "an update creates no job");
}

/// Inserting a job whose `InstanceID` is taken is [`StoreError::AlreadyExists`] and leaves
/// the first as it was.
pub fn a_job_instance_id_is_taken_once(s: &dyn Store) {
    let first = running_job("J1", 1);
    s.insert_job(&first).unwrap();
    let err = s.insert_job(&completed_job("J1", at(2))).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    assert_eq!(s.jobs().unwrap(), [first]);
}

/// Unfinished jobs are the New and Running ones, by submission time.
pub fn unfinished_jobs_are_those_new_or_running(s: &dyn Store) {
    let new = Job {
        state: JobState::New,
        start_time: None,
        ..running_job("J-new", 2)
    };
    let failed = Job {
        state: JobState::Exception,
        ..completed_job("J-failed", at(0))
    };
    for j in [
        &new,
        &running_job("J-running", 1),
        &completed_job("J-done", at(0)),
        &failed,
    ] {
        s.insert_job(j).unwrap();
    }
    assert_eq!(ids(s.unfinished_jobs().unwrap()), ["J-running", "J-new"]);
}

/// Finished jobs (completed or failed) go once `time_before_removal` has passed since they
/// finished, and not before; unfinished jobs stay however old.
pub fn finished_jobs_are_removed_once_their_time_has_passed(s: &dyn Store) {
    // Both finished at 0 and kept 5 minutes.
    let failed = Job {
        state: JobState::Exception,
        ..completed_job("J-failed", at(0))
    };
    s.insert_job(&completed_job("J-done", at(0))).unwrap();
    s.insert_job(&failed).unwrap();
    s.insert_job(&running_job("J-running", -100_000)).unwrap();
    assert_eq!(s.remove_expired_jobs(at(299)).unwrap(), 0);
    assert_eq!(ids(s.jobs().unwrap()), ["J-running", "J-done", "J-failed"]);
    assert_eq!(s.remove_expired_jobs(at(300)).unwrap(), 2);
    assert_eq!(ids(s.jobs().unwrap()), ["J-running"]);
    assert_eq!(s.remove_expired_jobs(at(1_000_000)).unwrap(), 0);
}

/// Jobs page by `InstanceID`, each page starting after the last of the one before.
pub fn jobs_are_listed_in_pages_by_instance_id(s: &dyn Store) {
    for id in ["J3", "J1", "J5", "J2", "J4"] {
        s.insert_job(&completed_job(id, at(0))).unwrap();
    }
    assert_eq!(ids(s.jobs_after(None, 2).unwrap()), ["J1", "J2"]);
    assert_eq!(ids(s.jobs_after(Some("J2"), 2).unwrap()), ["J3", "J4"]);
    assert_eq!(ids(s.jobs_after(Some("J4"), 2).unwrap()), ["J5"]);
    assert!(s.jobs_after(Some("J5"), 2).unwrap().is_empty());
}
