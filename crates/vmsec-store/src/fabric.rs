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

pub trait FabricStore: Send + Sync {
    /// Registers a host; [`StoreError::AlreadyExists`] when its name or key is registered.
    fn add_attested_host(&self, host: &AttestedHost) -> Result<(), StoreError>;
    fn attested_host_by_key(&self, key_hash: &str) -> Result<Option<AttestedHost>, StoreError>;
    /// By name.
    fn attested_hosts(&self) -> Result<Vec<AttestedHost>, StoreError>;
    fn remove_attested_host(&self, name: &str) -> Result<bool, StoreError>;
    fn fabric_settings(&self) -> Result<FabricSettings, StoreError>;
    fn set_fabric_settings(&self, settings: &FabricSettings) -> Result<(), StoreError>;
}
