//! The methods of `Msvm_SecurityService`: GetKeyProtector, SetKeyProtector,
//! RestoreLastKnownGoodKeyProtector, SetSecurityPolicy, ModifySecuritySettings (each a job
//! but the first), StartService and StopService. Their arguments arrive decoded
//! ([`VmRef`], [`SettingsPatch`]); [`Service::refuse`] answers those the edge could not
//! decode.

use std::sync::atomic::Ordering;

use time::OffsetDateTime;
use uuid::Uuid;
use vmsec_store::{AuditOutcome, AuditRecord, Job, JobDone, VmSecurity};

use crate::{
    Caller, JobStarted, KeyProtectorError, MAX_POLICY, Method, Remembered, Service, ServiceError,
    SettingsPatch, VmRef, jobs, key_protector, not_found_is_unknown_vm, setting_data,
};

/// What GetKeyProtector returns for a VM without a key protector: the 4 bytes Hyper-V
/// returns, since scripts written for it take `KeyProtector.Length -le 4` to mean "none".
/// No stored key protector can be mistaken for it: SetKeyProtector stores only a verified
/// `Protector` document, far longer than 4 bytes.
pub const NO_KEY_PROTECTOR: [u8; 4] = [0, 0, 0, 4];

impl Service {
    fn ensure_started(&self) -> Result<(), ServiceError> {
        if self.stopped.load(Ordering::Acquire) {
            Err(ServiceError::ServiceStopped)
        } else {
            Ok(())
        }
    }

    /// Answers a call of `method` whose arguments the edge could not decode (`bad` says why):
    /// refused for the reason a well-formed call would have been (the service stopped, the
    /// caller's role) if there is one, else for `bad`, and audited like every call.
    pub fn refuse(&self, who: &Caller, method: Method, bad: ServiceError) -> ServiceError {
        let out: Result<(), ServiceError> =
            self.audited(who, method.name(), None, AuditOutcome::Failed, || {
                self.ensure_started()?;
                who.require(method.required_role(), method.name())?;
                Err(bad)
            });
        out.err()
            .unwrap_or_else(|| ServiceError::Internal("a refusal succeeded".into()))
    }

    /// Whether calling `method` now is point reads and an audit append that waits for no
    /// other write: only GetKeyProtector is ever, and only while no write is under way. A
    /// server may then call it on a thread that must not wait. A hint: a write may start in
    /// between, and is then waited for.
    pub fn answers_at_once(&self, method: Method) -> bool {
        method == Method::GetKeyProtector && self.store.audit_would_start_at_once()
    }

    /// GetKeyProtector: the VM's current KP, or [`NO_KEY_PROTECTOR`] when none is set.
    /// Synchronous.
    pub fn get_key_protector(&self, who: &Caller, vm: VmRef) -> Result<Vec<u8>, ServiceError> {
        let vm = vm.id();
        self.answer_get_key_protector(who, vm, || {
            self.store
                .vm_security(vm)
                .map_err(|e| not_found_is_unknown_vm(e, vm))
        })
    }

    /// [`Service::get_key_protector`] for credentials accepted from memory: confirms them
    /// ([`Service::confirm`]) in the read transaction that reads the key protector (one
    /// read, not two: this is the path of a GetKeyProtector on a kept-alive connection).
    /// The outer error is the confirmation's, and nothing is audited for it (as for
    /// [`Service::confirm`]); the inner result is the call's, audited.
    pub fn get_key_protector_confirming(
        &self,
        r: &Remembered,
        vm: VmRef,
    ) -> Result<(Caller, Result<Vec<u8>, ServiceError>), ServiceError> {
        let vm = vm.id();
        let (user, sec) = self.store.user_and_vm_security(&r.name, vm)?;
        let who = self.confirmed(r, user)?;
        let kp = self.answer_get_key_protector(&who, vm, || {
            sec.ok_or_else(|| ServiceError::UnknownVm(vm.into()))
        });
        Ok((who, kp))
    }

    /// GetKeyProtector for a confirmed caller, the VM's record read by `read`, audited.
    fn answer_get_key_protector(
        &self,
        who: &Caller,
        vm: Uuid,
        read: impl FnOnce() -> Result<VmSecurity, ServiceError>,
    ) -> Result<Vec<u8>, ServiceError> {
        self.audited(
            who,
            Method::GetKeyProtector.name(),
            Some(vm),
            AuditOutcome::Succeeded,
            || {
                self.ensure_started()?;
                who.require(Method::GetKeyProtector.required_role(), "GetKeyProtector")?;
                Ok(read()?
                    .key_protector
                    .unwrap_or_else(|| NO_KEY_PROTECTOR.to_vec()))
            },
        )
    }

    /// Starts a job for `method`, in three steps:
    ///
    /// - `precheck`, now: reads the arguments against the VM's state (so the caller gets the
    ///   return code at once) and returns what the job needs of them;
    /// - `prepare`, in the job before any transaction: the expensive part (parsing,
    ///   cryptography), whose failure fails the job without the store being written;
    /// - `apply`, inside the job's write transaction: assigns what `prepare` made, checking
    ///   again against the state it really changes. It runs while every other writer of the
    ///   store waits (see [`Store::update_vm_security`]), so it must be bounded work.
    fn submit<P: Send + 'static, R: Send + 'static>(
        &self,
        who: &Caller,
        method: Method,
        vm: VmRef,
        precheck: impl FnOnce(&VmSecurity) -> Result<P, ServiceError>,
        prepare: impl FnOnce(P) -> Result<R, ServiceError> + Send + 'static,
        mut apply: impl FnMut(&mut VmSecurity, &R) -> Result<(), ServiceError> + Send + 'static,
    ) -> Result<JobStarted, ServiceError> {
        let vm = vm.id();
        self.audited(who, method.name(), Some(vm), AuditOutcome::Allowed, || {
            self.ensure_started()?;
            who.require(method.required_role(), method.name())?;
            let current = self
                .store
                .vm_security(vm)
                .map_err(|e| not_found_is_unknown_vm(e, vm))?;
            let planned = precheck(&current)?;
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
        vm: VmRef,
        kp: Vec<u8>,
    ) -> Result<JobStarted, ServiceError> {
        if kp.len() > key_protector::MAX_KP {
            return self.audited(
                who,
                Method::SetKeyProtector.name(),
                Some(vm.id()),
                AuditOutcome::Failed,
                || {
                    Err(KeyProtectorError::TooLarge {
                        size: kp.len(),
                        limit: key_protector::MAX_KP,
                    }
                    .into())
                },
            );
        }
        self.submit(
            who,
            Method::SetKeyProtector,
            vm,
            move |_| Ok(kp),
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
        vm: VmRef,
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
            vm,
            need_lkg,
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
        vm: VmRef,
        policy: Vec<u8>,
    ) -> Result<JobStarted, ServiceError> {
        if policy.len() > MAX_POLICY {
            return self.audited(
                who,
                Method::SetSecurityPolicy.name(),
                Some(vm.id()),
                AuditOutcome::Failed,
                || {
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
            vm,
            move |_| Ok(policy),
            Ok,
            |sec, policy| {
                sec.security_policy.clone_from(policy);
                Ok(())
            },
        )
    }

    /// ModifySecuritySettings: applies the settings `patch` names, under the rules of
    /// [`setting_data::check_rules`].
    pub fn modify_security_settings(
        &self,
        who: &Caller,
        vm: VmRef,
        patch: SettingsPatch,
    ) -> Result<JobStarted, ServiceError> {
        self.submit(
            who,
            Method::ModifySecuritySettings,
            vm,
            |sec| {
                let after = patch.apply(sec.settings);
                setting_data::check_rules(&sec.settings, &after, sec.key_protector.is_some())?;
                if sec.settings.tpm_enabled && !after.tpm_enabled {
                    self.refuse_if_vtpm_runs(vm)?;
                }
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

    /// TpmEnabled may not go off under a running vTPM: swtpm would go on serving a VM the
    /// store says has none.
    fn refuse_if_vtpm_runs(&self, vm: VmRef) -> Result<(), ServiceError> {
        let Some(root) = self.vtpm_root.get() else {
            return Ok(());
        };
        let location = crate::vtpm::VtpmLocation::of(root, vm.id());
        match vmsec_tpm::status(&location.paths) {
            Ok(vmsec_tpm::Status::Running { pid, .. }) => Err(ServiceError::InvalidState(format!(
                "the vTPM of VM {vm} is running (pid {pid}); stop it first (`vmsec tpm stop`), then turn the TPM off"
            ))),
            _ => Ok(()),
        }
    }

    /// StartService: resumes the methods after StopService.
    pub fn start_service(&self, who: &Caller) -> Result<(), ServiceError> {
        self.audited(
            who,
            Method::StartService.name(),
            None,
            AuditOutcome::Succeeded,
            || {
                who.require(Method::StartService.required_role(), "StartService")?;
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
            || {
                who.require(Method::StopService.required_role(), "StopService")?;
                self.stopped.store(true, Ordering::Release);
                Ok(())
            },
        )
    }

    pub fn is_started(&self) -> bool {
        !self.stopped.load(Ordering::Acquire)
    }
}
