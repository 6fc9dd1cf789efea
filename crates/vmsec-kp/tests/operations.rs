//! Whole flows: new, grant, revoke, roll, unwrap, and who may do what.

mod common;

use common::{only, pool};
use vmsec_kp::{Error, KeyEncryption, Protector, SignatureAlgorithm};

#[test]
fn new_makes_the_owner_wrapping_1_and_guardians_children_of_it() {
    let p = pool();
    let kp = Protector::new(&p[0], &[p[1].public(), p[2].public()]).expect("new");
    let ids: Vec<(u32, u32)> = kp.wrappings().iter().map(|w| (w.id, w.parent_id)).collect();
    assert_eq!(ids, vec![(1, 1), (2, 1), (3, 1)]);
    assert_eq!(kp.owner().map(|w| w.id), Some(1));
    assert_eq!(kp.guardian_signature().wrapping_id, 1);
    assert_eq!(
        kp.guardian_signature().signature.algorithm,
        SignatureAlgorithm::RsaSha256
    );
    assert!(
        kp.wrappings()
            .iter()
            .all(|w| w.key_encryption == KeyEncryption::VMSEC)
    );
    assert_eq!(kp.transport_key_signature().kdf.salt.len(), 32);
    assert_eq!(
        kp.transport_key_signature().kdf.info,
        b"vmsec kp transport key signature v1"
    );
    assert_eq!(kp.max_offline_unwraps(), 0);
}

#[test]
fn new_needs_the_owner_private_keys_and_distinct_guardians() {
    let p = pool();
    assert!(matches!(
        Protector::new(&p[0].public(), &[]),
        Err(Error::MissingPrivateKey { .. })
    ));
    assert_eq!(
        Protector::new(&p[0], &[p[1].public(), p[1].public()]),
        Err(Error::AlreadyGranted { wrapping: 2 })
    );
}

#[test]
fn two_protectors_never_share_a_transport_key() {
    let p = pool();
    let a = Protector::new(&p[0], &[]).expect("new");
    let b = Protector::new(&p[0], &[]).expect("new");
    assert_ne!(a.unwrap(only(&p[0])), b.unwrap(only(&p[0])));
}

#[test]
fn serialization_is_deterministic_for_a_parsed_protector() {
    let p = pool();
    let kp = Protector::new(&p[0], &[p[1].public()]).expect("new");
    let again = Protector::parse(kp.as_bytes()).expect("parses");
    assert_eq!(again, kp);
    assert_eq!(again.as_bytes(), kp.as_bytes());
}

#[test]
fn a_stranger_cannot_unwrap() {
    let p = pool();
    let kp = Protector::new(&p[0], &[p[1].public()]).expect("new");
    assert_eq!(kp.unwrap(only(&p[3])), Err(Error::NoMatchingIdentity));
    // Certificates alone are not an identity.
    assert_eq!(
        kp.unwrap(only(&p[1].public())),
        Err(Error::NoMatchingIdentity)
    );
}

#[test]
fn grant_adds_a_guardian_who_then_unwraps_the_same_key() {
    let p = pool();
    let kp = Protector::new(&p[0], &[p[1].public()]).expect("new");
    let tk = kp.unwrap(only(&p[0])).expect("owner");
    let granted = kp.grant(&p[0], &p[2].public()).expect("grant");
    assert_eq!(granted.wrappings().len(), 3);
    assert_eq!(
        granted.wrapping_of(&p[2]).map(|w| (w.id, w.parent_id)),
        Some((3, 1))
    );
    assert_eq!(granted.unwrap(only(&p[2])), Ok(tk.clone()));
    assert_eq!(granted.unwrap(only(&p[1])), Ok(tk));
    assert_eq!(
        granted.grant(&p[0], &p[2].public()),
        Err(Error::AlreadyGranted { wrapping: 3 })
    );
}

#[test]
fn only_the_owner_with_private_keys_may_grant_or_revoke() {
    let p = pool();
    let kp = Protector::new(&p[0], &[p[1].public()]).expect("new");
    assert_eq!(kp.grant(&p[1], &p[2].public()), Err(Error::NotOwner));
    assert_eq!(kp.revoke(&p[1], &p[1].public()), Err(Error::NotOwner));
    assert!(matches!(
        kp.grant(&p[0].public(), &p[2].public()),
        Err(Error::MissingPrivateKey { .. })
    ));
}

#[test]
fn revoke_removes_the_wrapping_but_keeps_the_key_until_the_next_roll() {
    let p = pool();
    let kp = Protector::new(&p[0], &[p[1].public(), p[2].public()]).expect("new");
    let tk = kp.unwrap(only(&p[1])).expect("g1");
    let revoked = kp.revoke(&p[0], &p[1].public()).expect("revoke");
    assert_eq!(revoked.unwrap(only(&p[1])), Err(Error::NoMatchingIdentity));
    assert_eq!(revoked.unwrap(only(&p[2])), Ok(tk.clone()));
    assert_eq!(revoked.revoke(&p[0], &p[1]), Err(Error::NotGranted));
    assert_eq!(revoked.revoke(&p[0], &p[0]), Err(Error::CannotRevokeOwner));
    let rolled = revoked.roll(only(&p[2])).expect("roll");
    assert_eq!(rolled.previous, tk);
    assert_ne!(rolled.current, tk);
}

#[test]
fn roll_by_a_guardian_keeps_certificates_and_signs_with_its_wrapping() {
    let p = pool();
    let kp = Protector::new(&p[0], &[p[1].public(), p[2].public()]).expect("new");
    let rolled = kp.roll(only(&p[2])).expect("roll");
    let new = &rolled.protector;
    assert_eq!(new.guardian_signature().wrapping_id, 3);
    for (old, new) in kp.wrappings().iter().zip(new.wrappings()) {
        assert_eq!(old.id, new.id);
        assert_eq!(old.signing_cert, new.signing_cert);
        assert_eq!(old.encryption_cert, new.encryption_cert);
        assert_eq!(old.signing_cert_signature, new.signing_cert_signature);
        assert_eq!(old.encryption_cert_signature, new.encryption_cert_signature);
        assert_ne!(old.encrypted_key, new.encrypted_key);
    }
    for g in &p[..3] {
        assert_eq!(new.unwrap(only(g)), Ok(rolled.current.clone()));
    }
    assert_eq!(kp.unwrap(only(&p[0])), Ok(rolled.previous));
    // The owner can still administer a protector a guardian rolled.
    new.grant(&p[0], &p[3].public())
        .expect("owner still owns it");
}

#[test]
fn transport_key_debug_and_guardian_debug_hide_secrets() {
    let p = pool();
    let kp = Protector::new(&p[0], &[]).expect("new");
    let rolled = kp.roll(only(&p[0])).expect("roll");
    let shown = format!("{rolled:?}");
    let hex: String = rolled
        .current
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!shown.contains(&hex));
    assert!(!shown.contains(&format!("{:?}", rolled.current.as_bytes())));
    let (enc_pem, _) = p[0].export_private_pkcs8_pem().expect("keys");
    let secret_line = enc_pem.lines().nth(2).unwrap_or_default().to_owned();
    assert!(!format!("{:?}", p[0]).contains(&secret_line));
}
