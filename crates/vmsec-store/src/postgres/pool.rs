//! Connections to the server: how each is set up, the bounded pool that reuses them, the
//! statements each has prepared, and how PostgreSQL's errors become [`StoreError`]s.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ::postgres::error::SqlState;
use ::postgres::types::ToSql;
use ::postgres::{Client, Config, GenericClient, IsolationLevel, NoTls, Row, Statement};

use crate::StoreError;

/// Connections one process keeps open at most. Three hosts of 16 stay well under the
/// server's default `max_connections` (100), with room for the CLI beside each.
const POOL_MAX: usize = 16;
/// How long a caller waits for a connection when all are in use.
const POOL_WAIT: Duration = Duration::from_secs(10);
/// Attempts of a write transaction that failed on a serialization failure or a deadlock.
const WRITE_ATTEMPTS: usize = 5;
/// Session settings of every connection. A lock held by another host is waited for a bounded
/// time, never forever; a statement never runs unbounded; and `synchronous_commit` is on
/// whatever the server's default, so that a write acknowledged survives a crash of the
/// server (the "no acknowledged write lost").
const SESSION_SETUP: &str = "SET lock_timeout = '10s'; SET statement_timeout = '60s'; \
     SET idle_in_transaction_session_timeout = '60s'; SET synchronous_commit = on; \
     SET TIME ZONE 'UTC'";

/// A connection and the statements prepared on it, by their text.
pub(super) struct Conn {
    pub(super) client: Client,
    statements: HashMap<&'static str, Statement>,
}

/// Queries on a connection or inside a transaction, each statement prepared once per
/// connection: a prepared statement costs one round trip to execute instead of two.
pub(super) struct Session<'a, C: GenericClient> {
    c: &'a mut C,
    statements: &'a mut HashMap<&'static str, Statement>,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl<C: GenericClient> Session<'_, C> {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.c.prepare(sql).map_err(map_err)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    pub(super) fn query(
        &mut self,
        sql: &'static str,
        p: Params<'_>,
    ) -> Result<Vec<Row>, StoreError> {
        let st = self.statement(sql)?;
        self.c.query(&st, p).map_err(map_err)
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &'static str,
        p: Params<'_>,
    ) -> Result<Option<Row>, StoreError> {
        let st = self.statement(sql)?;
        self.c.query_opt(&st, p).map_err(map_err)
    }

    pub(super) fn query_one(
        &mut self,
        sql: &'static str,
        p: Params<'_>,
    ) -> Result<Row, StoreError> {
        let st = self.statement(sql)?;
        self.c.query_one(&st, p).map_err(map_err)
    }

    pub(super) fn execute(&mut self, sql: &'static str, p: Params<'_>) -> Result<u64, StoreError> {
        let st = self.statement(sql)?;
        self.c.execute(&st, p).map_err(map_err)
    }
}

/// How to reach the server: the parsed URL, TLS when it asks for it, and the URL as it may
/// be shown (without the password).
#[derive(Clone)]
pub(super) struct Target {
    config: Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    shown: String,
}

impl Target {
    pub(super) fn parse(url: &str) -> Result<Target, StoreError> {
        let mut config: Config = url.parse().map_err(|e| {
            StoreError::Unavailable(format!("the store URL is not a PostgreSQL URL: {e}"))
        })?;
        let shown = redacted(&config);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        // A server that vanished without closing the connection (a cut cable, a killed VM)
        // is noticed within seconds rather than at the kernel's default of minutes.
        config.keepalives_idle(Duration::from_secs(5));
        config.tcp_user_timeout(Duration::from_secs(10));
        if config.get_application_name().is_none() {
            config.application_name("vmsec");
        }
        let tls = match config.get_ssl_mode() {
            ::postgres::config::SslMode::Disable => None,
            _ => Some(tls_connector()?),
        };
        Ok(Target { config, tls, shown })
    }

    /// The URL without its password, for messages.
    pub(super) fn shown(&self) -> &str {
        &self.shown
    }

    fn connect(&self) -> Result<Conn, StoreError> {
        let unreachable = |e: ::postgres::Error| {
            StoreError::Unavailable(format!("cannot connect to {}: {e}", self.shown))
        };
        let mut client = match &self.tls {
            None => self.config.connect(NoTls).map_err(unreachable)?,
            Some(tls) => self.config.connect(tls.clone()).map_err(unreachable)?,
        };
        client.batch_execute(SESSION_SETUP).map_err(map_err)?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }
}

/// `user@host:port/dbname`: what a message may say of the URL.
fn redacted(c: &Config) -> String {
    let host = c
        .get_hosts()
        .iter()
        .map(|h| match h {
            ::postgres::config::Host::Tcp(h) => h.clone(),
            ::postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    let port = c
        .get_ports()
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "postgres://{}@{}{}/{}",
        c.get_user().unwrap_or(""),
        host,
        if port.is_empty() {
            String::new()
        } else {
            format!(":{port}")
        },
        c.get_dbname().unwrap_or("")
    )
}

/// TLS to the server with the system's roots, and the file `PGSSLROOTCERT` names (libpq's
/// variable) when set: a private CA is the common case for a database.
fn tls_connector() -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Ok(path) = std::env::var("PGSSLROOTCERT") {
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(&path)
            .map_err(|e| StoreError::Unavailable(format!("PGSSLROOTCERT {path}: {e}")))?;
        for cert in certs {
            let cert =
                cert.map_err(|e| StoreError::Unavailable(format!("PGSSLROOTCERT {path}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| StoreError::Unavailable(format!("PGSSLROOTCERT {path}: {e}")))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Unavailable(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

struct State {
    idle: Vec<Conn>,
    open: usize,
}

pub(super) struct Pool {
    target: Target,
    state: Mutex<State>,
    freed: Condvar,
}

impl Pool {
    pub(super) fn new(target: Target) -> Pool {
        Pool {
            target,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    pub(super) fn target(&self) -> &Target {
        &self.target
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle connection, a new one while fewer than [`POOL_MAX`] are open, or the first
    /// one freed within [`POOL_WAIT`].
    pub(super) fn get(&self) -> Result<Conn, StoreError> {
        let deadline = Instant::now() + POOL_WAIT;
        let mut st = self.lock();
        loop {
            if let Some(c) = st.idle.pop() {
                return Ok(c);
            }
            if st.open < POOL_MAX {
                st.open += 1;
                drop(st);
                return self.target.connect().inspect_err(|_| {
                    self.lock().open -= 1;
                    self.freed.notify_one();
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Busy(format!(
                    "all {POOL_MAX} connections to {} stayed in use",
                    self.target.shown
                )));
            }
            st = self
                .freed
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Returns a connection for reuse. One the server closed (restarted, cut) is dropped, and
    /// the idle ones with it: they were opened to the same server and went the same way, and
    /// each would otherwise fail one more request before it was found out.
    pub(super) fn put_back(&self, conn: Conn) {
        let mut st = self.lock();
        if conn.client.is_closed() {
            st.open -= 1 + st.idle.len();
            st.idle.clear();
        } else {
            st.idle.push(conn);
        }
        drop(st);
        self.freed.notify_one();
    }

    /// Runs `f` on a pooled connection outside any explicit transaction: a single statement
    /// is its own consistent snapshot.
    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(&mut Session<'_, Client>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        off_the_runtime(|| self.with_here(f))
    }

    fn with_here<T>(
        &self,
        f: impl FnOnce(&mut Session<'_, Client>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.get()?;
        let out = {
            let Conn { client, statements } = &mut conn;
            f(&mut Session {
                c: client,
                statements,
            })
        };
        self.put_back(conn);
        out
    }

    /// Runs `f` in one read-write transaction (READ COMMITTED: each operation locks the rows
    /// it changes, `FOR UPDATE`), committing when it returns `Ok`. A transaction that failed
    /// on a serialization failure or a deadlock is run again, up to [`WRITE_ATTEMPTS`] times.
    pub(super) fn write<T>(
        &self,
        f: impl FnMut(&mut Session<'_, ::postgres::Transaction<'_>>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        off_the_runtime(|| self.write_here(f))
    }

    fn write_here<T>(
        &self,
        mut f: impl FnMut(&mut Session<'_, ::postgres::Transaction<'_>>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut attempt = 1;
        loop {
            let mut conn = self.get()?;
            let out = (|| {
                let Conn { client, statements } = &mut conn;
                let mut tx = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::ReadCommitted)
                    .start()
                    .map_err(map_err)?;
                let out = f(&mut Session {
                    c: &mut tx,
                    statements,
                })?;
                tx.commit().map_err(map_err)?;
                Ok(out)
            })();
            self.put_back(conn);
            match out {
                Err(StoreError::Busy(m)) if m.starts_with(RETRY) && attempt < WRITE_ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(2 << attempt));
                }
                other => return other,
            }
        }
    }
}

/// Runs `f`, which blocks on the network, where blocking is allowed. The store's API is
/// synchronous, and some callers (the WS-Man server's authentication) call it from an async
/// runtime's worker thread, where the client's own `block_on` would panic: there the worker
/// hands its other tasks to the rest of the runtime for the while (`block_in_place`).
fn off_the_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// How [`map_err`] marks a failure that running the transaction again may cure.
const RETRY: &str = "conflict with a concurrent transaction";

pub(super) fn map_err(e: ::postgres::Error) -> StoreError {
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection (closed, cut, timed out) or the protocol.
        return StoreError::Unavailable(e.to_string());
    };
    let message = e
        .as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| e.to_string());
    match code {
        c if *c == SqlState::UNIQUE_VIOLATION => StoreError::AlreadyExists(message),
        c if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED => {
            StoreError::Busy(format!("{RETRY}: {message}"))
        }
        c if *c == SqlState::LOCK_NOT_AVAILABLE || *c == SqlState::QUERY_CANCELED => {
            StoreError::Busy(message)
        }
        c if c.code().starts_with("23") => StoreError::Constraint(message),
        c if c.code().starts_with("08")
            || c.code().starts_with("57")
            || c.code().starts_with("53")
            || *c == SqlState::READ_ONLY_SQL_TRANSACTION =>
        {
            StoreError::Unavailable(message)
        }
        c if c.code().starts_with("22") => StoreError::Corrupt(message),
        _ => StoreError::Unavailable(format!("{message} (SQLSTATE {})", code.code())),
    }
}
