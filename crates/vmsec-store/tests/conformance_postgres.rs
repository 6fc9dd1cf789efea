//! The PostgreSQL store against the backend-independent Store suite, each case on a
//! database of its own on the test cluster (`VMSEC_TEST_PG`, started by scripts/test).

use vmsec_store::Store;
use vmsec_store::conformance::pg::TestDb;
use vmsec_store::postgres::PgStore;

fn with_fresh_store(run: &dyn Fn(&dyn Store)) {
    let Some(db) = TestDb::create() else { return };
    let store = PgStore::open(&db.url, "conformance").unwrap();
    run(&store);
    drop(store);
    drop(db);
}

vmsec_store::store_conformance_tests!(with_fresh_store);
