//! Association traversals, as the WS-CIM association filter (DSP0227 §8.2) and WQL's
//! `ASSOCIATORS OF`/`REFERENCES OF` both ask for them: from one instance, across the
//! association classes that reference it, to the instances at the other end or to the
//! association instances themselves.

use roxmltree::Node;

use crate::wire::envelope::{excerpt, fault, text_of};
use crate::wire::fault::{Fault, FaultKind};
use crate::wire::ns::{self, Resource};

/// The association filter dialect.
pub const DIALECT: &str = "http://schemas.dmtf.org/wbem/wsman/1/cimbinding/associationFilter";
/// The namespace of its elements.
pub const BINDING: &str = "http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd";

/// Longest class or role name accepted in a filter; CIM names are a few dozen characters.
pub const MAX_NAME_LEN: usize = 256;
/// Most selectors the source object may have; served classes have at most four keys.
pub const MAX_SELECTORS: usize = 16;

/// What a traversal returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returns {
    /// The instances at the other end (`AssociatedInstances`, `ASSOCIATORS OF`).
    Associated,
    /// The association instances (`AssociationInstances`, `REFERENCES OF`).
    Associations,
}

/// The instance a traversal starts from, as the client named it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Source {
    /// Its class.
    pub class: String,
    /// Its namespace, when the client named one.
    pub namespace: Option<String>,
    /// Its keys as text, names as written (`__cimnamespace` removed).
    pub selectors: Vec<(String, String)>,
}

/// One traversal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Traversal {
    /// What it returns.
    pub returns: Returns,
    /// Where it starts.
    pub source: Source,
    /// Only across this association class.
    pub association_class: Option<String>,
    /// Only to instances of this class ([`Returns::Associated`] only).
    pub result_class: Option<String>,
    /// Only where the source is referenced by this role.
    pub role: Option<String>,
    /// Only to the instance at this role ([`Returns::Associated`] only).
    pub result_role: Option<String>,
}

fn refused(what: impl Into<String>) -> Fault {
    fault(FaultKind::CannotProcessFilter, what)
}

/// A class or role name as a filter gives it: a CIM identifier.
pub(crate) fn name(what: &str, text: &str) -> Result<String, Fault> {
    let ok = !text.is_empty()
        && text.len() <= MAX_NAME_LEN
        && text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(refused(format!(
            "the association filter's {what} \"{}\" is not a CIM name",
            excerpt(text)
        )))
    }
}

/// The source object: an endpoint reference (`wsa:Address` and `wsa:ReferenceParameters`
/// with `wsman:ResourceURI` and `wsman:SelectorSet`), as an EPR enumeration returned it.
fn source(object: Node<'_, '_>) -> Result<Source, Fault> {
    let params = object
        .children()
        .find(|n| n.has_tag_name((ns::WSA, "ReferenceParameters")))
        .unwrap_or(object);
    let uri = params
        .children()
        .find(|n| n.has_tag_name((ns::WSMAN, "ResourceURI")))
        .map(text_of)
        .ok_or_else(|| refused("the association filter's Object has no wsman:ResourceURI"))?;
    let (namespace, class) = match ns::resource(uri) {
        Some(Resource::Class { namespace, class }) => (namespace, class),
        _ => {
            return Err(refused(format!(
                "the association filter's Object names the resource URI \"{}\", not a class",
                excerpt(uri)
            )));
        }
    };
    let mut selectors = Vec::new();
    let mut namespace = namespace;
    if let Some(set) = params
        .children()
        .find(|n| n.has_tag_name((ns::WSMAN, "SelectorSet")))
    {
        for sel in set
            .children()
            .filter(|n| n.has_tag_name((ns::WSMAN, "Selector")))
        {
            let key = sel.attribute("Name").unwrap_or("");
            if key.eq_ignore_ascii_case("__cimnamespace") {
                namespace.get_or_insert_with(|| text_of(sel).to_owned());
                continue;
            }
            if selectors.len() >= MAX_SELECTORS {
                return Err(refused(format!(
                    "the association filter's Object has more than {MAX_SELECTORS} selectors"
                )));
            }
            selectors.push((name("selector name", key)?, text_of(sel).to_owned()));
        }
    }
    Ok(Source {
        class,
        namespace,
        selectors,
    })
}

/// Reads the association filter's one child (`AssociatedInstances` or
/// `AssociationInstances`). Each part is refused naming it when it is missing, repeated,
/// unknown or not a CIM name.
pub fn parse(filter: Node<'_, '_>) -> Result<Traversal, Fault> {
    let mut children = filter.children().filter(Node::is_element);
    let (Some(el), None) = (children.next(), children.next()) else {
        return Err(refused(
            "an association filter holds exactly one AssociatedInstances or AssociationInstances",
        ));
    };
    let tag = el.tag_name();
    let returns = match (tag.namespace(), tag.name()) {
        (Some(BINDING), "AssociatedInstances") => Returns::Associated,
        (Some(BINDING), "AssociationInstances") => Returns::Associations,
        (_, other) => {
            return Err(refused(format!(
                "the association filter holds <{}>; expected AssociatedInstances or \
                 AssociationInstances in {BINDING}",
                excerpt(other)
            )));
        }
    };
    let mut t = Traversal {
        returns,
        source: Source::default(),
        association_class: None,
        result_class: None,
        role: None,
        result_role: None,
    };
    let mut object = None;
    for part in el.children().filter(Node::is_element) {
        let local = part.tag_name().name();
        if part.tag_name().namespace() != Some(BINDING) {
            return Err(refused(format!(
                "the association filter holds <{}> from another namespace",
                excerpt(local)
            )));
        }
        let slot = match (returns, local) {
            (_, "Object") => {
                if object.replace(part).is_some() {
                    return Err(refused("the association filter names Object twice"));
                }
                continue;
            }
            (Returns::Associated, "AssociationClassName") => &mut t.association_class,
            // For association instances, ResultClassName names the association class.
            (Returns::Associations, "ResultClassName") => &mut t.association_class,
            (Returns::Associated, "ResultClassName") => &mut t.result_class,
            (_, "Role") => &mut t.role,
            (Returns::Associated, "ResultRole") => &mut t.result_role,
            (_, other) => {
                return Err(refused(format!(
                    "the association filter's {} does not take <{}>",
                    tag.name(),
                    excerpt(other)
                )));
            }
        };
        if slot.replace(name(local, text_of(part))?).is_some() {
            return Err(refused(format!(
                "the association filter names {local} twice"
            )));
        }
    }
    let object = object.ok_or_else(|| refused("the association filter has no Object"))?;
    t.source = source(object)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJECT: &str = r#"<b:Object><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address><a:ReferenceParameters><w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_ComputerSystem</w:ResourceURI><w:SelectorSet><w:Selector Name="CreationClassName">Msvm_ComputerSystem</w:Selector><w:Selector Name="Name">B5314955</w:Selector><w:Selector Name="__cimnamespace">root/virtualization/v2</w:Selector></w:SelectorSet></a:ReferenceParameters></b:Object>"#;

    fn filter(kind: &str, inner: &str) -> Result<Traversal, Fault> {
        let xml = format!(
            r#"<w:Filter xmlns:w="{}" xmlns:a="{}" xmlns:b="{BINDING}" Dialect="{DIALECT}"><b:{kind}>{inner}</b:{kind}></w:Filter>"#,
            ns::WSMAN,
            ns::WSA
        );
        let doc = roxmltree::Document::parse(&xml).unwrap();
        parse(doc.root_element())
    }

    fn reason(kind: &str, inner: &str) -> String {
        let f = filter(kind, inner).unwrap_err();
        assert_eq!(f.kind, FaultKind::CannotProcessFilter);
        f.reason
    }

    #[test]
    fn associated_instances_read_every_part_and_the_objects_epr() {
        let t = filter(
            "AssociatedInstances",
            &format!(
                "{OBJECT}<b:AssociationClassName>Msvm_SettingsDefineState</b:AssociationClassName><b:Role>ManagedElement</b:Role><b:ResultClassName>Msvm_VirtualSystemSettingData</b:ResultClassName><b:ResultRole>SettingData</b:ResultRole>"
            ),
        )
        .unwrap();
        assert_eq!(t.returns, Returns::Associated);
        assert_eq!(t.source.class, "Msvm_ComputerSystem");
        assert_eq!(
            t.source.namespace.as_deref(),
            Some("root/virtualization/v2")
        );
        assert_eq!(
            t.source.selectors,
            vec![
                (
                    "CreationClassName".to_owned(),
                    "Msvm_ComputerSystem".to_owned()
                ),
                ("Name".to_owned(), "B5314955".to_owned())
            ]
        );
        assert_eq!(
            t.association_class.as_deref(),
            Some("Msvm_SettingsDefineState")
        );
        assert_eq!(
            t.result_class.as_deref(),
            Some("Msvm_VirtualSystemSettingData")
        );
        assert_eq!(t.role.as_deref(), Some("ManagedElement"));
        assert_eq!(t.result_role.as_deref(), Some("SettingData"));
    }

    #[test]
    fn association_instances_take_the_association_class_as_result_class() {
        let t = filter(
            "AssociationInstances",
            &format!("{OBJECT}<b:ResultClassName>Msvm_SettingsDefineState</b:ResultClassName>"),
        )
        .unwrap();
        assert_eq!(t.returns, Returns::Associations);
        assert_eq!(
            t.association_class.as_deref(),
            Some("Msvm_SettingsDefineState")
        );
        assert_eq!(t.result_class, None);
        assert!(
            reason(
                "AssociationInstances",
                &format!("{OBJECT}<b:ResultRole>X</b:ResultRole>")
            )
            .contains("ResultRole")
        );
    }

    #[test]
    fn a_malformed_filter_is_refused_naming_its_part() {
        assert!(reason("AssociatedInstances", "").contains("no Object"));
        assert!(
            reason("AssociatedInstances", &format!("{OBJECT}{OBJECT}")).contains("Object twice")
        );
        assert!(
            reason(
                "AssociatedInstances",
                &format!("{OBJECT}<b:Role>A</b:Role><b:Role>B</b:Role>")
            )
            .contains("Role twice")
        );
        assert!(reason("AssociatedInstances", &format!("{OBJECT}<b:Frob/>")).contains("Frob"));
        assert!(
            reason(
                "AssociatedInstances",
                &format!("{OBJECT}<b:Role>a-b</b:Role>")
            )
            .contains("\"a-b\"")
        );
        let long = "R".repeat(MAX_NAME_LEN + 1);
        assert!(
            reason(
                "AssociatedInstances",
                &format!("{OBJECT}<b:Role>{long}</b:Role>")
            )
            .contains("not a CIM name")
        );
        assert!(reason("Associators", OBJECT).contains("Associators"));
        let star = OBJECT.replace("v2/Msvm_ComputerSystem", "v2/*");
        assert!(reason("AssociatedInstances", &star).contains("not a class"));
        let many: String = (0..=MAX_SELECTORS)
            .map(|i| format!(r#"<w:Selector Name="K{i}">v</w:Selector>"#))
            .collect();
        let crowded = OBJECT.replace("<w:SelectorSet>", &format!("<w:SelectorSet>{many}"));
        assert!(reason("AssociatedInstances", &crowded).contains("more than 16 selectors"));
    }
}
