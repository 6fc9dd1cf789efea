//! The WS-Management adapter's view of the service: `vmsec_wsman::Provider` over `Service`.
//! Thin by design: it moves values between the two and maps errors; the semantics are the
//! service's.

use std::net::IpAddr;
use std::sync::Arc;

use vmsec_cim::Value;
use vmsec_cim::schema::{MethodDef, ServedClass};
use vmsec_service::classes;
use vmsec_service::hgs::HgsDir;
use vmsec_service::{Caller, JobStarted, Method, Remembered, Role, Service, ServiceError, VmRef};
use vmsec_wsman::{
    AuthRefusal, Confirmation, Enumeration, MethodOutput, OutValue, Principal, Provider,
    ProviderError,
};

use super::setting_data;

pub struct ServiceProvider {
    pub service: Arc<Service>,
    /// This host's HGS files (`DATA/hgs`), which `MSFT_HgsClientConfiguration` reports.
    pub hgs: HgsDir,
}

impl ServiceProvider {
    /// The caller of this request. Credentials checked by `authenticate` for it carry their
    /// role; credentials accepted from memory are confirmed against the store at the first
    /// call that needs the caller (one read), and what was found stands for the rest of
    /// the request.
    fn caller(&self, who: &Principal) -> Result<Caller, ProviderError> {
        let Some(r) = &who.remembered else {
            return match who.role.parse::<Role>().ok() {
                Some(role) => Ok(Caller {
                    name: who.user.clone(),
                    role,
                }),
                None => self.service.caller(&who.user).map_err(read_error),
            };
        };
        match r.state() {
            Confirmation::Confirmed(role) => match role.parse::<Role>() {
                Ok(role) => Ok(Caller {
                    name: who.user.clone(),
                    role,
                }),
                Err(_) => Err(ProviderError::Internal("a role not of this service".into())),
            },
            Confirmation::Refused => Err(ProviderError::AccessDenied),
            Confirmation::Unchecked => {
                let confirmed = self.service.confirm(&remembered(who, r));
                found(r, confirmed.as_ref().map(|c| c.role));
                confirmed.map_err(read_error)
            }
        }
    }

    /// One `Msvm_SecurityService` method, its arguments decoded here, at the edge. One the
    /// service cannot be given is refused by it all the same, so the call is audited and
    /// answered with its code.
    fn call(&self, caller: &Caller, m: Method, input: &[(String, Value)]) -> MethodOutput {
        let s = &self.service;
        let target = || text_arg(input, "SecuritySettingData").and_then(setting_data::decode);
        let refused = |e| s.refuse(caller, m, e);
        match m {
            Method::GetKeyProtector => key_protector_output(
                target()
                    .map_err(refused)
                    .and_then(|(vm, _)| s.get_key_protector(caller, vm)),
            ),
            Method::SetKeyProtector => job_output(
                target()
                    .and_then(|(vm, _)| Ok((vm, bytes_arg(input, "KeyProtector")?)))
                    .map_err(refused)
                    .and_then(|(vm, kp)| s.set_key_protector(caller, vm, kp)),
                m,
            ),
            Method::RestoreLastKnownGoodKeyProtector => job_output(
                target()
                    .map_err(refused)
                    .and_then(|(vm, _)| s.restore_last_known_good_key_protector(caller, vm)),
                m,
            ),
            Method::SetSecurityPolicy => job_output(
                target()
                    .and_then(|(vm, _)| Ok((vm, bytes_arg(input, "SecurityPolicy")?)))
                    .map_err(refused)
                    .and_then(|(vm, policy)| s.set_security_policy(caller, vm, policy)),
                m,
            ),
            Method::ModifySecuritySettings => job_output(
                target()
                    .map_err(refused)
                    .and_then(|(vm, patch)| s.modify_security_settings(caller, vm, patch)),
                m,
            ),
            Method::StartService | Method::StopService => {
                let r = if m == Method::StartService {
                    s.start_service(caller)
                } else {
                    s.stop_service(caller)
                };
                match r {
                    Ok(()) => MethodOutput {
                        return_value: Method::SUCCESS,
                        out: Vec::new(),
                    },
                    Err(e) => failed(m, &e),
                }
            }
        }
    }

    /// GetKeyProtector by credentials accepted from memory, confirmed in the read of the
    /// key protector (one read transaction, not two). The arguments were decoded already:
    /// a call whose arguments are refused takes the path of every other call.
    fn get_key_protector_confirming(
        &self,
        who: &Principal,
        r: &vmsec_wsman::Remembered,
        vm: VmRef,
    ) -> Result<MethodOutput, ProviderError> {
        let read = self
            .service
            .get_key_protector_confirming(&remembered(who, r), vm);
        found(r, read.as_ref().map(|(c, _)| c.role));
        let (_, kp) = read.map_err(read_error)?;
        Ok(key_protector_output(kp))
    }
}

/// What GetKeyProtector answers.
fn key_protector_output(kp: Result<Vec<u8>, ServiceError>) -> MethodOutput {
    match kp {
        Ok(kp) => MethodOutput {
            return_value: Method::SUCCESS,
            out: vec![("KeyProtector".into(), OutValue::Value(Value::Bytes(kp)))],
        },
        Err(e) => failed(Method::GetKeyProtector, &e),
    }
}

/// The service's instances of one enumeration, read as they are pulled.
struct Pulled(classes::Instances);

impl Enumeration for Pulled {
    fn next(&mut self, n: usize) -> Result<Vec<vmsec_cim::Instance>, ProviderError> {
        self.0.next(n).map_err(read_error)
    }

    fn heap_bytes(&self) -> usize {
        self.0.heap_bytes()
    }
}

fn principal(c: Caller) -> Principal {
    Principal {
        user: c.name,
        role: c.role.as_str().to_owned(),
        remembered: None,
    }
}

/// The service's view of credentials the principal was accepted with from memory.
fn remembered(who: &Principal, r: &vmsec_wsman::Remembered) -> Remembered {
    Remembered::from_parts(who.user.clone(), r.stamp)
}

/// Records in the principal what a confirmation found: the caller's role now, or that the
/// credentials no longer stand. Any other failure (the store could not be read) records
/// nothing, so that the server asks again before replying.
fn found(r: &vmsec_wsman::Remembered, outcome: Result<Role, &ServiceError>) {
    match outcome {
        Ok(role) => r.confirmed(role.as_str()),
        Err(ServiceError::AuthenticationFailed) => r.refused(),
        Err(_) => {}
    }
}

/// Errors of Get and Enumerate (methods report theirs in ReturnValue instead).
fn read_error(e: ServiceError) -> ProviderError {
    match e {
        // Credentials that no longer stand: the server answers 401 (see `found`).
        ServiceError::AccessDenied(_) | ServiceError::AuthenticationFailed => {
            ProviderError::AccessDenied
        }
        ServiceError::NotFound(_) | ServiceError::UnknownVm(_) => ProviderError::NoSuchInstance,
        other => ProviderError::Internal(other.to_string()),
    }
}

/// The served class of that name, or the fault for a class this service does not serve.
fn served(class: &str) -> Result<ServedClass, ProviderError> {
    ServedClass::from_name(class).ok_or_else(|| ProviderError::NoSuchClass(class.to_owned()))
}

fn job_output(r: Result<JobStarted, ServiceError>, method: Method) -> MethodOutput {
    match r {
        Ok(j) => MethodOutput {
            return_value: Method::JOB_STARTED,
            out: vec![(
                "Job".into(),
                OutValue::JobRef {
                    instance_id: j.instance_id,
                },
            )],
        },
        Err(e) => failed(method, &e),
    }
}

fn failed(method: Method, e: &ServiceError) -> MethodOutput {
    tracing::info!(method = method.name(), "method failed: {e}");
    MethodOutput {
        return_value: method.return_code(e),
        out: Vec::new(),
    }
}

fn text_arg<'a>(input: &'a [(String, Value)], name: &str) -> Result<&'a str, ServiceError> {
    match input
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
    {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Null) | None => {
            Err(ServiceError::InvalidParameter(format!("{name} is missing")))
        }
        Some(_) => Err(ServiceError::IncorrectType(format!(
            "{name} must be a string"
        ))),
    }
}

fn bytes_arg(input: &[(String, Value)], name: &str) -> Result<Vec<u8>, ServiceError> {
    match input
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
    {
        Some(Value::Null) | None => Ok(Vec::new()),
        Some(v) => v
            .to_bytes()
            .ok_or_else(|| ServiceError::IncorrectType(format!("{name} must be a uint8 array"))),
    }
}

impl Provider for ServiceProvider {
    fn authenticate(
        &self,
        user: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<Principal, AuthRefusal> {
        match self.service.authenticate(user, password, &peer.to_string()) {
            Ok(who) => Ok(principal(who)),
            Err(ServiceError::AuthenticationFailed) => Err(AuthRefusal::Rejected),
            // Not the caller's fault: say so, rather than 401.
            Err(e) => {
                tracing::warn!("cannot check credentials: {e}");
                Err(AuthRefusal::Unavailable)
            }
        }
    }

    /// From memory, without a read: the request confirms the credentials later, in its own
    /// read ([`ServiceProvider::get`]) or by [`Provider::confirm`].
    fn authenticate_verified(&self, user: &str, password: &str, _: IpAddr) -> Option<Principal> {
        let r = self.service.remembered(user, password)?;
        Some(Principal {
            user: r.name.clone(),
            role: String::new(),
            remembered: Some(vmsec_wsman::Remembered::new(r.stamp())),
        })
    }

    fn confirm(&self, who: &Principal) -> Result<(), AuthRefusal> {
        match self.caller(who) {
            Ok(_) => Ok(()),
            Err(ProviderError::AccessDenied) => Err(AuthRefusal::Rejected),
            Err(e) => {
                tracing::warn!("cannot confirm credentials: {e}");
                Err(AuthRefusal::Unavailable)
            }
        }
    }

    fn get(
        &self,
        who: &Principal,
        class: &str,
        selectors: &[(String, String)],
    ) -> Result<vmsec_cim::Instance, ProviderError> {
        let class = served(class)?;
        let found_now = match &who.remembered {
            // Confirmed in the read that answers the Get.
            Some(r) if r.state() == Confirmation::Unchecked => {
                let read = self.service.instance_confirming(
                    &remembered(who, r),
                    class,
                    selectors,
                    &self.hgs,
                );
                found(r, read.as_ref().map(|(c, _)| c.role));
                read.map(|(_, i)| i)
            }
            _ => {
                let caller = self.caller(who)?;
                self.service.instance(&caller, class, selectors, &self.hgs)
            }
        };
        found_now
            .map_err(read_error)?
            .ok_or(ProviderError::NoSuchInstance)
    }

    fn enumerate(
        &self,
        who: &Principal,
        class: &str,
        filter: &[(String, String)],
    ) -> Result<Box<dyn Enumeration>, ProviderError> {
        let class = served(class)?;
        let caller = self.caller(who)?;
        let instances = self
            .service
            .instances(&caller, class, filter, &self.hgs)
            .map_err(read_error)?;
        Ok(Box::new(Pulled(instances)))
    }

    fn references(
        &self,
        who: &Principal,
        association: &str,
        role: &str,
        _target_class: &str,
        target: &[(String, String)],
    ) -> Result<Box<dyn Enumeration>, ProviderError> {
        let class = served(association)?;
        let caller = self.caller(who)?;
        let instances = self
            .service
            .references(&caller, class, role, target)
            .map_err(read_error)?;
        Ok(Box::new(Pulled(instances)))
    }

    fn invokes_quickly(&self, method: &MethodDef) -> bool {
        method.class == ServedClass::SecurityService
            && Method::from_name(method.name).is_some_and(|m| self.service.answers_at_once(m))
    }

    fn invoke(
        &self,
        who: &Principal,
        class: &str,
        selectors: &[(String, String)],
        method: &str,
        input: &[(String, Value)],
    ) -> Result<MethodOutput, ProviderError> {
        if served(class)? != ServedClass::SecurityService {
            return Err(ProviderError::NoSuchClass(class.to_owned()));
        }
        if selectors.is_empty()
            && Method::from_name(method) == Some(Method::GetKeyProtector)
            && let Some(r) = &who.remembered
            && r.state() == Confirmation::Unchecked
            && let Ok((vm, _)) =
                text_arg(input, "SecuritySettingData").and_then(setting_data::decode)
        {
            return self.get_key_protector_confirming(who, r, vm);
        }
        let caller = self.caller(who)?;
        // The selectors must name the one security service (or be empty, as some clients send).
        if !selectors.is_empty() {
            let found = self
                .service
                .instance(&caller, ServedClass::SecurityService, selectors, &self.hgs)
                .map_err(read_error)?;
            if found.is_none() {
                return Err(ProviderError::NoSuchInstance);
            }
        }
        let m = Method::from_name(method).ok_or_else(|| {
            ProviderError::InvalidParameter(format!(
                "{} has no method {method}",
                ServedClass::SecurityService
            ))
        })?;
        Ok(self.call(&caller, m, input))
    }

    fn metrics_extra(&self) -> String {
        let mut out = String::from(
            "# HELP vmsec_jobs Jobs kept in the store, by JobState.\n# TYPE vmsec_jobs gauge\n",
        );
        match self.service.job_counts() {
            Ok(counts) => {
                for (state, n) in counts {
                    out.push_str(&format!("vmsec_jobs{{state=\"{}\"}} {n}\n", state.name()));
                }
            }
            Err(e) => tracing::warn!("metrics: cannot count jobs: {e}"),
        }
        out.push_str(&format!(
            "# HELP vmsec_password_checks_total Passwords checked with argon2 (known and unknown users alike).\n\
             # TYPE vmsec_password_checks_total counter\nvmsec_password_checks_total {}\n",
            self.service.password_checks()
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_matched_without_case_and_unknown_ones_are_no_such_class() {
        assert_eq!(
            served("msvm_securityservice"),
            Ok(ServedClass::SecurityService)
        );
        assert_eq!(
            served("Msvm_Nothing"),
            Err(ProviderError::NoSuchClass("Msvm_Nothing".into()))
        );
    }
}
