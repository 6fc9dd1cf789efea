//! `vmsec serve`'s configuration: defaults, then the TOML file (`--config`), then the command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::CliError;

/// The TOML file. Every key is optional.
///
/// ```toml
/// listen = ["127.0.0.1:5986"]        # HTTPS
/// http_listen = []                   # plain HTTP, only when asked for
/// tls_cert = "/etc/vmsec/cert.pem"   # default: DATA/tls/cert.pem, created self-signed
/// tls_key = "/etc/vmsec/key.pem"
/// max_envelope_size = 4194304        # largest request body, bytes
/// max_reply_size = 16777216          # largest reply, bytes (a client's MaxEnvelopeSize may lower it)
/// enumeration_expiry_secs = 300
/// max_enumeration_mib = 256          # memory open enumerations hold between Pulls, all together
///                                    # (one user may hold a quarter of it)
/// max_enumerations_per_user = 64     # open enumeration contexts of one user (1,024 in all)
/// max_connections = 512              # open connections, all together
/// max_connections_per_source = 64    # open connections of one address (IPv6: one /64)
/// max_body_memory_mib = 128          # memory request bodies hold while read or handled (a quarter
///                                    # per user); past it a body gets 503 with Retry-After
/// header_timeout_secs = 10           # a request's headers (and the TLS handshake) must arrive in this
/// body_timeout_secs = 60             # a request's body must arrive in this
/// idle_timeout_secs = 120            # an idle keep-alive connection is closed after this, once it
///                                    # has authenticated (before: after header_timeout_secs)
/// log_level = "info"                 # or a tracing filter such as "vmsec=debug,info"
/// audit_retention_records = 1000000  # audit records kept, the newest; 0: no limit by count
/// audit_retention_days = 365         # audit records older than this are pruned; 0: no limit by age
/// store = "postgres://vmsec:PASSWORD@db.example:5432/vmsec"  # a store shared by several hosts;
///                                    # default: the SQLite file in the data directory
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<Vec<SocketAddr>>,
    pub http_listen: Option<Vec<SocketAddr>>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_envelope_size: Option<usize>,
    pub max_reply_size: Option<usize>,
    pub enumeration_expiry_secs: Option<u64>,
    pub max_enumeration_mib: Option<usize>,
    pub max_enumerations_per_user: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_connections_per_source: Option<usize>,
    pub max_body_memory_mib: Option<usize>,
    pub header_timeout_secs: Option<u64>,
    pub body_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub log_level: Option<String>,
    pub audit_retention_records: Option<u64>,
    pub audit_retention_days: Option<u64>,
    /// A PostgreSQL URL: the store several hosts share.
    pub store: Option<StoreUrl>,
}

/// A store URL, which may hold a password: shown without it, `Debug` included.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct StoreUrl(pub String);

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&vmsec_store::postgres::redact(&self.0))
    }
}

/// Audit records kept by default: at ~200 bytes each, about 200 MB of store.
pub const DEFAULT_AUDIT_RETENTION_RECORDS: u64 = 1_000_000;
/// Age past which audit records are pruned by default.
pub const DEFAULT_AUDIT_RETENTION_DAYS: u64 = 365;
/// Longest age `audit_retention_days` takes (a bigger one would overflow a timestamp).
pub const MAX_AUDIT_RETENTION_DAYS: u64 = 100 * 365;

/// The audit retention of the configuration (docs/audit.md, "Retention").
pub fn audit_retention(cfg: &FileConfig) -> vmsec_store::AuditRetention {
    let records = cfg
        .audit_retention_records
        .unwrap_or(DEFAULT_AUDIT_RETENTION_RECORDS);
    let days = cfg
        .audit_retention_days
        .unwrap_or(DEFAULT_AUDIT_RETENTION_DAYS);
    vmsec_store::AuditRetention {
        max_records: (records > 0).then_some(records),
        max_age: (days > 0)
            .then(|| time::Duration::days(days.min(MAX_AUDIT_RETENTION_DAYS) as i64)),
    }
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, CliError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::new(format!("cannot read config {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| CliError::new(format!("config {}: {e}", path.display())))
    }
}

/// Smallest request limit allowed: a key protector with 4 guardians at RSA 4096 as uint8[]
/// elements is about 1 MiB of XML.
pub const MIN_ENVELOPE: usize = 1024 * 1024;

pub fn check(cfg: &FileConfig) -> Result<(), CliError> {
    if let Some(url) = &cfg.store
        && !vmsec_store::postgres::is_url(&url.0)
    {
        return Err(CliError::new(format!(
            "store {url:?} is not a postgres:// URL (leave it out for the SQLite file in the data directory)"
        )));
    }
    if let Some(n) = cfg.max_envelope_size
        && n < MIN_ENVELOPE
    {
        return Err(CliError::new(format!(
            "max_envelope_size {n} is too small: a key protector needs at least {MIN_ENVELOPE}"
        )));
    }
    for (name, v) in [
        ("max_enumerations_per_user", cfg.max_enumerations_per_user),
        ("max_connections", cfg.max_connections),
        ("max_connections_per_source", cfg.max_connections_per_source),
        ("max_body_memory_mib", cfg.max_body_memory_mib),
    ] {
        if v == Some(0) {
            return Err(CliError::new(format!("{name} must be at least 1")));
        }
    }
    if let (Some(all), Some(one)) = (cfg.max_body_memory_mib, cfg.max_envelope_size)
        && all.saturating_mul(1024 * 1024) < one
    {
        return Err(CliError::new(format!(
            "max_body_memory_mib {all} cannot hold one body of max_envelope_size {one}"
        )));
    }
    for (name, v) in [
        ("header_timeout_secs", cfg.header_timeout_secs),
        ("body_timeout_secs", cfg.body_timeout_secs),
        ("idle_timeout_secs", cfg.idle_timeout_secs),
    ] {
        if v == Some(0) {
            return Err(CliError::new(format!("{name} must be at least 1")));
        }
    }
    if let Some(d) = cfg.audit_retention_days
        && d > MAX_AUDIT_RETENTION_DAYS
    {
        return Err(CliError::new(format!(
            "audit_retention_days {d} is more than {MAX_AUDIT_RETENTION_DAYS}; use 0 for no limit by age"
        )));
    }
    if cfg.tls_cert.is_some() != cfg.tls_key.is_some() {
        return Err(CliError::new(
            "tls_cert and tls_key go together: give both or neither",
        ));
    }
    Ok(())
}
