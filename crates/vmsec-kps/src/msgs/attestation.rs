//! [MS-HGSA] messages (JSON). Every object begins with `__type` =
//! `<Name>:#Microsoft.Windows.RemoteAttestation.Core`; byte arrays are base64 strings.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{b64, unb64};
use crate::error::AttestError;

/// The namespace suffix of every `__type`.
pub const TYPE_SUFFIX: &str = ":#Microsoft.Windows.RemoteAttestation.Core";

/// [MS-HGSA] 2.2.1.1: the operation modes.
pub const MODE_TPM: u32 = 1;
pub const MODE_HOST_KEY: u32 = 3;

/// [MS-HGSA] 2.2.1.2: AttestationProvidedContentType values this profile reads.
pub const PROVIDED_IDK: u32 = 1;
pub const PROVIDED_HOST_KEY_PUBLIC_KEY: u32 = 8;
pub const PROVIDED_HOST_KEY_SIGNATURE: u32 = 9;

/// [MS-HGSA] 2.2.1.3: VSMIdentityEncryptionKeyCertificate, the one result a host asks for.
pub const RESULT_IDK_ENCRYPTION_CERTIFICATE: u32 = 1;

/// The most content tuples a request may carry: a host-key request has three.
const MAX_TUPLES: usize = 16;

pub(crate) fn type_name(name: &str) -> String {
    format!("{name}{TYPE_SUFFIX}")
}

#[derive(Deserialize, Serialize)]
pub(crate) struct Tuple {
    #[serde(rename = "m_Item1")]
    pub(crate) item1: u32,
    #[serde(rename = "m_Item2")]
    pub(crate) item2: String,
}

#[derive(Deserialize)]
pub(crate) struct RequestJson {
    #[serde(rename = "__type")]
    ty: Option<String>,
    #[serde(rename = "RequestedContent")]
    requested: Vec<u32>,
    #[serde(rename = "ProvidedContent")]
    pub(crate) provided: Vec<Tuple>,
}

/// An `AttestationRequest`'s envelope checked: its `__type` (when given), at most
/// [`MAX_TUPLES`] contents, and a request for the IDK's certificate.
pub(crate) fn parse_envelope(body: &[u8]) -> Result<RequestJson, AttestError> {
    let payload = |m: String| AttestError::Payload(m);
    let req: RequestJson = serde_json::from_slice(body)
        .map_err(|e| payload(format!("not an AttestationRequest: {e}")))?;
    if let Some(ty) = &req.ty
        && *ty != type_name("AttestationRequest")
    {
        return Err(payload(format!(
            "__type {ty:?} is not AttestationRequest{TYPE_SUFFIX}"
        )));
    }
    if req.provided.len() > MAX_TUPLES {
        return Err(payload(format!(
            "{} ProvidedContent entries; at most {MAX_TUPLES}",
            req.provided.len()
        )));
    }
    if !req.requested.contains(&RESULT_IDK_ENCRYPTION_CERTIFICATE) {
        return Err(payload(
            "RequestedContent must ask for VSMIdentityEncryptionKeyCertificate (1)".into(),
        ));
    }
    Ok(req)
}

impl RequestJson {
    /// The content of type `kind`, once at most; `None` when absent.
    pub(crate) fn optional(&self, kind: u32, name: &str) -> Result<Option<Vec<u8>>, AttestError> {
        let payload = |m: String| AttestError::Payload(m);
        let mut found = self.provided.iter().filter(|t| t.item1 == kind);
        let Some(t) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(payload(format!(
                "ProvidedContent has {name} ({kind}) twice"
            )));
        }
        unb64(&t.item2)
            .map(Some)
            .ok_or_else(|| payload(format!("{name} ({kind}) is not base64")))
    }

    /// The content of type `kind`, exactly once.
    pub(crate) fn one(&self, kind: u32, name: &str) -> Result<Vec<u8>, AttestError> {
        self.optional(kind, name)?
            .ok_or_else(|| AttestError::Payload(format!("ProvidedContent has no {name} ({kind})")))
    }

    pub(crate) fn has(&self, kind: u32) -> bool {
        self.provided.iter().any(|t| t.item1 == kind)
    }
}

/// An `AttestationRequest` body with `__type` first and the given contents.
pub(crate) fn request_body(session_id: &[u8; 16], provided: &[(u32, &[u8])]) -> Vec<u8> {
    let tuples: Vec<_> = provided
        .iter()
        .map(|(kind, bytes)| json!({"m_Item1": kind, "m_Item2": b64(bytes)}))
        .collect();
    let provided = serde_json::to_string(&tuples).expect("JSON of strings and numbers");
    format!(
        "{{\"__type\":{},\"SessionId\":{},\"RequestedContent\":[{RESULT_IDK_ENCRYPTION_CERTIFICATE}],\"ProvidedContent\":{provided}}}",
        json!(type_name("AttestationRequest")),
        json!(b64(session_id)),
    )
    .into_bytes()
}

/// A host-key attestation request ([MS-HGSA] 3.1.5.3), decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostKeyRequest {
    /// DER SubjectPublicKeyInfo of the host key.
    pub host_key: Vec<u8>,
    /// DER SubjectPublicKeyInfo of the key to certify (the IDK).
    pub idk: Vec<u8>,
    /// RSASSA-PKCS1-v1_5 SHA-256 by the host key over `host_key ‖ idk`.
    pub signature: Vec<u8>,
}

/// Decodes an `AttestationRequest` for `/hostkeyattest`.
pub fn parse_host_key_request(body: &[u8]) -> Result<HostKeyRequest, AttestError> {
    let req = parse_envelope(body)?;
    Ok(HostKeyRequest {
        host_key: req.one(PROVIDED_HOST_KEY_PUBLIC_KEY, "HostKeyPublicKey")?,
        idk: req.one(PROVIDED_IDK, "VirtualSecureModeIdentityKey")?,
        signature: req.one(PROVIDED_HOST_KEY_SIGNATURE, "HostKeySignature")?,
    })
}

/// Encodes a host-key `AttestationRequest` (the host side).
pub fn host_key_request(session_id: &[u8; 16], req: &HostKeyRequest) -> Vec<u8> {
    request_body(
        session_id,
        &[
            (PROVIDED_HOST_KEY_PUBLIC_KEY, &req.host_key),
            (PROVIDED_IDK, &req.idk),
            (PROVIDED_HOST_KEY_SIGNATURE, &req.signature),
        ],
    )
}

/// `HealthCertificateReply` carrying one health certificate (DER).
pub fn health_certificate_reply(cert_der: &[u8]) -> Vec<u8> {
    format!(
        "{{\"__type\":{},\"Content\":[{{\"m_Item1\":{RESULT_IDK_ENCRYPTION_CERTIFICATE},\"m_Item2\":{}}}]}}",
        json!(type_name("HealthCertificateReply")),
        json!(b64(cert_der)),
    )
    .into_bytes()
}

#[derive(Deserialize)]
struct ReplyJson {
    #[serde(rename = "__type")]
    ty: String,
    #[serde(rename = "Content", default)]
    content: Vec<Tuple>,
    #[serde(rename = "Message", default)]
    message: Option<String>,
}

/// What an Attestation Service answered (the host side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttestReply {
    /// The health certificate, DER.
    HealthCertificate(Vec<u8>),
    /// An `ErrorReply`: its type name (without the suffix) and message.
    Error { reply_type: String, message: String },
}

/// Decodes an Attestation Service reply.
pub fn parse_reply(body: &[u8]) -> Result<AttestReply, String> {
    let reply: ReplyJson =
        serde_json::from_slice(body).map_err(|e| format!("not an attestation reply: {e}"))?;
    let name = reply
        .ty
        .strip_suffix(TYPE_SUFFIX)
        .ok_or_else(|| format!("__type {:?} is not an [MS-HGSA] type", reply.ty))?;
    if name == "HealthCertificateReply" {
        let cert = reply
            .content
            .iter()
            .find(|t| t.item1 == RESULT_IDK_ENCRYPTION_CERTIFICATE)
            .and_then(|t| unb64(&t.item2))
            .ok_or("HealthCertificateReply without a VSMIdentityEncryptionKeyCertificate")?;
        return Ok(AttestReply::HealthCertificate(cert));
    }
    if name.ends_with("ErrorReply") {
        return Ok(AttestReply::Error {
            reply_type: name.to_owned(),
            message: reply.message.unwrap_or_default(),
        });
    }
    Err(format!("unexpected reply {name}"))
}

/// The `ErrorReply` subtype for `error`, with `Retryable` and a `Message` naming the problem
/// (vmsec adds `Message`; the spec's fields come first).
pub fn error_reply(error: &AttestError) -> Vec<u8> {
    let mut text = format!(
        "{{\"__type\":{},\"Retryable\":{}",
        json!(type_name(error.reply_type())),
        error.retryable()
    );
    if let AttestError::OperationMode = error {
        text.push_str(&format!(",\"ExpectedOperationMode\":{MODE_HOST_KEY}"));
    }
    text.push_str(&format!(",\"Message\":{}}}", json!(error.to_string())));
    text.into_bytes()
}

/// `ServiceInfoReply` ([MS-HGSA] 2.2.2.10).
pub fn service_info_reply(mode: u32) -> Vec<u8> {
    format!(
        "{{\"__type\":{},\"FunctionalLevel\":2,\"OperationMode\":{mode},\"SupportedFunctionalLevels\":[1,2]}}",
        json!(type_name("ServiceInfoReply"))
    )
    .into_bytes()
}

/// The reply of `signingCertificates`: a WCF `byte[]`, which JSON carries as one base64
/// string, of a PKCS#7 bundle.
pub fn signing_certificates_reply(pkcs7_der: &[u8]) -> Vec<u8> {
    json!(b64(pkcs7_der)).to_string().into_bytes()
}

/// Decodes the reply of `signingCertificates` into the PKCS#7 DER.
pub fn parse_signing_certificates_reply(body: &[u8]) -> Result<Vec<u8>, String> {
    let text: String =
        serde_json::from_slice(body).map_err(|e| format!("not a JSON base64 string: {e}"))?;
    unb64(&text).ok_or_else(|| "not base64".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> HostKeyRequest {
        HostKeyRequest {
            host_key: vec![1, 2, 3],
            idk: vec![4, 5],
            signature: vec![6; 256],
        }
    }

    #[test]
    fn a_host_key_request_reads_back_and_starts_with_its_type() {
        let body = host_key_request(&[7; 16], &request());
        assert!(body.starts_with(
            b"{\"__type\":\"AttestationRequest:#Microsoft.Windows.RemoteAttestation.Core\""
        ));
        assert_eq!(parse_host_key_request(&body).unwrap(), request());
    }

    #[test]
    fn a_request_missing_the_signature_or_with_it_twice_is_a_payload_error() {
        let missing = br#"{"RequestedContent":[1],"ProvidedContent":[{"m_Item1":8,"m_Item2":"AQ=="},{"m_Item1":1,"m_Item2":"AQ=="}]}"#;
        assert!(
            matches!(parse_host_key_request(missing), Err(AttestError::Payload(m)) if m.contains("HostKeySignature"))
        );
        let twice = br#"{"RequestedContent":[1],"ProvidedContent":[{"m_Item1":8,"m_Item2":"AQ=="},{"m_Item1":1,"m_Item2":"AQ=="},{"m_Item1":9,"m_Item2":"AQ=="},{"m_Item1":9,"m_Item2":"AQ=="}]}"#;
        assert!(
            matches!(parse_host_key_request(twice), Err(AttestError::Payload(m)) if m.contains("twice"))
        );
    }

    #[test]
    fn garbage_wrong_types_and_bad_base64_are_payload_errors() {
        for body in [
            &b"not json"[..],
            br#"{"__type":"TpmRequestInitial:#Microsoft.Windows.RemoteAttestation.Core","RequestedContent":[1],"ProvidedContent":[]}"#,
            br#"{"RequestedContent":[2],"ProvidedContent":[]}"#,
            br#"{"RequestedContent":[1],"ProvidedContent":[{"m_Item1":8,"m_Item2":"!!"},{"m_Item1":1,"m_Item2":"AQ=="},{"m_Item1":9,"m_Item2":"AQ=="}]}"#,
            br#"{"RequestedContent":"x","ProvidedContent":[]}"#,
        ] {
            assert!(matches!(parse_host_key_request(body), Err(AttestError::Payload(_))), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn replies_read_back() {
        assert_eq!(
            parse_reply(&health_certificate_reply(b"cert")).unwrap(),
            AttestReply::HealthCertificate(b"cert".to_vec())
        );
        let refused = error_reply(&AttestError::Unauthorized(
            "host h1 is not registered".into(),
        ));
        assert_eq!(
            parse_reply(&refused).unwrap(),
            AttestReply::Error {
                reply_type: "UnauthorizedErrorReply".into(),
                message: "host h1 is not registered".into()
            }
        );
        assert_eq!(
            parse_signing_certificates_reply(&signing_certificates_reply(b"p7")).unwrap(),
            b"p7"
        );
    }
}
