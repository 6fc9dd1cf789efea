//! The association classes served, each with its two references: which role points at which
//! class. WS-Man association filters and WQL `ASSOCIATORS OF`/`REFERENCES OF` are answered
//! from this table, so a traversal can only follow an edge that is written here.

use super::ServedClass;

/// One reference of an association: its property (the role) and the class it points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct End {
    /// The reference property, as Microsoft spells it (`ManagedElement`).
    pub role: &'static str,
    /// The class the reference points at.
    pub class: ServedClass,
}

/// An association class and its two ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssociationDef {
    /// The association class.
    pub class: ServedClass,
    /// Its two references, in the order the MOF declares them.
    pub ends: [End; 2],
}

impl AssociationDef {
    /// The end whose role is `role` (ASCII case ignored).
    pub fn end(&self, role: &str) -> Option<&End> {
        self.ends.iter().find(|e| e.role.eq_ignore_ascii_case(role))
    }

    /// The other end of the one at `index` (0 or 1).
    pub fn other(&self, index: usize) -> &End {
        &self.ends[1 - index.min(1)]
    }
}

const fn end(role: &'static str, class: ServedClass) -> End {
    End { role, class }
}

/// Every association served, with the references Hyper-V's MOF gives it.
pub const ASSOCIATIONS: &[AssociationDef] = &[
    AssociationDef {
        class: ServedClass::SettingsDefineState,
        ends: [
            end("ManagedElement", ServedClass::ComputerSystem),
            end("SettingData", ServedClass::VirtualSystemSettingData),
        ],
    },
    AssociationDef {
        class: ServedClass::VirtualSystemSettingDataComponent,
        ends: [
            end("GroupComponent", ServedClass::VirtualSystemSettingData),
            end("PartComponent", ServedClass::SecuritySettingData),
        ],
    },
    AssociationDef {
        class: ServedClass::ServiceAffectsElement,
        ends: [
            end("AffectedElement", ServedClass::ComputerSystem),
            end("AffectingElement", ServedClass::SecurityService),
        ],
    },
    AssociationDef {
        class: ServedClass::HostedService,
        ends: [
            end("Antecedent", ServedClass::ComputerSystem),
            end("Dependent", ServedClass::SecurityService),
        ],
    },
];

/// The association definition of `class`, if it is an association.
pub fn association(class: ServedClass) -> Option<&'static AssociationDef> {
    ASSOCIATIONS.iter().find(|a| a.class == class)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cim_type::CimType;

    #[test]
    fn every_association_is_a_class_whose_keys_are_its_two_references() {
        for a in ASSOCIATIONS {
            let def = a.class.def();
            let keys: Vec<&str> = def.keys().map(|k| k.name).collect();
            assert_eq!(keys, [a.ends[0].role, a.ends[1].role], "{}", def.name);
            assert!(
                def.keys().all(|k| k.cim_type == CimType::Reference),
                "{}",
                def.name
            );
        }
        let classes_with_references = ServedClass::ALL
            .iter()
            .filter(|c| {
                c.def()
                    .properties
                    .iter()
                    .any(|p| p.cim_type == CimType::Reference)
            })
            .count();
        assert_eq!(classes_with_references, ASSOCIATIONS.len());
    }

    #[test]
    fn an_end_is_found_by_its_role_in_any_case_and_the_other_is_across() {
        let a = association(ServedClass::SettingsDefineState).unwrap();
        assert_eq!(
            a.end("settingdata").map(|e| e.class),
            Some(ServedClass::VirtualSystemSettingData)
        );
        assert_eq!(a.other(1).class, ServedClass::ComputerSystem);
        assert_eq!(association(ServedClass::ComputerSystem), None);
    }
}
