//! The HTTP(S) shell around [`Engine`]: `POST /wsman` and `GET /metrics`.
//!
//! Every request needs valid HTTP Basic credentials before anything else happens: no
//! or bad `Authorization` gets 401 with `WWW-Authenticate: Basic realm="WSMAN"` and
//! the body is never read or executed. Failed logins are rate limited per source
//! ([`LoginRateLimit`]). The body is capped while it is read (wsman:EncodingLimit
//! fault past the cap); header, body and idle timeouts bound slow clients; a
//! connection limit bounds sockets. Provider calls (authentication and the whole
//! engine) run on blocking threads, except a small quick request (Get, Release,
//! Identify) from credentials verified before, which is answered on the connection's
//! thread ([`Provider`] says what that asks of a provider). Shutdown stops accepting
//! and lets in-flight requests finish within a grace period.

mod metrics;
mod ratelimit;
mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

pub use metrics::Metrics;
pub use ratelimit::{LoginLimiter, LoginRateLimit};
pub use tls::TlsSource;

use crate::engine::{Engine, EngineConfig};
use crate::envelope;
use crate::fault::{Fault, FaultKind};
use crate::provider::{Principal, Provider};

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
    /// Idle keep-alive connections are closed after this long.
    pub idle_timeout: Duration,
    /// Most connections open at once; more are closed on accept.
    pub max_connections: usize,
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
        let slots = Arc::new(Semaphore::new(self.shared.config.max_connections));
        let mut accept_tasks = Vec::new();
        for listener in self.listeners {
            let shared = self.shared.clone();
            let stop = stop_rx.clone();
            let done = done_tx.clone();
            let slots = slots.clone();
            accept_tasks.push(tokio::spawn(accept_loop(
                listener, shared, stop, done, slots,
            )));
        }
        drop(done_tx);
        shutdown.await;
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
    slots: Arc<Semaphore>,
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
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; closing new connection");
            continue;
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
            drop(permit);
            drop(done);
        });
    }
}

/// Activity of one connection, for the idle timeout.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some(self.start.elapsed().saturating_sub(last))
    }
}

async fn serve_connection<S, P>(
    stream: S,
    peer: SocketAddr,
    shared: Arc<Shared<P>>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    P: Provider,
{
    let activity = Arc::new(Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
    });
    let service = {
        let shared = shared.clone();
        let activity = activity.clone();
        hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            let activity = activity.clone();
            async move {
                activity.in_flight.fetch_add(1, Ordering::Relaxed);
                let resp = handle(&shared, peer.ip(), req).await;
                activity.touch();
                activity.in_flight.fetch_sub(1, Ordering::Relaxed);
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let idle = shared.config.idle_timeout;
    let mut tick = tokio::time::interval((idle / 4).max(Duration::from_millis(50)));
    let mut closing = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !closing => {
                let _ = changed;
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick(), if !closing => {
                if activity.idle_for().is_some_and(|d| d >= idle) {
                    tracing::debug!(%peer, "closing idle connection");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

type Reply = hyper::Response<Full<Bytes>>;

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
    let mut r = hyper::Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

fn unauthorized() -> Reply {
    let mut r = reply(
        StatusCode::UNAUTHORIZED,
        TEXT_CONTENT_TYPE,
        "authentication required\n",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"WSMAN\""),
    );
    r
}

/// Splits a `Basic` Authorization header into user and password.
fn basic_credentials(value: &HeaderValue) -> Option<(String, Zeroizing<String>)> {
    let text = value.to_str().ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?,
    );
    let text = std::str::from_utf8(&decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), Zeroizing::new(password.to_owned())))
}

/// The Basic credentials of a request that may try to log in (not rate limited), to be
/// verified by [`verify`] on a blocking thread.
fn credentials<P: Provider>(
    shared: &Arc<Shared<P>>,
    peer: IpAddr,
    req: &Request<Incoming>,
) -> Result<(String, Zeroizing<String>), Box<Reply>> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(Box::new(unauthorized()));
    };
    if let Err(retry) = shared.limiter.check(peer, Instant::now()) {
        shared.metrics.rate_limited();
        let mut r = reply(
            StatusCode::TOO_MANY_REQUESTS,
            TEXT_CONTENT_TYPE,
            "too many failed logins; retry later\n",
        );
        if let Ok(v) = HeaderValue::from_str(&retry.as_secs().to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Err(Box::new(r));
    }
    basic_credentials(value).ok_or_else(|| login_failed(shared, peer))
}

/// Checks credentials with the provider; blocking (a password hash may be verified).
fn verify<P: Provider>(
    shared: &Shared<P>,
    peer: IpAddr,
    (user, password): &(String, Zeroizing<String>),
) -> Result<Principal, Box<Reply>> {
    shared
        .engine
        .provider()
        .authenticate(user, password, peer)
        .ok_or_else(|| login_failed(shared, peer))
}

/// How far a request could be taken on the connection's own thread.
enum Answered {
    /// Authenticated and answered.
    Fully((String, crate::engine::Response)),
    /// Authenticated and read; answering it needs a blocking thread.
    Partly(Principal, Box<envelope::Request>),
    /// Needs a blocking thread from the start (a password to verify, a large body).
    No,
}

/// Bodies up to this size are read on the connection's thread when the credentials are
/// known good: parsing them costs less than handing them to another thread.
const READ_AT_ONCE_MAX: usize = 32 * 1024;

/// Takes a request as far as it can without a blocking thread. On a 2-core machine the
/// hand-off to the blocking pool (a thread woken and put back to sleep per request) cost
/// more CPU than answering a small Get itself; only credentials verified before (no
/// password hashing) and quick operations (a point read) are answered here.
fn answer_at_once<P: Provider>(
    shared: &Shared<P>,
    peer: IpAddr,
    (user, password): &(String, Zeroizing<String>),
    body: &Bytes,
) -> Answered {
    if body.len() > READ_AT_ONCE_MAX {
        return Answered::No;
    }
    // A panic must not take the connection's task down: the request then goes the blocking
    // way, which answers a panic with 500.
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let engine = &shared.engine;
        let Some(who) = engine
            .provider()
            .authenticate_verified(user, password, peer)
        else {
            return Answered::No;
        };
        match engine.read(body) {
            Err(refused) => Answered::Fully((who.user, *refused)),
            Ok(request) if request.operation.is_quick() => {
                let response = engine.answer(&who, &request);
                Answered::Fully((who.user, response))
            }
            Ok(request) => Answered::Partly(who, Box::new(request)),
        }
    }));
    attempt.unwrap_or_else(|_| {
        tracing::error!("request handler panicked");
        Answered::No
    })
}

/// A refusal, boxed: a `Reply` is large and refusals are the rare path.
fn login_failed<P>(shared: &Shared<P>, peer: IpAddr) -> Box<Reply> {
    shared.metrics.auth_failure();
    shared.limiter.failed(peer, Instant::now());
    Box::new(unauthorized())
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

async fn handle<P: Provider>(
    shared: &Arc<Shared<P>>,
    peer: IpAddr,
    req: Request<Incoming>,
) -> Reply {
    let path = req.uri().path();
    let route = (
        req.method().clone(),
        path.strip_suffix('/').unwrap_or(path).to_owned(),
    );
    let is_wsman = route.1.eq_ignore_ascii_case("/wsman");
    match (&route.0, is_wsman, route.1.as_str()) {
        (&Method::POST, true, _) | (&Method::GET, false, "/metrics") => {}
        (_, true, _) => {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT_CONTENT_TYPE,
                "use POST\n",
            );
        }
        _ => return reply(StatusCode::NOT_FOUND, TEXT_CONTENT_TYPE, "not found\n"),
    }
    if is_wsman && !is_xml_content_type(req.headers().get(header::CONTENT_TYPE)) {
        return reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            TEXT_CONTENT_TYPE,
            "send SOAP as Content-Type: application/soap+xml;charset=UTF-8\n",
        );
    }
    let creds = match credentials(shared, peer, &req) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if !is_wsman {
        let extra = match blocking(shared, move |shared| {
            verify(shared, peer, &creds).map(|_| shared.engine.provider().metrics_extra())
        })
        .await
        {
            Some(Ok(extra)) => extra,
            Some(Err(r)) => return *r,
            None => String::new(),
        };
        let gauges = [(
            "vmsec_wsman_open_enumerations",
            "Open enumeration contexts.",
            shared.engine.open_enumerations() as u64,
        )];
        return reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            shared.metrics.render(&gauges, &extra),
        );
    }
    let started = Instant::now();
    let body = match read_body(shared, req.into_body()).await {
        Ok(b) => b,
        Err((r, outcome)) => {
            shared.metrics.record("unknown", outcome, started.elapsed());
            return r;
        }
    };
    let result = match answer_at_once(shared, peer, &creds, &body) {
        Answered::Fully(r) => Some(Ok(r)),
        Answered::Partly(who, request) => {
            blocking(shared, move |shared| {
                Ok((who.user.clone(), shared.engine.answer(&who, &request)))
            })
            .await
        }
        // Credentials are verified together with the request, on one blocking thread: one
        // hand-off per request instead of two.
        Answered::No => {
            blocking(shared, move |shared| {
                verify(shared, peer, &creds).map(|who| {
                    let response = shared.engine.handle(&who, &body);
                    (who.user, response)
                })
            })
            .await
        }
    };
    let (who_name, response) = match result {
        Some(Ok(r)) => r,
        Some(Err(r)) => return *r,
        None => {
            let fault = Fault::new(
                FaultKind::InternalError,
                "the service failed while handling the request",
            );
            let response = crate::engine::Response {
                status: 500,
                soap: true,
                body: fault.to_envelope(None, &shared.config.engine.machine),
                operation: "unknown",
                outcome: "InternalError",
            };
            ("unknown".to_owned(), response)
        }
    };
    shared
        .metrics
        .record(response.operation, response.outcome, started.elapsed());
    tracing::debug!(
        user = %who_name,
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
    reply(status, content_type, response.body)
}

/// Reads the body, refusing it past the size cap or the body timeout; the error carries
/// the reply and the metrics outcome.
async fn read_body<P: Provider>(
    shared: &Arc<Shared<P>>,
    body: Incoming,
) -> Result<Bytes, (Reply, &'static str)> {
    let max = shared.config.max_request_bytes;
    let too_large = || {
        let fault = Fault::new(
            FaultKind::EncodingLimit,
            format!("the request is larger than the server's limit of {max} bytes"),
        )
        .with_detail("ServiceEnvelopeLimit");
        let mut r = reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            SOAP_CONTENT_TYPE,
            fault.to_envelope(None, &shared.config.engine.machine),
        );
        // The rest of the body is unread; the connection cannot be reused.
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    };
    let collected = tokio::time::timeout(
        shared.config.body_read_timeout,
        Limited::new(body, max).collect(),
    )
    .await;
    match collected {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err((too_large(), "EncodingLimit"))
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "reading the request body failed");
            let r = reply(
                StatusCode::BAD_REQUEST,
                TEXT_CONTENT_TYPE,
                "the request body could not be read\n",
            );
            Err((r, "bad_request"))
        }
        Err(_) => {
            let mut r = reply(
                StatusCode::REQUEST_TIMEOUT,
                TEXT_CONTENT_TYPE,
                "the request body was not received in time\n",
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err((r, "body_timeout"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_split_at_the_first_colon() {
        let v = HeaderValue::from_static("Basic dXNlcjpwYTpzcw=="); // user:pa:ss
        let (user, password) = basic_credentials(&v).unwrap();
        assert_eq!(user, "user");
        assert_eq!(password.as_str(), "pa:ss");
    }

    #[test]
    fn other_schemes_and_bad_base64_are_not_credentials() {
        assert!(basic_credentials(&HeaderValue::from_static("Negotiate TlRMTVNTUAAB")).is_none());
        assert!(basic_credentials(&HeaderValue::from_static("Basic !!!")).is_none());
        assert!(basic_credentials(&HeaderValue::from_static("Basic dXNlcg==")).is_none()); // no colon
    }
}
