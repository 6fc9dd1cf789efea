//! The fabric's state, kept by a Key Protection Service: the hosts its Attestation Service
//! vouches for and the fabric-wide settings. A separate trait from [`Store`](crate::Store):
//! only a KPS has it, and several KPS nodes may share it.

use serde::Serialize;
use time::OffsetDateTime;

use crate::StoreError;

/// A host registered for host-key attestation (`vmsec kps host add`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttestedHost {
    pub name: String,
    /// Lowercase hex SHA-256 of `host_key`: how a request names the host.
    pub key_hash: String,
    /// DER SubjectPublicKeyInfo.
    #[serde(skip)]
    pub host_key: Vec<u8>,
    #[serde(with = "crate::rfc3339")]
    pub added: OffsetDateTime,
}

/// Fabric-wide settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FabricSettings {
    /// Health certificates issued before this are refused (`vmsec kps deny-before`).
    #[serde(with = "crate::rfc3339::option")]
    pub deny_before: Option<OffsetDateTime>,
    /// The guardian new key protectors should grant: the one `metadata.xml` publishes.
    pub primary_guardian: Option<String>,
}

/// A host registered for TPM-mode attestation by its endorsement key (`vmsec kps host add
/// NAME --ek-cert FILE | --ek-pub FILE`). It is also an [`AttestedHost`] whose key is the EK,
/// so the Key Protection Service finds it as it finds any host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TpmHostRecord {
    pub name: String,
    /// Lowercase hex SHA-256 of `ek_public`.
    pub ek_hash: String,
    /// The EK's DER SubjectPublicKeyInfo.
    #[serde(skip)]
    pub ek_public: Vec<u8>,
    /// The EK certificate it was registered with (DER), if any.
    #[serde(skip)]
    pub ek_certificate: Option<Vec<u8>>,
    #[serde(with = "crate::rfc3339")]
    pub added: OffsetDateTime,
}

/// A TPM baseline (`vmsec kps baseline add NAME --from FILE`): the file's bytes as
/// registered; the Attestation Service parses them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TpmBaselineRecord {
    pub name: String,
    #[serde(skip)]
    pub document: Vec<u8>,
    #[serde(with = "crate::rfc3339")]
    pub added: OffsetDateTime,
}

pub trait FabricStore: Send + Sync {
    /// Registers a host; [`StoreError::AlreadyExists`] when its name or key is registered.
    fn add_attested_host(&self, host: &AttestedHost) -> Result<(), StoreError>;
    fn attested_host_by_key(&self, key_hash: &str) -> Result<Option<AttestedHost>, StoreError>;
    /// By name.
    fn attested_hosts(&self) -> Result<Vec<AttestedHost>, StoreError>;
    /// Removes a host, of either mode.
    fn remove_attested_host(&self, name: &str) -> Result<bool, StoreError>;
    /// Registers a TPM host, and the [`AttestedHost`] of its EK, in one transaction;
    /// [`StoreError::AlreadyExists`] when its name or EK is registered.
    fn add_tpm_host(&self, host: &TpmHostRecord) -> Result<(), StoreError>;
    fn tpm_host_by_ek(&self, ek_hash: &str) -> Result<Option<TpmHostRecord>, StoreError>;
    /// By name.
    fn tpm_hosts(&self) -> Result<Vec<TpmHostRecord>, StoreError>;
    /// [`StoreError::AlreadyExists`] when the name is taken.
    fn add_tpm_baseline(&self, baseline: &TpmBaselineRecord) -> Result<(), StoreError>;
    /// By name.
    fn tpm_baselines(&self) -> Result<Vec<TpmBaselineRecord>, StoreError>;
    fn remove_tpm_baseline(&self, name: &str) -> Result<bool, StoreError>;
    fn fabric_settings(&self) -> Result<FabricSettings, StoreError>;
    fn set_fabric_settings(&self, settings: &FabricSettings) -> Result<(), StoreError>;
}
