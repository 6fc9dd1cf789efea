//! A host's guarded-fabric side ("HGS mode", Hyper-V's `Set-HgsClientConfiguration`): its
//! client configuration, its host key and IDK, and the cached health certificate. All of it
//! is this host's alone, so it lives in files under `DATA/hgs/`, never in a store several
//! hosts may share; the keys sealed under the host's master key, every file 0600 and
//! replaced whole (written aside, synced, renamed).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::{MasterKey, ServiceError};

/// Whether this host unwraps key protectors itself or asks the fabric's KPS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// This host holds the guardians' keys (Hyper-V's "Local" mode).
    #[default]
    Local,
    /// The Key Protection Service rolls each key protector for an attested host.
    Hgs,
}

/// `DATA/hgs/client.json`: what `vmsec hgs set` configured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub mode: Mode,
    /// As Hyper-V holds it: `https://hgs.example/Attestation`.
    pub attestation_url: Option<String>,
    /// `https://hgs.example/KeyProtection`.
    pub key_protection_url: Option<String>,
    pub fallback_attestation_url: Option<String>,
    pub fallback_key_protection_url: Option<String>,
    /// PEM file of the certificates the services' TLS certificates must chain to; without it,
    /// the system's roots.
    pub ca: Option<PathBuf>,
    /// TPM mode (`hgs set --tpm`): attest with this host's TPM instead of its host key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmConfig>,
}

/// Where TPM mode finds this host's TPM and its boot's event log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmConfig {
    /// libtss2's TCTI: `device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`, …
    pub tcti: String,
    /// The TCG event log: `/sys/kernel/security/tpm0/binary_bios_measurements`.
    pub event_log: PathBuf,
}

/// The default TCTI and event log of a Linux host.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";
pub const DEFAULT_EVENT_LOG: &str = "/sys/kernel/security/tpm0/binary_bios_measurements";

/// The last attestation's outcome (`DATA/hgs/last-attestation.json`), what `hgs show`
/// reports as Hyper-V reports its attestation substatus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastAttestation {
    #[serde(with = "vmsec_store::rfc3339")]
    pub at: OffsetDateTime,
    /// The ErrorReply type of a refusal (`PolicyEvaluationErrorReply`, …); none when passed.
    pub reply_type: Option<String>,
    /// The service's message: the check that failed.
    pub message: Option<String>,
}

/// The files of a host's HGS side.
#[derive(Clone, Debug)]
pub struct HgsDir {
    dir: PathBuf,
}

const CONFIG: &str = "client.json";
const HOST_KEY: &str = "host-key.sealed";
const IDK: &str = "idk.sealed";
const HEALTH: &str = "health-certificate.der";
const LAST: &str = "last-attestation.json";

fn internal(what: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(what.to_string())
}

impl HgsDir {
    /// `DATA/hgs`.
    pub fn under(data: &Path) -> HgsDir {
        HgsDir {
            dir: data.join("hgs"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn create(&self) -> Result<(), ServiceError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| internal(format!("cannot create {}: {e}", self.dir.display())))
    }

    /// Replaces `name` whole: a crash leaves the old file or the new one.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), ServiceError> {
        self.create()?;
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let fail = |e: std::io::Error| internal(format!("cannot write {}: {e}", path.display()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(fail)?;
        f.write_all(bytes).map_err(fail)?;
        f.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, &path).map_err(fail)?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(fail)
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, ServiceError> {
        match std::fs::read(self.dir.join(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(internal(format!(
                "cannot read {}: {e}",
                self.dir.join(name).display()
            ))),
        }
    }

    /// The configuration; local mode when none was set.
    pub fn config(&self) -> Result<ClientConfig, ServiceError> {
        match self.read(CONFIG)? {
            None => Ok(ClientConfig::default()),
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| internal(format!("{}: {e}", self.dir.join(CONFIG).display()))),
        }
    }

    pub fn set_config(&self, config: &ClientConfig) -> Result<(), ServiceError> {
        let mut text = serde_json::to_vec_pretty(config).map_err(internal)?;
        text.push(b'\n');
        self.write(CONFIG, &text)?;
        // A cached health certificate may be from another fabric.
        self.forget_health_certificate()
    }

    fn sealed(
        &self,
        name: &str,
        what: &str,
        master: &MasterKey,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ServiceError> {
        self.read(name)?
            .map(|sealed| master.open(&sealed, &context(what)))
            .transpose()
    }

    /// The host key's PKCS#8, if made.
    pub fn host_key(&self, master: &MasterKey) -> Result<Option<Zeroizing<Vec<u8>>>, ServiceError> {
        self.sealed(HOST_KEY, "host key", master)
    }

    pub fn set_host_key(&self, pkcs8: &[u8], master: &MasterKey) -> Result<(), ServiceError> {
        self.write(HOST_KEY, &master.seal(pkcs8, &context("host key"))?)?;
        self.forget_health_certificate()
    }

    pub fn idk(&self, master: &MasterKey) -> Result<Option<Zeroizing<Vec<u8>>>, ServiceError> {
        self.sealed(IDK, "IDK", master)
    }

    pub fn set_idk(&self, pkcs8: &[u8], master: &MasterKey) -> Result<(), ServiceError> {
        self.write(IDK, &master.seal(pkcs8, &context("IDK"))?)
    }

    /// The cached health certificate (DER), as it was stored; the caller checks its expiry.
    pub fn health_certificate(&self) -> Result<Option<Vec<u8>>, ServiceError> {
        self.read(HEALTH)
    }

    pub fn set_health_certificate(&self, der: &[u8]) -> Result<(), ServiceError> {
        self.write(HEALTH, der)
    }

    /// A TPM-wrapped key blob of TPM mode (`tpm-ak.pub`, `tpm-idk.priv`, …): only the TPM
    /// that made it can load it, so it is kept as the TPM gave it.
    pub fn tpm_blob(&self, name: &str) -> Result<Option<Vec<u8>>, ServiceError> {
        self.read(&format!("tpm-{name}"))
    }

    pub fn set_tpm_blob(&self, name: &str, bytes: &[u8]) -> Result<(), ServiceError> {
        self.write(&format!("tpm-{name}"), bytes)
    }

    pub fn last_attestation(&self) -> Result<Option<LastAttestation>, ServiceError> {
        match self.read(LAST)? {
            None => Ok(None),
            Some(b) => Ok(serde_json::from_slice(&b).ok()),
        }
    }

    pub fn set_last_attestation(&self, last: &LastAttestation) -> Result<(), ServiceError> {
        self.write(LAST, &serde_json::to_vec(last).map_err(internal)?)
    }

    pub fn forget_health_certificate(&self) -> Result<(), ServiceError> {
        match std::fs::remove_file(self.dir.join(HEALTH)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(internal(format!(
                "cannot remove the cached health certificate: {e}"
            ))),
            _ => Ok(()),
        }
    }
}

fn context(what: &str) -> Vec<u8> {
    format!("vmsec hgs {what} v1").into_bytes()
}

/// Where this host's attestation stands, from what it has cached (no request is made), by the
/// names of Hyper-V's `Get-HgsClientConfiguration`. The one rule `vmsec hgs show` and
/// `MSFT_HgsClientConfiguration` both report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum AttestationStatus {
    /// Local mode: the host does not attest.
    NotConfigured,
    /// HGS mode, and no health certificate yet (or a cached one that does not parse).
    NotAttested,
    /// HGS mode with a cached health certificate still valid now.
    Passed,
    /// HGS mode, the cached health certificate has expired (the next start attests anew).
    Expired,
    /// The last attestation was refused: the host is not registered or did not prove it.
    UnauthorizedHost,
    /// The last attestation was refused by policy: its boot matches no baseline, or its
    /// event log does not replay (TPM mode).
    InsecureHostConfiguration,
}

impl AttestationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AttestationStatus::NotConfigured => "NotConfigured",
            AttestationStatus::NotAttested => "NotAttested",
            AttestationStatus::Passed => "Passed",
            AttestationStatus::Expired => "Expired",
            AttestationStatus::UnauthorizedHost => "UnauthorizedHost",
            AttestationStatus::InsecureHostConfiguration => "InsecureHostConfiguration",
        }
    }
}

/// The rule: `expires` is the cached health certificate's end of validity, if one is cached.
pub fn attestation_status(
    mode: Mode,
    expires: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> AttestationStatus {
    match (mode, expires) {
        (Mode::Local, _) => AttestationStatus::NotConfigured,
        (Mode::Hgs, None) => AttestationStatus::NotAttested,
        (Mode::Hgs, Some(t)) if t > now => AttestationStatus::Passed,
        (Mode::Hgs, Some(_)) => AttestationStatus::Expired,
    }
}

impl HgsDir {
    /// The status by [`attestation_status`], and the cached certificate's expiry.
    pub fn attestation(
        &self,
        config: &ClientConfig,
        now: OffsetDateTime,
    ) -> Result<(AttestationStatus, Option<OffsetDateTime>), ServiceError> {
        let expires = self
            .health_certificate()?
            .and_then(|der| vmsec_kps::health::not_after(&der));
        let mut status = attestation_status(config.mode, expires, now);
        if status == AttestationStatus::NotAttested
            && let Some(last) = self.last_attestation()?
            && let Some(ty) = last.reply_type
        {
            status = match ty.as_str() {
                "PolicyEvaluationErrorReply" | "TcgLogValidationErrorReply" => {
                    AttestationStatus::InsecureHostConfiguration
                }
                "UnauthorizedErrorReply" => AttestationStatus::UnauthorizedHost,
                _ => status,
            };
        }
        Ok((status, expires))
    }
}

/// The status `vmsec hgs show` and `MSFT_HgsClientConfiguration` report, as Hyper-V's
/// `Get-HgsClientConfiguration` names them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClientStatus {
    #[serde(flatten)]
    pub config: ClientConfig,
    pub attestation_status: AttestationStatus,
    #[serde(with = "vmsec_store::rfc3339::option")]
    pub health_certificate_expires: Option<OffsetDateTime>,
    /// Lowercase hex SHA-256 of the host key's public key, when one was made.
    pub host_key_hash: Option<String>,
    /// `HostKey` or `Tpm`.
    pub attestation_mode: &'static str,
    /// The last refusal: its ErrorReply type and the check that failed.
    pub last_failure: Option<String>,
}
