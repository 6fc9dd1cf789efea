//! Loading the TLS certificate chain and key into a rustls server configuration.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use super::ServerError;

/// Where the server's certificate chain and private key come from.
#[derive(Clone)]
pub enum TlsSource {
    /// PEM files (chain first certificate = leaf).
    PemFiles {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// PEM text already in memory; the key is wiped when dropped.
    Pem {
        /// Certificate chain.
        cert: Vec<u8>,
        /// Private key.
        key: Zeroizing<Vec<u8>>,
    },
}

impl fmt::Debug for TlsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key never appears in debug output.
        match self {
            TlsSource::PemFiles { cert, key } => f
                .debug_struct("PemFiles")
                .field("cert", cert)
                .field("key", key)
                .finish(),
            TlsSource::Pem { cert, .. } => f
                .debug_struct("Pem")
                .field("cert_bytes", &cert.len())
                .field("key", &"<redacted>")
                .finish(),
        }
    }
}

fn tls_error(what: impl Into<String>) -> ServerError {
    ServerError::Tls(what.into())
}

/// Builds the rustls configuration (aws-lc-rs provider, TLS 1.2 and 1.3, ALPN http/1.1).
pub fn server_config(source: &TlsSource) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let (certs, key): (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) = match source {
        TlsSource::PemFiles { cert, key } => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| tls_error(format!("certificate file {}: {e}", cert.display())))?;
            let k = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| tls_error(format!("private key file {}: {e}", key.display())))?;
            (certs, k)
        }
        TlsSource::Pem { cert, key } => {
            let certs = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_error(format!("certificate PEM: {e}")))?;
            let k = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| tls_error(format!("private key PEM: {e}")))?;
            (certs, k)
        }
    };
    if certs.is_empty() {
        return Err(tls_error("the certificate PEM holds no certificate"));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            tls_error(format!(
                "certificate and key do not form a usable pair: {e}"
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
