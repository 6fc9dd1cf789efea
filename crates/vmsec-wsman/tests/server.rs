//! The HTTP(S) server over real loopback sockets.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use vmsec_wsman::server::{LoginRateLimit, Server, ServerConfig, TlsSource};

struct Running {
    provider: Arc<TestProvider>,
    http: SocketAddr,
    https: SocketAddr,
    connector: TlsConnector,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(tweak: impl FnOnce(&mut ServerConfig)) -> Running {
    start_with(TestProvider::new(), tweak).await
}

async fn start_with(provider: TestProvider, tweak: impl FnOnce(&mut ServerConfig)) -> Running {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let mut config = ServerConfig {
        https_listen: vec!["127.0.0.1:0".parse().unwrap()],
        http_listen: vec!["127.0.0.1:0".parse().unwrap()],
        tls: Some(TlsSource::Pem {
            cert: ck.cert.pem().into_bytes(),
            key: zeroize::Zeroizing::new(ck.signing_key.serialize_pem().into_bytes()),
        }),
        ..ServerConfig::default()
    };
    tweak(&mut config);
    let provider = Arc::new(provider);
    let server = Server::bind(config, provider.clone()).await.unwrap();
    let (https, http) = server.local_addrs();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stop_rx.await;
    }));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Running {
        provider,
        http: http[0],
        https: https[0],
        connector: TlsConnector::from(Arc::new(client)),
        stop: Some(stop_tx),
        task,
    }
}

struct HttpReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, raw: &[u8]) -> HttpReply {
    // The server may answer (and close) before the whole body is written.
    let _ = s.write_all(raw).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("reply in time");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP reply: {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    HttpReply {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn post(path: &str, auth: Option<&str>, body: &str) -> Vec<u8> {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(a) = auth {
        raw.push_str(&format!("Authorization: Basic {a}\r\n"));
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    raw.into_bytes()
}

const ADMIN: &str = "YWRtaW46c2VjcmV0"; // admin:secret
const WRONG: &str = "YWRtaW46d3Jvbmc="; // admin:wrong
const READER: &str = "cmVhZGVyOnNlY3JldA=="; // reader:secret

/// A connection to `to` from the loopback address `from`, to stand for another host.
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind a loopback source address");
    socket.connect(to).await.unwrap()
}

/// The headers of a POST declaring a `length`-byte body, none of which is sent.
fn headers_only(auth: &str, length: usize) -> String {
    format!(
        "POST /wsman HTTP/1.1\r\nHost: x\r\nContent-Type: application/soap+xml;charset=UTF-8\r\nAuthorization: Basic {auth}\r\nContent-Length: {length}\r\n\r\n"
    )
}

async fn http(r: &Running, raw: &[u8]) -> HttpReply {
    exchange(TcpStream::connect(r.http).await.unwrap(), raw).await
}

async fn https(r: &Running, raw: &[u8]) -> HttpReply {
    let tcp = TcpStream::connect(r.https).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = r.connector.connect(name, tcp).await.unwrap();
    exchange(tls, raw).await
}

async fn stop(mut r: Running) {
    if let Some(s) = r.stop.take() {
        let _ = s.send(());
    }
    tokio::time::timeout(Duration::from_secs(10), r.task)
        .await
        .expect("shutdown in time")
        .unwrap();
}

#[tokio::test]
async fn a_request_without_credentials_gets_401_with_the_basic_challenge_and_is_not_executed() {
    let r = start(|_| {}).await;
    let reply = http(
        &r,
        &post("/wsman", None, &testdata("pypsrp_get_security_service.xml")),
    )
    .await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("WWW-Authenticate"),
        Some("Basic realm=\"WSMAN\"")
    );
    let reply = http(
        &r,
        &post(
            "/wsman",
            Some(WRONG),
            &testdata("pypsrp_get_security_service.xml"),
        ),
    )
    .await;
    assert_eq!(reply.status, 401);
    assert!(
        r.provider.calls().is_empty(),
        "nothing reached the provider"
    );
    stop(r).await;
}

#[tokio::test]
async fn get_over_http_and_https_returns_the_instance() {
    let r = start(|_| {}).await;
    let body = testdata("pypsrp_get_security_service.xml");
    for reply in [
        http(&r, &post("/wsman", Some(ADMIN), &body)).await,
        https(&r, &post("/wsman", Some(ADMIN), &body)).await,
    ] {
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.header("Content-Type"),
            Some("application/soap+xml;charset=UTF-8")
        );
        assert!(
            reply.body.contains("<p:Name>vmsecuritywmi</p:Name>"),
            "{}",
            reply.body
        );
    }
    assert_eq!(r.provider.calls().len(), 2);
    stop(r).await;
}

#[tokio::test]
async fn a_request_whose_handler_panics_on_the_connections_thread_gets_500_and_is_not_run_again() {
    let r = start(|_| {}).await;
    let get = testdata("pypsrp_get_security_service.xml");
    // The first request checks the password, on a blocking thread; the next, from memory, is
    // answered on the connection's thread.
    assert_eq!(
        http(&r, &post("/wsman", Some(ADMIN), &get)).await.status,
        200
    );
    r.provider.panic_once.store(true, Ordering::SeqCst);
    let reply = http(&r, &post("/wsman", Some(ADMIN), &get)).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(reply.body.contains("InternalError"), "{}", reply.body);
    assert_eq!(
        r.provider.logins(),
        (1, 1),
        "the second was answered from memory"
    );
    // Run once: a handler may write before it fails (an audit record), so a second run
    // elsewhere could write twice.
    assert_eq!(r.provider.calls().len(), 2);
    // The connection's thread survived it.
    assert_eq!(
        http(&r, &post("/wsman", Some(ADMIN), &get)).await.status,
        200
    );
    stop(r).await;
}

#[tokio::test]
async fn credentials_verified_once_are_not_checked_again_and_every_operation_still_runs() {
    let r = start(|_| {}).await;
    let get = testdata("pypsrp_get_security_service.xml");
    let invoke = testdata("libvirt_invoke_set_key_protector.xml");
    let reply = http(&r, &post("/wsman", Some(ADMIN), &get)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(r.provider.logins(), (1, 0));
    // Answered without the slow check: a Get on the connection's thread, an Invoke handed on.
    for body in [&get, &invoke] {
        let reply = https(&r, &post("/wsman", Some(ADMIN), body)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!(r.provider.logins(), (1, 2));
    let calls = r.provider.calls();
    assert_eq!(calls.len(), 3);
    assert!(matches!(&calls[2], Call::Invoke { method, .. } if method == "SetKeyProtector"));
    // Another password for the same user is checked the slow way, and refused.
    let reply = http(&r, &post("/wsman", Some(WRONG), &get)).await;
    assert_eq!(reply.status, 401);
    assert_eq!(r.provider.logins(), (2, 2));
    // A request the engine refuses is still answered from known credentials.
    let reply = http(&r, &post("/wsman", Some(ADMIN), "<not-soap/>")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(r.provider.calls().len(), 3);
    stop(r).await;
}

#[tokio::test]
async fn credentials_from_memory_are_confirmed_before_the_reply_and_a_changed_password_gets_401() {
    let r = start(|_| {}).await;
    let get = testdata("pypsrp_get_security_service.xml");
    let invoke = testdata("libvirt_invoke_set_key_protector.xml");
    assert_eq!(
        http(&r, &post("/wsman", Some(ADMIN), &get)).await.status,
        200
    );
    // Remembered from here on. A Get confirms them in its own read; an Invoke, which does
    // not, is confirmed by the server before its reply.
    assert_eq!(
        http(&r, &post("/wsman", Some(ADMIN), &get)).await.status,
        200
    );
    assert_eq!(r.provider.confirms.load(Ordering::SeqCst), 0);
    assert_eq!(
        http(&r, &post("/wsman", Some(ADMIN), &invoke)).await.status,
        200
    );
    assert_eq!(r.provider.confirms.load(Ordering::SeqCst), 1);
    // The password changes in the store: the next request is refused, both ways, after the
    // full check a new login gets.
    r.provider.revoked.lock().unwrap().push("admin".into());
    let (checked, _) = r.provider.logins();
    for body in [&get, &invoke] {
        let reply = http(&r, &post("/wsman", Some(ADMIN), body)).await;
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert_eq!(
            reply.header("WWW-Authenticate"),
            Some("Basic realm=\"WSMAN\"")
        );
    }
    let metrics = format!(
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {ADMIN}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(http(&r, metrics.as_bytes()).await.status, 401);
    assert_eq!(r.provider.confirms.load(Ordering::SeqCst), 3);
    assert_eq!(
        r.provider.logins().0,
        checked + 3,
        "each refusal checked in full"
    );
    // A full check that passes (the password set again to the same one) gets the request
    // answered anew, once.
    r.provider.revoked.lock().unwrap().clear();
    let reply = http(&r, &post("/wsman", Some(ADMIN), &invoke)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    stop(r).await;
}

#[tokio::test]
async fn a_body_over_the_cap_is_an_encoding_limit_fault_and_not_executed() {
    let r = start(|c| c.max_request_bytes = 64 * 1024).await;
    let padding = "<!-- pad -->".repeat(10_000);
    let body = testdata("pypsrp_get_security_service.xml")
        .replace("<s:Body />", &format!("<s:Body>{padding}</s:Body>"));
    let reply = http(&r, &post("/wsman", Some(ADMIN), &body)).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(reply.body.contains("w:EncodingLimit"), "{}", reply.body);
    assert!(reply.body.contains("65536 bytes"), "{}", reply.body);
    assert!(r.provider.calls().is_empty());
    stop(r).await;
}

#[tokio::test]
async fn a_body_that_is_not_soap_gets_400() {
    let r = start(|_| {}).await;
    let reply = http(&r, &post("/wsman", Some(ADMIN), "hello")).await;
    assert_eq!(reply.status, 400);
    stop(r).await;
}

#[tokio::test]
async fn repeated_failed_logins_are_refused_with_429_without_checking_the_password() {
    let r = start(|c| {
        c.login_rate = LoginRateLimit {
            burst: 2,
            per_minute: 1,
            max_sources: 16,
        }
    })
    .await;
    let body = testdata("pypsrp_get_security_service.xml");
    for _ in 0..2 {
        assert_eq!(
            http(&r, &post("/wsman", Some(WRONG), &body)).await.status,
            401
        );
    }
    let reply = http(&r, &post("/wsman", Some(ADMIN), &body)).await;
    assert_eq!(
        reply.status, 429,
        "even good credentials wait once the source is limited"
    );
    assert!(
        reply
            .header("Retry-After")
            .is_some_and(|v| v.parse::<u64>().unwrap() >= 1)
    );
    assert!(r.provider.calls().is_empty());
    stop(r).await;
}

#[tokio::test]
async fn metrics_need_authentication_and_count_requests() {
    let r = start(|_| {}).await;
    let body = testdata("pypsrp_get_security_service.xml");
    assert_eq!(
        http(&r, &post("/wsman", Some(ADMIN), &body)).await.status,
        200
    );
    let unauth = http(
        &r,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        unauth.status, 401,
        "no credentials is a challenge, not a failed login"
    );
    assert_eq!(
        http(&r, &post("/wsman", Some(WRONG), &body)).await.status,
        401
    );
    let raw = format!(
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {ADMIN}\r\nConnection: close\r\n\r\n"
    );
    let m = http(&r, raw.as_bytes()).await;
    assert_eq!(m.status, 200);
    assert!(
        m.body
            .contains("vmsec_wsman_requests_total{operation=\"get\",outcome=\"ok\"} 1"),
        "{}",
        m.body
    );
    assert!(
        m.body.contains("vmsec_wsman_auth_failures_total 1"),
        "{}",
        m.body
    );
    assert!(
        m.body
            .contains("vmsec_wsman_request_duration_seconds_count 1"),
        "{}",
        m.body
    );
    assert!(
        m.body.contains("vmsec_jobs{state=\"running\"} 0"),
        "provider metrics are appended"
    );
    stop(r).await;
}

#[tokio::test]
async fn other_paths_and_methods_are_refused() {
    let r = start(|_| {}).await;
    let get = http(&r, format!("GET /wsman HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {ADMIN}\r\nConnection: close\r\n\r\n").as_bytes()).await;
    assert_eq!(get.status, 405);
    let other = http(&r, &post("/other", Some(ADMIN), "x")).await;
    assert_eq!(other.status, 404);
    stop(r).await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let r = start(|c| c.idle_timeout = Duration::from_millis(300)).await;
    let mut s = TcpStream::connect(r.http).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap();
    assert_eq!(n, 0, "the server closed the silent connection");
    stop(r).await;
}

#[tokio::test]
async fn shutdown_stops_accepting_and_finishes() {
    let r = start(|_| {}).await;
    let addr = r.http;
    stop(r).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn https_without_a_certificate_is_a_configuration_error() {
    let config = ServerConfig {
        tls: None,
        ..ServerConfig::default()
    };
    let err = Server::bind(config, Arc::new(TestProvider::new()))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("TLS certificate"), "{err}");
    let bad = ServerConfig {
        https_listen: vec!["127.0.0.1:0".parse().unwrap()],
        tls: Some(TlsSource::Pem {
            cert: b"junk".to_vec(),
            key: zeroize::Zeroizing::new(b"junk".to_vec()),
        }),
        ..ServerConfig::default()
    };
    let err = Server::bind(bad, Arc::new(TestProvider::new()))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().starts_with("TLS:"), "{err}");
    assert!(
        !format!(
            "{:?}",
            TlsSource::Pem {
                cert: vec![],
                key: zeroize::Zeroizing::new(b"SECRET".to_vec())
            }
        )
        .contains("SECRET")
    );
}

#[tokio::test]
async fn a_body_sent_too_slowly_gets_408() {
    let r = start(|c| c.body_read_timeout = Duration::from_millis(300)).await;
    let raw = format!(
        "POST /wsman HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {ADMIN}\r\nContent-Length: 1000\r\n\r\n<s:Envelope"
    );
    let reply = http(&r, raw.as_bytes()).await;
    assert_eq!(reply.status, 408);
    assert!(r.provider.calls().is_empty());
    stop(r).await;
}

#[tokio::test]
async fn headers_sent_too_slowly_close_the_connection() {
    let r = start(|c| c.header_read_timeout = Duration::from_millis(300)).await;
    let mut s = TcpStream::connect(r.http).await.unwrap();
    s.write_all(b"POST /wsman HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server hung up within the timeout");
    stop(r).await;
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish() {
    let mut provider = TestProvider::new();
    provider.get_delay = Duration::from_millis(500);
    let mut r = start_with(provider, |_| {}).await;
    let addr = r.http;
    let body = testdata("pypsrp_get_security_service.xml");
    let in_flight = tokio::spawn(async move {
        exchange(
            TcpStream::connect(addr).await.unwrap(),
            &post("/wsman", Some(ADMIN), &body),
        )
        .await
    });
    // Stop only once the request is inside the provider.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while r.provider.calls().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the request never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = r.stop.take().unwrap().send(());
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    tokio::time::timeout(Duration::from_secs(10), r.task)
        .await
        .expect("shutdown in time")
        .unwrap();
}

#[tokio::test]
async fn a_keep_alive_connection_serves_several_requests() {
    let r = start(|_| {}).await;
    let body = testdata("pypsrp_get_security_service.xml");
    let mut s = TcpStream::connect(r.http).await.unwrap();
    let first = String::from_utf8(post("/wsman", Some(ADMIN), &body))
        .unwrap()
        .replace("Connection: close\r\n", "");
    s.write_all(first.as_bytes()).await.unwrap();
    // Read exactly one response: headers, then Content-Length bytes.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let complete = |buf: &[u8]| {
        let text = String::from_utf8_lossy(buf);
        let Some((head, rest)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap();
        rest.len() >= len
    };
    while !complete(&buf) {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "the connection stayed open");
        buf.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
    let second = exchange(s, &post("/wsman", Some(ADMIN), &body)).await;
    assert_eq!(second.status, 200);
    assert_eq!(r.provider.calls().len(), 2);
    stop(r).await;
}

#[tokio::test]
async fn tls_material_loads_from_pem_files() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let config = ServerConfig {
        https_listen: vec!["127.0.0.1:0".parse().unwrap()],
        tls: Some(TlsSource::PemFiles {
            cert,
            key: key.clone(),
        }),
        ..ServerConfig::default()
    };
    assert!(
        Server::bind(config, Arc::new(TestProvider::new()))
            .await
            .is_ok()
    );
    let missing = ServerConfig {
        https_listen: vec!["127.0.0.1:0".parse().unwrap()],
        tls: Some(TlsSource::PemFiles {
            cert: dir.path().join("nope.pem"),
            key,
        }),
        ..ServerConfig::default()
    };
    let err = Server::bind(missing, Arc::new(TestProvider::new()))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("nope.pem"), "{err}");
}

#[tokio::test]
async fn bad_credentials_get_401_before_the_body_is_read() {
    let r = start(|c| c.body_read_timeout = Duration::from_secs(60)).await;
    // The body is announced but never sent: the answer cannot wait for it.
    let reply = http(&r, headers_only(WRONG, 100_000).as_bytes()).await;
    assert_eq!(reply.status, 401);
    assert!(reply.header("WWW-Authenticate").is_some());
    assert!(r.provider.calls().is_empty());
    stop(r).await;
}

/// A server whose password checks take `auth_delay` and whose login burst is `burst`.
async fn slow_logins(auth_delay: Duration, burst: u32, per_minute: u32) -> Running {
    let mut provider = TestProvider::new();
    provider.auth_delay = auth_delay;
    start_with(provider, |c| {
        c.login_rate = LoginRateLimit {
            burst,
            per_minute,
            max_sources: 16,
        };
        c.max_connections_per_source = 512;
    })
    .await
}

/// The statuses of `n` requests `raw`, each on its own connection, all sent at once.
async fn at_once(r: &Running, raw: &[u8], n: usize) -> Vec<u16> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (addr, raw) = (r.http, raw.to_vec());
            tokio::spawn(async move {
                exchange(TcpStream::connect(addr).await.unwrap(), &raw)
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

#[tokio::test]
async fn concurrent_wrong_passwords_are_checked_no_more_than_the_burst() {
    let r = slow_logins(Duration::from_millis(20), 10, 6).await;
    let body = testdata("pypsrp_get_security_service.xml");
    let statuses = at_once(&r, &post("/wsman", Some(WRONG), &body), 200).await;
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429));
    let (checked, _) = r.provider.logins();
    assert_eq!(checked, 10, "only the burst's passwords were hashed");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 190);
    stop(r).await;
}

#[tokio::test]
async fn many_sessions_opened_at_once_with_the_right_password_all_get_in_after_one_check() {
    // A script's parallel jobs: more first logins at once than the source's burst.
    let r = slow_logins(Duration::from_millis(100), 2, 1).await;
    let body = testdata("pypsrp_get_security_service.xml");
    let statuses = at_once(&r, &post("/wsman", Some(ADMIN), &body), 30).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let (checked, known) = r.provider.logins();
    assert!(checked <= 2, "{checked} passwords hashed; the burst is 2");
    assert!(known >= 28, "the others were let in from memory ({known})");
    stop(r).await;
}

#[tokio::test]
async fn a_source_at_its_connection_limit_does_not_keep_other_sources_out() {
    let r = start(|c| {
        c.max_connections = 16;
        c.max_connections_per_source = 4;
    })
    .await;
    // Another "host" opens many idle sockets; only its share stays open.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(connect_from([127, 0, 0, 2], r.http).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut closed = 0;
    for s in &mut idle {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(20), s.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 36,
        "connections past the source's 4 are closed on accept"
    );
    let body = testdata("pypsrp_get_security_service.xml");
    let reply = http(&r, &post("/wsman", Some(ADMIN), &body)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    stop(r).await;
}

#[tokio::test]
async fn request_bodies_hold_a_bounded_amount_of_memory_in_all_and_per_user() {
    let r = start(|c| {
        // One body of the largest size always fits the budgets, so the largest is 1 MB here.
        c.max_request_bytes = 1_000_000;
        c.max_body_memory = 2_000_000;
        c.max_body_memory_per_user = 1_000_000;
    })
    .await;
    // Credentials verified once, so that the bodies below are read at once.
    let body = testdata("pypsrp_get_security_service.xml");
    for auth in [ADMIN, READER] {
        assert_eq!(
            http(&r, &post("/wsman", Some(auth), &body)).await.status,
            200
        );
    }
    // The reader announces a 900 KB body and withholds it: those bytes are spoken for.
    let mut stalled = TcpStream::connect(r.http).await.unwrap();
    stalled
        .write_all(headers_only(READER, 900_000).as_bytes())
        .await
        .unwrap();
    stalled.write_all(b"<s:Envelope").await.unwrap();
    // Once the server holds them (it says so in /metrics), a second body of the reader's
    // cannot fit.
    let metrics = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic YWRtaW46c2VjcmV0\r\n\r\n";
    let held = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("vmsec_wsman_request_body_bytes "))
            .map(|v| v.trim().parse::<u64>().unwrap())
    };
    let mut waited = 0;
    while held(&http(&r, metrics.as_bytes()).await.body) != Some(900_000) {
        waited += 1;
        assert!(waited < 200, "the stalled body was never reserved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = http(&r, headers_only(READER, 900_000).as_bytes()).await;
    assert_eq!(second.status, 503, "past the reader's share");
    assert_eq!(second.header("Retry-After"), Some("1"));
    // The admin's share is untouched: a large body of theirs is read and answered.
    let padded = body.replacen(
        "<s:Header>",
        &format!("<!--{}--><s:Header>", "x".repeat(800_000)),
        1,
    );
    let reply = http(&r, &post("/wsman", Some(ADMIN), &padded)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    drop(stalled);
    // Answered and closed bodies give their memory back.
    let mut waited = 0;
    while held(&http(&r, metrics.as_bytes()).await.body) != Some(0) {
        waited += 1;
        assert!(waited < 200, "body memory was not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop(r).await;
}

#[tokio::test]
async fn an_authenticated_keep_alive_connection_outlives_the_header_timeout() {
    let r = start(|c| {
        c.header_read_timeout = Duration::from_millis(300);
        c.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let body = testdata("pypsrp_get_security_service.xml");
    let one = String::from_utf8(post("/wsman", Some(ADMIN), &body))
        .unwrap()
        .replace("Connection: close\r\n", "");
    let mut s = TcpStream::connect(r.http).await.unwrap();
    for round in 0..2 {
        s.write_all(one.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while !String::from_utf8_lossy(&got).contains("</s:Envelope>") {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .expect("reply in time")
                .unwrap();
            assert!(n > 0, "round {round}: the server closed the connection");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
        // Idle for longer than the header timeout, shorter than the idle timeout.
        tokio::time::sleep(Duration::from_millis(900)).await;
    }
    stop(r).await;
}

#[tokio::test]
async fn a_connection_that_never_authenticated_gets_the_short_timeout() {
    let r = start(|c| {
        c.header_read_timeout = Duration::from_millis(300);
        c.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let mut s = TcpStream::connect(r.http).await.unwrap();
    // A request without credentials, answered 401, then silence.
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "closed long before the idle timeout");
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 401"));
    stop(r).await;
}
