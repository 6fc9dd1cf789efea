//! TPM mode of the Attestation Service (docs/specs/kps.md, "TPM mode"): the host's EK is
//! registered, an AK is bound to it by credential activation, the IDK is certified by the
//! AK, and a quote over a server nonce confirms the event log, whose replayed PCRs must match
//! a registered baseline. Verified in software; the service never needs a TPM.
//!
//! - [`wire`]: the TPM structures a host sends, parsed as hostile input.
//! - [`credential`]: TPM2_MakeCredential in software.
//! - [`eventlog`]: the TCG crypto-agile event log and its replay.
//! - [`baseline`]: the reference PCRs `kps baseline add` registers.
//! - [`service`]: the two round trips, with the pending challenges.
//! - [`client`]: the host's side of them.

pub mod baseline;
pub mod client;
pub mod credential;
pub mod eventlog;
pub mod service;
pub mod wire;

pub use baseline::Baseline;
pub use service::{Challenges, TpmAttestation, TpmHost};
