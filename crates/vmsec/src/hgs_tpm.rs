//! This host's TPM in the fabric's TPM mode: its AK and IDK, made once under the EK and kept
//! in `DATA/hgs/` only as the TPM wrapped them, the two round trips of `/attest`, and the
//! IDK's decryption of a release inside the TPM.
//!
//! The TPM is opened for one operation and closed before anything else runs: libtss2's
//! socket TCTIs open their socket without close-on-exec, so a swtpm started while one is open
//! (a VM's vTPM) would inherit the connection and hold a socket-served TPM busy.

use vmsec_kps::msgs::attestation::{self, AttestReply};
use vmsec_kps::msgs::tpm::parse_challenge;
use vmsec_kps::tpm::client;
use vmsec_kps::tpm::wire::RsaPublic;
use vmsec_service::ServiceError;
use vmsec_service::hgs::{HgsDir, TpmConfig};
use vmsec_tpm::attesting::Attesting;
use vmsec_tpm::host::{HostTpm, KeyBlob};
use zeroize::Zeroizing;

use crate::https_client::HttpsClient;

fn tpm_error(e: vmsec_tpm::host::HostTpmError) -> ServiceError {
    ServiceError::InvalidState(e.to_string())
}

/// This host's TPM identity: where the TPM is and its key blobs.
pub struct TpmIdentity {
    pub config: TpmConfig,
    ak: KeyBlob,
    idk: KeyBlob,
}

fn blob(dir: &HgsDir, name: &str) -> Result<Option<KeyBlob>, ServiceError> {
    match (
        dir.tpm_blob(&format!("{name}.priv"))?,
        dir.tpm_blob(&format!("{name}.pub"))?,
    ) {
        (Some(private), Some(public)) => Ok(Some(KeyBlob { private, public })),
        _ => Ok(None),
    }
}

/// What a refusal or a failure was, as the host client sorts them.
pub enum AttestFailure {
    Unreachable(String),
    Refused { reply_type: String, message: String },
    Local(String),
}

impl TpmIdentity {
    /// The AK and IDK of `dir`, made in the TPM first when missing (`hgs set --tpm`).
    pub fn provision(dir: &HgsDir, config: TpmConfig) -> Result<TpmIdentity, ServiceError> {
        if let (Some(ak), Some(idk)) = (blob(dir, "ak")?, blob(dir, "idk")?) {
            return Ok(TpmIdentity { config, ak, idk });
        }
        let mut tpm = HostTpm::open(&config.tcti).map_err(tpm_error)?;
        let ak = tpm.create_ak().map_err(tpm_error)?;
        let idk = tpm.create_idk().map_err(tpm_error)?;
        for (name, b) in [("ak", &ak), ("idk", &idk)] {
            dir.set_tpm_blob(&format!("{name}.priv"), &b.private)?;
            dir.set_tpm_blob(&format!("{name}.pub"), &b.public)?;
        }
        Ok(TpmIdentity { config, ak, idk })
    }

    /// The existing identity of `dir`.
    pub fn load(dir: &HgsDir, config: TpmConfig) -> Result<TpmIdentity, ServiceError> {
        match (blob(dir, "ak")?, blob(dir, "idk")?) {
            (Some(ak), Some(idk)) => Ok(TpmIdentity { config, ak, idk }),
            _ => Err(ServiceError::InvalidState(
                "this host has no TPM keys; run `vmsec hgs set --tpm …` again".into(),
            )),
        }
    }

    /// Both round trips at `attestation_url`: the health certificate (DER).
    pub fn attest(
        &self,
        http: &HttpsClient,
        attestation_url: &str,
    ) -> Result<Vec<u8>, AttestFailure> {
        let local = |e: String| AttestFailure::Local(e);
        let url = format!("{}/v2.0/attest", attestation_url.trim_end_matches('/'));
        let log = std::fs::read(&self.config.event_log).map_err(|e| {
            local(format!(
                "cannot read the event log {}: {e}",
                self.config.event_log.display()
            ))
        })?;
        let mut tpm = HostTpm::open(&self.config.tcti).map_err(|e| local(e.to_string()))?;
        let cert = tpm.ek_certificate();
        let ek = tpm.ek_public().map_err(|e| local(e.to_string()))?;
        let body = client::begin_body(cert, ek, self.ak.public.clone()).map_err(local)?;
        let post = |body: Vec<u8>| {
            http.post(&url, "application/json", body)
                .map_err(|e| AttestFailure::Unreachable(e.to_string()))
        };
        let refused = |status: u16, body: &[u8]| match attestation::parse_reply(body) {
            Ok(AttestReply::Error {
                reply_type,
                message,
            }) => AttestFailure::Refused {
                message: format!(
                    "the Attestation Service at {url} refused this host (HTTP {status}, {reply_type}): {message}"
                ),
                reply_type,
            },
            _ => AttestFailure::Refused {
                reply_type: "?".into(),
                message: format!(
                    "the Attestation Service at {url} answered HTTP {status} with no health certificate"
                ),
            },
        };
        let reply = post(body)?;
        let Some(challenge) = parse_challenge(&reply.body).filter(|_| reply.status == 200) else {
            return Err(refused(reply.status, &reply.body));
        };
        let body = {
            let mut loaded =
                Attesting::load(&mut tpm, &self.ak, &self.idk).map_err(|e| local(e.to_string()))?;
            client::finish_body(&mut loaded, &challenge, self.idk.public.clone(), log)
                .map_err(local)?
        };
        drop(tpm);
        let reply = post(body)?;
        match attestation::parse_reply(&reply.body) {
            Ok(AttestReply::HealthCertificate(der)) if reply.status == 200 => Ok(der),
            _ => Err(refused(reply.status, &reply.body)),
        }
    }

    /// RSA-OAEP decryption by the IDK, inside the TPM.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
        let mut tpm = HostTpm::open(&self.config.tcti).map_err(|e| e.to_string())?;
        let idk = tpm.load(&self.idk).map_err(|e| e.to_string())?;
        let out = tpm
            .rsa_oaep_decrypt(idk, ciphertext)
            .map_err(|e| e.to_string());
        tpm.unload(idk);
        out
    }
}

/// The AK and IDK loaded for one exchange; unloaded when dropped (a TPM has few slots).
/// The EK to register at the KPS: its certificate (PEM) when the TPM has one, else its public
/// key (PEM), and which it is.
pub fn ek_pem(tcti: &str) -> Result<(String, bool), ServiceError> {
    let mut tpm = HostTpm::open(tcti).map_err(tpm_error)?;
    let pem = |label: &str, der: &[u8]| {
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64"))
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    };
    if let Some(cert) = tpm.ek_certificate() {
        return Ok((pem("CERTIFICATE", &cert), true));
    }
    let spki = RsaPublic::parse(&tpm.ek_public().map_err(tpm_error)?)
        .and_then(|p| p.spki())
        .map_err(ServiceError::Internal)?;
    Ok((pem("PUBLIC KEY", &spki), false))
}

/// `hgs tpm-baseline`: the SHA-256 values of `pcrs` now and the event log's digest.
pub fn baseline(
    tcti: &str,
    event_log: &std::path::Path,
    pcrs: &[u32],
) -> Result<vmsec_kps::tpm::Baseline, ServiceError> {
    let log = std::fs::read(event_log).map_err(|e| {
        ServiceError::InvalidParameter(format!("cannot read {}: {e}", event_log.display()))
    })?;
    let mut tpm = HostTpm::open(tcti).map_err(tpm_error)?;
    let values = tpm.read_pcrs(pcrs).map_err(tpm_error)?;
    Ok(vmsec_kps::tpm::Baseline {
        pcrs: values.into_iter().collect(),
        event_log_sha256: Some(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &log)
                .as_ref()
                .try_into()
                .expect("32 bytes"),
        ),
    })
}
