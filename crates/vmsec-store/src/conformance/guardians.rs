//! Guardians.

use super::at;
use crate::*;

fn guardian(name: &str, with_keys: bool) -> GuardianRecord {
    GuardianRecord {
        name: name.into(),
        encryption_cert: format!("enc-{name}").into_bytes(),
        signing_cert: format!("sig-{name}").into_bytes(),
        encryption_cert_signature_algorithm: "1.2.840.113549.1.1.11".into(),
        encryption_cert_signature: vec![0, 1, 2, 255],
        metadata: with_keys.then(|| b"<metadata/>".to_vec()),
        sealed_private_keys: with_keys.then(|| vec![9; 64]),
        created: at(7),
    }
}

/// A guardian reads back as added (with or without metadata and private keys), the list is
/// by name, and a removal is reported once.
pub fn guardians_are_kept_by_name(s: &dyn Store) {
    let (owner, other) = (guardian("owner", true), guardian("another", false));
    s.add_guardian(&owner).unwrap();
    s.add_guardian(&other).unwrap();
    assert_eq!(s.guardian("owner").unwrap(), Some(owner.clone()));
    assert_eq!(s.guardian("another").unwrap(), Some(other.clone()));
    assert_eq!(s.guardian("none").unwrap(), None);
    assert_eq!(s.guardians().unwrap(), [other.clone(), owner]);
    assert!(s.remove_guardian("owner").unwrap());
    assert!(!s.remove_guardian("owner").unwrap());
    assert_eq!(s.guardians().unwrap(), [other]);
}

/// Adding a guardian whose name is taken is [`StoreError::AlreadyExists`] and leaves the
/// first as it was.
pub fn a_guardian_name_is_taken_once(s: &dyn Store) {
    let first = guardian("owner", true);
    s.add_guardian(&first).unwrap();
    let err = s.add_guardian(&guardian("owner", false)).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    assert_eq!(s.guardians().unwrap(), [first]);
}
