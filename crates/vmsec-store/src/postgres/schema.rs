//! The schema on PostgreSQL, as forward migrations applied at open.

use super::pool::{Conn, map_err};
use crate::StoreError;

/// Forward migrations, applied in order; `schema_version` counts those applied. Never edit a
/// released one: add another. Text that is a key or sorted by (`name`, `instance_id`) is
/// `COLLATE "C"`, so that pages are in byte order whatever the database's locale, as on
/// SQLite and as the service's `after` cursors assume.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE hosts (
    guid       uuid PRIMARY KEY,
    name       text COLLATE "C" NOT NULL UNIQUE,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE users (
    name           text COLLATE "C" PRIMARY KEY,
    role           text NOT NULL CHECK (role IN ('admin', 'operator', 'reader')),
    password_hash  text NOT NULL,
    created        timestamptz NOT NULL
);
CREATE TABLE vms (
    guid        uuid PRIMARY KEY,
    name        text COLLATE "C" NOT NULL UNIQUE,
    created     timestamptz NOT NULL,
    tpm_enabled                             boolean NOT NULL DEFAULT false,
    ksd_enabled                             boolean NOT NULL DEFAULT false,
    shielding_requested                     boolean NOT NULL DEFAULT false,
    data_protection_requested               boolean NOT NULL DEFAULT false,
    encrypt_state_and_vm_migration_traffic  boolean NOT NULL DEFAULT false,
    virtualization_based_security_opt_out   boolean NOT NULL DEFAULT false,
    bind_to_host_tpm                        boolean NOT NULL DEFAULT false,
    app_container_launch_opt_out            boolean NOT NULL DEFAULT false,
    key_protector     bytea,
    kp_set_by         text,
    kp_set            timestamptz,
    last_known_good   bytea,
    security_policy   bytea,
    sealed_state_key  bytea
);
CREATE TABLE kp_history (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vm_guid         uuid NOT NULL REFERENCES vms (guid) ON DELETE CASCADE,
    key_protector   bytea NOT NULL,
    set_by          text,
    set_at          timestamptz,
    replaced_by     text NOT NULL,
    replaced_at     timestamptz NOT NULL
);
CREATE INDEX kp_history_vm ON kp_history (vm_guid, id);
CREATE TABLE jobs (
    instance_id        text COLLATE "C" PRIMARY KEY,
    method             text NOT NULL,
    vm_guid            uuid,
    job_state          integer NOT NULL,
    error_code         bigint NOT NULL,
    error_description  text NOT NULL,
    percent_complete   integer NOT NULL,
    submitted_by       text NOT NULL,
    time_submitted     timestamptz NOT NULL,
    start_time         timestamptz,
    finish_time        timestamptz,
    time_before_removal_us bigint NOT NULL,
    owner              text NOT NULL
);
CREATE INDEX jobs_unfinished ON jobs (job_state) WHERE job_state IN (2, 4);
-- Sequence numbers come from audit_counter, not a SEQUENCE: a sequence hands out numbers
-- in the order transactions start, not the order they commit, and leaves gaps on rollback,
-- so a reader following the log (`audit --follow`, `after = last seen`) could skip a record
-- committed late. The counter's row lock makes numbering follow commit order, gap-free.
CREATE TABLE audit_counter (
    id    integer PRIMARY KEY CHECK (id = 1),
    last  bigint NOT NULL
);
INSERT INTO audit_counter (id, last) VALUES (1, 0);
CREATE TABLE audit (
    seq        bigint PRIMARY KEY,
    at         timestamptz NOT NULL,
    actor      text COLLATE "C" NOT NULL,
    operation  text NOT NULL,
    vm_guid    uuid,
    outcome    text NOT NULL,
    detail     text NOT NULL
);
-- Guardians' certificates are the fleet's; the private keys, sealed under one host's
-- master key, are that host's alone, so they live in a table keyed by host.
CREATE TABLE guardians (
    name                        text COLLATE "C" PRIMARY KEY,
    encryption_cert             bytea NOT NULL,
    signing_cert                bytea NOT NULL,
    encryption_cert_sig_alg     text NOT NULL,
    encryption_cert_sig         bytea NOT NULL,
    metadata                    bytea,
    created                     timestamptz NOT NULL
);
CREATE TABLE guardian_keys (
    host_guid            uuid NOT NULL REFERENCES hosts (guid) ON DELETE CASCADE,
    name                 text COLLATE "C" NOT NULL REFERENCES guardians (name) ON DELETE CASCADE,
    sealed_private_keys  bytea NOT NULL,
    PRIMARY KEY (host_guid, name)
);
CREATE SEQUENCE lease_tokens;
CREATE TABLE vm_leases (
    vm_guid    uuid PRIMARY KEY REFERENCES vms (guid) ON DELETE CASCADE,
    host_guid  uuid NOT NULL REFERENCES hosts (guid),
    token      bigint NOT NULL,
    expires    timestamptz NOT NULL
);
CREATE TABLE fabric_hosts (
    name      text COLLATE "C" PRIMARY KEY,
    key_hash  text NOT NULL UNIQUE,
    host_key  bytea NOT NULL,
    added     timestamptz NOT NULL
);
CREATE TABLE fabric_settings (
    id               integer PRIMARY KEY CHECK (id = 1),
    deny_before      timestamptz,
    primary_guardian text
);
"#,
    // TPM-mode attestation: hosts registered by EK (each also a fabric_hosts row, keyed by
    // the EK, and removed with it) and the baselines their PCRs are compared with.
    r#"
CREATE TABLE fabric_tpm_hosts (
    name     text COLLATE "C" PRIMARY KEY REFERENCES fabric_hosts (name) ON DELETE CASCADE,
    ek_cert  bytea
);
CREATE TABLE fabric_tpm_baselines (
    name      text COLLATE "C" PRIMARY KEY,
    document  bytea NOT NULL,
    added     timestamptz NOT NULL
);
"#,
];

/// A key of PostgreSQL's advisory locks, vmsec's own ("vmsec" in ASCII): processes starting
/// at once take turns migrating.
const MIGRATION_LOCK: i64 = 0x76_6d_73_65_63;

/// Applies the migrations the database has not had yet, in one transaction; refuses a
/// database from a newer vmsec rather than write to a schema it does not know.
pub(super) fn migrate(conn: &mut Conn) -> Result<(), StoreError> {
    let mut tx = conn.client.transaction().map_err(map_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(map_err)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS vmsec_schema (version integer NOT NULL)")
        .map_err(map_err)?;
    let applied: Option<i32> = tx
        .query_opt("SELECT version FROM vmsec_schema", &[])
        .map_err(map_err)?
        .map(|r| r.get(0));
    let applied = usize::try_from(applied.unwrap_or(0))
        .map_err(|_| StoreError::Corrupt("negative schema version".into()))?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {applied}, newer than this vmsec ({}); upgrade vmsec",
            MIGRATIONS.len()
        )));
    }
    for sql in &MIGRATIONS[applied..] {
        tx.batch_execute(sql).map_err(map_err)?;
    }
    let version = MIGRATIONS.len() as i32;
    tx.execute("DELETE FROM vmsec_schema", &[])
        .map_err(map_err)?;
    tx.execute(
        "INSERT INTO vmsec_schema (version) VALUES ($1)",
        &[&version],
    )
    .map_err(map_err)?;
    tx.commit().map_err(map_err)
}
