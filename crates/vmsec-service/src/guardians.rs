//! Guardians kept by this host, and the key-protector operations that need them.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;
use vmsec_kp::{
    CertInfo, Guardian, KeySize, PrivateKeys, Protector, Signature, SignatureAlgorithm,
};
use vmsec_store::{AuditOutcome, GuardianRecord, Role};
use zeroize::Zeroizing;

use crate::{Caller, JobStarted, Service, ServiceError};

/// The local guardian of `Set-VMKeyProtector -NewLocalKeyProtector`, as Hyper-V names it.
pub const UNTRUSTED_GUARDIAN: &str = "UntrustedGuardian";

/// Two PKCS#8 PEM private keys (encryption, signing), wiped when dropped.
pub type PrivateKeyPems = (Zeroizing<String>, Zeroizing<String>);

/// A certificate (DER) with its private key (PKCS#8 DER).
pub type CertWithKey = (Vec<u8>, Zeroizing<Vec<u8>>);

/// What `guardian list` and `kp show` print about a guardian.
#[derive(Clone, Debug, Serialize)]
pub struct GuardianView {
    pub name: String,
    pub has_private_keys: bool,
    pub encryption_certificate: CertView,
    pub signing_certificate: CertView,
    #[serde(with = "vmsec_store::rfc3339")]
    pub created: OffsetDateTime,
}

#[derive(Clone, Debug, Serialize)]
pub struct CertView {
    pub subject: String,
    /// SHA-1 of the DER, uppercase hex: the thumbprint Windows shows.
    pub thumbprint: String,
    pub sha256_fingerprint: String,
    #[serde(with = "vmsec_store::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "vmsec_store::rfc3339")]
    pub not_after: OffsetDateTime,
    pub key_bits: usize,
}

impl From<CertInfo> for CertView {
    fn from(c: CertInfo) -> Self {
        CertView {
            subject: c.subject,
            thumbprint: c.thumbprint_sha1,
            sha256_fingerprint: c.fingerprint_sha256,
            not_before: c.not_before,
            not_after: c.not_after,
            key_bits: c.key_bits,
        }
    }
}

/// One wrapping of an inspected key protector.
#[derive(Clone, Debug, Serialize)]
pub struct WrappingView {
    pub id: u32,
    pub parent_id: u32,
    pub is_owner: bool,
    /// The name of the guardian of this host whose certificates these are, if any.
    pub local_guardian: Option<String>,
    /// Whether this host holds that guardian's private keys (and so can unwrap).
    pub private_keys_here: bool,
    pub encryption_certificate: Option<CertView>,
    pub signing_certificate: Option<CertView>,
}

/// What `kp show` reports about a key protector.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    pub wrappings: Vec<WrappingView>,
    /// The Id of the wrapping whose signing key made the GuardianSignature (the owner, or the
    /// fabric's after a KPS rolled it).
    pub signed_by: u32,
    /// Structure, owner, chains, certificate signatures and the GuardianSignature.
    pub verified: Result<(), String>,
    /// Unwrapping with this host's guardians, which also checks the TransportKeySignature;
    /// `None` when no guardian here can unwrap it.
    pub unwrapped_here: Option<Result<(), String>>,
}

fn kp_error(e: vmsec_kp::Error) -> ServiceError {
    crate::error::KeyProtectorError::Operation(e).into()
}

fn keys_context(name: &str) -> Vec<u8> {
    [
        b"vmsec guardian private keys v1\0".as_slice(),
        name.as_bytes(),
    ]
    .concat()
}

fn check_guardian_name(name: &str) -> Result<(), ServiceError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || " ._-@()".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::InvalidParameter(format!(
            "guardian name {name:?}: use 1 to 128 letters, digits, spaces and . _ - @ ( )"
        )))
    }
}

impl Service {
    fn seal_keys(&self, g: &Guardian) -> Result<Option<Vec<u8>>, ServiceError> {
        if !g.has_private_keys() {
            return Ok(None);
        }
        let (enc, sign) = g.export_private_pkcs8_pem().map_err(kp_error)?;
        let mut plain = Zeroizing::new(Vec::with_capacity(enc.len() + sign.len() + 4));
        plain.extend_from_slice(&(enc.len() as u32).to_be_bytes());
        plain.extend_from_slice(enc.as_bytes());
        plain.extend_from_slice(sign.as_bytes());
        Ok(Some(self.master_key.seal(&plain, &keys_context(g.name()))?))
    }

    fn record_of(
        &self,
        g: &Guardian,
        metadata: Option<Vec<u8>>,
    ) -> Result<GuardianRecord, ServiceError> {
        let sig = g.encryption_cert_signature();
        Ok(GuardianRecord {
            name: g.name().to_owned(),
            encryption_cert: g.encryption_cert_der().to_vec(),
            signing_cert: g.signing_cert_der().to_vec(),
            encryption_cert_signature_algorithm: sig.algorithm.uri().to_owned(),
            encryption_cert_signature: sig.value.clone(),
            metadata,
            sealed_private_keys: self.seal_keys(g)?,
            created: OffsetDateTime::now_utc(),
        })
    }

    /// The stored guardian, with its private keys when this host holds them.
    fn load_guardian(&self, r: &GuardianRecord) -> Result<Guardian, ServiceError> {
        let keys = match &r.sealed_private_keys {
            None => None,
            Some(sealed) => {
                let plain = self.master_key.open(sealed, &keys_context(&r.name))?;
                let split = plain
                    .get(..4)
                    .map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize + 4)
                    .filter(|&s| s <= plain.len())
                    .ok_or_else(|| {
                        ServiceError::Internal(format!("guardian {}: damaged key record", r.name))
                    })?;
                let text = |b: &[u8]| {
                    std::str::from_utf8(b)
                        .map(|s| Zeroizing::new(s.to_owned()))
                        .map_err(|_| {
                            ServiceError::Internal(format!(
                                "guardian {}: damaged key record",
                                r.name
                            ))
                        })
                };
                let (enc, sign) = (text(&plain[4..split])?, text(&plain[split..])?);
                Some(PrivateKeys::from_pkcs8_pem(&enc, &sign).map_err(kp_error)?)
            }
        };
        let algorithm = SignatureAlgorithm::from_uri(&r.encryption_cert_signature_algorithm)
            .ok_or_else(|| {
                ServiceError::Internal(format!("guardian {}: unknown signature algorithm", r.name))
            })?;
        let signature = Signature {
            algorithm,
            value: r.encryption_cert_signature.clone(),
        };
        Guardian::from_parts(
            &r.name,
            r.encryption_cert.clone(),
            r.signing_cert.clone(),
            Some(signature),
            keys,
        )
        .map_err(|e| ServiceError::Internal(format!("guardian {}: {e}", r.name)))
    }

    pub(crate) fn guardian_named(&self, name: &str) -> Result<Guardian, ServiceError> {
        let r = self
            .store
            .guardian(name)?
            .ok_or_else(|| ServiceError::NotFound(format!("no guardian {name:?}")))?;
        self.load_guardian(&r)
    }

    /// Every guardian whose private keys this host holds: the identities that unwrap.
    /// This host's guardians that hold private keys and appear in `kp`. Only those are
    /// loaded: opening a private key validates it, which costs milliseconds per RSA key, and a
    /// host may hold many guardians a given protector never names.
    pub(crate) fn local_identities_for(
        &self,
        kp: &Protector,
    ) -> Result<Vec<Guardian>, ServiceError> {
        self.store
            .guardians()?
            .iter()
            .filter(|r| r.sealed_private_keys.is_some())
            .filter(|r| {
                kp.wrappings().iter().any(|w| {
                    w.encryption_cert == r.encryption_cert || w.signing_cert == r.signing_cert
                })
            })
            .map(|r| self.load_guardian(r))
            .collect()
    }

    fn view(&self, r: &GuardianRecord) -> Result<GuardianView, ServiceError> {
        let g = self.load_guardian(r)?;
        Ok(GuardianView {
            name: r.name.clone(),
            has_private_keys: g.has_private_keys(),
            encryption_certificate: g.encryption_cert_info().map_err(kp_error)?.into(),
            signing_certificate: g.signing_cert_info().map_err(kp_error)?.into(),
            created: r.created,
        })
    }

    fn store_guardian(
        &self,
        g: &Guardian,
        metadata: Option<Vec<u8>>,
    ) -> Result<GuardianView, ServiceError> {
        // One name per guardian: two names for the same keys would make `kp show` ambiguous.
        if let Some(known) = self
            .store
            .guardians()?
            .into_iter()
            .find(|r| r.signing_cert == g.signing_cert_der())
        {
            return Err(ServiceError::AlreadyExists(format!(
                "this guardian is already here as {:?}",
                known.name
            )));
        }
        let record = self.record_of(g, metadata)?;
        self.store.add_guardian(&record).map_err(|e| match e {
            vmsec_store::StoreError::AlreadyExists(_) => {
                ServiceError::AlreadyExists(format!("guardian {:?} already exists", g.name()))
            }
            e => e.into(),
        })?;
        self.view(&record)
    }

    /// Creates a guardian with new keys (RSA `size`).
    pub fn new_guardian(
        &self,
        who: &Caller,
        name: &str,
        size: KeySize,
    ) -> Result<GuardianView, ServiceError> {
        self.audited(
            who,
            &format!("NewGuardian {name}"),
            None,
            AuditOutcome::Succeeded,
            || {
                who.require(Role::Admin, "creating a guardian")?;
                check_guardian_name(name)?;
                if self.store.guardian(name)?.is_some() {
                    return Err(ServiceError::AlreadyExists(format!(
                        "guardian {name:?} already exists"
                    )));
                }
                let g = Guardian::generate(name, size)
                    .map_err(|e| ServiceError::Internal(e.to_string()))?;
                self.store_guardian(&g, None)
            },
        )
    }

    /// Imports a guardian from MS-KPS metadata.xml (vmsec's or a Windows HGS's), with its
    /// private keys when given.
    pub fn import_guardian(
        &self,
        who: &Caller,
        name: &str,
        metadata: &[u8],
        private: Option<PrivateKeyPems>,
    ) -> Result<GuardianView, ServiceError> {
        self.audited(
            who,
            &format!("ImportGuardian {name}"),
            None,
            AuditOutcome::Succeeded,
            || {
                who.require(Role::Admin, "importing a guardian")?;
                check_guardian_name(name)?;
                let g = vmsec_kp::import_metadata(name, metadata)
                    .map_err(|e| ServiceError::InvalidParameter(format!("metadata: {e}")))?;
                let g = match private {
                    None => g,
                    Some((enc, sign)) => {
                        let keys = PrivateKeys::from_pkcs8_pem(&enc, &sign).map_err(|e| {
                            ServiceError::InvalidParameter(format!("private keys: {e}"))
                        })?;
                        g.with_private_keys(keys).map_err(|e| {
                            ServiceError::InvalidParameter(format!("private keys: {e}"))
                        })?
                    }
                };
                self.store_guardian(&g, Some(metadata.to_vec()))
            },
        )
    }

    /// Imports a guardian from its two certificates (DER) and their private keys (PKCS#8 DER),
    /// as read from the PKCS#12 files a Windows host exports from its "Shielded VM Local
    /// Certificates" store. Which certificate is which comes from their key usages.
    pub fn import_guardian_from_keys(
        &self,
        who: &Caller,
        name: &str,
        pairs: Vec<CertWithKey>,
    ) -> Result<GuardianView, ServiceError> {
        self.audited(
            who,
            &format!("ImportGuardian {name} from PKCS#12"),
            None,
            AuditOutcome::Succeeded,
            || {
                who.require(Role::Admin, "importing a guardian")?;
                check_guardian_name(name)?;
                let bad = |m: String| ServiceError::InvalidParameter(format!("PKCS#12: {m}"));
                let pick = |role| {
                    let mut found = pairs.iter().filter(|(c, _)| vmsec_kp::usable_for(c, role));
                    match (found.next(), found.next()) {
                        (Some(p), None) => Ok(p.clone()),
                        (None, _) => {
                            Err(bad(format!("no certificate with a private key for {role}")))
                        }
                        (Some(_), Some(_)) => Err(bad(format!(
                            "two certificates with private keys for {role}"
                        ))),
                    }
                };
                let (enc_cert, enc_key) = pick(vmsec_kp::CertRole::Encryption)?;
                let (sign_cert, sign_key) = pick(vmsec_kp::CertRole::Signing)?;
                let keys = PrivateKeys::from_pkcs8_der(enc_key, sign_key);
                let g = Guardian::from_parts(name, enc_cert, sign_cert, None, Some(keys))
                    .map_err(|e| bad(e.to_string()))?;
                self.store_guardian(&g, None)
            },
        )
    }

    /// The guardian's metadata.xml (signed anew when the keys are here, else as imported),
    /// and its private keys when asked for.
    pub fn export_guardian(
        &self,
        who: &Caller,
        name: &str,
        with_private: bool,
    ) -> Result<(Vec<u8>, Option<PrivateKeyPems>), ServiceError> {
        let op = format!(
            "ExportGuardian {name}{}",
            if with_private {
                " with private keys"
            } else {
                ""
            }
        );
        self.audited(who, &op, None, AuditOutcome::Succeeded, || {
            who.require(Role::Admin, "exporting a guardian")?;
            let r = self
                .store
                .guardian(name)?
                .ok_or_else(|| ServiceError::NotFound(format!("no guardian {name:?}")))?;
            let g = self.load_guardian(&r)?;
            let metadata = if g.has_private_keys() {
                vmsec_kp::export_metadata(&g)
                    .map_err(kp_error)?
                    .into_bytes()
            } else {
                r.metadata.clone().ok_or_else(|| {
                    ServiceError::InvalidState(format!(
                        "guardian {name:?} has neither private keys nor metadata here"
                    ))
                })?
            };
            let private = if with_private {
                if !g.has_private_keys() {
                    return Err(ServiceError::InvalidState(format!(
                        "this host does not hold the private keys of guardian {name:?}"
                    )));
                }
                Some(g.export_private_pkcs8_pem().map_err(kp_error)?)
            } else {
                None
            };
            Ok((metadata, private))
        })
    }

    pub fn guardians(&self, who: &Caller) -> Result<Vec<GuardianView>, ServiceError> {
        who.require(Role::Reader, "listing guardians")?;
        self.store
            .guardians()?
            .iter()
            .map(|r| self.view(r))
            .collect()
    }

    /// Removes a guardian; refused while a stored key protector names it as owner, unless
    /// `force` (the VMs it owns can then no longer be re-keyed here).
    pub fn remove_guardian(
        &self,
        who: &Caller,
        name: &str,
        force: bool,
    ) -> Result<(), ServiceError> {
        self.audited(who, &format!("RemoveGuardian {name}"), None, AuditOutcome::Succeeded, || {
            who.require(Role::Admin, "removing a guardian")?;
            let g = self.guardian_named(name)?;
            if !force {
                let owned: Vec<Uuid> = self
                    .store
                    .key_protectors()?
                    .into_iter()
                    .filter(|(_, kp)| {
                        Protector::parse(kp).ok().is_some_and(|p| {
                            p.owner().is_some_and(|o| o.signing_cert == g.signing_cert_der())
                        })
                    })
                    .map(|(vm, _)| vm)
                    .collect();
                if !owned.is_empty() {
                    return Err(ServiceError::InvalidState(format!(
                        "guardian {name:?} owns the key protector of {} VM(s) (first: {}); use --force to remove it anyway",
                        owned.len(),
                        owned[0]
                    )));
                }
            }
            self.store.remove_guardian(name)?;
            Ok(())
        })
    }

    // ----- key protectors as files -----

    fn identity_for_owner(&self, kp: &Protector) -> Result<Guardian, ServiceError> {
        let owner = kp.owner().ok_or(ServiceError::InvalidKeyProtector(
            crate::error::KeyProtectorError::NoOwner,
        ))?;
        self.local_identities_for(kp)?
            .into_iter()
            .find(|g| g.signing_cert_der() == owner.signing_cert)
            .ok_or_else(|| {
                ServiceError::InvalidState(
                    "this host does not hold the owner's private keys; only the owner can grant or revoke".into(),
                )
            })
    }

    /// A new key protector owned by `owner` (whose keys must be here) for `guardians`.
    pub fn new_protector(
        &self,
        who: &Caller,
        owner: &str,
        guardians: &[String],
    ) -> Result<Vec<u8>, ServiceError> {
        self.audited(who, &format!("NewKeyProtector owner={owner}"), None, AuditOutcome::Succeeded, || {
            who.require(Role::Admin, "making a key protector")?;
            let o = self.guardian_named(owner)?;
            if !o.has_private_keys() {
                return Err(ServiceError::InvalidState(format!(
                    "this host does not hold the private keys of {owner:?}, so it cannot own a key protector"
                )));
            }
            let gs = guardians.iter().map(|g| self.guardian_named(g)).collect::<Result<Vec<_>, _>>()?;
            Ok(Protector::new(&o, &gs).map_err(kp_error)?.into_bytes())
        })
    }

    pub fn grant(&self, who: &Caller, kp: &[u8], guardian: &str) -> Result<Vec<u8>, ServiceError> {
        self.audited(
            who,
            &format!("GrantKeyProtector {guardian}"),
            None,
            AuditOutcome::Succeeded,
            || {
                who.require(Role::Admin, "granting a guardian")?;
                let p = Protector::parse(kp).map_err(kp_error)?;
                let owner = self.identity_for_owner(&p)?;
                let g = self.guardian_named(guardian)?;
                Ok(p.grant(&owner, &g).map_err(kp_error)?.into_bytes())
            },
        )
    }

    pub fn revoke(&self, who: &Caller, kp: &[u8], guardian: &str) -> Result<Vec<u8>, ServiceError> {
        self.audited(
            who,
            &format!("RevokeKeyProtector {guardian}"),
            None,
            AuditOutcome::Succeeded,
            || {
                who.require(Role::Admin, "revoking a guardian")?;
                let p = Protector::parse(kp).map_err(kp_error)?;
                let owner = self.identity_for_owner(&p)?;
                let g = self.guardian_named(guardian)?;
                Ok(p.revoke(&owner, &g).map_err(kp_error)?.into_bytes())
            },
        )
    }

    /// Everything `kp show` prints: wrappings, which guardians of this host they are, the
    /// verification result, and whether this host can unwrap.
    pub fn inspect(&self, who: &Caller, kp: &[u8]) -> Result<Inspection, ServiceError> {
        who.require(Role::Reader, "inspecting a key protector")?;
        let p = Protector::parse(kp).map_err(kp_error)?;
        let records = self.store.guardians()?;
        let owner_id = p.owner().map(|o| o.id);
        let wrappings = p
            .wrappings()
            .iter()
            .map(|w| {
                let local = records.iter().find(|r| {
                    r.signing_cert == w.signing_cert && r.encryption_cert == w.encryption_cert
                });
                WrappingView {
                    id: w.id,
                    parent_id: w.parent_id,
                    is_owner: Some(w.id) == owner_id,
                    local_guardian: local.map(|r| r.name.clone()),
                    private_keys_here: local.is_some_and(|r| r.sealed_private_keys.is_some()),
                    encryption_certificate: CertInfo::from_der(
                        &w.encryption_cert,
                        vmsec_kp::CertRole::Encryption,
                    )
                    .ok()
                    .map(Into::into),
                    signing_certificate: CertInfo::from_der(
                        &w.signing_cert,
                        vmsec_kp::CertRole::Signing,
                    )
                    .ok()
                    .map(Into::into),
                }
            })
            .collect::<Vec<_>>();
        let verified = p.verify().map_err(|e| e.to_string());
        let unwrapped_here = if wrappings.iter().any(|w| w.private_keys_here) {
            Some(
                p.unwrap(&self.local_identities_for(&p)?)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            )
        } else {
            None
        };
        Ok(Inspection {
            wrappings,
            signed_by: p.guardian_signature().wrapping_id,
            verified,
            unwrapped_here,
        })
    }

    /// `Set-VMKeyProtector -NewLocalKeyProtector`: a new key protector owned by this host's
    /// `UntrustedGuardian` (created on first use), set through SetKeyProtector.
    pub fn new_local_key_protector(
        &self,
        who: &Caller,
        vm: Uuid,
    ) -> Result<JobStarted, ServiceError> {
        who.require(crate::Role::Operator, "making a local key protector")?;
        let owner = match self.store.guardian(UNTRUSTED_GUARDIAN)? {
            Some(r) => self.load_guardian(&r)?,
            None => {
                let g = Guardian::generate(UNTRUSTED_GUARDIAN, KeySize::Rsa2048)
                    .map_err(|e| ServiceError::Internal(e.to_string()))?;
                match self.store.add_guardian(&self.record_of(&g, None)?) {
                    Ok(()) => {
                        self.audit(
                            &who.name,
                            "NewGuardian UntrustedGuardian",
                            Some(vm),
                            AuditOutcome::Succeeded,
                            "",
                        );
                        g
                    }
                    // Another process made it first: use theirs.
                    Err(vmsec_store::StoreError::AlreadyExists(_)) => {
                        self.guardian_named(UNTRUSTED_GUARDIAN)?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if !owner.has_private_keys() {
            return Err(ServiceError::InvalidState(format!(
                "guardian {UNTRUSTED_GUARDIAN:?} exists here without its private keys"
            )));
        }
        let kp = Protector::new(&owner, &[]).map_err(kp_error)?.into_bytes();
        self.set_key_protector(who, vm.into(), kp)
    }
}
