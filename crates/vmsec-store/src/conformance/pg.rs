//! Databases of their own for tests against the PostgreSQL cluster the test command starts
//! (`scripts/pg`, URL in `VMSEC_TEST_PG`).

/// A new, empty database on the test cluster, dropped (with its connections) when this is.
pub struct TestDb {
    admin: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl TestDb {
    /// A fresh database, or `None` when no test cluster is configured (the test then has
    /// nothing to run against and says so). Under `CI=true` a missing cluster is a failure.
    pub fn create() -> Option<TestDb> {
        let Ok(admin) = std::env::var("VMSEC_TEST_PG") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "VMSEC_TEST_PG is not set: scripts/test starts the PostgreSQL cluster these tests need"
            );
            eprintln!(
                "skipped: VMSEC_TEST_PG is not set (scripts/test starts a PostgreSQL cluster)"
            );
            return None;
        };
        let name = format!("vmsec_t_{}", uuid::Uuid::new_v4().simple());
        let mut c = ::postgres::Client::connect(&admin, ::postgres::NoTls)
            .unwrap_or_else(|e| panic!("the test cluster (VMSEC_TEST_PG) is unreachable: {e}"));
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let (base, _) = admin.rsplit_once('/').expect("a URL ending in /DBNAME");
        Some(TestDb {
            url: format!("{base}/{name}"),
            admin,
            name,
        })
    }

    /// Runs `sql` on the test database as its owner (for what a test does behind vmsec's back).
    pub fn execute(&self, sql: &str) {
        let mut c = ::postgres::Client::connect(&self.url, ::postgres::NoTls).unwrap();
        c.batch_execute(sql).unwrap();
    }

    /// Closes every connection to the test database, as a server restart would, and returns
    /// once their server processes are gone (termination is a signal, handled a moment later).
    pub fn terminate_connections(&self) {
        let mut c = ::postgres::Client::connect(&self.admin, ::postgres::NoTls).unwrap();
        let others = "FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()";
        c.execute(
            &format!("SELECT pg_terminate_backend(pid) {others}"),
            &[&self.name],
        )
        .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while c
            .query_one(&format!("SELECT count(*) {others}"), &[&self.name])
            .unwrap()
            .get::<_, i64>(0)
            > 0
        {
            assert!(
                std::time::Instant::now() < deadline,
                "backends outlived termination"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut c) = ::postgres::Client::connect(&self.admin, ::postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
