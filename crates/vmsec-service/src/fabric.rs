//! A Key Protection Service's state and administration (`vmsec kps …`), over a store and a
//! fabric store: the fabric guardians (stored as guardians, their keys sealed like a host's),
//! the attestation signer and communications key (sealed files in `DATA/kps/`), the hosts,
//! deny-before, and the audit of everything the services decide. The services' rules are
//! `vmsec-kps`'s; this module feeds them and records what they did.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;
use vmsec_kp::KeySize;
use vmsec_kps::fabric::{Attested, Refused, Released, VmIdentity};
use vmsec_kps::tpm::service::TpmOutcome;
use vmsec_kps::tpm::{Baseline, TpmHost};
use vmsec_kps::{AttestError, AttestationService, CertifiedKey, KeyProtection, RegisteredHost};
use vmsec_store::{
    AttestedHost, AuditOutcome, AuditRecord, FabricSettings, FabricStore, Role, TpmBaselineRecord,
    TpmHostRecord,
};
use zeroize::Zeroizing;

use crate::{Caller, Service, ServiceError};

/// The name `kps init` gives the first fabric guardian; rotations add `fabric-2`, `fabric-3`…
pub const FABRIC_GUARDIAN: &str = "fabric";

const SIGNER: &str = "attestation-signer";
const COMMUNICATIONS: &str = "communications";

/// A KPS: the service over its data directory's store, and its fabric store.
pub struct Kps {
    service: Service,
    fabric: Arc<dyn FabricStore>,
    dir: PathBuf,
}

/// What `kps status` reports.
#[derive(Clone, Debug, Serialize)]
pub struct KpsStatus {
    pub initialized: bool,
    pub primary_guardian: Option<String>,
    pub guardians: Vec<String>,
    pub hosts: usize,
    #[serde(with = "vmsec_store::rfc3339::option")]
    pub deny_before: Option<OffsetDateTime>,
    pub attestation_signer_sha256: Option<String>,
    pub operation_mode: &'static str,
}

fn internal(what: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(what.to_string())
}

fn aws_size(size: KeySize) -> aws_lc_rs::rsa::KeySize {
    match size {
        KeySize::Rsa2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
        KeySize::Rsa3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
        KeySize::Rsa4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
    }
}

/// The registry view the services read, fresh per request.
pub struct StoreRegistry<'a>(&'a dyn FabricStore);

impl vmsec_kps::Registry for StoreRegistry<'_> {
    fn host_by_key(&self, key_hash: &str) -> Result<Option<RegisteredHost>, String> {
        self.0
            .attested_host_by_key(key_hash)
            .map(|h| {
                h.map(|h| RegisteredHost {
                    name: h.name,
                    key_hash: h.key_hash,
                    host_key: h.host_key,
                })
            })
            .map_err(|e| e.to_string())
    }

    fn deny_before(&self) -> Result<Option<OffsetDateTime>, String> {
        self.0
            .fabric_settings()
            .map(|s| s.deny_before)
            .map_err(|e| e.to_string())
    }

    fn tpm_host_by_ek(&self, ek_hash: &str) -> Result<Option<TpmHost>, String> {
        self.0
            .tpm_host_by_ek(ek_hash)
            .map(|h| {
                h.map(|h| TpmHost {
                    host: RegisteredHost {
                        name: h.name,
                        key_hash: h.ek_hash,
                        host_key: h.ek_public,
                    },
                    ek_certificate: h.ek_certificate,
                })
            })
            .map_err(|e| e.to_string())
    }

    /// A stored baseline that no longer parses is skipped (and logged): it matches nothing.
    fn tpm_baselines(&self) -> Result<Vec<(String, Baseline)>, String> {
        let records = self.0.tpm_baselines().map_err(|e| e.to_string())?;
        Ok(records
            .into_iter()
            .filter_map(|r| match Baseline::parse(&r.document) {
                Ok(b) => Some((r.name, b)),
                Err(e) => {
                    tracing::warn!(baseline = %r.name, "stored TPM baseline skipped: {e}");
                    None
                }
            })
            .collect())
    }
}

fn thumbprints(vm: &VmIdentity) -> String {
    format!(
        "owner {} kp {}",
        vm.owner_thumbprint.as_deref().unwrap_or("-"),
        vm.kp_thumbprint
    )
}

impl Kps {
    /// `dir`: the KPS's data directory.
    pub fn new(service: Service, fabric: Arc<dyn FabricStore>, dir: &Path) -> Kps {
        Kps {
            service,
            fabric,
            dir: dir.join("kps"),
        }
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    pub fn registry(&self) -> StoreRegistry<'_> {
        StoreRegistry(self.fabric.as_ref())
    }

    fn key_file(&self, name: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{name}.{ext}"))
    }

    fn save_key(&self, name: &str, key: &CertifiedKey) -> Result<(), ServiceError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| internal(format!("cannot create {}: {e}", self.dir.display())))?;
        let sealed = self
            .service
            .master_key
            .seal(key.pkcs8(), format!("vmsec kps {name} v1").as_bytes())?;
        write_private_new(&self.key_file(name, "key.sealed"), &sealed)?;
        write_private_new(&self.key_file(name, "der"), key.cert_der())
    }

    fn load_key(&self, name: &str) -> Result<CertifiedKey, ServiceError> {
        let read = |p: PathBuf| {
            std::fs::read(&p).map_err(|e| {
                ServiceError::InvalidState(format!(
                    "cannot read {} ({e}); is this a KPS data directory (`vmsec kps init`)?",
                    p.display()
                ))
            })
        };
        let cert = read(self.key_file(name, "der"))?;
        let sealed = read(self.key_file(name, "key.sealed"))?;
        let pkcs8: Zeroizing<Vec<u8>> = self
            .service
            .master_key
            .open(&sealed, format!("vmsec kps {name} v1").as_bytes())?;
        CertifiedKey::from_parts(cert, pkcs8).map_err(|e| internal(format!("{name}: {e}")))
    }

    fn initialized(&self) -> bool {
        self.key_file(SIGNER, "der").exists()
    }

    /// `kps init`: the fabric guardian, the attestation signer and the communications key.
    pub fn init(&self, who: &Caller, size: KeySize) -> Result<KpsStatus, ServiceError> {
        who.require(Role::Admin, "initializing a Key Protection Service")?;
        if self.initialized() {
            return Err(ServiceError::AlreadyExists(format!(
                "this KPS is already initialized ({} exists)",
                self.dir.display()
            )));
        }
        let signer = CertifiedKey::generate("vmsec attestation signer", aws_size(size), true)
            .map_err(internal)?;
        let comms = CertifiedKey::generate("vmsec KPS communications", aws_size(size), false)
            .map_err(internal)?;
        self.service.new_guardian(who, FABRIC_GUARDIAN, size)?;
        self.save_key(COMMUNICATIONS, &comms)?;
        // Last: its presence is what "initialized" means.
        self.save_key(SIGNER, &signer)?;
        self.fabric.set_fabric_settings(&FabricSettings {
            primary_guardian: Some(FABRIC_GUARDIAN.into()),
            ..self.fabric.fabric_settings()?
        })?;
        self.service
            .audit(&who.name, "KpsInit", None, AuditOutcome::Succeeded, "");
        self.status(who)
    }

    pub fn status(&self, who: &Caller) -> Result<KpsStatus, ServiceError> {
        who.require(Role::Reader, "reading the KPS status")?;
        let settings = self.fabric.fabric_settings()?;
        let signer = std::fs::read(self.key_file(SIGNER, "der")).ok();
        Ok(KpsStatus {
            initialized: signer.is_some(),
            primary_guardian: settings.primary_guardian,
            guardians: self.guardian_names()?,
            hosts: self.fabric.attested_hosts()?.len(),
            deny_before: settings.deny_before,
            attestation_signer_sha256: signer.map(|c| vmsec_kps::key_hash(&c)),
            operation_mode: "HostKey",
        })
    }

    /// The fabric guardians this KPS holds keys of, by name.
    pub fn guardian_names(&self) -> Result<Vec<String>, ServiceError> {
        Ok(self
            .service
            .store
            .guardians()?
            .into_iter()
            .filter(|g| g.sealed_private_keys.is_some())
            .map(|g| g.name)
            .collect())
    }

    /// The services, with every fabric guardian this KPS holds (the primary first) and the
    /// trusted attestation signers (its own, and any in `extra_signers`, DER).
    pub fn services(
        &self,
        validity: time::Duration,
        extra_signers: Vec<Vec<u8>>,
    ) -> Result<(AttestationService, KeyProtection), ServiceError> {
        let signer = self.load_key(SIGNER)?;
        let primary = self.fabric.fabric_settings()?.primary_guardian;
        let mut guardians = Vec::new();
        for name in self.guardian_names()? {
            guardians.push(self.service.guardian_named(&name)?);
        }
        guardians.sort_by_key(|g| Some(g.name()) != primary.as_deref());
        if guardians.is_empty() {
            return Err(ServiceError::InvalidState(
                "this KPS holds no fabric guardian; run `vmsec kps init`".into(),
            ));
        }
        let mut trusted = vec![signer.cert_der().to_vec()];
        trusted.extend(extra_signers);
        Ok((
            AttestationService::new(signer, validity),
            KeyProtection::new(guardians, trusted),
        ))
    }

    /// The primary guardian's `metadata.xml`, signed by the communications key.
    pub fn metadata(&self) -> Result<Vec<u8>, ServiceError> {
        let name = self
            .fabric
            .fabric_settings()?
            .primary_guardian
            .ok_or_else(|| {
                ServiceError::InvalidState(
                    "no primary fabric guardian; run `vmsec kps init`".into(),
                )
            })?;
        let guardian = self.service.guardian_named(&name)?;
        let comms = self.load_key(COMMUNICATIONS)?;
        vmsec_kp::export_metadata_signed_by(&guardian, comms.pkcs8(), comms.cert_der())
            .map(String::into_bytes)
            .map_err(|e| internal(format!("metadata.xml: {e}")))
    }

    /// `kps guardian rotate`: a new primary; the older guardians keep unwrapping.
    pub fn rotate(&self, who: &Caller, size: KeySize) -> Result<KpsStatus, ServiceError> {
        who.require(Role::Admin, "rotating the fabric guardian")?;
        let names = self.guardian_names()?;
        let name = (2..)
            .map(|n| format!("{FABRIC_GUARDIAN}-{n}"))
            .find(|n| !names.contains(n))
            .expect("an unused name");
        self.service.new_guardian(who, &name, size)?;
        self.fabric.set_fabric_settings(&FabricSettings {
            primary_guardian: Some(name.clone()),
            ..self.fabric.fabric_settings()?
        })?;
        self.service.audit(
            &who.name,
            &format!("KpsGuardianRotate {name}"),
            None,
            AuditOutcome::Succeeded,
            "",
        );
        self.status(who)
    }

    /// `kps guardian remove NAME`: an older guardian stops unwrapping; the primary stays.
    pub fn remove_guardian(&self, who: &Caller, name: &str) -> Result<(), ServiceError> {
        if self.fabric.fabric_settings()?.primary_guardian.as_deref() == Some(name) {
            return Err(ServiceError::InvalidState(format!(
                "{name} is the primary fabric guardian; rotate first (`vmsec kps guardian rotate`)"
            )));
        }
        self.service.remove_guardian(who, name, true)
    }

    pub fn add_host(
        &self,
        who: &Caller,
        name: &str,
        host_key: &[u8],
    ) -> Result<AttestedHost, ServiceError> {
        let op = format!("KpsHostAdd {name}");
        self.service
            .audited(who, &op, None, AuditOutcome::Succeeded, || {
                who.require(Role::Admin, "registering a host")?;
                check_host_name(name)?;
                let spki = vmsec_kps::health::rsa_spki_from_pem_or_der(host_key)
                    .map_err(|e| ServiceError::InvalidParameter(format!("--host-key: {e}")))?;
                let host = AttestedHost {
                    name: name.into(),
                    key_hash: vmsec_kps::key_hash(&spki),
                    host_key: spki,
                    added: OffsetDateTime::now_utc(),
                };
                self.fabric.add_attested_host(&host)?;
                Ok(host)
            })
    }

    /// `kps host add NAME --ek-cert FILE | --ek-pub FILE`: a host of TPM mode, by its EK
    /// (certificate or public key, PEM or DER).
    pub fn add_tpm_host(
        &self,
        who: &Caller,
        name: &str,
        ek: &[u8],
        is_certificate: bool,
    ) -> Result<TpmHostRecord, ServiceError> {
        let op = format!("KpsHostAdd {name} (TPM)");
        self.service
            .audited(who, &op, None, AuditOutcome::Succeeded, || {
                who.require(Role::Admin, "registering a host")?;
                check_host_name(name)?;
                let arg = if is_certificate {
                    "--ek-cert"
                } else {
                    "--ek-pub"
                };
                let bad = |e: String| ServiceError::InvalidParameter(format!("{arg}: {e}"));
                let spki = vmsec_kps::health::rsa_spki_from_pem_or_der(ek).map_err(bad)?;
                let cert = if is_certificate {
                    Some(vmsec_kps::health::certificate_der(ek).map_err(bad)?)
                } else {
                    None
                };
                let host = TpmHostRecord {
                    name: name.into(),
                    ek_hash: vmsec_kps::key_hash(&spki),
                    ek_public: spki,
                    ek_certificate: cert,
                    added: OffsetDateTime::now_utc(),
                };
                self.fabric.add_tpm_host(&host)?;
                Ok(host)
            })
    }

    /// The hosts registered by EK.
    pub fn tpm_hosts(&self, who: &Caller) -> Result<Vec<TpmHostRecord>, ServiceError> {
        who.require(Role::Reader, "listing hosts")?;
        Ok(self.fabric.tpm_hosts()?)
    }

    /// `kps baseline add NAME --from FILE`: what `hgs tpm-baseline` captured.
    pub fn add_baseline(
        &self,
        who: &Caller,
        name: &str,
        document: &[u8],
    ) -> Result<TpmBaselineRecord, ServiceError> {
        self.service.audited(
            who,
            &format!("KpsBaselineAdd {name}"),
            None,
            AuditOutcome::Succeeded,
            || {
                who.require(Role::Admin, "registering a TPM baseline")?;
                check_host_name(name)?;
                Baseline::parse(document)
                    .map_err(|e| ServiceError::InvalidParameter(format!("--from: {e}")))?;
                let b = TpmBaselineRecord {
                    name: name.into(),
                    document: document.to_vec(),
                    added: OffsetDateTime::now_utc(),
                };
                self.fabric.add_tpm_baseline(&b)?;
                Ok(b)
            },
        )
    }

    pub fn baselines(&self, who: &Caller) -> Result<Vec<TpmBaselineRecord>, ServiceError> {
        who.require(Role::Reader, "listing TPM baselines")?;
        Ok(self.fabric.tpm_baselines()?)
    }

    pub fn remove_baseline(&self, who: &Caller, name: &str) -> Result<(), ServiceError> {
        self.service.audited(
            who,
            &format!("KpsBaselineRemove {name}"),
            None,
            AuditOutcome::Succeeded,
            || {
                who.require(Role::Admin, "removing a TPM baseline")?;
                if !self.fabric.remove_tpm_baseline(name)? {
                    return Err(ServiceError::NotFound(format!("no TPM baseline {name:?}")));
                }
                Ok(())
            },
        )
    }

    pub fn hosts(&self, who: &Caller) -> Result<Vec<AttestedHost>, ServiceError> {
        who.require(Role::Reader, "listing hosts")?;
        Ok(self.fabric.attested_hosts()?)
    }

    pub fn remove_host(&self, who: &Caller, name: &str) -> Result<(), ServiceError> {
        self.service.audited(
            who,
            &format!("KpsHostRemove {name}"),
            None,
            AuditOutcome::Succeeded,
            || {
                who.require(Role::Admin, "removing a host")?;
                if !self.fabric.remove_attested_host(name)? {
                    return Err(ServiceError::NotFound(format!(
                        "no registered host {name:?}"
                    )));
                }
                Ok(())
            },
        )
    }

    pub fn deny_before(&self, who: &Caller, at: OffsetDateTime) -> Result<(), ServiceError> {
        self.service.audited(
            who,
            &format!("KpsDenyBefore {at}"),
            None,
            AuditOutcome::Succeeded,
            || {
                who.require(Role::Admin, "setting deny-before")?;
                self.fabric.set_fabric_settings(&FabricSettings {
                    deny_before: Some(at),
                    ..self.fabric.fabric_settings()?
                })?;
                Ok(())
            },
        )
    }

    /// Records a health certificate issued or refused. An issue is recorded before the reply
    /// leaves: if the record cannot be written, the caller answers an error instead.
    pub fn audit_attestation(
        &self,
        outcome: &Result<Attested, (AttestError, Option<String>)>,
    ) -> Result<(), ServiceError> {
        let (actor, result, detail) = match outcome {
            Ok(a) => (
                format!("host:{}", a.host.name),
                AuditOutcome::Succeeded,
                format!(
                    "health certificate {} until {}",
                    a.certificate.serial, a.certificate.not_after
                ),
            ),
            Err((e, host)) => (
                host.as_ref()
                    .map_or_else(|| "host:unknown".to_owned(), |h| format!("host:{h}")),
                AuditOutcome::Denied,
                format!("{}: {e}", e.reply_type()),
            ),
        };
        self.append(&actor, "HealthCertificate", result, detail)
    }

    /// Records a TPM-mode round trip: a challenge given, a health certificate issued, or a
    /// refusal with the check that failed. Written before the reply leaves, as
    /// [`Kps::audit_attestation`].
    pub fn audit_tpm_attestation(
        &self,
        outcome: &Result<TpmOutcome, (AttestError, Option<String>)>,
    ) -> Result<(), ServiceError> {
        match outcome {
            Ok(TpmOutcome::Challenge { host, .. }) => self.append(
                &format!("host:{host}"),
                "TpmChallenge",
                AuditOutcome::Succeeded,
                "credential and nonce issued".into(),
            ),
            Ok(TpmOutcome::Issued(a)) => self.append(
                &format!("host:{}", a.host.name),
                "HealthCertificate",
                AuditOutcome::Succeeded,
                format!(
                    "TPM: health certificate {} until {}",
                    a.certificate.serial, a.certificate.not_after
                ),
            ),
            Err((e, host)) => self.append(
                &host
                    .as_ref()
                    .map_or_else(|| "host:unknown".to_owned(), |h| format!("host:{h}")),
                "HealthCertificate",
                AuditOutcome::Denied,
                format!("TPM: {}: {e}", e.reply_type()),
            ),
        }
    }

    /// Records a key release or refusal, with the VM's thumbprints; never a key.
    pub fn audit_release(&self, outcome: &Result<Released, Refused>) -> Result<(), ServiceError> {
        let (actor, result, detail) = match outcome {
            Ok(r) => (
                format!("host:{}", r.host),
                AuditOutcome::Succeeded,
                format!(
                    "{} guardian {} health certificate {}",
                    thumbprints(&r.vm),
                    r.guardian,
                    r.health_serial
                ),
            ),
            Err(r) => (
                r.host
                    .as_ref()
                    .map_or_else(|| "host:unknown".to_owned(), |h| format!("host:{h}")),
                AuditOutcome::Denied,
                format!(
                    "{}{}: {}",
                    r.vm.as_ref()
                        .map(|v| format!("{} ", thumbprints(v)))
                        .unwrap_or_default(),
                    r.error.code(),
                    r.error
                ),
            ),
        };
        self.append(&actor, "RollTransportKey", result, detail)
    }

    fn append(
        &self,
        actor: &str,
        op: &str,
        outcome: AuditOutcome,
        detail: String,
    ) -> Result<(), ServiceError> {
        // A request's text reaches the log only through the services' own messages, which
        // quote at most a bounded part of it.
        let detail: String = detail.chars().take(1024).collect();
        self.service
            .store
            .append_audit(&AuditRecord {
                seq: 0,
                at: OffsetDateTime::now_utc(),
                actor: crate::audit::audit_name(actor).into_owned(),
                operation: op.into(),
                vm: None,
                outcome,
                detail,
            })
            .map(drop)
            .map_err(ServiceError::from)
    }
}

fn check_host_name(name: &str) -> Result<(), ServiceError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::InvalidParameter(format!(
            "host name {name:?}: use 1 to 64 letters, digits and . _ -"
        )))
    }
}

fn write_private_new(path: &Path, bytes: &[u8]) -> Result<(), ServiceError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| internal(format!("cannot write {}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)
}
