//! The schema, as forward migrations applied on open.

use rusqlite::{Connection, TransactionBehavior};

use super::values::map_err;
use crate::StoreError;

/// Forward migrations, applied in order on open; `PRAGMA user_version` counts those applied.
/// Never edit a released one: add another.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE host (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    name  TEXT NOT NULL,
    guid  TEXT NOT NULL
);
CREATE TABLE users (
    name           TEXT PRIMARY KEY,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'reader')),
    password_hash  TEXT NOT NULL,
    created_us     INTEGER NOT NULL
);
CREATE TABLE vms (
    guid        TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_us  INTEGER NOT NULL,
    tpm_enabled                             INTEGER NOT NULL DEFAULT 0,
    ksd_enabled                             INTEGER NOT NULL DEFAULT 0,
    shielding_requested                     INTEGER NOT NULL DEFAULT 0,
    data_protection_requested               INTEGER NOT NULL DEFAULT 0,
    encrypt_state_and_vm_migration_traffic  INTEGER NOT NULL DEFAULT 0,
    virtualization_based_security_opt_out   INTEGER NOT NULL DEFAULT 0,
    bind_to_host_tpm                        INTEGER NOT NULL DEFAULT 0,
    app_container_launch_opt_out            INTEGER NOT NULL DEFAULT 0,
    key_protector     BLOB,
    kp_set_by         TEXT,
    kp_set_us         INTEGER,
    last_known_good   BLOB,
    security_policy   BLOB,
    sealed_state_key  BLOB
);
CREATE TABLE kp_history (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    vm_guid         TEXT NOT NULL REFERENCES vms (guid) ON DELETE CASCADE,
    key_protector   BLOB NOT NULL,
    set_by          TEXT,
    set_us          INTEGER,
    replaced_by     TEXT NOT NULL,
    replaced_us     INTEGER NOT NULL
);
CREATE INDEX kp_history_vm ON kp_history (vm_guid, id);
CREATE TABLE jobs (
    instance_id        TEXT PRIMARY KEY,
    method             TEXT NOT NULL,
    vm_guid            TEXT,
    job_state          INTEGER NOT NULL,
    error_code         INTEGER NOT NULL,
    error_description  TEXT NOT NULL,
    percent_complete   INTEGER NOT NULL,
    submitted_by       TEXT NOT NULL,
    time_submitted_us  INTEGER NOT NULL,
    start_time_us      INTEGER,
    finish_time_us     INTEGER,
    time_before_removal_us INTEGER NOT NULL,
    owner              TEXT NOT NULL
);
CREATE INDEX jobs_unfinished ON jobs (job_state) WHERE job_state IN (2, 4);
CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us      INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    operation  TEXT NOT NULL,
    vm_guid    TEXT,
    outcome    TEXT NOT NULL,
    detail     TEXT NOT NULL
);
"#,
    r#"
CREATE TABLE guardians (
    name                        TEXT PRIMARY KEY,
    encryption_cert             BLOB NOT NULL,
    signing_cert                BLOB NOT NULL,
    encryption_cert_sig_alg     TEXT NOT NULL,
    encryption_cert_sig         BLOB NOT NULL,
    metadata                    BLOB,
    sealed_private_keys         BLOB,
    created_us                  INTEGER NOT NULL
);
"#,
    // The fabric's state (a Key Protection Service's store; empty on a host).
    r#"
CREATE TABLE fabric_hosts (
    name      TEXT PRIMARY KEY,
    key_hash  TEXT NOT NULL UNIQUE,
    host_key  BLOB NOT NULL,
    added_us  INTEGER NOT NULL
);
CREATE TABLE fabric_settings (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    deny_before_us   INTEGER,
    primary_guardian TEXT
);
"#,
    // Fleet state: on one file there is one host, but the rules are the same as on a shared
    // store, so that the service never asks which backend it has.
    r#"
ALTER TABLE host ADD COLUMN last_seen_us INTEGER NOT NULL DEFAULT 0;
CREATE TABLE vm_leases (
    vm_guid     TEXT PRIMARY KEY REFERENCES vms (guid) ON DELETE CASCADE,
    host_guid   TEXT NOT NULL,
    token       INTEGER NOT NULL,
    expires_us  INTEGER NOT NULL
);
CREATE TABLE lease_tokens (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    last  INTEGER NOT NULL
);
INSERT INTO lease_tokens (id, last) VALUES (1, 0);
"#,
    // TPM-mode attestation: hosts registered by EK (each also a fabric_hosts row, keyed by
    // the EK) and the baselines their PCRs are compared with.
    r#"
CREATE TABLE fabric_tpm_hosts (
    name     TEXT PRIMARY KEY,
    ek_cert  BLOB
);
CREATE TABLE fabric_tpm_baselines (
    name      TEXT PRIMARY KEY,
    document  BLOB NOT NULL,
    added_us  INTEGER NOT NULL
);
"#,
    // Audit records numbered without AUTOINCREMENT: it updated the sqlite_sequence row with
    // every append, so each call's commit wrote two pages to the WAL instead of one (half
    // the bytes the log writes). A record still takes the number after the highest: the
    // newest record is never removed (pruning writes its own record before it deletes), so
    // no number is given twice.
    r#"
CREATE TABLE audit_renumbered (
    seq        INTEGER PRIMARY KEY,
    at_us      INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    operation  TEXT NOT NULL,
    vm_guid    TEXT,
    outcome    TEXT NOT NULL,
    detail     TEXT NOT NULL
);
INSERT INTO audit_renumbered (seq, at_us, actor, operation, vm_guid, outcome, detail)
    SELECT seq, at_us, actor, operation, vm_guid, outcome, detail FROM audit;
DROP TABLE audit;
ALTER TABLE audit_renumbered RENAME TO audit;
DELETE FROM sqlite_sequence WHERE name = 'audit';
"#,
];

/// Applies the migrations this file has not had yet, in one transaction; refuses a file
/// from a newer vmsec rather than write to a schema it does not know.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let applied: usize = tx
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(map_err)?
        .try_into()
        .map_err(|_| StoreError::Corrupt("negative schema version".into()))?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the store has schema version {applied}, newer than this vmsec ({}); upgrade vmsec",
            MIGRATIONS.len()
        )));
    }
    if applied == MIGRATIONS.len() {
        // Nothing written: setting the version anyway made every open (each CLI command)
        // a commit of its own with its fsync.
        return tx.commit().map_err(map_err);
    }
    for sql in &MIGRATIONS[applied..] {
        tx.execute_batch(sql).map_err(map_err)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)
        .map_err(map_err)?;
    tx.commit().map_err(map_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSERT: &str = "INSERT INTO audit (at_us, actor, operation, vm_guid, outcome, detail) \
                          VALUES (1, 'a', 'op', NULL, 'succeeded', '')";

    fn seqs(conn: &Connection) -> Vec<i64> {
        let mut st = conn.prepare("SELECT seq FROM audit ORDER BY seq").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A file written before the audit log was renumbered keeps its records and their
    /// numbers, and the next record follows the highest.
    #[test]
    fn the_audit_log_of_an_older_file_keeps_its_numbers_and_goes_on_from_them() {
        let mut conn = Connection::open_in_memory().unwrap();
        let renumbered = MIGRATIONS.len() - 1;
        for sql in &MIGRATIONS[..renumbered] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", renumbered as i64)
            .unwrap();
        for _ in 0..3 {
            conn.execute(INSERT, []).unwrap();
        }
        conn.execute("DELETE FROM audit WHERE seq = 1", []).unwrap();

        migrate(&mut conn).unwrap();
        assert_eq!(seqs(&conn), [2, 3]);
        conn.execute(INSERT, []).unwrap();
        assert_eq!(seqs(&conn), [2, 3, 4]);
        let sequenced: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_sequence WHERE name = 'audit'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(sequenced, 0);
    }

    /// An audit append (the write of every call) changes one page: the WAL grows by one
    /// frame per commit, not two.
    #[test]
    fn an_audit_append_commits_one_page() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("s.db")).unwrap();
        super::super::wal::enable(&conn).unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        migrate(&mut conn).unwrap();
        conn.execute(INSERT, []).unwrap();
        let wal = dir.path().join("s.db-wal");
        let before = std::fs::metadata(&wal).unwrap().len();
        conn.execute(INSERT, []).unwrap();
        let page: u64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        // A WAL frame is a 24-byte header and the page.
        assert_eq!(std::fs::metadata(&wal).unwrap().len() - before, 24 + page);
    }
}
