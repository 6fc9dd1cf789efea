//! This host in HGS mode (docs/specs/kps.md, "Host side"): attests with its host key, keeps
//! the health certificate until 5 minutes before it expires, and asks the fabric's KPS to roll
//! a key protector, trying the primary URLs and then the fallbacks. Implements the service's
//! [`KeyRelease`], so `tpm start` never sees HTTP.

use std::time::Duration;

use time::OffsetDateTime;
use vmsec_kps::Version;
use vmsec_kps::host::{self, HostKey, Idk, Release};
use vmsec_kps::msgs::attestation::{self, AttestReply};
use vmsec_kps::msgs::roll;
use vmsec_service::hgs::{ClientConfig, HgsDir, Mode};
use vmsec_service::vtpm::KeyRelease;
use vmsec_service::{MasterKey, ServiceError};

use crate::hgs_tpm::{AttestFailure, TpmIdentity};
use crate::https_client::{HttpsClient, Reply};
use vmsec_service::hgs::LastAttestation;

/// How long each request to the fabric may take, end to end.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// A cached health certificate is used until this long before it expires.
const RENEW_BEFORE: time::Duration = time::Duration::minutes(5);

/// The HGS side of this host, ready to attest and roll.
pub struct HgsClient {
    dir: HgsDir,
    config: ClientConfig,
    identity: Identity,
    http: HttpsClient,
}

/// How this host proves itself: its host key, or its TPM (docs/specs/kps.md, "TPM mode").
enum Identity {
    HostKey { host_key: HostKey, idk: Idk },
    Tpm(TpmIdentity),
}

fn refused(m: String) -> ServiceError {
    ServiceError::InvalidState(m)
}

/// The (attestation, key protection) URL pairs to try, in order.
fn endpoints(c: &ClientConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let (Some(a), Some(k)) = (&c.attestation_url, &c.key_protection_url) {
        out.push((a.clone(), k.clone()));
    }
    let fa = c
        .fallback_attestation_url
        .clone()
        .or_else(|| c.attestation_url.clone());
    let fk = c
        .fallback_key_protection_url
        .clone()
        .or_else(|| c.key_protection_url.clone());
    if (c.fallback_attestation_url.is_some() || c.fallback_key_protection_url.is_some())
        && let (Some(a), Some(k)) = (fa, fk)
    {
        out.push((a, k));
    }
    out
}

/// Loads the host key and IDK sealed in `DATA/hgs`.
pub fn load_keys(dir: &HgsDir, master: &MasterKey) -> Result<(HostKey, Idk), ServiceError> {
    let host_key = dir.host_key(master)?.ok_or_else(|| {
        refused("this host has no host key; make one with `vmsec hgs host-key new`".into())
    })?;
    let idk = dir.idk(master)?.ok_or_else(|| {
        refused("this host has no IDK; make one with `vmsec hgs host-key new`".into())
    })?;
    Ok((
        HostKey::from_pkcs8(host_key).map_err(ServiceError::Internal)?,
        Idk::from_pkcs8(idk).map_err(ServiceError::Internal)?,
    ))
}

impl HgsClient {
    /// The client when this host is in HGS mode; `None` in local mode.
    pub fn open(dir: HgsDir, master: &MasterKey) -> Result<Option<HgsClient>, ServiceError> {
        let config = dir.config()?;
        if config.mode != Mode::Hgs {
            return Ok(None);
        }
        let identity = match &config.tpm {
            Some(tpm) => Identity::Tpm(TpmIdentity::load(&dir, tpm.clone())?),
            None => {
                let (host_key, idk) = load_keys(&dir, master)?;
                Identity::HostKey { host_key, idk }
            }
        };
        let http = HttpsClient::new(config.ca.as_deref(), TIMEOUT)
            .map_err(ServiceError::InvalidParameter)?;
        Ok(Some(HgsClient {
            dir,
            config,
            identity,
            http,
        }))
    }

    /// A health certificate: the cached one while it has 5 minutes left, else a new one from
    /// `attestation_url`.
    fn health_certificate(&self, attestation_url: &str, fresh: bool) -> Result<Vec<u8>, Failure> {
        if !fresh
            && let Ok(Some(der)) = self.dir.health_certificate()
            && vmsec_kps::health::not_after(&der)
                .is_some_and(|t| t - RENEW_BEFORE > OffsetDateTime::now_utc())
        {
            return Ok(der);
        }
        let outcome = match &self.identity {
            Identity::HostKey { host_key, idk } => {
                self.host_key_attest(host_key, idk, attestation_url)
            }
            Identity::Tpm(tpm) => tpm
                .attest(&self.http, attestation_url)
                .map_err(|f| match f {
                    AttestFailure::Unreachable(m) => Failure::Unreachable(m),
                    AttestFailure::Local(m) => Failure::Local(m),
                    AttestFailure::Refused {
                        reply_type,
                        message,
                    } => Failure::Refused {
                        reply_type,
                        message,
                    },
                }),
        };
        let last = |reply_type: Option<String>, message: Option<String>| {
            let _ = self.dir.set_last_attestation(&LastAttestation {
                at: OffsetDateTime::now_utc(),
                reply_type,
                message,
            });
        };
        match outcome {
            Ok(der) => {
                self.dir
                    .set_health_certificate(&der)
                    .map_err(|e| Failure::Local(e.to_string()))?;
                last(None, None);
                Ok(der)
            }
            Err(Failure::Refused {
                reply_type,
                message,
            }) => {
                let _ = self.dir.forget_health_certificate();
                last(Some(reply_type.clone()), Some(message.clone()));
                Err(Failure::Refused {
                    reply_type,
                    message,
                })
            }
            Err(other) => Err(other),
        }
    }

    /// `/hostkeyattest` once: the health certificate, or why not.
    fn host_key_attest(
        &self,
        host_key: &HostKey,
        idk: &Idk,
        attestation_url: &str,
    ) -> Result<Vec<u8>, Failure> {
        let body = host_key.attestation_request(idk).map_err(Failure::Local)?;
        let url = format!(
            "{}/v2.0/hostkeyattest",
            attestation_url.trim_end_matches('/')
        );
        let reply = self
            .http
            .post(&url, "application/json", body)
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        match attestation::parse_reply(&reply.body) {
            Ok(AttestReply::HealthCertificate(der)) if reply.status == 200 => Ok(der),
            Ok(AttestReply::Error {
                reply_type,
                message,
            }) => Err(Failure::Refused {
                message: format!(
                    "the Attestation Service at {url} refused this host (HTTP {}, {reply_type}): {message}",
                    reply.status
                ),
                reply_type,
            }),
            _ => Err(Failure::Refused {
                reply_type: "?".into(),
                message: format!(
                    "the Attestation Service at {url} answered HTTP {} with no health certificate",
                    reply.status
                ),
            }),
        }
    }

    /// Attests now, whatever is cached (`vmsec hgs attest`): the new certificate's expiry.
    pub fn attest_now(&self) -> Result<OffsetDateTime, ServiceError> {
        let mut unreachable = Vec::new();
        for (att, _) in endpoints(&self.config) {
            match self.health_certificate(&att, true) {
                Ok(der) => {
                    return vmsec_kps::health::not_after(&der).ok_or_else(|| {
                        ServiceError::Internal("the health certificate does not parse".into())
                    });
                }
                Err(Failure::Unreachable(m)) => unreachable.push(m),
                Err(f) => return Err(f.into_error()),
            }
        }
        Err(ServiceError::InvalidState(format!(
            "the Attestation Service is unreachable: {}",
            unreachable.join("; ")
        )))
    }

    /// One RollTransportKey at `kp_url`.
    fn roll_at(&self, kp_url: &str, ingress: &[u8], health: &[u8]) -> Result<Release, Failure> {
        let url = format!(
            "{}/service/{}/rolltransportkey",
            kp_url.trim_end_matches('/'),
            Version::V2.segment()
        );
        let body = host::roll_request(ingress, health).into_bytes();
        let Reply { status, body } = self
            .http
            .post(&url, "application/xml; charset=utf-8", body)
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        if status == 200 {
            let opened = match &self.identity {
                Identity::HostKey { idk, .. } => host::open_release(idk, Version::V2, &body),
                Identity::Tpm(tpm) => {
                    host::open_release_with(&mut |ct| tpm.decrypt(ct), Version::V2, &body)
                }
            };
            return opened.map_err(|e| Failure::Refused {
                reply_type: "?".into(),
                message: format!("the reply of {url} is unusable: {e}"),
            });
        }
        let (code, message) = roll::parse_error(&body).unwrap_or_else(|| {
            (
                "?".into(),
                String::from_utf8_lossy(&body).chars().take(200).collect(),
            )
        });
        Err(Failure::Kps {
            text: format!(
                "the Key Protection Service at {url} refused (HTTP {status}, {code}): {message}"
            ),
            code,
        })
    }

    /// Attest and roll at one pair of URLs; a refused health certificate is renewed once
    /// (it may have been denied or issued by a signer since rotated).
    fn roll_with(&self, (att, kp): &(String, String), ingress: &[u8]) -> Result<Release, Failure> {
        let health = self.health_certificate(att, false)?;
        match self.roll_at(kp, ingress, &health) {
            Err(Failure::Kps { code, .. }) if code == "HealthCertificateException" => {
                let health = self.health_certificate(att, true)?;
                self.roll_at(kp, ingress, &health)
            }
            other => other,
        }
    }
}

impl Failure {
    fn into_error(self) -> ServiceError {
        match self {
            Failure::Unreachable(m) => ServiceError::InvalidState(m),
            Failure::Refused { message: m, .. } | Failure::Kps { text: m, .. } => refused(m),
            Failure::Local(m) => ServiceError::Internal(m),
        }
    }
}

enum Failure {
    /// No reply: try the next URLs.
    Unreachable(String),
    /// A refusal by the Attestation Service (its ErrorReply type), or an unusable reply.
    Refused { reply_type: String, message: String },
    /// A refusal by the KPS, with its code.
    Kps { code: String, text: String },
    /// This host could not do its part.
    Local(String),
}

impl KeyRelease for HgsClient {
    fn roll(&self, ingress: &[u8]) -> Result<Release, ServiceError> {
        let mut unreachable = Vec::new();
        for pair in endpoints(&self.config) {
            match self.roll_with(&pair, ingress) {
                Ok(r) => return Ok(r),
                Err(Failure::Unreachable(why)) => unreachable.push(why),
                Err(f) => return Err(f.into_error()),
            }
        }
        if unreachable.is_empty() {
            return Err(refused(
                "HGS mode has no URLs; set them with `vmsec hgs set`".into(),
            ));
        }
        Err(ServiceError::InvalidState(format!(
            "the guarded fabric is unreachable (each within {} s): {}",
            TIMEOUT.as_secs(),
            unreachable.join("; ")
        )))
    }
}
