//! Msvm_SecurityService methods: each one's success and each of its documented errors,
//! checked through the return code a client would see.

mod support;

use std::time::Duration;

use support::*;
use uuid::Uuid;
use vmsec_cim::schema::ServedClass;
use vmsec_cim::{Instance, Value};
use vmsec_service::{Method, ServiceError};
use vmsec_store::{AuditOutcome, JobState, Role, Store};

fn code(method: Method, r: Result<impl std::fmt::Debug, ServiceError>) -> u32 {
    method.return_code(&r.expect_err("expected the call to fail"))
}

// ----- GetKeyProtector -----

#[test]
fn get_key_protector_of_a_vm_without_one_is_hyper_vs_four_bytes() {
    let w = world();
    let vm = w.vm("a");
    let got = w
        .service
        .get_key_protector(&caller(Role::Reader), vm.id.into())
        .unwrap();
    assert_eq!(got, [0, 0, 0, 4]);
    assert_eq!(got, vmsec_service::NO_KEY_PROTECTOR);
}

#[test]
fn get_key_protector_returns_the_bytes_set() {
    let w = world();
    let vm = w.vm("a");
    assert_eq!(w.set_kp(&vm, kp(1)).state, JobState::Completed);
    assert_eq!(
        w.service
            .get_key_protector(&caller(Role::Reader), vm.id.into())
            .unwrap(),
        kp(1)
    );
}

#[test]
fn only_get_key_protector_may_be_answered_by_a_thread_that_must_not_wait() {
    let w = world();
    assert!(w.service.answers_at_once(Method::GetKeyProtector));
    for m in [
        Method::SetKeyProtector,
        Method::RestoreLastKnownGoodKeyProtector,
        Method::SetSecurityPolicy,
        Method::ModifySecuritySettings,
    ] {
        assert!(!w.service.answers_at_once(m), "{m:?}");
    }
}

#[test]
fn get_key_protector_of_an_unknown_vm_is_invalid_parameter() {
    let w = world();
    let r = w.service.get_key_protector(&admin(), Uuid::new_v4().into());
    assert!(matches!(r, Err(ServiceError::UnknownVm(_))));
    assert_eq!(code(Method::GetKeyProtector, r), 32773);
}

// ----- SetKeyProtector -----

#[test]
fn set_key_protector_starts_a_job_that_stores_it_and_keeps_the_previous_in_history() {
    let w = world();
    let vm = w.vm("a");
    w.set_kp(&vm, kp(1));
    w.mark_current_known_good(&vm);
    let job = w.set_kp(&vm, kp(2));
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.percent_complete, 100);
    assert_eq!(job.method, "SetKeyProtector");
    let sec = w.store.vm_security(vm.id).unwrap();
    assert_eq!(sec.key_protector, Some(kp(2)));
    assert_eq!(
        sec.last_known_good,
        Some(kp(1)),
        "SetKeyProtector must not change the last known good"
    );
    let history = w.store.kp_history(vm.id).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].key_protector, kp(1));
    assert_eq!(history[0].replaced.by, "test-admin");
}

#[test]
fn set_key_protector_with_a_bad_kp_fails_its_job_with_invalid_parameter_and_says_why() {
    let w = world();
    let vm = w.vm("a");
    let job = w.set_kp(&vm, b"<Protector xmlns=\"urn:wrong\"/>".to_vec());
    assert_eq!(job.state, JobState::Exception);
    assert_eq!(job.error_code, 32773);
    assert!(
        job.error_description.contains("namespace"),
        "{}",
        job.error_description
    );
    assert_eq!(w.store.vm_security(vm.id).unwrap().key_protector, None);
}

#[test]
fn set_key_protector_by_a_reader_is_access_denied_and_changes_nothing() {
    let w = world();
    let vm = w.vm("a");
    let r = w
        .service
        .set_key_protector(&caller(Role::Reader), vm.id.into(), kp(1));
    assert_eq!(code(Method::SetKeyProtector, r), 32769);
    assert_eq!(w.store.vm_security(vm.id).unwrap().key_protector, None);
    assert!(
        w.store.jobs().unwrap().is_empty(),
        "a refused call starts no job"
    );
}

#[test]
fn set_key_protector_by_an_operator_is_allowed() {
    let w = world();
    let vm = w.vm("a");
    let started = w
        .service
        .set_key_protector(&caller(Role::Operator), vm.id.into(), kp(1))
        .unwrap();
    assert_eq!(w.wait(started).state, JobState::Completed);
}

#[test]
fn set_key_protector_larger_than_the_limit_is_refused_at_once() {
    let w = world();
    let vm = w.vm("a");
    let big = vec![b' '; vmsec_service::key_protector::MAX_KP + 1];
    let r = w.service.set_key_protector(&admin(), vm.id.into(), big);
    assert_eq!(code(Method::SetKeyProtector, r), 32773);
}

#[test]
fn set_key_protector_of_an_unknown_vm_is_invalid_parameter() {
    let w = world();
    let r = w
        .service
        .set_key_protector(&admin(), Uuid::new_v4().into(), kp(1));
    assert_eq!(code(Method::SetKeyProtector, r), 32773);
}

// ----- RestoreLastKnownGoodKeyProtector -----

#[test]
fn restore_without_a_last_known_good_is_invalid_state() {
    let w = world();
    let vm = w.vm("a");
    w.set_kp(&vm, kp(1));
    let r = w
        .service
        .restore_last_known_good_key_protector(&admin(), vm.id.into());
    assert_eq!(code(Method::RestoreLastKnownGoodKeyProtector, r), 32775);
}

#[test]
fn restore_makes_the_last_known_good_current_and_keeps_the_replaced_one() {
    let w = world();
    let vm = w.vm("a");
    w.set_kp(&vm, kp(1));
    w.mark_current_known_good(&vm);
    w.set_kp(&vm, kp(2));
    let started = w
        .service
        .restore_last_known_good_key_protector(&admin(), vm.id.into())
        .unwrap();
    assert_eq!(w.wait(started).state, JobState::Completed);
    let sec = w.store.vm_security(vm.id).unwrap();
    assert_eq!(sec.key_protector, Some(kp(1)));
    assert_eq!(sec.last_known_good, Some(kp(1)));
    assert_eq!(w.store.kp_history(vm.id).unwrap()[0].key_protector, kp(2));
}

#[test]
fn restore_by_a_reader_is_access_denied() {
    let w = world();
    let vm = w.vm("a");
    let r = w
        .service
        .restore_last_known_good_key_protector(&caller(Role::Reader), vm.id.into());
    assert_eq!(code(Method::RestoreLastKnownGoodKeyProtector, r), 32769);
}

// ----- SetSecurityPolicy -----

#[test]
fn set_security_policy_stores_the_blob_verbatim_and_an_empty_one_clears_it() {
    let w = world();
    let vm = w.vm("a");
    let blob = vec![0u8, 1, 2, 255, b'<', b'&'];
    let s = w
        .service
        .set_security_policy(&admin(), vm.id.into(), blob.clone())
        .unwrap();
    assert_eq!(w.wait(s).state, JobState::Completed);
    assert_eq!(
        w.store.vm_security(vm.id).unwrap().security_policy,
        Some(blob)
    );
    let s = w
        .service
        .set_security_policy(&admin(), vm.id.into(), vec![])
        .unwrap();
    assert_eq!(w.wait(s).state, JobState::Completed);
    assert_eq!(w.store.vm_security(vm.id).unwrap().security_policy, None);
}

#[test]
fn set_security_policy_over_the_limit_is_invalid_parameter() {
    let w = world();
    let vm = w.vm("a");
    let r = w.service.set_security_policy(
        &admin(),
        vm.id.into(),
        vec![0; vmsec_service::MAX_POLICY + 1],
    );
    assert_eq!(code(Method::SetSecurityPolicy, r), 32773);
}

#[test]
fn set_security_policy_by_a_reader_is_access_denied() {
    let w = world();
    let vm = w.vm("a");
    let r = w
        .service
        .set_security_policy(&caller(Role::Reader), vm.id.into(), vec![1]);
    assert_eq!(code(Method::SetSecurityPolicy, r), 32769);
}

// ----- ModifySecuritySettings -----

#[test]
fn modify_applies_the_booleans_present_and_leaves_the_others() {
    let w = world();
    let vm = w.vm("a");
    w.set_kp(&vm, kp(1));
    let both = patch(&[(Setting::TpmEnabled, true), (Setting::KsdEnabled, true)]);
    let s = w
        .service
        .modify_security_settings(&caller(Role::Operator), vm.id.into(), both)
        .unwrap();
    assert_eq!(w.wait(s).state, JobState::Completed);
    let settings = w.store.vm_security(vm.id).unwrap().settings;
    assert!(settings.tpm_enabled && settings.ksd_enabled);
    assert!(!settings.shielding_requested && !settings.data_protection_requested);

    let ksd_off = patch(&[(Setting::KsdEnabled, false)]);
    let s = w
        .service
        .modify_security_settings(&admin(), vm.id.into(), ksd_off)
        .unwrap();
    assert_eq!(w.wait(s).state, JobState::Completed);
    let settings = w.store.vm_security(vm.id).unwrap().settings;
    assert!(settings.tpm_enabled && !settings.ksd_enabled);
}

#[test]
fn modify_turning_tpm_on_without_a_key_protector_is_invalid_state_5() {
    let w = world();
    let vm = w.vm("a");
    let r = w.service.modify_security_settings(
        &admin(),
        vm.id.into(),
        patch(&[(Setting::TpmEnabled, true)]),
    );
    assert_eq!(code(Method::ModifySecuritySettings, r), 5);
    let r = w.service.modify_security_settings(
        &admin(),
        vm.id.into(),
        patch(&[(Setting::ShieldingRequested, true)]),
    );
    assert!(matches!(code(Method::ModifySecuritySettings, r), 5 | 6));
    assert!(!w.store.vm_security(vm.id).unwrap().settings.tpm_enabled);
}

#[test]
fn modify_shielding_without_tpm_is_incompatible_parameters_6() {
    let w = world();
    let vm = w.vm("a");
    w.set_kp(&vm, kp(1));
    let r = w.service.modify_security_settings(
        &admin(),
        vm.id.into(),
        patch(&[
            (Setting::ShieldingRequested, true),
            (Setting::EncryptStateAndVmMigrationTraffic, true),
        ]),
    );
    assert_eq!(code(Method::ModifySecuritySettings, r), 6);
}

#[test]
fn modify_full_shielding_with_tpm_kp_and_encryption_is_accepted() {
    let w = world();
    let vm = w.vm("a");
    w.set_kp(&vm, kp(1));
    let shielded = patch(&[
        (Setting::TpmEnabled, true),
        (Setting::ShieldingRequested, true),
        (Setting::EncryptStateAndVmMigrationTraffic, true),
    ]);
    let s = w
        .service
        .modify_security_settings(&admin(), vm.id.into(), shielded)
        .unwrap();
    assert_eq!(w.wait(s).state, JobState::Completed);
    assert!(
        w.store
            .vm_security(vm.id)
            .unwrap()
            .settings
            .shielding_requested
    );
}

#[test]
fn modify_bind_to_host_tpm_is_not_supported_1() {
    let w = world();
    let vm = w.vm("a");
    let r = w.service.modify_security_settings(
        &admin(),
        vm.id.into(),
        patch(&[(Setting::BindToHostTpm, true)]),
    );
    assert_eq!(code(Method::ModifySecuritySettings, r), 1);
}

#[test]
fn modify_of_an_unknown_vm_is_invalid_parameter_4() {
    let w = world();
    let r = w.service.modify_security_settings(
        &admin(),
        Uuid::new_v4().into(),
        patch(&[(Setting::KsdEnabled, true)]),
    );
    assert!(matches!(&r, Err(ServiceError::UnknownVm(_))));
    assert_eq!(code(Method::ModifySecuritySettings, r), 4);
}

#[test]
fn modify_by_a_reader_fails_with_2() {
    let w = world();
    let vm = w.vm("a");
    let r = w.service.modify_security_settings(
        &caller(Role::Reader),
        vm.id.into(),
        patch(&[(Setting::KsdEnabled, true)]),
    );
    assert!(matches!(&r, Err(ServiceError::AccessDenied(_))));
    assert_eq!(code(Method::ModifySecuritySettings, r), 2);
}

// ----- StartService / StopService -----

#[test]
fn stop_service_makes_methods_unavailable_until_start_service() {
    let w = world();
    let vm = w.vm("a");
    w.service.stop_service(&admin()).unwrap();
    assert!(!w.service.is_started());
    let r = w.service.get_key_protector(&admin(), vm.id.into());
    assert_eq!(code(Method::GetKeyProtector, r), 32777);
    let r = w.service.set_key_protector(&admin(), vm.id.into(), kp(1));
    assert_eq!(code(Method::SetKeyProtector, r), 32777);
    w.service.start_service(&admin()).unwrap();
    assert!(w.service.get_key_protector(&admin(), vm.id.into()).is_ok());
}

#[test]
fn only_admins_start_and_stop_the_service() {
    let w = world();
    let r = w.service.stop_service(&caller(Role::Operator));
    assert!(matches!(r, Err(ServiceError::AccessDenied(_))));
    assert!(w.service.is_started());
}

// ----- audit -----

#[test]
fn every_call_allowed_or_refused_is_audited_with_its_vm() {
    let w = world();
    let vm = w.vm("a");
    let before = w.store.audit(0, 1000).unwrap().len();
    w.service
        .get_key_protector(&caller(Role::Reader), vm.id.into())
        .unwrap();
    let _ = w
        .service
        .set_key_protector(&caller(Role::Reader), vm.id.into(), kp(1));
    w.set_kp(&vm, kp(2));
    let log = w.store.audit(0, 1000).unwrap();
    let new: Vec<_> = log[before..].iter().collect();
    assert!(new.iter().any(|r| r.operation == "GetKeyProtector"
        && r.outcome == AuditOutcome::Succeeded
        && r.vm == Some(vm.id)
        && r.actor == "test-reader"));
    assert!(
        new.iter()
            .any(|r| r.operation == "SetKeyProtector" && r.outcome == AuditOutcome::Denied)
    );
    assert!(new.iter().any(|r| r.operation == "SetKeyProtector"
        && r.outcome == AuditOutcome::Succeeded
        && r.detail.starts_with("job ")));
    for w in log.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "the audit log has no gaps");
    }
    let text = format!("{log:?}");
    assert!(
        !text.contains("Protector xmlns"),
        "key protectors never reach the audit log"
    );
}

#[test]
fn failed_logins_are_audited_and_good_ones_give_the_users_role() {
    let w = world();
    w.service
        .add_user(&admin(), "ops", Role::Operator, "a long password")
        .unwrap();
    let c = w
        .service
        .authenticate("ops", "a long password", "127.0.0.1")
        .unwrap();
    assert_eq!(c.role, Role::Operator);
    assert!(matches!(
        w.service.authenticate("ops", "wrong password", "127.0.0.1"),
        Err(ServiceError::AuthenticationFailed)
    ));
    assert!(matches!(
        w.service.authenticate("nobody", "x", "127.0.0.1"),
        Err(ServiceError::AuthenticationFailed)
    ));
    let log = w.store.audit(0, 1000).unwrap();
    assert_eq!(
        log.iter()
            .filter(|r| r.operation == "Authenticate" && r.outcome == AuditOutcome::Denied)
            .count(),
        2
    );
    assert!(
        !format!("{log:?}").contains("wrong password"),
        "passwords never reach the audit log"
    );
}

#[test]
fn an_unknown_user_costs_the_same_password_check_as_a_known_user_with_a_wrong_password() {
    let w = world();
    w.service
        .add_user(&admin(), "ops", Role::Operator, "a long password")
        .unwrap();
    let before = w.service.password_checks();
    let _ = w
        .service
        .authenticate("ops", "a wrong password", "127.0.0.1");
    let known = w.service.password_checks() - before;
    let _ = w
        .service
        .authenticate("no-such-user", "a wrong password", "127.0.0.1");
    let unknown = w.service.password_checks() - before - known;
    assert_eq!(known, 1);
    assert_eq!(unknown, known, "an unknown name is hashed like a known one");
    // Credentials verified before are not hashed again.
    w.service
        .authenticate("ops", "a long password", "127.0.0.1")
        .unwrap();
    let after_login = w.service.password_checks();
    w.service
        .authenticate("ops", "a long password", "127.0.0.1")
        .unwrap();
    assert_eq!(w.service.password_checks(), after_login);
}

#[test]
fn an_overlong_user_name_is_refused_without_hashing_and_recorded_truncated() {
    let w = world();
    let name = format!(
        "{}\n2026-12-01 admin StopService Succeeded",
        "x".repeat(300_000)
    );
    let before = w.service.password_checks();
    assert!(matches!(
        w.service
            .authenticate(&name, "a long password", "192.0.2.7"),
        Err(ServiceError::AuthenticationFailed)
    ));
    assert_eq!(
        w.service.password_checks(),
        before,
        "no password was hashed"
    );
    let log = w.store.audit(0, 1000).unwrap();
    let denied = log
        .iter()
        .find(|r| r.operation == "Authenticate" && r.outcome == AuditOutcome::Denied)
        .expect("the attempt is audited");
    assert!(
        denied.actor.len() < 200,
        "{} bytes recorded",
        denied.actor.len()
    );
    assert!(
        denied
            .actor
            .contains(&format!("[truncated: {} bytes]", name.len()))
    );
    assert!(denied.detail.contains("192.0.2.7"));
}

#[test]
fn credentials_from_memory_stand_for_a_caller_only_as_the_store_confirms_them() {
    let w = world();
    let vm = w.vm("a");
    w.service
        .add_user(&admin(), "ops", Role::Reader, "the old password")
        .unwrap();
    assert!(
        w.service.remembered("ops", "the old password").is_none(),
        "nothing is remembered before a full check"
    );
    w.service
        .authenticate("ops", "the old password", "127.0.0.1")
        .unwrap();
    let r = w.service.remembered("ops", "the old password").unwrap();
    assert!(w.service.remembered("ops", "another password").is_none());
    assert!(!format!("{r:?}").contains("password"), "{r:?}");

    // A Get of a per-VM class confirms the caller in the read of the VM, and answers as
    // for a caller checked the slow way.
    let keys = [(
        "InstanceID".to_string(),
        format!("Microsoft:{}", vm.id.to_string().to_uppercase()),
    )];
    let class = ServedClass::SecuritySettingData;
    let (who, found) = w
        .service
        .instance_confirming(&r, class, &keys, &w.hgs())
        .unwrap();
    assert_eq!(who.role, Role::Reader);
    let slow = w.service.instance(&who, class, &keys, &w.hgs()).unwrap();
    assert!(found.is_some());
    assert_eq!(found, slow);
    // A class not read from a VM's summary is confirmed by a read of its own.
    let (_, service) = w
        .service
        .instance_confirming(&r, ServedClass::SecurityService, &[], &w.hgs())
        .unwrap();
    assert!(service.is_some());
    // GetKeyProtector confirms the caller in the read of the key protector, and answers
    // and audits as for a caller checked the slow way; an unknown VM is the call's
    // failure, audited, not the confirmation's.
    assert_eq!(w.set_kp(&vm, kp(1)).state, JobState::Completed);
    let last = || w.store.audit(0, 1000).unwrap().pop().unwrap();
    let (who, got) = w
        .service
        .get_key_protector_confirming(&r, vm.id.into())
        .unwrap();
    assert_eq!(who.role, Role::Reader);
    assert_eq!(got.unwrap(), kp(1));
    let record = last();
    assert_eq!(
        (record.operation.as_str(), record.actor.as_str(), record.vm),
        ("GetKeyProtector", "ops", Some(vm.id))
    );
    assert_eq!(record.outcome, AuditOutcome::Succeeded);
    let unknown = Uuid::new_v4();
    let (_, got) = w
        .service
        .get_key_protector_confirming(&r, unknown.into())
        .unwrap();
    assert!(matches!(got, Err(ServiceError::UnknownVm(_))), "{got:?}");
    let record = last();
    assert_eq!(
        (record.vm, record.outcome),
        (Some(unknown), AuditOutcome::Failed)
    );

    // The role is the store's at each confirmation, not the one remembered.
    w.service
        .set_user_role(&admin(), "ops", Role::Operator)
        .unwrap();
    assert_eq!(w.service.confirm(&r).unwrap().role, Role::Operator);

    // A new password: the remembered credentials are refused with no write (a thread that
    // serves connections may be asking) and forgotten, so that they get the full check,
    // which audits its refusal.
    w.service
        .set_user_password(&admin(), "ops", "the new password")
        .unwrap();
    let audited = || w.store.audit(0, 1000).unwrap().len();
    let before = audited();
    assert!(matches!(
        w.service.instance_confirming(&r, class, &keys, &w.hgs()),
        Err(ServiceError::AuthenticationFailed)
    ));
    assert!(matches!(
        w.service.get_key_protector_confirming(&r, vm.id.into()),
        Err(ServiceError::AuthenticationFailed)
    ));
    assert!(matches!(
        w.service.confirm(&r),
        Err(ServiceError::AuthenticationFailed)
    ));
    assert_eq!(audited(), before);
    assert!(w.service.remembered("ops", "the old password").is_none());
    // A removed user is refused the same way.
    w.service
        .authenticate("ops", "the new password", "127.0.0.1")
        .unwrap();
    let r = w.service.remembered("ops", "the new password").unwrap();
    w.service.remove_user(&admin(), "ops").unwrap();
    assert!(matches!(
        w.service.confirm(&r),
        Err(ServiceError::AuthenticationFailed)
    ));
}

#[test]
fn a_new_password_replaces_the_old_at_once_and_a_new_role_applies_to_the_next_login() {
    let w = world();
    w.service
        .add_user(&admin(), "ops", Role::Reader, "the old password")
        .unwrap();
    // Verified once, so the old credentials are in the verification cache.
    w.service
        .authenticate("ops", "the old password", "127.0.0.1")
        .unwrap();
    w.service
        .set_user_password(&admin(), "ops", "the new password")
        .unwrap();
    assert!(matches!(
        w.service
            .authenticate("ops", "the old password", "127.0.0.1"),
        Err(ServiceError::AuthenticationFailed)
    ));
    let c = w
        .service
        .authenticate("ops", "the new password", "127.0.0.1")
        .unwrap();
    assert_eq!(c.role, Role::Reader);

    w.service
        .set_user_role(&admin(), "ops", Role::Operator)
        .unwrap();
    let c = w
        .service
        .authenticate("ops", "the new password", "127.0.0.1")
        .unwrap();
    assert_eq!(c.role, Role::Operator, "the role is read at every login");

    assert!(matches!(
        w.service
            .set_user_password(&caller(Role::Operator), "ops", "mine now"),
        Err(ServiceError::AccessDenied(_))
    ));
    assert!(matches!(
        w.service.set_user_role(&admin(), "nobody", Role::Admin),
        Err(ServiceError::NotFound(_))
    ));
    let log = w.store.audit(0, 1000).unwrap();
    assert!(
        log.iter()
            .any(|r| r.operation == "SetUserPassword ops" && r.outcome == AuditOutcome::Succeeded)
    );
    assert!(
        log.iter()
            .any(|r| r.operation == "SetUserPassword ops" && r.outcome == AuditOutcome::Denied)
    );
    let text = format!("{log:?}");
    assert!(
        !text.contains("the new password") && !text.contains("mine now"),
        "passwords never reach the audit log"
    );
}

#[test]
fn the_last_admin_can_be_neither_removed_nor_demoted_and_the_refusal_is_audited() {
    let w = world();
    w.service
        .add_user(&admin(), "root", Role::Admin, "a long admin password")
        .unwrap();
    w.service
        .add_user(&admin(), "ops", Role::Operator, "a long operator password")
        .unwrap();
    let refused = |r: Result<(), ServiceError>| match r {
        Err(ServiceError::InvalidState(m)) => m,
        other => panic!("expected the last admin to be kept, got {other:?}"),
    };
    let m = refused(w.service.remove_user(&admin(), "root"));
    assert!(
        m.contains("last admin") && m.contains("user role NAME admin"),
        "the message names the fix: {m}"
    );
    let m = refused(w.service.set_user_role(&admin(), "root", Role::Operator));
    assert!(m.contains("making it operator"), "{m}");
    // Giving the last admin its own role again changes nothing and is allowed.
    w.service
        .set_user_role(&admin(), "root", Role::Admin)
        .unwrap();
    assert_eq!(w.store.user("root").unwrap().unwrap().role, Role::Admin);
    // A non-admin is told it may not, before anything about admins.
    assert!(matches!(
        w.service.remove_user(&caller(Role::Operator), "root"),
        Err(ServiceError::AccessDenied(_))
    ));
    let log = w.store.audit(0, 1000).unwrap();
    let denied: Vec<_> = log
        .iter()
        .filter(|r| r.outcome == AuditOutcome::Denied)
        .map(|r| (r.operation.as_str(), r.detail.contains("last admin")))
        .collect();
    assert_eq!(
        denied,
        [
            ("RemoveUser root", true),
            ("SetUserRole root (operator)", true),
            ("RemoveUser root", false),
        ]
    );

    // With a second admin, either may go.
    w.service
        .set_user_role(&admin(), "ops", Role::Admin)
        .unwrap();
    w.service
        .set_user_role(&admin(), "root", Role::Reader)
        .unwrap();
    w.service.remove_user(&admin(), "root").unwrap();
    refused(w.service.remove_user(&admin(), "ops"));
    assert!(w.store.user("ops").unwrap().is_some());
    // Users who are not admins are removed as before, and an unknown one is not found.
    w.service
        .add_user(&admin(), "temp", Role::Reader, "a long reader password")
        .unwrap();
    w.service.remove_user(&admin(), "temp").unwrap();
    assert!(matches!(
        w.service.remove_user(&admin(), "temp"),
        Err(ServiceError::NotFound(_))
    ));
}

#[test]
fn jobs_wait_reports_a_timeout_for_an_unknown_job() {
    let w = world();
    let r = w
        .service
        .wait_job(&admin(), "NO-SUCH-JOB", Duration::from_millis(10));
    assert!(matches!(r, Err(ServiceError::NotFound(_))));
}

// ----- enumerations -----

/// Every instance of an enumeration, read `n` at a time, with the most memory it held.
fn read_all(mut e: vmsec_service::classes::Instances, n: usize) -> (Vec<Instance>, usize) {
    let (mut all, mut most) = (Vec::new(), e.heap_bytes());
    loop {
        let got = e.next(n).unwrap();
        most = most.max(e.heap_bytes());
        if got.is_empty() {
            return (all, most);
        }
        assert!(got.len() <= n);
        all.extend(got);
    }
}

fn text_of(i: &Instance, name: &str) -> String {
    match i.value(name) {
        Some(Value::String(s)) => s.clone(),
        other => panic!("{name} is {other:?}"),
    }
}

#[test]
fn an_enumeration_of_tpm_setting_data_holds_a_few_key_protectors_not_all() {
    let w = world();
    // Written straight to the store: 12 MiB of key protectors in all.
    let blob = vec![b'k'; 1024 * 1024];
    for i in 0..12 {
        let vm = w.vm(&format!("vm{i:02}"));
        w.store
            .update_vm_security(
                vm.id,
                "test",
                &mut |s| {
                    s.key_protector = Some(blob.clone());
                    Ok(())
                },
                None,
            )
            .unwrap();
    }
    let reader = caller(Role::Reader);
    let e = w
        .service
        .instances(&reader, ServedClass::TpmSettingData, &[], &w.hgs())
        .unwrap();
    assert!(
        e.heap_bytes() < 1024,
        "nothing is read before it is asked for"
    );
    let (all, most) = read_all(e, 1);
    assert_eq!(all.len(), 12);
    for i in &all {
        assert_eq!(
            i.value("KeyProtector")
                .and_then(Value::to_bytes)
                .map(|b| b.len()),
            Some(blob.len())
        );
    }
    assert!(
        most <= 4 * blob.len() + 64 * 1024,
        "held {most} bytes at most: a page of 4 VMs"
    );
    // One VM's instance by its key.
    let one = [(
        "InstanceID".to_owned(),
        format!("Microsoft:{}", w.service.vms(&reader).unwrap()[0].id).to_uppercase(),
    )];
    let e = w
        .service
        .instances(&reader, ServedClass::TpmSettingData, &one, &w.hgs())
        .unwrap();
    assert_eq!(read_all(e, 10).0.len(), 1);
}

#[test]
fn jobs_are_enumerated_in_pages_by_instance_id_and_expired_ones_are_gone() {
    let w = world();
    let now = time::OffsetDateTime::now_utc();
    // Over two pages of 256, and one expired job.
    for n in (0..=600).rev() {
        w.store
            .insert_job(&vmsec_store::Job {
                finish_time: Some(now - time::Duration::minutes(if n == 600 { 10 } else { 0 })),
                ..vmsec_store::conformance::completed_job(&format!("J{n:03}"), now)
            })
            .unwrap();
    }
    let e = w
        .service
        .instances(
            &caller(Role::Reader),
            ServedClass::ConcreteJob,
            &[],
            &w.hgs(),
        )
        .unwrap();
    let ids: Vec<String> = read_all(e, 7)
        .0
        .iter()
        .map(|i| text_of(i, "InstanceID"))
        .collect();
    let expected: Vec<String> = (0..600).map(|n| format!("J{n:03}")).collect();
    assert_eq!(ids, expected);
}

#[test]
fn an_enumeration_walks_every_vm_by_name_across_pages_and_filters_as_it_reads() {
    let w = world();
    // Over two pages of 256, added out of order.
    let vms: Vec<_> = (0..600).rev().map(|i| w.vm(&format!("vm{i:03}"))).collect();
    for vm in [&vms[0], &vms[300], &vms[599]] {
        w.store
            .update_vm_security(
                vm.id,
                "test",
                &mut |s| {
                    s.settings.tpm_enabled = true;
                    Ok(())
                },
                None,
            )
            .unwrap();
    }
    let reader = caller(Role::Reader);
    let names = |class: ServedClass, filter: &[(String, String)], n: usize| -> Vec<String> {
        let e = w
            .service
            .instances(&reader, class, filter, &w.hgs())
            .unwrap();
        read_all(e, n)
            .0
            .iter()
            .map(|i| text_of(i, "ElementName"))
            .collect()
    };
    let expected: Vec<String> = (0..600).map(|i| format!("vm{i:03}")).collect();
    assert_eq!(names(ServedClass::SecuritySettingData, &[], 100), expected);
    assert_eq!(names(ServedClass::SecurityElement, &[], 7).len(), 600);
    let systems = names(ServedClass::ComputerSystem, &[], 1000);
    assert_eq!(systems.len(), 601, "the host, then every VM");
    assert_eq!(systems[1..], expected[..]);
    let on = [("TpmEnabled".to_owned(), "true".to_owned())];
    assert_eq!(
        names(ServedClass::SecuritySettingData, &on, 2),
        ["vm000", "vm299", "vm599"],
        "a filter matching three VMs on different pages"
    );
    // A VM added after where the walk has got to is seen; one removed ahead of it is not.
    let mut e = w
        .service
        .instances(&reader, ServedClass::SecuritySettingData, &[], &w.hgs())
        .unwrap();
    assert_eq!(e.next(10).unwrap().len(), 10);
    w.vm("vm999");
    assert!(w.store.remove_vm(vms[100].id).unwrap());
    let rest: Vec<String> = read_all(e, 50)
        .0
        .iter()
        .map(|i| text_of(i, "ElementName"))
        .collect();
    assert_eq!(rest.len(), 590);
    assert_eq!(rest.last().map(String::as_str), Some("vm999"));
    assert!(!rest.contains(&"vm499".to_owned()));
}
