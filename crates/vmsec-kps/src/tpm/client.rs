//! The host's side of TPM mode, sans-IO: the two request bodies, from what the host's TPM
//! does behind [`AttestingTpm`] (the binary's is libtss2 over `/dev/tpmrm0` or swtpm).

use zeroize::Zeroizing;

use crate::msgs::tpm::{self, Begin, Challenge, Finish};

/// What attesting needs of the host's TPM, with its AK and IDK loaded. Each structure is
/// returned as the TPM marshalled it.
pub trait AttestingTpm {
    /// TPM2_ActivateCredential of the challenge's credential with the AK and the EK.
    fn activate_credential(
        &mut self,
        credential_blob: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, String>;
    /// TPM2_Certify of the IDK by the AK over `nonce`: (TPMS_ATTEST, TPMT_SIGNATURE).
    fn certify_idk(&mut self, nonce: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String>;
    /// TPM2_Quote by the AK of the SHA-256 `pcrs` over `nonce`: (TPMS_ATTEST, TPMT_SIGNATURE).
    fn quote(&mut self, nonce: &[u8], pcrs: &[u32]) -> Result<(Vec<u8>, Vec<u8>), String>;
}

fn session() -> Result<[u8; 16], String> {
    let mut s = [0u8; 16];
    aws_lc_rs::rand::fill(&mut s).map_err(|_| "no randomness")?;
    Ok(s)
}

/// The first request: the EK (its certificate when the TPM has one) and the AK.
pub fn begin_body(
    ek_certificate: Option<Vec<u8>>,
    ek_public: Vec<u8>,
    ak_public: Vec<u8>,
) -> Result<Vec<u8>, String> {
    Ok(tpm::begin_request(
        &session()?,
        &Begin {
            ek_certificate,
            ek_public,
            ak_public,
        },
    ))
}

/// The second request, answering `challenge`: the activated secret, the IDK certified and a
/// quote over the nonce, and the event log.
pub fn finish_body(
    tpm: &mut dyn AttestingTpm,
    challenge: &Challenge,
    idk_public: Vec<u8>,
    event_log: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let secret =
        tpm.activate_credential(&challenge.credential_blob, &challenge.encrypted_secret)?;
    let (certify_info, certify_signature) = tpm.certify_idk(&challenge.nonce)?;
    let (quote, quote_signature) = tpm.quote(&challenge.nonce, &challenge.pcrs)?;
    Ok(tpm::finish_request(
        &session()?,
        &Finish {
            challenge_id: challenge.id.clone(),
            activated_credential: secret.to_vec(),
            idk_public,
            certify_info,
            certify_signature,
            quote,
            quote_signature,
            event_log,
        },
    ))
}
