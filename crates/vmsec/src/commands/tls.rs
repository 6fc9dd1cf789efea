//! `vmsec tls show`: the certificate `serve` presents, as a client would check it. Its
//! fingerprint is logged once, when `serve` makes it; this prints it again at any time.

use std::path::Path;

use serde_json::json;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::CliError;
use crate::output::{Out, text};

/// SHA-256 over the certificate's DER, as colon-separated upper-case hex: the form clients
/// (and `openssl x509 -fingerprint -sha256`) show.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

pub fn show(path: &Path, out: &Out) -> Result<(), CliError> {
    let pem_text = std::fs::read(path).map_err(|e| {
        CliError::new(format!(
            "cannot read the TLS certificate {}: {e} (`vmsec serve` makes one at its first start)",
            path.display()
        ))
    })?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem_text)
        .map_err(|e| CliError::new(format!("{} is not a PEM certificate: {e}", path.display())))?;
    let (_, cert) = X509Certificate::from_der(&pem.contents).map_err(|e| {
        CliError::new(format!(
            "{} is not an X.509 certificate: {e}",
            path.display()
        ))
    })?;
    let names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some((*d).to_owned()),
                    GeneralName::IPAddress(ip) => ip_text(ip),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let fp = fingerprint(&pem.contents);
    let validity = cert.validity();
    let (from, until) = (
        validity.not_before.to_datetime(),
        validity.not_after.to_datetime(),
    );
    let (from, until) = (rfc3339(from), rfc3339(until));
    let subject = cert.subject().to_string();
    out.either(
        || {
            format!(
                "{}\n  SHA-256 fingerprint  {fp}\n  subject              {}\n  names                {}\n  valid                {from} to {until}",
                text(&path.display().to_string()),
                text(&subject),
                text(&names.join(", "))
            )
        },
        || {
            json!({
                "path": path.display().to_string(),
                "sha256_fingerprint": fp,
                "subject": subject,
                "names": names,
                "not_before": from,
                "not_after": until,
            })
        },
    )
}

fn ip_text(raw: &[u8]) -> Option<String> {
    match raw.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(raw).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(raw).ok()?).to_string()),
        _ => None,
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    vmsec_store::rfc3339::format(t)
}
