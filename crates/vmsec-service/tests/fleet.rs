//! The service over a store shared by several hosts: whose interrupted jobs a host may
//! recover (only those of hosts that are gone, and its own).

use std::sync::Arc;

use time::OffsetDateTime;
use vmsec_service::{MasterKey, Service};
use vmsec_store::conformance::pg::TestDb;
use vmsec_store::postgres::PgStore;
use vmsec_store::{JobOwner, JobState, Store};

/// A running job of `host`'s process `pid` (which does not run here).
fn running_job(id: &str, host: uuid::Uuid) -> vmsec_store::Job {
    let mut job = vmsec_store::conformance::completed_job(id, OffsetDateTime::now_utc());
    job.state = JobState::Running;
    job.finish_time = None;
    job.percent_complete = 0;
    job.owner = JobOwner {
        host,
        pid: 999_999,
        start_ticks: 1,
    };
    job
}

#[test]
fn a_host_recovers_the_jobs_of_hosts_that_are_gone_and_leaves_live_hosts_jobs_alone() {
    let Some(db) = TestDb::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let live = PgStore::open(&db.url, "live").unwrap();
    let gone = PgStore::open(&db.url, "gone").unwrap();
    live.insert_job(&running_job("of-live", live.host().unwrap().guid))
        .unwrap();
    gone.insert_job(&running_job("of-gone", gone.host().unwrap().guid))
        .unwrap();
    // "gone" last said it was alive an hour ago; "live" just now.
    db.execute("UPDATE hosts SET last_seen = now() - interval '1 hour' WHERE name = 'gone'");
    live.touch_host().unwrap();

    let third: Arc<dyn Store> = Arc::new(PgStore::open(&db.url, "third").unwrap());
    let service =
        Service::open(third.clone(), MasterKey::at(dir.path().join("master.key"))).unwrap();
    let of_gone = third.job("of-gone").unwrap().unwrap();
    assert_eq!(of_gone.state, JobState::Exception);
    assert!(
        of_gone.error_description.contains("interrupted"),
        "{}",
        of_gone.error_description
    );
    // A live host's job: only that host can tell whether its process still runs.
    assert_eq!(
        third.job("of-live").unwrap().unwrap().state,
        JobState::Running
    );
    service.shutdown();
}
