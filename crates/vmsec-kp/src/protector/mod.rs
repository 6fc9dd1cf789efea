//! The key protector: parse, verify, create, unwrap, grant, revoke, roll.
//!
//! A [`Protector`] is immutable and always holds the exact bytes it was parsed
//! from; every operation that changes it writes a new document, parses it back
//! and verifies it, so what callers store is what verifiers will read.

mod model;
mod parse;
mod write;

use aws_lc_rs::rsa;
use std::collections::HashMap;

pub use model::{GuardianSignature, NS_KPS, TransportKeySignature, Wrapping};

use crate::cert;
use crate::crypto::{
    Hkdf, KeyEncryption, Signature, SignatureAlgorithm, TransportKey, sign_rsa_sha256,
};
use crate::error::{CertRole, Error, Result, SignatureKind};
use crate::guardian::Guardian;

/// A parsed key protector together with its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protector {
    bytes: Vec<u8>,
    canonical_wrappings: Vec<u8>,
    max_offline_unwraps: u32,
    wrappings: Vec<Wrapping>,
    transport_key_signature: TransportKeySignature,
    guardian_signature: GuardianSignature,
}

/// The result of [`Protector::roll`].
#[derive(Debug)]
pub struct Rolled {
    /// The transport key of the protector that was rolled (TK1).
    pub previous: TransportKey,
    /// The new transport key (TK2).
    pub current: TransportKey,
    /// The new protector, wrapping `current` for every wrapping of the old one.
    pub protector: Protector,
}

impl Protector {
    /// Parses a protector (UTF-8 XML, optional BOM and XML declaration).
    /// Checks the schema and algorithms; call [`Protector::verify`] for the signatures.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let p = parse::parse(bytes)?;
        Ok(Self {
            bytes: bytes.to_vec(),
            canonical_wrappings: p.canonical_wrappings,
            max_offline_unwraps: p.max_offline_unwraps,
            wrappings: p.wrappings,
            transport_key_signature: p.transport_key_signature,
            guardian_signature: p.guardian_signature,
        })
    }

    /// The exact bytes of this protector.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, consuming the protector.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Exclusive canonical form of `<Wrappings>`: what both signatures cover.
    pub fn canonical_wrappings(&self) -> &[u8] {
        &self.canonical_wrappings
    }

    /// `MaxOfflineUnwraps` (0 when absent).
    pub fn max_offline_unwraps(&self) -> u32 {
        self.max_offline_unwraps
    }

    /// The wrappings, in document order.
    pub fn wrappings(&self) -> &[Wrapping] {
        &self.wrappings
    }

    /// The owner's wrapping, if exactly one wrapping is self-parented.
    pub fn owner(&self) -> Option<&Wrapping> {
        let mut owners = self.wrappings.iter().filter(|w| w.is_owner());
        match (owners.next(), owners.next()) {
            (Some(w), None) => Some(w),
            _ => None,
        }
    }

    /// The `TransportKeySignature`.
    pub fn transport_key_signature(&self) -> &TransportKeySignature {
        &self.transport_key_signature
    }

    /// The `GuardianSignature`.
    pub fn guardian_signature(&self) -> &GuardianSignature {
        &self.guardian_signature
    }

    /// The wrapping of a guardian (matched by encryption or signing certificate).
    pub fn wrapping_of(&self, guardian: &Guardian) -> Option<&Wrapping> {
        self.wrappings.iter().find(|w| {
            w.encryption_cert == guardian.encryption_cert_der()
                || w.signing_cert == guardian.signing_cert_der()
        })
    }

    /// Checks everything that can be checked without the transport key:
    /// single owner, parent chains, certificates and their key usage,
    /// SigningCertificateSignature, EncryptionCertificateSignature, GuardianSignature.
    pub fn verify(&self) -> Result<()> {
        let owners: Vec<u32> = self
            .wrappings
            .iter()
            .filter(|w| w.is_owner())
            .map(|w| w.id)
            .collect();
        match owners.len() {
            0 => return Err(Error::NoOwner),
            1 => {}
            _ => return Err(Error::MultipleOwners { ids: owners }),
        }
        let by_id: HashMap<u32, &Wrapping> = self.wrappings.iter().map(|w| (w.id, w)).collect();
        for w in &self.wrappings {
            if !by_id.contains_key(&w.parent_id) {
                return Err(Error::UnknownParent {
                    wrapping: w.id,
                    parent: w.parent_id,
                });
            }
        }
        for w in &self.wrappings {
            let mut current: &Wrapping = w;
            let mut steps = 0usize;
            while !current.is_owner() {
                steps += 1;
                // With one owner and every parent known, a chain longer than the
                // number of wrappings can only be a cycle.
                match by_id.get(&current.parent_id) {
                    Some(parent) if steps <= self.wrappings.len() => current = parent,
                    _ => return Err(Error::ParentCycle { wrapping: w.id }),
                }
            }
        }
        let mut signing_keys = HashMap::new();
        for w in &self.wrappings {
            let signing = cert::keys(&w.signing_cert, CertRole::Signing, Some(w.id))?;
            cert::keys(&w.encryption_cert, CertRole::Encryption, Some(w.id))?;
            signing_keys.insert(w.id, signing.rsa_public);
        }
        for w in &self.wrappings {
            let parent_key = signing_keys.get(&w.parent_id).ok_or(Error::UnknownParent {
                wrapping: w.id,
                parent: w.parent_id,
            })?;
            if !verify_sig(&w.signing_cert_signature, parent_key, &w.signing_cert) {
                return Err(Error::BadSignature {
                    kind: SignatureKind::SigningCertificate,
                    wrapping: Some(w.id),
                });
            }
            let own_key = signing_keys.get(&w.id).ok_or(Error::UnknownParent {
                wrapping: w.id,
                parent: w.id,
            })?;
            if !verify_sig(&w.encryption_cert_signature, own_key, &w.encryption_cert) {
                return Err(Error::BadSignature {
                    kind: SignatureKind::EncryptionCertificate,
                    wrapping: Some(w.id),
                });
            }
        }
        let gs = &self.guardian_signature;
        let signer_key = signing_keys
            .get(&gs.wrapping_id)
            .ok_or(Error::UnknownSigner { id: gs.wrapping_id })?;
        if !verify_sig(&gs.signature, signer_key, &self.canonical_wrappings) {
            return Err(Error::BadSignature {
                kind: SignatureKind::Guardian,
                wrapping: Some(gs.wrapping_id),
            });
        }
        Ok(())
    }

    /// Verifies the protector, then recovers the transport key with the first
    /// identity (a guardian with private keys) that has a wrapping, and checks
    /// the TransportKeySignature with it.
    pub fn unwrap(&self, identities: &[Guardian]) -> Result<TransportKey> {
        self.verify()?;
        let mut last_error = Error::NoMatchingIdentity;
        for g in identities.iter().filter(|g| g.has_private_keys()) {
            for w in self
                .wrappings
                .iter()
                .filter(|w| w.encryption_cert == g.encryption_cert_der())
            {
                match self.unwrap_with(w, g) {
                    Ok(tk) => return Ok(tk),
                    Err(e) => last_error = e,
                }
            }
        }
        Err(last_error)
    }

    fn unwrap_with(&self, w: &Wrapping, g: &Guardian) -> Result<TransportKey> {
        let plain = w
            .key_encryption
            .decrypt(g.encryption_key()?, &w.encrypted_key)
            .ok_or(Error::DecryptionFailed { wrapping: w.id })?;
        let bytes: [u8; 32] =
            plain
                .as_slice()
                .try_into()
                .map_err(|_| Error::TransportKeyLength {
                    wrapping: w.id,
                    len: plain.len(),
                })?;
        let tk = TransportKey::from_bytes(bytes);
        let tks = &self.transport_key_signature;
        if !tk.verify(&tks.kdf, &self.canonical_wrappings, &tks.mac)? {
            return Err(Error::BadSignature {
                kind: SignatureKind::TransportKey,
                wrapping: None,
            });
        }
        Ok(tk)
    }

    /// A new protector with a fresh transport key: the owner's wrapping (Id 1,
    /// its own parent) and one wrapping per guardian (Ids 2.., parent 1), signed
    /// by the owner. Needs the owner's private keys.
    pub fn new(owner: &Guardian, guardians: &[Guardian]) -> Result<Self> {
        let owner_key = owner.signing_key()?;
        let tk = TransportKey::generate()?;
        let mut wrappings = vec![make_wrapping(1, 1, owner, owner_key, &tk)?];
        for g in guardians {
            if let Some(existing) = wrappings.iter().find(|w| {
                w.encryption_cert == g.encryption_cert_der()
                    || w.signing_cert == g.signing_cert_der()
            }) {
                return Err(Error::AlreadyGranted {
                    wrapping: existing.id,
                });
            }
            let id = next_id(&wrappings)?;
            wrappings.push(make_wrapping(id, 1, g, owner_key, &tk)?);
        }
        assemble(0, wrappings, &tk, 1, owner_key)
    }

    /// The owner adds a guardian's wrapping (parent = owner) and re-signs.
    pub fn grant(&self, owner: &Guardian, guardian: &Guardian) -> Result<Self> {
        let (owner_wrapping, tk) = self.owner_access(owner)?;
        if let Some(existing) = self.wrapping_of(guardian) {
            return Err(Error::AlreadyGranted {
                wrapping: existing.id,
            });
        }
        let owner_key = owner.signing_key()?;
        let mut wrappings = self.wrappings.clone();
        let id = next_id(&wrappings)?;
        wrappings.push(make_wrapping(id, owner_wrapping, guardian, owner_key, &tk)?);
        assemble(
            self.max_offline_unwraps,
            wrappings,
            &tk,
            owner_wrapping,
            owner_key,
        )
    }

    /// The owner removes a guardian's wrapping and re-signs. The transport key
    /// stays the same: the revoked guardian loses access at the next roll.
    pub fn revoke(&self, owner: &Guardian, guardian: &Guardian) -> Result<Self> {
        let (owner_wrapping, tk) = self.owner_access(owner)?;
        let target = self.wrapping_of(guardian).ok_or(Error::NotGranted)?;
        if target.is_owner() {
            return Err(Error::CannotRevokeOwner);
        }
        if let Some(child) = self
            .wrappings
            .iter()
            .find(|w| w.parent_id == target.id && w.id != target.id)
        {
            return Err(Error::RevokeWouldOrphan {
                wrapping: target.id,
                child: child.id,
            });
        }
        let wrappings: Vec<Wrapping> = self
            .wrappings
            .iter()
            .filter(|w| w.id != target.id)
            .cloned()
            .collect();
        assemble(
            self.max_offline_unwraps,
            wrappings,
            &tk,
            owner_wrapping,
            owner.signing_key()?,
        )
    }

    /// Unwraps the current transport key (TK1) with `identities`, wraps a fresh
    /// one (TK2) for every wrapping's encryption certificate, and signs with a
    /// wrapping whose signing key one of `identities` holds. Certificates and
    /// certificate signatures are kept as they are.
    pub fn roll(&self, identities: &[Guardian]) -> Result<Rolled> {
        let previous = self.unwrap(identities)?;
        let (signer_id, signer_key) = identities
            .iter()
            .filter(|g| g.has_private_keys())
            .find_map(|g| {
                self.wrappings
                    .iter()
                    .find(|w| w.signing_cert == g.signing_cert_der())
                    .map(|w| (w.id, g))
            })
            .ok_or(Error::NoMatchingIdentity)?;
        let current = TransportKey::generate()?;
        let mut wrappings = self.wrappings.clone();
        for w in &mut wrappings {
            let keys = cert::keys(&w.encryption_cert, CertRole::Encryption, Some(w.id))?;
            w.key_encryption = KeyEncryption::VMSEC;
            w.encrypted_key = KeyEncryption::VMSEC.encrypt(&keys.spki, current.as_bytes())?;
        }
        let protector = assemble(
            self.max_offline_unwraps,
            wrappings,
            &current,
            signer_id,
            signer_key.signing_key()?,
        )?;
        Ok(Rolled {
            previous,
            current,
            protector,
        })
    }

    /// Checks `owner` is this protector's owner and recovers the transport key.
    fn owner_access(&self, owner: &Guardian) -> Result<(u32, TransportKey)> {
        self.verify()?;
        let owner_wrapping = self.owner().ok_or(Error::NoOwner)?;
        if owner_wrapping.signing_cert != owner.signing_cert_der()
            || owner_wrapping.encryption_cert != owner.encryption_cert_der()
        {
            return Err(Error::NotOwner);
        }
        owner.signing_key()?;
        let tk = self.unwrap_with(owner_wrapping, owner)?;
        Ok((owner_wrapping.id, tk))
    }
}

fn verify_sig(sig: &Signature, rsa_public: &[u8], message: &[u8]) -> bool {
    sig.algorithm.verify(rsa_public, message, &sig.value)
}

fn next_id(wrappings: &[Wrapping]) -> Result<u32> {
    wrappings
        .iter()
        .map(|w| w.id)
        .max()
        .unwrap_or(0)
        .checked_add(1)
        .ok_or(Error::IdsExhausted)
}

/// A wrapping of `tk` for `guardian`, its signing certificate signed by `parent_key`.
fn make_wrapping(
    id: u32,
    parent_id: u32,
    guardian: &Guardian,
    parent_key: &rsa::KeyPair,
    tk: &TransportKey,
) -> Result<Wrapping> {
    let enc = cert::keys(guardian.encryption_cert_der(), CertRole::Encryption, None)?;
    Ok(Wrapping {
        id,
        signing_cert: guardian.signing_cert_der().to_vec(),
        parent_id,
        signing_cert_signature: sign_rsa_sha256(parent_key, guardian.signing_cert_der())?,
        encryption_cert: guardian.encryption_cert_der().to_vec(),
        encryption_cert_signature: guardian.encryption_cert_signature().clone(),
        key_encryption: KeyEncryption::VMSEC,
        encrypted_key: KeyEncryption::VMSEC.encrypt(&enc.spki, tk.as_bytes())?,
    })
}

/// Writes, signs, re-reads and verifies a protector.
fn assemble(
    max_offline_unwraps: u32,
    wrappings: Vec<Wrapping>,
    tk: &TransportKey,
    signer_id: u32,
    signer_key: &rsa::KeyPair,
) -> Result<Protector> {
    // The signatures cover the canonical form of <Wrappings> as it will sit in
    // the final document, so take it from a draft of that same document.
    let placeholder_tks = TransportKeySignature {
        kdf: Hkdf::fresh()?,
        mac: Vec::new(),
    };
    let placeholder_gs = GuardianSignature {
        wrapping_id: signer_id,
        signature: Signature {
            algorithm: SignatureAlgorithm::RsaSha256,
            value: Vec::new(),
        },
    };
    let draft = write::protector(
        max_offline_unwraps,
        &wrappings,
        &placeholder_tks,
        &placeholder_gs,
    );
    let canonical = parse::parse(draft.as_bytes())?.canonical_wrappings;
    let kdf = placeholder_tks.kdf;
    let tks = TransportKeySignature {
        mac: tk.sign(&kdf, &canonical)?,
        kdf,
    };
    let gs = GuardianSignature {
        wrapping_id: signer_id,
        signature: sign_rsa_sha256(signer_key, &canonical)?,
    };
    let bytes = write::protector(max_offline_unwraps, &wrappings, &tks, &gs).into_bytes();
    // Neither parsed nor verified again: the bytes are what the writer made of these very
    // values, and every signature was just made over their canonical form. The tests check
    // that what new, grant, revoke and roll return equals its own parse and verifies.
    Ok(Protector {
        bytes,
        canonical_wrappings: canonical,
        max_offline_unwraps,
        wrappings,
        transport_key_signature: tks,
        guardian_signature: gs,
    })
}

#[cfg(test)]
mod tests;
