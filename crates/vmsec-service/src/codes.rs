//! The one place where errors become return codes.
//!
//! | error | GetKeyProtector, SetKeyProtector, RestoreLastKnownGoodKeyProtector, SetSecurityPolicy | ModifySecuritySettings |
//! |---|---|---|
//! | (success, synchronous) | 0 | 0 |
//! | (job started) | 4096 | 4096 |
//! | AccessDenied | 32769 access denied | 2 failed |
//! | MalformedInstance (unreadable embedded instance) | 32773 invalid parameter | 4 invalid parameter |
//! | IncorrectType (wrong class, property of the wrong type) | 32776 incorrect data type | 4 invalid parameter |
//! | InvalidParameter, UnknownVm, InvalidKeyProtector, oversized KP or policy | 32773 invalid parameter | 4 invalid parameter |
//! | InvalidState (no last known good; TPM or shielding without a KP) | 32775 invalid state | 5 invalid state |
//! | IncompatibleSettings | 32773 invalid parameter | 6 incompatible parameters |
//! | NotSupported | 32770 not supported | 1 not supported |
//! | ServiceStopped, StoreUnavailable | 32777 system not available | 2 failed |
//! | Timeout (store busy) | 32772 timeout | 3 timeout |
//! | AlreadyExists, NotFound, AuthenticationFailed, Vtpm, Internal | 32768 failed | 2 failed |
//!
//! ModifySecuritySettings has no access-denied code of its own; it reports 2 and the job or
//! audit record says why. docs/return-codes.md repeats this table for users; a test keeps
//! the two in step.

use vmsec_cim::schema::{self, MethodDef, ReturnCodes, ServedClass};

use crate::ServiceError;

/// The `Msvm_SecurityService` methods. Each is a row of the method table in
/// `vmsec_cim::schema` (its parameters and the family of return codes it uses); this enum
/// names the rows the service implements, and a test keeps the two in step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    GetKeyProtector,
    SetKeyProtector,
    RestoreLastKnownGoodKeyProtector,
    SetSecurityPolicy,
    ModifySecuritySettings,
    StartService,
    StopService,
}

impl Method {
    pub const ALL: [Method; 7] = [
        Method::GetKeyProtector,
        Method::SetKeyProtector,
        Method::RestoreLastKnownGoodKeyProtector,
        Method::SetSecurityPolicy,
        Method::ModifySecuritySettings,
        Method::StartService,
        Method::StopService,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::GetKeyProtector => "GetKeyProtector",
            Method::SetKeyProtector => "SetKeyProtector",
            Method::RestoreLastKnownGoodKeyProtector => "RestoreLastKnownGoodKeyProtector",
            Method::SetSecurityPolicy => "SetSecurityPolicy",
            Method::ModifySecuritySettings => "ModifySecuritySettings",
            Method::StartService => "StartService",
            Method::StopService => "StopService",
        }
    }

    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// The method's row of the schema's method table.
    pub fn def(self) -> &'static MethodDef {
        schema::method(ServedClass::SecurityService, self.name())
            .expect("every Method has its row in the schema's method table")
    }

    /// The least role that may call it.
    pub fn required_role(self) -> crate::Role {
        match self {
            Method::GetKeyProtector => crate::Role::Reader,
            Method::StartService | Method::StopService => crate::Role::Admin,
            _ => crate::Role::Operator,
        }
    }

    /// The return code for a successful synchronous call.
    pub const SUCCESS: u32 = 0;
    /// The return code for a call that started a job.
    pub const JOB_STARTED: u32 = 4096;

    /// The return code of this method for `error`.
    pub fn return_code(self, error: &ServiceError) -> u32 {
        use ServiceError::*;
        match self.def().return_codes {
            ReturnCodes::ModifySettings => match error {
                NotSupported(_) => 1,
                Timeout(_) => 3,
                MalformedInstance(_)
                | IncorrectType(_)
                | InvalidParameter(_)
                | UnknownVm(_)
                | NoSuchVm(_)
                | InvalidKeyProtector(_) => 4,
                InvalidState(_) => 5,
                IncompatibleSettings(_) => 6,
                AccessDenied(_) | ServiceStopped | StoreUnavailable(_) | AlreadyExists(_)
                | NotFound(_) | AuthenticationFailed | Vtpm(_) | Internal(_) => 2,
            },
            // CIM_Service.StartService/StopService: 0 success, 1 not supported,
            // 2 unknown/unspecified error, 3 timeout, 4 failed, 5 invalid parameter,
            // 6 in use... We use the first four.
            ReturnCodes::Service => match error {
                NotSupported(_) => 1,
                Timeout(_) => 3,
                AccessDenied(_) => 2,
                _ => 4,
            },
            ReturnCodes::SecurityService => match error {
                Internal(_) | AlreadyExists(_) | NotFound(_) | AuthenticationFailed | Vtpm(_) => {
                    32768
                }
                AccessDenied(_) => 32769,
                NotSupported(_) => 32770,
                Timeout(_) => 32772,
                MalformedInstance(_)
                | InvalidParameter(_)
                | UnknownVm(_)
                | NoSuchVm(_)
                | InvalidKeyProtector(_)
                | IncompatibleSettings(_) => 32773,
                InvalidState(_) => 32775,
                IncorrectType(_) => 32776,
                ServiceStopped | StoreUnavailable(_) => 32777,
            },
        }
    }
}

/// The meaning of a return code of `method`, in the words of Hyper-V's documentation.
pub fn describe(method: Method, code: u32) -> &'static str {
    let family = method.def().return_codes;
    if !family.codes().contains(&code) {
        return "Unknown return code";
    }
    match (family, code) {
        (_, 0) => "Completed with No Error",
        (_, 4096) => "Method Parameters Checked - Job Started",
        (ReturnCodes::ModifySettings | ReturnCodes::Service, 1) => "Not Supported",
        (ReturnCodes::ModifySettings, 2) => "Failed",
        (ReturnCodes::Service, 2) => "Unknown/Unspecified Error",
        (ReturnCodes::ModifySettings | ReturnCodes::Service, 3) => "Timeout",
        (ReturnCodes::ModifySettings, 4) => "Invalid Parameter",
        (ReturnCodes::Service, 4) => "Failed",
        (ReturnCodes::ModifySettings, 5) => "Invalid State",
        (ReturnCodes::ModifySettings, 6) => "Incompatible Parameters",
        (_, 32768) => "Failed",
        (_, 32769) => "Access Denied",
        (_, 32770) => "Not Supported",
        (_, 32771) => "Status is unknown",
        (_, 32772) => "Timeout",
        (_, 32773) => "Invalid parameter",
        (_, 32774) => "System is in use",
        (_, 32775) => "Invalid state for this operation",
        (_, 32776) => "Incorrect data type",
        (_, 32777) => "System is not available",
        (_, 32778) => "Out of memory",
        _ => "Unknown return code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_methods_served_are_the_security_service_rows_of_the_method_table() {
        let table: Vec<&str> = ServedClass::SecurityService
            .methods()
            .map(|m| m.name)
            .collect();
        let served: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(table, served);
        for m in Method::ALL {
            assert_eq!(Method::from_name(&m.name().to_lowercase()), Some(m));
        }
    }

    fn sample(variant: &str) -> ServiceError {
        use ServiceError::*;
        let m = String::new;
        match variant {
            "AccessDenied" => AccessDenied(m()),
            "AuthenticationFailed" => AuthenticationFailed,
            "MalformedInstance" => MalformedInstance(m()),
            "IncorrectType" => IncorrectType(m()),
            "InvalidParameter" => InvalidParameter(m()),
            "UnknownVm" => UnknownVm(uuid::Uuid::nil().into()),
            "NoSuchVm" => NoSuchVm(m()),
            "InvalidKeyProtector" => InvalidKeyProtector(crate::KeyProtectorError::Empty),
            "InvalidState" => InvalidState(m()),
            "IncompatibleSettings" => IncompatibleSettings(m()),
            "NotSupported" => NotSupported(m()),
            "AlreadyExists" => AlreadyExists(m()),
            "NotFound" => NotFound(m()),
            "ServiceStopped" => ServiceStopped,
            "Timeout" => Timeout(m()),
            "StoreUnavailable" => StoreUnavailable(m()),
            "Vtpm" => Vtpm(vmsec_tpm::TpmError::InvalidEndpoint(m())),
            "Internal" => Internal(m()),
            other => panic!("docs/return-codes.md names an error the code does not have: {other}"),
        }
    }

    #[test]
    fn return_code_table_in_docs_matches_the_code() {
        let doc = include_str!("../../../docs/return-codes.md");
        let mut rows = 0;
        for line in doc.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let Some(variant) = cells
                .get(1)
                .and_then(|c| c.strip_prefix('`'))
                .and_then(|c| c.strip_suffix('`'))
            else {
                continue;
            };
            let e = sample(variant);
            let family_a: u32 = cells[2].parse().unwrap();
            let modify: u32 = cells[3].parse().unwrap();
            for m in [
                Method::GetKeyProtector,
                Method::SetKeyProtector,
                Method::RestoreLastKnownGoodKeyProtector,
                Method::SetSecurityPolicy,
            ] {
                assert_eq!(m.return_code(&e), family_a, "{variant} for {}", m.name());
            }
            assert_eq!(
                Method::ModifySecuritySettings.return_code(&e),
                modify,
                "{variant}"
            );
            rows += 1;
        }
        // Every error variant has its row.
        assert_eq!(rows, 18);
    }

    #[test]
    fn every_return_code_has_hyper_vs_description() {
        for code in [
            0, 4096, 32768, 32769, 32770, 32771, 32772, 32773, 32774, 32775, 32776, 32777, 32778,
        ] {
            assert_ne!(
                describe(Method::SetKeyProtector, code),
                "Unknown return code"
            );
        }
        for code in [0, 1, 2, 3, 4, 5, 6, 4096] {
            assert_ne!(
                describe(Method::ModifySecuritySettings, code),
                "Unknown return code"
            );
        }
    }
}
