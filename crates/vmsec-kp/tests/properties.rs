//! Property tests over grant/revoke sequences and rolls. Few cases: every case
//! does RSA work; the guardians come from a pool made once.

mod common;

use std::collections::BTreeSet;

use common::{only, pool};
use proptest::prelude::*;
use vmsec_kp::{Error, Protector};

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn granted_guardians_unwrap_and_revoked_ones_cannot(
        initial in proptest::collection::btree_set(1usize..5, 0..3),
        ops in proptest::collection::vec((any::<bool>(), 1usize..5), 0..5),
    ) {
        let p = pool();
        let start: Vec<_> = initial.iter().map(|&i| p[i].public()).collect();
        let mut kp = Protector::new(&p[0], &start).expect("new");
        let tk = kp.unwrap(only(&p[0])).expect("owner");
        let mut granted: BTreeSet<usize> = initial;
        for (grant, i) in ops {
            if grant {
                let result = kp.grant(&p[0], &p[i].public());
                if granted.insert(i) {
                    kp = result.expect("grant of a new guardian");
                } else {
                    let refused = matches!(result, Err(Error::AlreadyGranted { .. }));
                    prop_assert!(refused, "second grant of guardian {} was not refused", i);
                }
            } else {
                let result = kp.revoke(&p[0], &p[i].public());
                if granted.remove(&i) {
                    kp = result.expect("revoke of a granted guardian");
                } else {
                    prop_assert_eq!(result, Err(Error::NotGranted));
                }
            }
        }
        for (i, g) in p.iter().enumerate().skip(1) {
            if granted.contains(&i) {
                prop_assert_eq!(kp.unwrap(only(g)), Ok(tk.clone()));
            } else {
                prop_assert_eq!(kp.unwrap(only(g)), Err(Error::NoMatchingIdentity));
            }
        }
        prop_assert_eq!(kp.wrappings().len(), granted.len() + 1);
    }

    #[test]
    fn roll_changes_the_key_and_every_guardian_still_unwraps(
        members in proptest::collection::btree_set(1usize..5, 0..4),
        roller_pick in any::<prop::sample::Index>(),
    ) {
        let p = pool();
        let guardians: Vec<_> = members.iter().map(|&i| p[i].public()).collect();
        let kp = Protector::new(&p[0], &guardians).expect("new");
        let everyone: Vec<usize> = std::iter::once(0).chain(members.iter().copied()).collect();
        let roller = everyone[roller_pick.index(everyone.len())];
        let before = kp.unwrap(only(&p[roller])).expect("member unwraps");
        let rolled = kp.roll(only(&p[roller])).expect("rolls");
        prop_assert_eq!(&rolled.previous, &before);
        prop_assert_ne!(&rolled.current, &before);
        for &i in &everyone {
            prop_assert_eq!(rolled.protector.unwrap(only(&p[i])), Ok(rolled.current.clone()));
        }
    }
}
