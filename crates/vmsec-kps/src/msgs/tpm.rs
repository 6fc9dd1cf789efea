//! TPM mode's messages on `POST /Attestation/v2.0/attest` (docs/specs/kps.md, "TPM mode"):
//! two `AttestationRequest`s, the first answered with a `TpmReplyContinue` carrying the
//! challenge, the second with the `HealthCertificateReply` (or an `ErrorReply`).
//! Content types 1, 2 and 4 are [MS-HGSA]'s; 0x100 and up are vmsec's.

use serde::Deserialize;
use serde_json::json;

use super::attestation::{self, PROVIDED_IDK, TYPE_SUFFIX};
use super::{b64, unb64};
use crate::error::AttestError;

/// [MS-HGSA] RtpmContext: in the second request, the challenge's id.
pub const PROVIDED_RTPM_CONTEXT: u32 = 2;
/// [MS-HGSA] EndorsementKeyCertificate (DER).
pub const PROVIDED_EK_CERTIFICATE: u32 = 4;
/// vmsec: the EK's TPMT_PUBLIC.
pub const PROVIDED_EK_PUBLIC: u32 = 0x100;
/// vmsec: the AK's TPMT_PUBLIC.
pub const PROVIDED_AK_PUBLIC: u32 = 0x101;
/// vmsec: the secret TPM2_ActivateCredential recovered.
pub const PROVIDED_ACTIVATED_CREDENTIAL: u32 = 0x102;
/// vmsec: TPMS_ATTEST of TPM2_Certify (the IDK by the AK).
pub const PROVIDED_IDK_CERTIFY_INFO: u32 = 0x103;
/// vmsec: its TPMT_SIGNATURE.
pub const PROVIDED_IDK_CERTIFY_SIGNATURE: u32 = 0x104;
/// vmsec: TPMS_ATTEST of TPM2_Quote.
pub const PROVIDED_QUOTE: u32 = 0x105;
/// vmsec: its TPMT_SIGNATURE.
pub const PROVIDED_QUOTE_SIGNATURE: u32 = 0x106;
/// vmsec: the TCG event log (crypto-agile, as firmware wrote it).
pub const PROVIDED_TCG_LOG: u32 = 0x107;

/// The first request: who the host is and the AK it wants bound to its EK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Begin {
    pub ek_certificate: Option<Vec<u8>>,
    pub ek_public: Vec<u8>,
    pub ak_public: Vec<u8>,
}

/// The second request: the challenge answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finish {
    pub challenge_id: Vec<u8>,
    pub activated_credential: Vec<u8>,
    pub idk_public: Vec<u8>,
    pub certify_info: Vec<u8>,
    pub certify_signature: Vec<u8>,
    pub quote: Vec<u8>,
    pub quote_signature: Vec<u8>,
    pub event_log: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TpmRequest {
    Begin(Begin),
    Finish(Finish),
}

/// Decodes either request: the second one is the one with an RtpmContext.
pub fn parse_request(body: &[u8]) -> Result<TpmRequest, AttestError> {
    let req = attestation::parse_envelope(body)?;
    if req.has(PROVIDED_RTPM_CONTEXT) {
        return Ok(TpmRequest::Finish(Finish {
            challenge_id: req.one(PROVIDED_RTPM_CONTEXT, "RtpmContext")?,
            activated_credential: req.one(PROVIDED_ACTIVATED_CREDENTIAL, "ActivatedCredential")?,
            idk_public: req.one(PROVIDED_IDK, "VirtualSecureModeIdentityKey")?,
            certify_info: req.one(PROVIDED_IDK_CERTIFY_INFO, "IdkCertifyInfo")?,
            certify_signature: req.one(PROVIDED_IDK_CERTIFY_SIGNATURE, "IdkCertifySignature")?,
            quote: req.one(PROVIDED_QUOTE, "Quote")?,
            quote_signature: req.one(PROVIDED_QUOTE_SIGNATURE, "QuoteSignature")?,
            event_log: req.one(PROVIDED_TCG_LOG, "TcgLog")?,
        }));
    }
    Ok(TpmRequest::Begin(Begin {
        ek_certificate: req.optional(PROVIDED_EK_CERTIFICATE, "EndorsementKeyCertificate")?,
        ek_public: req.one(PROVIDED_EK_PUBLIC, "EndorsementKeyPublic")?,
        ak_public: req.one(PROVIDED_AK_PUBLIC, "AttestationKeyPublic")?,
    }))
}

/// The first request's body (the host side).
pub fn begin_request(session_id: &[u8; 16], b: &Begin) -> Vec<u8> {
    let mut provided: Vec<(u32, &[u8])> = Vec::new();
    if let Some(c) = &b.ek_certificate {
        provided.push((PROVIDED_EK_CERTIFICATE, c));
    }
    provided.push((PROVIDED_EK_PUBLIC, &b.ek_public));
    provided.push((PROVIDED_AK_PUBLIC, &b.ak_public));
    attestation::request_body(session_id, &provided)
}

/// The second request's body (the host side).
pub fn finish_request(session_id: &[u8; 16], f: &Finish) -> Vec<u8> {
    attestation::request_body(
        session_id,
        &[
            (PROVIDED_RTPM_CONTEXT, &f.challenge_id),
            (PROVIDED_ACTIVATED_CREDENTIAL, &f.activated_credential),
            (PROVIDED_IDK, &f.idk_public),
            (PROVIDED_IDK_CERTIFY_INFO, &f.certify_info),
            (PROVIDED_IDK_CERTIFY_SIGNATURE, &f.certify_signature),
            (PROVIDED_QUOTE, &f.quote),
            (PROVIDED_QUOTE_SIGNATURE, &f.quote_signature),
            (PROVIDED_TCG_LOG, &f.event_log),
        ],
    )
}

/// The challenge of the first reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// RtpmActiveContext: what the second request names the challenge by (16 bytes).
    pub id: Vec<u8>,
    /// The qualifying data TPM2_Quote and TPM2_Certify must carry (32 bytes).
    pub nonce: Vec<u8>,
    /// TPM2_MakeCredential's outputs for the AK.
    pub credential_blob: Vec<u8>,
    pub encrypted_secret: Vec<u8>,
    /// The SHA-256 PCRs to quote.
    pub pcrs: Vec<u32>,
}

#[derive(Deserialize)]
struct ChallengeJson {
    #[serde(rename = "__type")]
    ty: String,
    #[serde(rename = "RtpmActiveContext")]
    id: String,
    #[serde(rename = "Nonce")]
    nonce: String,
    #[serde(rename = "CredentialBlob")]
    credential_blob: String,
    #[serde(rename = "EncryptedSecret")]
    encrypted_secret: String,
    #[serde(rename = "PcrSelection")]
    pcrs: Vec<u32>,
}

/// `TpmReplyContinue` with the challenge ([MS-HGSA] 2.2.2.6, vmsec's fields after it).
pub fn challenge_reply(c: &Challenge) -> Vec<u8> {
    format!(
        "{{\"__type\":{},\"RtpmActiveContext\":{},\"Nonce\":{},\"CredentialBlob\":{},\"EncryptedSecret\":{},\"PcrSelection\":{}}}",
        json!(attestation::type_name("TpmReplyContinue")),
        json!(b64(&c.id)),
        json!(b64(&c.nonce)),
        json!(b64(&c.credential_blob)),
        json!(b64(&c.encrypted_secret)),
        json!(c.pcrs),
    )
    .into_bytes()
}

/// Decodes a `TpmReplyContinue` (the host side); `None` when the body is another reply.
pub fn parse_challenge(body: &[u8]) -> Option<Challenge> {
    let c: ChallengeJson = serde_json::from_slice(body).ok()?;
    if c.ty != format!("TpmReplyContinue{TYPE_SUFFIX}") || c.pcrs.len() > 24 {
        return None;
    }
    Some(Challenge {
        id: unb64(&c.id)?,
        nonce: unb64(&c.nonce)?,
        credential_blob: unb64(&c.credential_blob)?,
        encrypted_secret: unb64(&c.encrypted_secret)?,
        pcrs: c.pcrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_requests_and_the_challenge_read_back() {
        let b = Begin {
            ek_certificate: Some(vec![1]),
            ek_public: vec![2],
            ak_public: vec![3],
        };
        assert_eq!(
            parse_request(&begin_request(&[0; 16], &b)).unwrap(),
            TpmRequest::Begin(b)
        );
        let f = Finish {
            challenge_id: vec![1],
            activated_credential: vec![2],
            idk_public: vec![3],
            certify_info: vec![4],
            certify_signature: vec![5],
            quote: vec![6],
            quote_signature: vec![7],
            event_log: vec![8],
        };
        assert_eq!(
            parse_request(&finish_request(&[0; 16], &f)).unwrap(),
            TpmRequest::Finish(f)
        );
        let c = Challenge {
            id: vec![1; 16],
            nonce: vec![2; 32],
            credential_blob: vec![3],
            encrypted_secret: vec![4],
            pcrs: vec![0, 7],
        };
        assert_eq!(parse_challenge(&challenge_reply(&c)).unwrap(), c);
    }

    #[test]
    fn a_second_request_missing_its_quote_is_a_payload_error() {
        let body =
            br#"{"RequestedContent":[1],"ProvidedContent":[{"m_Item1":2,"m_Item2":"AQ=="}]}"#;
        assert!(matches!(parse_request(body), Err(AttestError::Payload(_))));
    }
}
