//! The vTPM state key (DEK) and its sealing under a transport key (TK).
//!
//! The DEK encrypts swtpm's state at rest. It never changes for the life of
//! the vTPM; what changes is the TK it is sealed under, so rolling a key
//! protector only re-seals 69 bytes instead of re-encrypting the vTPM state.
//!
//! Sealed format, version 1 (69 bytes):
//!
//! ```text
//! "VMSECDEK" (8 bytes) || version b'1' (1 byte) || nonce (12 bytes)
//!     || AES-256-GCM ciphertext of the DEK (32 bytes) || tag (16 bytes)
//! ```
//!
//! - AEAD key = HKDF-SHA256(ikm = TK, salt = empty, info =
//!   `vmsec vtpm state key v1`), 32 bytes.
//! - AAD = the VM's GUID as its 16 bytes in RFC 4122 (big-endian) order, i.e.
//!   [`Uuid::as_bytes`]: a DEK sealed for one VM cannot be replayed to another.
//! - nonce = 96 random bits; safe because each TK seals very few DEKs.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;
use zeroize::Zeroizing;

/// Length of a state key and of a transport key, in bytes.
pub const KEY_LEN: usize = 32;

/// Magic that starts every sealed state key; the byte after it is the version.
pub const SEALED_MAGIC: &[u8; 8] = b"VMSECDEK";

/// The only sealed-format version this crate reads and writes.
pub const SEALED_VERSION: u8 = b'1';

/// Length of a version-1 sealed state key.
pub const SEALED_LEN: usize = SEALED_MAGIC.len() + 1 + NONCE_LEN + KEY_LEN + TAG_LEN;

/// HKDF info string that separates this key from every other use of the TK.
pub const HKDF_INFO: &[u8] = b"vmsec vtpm state key v1";

const TAG_LEN: usize = 16;

/// A 256-bit vTPM state key. Zeroized on drop; its `Debug` shows nothing.
#[derive(Clone)]
pub struct StateKey(Zeroizing<[u8; KEY_LEN]>);

impl StateKey {
    /// A fresh random state key from the system CSPRNG.
    pub fn generate() -> Result<Self, SealError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(key.as_mut())
            .map_err(|_| SealError::Random)?;
        Ok(Self(key))
    }

    /// Wraps existing key bytes (for example from a backup).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The raw key, for handing to swtpm through a pipe.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

/// Why a sealed state key could not be produced or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The bytes do not start with `VMSECDEK`: not a sealed state key at all.
    #[error("not a sealed vTPM state key (missing VMSECDEK magic)")]
    NotSealedKey,
    /// A sealed state key of a format version this build does not know.
    #[error("sealed vTPM state key has unsupported format version 0x{version:02x}")]
    UnsupportedVersion {
        /// The version byte found after the magic.
        version: u8,
    },
    /// Right magic and version, wrong total length: truncated or padded.
    #[error("sealed vTPM state key is {actual} bytes, version 1 is exactly {expected}")]
    WrongLength {
        /// The length version 1 requires.
        expected: usize,
        /// The length received.
        actual: usize,
    },
    /// Authentication failed: sealed under another transport key, for
    /// another VM, or modified since sealing. AES-GCM cannot tell these apart.
    #[error("sealed vTPM state key rejected: wrong transport key, wrong VM, or tampered with")]
    Rejected,
    /// The system random generator failed.
    #[error("system random generator failed")]
    Random,
    /// Key derivation or AEAD setup failed inside aws-lc.
    #[error("state key cryptography failed in aws-lc")]
    Crypto,
}

/// Seals `dek` for VM `vm` under transport key `tk` (format above).
pub fn seal(tk: &[u8; KEY_LEN], vm: Uuid, dek: &StateKey) -> Result<Vec<u8>, SealError> {
    let key = sealing_key(tk)?;
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| SealError::Random)?;

    let mut body = Zeroizing::new(dek.expose_secret().to_vec());
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(vm.as_bytes()),
            body.as_mut_slice(),
        )
        .map_err(|_| SealError::Crypto)?;

    let mut sealed = Vec::with_capacity(SEALED_LEN);
    sealed.extend_from_slice(SEALED_MAGIC);
    sealed.push(SEALED_VERSION);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&body);
    sealed.extend_from_slice(tag.as_ref());
    Ok(sealed)
}

/// Opens a state key sealed by [`seal`] with the same `tk` and `vm`.
pub fn unseal(tk: &[u8; KEY_LEN], vm: Uuid, sealed: &[u8]) -> Result<StateKey, SealError> {
    let (magic, rest) = sealed
        .split_at_checked(SEALED_MAGIC.len())
        .ok_or(SealError::NotSealedKey)?;
    if magic != SEALED_MAGIC {
        return Err(SealError::NotSealedKey);
    }
    let (&version, rest) = rest.split_first().ok_or(SealError::WrongLength {
        expected: SEALED_LEN,
        actual: sealed.len(),
    })?;
    if version != SEALED_VERSION {
        return Err(SealError::UnsupportedVersion { version });
    }
    if sealed.len() != SEALED_LEN {
        return Err(SealError::WrongLength {
            expected: SEALED_LEN,
            actual: sealed.len(),
        });
    }
    let (nonce, body) = rest
        .split_at_checked(NONCE_LEN)
        .ok_or(SealError::WrongLength {
            expected: SEALED_LEN,
            actual: sealed.len(),
        })?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Crypto)?;

    let key = sealing_key(tk)?;
    let mut buf = Zeroizing::new(body.to_vec());
    let plain = key
        .open_in_place(nonce, Aad::from(vm.as_bytes()), buf.as_mut_slice())
        .map_err(|_| SealError::Rejected)?;
    if plain.len() != KEY_LEN {
        return Err(SealError::Crypto);
    }
    // Copied straight into zeroizing storage: no stray stack copy of the key.
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(plain);
    Ok(StateKey(key))
}

/// The AEAD key derived from the TK for sealing state keys.
fn sealing_key(tk: &[u8; KEY_LEN]) -> Result<LessSafeKey, SealError> {
    let prk = Salt::new(HKDF_SHA256, &[]).extract(tk);
    let okm = prk
        .expand(&[HKDF_INFO], &AES_256_GCM)
        .map_err(|_| SealError::Crypto)?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VM: Uuid = Uuid::from_u128(0x6f1c2a3b_4c5d_4e6f_8a9b_0c1d2e3f4a5b);
    const TK: [u8; KEY_LEN] = [7; KEY_LEN];

    fn sealed_fixture() -> (StateKey, Vec<u8>) {
        let dek = StateKey::generate().expect("random");
        let sealed = seal(&TK, VM, &dek).expect("seal");
        (dek, sealed)
    }

    #[test]
    fn seal_then_unseal_returns_the_same_key() {
        let (dek, sealed) = sealed_fixture();
        let opened = unseal(&TK, VM, &sealed).expect("unseal");
        assert_eq!(opened.expose_secret(), dek.expose_secret());
    }

    #[test]
    fn sealed_key_has_documented_layout_and_hides_the_key() {
        let (dek, sealed) = sealed_fixture();
        assert_eq!(sealed.len(), SEALED_LEN);
        assert_eq!(SEALED_LEN, 69);
        assert_eq!(&sealed[..9], b"VMSECDEK1");
        assert!(
            !sealed
                .windows(KEY_LEN)
                .any(|w| w == dek.expose_secret().as_slice())
        );
    }

    #[test]
    fn sealing_twice_uses_fresh_nonces() {
        let dek = StateKey::generate().expect("random");
        let a = seal(&TK, VM, &dek).expect("seal");
        let b = seal(&TK, VM, &dek).expect("seal");
        assert_ne!(a, b);
    }

    #[test]
    fn unseal_with_another_transport_key_is_rejected() {
        let (_, sealed) = sealed_fixture();
        let other = [8u8; KEY_LEN];
        assert_eq!(
            unseal(&other, VM, &sealed).map(|_| ()),
            Err(SealError::Rejected)
        );
    }

    #[test]
    fn unseal_for_another_vm_is_rejected() {
        let (_, sealed) = sealed_fixture();
        let other_vm = Uuid::from_u128(1);
        assert_eq!(
            unseal(&TK, other_vm, &sealed).map(|_| ()),
            Err(SealError::Rejected)
        );
    }

    #[test]
    fn any_flipped_byte_after_the_version_is_rejected() {
        let (_, sealed) = sealed_fixture();
        for i in 9..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                unseal(&TK, VM, &bad).map(|_| ()),
                Err(SealError::Rejected),
                "byte {i}"
            );
        }
    }

    #[test]
    fn truncated_sealed_key_reports_its_length() {
        let (_, sealed) = sealed_fixture();
        let short = &sealed[..SEALED_LEN - 1];
        assert_eq!(
            unseal(&TK, VM, short).map(|_| ()),
            Err(SealError::WrongLength {
                expected: SEALED_LEN,
                actual: SEALED_LEN - 1
            })
        );
        assert_eq!(
            unseal(&TK, VM, &sealed[..9]).map(|_| ()),
            Err(SealError::WrongLength {
                expected: SEALED_LEN,
                actual: 9
            })
        );
        assert_eq!(
            unseal(&TK, VM, &sealed[..8]).map(|_| ()),
            Err(SealError::WrongLength {
                expected: SEALED_LEN,
                actual: 8
            })
        );
    }

    #[test]
    fn padded_sealed_key_reports_its_length() {
        let (_, mut sealed) = sealed_fixture();
        sealed.push(0);
        assert_eq!(
            unseal(&TK, VM, &sealed).map(|_| ()),
            Err(SealError::WrongLength {
                expected: SEALED_LEN,
                actual: SEALED_LEN + 1
            })
        );
    }

    #[test]
    fn bytes_without_the_magic_are_not_a_sealed_key() {
        assert_eq!(
            unseal(&TK, VM, b"").map(|_| ()),
            Err(SealError::NotSealedKey)
        );
        assert_eq!(
            unseal(&TK, VM, b"VMSEC").map(|_| ()),
            Err(SealError::NotSealedKey)
        );
        let (_, mut sealed) = sealed_fixture();
        sealed[0] = b'X';
        assert_eq!(
            unseal(&TK, VM, &sealed).map(|_| ()),
            Err(SealError::NotSealedKey)
        );
    }

    #[test]
    fn unknown_version_is_named_in_the_error() {
        let (_, mut sealed) = sealed_fixture();
        sealed[8] = b'2';
        assert_eq!(
            unseal(&TK, VM, &sealed).map(|_| ()),
            Err(SealError::UnsupportedVersion { version: b'2' })
        );
    }

    #[test]
    fn debug_of_a_state_key_shows_no_key_bytes() {
        let dek = StateKey::from_bytes([0xAB; KEY_LEN]);
        let shown = format!("{dek:?}");
        assert_eq!(shown, "StateKey(..)");
    }

    #[test]
    fn generated_keys_differ() {
        let a = StateKey::generate().expect("random");
        let b = StateKey::generate().expect("random");
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
