#![forbid(unsafe_code)]
//! The semantics of `Msvm_SecurityService` and its related classes over a [`Store`].
//!
//! Every entry point takes the [`Caller`], checks the caller's role, does its work, and
//! writes one audit record whatever the outcome. Errors are [`ServiceError`]s; the method's
//! return code for each is decided in one place, [`Method::return_code`]. The service never
//! sees XML other than the embedded instance text it hands to `vmsec-cim`.

pub mod audit;
mod caller;
pub mod classes;
mod codes;
mod error;
mod guardians;
mod jobs;
pub mod key_protector;
pub mod master_key;
mod moving;
pub mod passwords;
pub mod setting_data;
pub mod vtpm;

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;
pub use vmsec_store::Role;
use vmsec_store::{
    AuditOutcome, AuditRecord, HostIdentity, Job, JobDone, JobOwner, KpHistoryEntry, Store, User,
    Vm, VmSecurity,
};

pub use caller::Caller;
pub use codes::{Method, describe};
pub use error::ServiceError;
pub use guardians::{
    CertView, GuardianView, Inspection, PrivateKeyPems, UNTRUSTED_GUARDIAN, WrappingView,
};
pub use jobs::TIME_BEFORE_REMOVAL;
pub use master_key::MasterKey;
pub use vmsec_kp::KeySize;

/// Largest security policy blob SetSecurityPolicy stores.
pub const MAX_POLICY: usize = 64 * 1024;
/// Longest VM friendly name.
pub const MAX_VM_NAME: usize = 256;

/// The security service of one host.
pub struct Service {
    store: Arc<dyn Store>,
    host: HostIdentity,
    owner: JobOwner,
    runner: jobs::JobRunner,
    stopped: AtomicBool,
    master_key: MasterKey,
    /// Credentials already verified, so that HTTP Basic on every request does not cost an
    /// argon2 hash each time: SHA-256(user, password) → the PHC hash they matched. An entry
    /// counts only while the user's stored hash is still that one.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], String>>,
    /// Passwords checked with argon2 so far (for monitoring, and to show what a login cost).
    password_checks: std::sync::atomic::AtomicU64,
}

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

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("host", &self.host)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// What a mutating method returns: the job that carries it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobStarted {
    pub instance_id: String,
}

impl Service {
    /// Starts the service over `store`: marks jobs interrupted by a crash of their process as
    /// failed, drops expired jobs, and starts the job runner.
    pub fn open(store: Arc<dyn Store>, master_key: MasterKey) -> Result<Service, ServiceError> {
        let host = store.host()?;
        let recovered = jobs::recover_interrupted(store.as_ref(), host.guid)?;
        if recovered > 0 {
            tracing::warn!("{recovered} job(s) interrupted by a crash were marked failed");
        }
        store.remove_expired_jobs(OffsetDateTime::now_utc())?;
        Ok(Service {
            owner: jobs::this_process(host.guid),
            runner: jobs::JobRunner::start(store.clone()),
            store,
            host,
            stopped: AtomicBool::new(false),
            verified: Default::default(),
            password_checks: Default::default(),
            master_key,
        })
    }

    pub fn host(&self) -> &HostIdentity {
        &self.host
    }

    /// Stops taking jobs and waits for the queued ones to finish.
    pub fn shutdown(&self) {
        self.runner.shutdown();
    }

    fn audit(
        &self,
        who: &str,
        operation: &str,
        vm: Option<Uuid>,
        outcome: AuditOutcome,
        detail: &str,
    ) {
        let record = AuditRecord {
            seq: 0,
            at: OffsetDateTime::now_utc(),
            actor: who.to_owned(),
            operation: operation.to_owned(),
            vm,
            outcome,
            detail: detail.to_owned(),
        };
        if let Err(e) = self.store.append_audit(&record) {
            tracing::error!(operation, "cannot write the audit log: {e}");
        }
    }

    /// Runs `f` and audits its outcome. `ok` is the outcome recorded on success (`Allowed`
    /// for calls that start a job, whose own completion is audited by the job).
    fn audited<T>(
        &self,
        who: &Caller,
        operation: &str,
        vm: Option<Uuid>,
        ok: AuditOutcome,
        f: impl FnOnce(&Cell<Option<Uuid>>) -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        // The VM is often known only once the argument is parsed; `f` reports it here.
        let vm_cell = Cell::new(vm);
        let out = f(&vm_cell);
        let vm = vm_cell.get();
        match &out {
            Ok(_) => self.audit(&who.name, operation, vm, ok, ""),
            Err(e @ ServiceError::AccessDenied(_)) => self.audit(
                &who.name,
                operation,
                vm,
                AuditOutcome::Denied,
                &e.to_string(),
            ),
            Err(e) => self.audit(
                &who.name,
                operation,
                vm,
                AuditOutcome::Failed,
                &e.to_string(),
            ),
        }
        out
    }

    // ----- users -----

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
                v.insert(digest, u.password_hash.clone());
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

    /// Whether credentials of this digest were verified against the user's current hash.
    fn verified_before(&self, digest: &[u8; 32], user: &User) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .is_some_and(|h| *h == user.password_hash)
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

    /// Jobs by state, for monitoring.
    pub fn job_counts(&self) -> Result<Vec<(vmsec_store::JobState, usize)>, ServiceError> {
        let mut counts = std::collections::HashMap::new();
        for j in self.store.jobs()? {
            *counts.entry(j.state).or_insert(0) += 1;
        }
        let mut out: Vec<_> = counts.into_iter().collect();
        out.sort_by_key(|(s, _)| s.code());
        Ok(out)
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
            |_| {
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
        self.audited(who, "ListUsers", None, AuditOutcome::Succeeded, |_| {
            who.require(Role::Admin, "listing users")?;
            Ok(self.store.users()?)
        })
    }

    pub fn remove_user(&self, who: &Caller, name: &str) -> Result<(), ServiceError> {
        self.audited(
            who,
            &format!("RemoveUser {}", audit::audit_name(name)),
            None,
            AuditOutcome::Succeeded,
            |_| {
                who.require(Role::Admin, "removing a user")?;
                if !self.store.remove_user(name)? {
                    return Err(ServiceError::NotFound(format!("no user {name:?}")));
                }
                Ok(())
            },
        )
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

    /// Gives a user another role, effective from its next request.
    pub fn set_user_role(&self, who: &Caller, name: &str, role: Role) -> Result<(), ServiceError> {
        let operation = format!("SetUserRole {} ({role})", audit::audit_name(name));
        self.change_user(who, &operation, "changing a user's role", name, |u| {
            u.role = role;
            Ok(())
        })
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
        self.audited(who, operation, None, AuditOutcome::Succeeded, |_| {
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

    // ----- VMs -----

    pub fn add_vm(&self, who: &Caller, name: &str, id: Option<Uuid>) -> Result<Vm, ServiceError> {
        let id = id.unwrap_or_else(Uuid::new_v4);
        self.audited(
            who,
            &format!("AddVm {name}"),
            Some(id),
            AuditOutcome::Succeeded,
            |_| {
                who.require(Role::Operator, "adding a VM")?;
                check_vm_name(name)?;
                let vm = Vm {
                    id,
                    name: name.to_owned(),
                    created: OffsetDateTime::now_utc(),
                };
                self.store.add_vm(&vm).map_err(|e| match e {
                    vmsec_store::StoreError::AlreadyExists(m) => {
                        ServiceError::AlreadyExists(format!("{m} already exists"))
                    }
                    e => e.into(),
                })?;
                Ok(vm)
            },
        )
    }

    pub fn vms(&self, who: &Caller) -> Result<Vec<Vm>, ServiceError> {
        who.require(Role::Reader, "listing VMs")?;
        Ok(self.store.vms()?)
    }

    /// Finds a VM by GUID (any common spelling) or by friendly name.
    pub fn find_vm(&self, who: &Caller, name_or_id: &str) -> Result<Vm, ServiceError> {
        who.require(Role::Reader, "reading a VM")?;
        if let Ok(id) = setting_data::parse_instance_id(name_or_id)
            && let Some(vm) = self.store.vm(id)?
        {
            return Ok(vm);
        }
        self.store.vm_by_name(name_or_id)?.ok_or_else(|| {
            ServiceError::UnknownVm(format!("{name_or_id:?} (no VM has this name or GUID)"))
        })
    }

    pub fn remove_vm(&self, who: &Caller, vm: &Vm, force: bool) -> Result<(), ServiceError> {
        self.audited(who, &format!("RemoveVm {}", vm.name), Some(vm.id), AuditOutcome::Succeeded, |_| {
            who.require(Role::Operator, "removing a VM")?;
            let security = self.store.vm_security(vm.id)?;
            if security.key_protector.is_some() && !force {
                return Err(ServiceError::InvalidState(format!(
                    "VM {:?} has a key protector; removing it loses the only way to its vTPM state. \
                     Use --force if that is what you want",
                    vm.name
                )));
            }
            if !self.store.remove_vm(vm.id)? {
                return Err(ServiceError::UnknownVm(vm.id.to_string()));
            }
            Ok(())
        })
    }

    /// The VM's security record: settings, KP, last known good, policy.
    pub fn vm_security(&self, who: &Caller, vm: Uuid) -> Result<VmSecurity, ServiceError> {
        who.require(Role::Reader, "reading a VM's security settings")?;
        self.store
            .vm_security(vm)
            .map_err(|e| not_found_is_unknown_vm(e, vm))
    }

    pub fn kp_history(&self, who: &Caller, vm: Uuid) -> Result<Vec<KpHistoryEntry>, ServiceError> {
        who.require(Role::Reader, "reading a VM's key protector history")?;
        Ok(self.store.kp_history(vm)?)
    }

    // ----- Msvm_SecurityService methods -----

    fn ensure_started(&self) -> Result<(), ServiceError> {
        if self.stopped.load(Ordering::Acquire) {
            Err(ServiceError::ServiceStopped)
        } else {
            Ok(())
        }
    }

    /// Parses the SecuritySettingData argument and names its VM. Whether the VM exists is
    /// answered by the read of its security record that every caller does next.
    fn target(&self, ssd: &str) -> Result<(vmsec_cim::Instance, Uuid), ServiceError> {
        let instance = setting_data::parse(ssd)?;
        let vm = setting_data::vm_id(&instance)?;
        Ok((instance, vm))
    }

    /// GetKeyProtector: the VM's current KP, empty when none is set. Synchronous.
    pub fn get_key_protector(&self, who: &Caller, ssd: &str) -> Result<Vec<u8>, ServiceError> {
        self.audited(
            who,
            Method::GetKeyProtector.name(),
            None,
            AuditOutcome::Succeeded,
            |vm_seen| {
                self.ensure_started()?;
                who.require(Role::Reader, "GetKeyProtector")?;
                let (_, vm) = self.target(ssd)?;
                vm_seen.set(Some(vm));
                let sec = self
                    .store
                    .vm_security(vm)
                    .map_err(|e| not_found_is_unknown_vm(e, vm))?;
                Ok(sec.key_protector.unwrap_or_default())
            },
        )
    }

    /// Starts a job for `method`, in three steps:
    ///
    /// - `precheck`, now: reads the parsed argument against the VM's state (so the caller gets
    ///   the return code at once) and returns what the job needs of it;
    /// - `prepare`, in the job before any transaction: the expensive part (parsing,
    ///   cryptography), whose failure fails the job without the store being written;
    /// - `apply`, inside the job's write transaction: assigns what `prepare` made, checking
    ///   again against the state it really changes. It runs while every other writer of the
    ///   store waits (see [`Store::update_vm_security`]), so it must be bounded work.
    fn submit<P: Send + 'static, R: Send + 'static>(
        &self,
        who: &Caller,
        method: Method,
        ssd: &str,
        precheck: impl FnOnce(&vmsec_cim::Instance, &VmSecurity) -> Result<P, ServiceError>,
        prepare: impl FnOnce(P) -> Result<R, ServiceError> + Send + 'static,
        mut apply: impl FnMut(&mut VmSecurity, &R) -> Result<(), ServiceError> + Send + 'static,
    ) -> Result<JobStarted, ServiceError> {
        self.audited(who, method.name(), None, AuditOutcome::Allowed, |vm_seen| {
            self.ensure_started()?;
            who.require(Role::Operator, method.name())?;
            let (instance, vm) = self.target(ssd)?;
            vm_seen.set(Some(vm));
            let current = self
                .store
                .vm_security(vm)
                .map_err(|e| not_found_is_unknown_vm(e, vm))?;
            let planned = precheck(&instance, &current)?;
            let store = self.store.clone();
            let actor = who.name.clone();
            let work: jobs::Work = Box::new(move |done: &Job| {
                let record = |outcome, detail| AuditRecord {
                    seq: 0,
                    at: OffsetDateTime::now_utc(),
                    actor: actor.clone(),
                    operation: method.name().to_owned(),
                    vm: Some(vm),
                    outcome,
                    detail,
                };
                // Success is audited in the transaction that stores the change; a failure
                // changed nothing, so its record goes the ordinary way.
                let succeeded = record(AuditOutcome::Succeeded, format!("job {}", done.instance_id));
                let out = prepare(planned).and_then(|prepared| {
                    store
                        .update_vm_security(
                            vm,
                            &actor,
                            &mut |sec| {
                                apply(sec, &prepared)
                                    .map_err(|e| Box::new(e) as vmsec_store::Rejection)
                            },
                            Some(JobDone {
                                job: done,
                                audit: &succeeded,
                            }),
                        )
                        .map(|_| ())
                        .map_err(ServiceError::from)
                });
                if let Err(e) = &out {
                    let failed = record(
                        AuditOutcome::Failed,
                        format!("job {}: {e}", done.instance_id),
                    );
                    if let Err(ae) = store.append_audit(&failed) {
                        tracing::error!(job = %done.instance_id, "cannot audit the job's failure: {ae}");
                    }
                }
                out
            });
            let id = self
                .runner
                .submit(method, vm, &who.name, &self.owner, work)?;
            Ok(JobStarted { instance_id: id })
        })
    }

    /// SetKeyProtector: stores a new KP; the previous one goes to history; the last known good
    /// is not changed. The KP is parsed and verified in the job, before its transaction; a bad
    /// one fails the job with 32773.
    pub fn set_key_protector(
        &self,
        who: &Caller,
        ssd: &str,
        kp: Vec<u8>,
    ) -> Result<JobStarted, ServiceError> {
        if kp.len() > key_protector::MAX_KP {
            return self.audited(
                who,
                Method::SetKeyProtector.name(),
                None,
                AuditOutcome::Failed,
                |_| {
                    Err(ServiceError::InvalidKeyProtector(format!(
                        "the key protector is {} bytes, more than the {} allowed",
                        kp.len(),
                        key_protector::MAX_KP
                    )))
                },
            );
        }
        self.submit(
            who,
            Method::SetKeyProtector,
            ssd,
            move |_, _| Ok(kp),
            |kp| {
                key_protector::check(&kp)?;
                Ok(kp)
            },
            |sec, kp| {
                sec.key_protector = Some(kp.clone());
                Ok(())
            },
        )
    }

    /// RestoreLastKnownGoodKeyProtector: the last known good becomes current.
    pub fn restore_last_known_good_key_protector(
        &self,
        who: &Caller,
        ssd: &str,
    ) -> Result<JobStarted, ServiceError> {
        let need_lkg = |sec: &VmSecurity| {
            if sec.last_known_good.is_none() {
                Err(ServiceError::InvalidState(
                    "the VM has no last known good key protector: none has unlocked its vTPM on this host yet"
                        .into(),
                ))
            } else {
                Ok(())
            }
        };
        self.submit(
            who,
            Method::RestoreLastKnownGoodKeyProtector,
            ssd,
            move |_, sec| need_lkg(sec),
            Ok,
            move |sec, _| {
                need_lkg(sec)?;
                sec.key_protector = sec.last_known_good.clone();
                Ok(())
            },
        )
    }

    /// SetSecurityPolicy: stores the policy blob verbatim (see docs/security-policy.md); an
    /// empty blob clears it.
    pub fn set_security_policy(
        &self,
        who: &Caller,
        ssd: &str,
        policy: Vec<u8>,
    ) -> Result<JobStarted, ServiceError> {
        if policy.len() > MAX_POLICY {
            return self.audited(
                who,
                Method::SetSecurityPolicy.name(),
                None,
                AuditOutcome::Failed,
                |_| {
                    Err(ServiceError::InvalidParameter(format!(
                        "the security policy is {} bytes, more than the {MAX_POLICY} allowed",
                        policy.len()
                    )))
                },
            );
        }
        let policy = (!policy.is_empty()).then_some(policy);
        self.submit(
            who,
            Method::SetSecurityPolicy,
            ssd,
            move |_, _| Ok(policy),
            Ok,
            |sec, policy| {
                sec.security_policy.clone_from(policy);
                Ok(())
            },
        )
    }

    /// ModifySecuritySettings: applies the booleans present in the instance, under the rules of
    /// [`setting_data::check_rules`].
    pub fn modify_security_settings(
        &self,
        who: &Caller,
        ssd: &str,
    ) -> Result<JobStarted, ServiceError> {
        self.submit(
            who,
            Method::ModifySecuritySettings,
            ssd,
            |instance, sec| {
                let patch = setting_data::SettingsPatch::of(instance);
                let after = patch.apply(sec.settings);
                setting_data::check_rules(&sec.settings, &after, sec.key_protector.is_some())?;
                Ok(patch)
            },
            Ok,
            |sec, patch| {
                let after = patch.apply(sec.settings);
                setting_data::check_rules(&sec.settings, &after, sec.key_protector.is_some())?;
                sec.settings = after;
                Ok(())
            },
        )
    }

    /// StartService: resumes the methods after StopService.
    pub fn start_service(&self, who: &Caller) -> Result<(), ServiceError> {
        self.audited(
            who,
            Method::StartService.name(),
            None,
            AuditOutcome::Succeeded,
            |_| {
                who.require(Role::Admin, "StartService")?;
                self.stopped.store(false, Ordering::Release);
                Ok(())
            },
        )
    }

    /// StopService: the five methods answer "system not available" until StartService. Reads
    /// of instances go on. Kept in memory: a restart of the server starts the service.
    pub fn stop_service(&self, who: &Caller) -> Result<(), ServiceError> {
        self.audited(
            who,
            Method::StopService.name(),
            None,
            AuditOutcome::Succeeded,
            |_| {
                who.require(Role::Admin, "StopService")?;
                self.stopped.store(true, Ordering::Release);
                Ok(())
            },
        )
    }

    pub fn is_started(&self) -> bool {
        !self.stopped.load(Ordering::Acquire)
    }

    // ----- jobs and audit -----

    pub fn job(&self, who: &Caller, instance_id: &str) -> Result<Job, ServiceError> {
        who.require(Role::Reader, "reading a job")?;
        self.store
            .job(instance_id)?
            .ok_or_else(|| ServiceError::NotFound(format!("no job {instance_id}")))
    }

    pub fn jobs(&self, who: &Caller) -> Result<Vec<Job>, ServiceError> {
        who.require(Role::Reader, "listing jobs")?;
        self.store.remove_expired_jobs(OffsetDateTime::now_utc())?;
        Ok(self.store.jobs()?)
    }

    /// Waits for a job to finish (see [`Job::state`]) at most `timeout`.
    pub fn wait_job(
        &self,
        who: &Caller,
        instance_id: &str,
        timeout: Duration,
    ) -> Result<Job, ServiceError> {
        who.require(Role::Reader, "reading a job")?;
        self.runner.wait(instance_id, timeout)
    }

    pub fn audit_log(
        &self,
        who: &Caller,
        after: i64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, ServiceError> {
        who.require(Role::Admin, "reading the audit log")?;
        Ok(self.store.audit(after, limit)?)
    }

    /// Removes the audit records `retention` no longer keeps, in batches of
    /// [`audit::PRUNE_BATCH`], each with the record of its range (docs/audit.md). Run by
    /// `vmsec serve` now and then; needs no caller, as it only applies the configuration.
    pub fn prune_audit(
        &self,
        retention: &vmsec_store::AuditRetention,
    ) -> Result<Vec<vmsec_store::AuditPruned>, ServiceError> {
        let pruned = self.store.prune_audit(
            retention,
            OffsetDateTime::now_utc(),
            audit::PRUNE_BATCH,
            "vmsec",
        )?;
        if let (Some(first), Some(last)) = (pruned.first(), pruned.last()) {
            tracing::info!(
                "audit log: records {}\u{2013}{} pruned by the retention",
                first.first,
                last.last
            );
        }
        Ok(pruned)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.runner.shutdown();
    }
}

fn not_found_is_unknown_vm(e: vmsec_store::StoreError, vm: Uuid) -> ServiceError {
    match e {
        vmsec_store::StoreError::NotFound(_) => ServiceError::UnknownVm(vm.to_string()),
        e => e.into(),
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

fn check_vm_name(name: &str) -> Result<(), ServiceError> {
    if name.trim().is_empty() || name.len() > MAX_VM_NAME || name.chars().any(char::is_control) {
        return Err(ServiceError::InvalidParameter(format!(
            "VM name {name:?}: use 1 to {MAX_VM_NAME} bytes of printable text"
        )));
    }
    if Uuid::parse_str(name.trim_matches(|c| c == '{' || c == '}')).is_ok() {
        return Err(ServiceError::InvalidParameter(format!(
            "VM name {name:?} is a GUID; a name must not be mistaken for another VM's GUID"
        )));
    }
    Ok(())
}
