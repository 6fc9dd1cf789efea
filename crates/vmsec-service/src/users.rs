//! Users: logging in (HTTP Basic against argon2 hashes, with a cache of credentials
//! verified before), the first admin, and the administration of users and roles.

use std::sync::atomic::Ordering;

use time::OffsetDateTime;
use vmsec_store::{AuditOutcome, Role, User};

use crate::{Caller, Service, ServiceError, audit, passwords};

/// Most verified credentials remembered.
const VERIFIED_CACHE_MAX: usize = 1024;

fn credential_digest(user: &str, password: &str) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(&(user.len() as u64).to_be_bytes());
    ctx.update(user.as_bytes());
    ctx.update(password.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Credentials verified once: the PHC hash they matched, and its [`Stamp`].
pub(crate) struct Verified {
    hash: String,
    stamp: Stamp,
}

/// What credentials were verified against: a fingerprint of the user's password hash then.
/// Every new password has a new salt, so a changed password never has the same stamp.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp([u8; 16]);

impl Stamp {
    fn of(password_hash: &str) -> Stamp {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, password_hash.as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&d.as_ref()[..16]);
        Stamp(out)
    }
}

/// Credentials accepted from memory ([`Service::remembered`]): a user name and the stamp of
/// the password it was verified with. No caller until confirmed against the store.
#[derive(Clone, PartialEq, Eq)]
pub struct Remembered {
    pub name: String,
    stamp: Stamp,
}

impl Remembered {
    /// The stamp as a number, for a transport that carries it opaquely (the WS-Man
    /// principal); [`Remembered::from_parts`] takes it back.
    pub fn stamp(&self) -> u128 {
        u128::from_be_bytes(self.stamp.0)
    }

    pub fn from_parts(name: String, stamp: u128) -> Remembered {
        Remembered {
            name,
            stamp: Stamp(stamp.to_be_bytes()),
        }
    }
}

impl std::fmt::Debug for Remembered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remembered")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn check_user_name(name: &str) -> Result<(), ServiceError> {
    let ok = !name.is_empty()
        && name.len() <= audit::MAX_USER_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::InvalidParameter(format!(
            "user name {:?}: use 1 to {} of A-Z a-z 0-9 . _ - @ (a colon would break HTTP Basic)",
            audit::audit_name(name),
            audit::MAX_USER_NAME
        )))
    }
}

impl Service {
    /// Checks HTTP Basic credentials. A failure is audited under the name tried and `source`.
    pub fn authenticate(
        &self,
        user: &str,
        password: &str,
        source: &str,
    ) -> Result<Caller, ServiceError> {
        let denied = |detail: &str| {
            self.audit(
                &audit::audit_name(user),
                "Authenticate",
                None,
                AuditOutcome::Denied,
                &format!("{detail} from {source}"),
            );
            Err(ServiceError::AuthenticationFailed)
        };
        // No user can have a longer name (`user add` refuses it): no lookup, no hash.
        if user.len() > audit::MAX_USER_NAME {
            return denied(&format!(
                "a user name of {} bytes, longer than any user's",
                user.len()
            ));
        }
        let found = self.store.user(user)?;
        let digest = credential_digest(user, password);
        let right = match &found {
            Some(u) if self.verified_before(&digest, u) => true,
            Some(u) => {
                self.password_checks.fetch_add(1, Ordering::Relaxed);
                passwords::verify(password, &u.password_hash)
            }
            // The same work as a wrong password: the answer's time must not say that the
            // name is unknown.
            None => {
                self.password_checks.fetch_add(1, Ordering::Relaxed);
                passwords::verify_nobody(password)
            }
        };
        match found {
            Some(u) if right => {
                let mut v = self.verified.lock().unwrap_or_else(|p| p.into_inner());
                if v.len() >= VERIFIED_CACHE_MAX {
                    v.clear();
                }
                v.insert(
                    digest,
                    Verified {
                        stamp: Stamp::of(&u.password_hash),
                        hash: u.password_hash.clone(),
                    },
                );
                Ok(Caller {
                    name: u.name,
                    role: u.role,
                })
            }
            _ => denied("bad user name or password"),
        }
    }

    /// How many passwords [`Service::authenticate`] has checked with argon2.
    pub fn password_checks(&self) -> u64 {
        self.password_checks.load(Ordering::Relaxed)
    }

    /// The caller these credentials stand for if [`Service::authenticate`] verified them
    /// before and the user's password has not changed since; else `None`, which is no
    /// refusal (`authenticate` decides). One read of the user, no hashing, no audit: quick
    /// enough for the threads that serve connections.
    pub fn authenticate_verified(&self, user: &str, password: &str) -> Option<Caller> {
        if user.len() > audit::MAX_USER_NAME {
            return None;
        }
        let u = self.store.user(user).ok()??;
        let known = self.verified_before(&credential_digest(user, password), &u);
        known.then_some(Caller {
            name: u.name,
            role: u.role,
        })
    }

    /// Credentials [`Service::authenticate`] verified before, accepted from memory without
    /// reading the store; `None` when they were not (which is no refusal: `authenticate`
    /// decides). What is returned stands for nothing until [`Service::confirm`] or
    /// [`Service::instance_confirming`] compares it with the store's user, in the request's
    /// own read. No hashing, no store, no audit.
    pub fn remembered(&self, user: &str, password: &str) -> Option<Remembered> {
        if user.len() > audit::MAX_USER_NAME {
            return None;
        }
        let digest = credential_digest(user, password);
        let v = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        v.get(&digest).map(|known| Remembered {
            name: user.to_owned(),
            stamp: known.stamp,
        })
    }

    /// The caller `r` stands for, if the store's user still has the password `r` was
    /// verified against; else [`ServiceError::AuthenticationFailed`], and `r`'s credentials
    /// are forgotten, so that they get the full check (its rate limit, its audit) from now
    /// on. One point read, no write.
    pub fn confirm(&self, r: &Remembered) -> Result<Caller, ServiceError> {
        let user = self.store.user(&r.name)?;
        self.confirmed(r, user)
    }

    /// [`Service::confirm`] against `user`, the store's record of `r`'s user read with the
    /// rest of a request.
    pub(crate) fn confirmed(
        &self,
        r: &Remembered,
        user: Option<User>,
    ) -> Result<Caller, ServiceError> {
        match user {
            Some(u) if Stamp::of(&u.password_hash) == r.stamp => Ok(Caller {
                name: u.name,
                role: u.role,
            }),
            // Not audited here: this may run on a thread that serves connections, which must
            // not wait for a write. The caller refuses the credentials and checks them in
            // full ([`Service::authenticate`]), which audits its refusal.
            _ => {
                self.verified
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|_, known| known.stamp != r.stamp);
                Err(ServiceError::AuthenticationFailed)
            }
        }
    }

    /// Whether credentials of this digest were verified against the user's current hash.
    fn verified_before(&self, digest: &[u8; 32], user: &User) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .is_some_and(|known| known.hash == user.password_hash)
    }

    /// If the store has no user at all, creates `admin` with a random password and returns
    /// that password (to be shown once).
    pub fn bootstrap_admin(&self) -> Result<Option<String>, ServiceError> {
        if !self.store.users()?.is_empty() {
            return Ok(None);
        }
        let password = passwords::generate()?;
        let user = User {
            name: "admin".into(),
            role: Role::Admin,
            password_hash: passwords::hash(&password)?,
            created: OffsetDateTime::now_utc(),
        };
        match self.store.add_user(&user) {
            Ok(()) => {
                self.audit(
                    "vmsec",
                    "BootstrapAdmin",
                    None,
                    AuditOutcome::Succeeded,
                    "created user admin",
                );
                Ok(Some(password))
            }
            // Another process bootstrapped first.
            Err(vmsec_store::StoreError::AlreadyExists(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The caller a user name stands for now (its current role), for a request whose
    /// credentials were verified; a user removed since is refused.
    pub fn caller(&self, user: &str) -> Result<Caller, ServiceError> {
        self.store
            .user(user)?
            .map(|u| Caller {
                name: u.name,
                role: u.role,
            })
            .ok_or_else(|| ServiceError::AccessDenied(format!("user {user:?} no longer exists")))
    }

    pub fn add_user(
        &self,
        who: &Caller,
        name: &str,
        role: Role,
        password: &str,
    ) -> Result<(), ServiceError> {
        self.audited(
            who,
            &format!("AddUser {} ({role})", audit::audit_name(name)),
            None,
            AuditOutcome::Succeeded,
            || {
                who.require(Role::Admin, "adding a user")?;
                check_user_name(name)?;
                let user = User {
                    name: name.to_owned(),
                    role,
                    password_hash: passwords::hash(password)?,
                    created: OffsetDateTime::now_utc(),
                };
                self.store.add_user(&user).map_err(|e| match e {
                    vmsec_store::StoreError::AlreadyExists(_) => {
                        ServiceError::AlreadyExists(format!("user {name:?} already exists"))
                    }
                    e => e.into(),
                })
            },
        )
    }

    pub fn users(&self, who: &Caller) -> Result<Vec<User>, ServiceError> {
        self.audited(who, "ListUsers", None, AuditOutcome::Succeeded, || {
            who.require(Role::Admin, "listing users")?;
            Ok(self.store.users()?)
        })
    }

    /// Removes a user; the last admin is refused (no one could administer users after it).
    pub fn remove_user(&self, who: &Caller, name: &str) -> Result<(), ServiceError> {
        let operation = format!("RemoveUser {}", audit::audit_name(name));
        let what = "removing a user";
        self.keeping_an_admin(who, &operation, what, name, None, || {
            if !self.store.remove_user(name)? {
                return Err(ServiceError::NotFound(format!("no user {name:?}")));
            }
            Ok(())
        })
    }

    /// Gives a user a new password. Requests authenticated with the old one are refused from
    /// the next on: verified credentials are remembered only with the hash they matched.
    pub fn set_user_password(
        &self,
        who: &Caller,
        name: &str,
        password: &str,
    ) -> Result<(), ServiceError> {
        let operation = format!("SetUserPassword {}", audit::audit_name(name));
        self.change_user(who, &operation, "changing a user's password", name, |u| {
            u.password_hash = passwords::hash(password)?;
            Ok(())
        })
    }

    /// Gives a user another role, effective from its next request; the last admin keeps its
    /// role.
    pub fn set_user_role(&self, who: &Caller, name: &str, role: Role) -> Result<(), ServiceError> {
        let operation = format!("SetUserRole {} ({role})", audit::audit_name(name));
        let what = "changing a user's role";
        self.keeping_an_admin(who, &operation, what, name, Some(role), || {
            self.change_user(who, &operation, what, name, |u| {
                u.role = role;
                Ok(())
            })
        })
    }

    /// Runs `change` of user `name` (its removal, or giving it `new_role`) unless that would
    /// leave no admin, which is refused and audited as denied; `change` audits itself.
    ///
    /// The check and the change are two transactions: two admins removing each other at
    /// the same moment could both pass. The store has no conditional removal to close that.
    fn keeping_an_admin(
        &self,
        who: &Caller,
        operation: &str,
        what: &str,
        name: &str,
        new_role: Option<Role>,
        change: impl FnOnce() -> Result<(), ServiceError>,
    ) -> Result<(), ServiceError> {
        let refusal = who
            .require(Role::Admin, what)
            .and_then(|()| self.last_admin_refusal(name, new_role));
        match refusal {
            Ok(None) => change(),
            Ok(Some(refused)) => {
                self.audit(
                    &who.name,
                    operation,
                    None,
                    AuditOutcome::Denied,
                    &refused.to_string(),
                );
                Err(refused)
            }
            // Not an admin, or the store failed: audited the usual way.
            Err(e) => self.audited(who, operation, None, AuditOutcome::Succeeded, || Err(e)),
        }
    }

    /// The refusal of removing user `name` (`new_role` `None`) or giving it `new_role`, if it
    /// is the only admin.
    fn last_admin_refusal(
        &self,
        name: &str,
        new_role: Option<Role>,
    ) -> Result<Option<ServiceError>, ServiceError> {
        let Some(user) = self.store.user(name)? else {
            return Ok(None);
        };
        if user.role != Role::Admin || new_role == Some(Role::Admin) {
            return Ok(None);
        }
        let admins = self
            .store
            .users()?
            .iter()
            .filter(|u| u.role == Role::Admin)
            .count();
        if admins > 1 {
            return Ok(None);
        }
        let doing = match new_role {
            None => "removing it".to_owned(),
            Some(r) => format!("making it {r}"),
        };
        Ok(Some(ServiceError::InvalidState(format!(
            "refused: {name:?} is the last admin, and {doing} would leave no one to administer \
             users; make another user admin first (vmsec user role NAME admin, or vmsec user \
             add NAME --role admin)"
        ))))
    }

    /// An admin's audited change of an existing user.
    fn change_user(
        &self,
        who: &Caller,
        operation: &str,
        what: &str,
        name: &str,
        change: impl FnOnce(&mut User) -> Result<(), ServiceError>,
    ) -> Result<(), ServiceError> {
        self.audited(who, operation, None, AuditOutcome::Succeeded, || {
            who.require(Role::Admin, what)?;
            let no_user = || ServiceError::NotFound(format!("no user {name:?}"));
            let mut user = self.store.user(name)?.ok_or_else(no_user)?;
            change(&mut user)?;
            // False only if the user was removed between the read and the write.
            if self.store.update_user(&user)? {
                Ok(())
            } else {
                Err(no_user())
            }
        })
    }
}
