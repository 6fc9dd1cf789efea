//! `vmsec kps serve`: the HTTPS shell of the Attestation Service and the Key Protection
//! Service. The services' rules are `vmsec-kps`'s (sans-IO); this module only moves bytes,
//! bounds what a client may cost, runs the cryptography off the reactor, and writes the audit
//! record of every decision before the reply leaves (so a SIGKILL cannot lose the record of a
//! release that was answered).
//!
//! Bounds: connections in all and per source (as `vmsec serve`), the TLS handshake and each
//! request's headers within the header timeout (also the idle keep-alive limit), the body
//! within the body timeout and size limit (smaller for attestation), the costly part of a
//! request rate limited per host key, and at most a few requests doing cryptography at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use vmsec_kps::fabric::RegisteredHost;
use vmsec_kps::msgs::{attestation, pkcs7, roll};
use vmsec_kps::tpm::TpmAttestation;
use vmsec_kps::tpm::service::TpmOutcome;
use vmsec_kps::{AttestError, AttestationService, KeyProtection, Registry, ReleaseError, Version};
use vmsec_service::fabric::Kps;
use vmsec_wsman::server::{ConnectionSlots, LogThrottle, LoginLimiter, LoginRateLimit};

use super::host_limit::HostLimiter;
use super::metrics::Metrics;

/// The server's settings (defaults, then the config file, then the command line).
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: Vec<SocketAddr>,
    /// Plain-HTTP listen addresses, empty unless asked for (loopback, as `serve --http-listen`).
    pub http_listen: Vec<SocketAddr>,
    pub tls: vmsec_wsman::server::TlsSource,
    /// Largest RollTransportKey body.
    pub max_request_bytes: usize,
    /// Largest attestation body: three keys and a signature.
    pub max_attestation_bytes: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    /// Attestations and releases one host key may have per minute (burst the same).
    pub requests_per_minute_per_host: u32,
    pub health_validity: time::Duration,
    /// DER certificates of other attestation signers to trust (another KPS node's).
    pub extra_signers: Vec<Vec<u8>>,
    /// TPM mode: DER certificates of the CAs EK certificates must be signed by (none: the
    /// registered EK is trusted as registered).
    pub ek_roots: Vec<Vec<u8>>,
}

impl Settings {
    pub fn defaults(tls: vmsec_wsman::server::TlsSource) -> Settings {
        Settings {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8443))],
            http_listen: Vec::new(),
            tls,
            max_request_bytes: 1024 * 1024,
            max_attestation_bytes: 64 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_connections_per_source: 64,
            requests_per_minute_per_host: 600,
            health_validity: vmsec_kps::health::DEFAULT_VALIDITY,
            extra_signers: Vec::new(),
            ek_roots: Vec::new(),
        }
    }
}

/// The store's registry with the per-host limit.
struct LimitedRegistry<'a> {
    store: vmsec_service::fabric::StoreRegistry<'a>,
    limiter: &'a HostLimiter,
}

impl Registry for LimitedRegistry<'_> {
    fn host_by_key(&self, key_hash: &str) -> Result<Option<RegisteredHost>, String> {
        self.store.host_by_key(key_hash)
    }
    fn deny_before(&self) -> Result<Option<OffsetDateTime>, String> {
        self.store.deny_before()
    }
    fn admit(&self, host: &RegisteredHost) -> Result<(), u64> {
        self.limiter.admit(&host.key_hash, Instant::now())
    }
    fn tpm_host_by_ek(&self, ek_hash: &str) -> Result<Option<vmsec_kps::tpm::TpmHost>, String> {
        self.store.tpm_host_by_ek(ek_hash)
    }
    fn tpm_baselines(&self) -> Result<Vec<(String, vmsec_kps::tpm::Baseline)>, String> {
        self.store.tpm_baselines()
    }
}

struct Shared {
    kps: Kps,
    attestation: AttestationService,
    /// TPM mode, with its pending challenges.
    tpm: TpmAttestation,
    /// Reloaded when another process rotates or removes a fabric guardian.
    protection: RwLock<(Vec<String>, Arc<KeyProtection>)>,
    settings: Settings,
    limiter: HostLimiter,
    logins: LoginLimiter,
    metrics: Metrics,
    /// Requests doing cryptography or store work at once: a few threads serve two cores
    /// better than one per connection.
    busy: Semaphore,
    refusals: LogThrottle,
    signers_pkcs7: Vec<u8>,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

const JSON: &str = "application/json; charset=utf-8";
const XML: &str = "application/xml; charset=utf-8";

fn with_retry_after(mut r: Reply, secs: Option<u64>) -> Reply {
    if let Some(s) = secs
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn attest_error(e: &AttestError) -> Reply {
    with_retry_after(
        reply(e.http_status(), JSON, attestation::error_reply(e)),
        e.retry_after(),
    )
}

fn release_error(e: &ReleaseError) -> Reply {
    with_retry_after(
        reply(e.http_status(), XML, roll::write_error(e).into_bytes()),
        e.retry_after(),
    )
}

/// Which endpoint a path names (matched case-insensitively, as IIS does for HGS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    GetInfo,
    SigningCertificates,
    HostKeyAttest,
    TpmAttest,
    OtherAttest,
    Metadata,
    Roll(Version),
    Metrics,
}

fn route(path: &str) -> Option<Endpoint> {
    let p = path.to_ascii_lowercase();
    let p = p.trim_end_matches('/');
    Some(match p {
        "/attestation/getinfo" => Endpoint::GetInfo,
        "/attestation/v2.0/signingcertificates" => Endpoint::SigningCertificates,
        "/attestation/v2.0/hostkeyattest" => Endpoint::HostKeyAttest,
        "/attestation/v2.0/attest" => Endpoint::TpmAttest,
        "/attestation/v1.0/attest"
        | "/attestation/v1.0/domainattest"
        | "/attestation/v2.0/domainattest" => Endpoint::OtherAttest,
        "/keyprotection/service/metadata/2014-07/metadata.xml" => Endpoint::Metadata,
        "/metrics" => Endpoint::Metrics,
        _ => {
            let v = p
                .strip_prefix("/keyprotection/service/")?
                .strip_suffix("/rolltransportkey")?;
            Endpoint::Roll(Version::from_segment(v)?)
        }
    })
}

/// Reads a body of at most `limit` bytes within the body timeout.
async fn read_body(
    req: Request<Incoming>,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, (u16, String)> {
    if let Some(n) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && n > limit as u64
    {
        return Err((413, format!("a body of {n} bytes; at most {limit}")));
    }
    match tokio::time::timeout(timeout, Limited::new(req.into_body(), limit).collect()).await {
        Err(_) => Err((
            408,
            format!("the body did not arrive within {} s", timeout.as_secs()),
        )),
        Ok(Err(_)) => Err((413, format!("a body over {limit} bytes, or a broken one"))),
        Ok(Ok(b)) => Ok(b.to_bytes()),
    }
}

impl Shared {
    /// The key protection of the current guardian set.
    fn protection(&self) -> Result<Arc<KeyProtection>, String> {
        let names = self.kps.guardian_names().map_err(|e| e.to_string())?;
        if let Ok(guard) = self.protection.read()
            && guard.0 == names
        {
            return Ok(guard.1.clone());
        }
        let (_, kp) = self
            .kps
            .services(
                self.settings.health_validity,
                self.settings.extra_signers.clone(),
            )
            .map_err(|e| e.to_string())?;
        let kp = Arc::new(kp);
        if let Ok(mut guard) = self.protection.write() {
            *guard = (names, kp.clone());
        }
        tracing::info!("fabric guardians reloaded");
        Ok(kp)
    }

    fn registry(&self) -> LimitedRegistry<'_> {
        LimitedRegistry {
            store: self.kps.registry(),
            limiter: &self.limiter,
        }
    }

    /// The blocking part of an attestation: decide, audit, answer.
    fn attest(&self, body: &[u8]) -> (Reply, String) {
        let outcome =
            self.attestation
                .host_key_attest(body, OffsetDateTime::now_utc(), &self.registry());
        if let Err(e) = self.kps.audit_attestation(&outcome) {
            tracing::error!("cannot write the audit log: {e}");
            let e = AttestError::Unavailable("the audit log cannot be written".into());
            return (attest_error(&e), e.reply_type().into());
        }
        match outcome {
            Ok(a) => (reply(200, JSON, a.reply), "ok".into()),
            Err((e, _)) => (attest_error(&e), e.reply_type().into()),
        }
    }

    /// TPM mode's round trips: decide, audit, answer.
    fn tpm_attest(&self, body: &[u8], peer: SocketAddr) -> (Reply, String) {
        let outcome = self.tpm.attest(
            self.attestation.signer(),
            self.settings.health_validity,
            body,
            OffsetDateTime::now_utc(),
            &peer.ip().to_string(),
            &self.registry(),
        );
        if let Err(e) = self.kps.audit_tpm_attestation(&outcome) {
            tracing::error!("cannot write the audit log: {e}");
            let e = AttestError::Unavailable("the audit log cannot be written".into());
            return (attest_error(&e), e.reply_type().into());
        }
        match outcome {
            Ok(TpmOutcome::Challenge { reply: r, .. }) => (reply(200, JSON, r), "ok".into()),
            Ok(TpmOutcome::Issued(a)) => (reply(200, JSON, a.reply), "ok".into()),
            Err((e, _)) => (attest_error(&e), e.reply_type().into()),
        }
    }

    fn roll(&self, version: Version, body: &[u8]) -> (Reply, String) {
        let protection = match self.protection() {
            Ok(p) => p,
            Err(m) => {
                let e = ReleaseError::Unavailable(m);
                return (release_error(&e), e.code().into());
            }
        };
        let outcome = protection.roll_transport_key(
            version,
            body,
            OffsetDateTime::now_utc(),
            &self.registry(),
        );
        if let Err(e) = self.kps.audit_release(&outcome) {
            tracing::error!("cannot write the audit log: {e}");
            let e = ReleaseError::Unavailable("the audit log cannot be written".into());
            return (release_error(&e), e.code().into());
        }
        match outcome {
            Ok(r) => (reply(200, XML, r.response), "ok".into()),
            Err(r) => (release_error(&r.error), r.error.code().into()),
        }
    }

    fn metadata(&self) -> Reply {
        match self.kps.metadata() {
            Ok(xml) => reply(200, XML, xml),
            Err(e) => release_error(&ReleaseError::Unavailable(e.to_string())),
        }
    }

    /// HTTP Basic against the KPS's users (role reader at least), the check rate limited per
    /// source before the hash runs.
    /// `None` when the credentials are a user's with role reader at least, else the refusal
    /// to send. HTTP Basic against the KPS's users, the check rate limited per source before
    /// the hash runs.
    fn auth_refusal(&self, value: Option<&HeaderValue>, peer: SocketAddr) -> Option<Reply> {
        let unauthorized = || {
            let mut r = reply(
                401,
                "text/plain; charset=utf-8",
                b"authentication required\n".to_vec(),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"vmsec-kps\""),
            );
            r
        };
        let Some((user, password)) = value
            .and_then(|v| v.to_str().ok()?.strip_prefix("Basic ").map(str::to_owned))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|s| {
                s.split_once(':')
                    .map(|(u, p)| (u.to_owned(), zeroize::Zeroizing::new(p.to_owned())))
            })
        else {
            return Some(unauthorized());
        };
        if let Some(c) = self.kps.service().authenticate_verified(&user, &password)
            && c.role >= vmsec_store::Role::Reader
        {
            return None;
        }
        let now = Instant::now();
        let check = match self.logins.begin(peer.ip(), now) {
            Ok(check) => check,
            Err(wait) => {
                return Some(with_retry_after(
                    reply(
                        429,
                        "text/plain; charset=utf-8",
                        b"too many failed logins\n".to_vec(),
                    ),
                    Some(wait.as_secs()),
                ));
            }
        };
        match self
            .kps
            .service()
            .authenticate(&user, &password, &peer.ip().to_string())
        {
            Ok(c) if c.role >= vmsec_store::Role::Reader => {
                check.succeeded(now);
                None
            }
            _ => Some(unauthorized()),
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let Some(endpoint) = route(req.uri().path()) else {
        return Ok(reply(
            404,
            "text/plain; charset=utf-8",
            b"no such endpoint\n".to_vec(),
        ));
    };
    let method = req.method().clone();
    let allowed = match endpoint {
        Endpoint::GetInfo | Endpoint::SigningCertificates | Endpoint::Metrics => {
            method == Method::GET
        }
        Endpoint::Metadata => method == Method::GET || method == Method::POST,
        Endpoint::HostKeyAttest
        | Endpoint::TpmAttest
        | Endpoint::OtherAttest
        | Endpoint::Roll(_) => method == Method::POST,
    };
    if !allowed {
        return Ok(reply(
            405,
            "text/plain; charset=utf-8",
            format!("{method} is not allowed here\n").into_bytes(),
        ));
    }
    let s = &shared.settings;
    let started = Instant::now();
    let (name, limit) = match endpoint {
        Endpoint::HostKeyAttest => ("hostkeyattest", s.max_attestation_bytes),
        // An event log is tens of kilobytes, base64 in JSON: the larger limit.
        Endpoint::TpmAttest => ("attest", s.max_request_bytes),
        Endpoint::Roll(_) => ("rolltransportkey", s.max_request_bytes),
        _ => ("other", 0),
    };
    let out = match endpoint {
        Endpoint::GetInfo => reply(
            200,
            JSON,
            attestation::service_info_reply(attestation::MODE_HOST_KEY),
        ),
        Endpoint::SigningCertificates => reply(
            200,
            JSON,
            attestation::signing_certificates_reply(&shared.signers_pkcs7),
        ),
        Endpoint::OtherAttest => attest_error(&AttestError::OperationMode),
        Endpoint::Metadata => {
            let sh = shared.clone();
            blocking(&shared, move || sh.metadata()).await
        }
        Endpoint::Metrics => {
            let sh = shared.clone();
            let auth = req.headers().get(header::AUTHORIZATION).cloned();
            blocking(&shared, move || {
                match sh.auth_refusal(auth.as_ref(), peer) {
                    None => reply(
                        200,
                        "text/plain; version=0.0.4",
                        sh.metrics.render().into_bytes(),
                    ),
                    Some(r) => r,
                }
            })
            .await
        }
        Endpoint::HostKeyAttest | Endpoint::TpmAttest | Endpoint::Roll(_) => {
            let body = match read_body(req, limit, s.body_timeout).await {
                Ok(b) => b,
                Err((status, m)) => {
                    let r = match endpoint {
                        Endpoint::Roll(_) => reply(
                            status,
                            XML,
                            roll::write_error(&ReleaseError::Malformed(m)).into_bytes(),
                        ),
                        _ => reply(
                            status,
                            JSON,
                            attestation::error_reply(&AttestError::Payload(m)),
                        ),
                    };
                    shared
                        .metrics
                        .record(name, "body-refused", started.elapsed());
                    return Ok(r);
                }
            };
            let sh = shared.clone();
            let (r, outcome) = blocking(&shared, move || match endpoint {
                Endpoint::Roll(v) => sh.roll(v, &body),
                Endpoint::TpmAttest => sh.tpm_attest(&body, peer),
                _ => sh.attest(&body),
            })
            .await;
            if outcome != "ok" && shared.refusals.hit(Instant::now()).is_some() {
                tracing::info!(endpoint = name, outcome, %peer, "request refused (further refusals are counted in /metrics)");
            }
            shared.metrics.record(name, &outcome, started.elapsed());
            r
        }
    };
    Ok(out)
}

/// Runs `f` on a blocking thread, at most [`Shared::busy`] at once.
async fn blocking<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let _permit = shared
        .busy
        .acquire()
        .await
        .expect("the semaphore is never closed");
    tokio::task::spawn_blocking(f)
        .await
        .expect("a request handler panicked")
}

/// Binds, prints the listen addresses as one JSON line on stdout, and serves until SIGINT
/// or SIGTERM.
pub fn run(kps: Kps, settings: Settings) -> Result<(), crate::CliError> {
    let err = |m: String| crate::CliError::new(m);
    let (attestation, protection) = kps
        .services(settings.health_validity, settings.extra_signers.clone())
        .map_err(|e| err(e.to_string()))?;
    let names = kps.guardian_names().map_err(|e| err(e.to_string()))?;
    let mut signers: Vec<&[u8]> = vec![attestation.signer().cert_der()];
    signers.extend(settings.extra_signers.iter().map(Vec::as_slice));
    let signers_pkcs7 = pkcs7::certs_only(&signers);
    let tls = vmsec_wsman::server::server_config(&settings.tls).map_err(|e| err(e.to_string()))?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let shared = Arc::new(Shared {
        kps,
        attestation,
        tpm: TpmAttestation::new(settings.ek_roots.clone()),
        protection: RwLock::new((names, Arc::new(protection))),
        limiter: HostLimiter {
            per_minute: settings.requests_per_minute_per_host,
            buckets: Mutex::default(),
        },
        logins: LoginLimiter::new(LoginRateLimit::default()),
        metrics: Metrics::default(),
        busy: Semaphore::new(2 * cores),
        refusals: LogThrottle::new(Duration::from_secs(10)),
        signers_pkcs7,
        settings,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| err(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let bind = |addrs: &[SocketAddr]| {
            let addrs = addrs.to_vec();
            async move {
                let mut out = Vec::new();
                for a in addrs {
                    let l = TcpListener::bind(a)
                        .await
                        .map_err(|e| err(format!("cannot listen on {a}: {e}")))?;
                    out.push(l);
                }
                Ok::<_, crate::CliError>(out)
            }
        };
        let https = bind(&shared.settings.listen).await?;
        let http = bind(&shared.settings.http_listen).await?;
        let local = |ls: &[TcpListener]| -> Vec<String> {
            ls.iter()
                .filter_map(|l| l.local_addr().ok())
                .map(|a| a.to_string())
                .collect()
        };
        for a in local(&https) {
            tracing::info!("listening on https://{a}/ (Attestation, KeyProtection)");
        }
        for a in local(&http) {
            tracing::warn!("listening on http://{a}/ without TLS");
        }
        let _ = crate::output::write_stdout(
            format!(
                "{}\n",
                serde_json::json!({ "https": local(&https), "http": local(&http) })
            )
            .as_bytes(),
        );
        let slots = ConnectionSlots::new(
            shared.settings.max_connections,
            shared.settings.max_connections_per_source,
        );
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let mut tasks = Vec::new();
        let listeners = https
            .into_iter()
            .map(|l| (l, Some(acceptor.clone())))
            .chain(http.into_iter().map(|l| (l, None)));
        for (listener, acceptor) in listeners {
            let (shared, slots) = (shared.clone(), slots.clone());
            tasks.push(tokio::spawn(accept_loop(listener, shared, slots, acceptor)));
        }
        vmsec_wsman::server::shutdown_signal().await;
        for t in &tasks {
            t.abort();
        }
        // Requests under way finish (their audit records are already written before replies).
        let permits = 2 * cores as u32;
        let _ =
            tokio::time::timeout(Duration::from_secs(10), shared.busy.acquire_many(permits)).await;
        Ok::<(), crate::CliError>(())
    })?;
    tracing::info!("stopped");
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    slots: Arc<ConnectionSlots>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.take(peer.ip()) else {
            if shared.refusals.hit(Instant::now()).is_some() {
                tracing::warn!(%peer, "connection refused: too many connections");
            }
            continue;
        };
        let (shared, acceptor) = (shared.clone(), acceptor.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let header_timeout = shared.settings.header_timeout;
            match acceptor {
                None => serve_http(tcp, shared, peer).await,
                Some(acceptor) => {
                    // The handshake is bounded by the header timeout too.
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await
                    {
                        serve_http(tls, shared, peer).await;
                    }
                }
            }
        });
    }
}

/// HTTP/1.1 on one connection, its headers (and idle keep-alive) within the header timeout.
async fn serve_http<I>(io: I, shared: Arc<Shared>, peer: SocketAddr)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let header_timeout = shared.settings.header_timeout;
    let service = hyper::service::service_fn(move |req| handle(shared.clone(), peer, req));
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_case_insensitively_and_unknown_ones_do_not() {
        assert_eq!(
            route("/KeyProtection/service/V2.0/rolltransportkey"),
            Some(Endpoint::Roll(Version::V2))
        );
        assert_eq!(
            route("/keyprotection/SERVICE/v1.0/RollTransportKey"),
            Some(Endpoint::Roll(Version::V1))
        );
        assert_eq!(route("/Attestation/Getinfo"), Some(Endpoint::GetInfo));
        assert_eq!(
            route("/attestation/V2.0/Attest/"),
            Some(Endpoint::TpmAttest)
        );
        assert_eq!(
            route("/Attestation/v1.0/attest"),
            Some(Endpoint::OtherAttest)
        );
        assert_eq!(route("/KeyProtection/service/V3.0/rolltransportkey"), None);
        assert_eq!(route("/"), None);
    }
}
