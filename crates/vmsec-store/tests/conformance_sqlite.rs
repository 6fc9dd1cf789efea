//! The SQLite store against the backend-independent Store suite (`vmsec_store::conformance`).

use vmsec_store::Store;
use vmsec_store::sqlite::SqliteStore;

/// Each case gets a store of its own in a directory of its own, removed afterwards.
fn with_fresh_store(run: &dyn Fn(&dyn Store)) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db"), "conformance").unwrap();
    run(&store);
}

vmsec_store::store_conformance_tests!(with_fresh_store);

#[test]
fn run_all_runs_every_case_on_a_store_of_its_own() {
    let runs = std::cell::Cell::new(0);
    vmsec_store::conformance::run_all(&|run| {
        runs.set(runs.get() + 1);
        with_fresh_store(run);
    });
    assert_eq!(runs.get(), vmsec_store::conformance::CASES.len());
}
