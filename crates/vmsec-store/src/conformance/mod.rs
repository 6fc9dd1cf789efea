//! The behaviour every [`Store`] backend must have, as checks any backend's tests can run.
//!
//! Each case is a `pub fn(&dyn Store)` that panics (with `assert!`) when the store does
//! not behave as the trait promises. A case expects a fresh, empty store of its own, and
//! relies only on the trait: anything that needs to know the backend (files, pragmas,
//! crash recovery) belongs in that backend's own tests.
//!
//! A backend's integration test runs every case as its own `#[test]` with
//! [`store_conformance_tests!`](crate::store_conformance_tests), given a function that
//! opens a fresh store, hands it to the case, and cleans up afterwards:
//!
//! ```ignore
//! fn with_fresh_store(run: &dyn Fn(&dyn vmsec_store::Store)) {
//!     let dir = tempfile::tempdir().unwrap();
//!     run(&SqliteStore::open(dir.path().join("s.db"), "conformance").unwrap());
//! }
//! vmsec_store::store_conformance_tests!(with_fresh_store);
//! ```
//!
//! Only built with the `conformance` feature: it is test code, kept out of release builds.

mod audit;
mod fleet;
mod guardians;
mod jobs;
pub mod pg;
mod users;
mod vms;

pub use audit::*;
pub use fleet::*;
pub use guardians::*;
pub use jobs::*;
pub use users::*;
pub use vms::*;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::*;

/// One behaviour of the suite: the name of its function, and the function.
#[derive(Clone, Copy)]
pub struct Case {
    pub name: &'static str,
    pub run: fn(&dyn Store),
}

/// The one list of the suite's cases: calls `$then!` with `$($args)*;` and every case's name.
/// [`CASES`] and [`store_conformance_tests!`](crate::store_conformance_tests) are both made
/// from it, so they cannot disagree.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_cases {
    ($then:path; $($args:tt)*) => {
        $then!($($args)*;
            users_are_kept_by_name,
            a_user_name_is_taken_once,
            vms_are_found_by_id_and_by_name_and_listed_by_name,
            vm_names_and_guids_are_unique,
            a_vm_starts_with_the_security_record_it_was_added_with,
            removing_a_vm_removes_its_security_record_and_history,
            the_security_of_an_unknown_vm_is_not_found,
            a_security_change_is_stored_whole_and_read_back_the_same_every_way,
            setting_a_key_protector_records_who_and_when_and_keeps_the_old_one_in_history,
            key_protector_history_is_bounded_and_newest_first,
            a_rejected_change_writes_nothing,
            a_job_finished_with_its_change_is_one_transaction,
            key_protectors_lists_every_vm_that_has_one,
            a_summary_has_the_settings_and_whether_a_key_protector_is_set,
            a_user_read_with_a_summary_or_security_record_is_each_read_apart,
            vms_are_listed_in_pages_by_name_from_where_the_last_page_ended,
            jobs_are_kept_and_updated_by_instance_id,
            a_job_instance_id_is_taken_once,
            unfinished_jobs_are_those_new_or_running,
            finished_jobs_are_removed_once_their_time_has_passed,
            jobs_are_listed_in_pages_by_instance_id,
            the_audit_log_appends_in_sequence_and_reads_back_what_was_appended,
            concurrent_appends_each_get_their_own_sequence_number,
            audit_queries_filter_by_time_vm_and_actor_in_either_order_and_page,
            pruning_by_count_removes_the_oldest_in_bounded_batches_each_recorded_with_its_range,
            pruning_by_age_removes_only_the_old_prefix_of_the_log,
            a_retention_that_keeps_everything_prunes_nothing_and_records_nothing,
            pruning_every_record_keeps_the_numbering_going,
            guardians_are_kept_by_name,
            a_guardian_name_is_taken_once,
            the_opening_host_is_listed_and_touching_it_is_seen,
            a_lease_is_taken_renewed_and_released_by_its_host,
            a_new_lease_fences_off_the_old_token,
            an_expired_lease_is_lost,
            a_lease_is_of_a_known_vm_and_goes_with_it,
        );
    };
}

macro_rules! cases {
    (; $($case:ident),* $(,)?) => {
        /// Every case of the suite, in the order [`store_conformance_tests!`](crate::store_conformance_tests) runs them.
        pub const CASES: &[Case] = &[$(Case { name: stringify!($case), run: $case }),*];
    };
}

crate::__store_conformance_cases!(cases;);

/// A case, ready to run on the store it is given.
pub type RunCase<'a> = &'a dyn Fn(&dyn Store);

/// What a backend gives the suite: a function that opens a fresh, empty store, runs the
/// case on it, and cleans up after it (a temporary directory, a database schema). It
/// wraps the case rather than returning a store so that the store never outlives what it
/// needs.
pub type WithFreshStore<'a> = dyn Fn(RunCase<'_>) + 'a;

/// Runs every case of [`CASES`], each on the fresh store `with` hands it; the first case
/// that fails panics. Prefer [`store_conformance_tests!`](crate::store_conformance_tests),
/// which makes each case a test of its own.
pub fn run_all(with: &WithFreshStore<'_>) {
    for case in CASES {
        with(&|store: &dyn Store| (case.run)(store));
    }
}

/// One `#[test]` per case of [`conformance`](crate::conformance), each on the fresh store
/// that `$with` (a `fn(&dyn Fn(&dyn Store))`, see the module's documentation) hands it.
#[macro_export]
macro_rules! store_conformance_tests {
    ($with:expr) => {
        $crate::__store_conformance_cases!($crate::store_conformance_tests; @each $with);
    };
    (@each $with:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let with: &$crate::conformance::WithFreshStore<'_> = &$with;
                with(&$crate::conformance::$case);
            }
        )*
    };
}

/// A time the store keeps exactly: whole seconds (backends keep microseconds).
fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_780_000_000 + secs).unwrap()
}

fn vm(name: &str) -> Vm {
    Vm {
        id: Uuid::new_v4(),
        name: name.into(),
        created: at(0),
    }
}

/// `sec` as the store reads it back: [`Store::update_vm_security`] returns the provenance
/// time it took from the clock, which the store keeps only to the microsecond.
fn as_stored(mut sec: VmSecurity) -> VmSecurity {
    if let Some(p) = &mut sec.key_protector_set {
        p.at = p.at.replace_nanosecond(p.at.microsecond() * 1000).unwrap();
    }
    sec
}

/// Sets the key protector of `id` to `kp` as `actor`; returns the record as stored.
fn set_kp(s: &dyn Store, id: Uuid, actor: &str, kp: Option<&[u8]>) -> VmSecurity {
    let sec = s
        .update_vm_security(
            id,
            actor,
            &mut |sec| {
                sec.key_protector = kp.map(<[u8]>::to_vec);
                Ok(())
            },
            None,
        )
        .unwrap();
    as_stored(sec)
}

/// A SetKeyProtector job submitted, run and completed at `now`, of no VM: a fixture for
/// the suite and for any test that needs a stored job (the service's among them).
pub fn completed_job(instance_id: &str, now: OffsetDateTime) -> Job {
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

/// Appends a record of `operation` at `at` and returns its sequence number (a fixture).
pub fn audit_at(s: &dyn Store, at: OffsetDateTime, operation: &str) -> i64 {
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

/// The sequence numbers of every audit record, oldest first (a fixture).
pub fn seqs(s: &dyn Store) -> Vec<i64> {
    s.audit(0, usize::MAX)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect()
}
