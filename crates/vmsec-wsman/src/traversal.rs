//! Association traversals: which association classes a traversal crosses (planned from the
//! schema's association table alone), and the enumeration that walks them through the
//! provider, one association class after the other, reading as the Pulls ask.

use std::collections::VecDeque;
use std::sync::Arc;

use vmsec_cim::schema::{ASSOCIATIONS, AssociationDef, ServedClass};
use vmsec_cim::{Instance, Value};

use crate::provider::{Enumeration, Principal, Provider, ProviderError};
use crate::wire::association::{Returns, Traversal};
use crate::wire::fault::{Fault, FaultKind};

/// One association class to cross, from the end at `from` (0 or 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The association.
    pub association: &'static AssociationDef,
    /// The index of the end the source is at.
    pub from: usize,
}

/// A traversal checked against the schema: its source and the steps it takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// What it returns.
    pub returns: Returns,
    /// The source's class.
    pub source: ServedClass,
    /// The source's keys, in the schema's spelling (checked by the engine).
    pub keys: Vec<(String, String)>,
    /// The association classes crossed, in the order of the schema.
    pub steps: Vec<Step>,
}

fn refused(reason: String) -> Fault {
    Fault::new(FaultKind::CannotProcessFilter, reason)
}

/// A class a traversal names: a served class, else the fault naming it.
fn served(what: &str, name: &str) -> Result<ServedClass, Fault> {
    ServedClass::from_name(name).ok_or_else(|| {
        refused(format!(
            "the {what} {name} is not a class vmsec serves (superclasses such as CIM_… are not \
             resolved; name the Msvm_ class)"
        ))
    })
}

/// The steps `t` takes from its source class. A role or result role that no association
/// has is no error: the traversal then returns nothing, as WMI answers.
pub fn steps(t: &Traversal, source: ServedClass) -> Result<Vec<Step>, Fault> {
    let association = t
        .association_class
        .as_deref()
        .map(|name| {
            let class = served("association class", name)?;
            vmsec_cim::schema::association(class)
                .map(|a| a.class)
                .ok_or_else(|| refused(format!("{} is not an association class", class.name())))
        })
        .transpose()?;
    let result = t
        .result_class
        .as_deref()
        .map(|name| served("result class", name))
        .transpose()?;
    let role_is = |want: &Option<String>, role: &str| {
        want.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(role))
    };
    let mut steps = Vec::new();
    for a in ASSOCIATIONS {
        if association.is_some_and(|c| c != a.class) {
            continue;
        }
        for (from, end) in a.ends.iter().enumerate() {
            let other = a.other(from);
            let fits = end.class == source
                && role_is(&t.role, end.role)
                && (t.returns == Returns::Associations
                    || (result.is_none_or(|r| r == other.class)
                        && role_is(&t.result_role, other.role)));
            if fits {
                steps.push(Step {
                    association: a,
                    from,
                });
            }
        }
    }
    Ok(steps)
}

/// The enumeration of a planned traversal.
pub struct Walk<P> {
    provider: Arc<P>,
    who: Principal,
    returns: Returns,
    source: ServedClass,
    keys: Vec<(String, String)>,
    steps: VecDeque<Step>,
    /// The association instances of the step being walked.
    current: Option<(Step, Box<dyn Enumeration>)>,
}

impl<P: Provider> Walk<P> {
    /// The walk of `plan` on behalf of `who`.
    pub fn new(provider: Arc<P>, who: Principal, plan: Plan) -> Walk<P> {
        Walk {
            provider,
            who,
            returns: plan.returns,
            source: plan.source,
            keys: plan.keys,
            steps: plan.steps.into(),
            current: None,
        }
    }

    /// The instance an association instance references at the far end of `step`; `None`
    /// when it is gone (removed since the association was read).
    fn far_end(
        &self,
        step: Step,
        association: &Instance,
    ) -> Result<Option<Instance>, ProviderError> {
        let end = step.association.other(step.from);
        let Some(Value::Reference(path)) = association.value(end.role) else {
            return Err(ProviderError::Internal(format!(
                "an instance of {} has no reference {}",
                step.association.class, end.role
            )));
        };
        let keys: Vec<(String, String)> = path
            .keys
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.scalar_text()?)))
            .collect();
        match self.provider.get(&self.who, end.class.name(), &keys) {
            Ok(found) => Ok(Some(found)),
            Err(ProviderError::NoSuchInstance) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl<P: Provider> Enumeration for Walk<P> {
    fn next(&mut self, n: usize) -> Result<Vec<Instance>, ProviderError> {
        loop {
            let (step, source) = match self.current.take() {
                Some(c) => c,
                None => {
                    let Some(step) = self.steps.pop_front() else {
                        return Ok(Vec::new());
                    };
                    let role = step.association.ends[step.from].role;
                    let read = self.provider.references(
                        &self.who,
                        step.association.class.name(),
                        role,
                        self.source.name(),
                        &self.keys,
                    )?;
                    (step, read)
                }
            };
            let mut source = source;
            let read = source.next(n)?;
            if read.is_empty() {
                continue;
            }
            self.current = Some((step, source));
            let out = match self.returns {
                Returns::Associations => read,
                Returns::Associated => {
                    let mut out = Vec::with_capacity(read.len());
                    for a in &read {
                        out.extend(self.far_end(step, a)?);
                    }
                    out
                }
            };
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        self.current.as_ref().map_or(0, |(_, e)| e.heap_bytes())
            + self
                .keys
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::association::Source;

    fn traversal(returns: Returns) -> Traversal {
        Traversal {
            returns,
            source: Source::default(),
            association_class: None,
            result_class: None,
            role: None,
            result_role: None,
        }
    }

    fn crossed(t: &Traversal, from: ServedClass) -> Vec<&'static str> {
        steps(t, from)
            .unwrap()
            .iter()
            .map(|s| s.association.class.name())
            .collect()
    }

    #[test]
    fn a_computer_system_reaches_its_settings_and_the_security_service() {
        let t = traversal(Returns::Associated);
        assert_eq!(
            crossed(&t, ServedClass::ComputerSystem),
            [
                "Msvm_SettingsDefineState",
                "Msvm_ServiceAffectsElement",
                "Msvm_HostedService"
            ]
        );
        let mut to_service = t.clone();
        to_service.result_class = Some("msvm_securityservice".into());
        assert_eq!(
            crossed(&to_service, ServedClass::ComputerSystem),
            ["Msvm_ServiceAffectsElement", "Msvm_HostedService"]
        );
        to_service.association_class = Some("Msvm_ServiceAffectsElement".into());
        assert_eq!(
            crossed(&to_service, ServedClass::ComputerSystem),
            ["Msvm_ServiceAffectsElement"]
        );
    }

    #[test]
    fn roles_choose_the_end_and_a_role_no_association_has_crosses_nothing() {
        let mut t = traversal(Returns::Associated);
        t.role = Some("GroupComponent".into());
        assert_eq!(
            crossed(&t, ServedClass::VirtualSystemSettingData),
            ["Msvm_VirtualSystemSettingDataComponent"]
        );
        t.role = Some("PartComponent".into());
        assert!(crossed(&t, ServedClass::VirtualSystemSettingData).is_empty());
        t.role = None;
        t.result_role = Some("ManagedElement".into());
        assert_eq!(
            crossed(&t, ServedClass::VirtualSystemSettingData),
            ["Msvm_SettingsDefineState"]
        );
    }

    #[test]
    fn references_ignore_the_result_class_and_cross_to_the_associations() {
        let mut t = traversal(Returns::Associations);
        t.association_class = Some("Msvm_VirtualSystemSettingDataComponent".into());
        assert_eq!(
            crossed(&t, ServedClass::SecuritySettingData),
            ["Msvm_VirtualSystemSettingDataComponent"]
        );
    }

    #[test]
    fn classes_that_are_not_served_or_not_associations_are_refused_by_name() {
        let mut t = traversal(Returns::Associated);
        t.association_class = Some("CIM_SettingsDefineState".into());
        let f = steps(&t, ServedClass::ComputerSystem).unwrap_err();
        assert_eq!(f.kind, FaultKind::CannotProcessFilter);
        assert!(f.reason.contains("CIM_SettingsDefineState"), "{}", f.reason);
        t.association_class = Some("Msvm_ComputerSystem".into());
        let f = steps(&t, ServedClass::ComputerSystem).unwrap_err();
        assert!(f.reason.contains("not an association"), "{}", f.reason);
        t.association_class = None;
        t.result_class = Some("Msvm_Nothing".into());
        assert!(steps(&t, ServedClass::ComputerSystem).is_err());
    }
}
