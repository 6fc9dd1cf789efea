//! A small HTTPS client for the guarded fabric's requests (attestation, RollTransportKey,
//! metadata.xml): one connection per request, every step under one deadline, the reply's size
//! bounded. rustls with the aws-lc-rs provider, trusting a given CA file or the system's roots.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// Replies larger than this are refused: a rolled protector is a few kilobytes per wrapping.
const MAX_REPLY: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct HttpsClient {
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

/// Why a request got no HTTP reply: the service is unreachable (a fallback may help).
#[derive(Debug, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct Unreachable {
    pub url: String,
    pub reason: String,
}

/// An HTTP reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

struct Target {
    host: String,
    port: u16,
    /// Path and query.
    path: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{url}: only https:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url}: bad IPv6 address"))?;
        let port = after.strip_prefix(':').map(str::parse).transpose();
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p.parse()).transpose()),
            None => (authority.to_owned(), Ok(None)),
        }
    };
    let port: Option<u16> = port.map_err(|_| format!("{url}: bad port"))?;
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    Ok(Target {
        host,
        port: port.unwrap_or(443),
        path: path.to_owned(),
    })
}

/// Checks a URL is one this client can use (for configuration, before it is stored).
pub fn check_url(url: &str) -> Result<(), String> {
    parse_url(url).map(drop)
}

impl HttpsClient {
    /// Trusting the certificates of `ca` (PEM), or the system's roots without one.
    pub fn new(ca: Option<&Path>, timeout: Duration) -> Result<HttpsClient, String> {
        let mut roots = rustls::RootCertStore::empty();
        match ca {
            Some(path) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<_, _>>())
                    .map_err(|e| format!("--ca {}: {e}", path.display()))?;
                if certs.is_empty() {
                    return Err(format!("--ca {}: no certificate in it", path.display()));
                }
                for c in certs {
                    roots
                        .add(c)
                        .map_err(|e| format!("--ca {}: {e}", path.display()))?;
                }
            }
            None => {
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(c);
                }
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(HttpsClient {
            tls: Arc::new(tls),
            timeout,
        })
    }

    pub fn get(&self, url: &str) -> Result<Reply, Unreachable> {
        self.request("GET", url, None, Vec::new())
    }

    pub fn post(&self, url: &str, content_type: &str, body: Vec<u8>) -> Result<Reply, Unreachable> {
        self.request("POST", url, Some(content_type), body)
    }

    fn request(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Reply, Unreachable> {
        let unreachable = |reason: String| Unreachable {
            url: url.to_owned(),
            reason,
        };
        let target = parse_url(url).map_err(unreachable)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| unreachable(format!("no async runtime: {e}")))?;
        let work = self.exchange(method, &target, content_type, body);
        runtime
            .block_on(async { tokio::time::timeout(self.timeout, work).await })
            .map_err(|_| unreachable(format!("no reply within {} s", self.timeout.as_secs_f64())))?
            .map_err(unreachable)
    }

    async fn exchange(
        &self,
        method: &str,
        t: &Target,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Reply, String> {
        let tcp = tokio::net::TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let name = ServerName::try_from(t.host.clone()).map_err(|e| format!("server name: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        tokio::spawn(conn);
        let authority = if t.host.contains(':') {
            format!("[{}]:{}", t.host, t.port)
        } else {
            format!("{}:{}", t.host, t.port)
        };
        let mut req = Request::builder()
            .method(method)
            .uri(&t.path)
            .header(hyper::header::HOST, authority);
        if let Some(ct) = content_type {
            req = req.header(hyper::header::CONTENT_TYPE, ct);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("request: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_REPLY)
            .collect()
            .await
            .map_err(|e| format!("reading the reply: {e}"))?
            .to_bytes()
            .to_vec();
        Ok(Reply { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_host_port_and_path() {
        let t = parse_url("https://kps.example:8443/KeyProtection/service").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("kps.example", 8443, "/KeyProtection/service")
        );
        let t = parse_url("https://[::1]/x").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 443));
        assert!(parse_url("http://kps.example/").is_err());
        assert!(parse_url("https://:80/").is_err());
        assert!(parse_url("https://h:99999/").is_err());
    }
}
