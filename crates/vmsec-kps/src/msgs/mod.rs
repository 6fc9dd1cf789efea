//! The wire: [MS-HGSA]'s JSON messages, [MS-KPS]'s XML messages, and the PKCS#7 bundle of
//! signing certificates. Codecs only; what a message means is decided elsewhere.

pub mod attestation;
pub mod pkcs7;
pub mod roll;
pub mod tpm;

use base64::Engine as _;

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Base64 as both specs write it: standard alphabet, padding, whitespace tolerated.
pub(crate) fn unb64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}
