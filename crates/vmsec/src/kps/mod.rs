//! `vmsec kps serve`'s configuration; the server itself is [`server`].

mod host_limit;
mod metrics;
pub mod server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use vmsec_wsman::server::TlsSource;

use crate::CliError;
use crate::data_dir::DataDir;

/// The TOML file of `kps serve --config` (contrib/vmsec-kps.toml shows every key with its
/// default). Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpsFileConfig {
    pub listen: Option<Vec<SocketAddr>>,
    /// Plain HTTP, only when asked for (loopback tests, a TLS-terminating proxy in front).
    pub http_listen: Option<Vec<SocketAddr>>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_request_bytes: Option<usize>,
    pub max_attestation_bytes: Option<usize>,
    pub header_timeout_secs: Option<u64>,
    pub body_timeout_secs: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_connections_per_source: Option<usize>,
    pub requests_per_minute_per_host: Option<u32>,
    pub health_certificate_hours: Option<u64>,
    /// PEM files of other attestation signers to trust (another KPS node's), besides its own.
    pub trusted_attestation_signers: Option<Vec<PathBuf>>,
    /// TPM mode: PEM files of the CAs a host's EK certificate must be signed by (none: the
    /// registered EK is trusted as registered).
    pub ek_ca_certificates: Option<Vec<PathBuf>>,
    pub log_level: Option<String>,
}

impl KpsFileConfig {
    pub fn load(path: &Path) -> Result<KpsFileConfig, CliError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| CliError::new(format!("{}: {e}", path.display())))
    }
}

fn positive<T: PartialOrd + Default + Copy>(
    name: &str,
    v: Option<T>,
) -> Result<Option<T>, CliError> {
    match v {
        Some(x) if x <= T::default() => {
            Err(CliError::new(format!("{name} must be greater than 0")))
        }
        other => Ok(other),
    }
}

/// Defaults, then the file's, then the command line's.
pub fn settings(
    data: &DataDir,
    listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    config: Option<&Path>,
) -> Result<server::Settings, CliError> {
    let file = config
        .map(KpsFileConfig::load)
        .transpose()?
        .unwrap_or_default();
    let tls = match (&file.tls_cert, &file.tls_key) {
        (Some(cert), Some(key)) => TlsSource::PemFiles {
            cert: cert.clone(),
            key: key.clone(),
        },
        (None, None) => crate::serve::ensure_self_signed(&data.path)?,
        _ => return Err(CliError::new("tls_cert and tls_key go together")),
    };
    let mut s = server::Settings::defaults(tls);
    if let Some(l) = listen {
        s.listen = vec![l];
    } else if let Some(l) = file.listen {
        s.listen = l;
    }
    if let Some(a) = http_listen {
        s.http_listen = vec![a];
    } else if let Some(l) = file.http_listen {
        s.http_listen = l;
    }
    for a in &s.http_listen {
        if !a.ip().is_loopback() {
            tracing::warn!(
                "plain HTTP on {a}, which is not loopback: health certificates and key protectors cross the network unencrypted"
            );
        }
    }
    if let Some(n) = positive("max_request_bytes", file.max_request_bytes)? {
        s.max_request_bytes = n;
    }
    if let Some(n) = positive("max_attestation_bytes", file.max_attestation_bytes)? {
        s.max_attestation_bytes = n;
    }
    if let Some(n) = positive("header_timeout_secs", file.header_timeout_secs)? {
        s.header_timeout = Duration::from_secs(n);
    }
    if let Some(n) = positive("body_timeout_secs", file.body_timeout_secs)? {
        s.body_timeout = Duration::from_secs(n);
    }
    if let Some(n) = positive("max_connections", file.max_connections)? {
        s.max_connections = n;
    }
    if let Some(n) = positive(
        "max_connections_per_source",
        file.max_connections_per_source,
    )? {
        s.max_connections_per_source = n;
    }
    if let Some(n) = positive(
        "requests_per_minute_per_host",
        file.requests_per_minute_per_host,
    )? {
        s.requests_per_minute_per_host = n;
    }
    if let Some(h) = positive("health_certificate_hours", file.health_certificate_hours)? {
        s.health_validity = time::Duration::hours(h.min(24 * 30) as i64);
    }
    for p in file.trusted_attestation_signers.unwrap_or_default() {
        s.extra_signers.extend(pem_certificates(&p)?);
    }
    for p in file.ek_ca_certificates.unwrap_or_default() {
        s.ek_roots.extend(pem_certificates(&p)?);
    }
    Ok(s)
}

/// The certificates of a PEM file, DER; at least one.
fn pem_certificates(p: &Path) -> Result<Vec<Vec<u8>>, CliError> {
    let pem =
        std::fs::read(p).map_err(|e| CliError::new(format!("cannot read {}: {e}", p.display())))?;
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CliError::new(format!("{}: {e}", p.display())))?;
    if certs.is_empty() {
        return Err(CliError::new(format!("{}: no certificate", p.display())));
    }
    Ok(certs.into_iter().map(|c| c.to_vec()).collect())
}

/// The log filter of `kps serve`: the file's `log_level` (info), overridden by `VMSEC_LOG`.
pub fn log_filter(config: Option<&Path>) -> Result<String, CliError> {
    if let Ok(f) = std::env::var("VMSEC_LOG") {
        return Ok(f);
    }
    Ok(config
        .map(KpsFileConfig::load)
        .transpose()?
        .and_then(|f| f.log_level)
        .unwrap_or_else(|| "info".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_names_every_key_and_each_shows_its_default() {
        let text: String = include_str!("../../../../contrib/vmsec-kps.toml")
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.split_once(" = ")
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            })
            .map(|l| l.split(" #").next().unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let keys = toml::from_str::<toml::Table>(&text).unwrap();
        assert_eq!(keys.len(), 15, "{:?}", keys.keys().collect::<Vec<_>>());
        let file: KpsFileConfig = toml::from_str(&text).unwrap();
        let defaults = server::Settings::defaults(TlsSource::PemFiles {
            cert: "c".into(),
            key: "k".into(),
        });
        assert_eq!(file.max_request_bytes, Some(defaults.max_request_bytes));
        assert_eq!(
            file.max_attestation_bytes,
            Some(defaults.max_attestation_bytes)
        );
        assert_eq!(
            file.header_timeout_secs,
            Some(defaults.header_timeout.as_secs())
        );
        assert_eq!(
            file.body_timeout_secs,
            Some(defaults.body_timeout.as_secs())
        );
        assert_eq!(file.max_connections, Some(defaults.max_connections));
        assert_eq!(
            file.max_connections_per_source,
            Some(defaults.max_connections_per_source)
        );
        assert_eq!(
            file.requests_per_minute_per_host,
            Some(defaults.requests_per_minute_per_host)
        );
        assert_eq!(
            file.health_certificate_hours.map(|h| h as i64),
            Some(defaults.health_validity.whole_hours())
        );
        assert_eq!(file.listen, Some(defaults.listen));
        assert_eq!(file.http_listen, Some(defaults.http_listen));
    }
}
