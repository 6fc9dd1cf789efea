//! The HTTP(S) shell around [`Engine`]: `POST /wsman` and `GET /metrics`.
//!
//! Every request needs valid HTTP Basic credentials before anything else happens: the
//! `Authorization` header is checked as soon as the headers are in, and no, bad or
//! unknown credentials get 401 with `WWW-Authenticate: Basic realm="WSMAN"` at once,
//! before a byte of the body is read. Password checks are rate limited per source
//! ([`LoginRateLimit`]), their token taken before the hash runs. Only then is the body
//! read: capped in size (wsman:EncodingLimit fault past the cap) and, with every other
//! body being read or handled, in memory ([`ServerConfig::max_body_memory`], a share per
//! user; 503 past it). Connections are limited in all and per source address. A
//! connection that has not authenticated gets the header timeout as its idle timeout;
//! one that has, the idle timeout. Refusals are logged at most once per interval.
//!
//! Provider calls (password checks and the whole engine) run on blocking threads, except
//! credentials verified before and a small quick request (Get, Release, Identify), which
//! are answered on the connection's thread ([`Provider`] says what that asks of a
//! provider): such a body is at most [`READ_AT_ONCE_MAX`] bytes, and the XML entry point
//! parses in time linear in its input, so that work is bounded. Shutdown stops accepting
//! and lets in-flight requests finish within a grace period.

mod auth;
mod body;
mod connection;
mod limits;
mod metrics;
mod ratelimit;
mod reply;
mod request;
mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::body::{Frame, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

/// The connection and log limits, for the project's other HTTPS services (the KPS).
pub use limits::{ConnectionRefused, ConnectionSlot, ConnectionSlots, LogThrottle, source_key};
pub use metrics::Metrics;
pub use ratelimit::{LoginCheck, LoginLimiter, LoginRateLimit};
pub use tls::{TlsSource, server_config};

use crate::engine::{Engine, EngineConfig};
use crate::provider::{Principal, Provider};
use crate::wire::envelope;
use crate::wire::fault::{Fault, FaultKind};
use crate::wire::reply::Parts;
use auth::{after_refusal, authenticate, stands};
use body::read_body;
use connection::{Activity, serve_connection};
use limits::{BodyBudget, BodyReservation};
use reply::{Reply, SOAP_CONTENT_TYPE, TEXT_CONTENT_TYPE, reply, reply_parts};
pub use request::READ_AT_ONCE_MAX;
use request::{blocking, handle};

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// HTTPS listen addresses (5986 by convention).
    pub https_listen: Vec<SocketAddr>,
    /// Plain-HTTP listen addresses; empty unless asked for.
    pub http_listen: Vec<SocketAddr>,
    /// Certificate and key; required when `https_listen` is not empty.
    pub tls: Option<TlsSource>,
    /// Largest request body read (default 4 MiB, sized for key protectors).
    pub max_request_bytes: usize,
    /// Time allowed for a request's headers (and the TLS handshake).
    pub header_read_timeout: Duration,
    /// Time allowed for a request's body.
    pub body_read_timeout: Duration,
    /// Idle keep-alive connections are closed after this long, once they have
    /// authenticated; before, after the header timeout (if shorter).
    pub idle_timeout: Duration,
    /// Most connections open at once; more are closed on accept.
    pub max_connections: usize,
    /// Most connections one source address (IPv6: one /64) may have open at once.
    pub max_connections_per_source: usize,
    /// Most memory the bodies of requests being read or handled may hold together; a body
    /// that would pass it gets 503 with `Retry-After`.
    pub max_body_memory: usize,
    /// Most of that one user's bodies may hold.
    pub max_body_memory_per_user: usize,
    /// Most requests handled at once on blocking threads (authentication, the provider).
    /// Requests beyond it wait their turn on the runtime: a few busy threads serve a 2-core
    /// machine better than one per connection fighting over the cores and the store.
    pub max_concurrent_requests: usize,
    /// Time in-flight requests get to finish after shutdown is asked.
    pub shutdown_grace: Duration,
    /// Failed-login limits.
    pub login_rate: LoginRateLimit,
    /// The engine's limits (reply size, enumeration expiry, …).
    pub engine: EngineConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            https_listen: vec![SocketAddr::from(([127, 0, 0, 1], 5986))],
            http_listen: Vec::new(),
            tls: None,
            max_request_bytes: 4 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
            max_connections: 512,
            max_connections_per_source: 64,
            max_body_memory: 128 * 1024 * 1024,
            max_body_memory_per_user: 32 * 1024 * 1024,
            max_concurrent_requests: 4 * std::thread::available_parallelism()
                .map_or(2, |n| n.get()),
            shutdown_grace: Duration::from_secs(30),
            login_rate: LoginRateLimit::default(),
            engine: EngineConfig::default(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS certificate or key is unusable (never includes key material).
    #[error("TLS: {0}")]
    Tls(String),
    /// Nothing to listen on, or HTTPS without a certificate.
    #[error("configuration: {0}")]
    Config(String),
}

/// The TLS send buffer of a connection accepted while the server holds no more connections
/// than it has cores. Such a client waits on each reply: rustls then hands each 16 KiB record
/// to the socket as soon as it is sealed (as nginx's 16k `ssl_buffer_size` does), so the
/// client decrypts while the rest is encrypted. GetKeyProtector at one connection, five
/// alternating pairs of bench/cost.sh: 0.81-1.01 -> 0.94-1.05 of nginx's requests/s, for ~80
/// us more system time per call (22 more writes), which idle cores have. A connection accepted
/// when the server is busier keeps rustls's 64 KiB, which takes fewer syscalls (9 writes
/// for a 490 KB reply instead of 31) when every core is taken: at 16 connections 16 KiB
/// records cost a fifth more CPU per GetKeyProtector.
const FEW_CONNECTIONS_TLS_BUFFER: usize = 16 * 1024;

struct Shared<P> {
    engine: Arc<Engine<P>>,
    metrics: Metrics,
    limiter: LoginLimiter,
    /// Cores of the machine: see [`FEW_CONNECTIONS_TLS_BUFFER`].
    cores: usize,
    config: ServerConfig,
    /// Turns on the blocking threads; see `ServerConfig::max_concurrent_requests`.
    turns: Semaphore,
    slots: Arc<ConnectionSlots>,
    bodies: Arc<BodyBudget>,
    /// Connections refused on accept, for the log.
    refused: LogThrottle,
}

/// How often a flood of refused connections is told in the log.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl<P> Shared<P> {
    fn refused_connection(&self, peer: SocketAddr, why: ConnectionRefused) {
        self.metrics.connection_refused();
        let Some(n) = self.refused.hit(Instant::now()) else {
            return;
        };
        let (max, per_source) = (
            self.config.max_connections,
            self.config.max_connections_per_source,
        );
        match why {
            ConnectionRefused::Global => tracing::warn!(
                %peer, refused = n,
                "connection limit reached ({max} open); closing new connections"
            ),
            ConnectionRefused::PerSource => tracing::warn!(
                %peer, refused = n,
                "a source holds its most connections ({per_source}); closing its new ones"
            ),
        }
    }

    /// Tells the refusals a flood left untold, once its interval has passed.
    fn flush_refusals(&self) {
        if let Some(n) = self.refused.flush(Instant::now()) {
            tracing::warn!(refused = n, "connections refused by the connection limits");
        }
    }
}

struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
}

/// A bound, not yet running server.
pub struct Server<P> {
    shared: Arc<Shared<P>>,
    listeners: Vec<Listener>,
}

impl<P: Provider> Server<P> {
    /// Loads TLS material and binds every listen address.
    pub async fn bind(config: ServerConfig, provider: Arc<P>) -> Result<Server<P>, ServerError> {
        if config.https_listen.is_empty() && config.http_listen.is_empty() {
            return Err(ServerError::Config("no listen address".into()));
        }
        let acceptor = match (&config.tls, config.https_listen.is_empty()) {
            (_, true) => None,
            (Some(source), false) => Some(TlsAcceptor::from(tls::server_config(source)?)),
            (None, false) => {
                return Err(ServerError::Config(
                    "HTTPS listen addresses need a TLS certificate and key".into(),
                ));
            }
        };
        let mut listeners = Vec::new();
        let addrs = config
            .https_listen
            .iter()
            .map(|a| (a, acceptor.clone()))
            .chain(config.http_listen.iter().map(|a| (a, None)));
        for (addr, tls) in addrs {
            let tcp = TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: *addr,
                    source,
                })?;
            listeners.push(Listener { tcp, tls });
        }
        let engine = Arc::new(Engine::new(provider, config.engine.clone()));
        let limiter = LoginLimiter::new(config.login_rate);
        Ok(Server {
            shared: Arc::new(Shared {
                engine,
                metrics: Metrics::default(),
                limiter,
                cores: std::thread::available_parallelism().map_or(1, usize::from),
                turns: Semaphore::new(config.max_concurrent_requests.max(1)),
                slots: ConnectionSlots::new(
                    config.max_connections,
                    config.max_connections_per_source,
                ),
                // Whatever the budget says, one body of the largest size allowed fits.
                bodies: BodyBudget::new(
                    config.max_body_memory.max(config.max_request_bytes),
                    config
                        .max_body_memory_per_user
                        .max(config.max_request_bytes),
                ),
                refused: LogThrottle::new(REFUSAL_LOG_INTERVAL),
                config,
            }),
            listeners,
        })
    }

    /// Bound addresses: HTTPS ones, then plain-HTTP ones (ports resolved).
    pub fn local_addrs(&self) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        let mut https = Vec::new();
        let mut http = Vec::new();
        for l in &self.listeners {
            if let Ok(addr) = l.tcp.local_addr() {
                if l.tls.is_some() {
                    https.push(addr)
                } else {
                    http.push(addr)
                }
            }
        }
        (https, http)
    }

    /// Serves until `shutdown` completes, then stops accepting and waits (up to the
    /// grace period) for open connections to finish their requests.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        // Each connection holds a clone of `done_tx`; when all are dropped, all are closed.
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        let mut accept_tasks = Vec::new();
        for listener in self.listeners {
            let shared = self.shared.clone();
            let stop = stop_rx.clone();
            let done = done_tx.clone();
            accept_tasks.push(tokio::spawn(accept_loop(listener, shared, stop, done)));
        }
        drop(done_tx);
        let flusher = {
            let shared = self.shared.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(REFUSAL_LOG_INTERVAL);
                loop {
                    tick.tick().await;
                    shared.flush_refusals();
                }
            })
        };
        shutdown.await;
        flusher.abort();
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        let _ = stop_tx.send(true);
        for t in accept_tasks {
            let _ = t.await;
        }
        let grace = self.shared.config.shutdown_grace;
        if tokio::time::timeout(grace, done_rx.recv()).await.is_err() {
            tracing::warn!(
                ?grace,
                "connections still open after the shutdown grace period"
            );
        }
    }
}

/// Completes on Ctrl-C or SIGTERM (what `vmsec serve` passes to [`Server::run`]).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn accept_loop<P: Provider>(
    listener: Listener,
    shared: Arc<Shared<P>>,
    mut stop: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.tcp.accept() => r,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match shared.slots.take(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                shared.refused_connection(peer, why);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let stop = stop.clone();
        let done = done.clone();
        let tls = listener.tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        shared.config.header_read_timeout,
                        acceptor.accept(stream),
                    );
                    match handshake.await {
                        Ok(Ok(mut tls_stream)) => {
                            if shared.slots.open() <= shared.cores {
                                tls_stream
                                    .get_mut()
                                    .1
                                    .set_buffer_limit(Some(FEW_CONNECTIONS_TLS_BUFFER));
                            }
                            serve_connection(tls_stream, peer, shared, stop).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
                None => serve_connection::<TcpStream, P>(stream, peer, shared, stop).await,
            }
            drop(slot);
            drop(done);
        });
    }
}
