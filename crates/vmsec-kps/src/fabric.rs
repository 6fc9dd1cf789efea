//! The two services, sans-IO: bytes of a request, the time and a view of the fabric's state
//! in; bytes of the reply and what to audit out. The HTTP shell, the store and the audit log
//! are the caller's (`vmsec kps serve`).

use time::{Duration, OffsetDateTime};
use vmsec_kp::{CertInfo, CertRole, Guardian, Protector, SignatureKind};

use crate::error::{AttestError, ReleaseError};
use crate::health::{self, CertifiedKey, HealthClaims, Issued};
use crate::msgs::attestation;
use crate::msgs::roll::{self, RollResponse, Version};
use crate::transport::{self, TransportKeys};

/// A host the Attestation Service vouches for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredHost {
    pub name: String,
    /// [`health::key_hash`] of its host key.
    pub key_hash: String,
    /// DER SubjectPublicKeyInfo of its host key.
    pub host_key: Vec<u8>,
}

/// What a request needs to know of the fabric's shared state, read fresh for each request so
/// that a host removed or a deny-before set by another process counts at once.
pub trait Registry {
    fn host_by_key(&self, key_hash: &str) -> Result<Option<RegisteredHost>, String>;
    fn deny_before(&self) -> Result<Option<OffsetDateTime>, String>;
    /// Whether `host` may have the costly part of a request done now (a rate limit per host
    /// key); else the seconds until it may. Asked after the host is known, before any
    /// private-key operation.
    fn admit(&self, host: &RegisteredHost) -> Result<(), u64> {
        let _ = host;
        Ok(())
    }
    /// TPM mode: the host registered with the EK of this [`health::key_hash`].
    fn tpm_host_by_ek(&self, ek_hash: &str) -> Result<Option<crate::tpm::TpmHost>, String> {
        let _ = ek_hash;
        Ok(None)
    }
    /// TPM mode: the baselines a host's PCRs may match, by name.
    fn tpm_baselines(&self) -> Result<Vec<(String, crate::tpm::Baseline)>, String> {
        Ok(Vec::new())
    }
}

/// A health certificate issued.
#[derive(Debug)]
pub struct Attested {
    pub host: RegisteredHost,
    pub certificate: Issued,
    /// The `HealthCertificateReply`.
    pub reply: Vec<u8>,
}

/// The Attestation Service in host-key mode ([MS-HGSA] 3.1.5.3).
#[derive(Debug)]
pub struct AttestationService {
    signer: CertifiedKey,
    validity: Duration,
}

impl AttestationService {
    pub fn new(signer: CertifiedKey, validity: Duration) -> AttestationService {
        AttestationService { signer, validity }
    }

    pub fn signer(&self) -> &CertifiedKey {
        &self.signer
    }

    /// `POST /Attestation/v2.0/hostkeyattest`: the host key must be registered and must have
    /// signed `host key ‖ IDK`; then the IDK is certified for that host.
    pub fn host_key_attest(
        &self,
        body: &[u8],
        now: OffsetDateTime,
        registry: &dyn Registry,
    ) -> Result<Attested, (AttestError, Option<String>)> {
        let req = attestation::parse_host_key_request(body).map_err(|e| (e, None))?;
        let hash = health::key_hash(&req.host_key);
        let host = registry
            .host_by_key(&hash)
            .map_err(|e| (AttestError::Unavailable(e), None))?
            .ok_or_else(|| {
                (
                    AttestError::Unauthorized(format!(
                        "host key {hash} is not registered with this Attestation Service (`vmsec kps host add`)"
                    )),
                    None,
                )
            })?;
        registry.admit(&host).map_err(|secs| {
            (
                AttestError::RateLimited {
                    host: host.name.clone(),
                    retry_after_secs: secs,
                },
                Some(host.name.clone()),
            )
        })?;
        let unauthorized = |m: String| (AttestError::Unauthorized(m), Some(host.name.clone()));
        // The registered key, not the one sent, is the one trusted: they are equal by hash.
        let signed = [req.host_key.as_slice(), req.idk.as_slice()].concat();
        if !health::verify_rsa_sha256(&host.host_key, &signed, &req.signature) {
            return Err(unauthorized(format!(
                "the HostKeySignature does not verify with the host key of {}",
                host.name
            )));
        }
        health::check_rsa_spki(&req.idk).map_err(|e| {
            (
                AttestError::Payload(format!("VirtualSecureModeIdentityKey: {e}")),
                Some(host.name.clone()),
            )
        })?;
        let certificate = self
            .signer
            .issue(&host.name, &host.key_hash, &req.idk, now, self.validity)
            .map_err(|e| (AttestError::Unavailable(e), Some(host.name.clone())))?;
        let reply = attestation::health_certificate_reply(&certificate.der);
        Ok(Attested {
            host,
            certificate,
            reply,
        })
    }
}

/// How the audit names a VM the KPS never stores: by its key protector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmIdentity {
    /// SHA-1 thumbprint of the owner's signing certificate (uppercase hex, as Windows shows).
    pub owner_thumbprint: Option<String>,
    /// SHA-256 of the ingress protector's bytes (uppercase hex).
    pub kp_thumbprint: String,
}

/// Keys released: the reply and what the audit records.
#[derive(Debug)]
pub struct Released {
    pub host: String,
    pub health_serial: String,
    pub vm: VmIdentity,
    /// The guardian whose wrapping opened the protector.
    pub guardian: String,
    pub response: Vec<u8>,
}

/// A refusal and what is known of who asked, for the audit.
#[derive(Debug)]
pub struct Refused {
    pub error: ReleaseError,
    pub host: Option<String>,
    pub vm: Option<VmIdentity>,
}

/// The Key Protection Service ([MS-KPS] 3.1.5.1.1.3).
#[derive(Debug)]
pub struct KeyProtection {
    /// The fabric guardians it holds, with private keys; the primary first.
    guardians: Vec<Guardian>,
    /// DER certificates of the attestation signers it trusts.
    trusted_signers: Vec<Vec<u8>>,
}

impl KeyProtection {
    pub fn new(guardians: Vec<Guardian>, trusted_signers: Vec<Vec<u8>>) -> KeyProtection {
        KeyProtection {
            guardians,
            trusted_signers,
        }
    }

    pub fn guardians(&self) -> &[Guardian] {
        &self.guardians
    }

    /// `POST /KeyProtection/service/{version}/rolltransportkey`. The health certificate is
    /// checked first, so that a stranger costs one signature verification, never an unwrap.
    pub fn roll_transport_key(
        &self,
        version: Version,
        body: &[u8],
        now: OffsetDateTime,
        registry: &dyn Registry,
    ) -> Result<Released, Refused> {
        let refused = |error, host: Option<&str>, vm: Option<&VmIdentity>| Refused {
            error,
            host: host.map(str::to_owned),
            vm: vm.cloned(),
        };
        let req = roll::parse_request(body).map_err(|e| refused(e, None, None))?;
        let claims = self
            .check_health(&req.health_certificate, now, registry)
            .map_err(|(e, host)| refused(e, host.as_deref(), None))?;
        let host = Some(claims.host_name.as_str());
        let vm = VmIdentity {
            owner_thumbprint: None,
            kp_thumbprint: vmsec_kp::hex_upper(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &req.ingress).as_ref(),
            ),
        };
        let protector = Protector::parse(&req.ingress).map_err(|e| {
            refused(
                ReleaseError::InvalidProtector(e.to_string()),
                host,
                Some(&vm),
            )
        })?;
        let vm = VmIdentity {
            owner_thumbprint: protector
                .owner()
                .and_then(|w| CertInfo::from_der(&w.signing_cert, CertRole::Signing).ok())
                .map(|c| c.thumbprint_sha1),
            ..vm
        };
        let Some(guardian) = self
            .guardians
            .iter()
            .find(|g| protector.wrapping_of(g).is_some())
        else {
            return Err(refused(
                ReleaseError::InvalidProtector(
                    "the protector does not grant this fabric's guardian (grant it with `vmsec kp grant FILE --guardian fabric` after `vmsec guardian import fabric --metadata`)".into(),
                ),
                host,
                Some(&vm),
            ));
        };
        let rolled = protector
            .roll(std::slice::from_ref(guardian))
            .map_err(|e| refused(protector_error(e), host, Some(&vm)))?;
        let keys = TransportKeys {
            ingress: rolled.previous,
            egress: rolled.current,
        };
        let enc = transport::encrypt(&claims.idk_spki, version, &keys)
            .map_err(|e| refused(ReleaseError::HealthCertificate(e), host, Some(&vm)))?;
        let response = roll::write_response(&RollResponse {
            egress: rolled.protector.into_bytes(),
            encrypted_transfer_key: enc.transfer_key,
            encrypted_wrapping_key: enc.wrapping_key,
            encrypted_transport_keys: enc.transport_keys,
        })
        .into_bytes();
        Ok(Released {
            host: claims.host_name,
            health_serial: claims.serial,
            vm,
            guardian: guardian.name().to_owned(),
            response,
        })
    }

    /// Signed by a trusted signer, valid now, not issued before deny-before, and its host
    /// still registered under the same name.
    fn check_health(
        &self,
        der: &[u8],
        now: OffsetDateTime,
        registry: &dyn Registry,
    ) -> Result<HealthClaims, (ReleaseError, Option<String>)> {
        let bad = |m: String| ReleaseError::HealthCertificate(m);
        let claims = health::verify(der, &self.trusted_signers, now).map_err(|e| (bad(e), None))?;
        let name = Some(claims.host_name.clone());
        if let Some(deny) = registry
            .deny_before()
            .map_err(|e| (ReleaseError::Unavailable(e), None))?
            && claims.issued < deny
        {
            return Err((
                bad(format!(
                    "issued at {} before the fabric's deny-before time {deny}; attest again",
                    claims.issued
                )),
                name,
            ));
        }
        match registry
            .host_by_key(&claims.host_key_hash)
            .map_err(|e| (ReleaseError::Unavailable(e), name.clone()))?
        {
            Some(h) if h.name == claims.host_name => {
                registry.admit(&h).map_err(|secs| {
                    (
                        ReleaseError::RateLimited {
                            host: h.name.clone(),
                            retry_after_secs: secs,
                        },
                        name.clone(),
                    )
                })?;
                Ok(claims)
            }
            _ => Err((
                bad(format!(
                    "host {} is no longer registered with the fabric",
                    claims.host_name
                )),
                name,
            )),
        }
    }
}

/// A protector that parsed but does not roll: a wrapping of ours that does not open is a bad
/// wrapping; everything else (signatures, structure) a bad protector.
fn protector_error(e: vmsec_kp::Error) -> ReleaseError {
    use vmsec_kp::Error as E;
    match e {
        E::DecryptionFailed { .. }
        | E::TransportKeyLength { .. }
        | E::BadSignature {
            kind: SignatureKind::TransportKey,
            ..
        } => ReleaseError::InvalidWrapping(e.to_string()),
        E::Crypto(_) => ReleaseError::Unavailable(e.to_string()),
        e => ReleaseError::InvalidProtector(e.to_string()),
    }
}
