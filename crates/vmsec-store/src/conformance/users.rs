//! Users.

use super::at;
use crate::*;

fn user(name: &str, role: Role, created: i64) -> User {
    User {
        name: name.into(),
        role,
        password_hash: format!("$argon2id$hash-of-{name}"),
        created: at(created),
    }
}

fn names(users: Vec<User>) -> Vec<String> {
    users.into_iter().map(|u| u.name).collect()
}

/// A user reads back as added, the list is by name, an update sets the role and the hash
/// but keeps the creation time and creates no one, and a removal is reported once.
pub fn users_are_kept_by_name(s: &dyn Store) {
    let bob = user("bob", Role::Reader, 1);
    let alice = user("alice", Role::Admin, 2);
    s.add_user(&bob).unwrap();
    s.add_user(&alice).unwrap();
    assert_eq!(s.user("bob").unwrap(), Some(bob.clone()));
    assert_eq!(s.user("carol").unwrap(), None);
    assert_eq!(names(s.users().unwrap()), ["alice", "bob"]);

    let changed = User {
        role: Role::Operator,
        password_hash: "$argon2id$new".into(),
        created: at(99),
        ..bob.clone()
    };
    assert!(s.update_user(&changed).unwrap());
    let stored = s.user("bob").unwrap().unwrap();
    assert_eq!(
        (stored.role, stored.password_hash.as_str()),
        (Role::Operator, "$argon2id$new")
    );
    assert_eq!(stored.created, bob.created, "the creation time stays");
    assert!(!s.update_user(&user("carol", Role::Admin, 3)).unwrap());
    assert_eq!(s.user("carol").unwrap(), None, "an update creates no one");

    assert!(s.remove_user("bob").unwrap());
    assert!(!s.remove_user("bob").unwrap());
    assert_eq!(names(s.users().unwrap()), ["alice"]);
}

/// Adding a user whose name is taken is [`StoreError::AlreadyExists`] and leaves the first
/// as it was.
pub fn a_user_name_is_taken_once(s: &dyn Store) {
    let first = user("alice", Role::Reader, 1);
    s.add_user(&first).unwrap();
    let err = s.add_user(&user("alice", Role::Admin, 2)).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    assert_eq!(s.users().unwrap(), [first]);
}
