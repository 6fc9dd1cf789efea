//! PEM (RFC 7468) for certificates and PKCS#8 private keys. Small enough to
//! own, so private key text can be kept in `Zeroizing` buffers end to end.

use base64::Engine;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Label of an X.509 certificate.
pub const CERTIFICATE: &str = "CERTIFICATE";
/// Label of an unencrypted PKCS#8 private key.
pub const PRIVATE_KEY: &str = "PRIVATE KEY";

/// Encodes `der` as PEM with 64-column lines.
pub fn encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    let body = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = Zeroizing::new(String::with_capacity(body.len() + body.len() / 64 + 64));
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in body.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Decodes the first PEM block labelled `label` (text outside it is ignored, as RFC 7468 allows).
pub fn decode(label: &str, text: &str) -> Result<Zeroizing<Vec<u8>>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| Error::Pem(format!("no {begin} line")))?
        + begin.len();
    let rest = text.get(start..).unwrap_or_default();
    let stop = rest
        .find(&end)
        .ok_or_else(|| Error::Pem(format!("no {end} line")))?;
    let body: Zeroizing<String> = Zeroizing::new(
        rest.get(..stop)
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect(),
    );
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| Error::Pem(format!("{label} body is not valid base64")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_wraps_at_64_columns() {
        let der: Vec<u8> = (0..=255u8).collect();
        let pem = encode(CERTIFICATE, &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(decode(CERTIFICATE, &pem).expect("decodes").as_slice(), der);
    }

    #[test]
    fn wrong_label_is_refused() {
        let pem = encode(PRIVATE_KEY, b"x");
        assert!(matches!(decode(CERTIFICATE, &pem), Err(Error::Pem(_))));
    }
}
