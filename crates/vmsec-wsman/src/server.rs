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
pub use ratelimit::{LoginLimiter, LoginRateLimit};
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

struct Shared<P> {
    engine: Arc<Engine<P>>,
    metrics: Metrics,
    limiter: LoginLimiter,
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
                        Ok(Ok(tls_stream)) => {
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

type Reply = hyper::Response<Chunks>;

/// A reply body sent as the parts it was written in, with its exact length (so
/// `Content-Length`): hyper writes them with one vectored write, and a part shared with
/// other replies (a key protector's XML) is never copied into a buffer of this reply's.
pub(crate) struct Chunks {
    parts: std::collections::VecDeque<Bytes>,
    left: u64,
}

impl Chunks {
    fn new(parts: Vec<Bytes>) -> Chunks {
        let left = parts.iter().map(|b| b.len() as u64).sum();
        Chunks {
            parts: parts.into_iter().filter(|b| !b.is_empty()).collect(),
            left,
        }
    }
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.parts.pop_front();
        if let Some(b) = &next {
            self.left -= b.len() as u64;
        }
        Poll::Ready(next.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// Whether a request's Content-Type may hold a SOAP envelope. WinRM clients send
/// `application/soap+xml`; the XML types are taken too, and so is no Content-Type at all.
fn is_xml_content_type(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value else { return true };
    let Ok(text) = value.to_str() else {
        return false;
    };
    let media = text.split(';').next().unwrap_or("").trim();
    ["application/soap+xml", "text/xml", "application/xml"]
        .iter()
        .any(|t| media.eq_ignore_ascii_case(t))
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    reply_parts(status, content_type, vec![body.into()])
}

fn reply_parts(status: StatusCode, content_type: &'static str, parts: Vec<Bytes>) -> Reply {
    let mut r = hyper::Response::new(Chunks::new(parts));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// How far a request could be taken on the connection's own thread.
enum Answered {
    /// Answered.
    Fully(crate::engine::Response<Parts>),
    /// Read; answering it needs a blocking thread.
    Partly(Box<envelope::Request>),
    /// Needs a blocking thread from the start (a large body).
    No,
}

/// Bodies up to this size are read on the connection's thread: parsing them costs less
/// than handing them to another thread. The XML entry point's cost is linear in its input,
/// so this bounds the time a request can hold the thread other connections share.
pub const READ_AT_ONCE_MAX: usize = 16 * 1024;

/// Takes a request as far as it can without a blocking thread. On a 2-core machine the
/// hand-off to the blocking pool (a thread woken and put back to sleep per request) cost
/// more CPU than answering a small Get itself; only small bodies and quick operations (a
/// point read) are answered here.
fn answer_at_once<P: Provider>(shared: &Shared<P>, who: &Principal, body: &Bytes) -> Answered {
    if body.len() > READ_AT_ONCE_MAX {
        return Answered::No;
    }
    // A panic must not take the connection's task down: the request then goes the blocking
    // way, which answers a panic with 500.
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let engine = &shared.engine;
        match engine.read(body) {
            Err(refused) => Answered::Fully(refused.map_body(Parts::from)),
            Ok(request) if request.operation.is_quick() => {
                Answered::Fully(engine.answer_parts(who, &request, Instant::now()))
            }
            Ok(request) => Answered::Partly(Box::new(request)),
        }
    }));
    attempt.unwrap_or_else(|_| {
        tracing::error!("request handler panicked");
        Answered::No
    })
}

/// Runs `f` on a blocking thread once a turn is free; `None` if it panicked.
async fn blocking<P: Provider, T: Send + 'static>(
    shared: &Arc<Shared<P>>,
    f: impl FnOnce(&Shared<P>) -> T + Send + 'static,
) -> Option<T> {
    // The semaphore is never closed, so acquiring fails only if it were.
    let _turn = shared.turns.acquire().await.ok()?;
    let shared = shared.clone();
    match tokio::task::spawn_blocking(move || f(&shared)).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %e, "request handler panicked");
            None
        }
    }
}

/// What a request asks for, by its method and path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Wsman,
    Metrics,
}

/// The route of `req`, or the answer for a path or method that has none. Checked before
/// the credentials: a wrong path costs nothing.
fn route<B>(req: &Request<B>) -> Result<Route, Box<Reply>> {
    let path = req.uri().path();
    let path = path.strip_suffix('/').unwrap_or(path);
    let is_wsman = path.eq_ignore_ascii_case("/wsman");
    match (req.method(), is_wsman, path) {
        (&Method::POST, true, _) => {}
        (&Method::GET, false, "/metrics") => return Ok(Route::Metrics),
        (_, true, _) => {
            return Err(Box::new(reply(
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT_CONTENT_TYPE,
                "use POST\n",
            )));
        }
        _ => {
            return Err(Box::new(reply(
                StatusCode::NOT_FOUND,
                TEXT_CONTENT_TYPE,
                "not found\n",
            )));
        }
    }
    if !is_xml_content_type(req.headers().get(header::CONTENT_TYPE)) {
        return Err(Box::new(reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            TEXT_CONTENT_TYPE,
            "send SOAP as Content-Type: application/soap+xml;charset=UTF-8\n",
        )));
    }
    Ok(Route::Wsman)
}

/// `GET /metrics`, for an authenticated caller.
async fn metrics_reply<P: Provider>(shared: &Arc<Shared<P>>) -> Reply {
    let extra = blocking(shared, |shared| shared.engine.provider().metrics_extra())
        .await
        .unwrap_or_default();
    let gauges = [
        (
            "vmsec_wsman_open_enumerations",
            "Open enumeration contexts.",
            shared.engine.open_enumerations() as u64,
        ),
        (
            "vmsec_wsman_request_body_bytes",
            "Memory held by request bodies being read or handled.",
            shared.bodies.held() as u64,
        ),
    ];
    reply(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        shared.metrics.render(&gauges, &extra),
    )
}

/// The route, then the credentials, then (WS-Man only) the body: each step refuses what it
/// can before the next, costlier one runs.
async fn handle<P: Provider>(
    shared: &Arc<Shared<P>>,
    peer: IpAddr,
    activity: &Activity,
    req: Request<Incoming>,
) -> Reply {
    let route = match route(&req) {
        Ok(route) => route,
        Err(r) => return *r,
    };
    let who = match authenticate(shared, peer, &req).await {
        Ok(who) => who,
        Err(r) => return *r,
    };
    // Kept for a full check should remembered credentials no longer stand (see `stands`).
    let authorization = who
        .remembered
        .is_some()
        .then(|| req.headers().get(header::AUTHORIZATION).cloned())
        .flatten();
    activity.authenticated();
    if route == Route::Metrics {
        if let Err(refusal) = stands(shared, &who)
            && let Err(r) = after_refusal(shared, peer, authorization.as_ref(), refusal).await
        {
            return *r;
        }
        return metrics_reply(shared).await;
    }
    let started = Instant::now();
    // Held until the request is answered: the body's bytes stay in memory until then.
    let (body, _held) = match read_body(shared, &who.user, req.into_body()).await {
        Ok(b) => b,
        Err((r, outcome)) => {
            shared.metrics.record("unknown", outcome, started.elapsed());
            return r;
        }
    };
    let mut response = answer(shared, &who, body.clone()).await;
    // Computed, not yet sent: credentials accepted from memory must still stand. If they do
    // not, they get the full check, and the request is answered anew for whom it finds.
    let mut who = who;
    if let Err(refusal) = stands(shared, &who) {
        match after_refusal(shared, peer, authorization.as_ref(), refusal).await {
            Ok(fresh) => {
                response = answer(shared, &fresh, body).await;
                who = fresh;
            }
            Err(r) => {
                shared
                    .metrics
                    .record(response.operation, "unauthenticated", started.elapsed());
                return *r;
            }
        }
    }
    shared
        .metrics
        .record(response.operation, response.outcome, started.elapsed());
    tracing::debug!(
        user = %who.user,
        %peer,
        operation = response.operation,
        outcome = response.outcome,
        "request handled"
    );
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = if response.soap {
        SOAP_CONTENT_TYPE
    } else {
        TEXT_CONTENT_TYPE
    };
    reply_parts(status, content_type, response.body.into_chunks())
}

/// The engine's response to `who`'s request `body`: on this thread when that is quick
/// ([`answer_at_once`]), else on a blocking thread; a 500 fault if the handler panicked.
async fn answer<P: Provider>(
    shared: &Arc<Shared<P>>,
    who: &Principal,
    body: Bytes,
) -> crate::engine::Response<Parts> {
    let result = match answer_at_once(shared, who, &body) {
        Answered::Fully(r) => Some(r),
        Answered::Partly(request) => {
            let who = who.clone();
            blocking(shared, move |shared| {
                shared.engine.answer_parts(&who, &request, Instant::now())
            })
            .await
        }
        Answered::No => {
            let who = who.clone();
            blocking(shared, move |shared| {
                shared.engine.handle_parts(&who, &body, Instant::now())
            })
            .await
        }
    };
    result.unwrap_or_else(|| {
        let fault = Fault::new(
            FaultKind::InternalError,
            "the service failed while handling the request",
        );
        crate::engine::Response {
            status: 500,
            soap: true,
            body: fault
                .to_envelope(None, &shared.config.engine.machine)
                .into(),
            operation: "unknown",
            outcome: "InternalError",
        }
    })
}
