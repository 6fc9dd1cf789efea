//! The methods vmsec serves: one table of their signatures and the family of return codes
//! each uses, read by the WS-Management adapter to type invocations and by the service to
//! choose return codes.

use super::ServedClass;
use crate::cim_type::CimType;

/// One parameter of a method (in or out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamDef {
    /// Name as the MOF spells it.
    pub name: &'static str,
    /// Scalar type (of the items, for arrays); [`CimType::Reference`] for references.
    pub cim_type: CimType,
    /// Whether the parameter is an array (repeated elements on the wire).
    pub is_array: bool,
    /// For a reference, the served class of the instance it refers to.
    pub refers_to: Option<ServedClass>,
}

impl ParamDef {
    /// A scalar parameter of type `cim_type`.
    pub const fn scalar(name: &'static str, cim_type: CimType) -> ParamDef {
        ParamDef {
            name,
            cim_type,
            is_array: false,
            refers_to: None,
        }
    }

    /// An array parameter whose items are of type `cim_type`.
    pub const fn array(name: &'static str, cim_type: CimType) -> ParamDef {
        ParamDef {
            is_array: true,
            ..ParamDef::scalar(name, cim_type)
        }
    }

    /// A reference to an instance of `class`.
    pub const fn reference(name: &'static str, class: ServedClass) -> ParamDef {
        ParamDef {
            refers_to: Some(class),
            ..ParamDef::scalar(name, CimType::Reference)
        }
    }
}

/// The family of `ReturnValue` codes a method uses (docs/return-codes.md has the meanings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReturnCodes {
    /// `Msvm_SecurityService`'s key-protector methods: 0 done, 4096 job started, and the
    /// 32768–32778 range of Hyper-V's own failures (32768 failed, 32769 access denied, …).
    SecurityService,
    /// `ModifySecuritySettings`, which follows Hyper-V's `Modify…Settings` methods: 0 done,
    /// 1 not supported, 2 failed, 3 timeout, 4 invalid parameter, 5 invalid state,
    /// 6 incompatible parameters, 4096 job started.
    ModifySettings,
    /// `CIM_Service.StartService`/`StopService`: 0 done, 1 not supported,
    /// 2 unknown/unspecified error, 3 timeout, 4 failed (CIM defines more; vmsec uses these).
    Service,
}

impl ReturnCodes {
    /// Every code a method of this family may return.
    pub const fn codes(self) -> &'static [u32] {
        match self {
            ReturnCodes::SecurityService => &[
                0, 4096, 32768, 32769, 32770, 32771, 32772, 32773, 32774, 32775, 32776, 32777,
                32778,
            ],
            ReturnCodes::ModifySettings => &[0, 1, 2, 3, 4, 5, 6, 4096],
            ReturnCodes::Service => &[0, 1, 2, 3, 4],
        }
    }
}

/// One invokable method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodDef {
    /// Class the method belongs to.
    pub class: ServedClass,
    /// Method name as the MOF spells it.
    pub name: &'static str,
    /// In-parameters in declaration order.
    pub inputs: &'static [ParamDef],
    /// Out-parameters in declaration order, `ReturnValue` (always `uint32`) not among them.
    pub outputs: &'static [ParamDef],
    /// The codes its `ReturnValue` takes.
    pub return_codes: ReturnCodes,
}

const SSD: ParamDef = ParamDef::scalar("SecuritySettingData", CimType::String);
const JOB: ParamDef = ParamDef::reference("Job", ServedClass::ConcreteJob);

const fn security_service(
    name: &'static str,
    inputs: &'static [ParamDef],
    outputs: &'static [ParamDef],
    return_codes: ReturnCodes,
) -> MethodDef {
    MethodDef {
        class: ServedClass::SecurityService,
        name,
        inputs,
        outputs,
        return_codes,
    }
}

/// Every method vmsec serves.
pub const METHODS: &[MethodDef] = &[
    security_service(
        "GetKeyProtector",
        &[SSD],
        &[ParamDef::array("KeyProtector", CimType::UInt8)],
        ReturnCodes::SecurityService,
    ),
    security_service(
        "SetKeyProtector",
        &[SSD, ParamDef::array("KeyProtector", CimType::UInt8)],
        &[JOB],
        ReturnCodes::SecurityService,
    ),
    security_service(
        "RestoreLastKnownGoodKeyProtector",
        &[SSD],
        &[JOB],
        ReturnCodes::SecurityService,
    ),
    security_service(
        "SetSecurityPolicy",
        &[SSD, ParamDef::array("SecurityPolicy", CimType::UInt8)],
        &[JOB],
        ReturnCodes::SecurityService,
    ),
    security_service(
        "ModifySecuritySettings",
        &[SSD],
        &[JOB],
        ReturnCodes::ModifySettings,
    ),
    security_service("StartService", &[], &[], ReturnCodes::Service),
    security_service("StopService", &[], &[], ReturnCodes::Service),
];

/// The method `name` (ignoring ASCII case) of `class`.
pub fn method(class: ServedClass, name: &str) -> Option<&'static MethodDef> {
    METHODS
        .iter()
        .find(|m| m.class == class && m.name.eq_ignore_ascii_case(name))
}

impl ServedClass {
    /// The methods of this class, in table order.
    pub fn methods(self) -> impl Iterator<Item = &'static MethodDef> {
        METHODS.iter().filter(move |m| m.class == self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_found_ignoring_case_with_their_canonical_names() {
        let m = method(ServedClass::SecurityService, "setkeyprotector").unwrap();
        assert_eq!(m.name, "SetKeyProtector");
        assert_eq!(m.outputs, [JOB]);
        assert!(method(ServedClass::ComputerSystem, "GetKeyProtector").is_none());
        assert_eq!(ServedClass::SecurityService.methods().count(), 7);
    }

    #[test]
    fn each_family_reports_success_and_a_job_method_can_say_a_job_started() {
        for m in METHODS {
            let codes = m.return_codes.codes();
            assert!(codes.contains(&0), "{}", m.name);
            if m.outputs.contains(&JOB) {
                assert!(codes.contains(&4096), "{}", m.name);
            }
        }
    }
}
