//! The typing of an Invoke body (`<p:Method_INPUT>`) into CIM values, against the method
//! table of [`vmsec_cim::schema`].
//!
//! Fault choice: a body that does not fit the method's signature — an unknown
//! parameter, a scalar given twice, text that is not a lexical form of the declared type
//! (`"300"` for a `uint8`), element content where text belongs — is
//! `wsman:SchemaValidationError`. `wsman:InvalidParameter` is left to the provider, for
//! values that are well-typed but unacceptable.

use std::borrow::Cow;

use roxmltree::Node;
use vmsec_cim::schema::{MethodDef, ParamDef};
use vmsec_cim::{CimType, Value};

use crate::wire::fault::{Fault, FaultKind};
use crate::wire::ns;

fn schema_error(message: String) -> Fault {
    Fault::new(FaultKind::SchemaValidationError, message)
}

fn is_nil(node: Node<'_, '_>) -> bool {
    node.attribute((ns::XSI, "nil"))
        .is_some_and(|v| matches!(v.trim(), "true" | "1"))
}

/// The character content of a parameter element (text and CDATA; comments skipped),
/// refusing element content — except that a string parameter holding elements is taken as
/// the XML text it spells: Dell's `wsl` pastes an embedded instance unescaped, so
/// `<p:SecuritySettingData><INSTANCE …>…</INSTANCE></p:SecuritySettingData>` means the text
/// `<INSTANCE …>…</INSTANCE>`.
fn text_of<'a>(def: &ParamDef, node: Node<'a, '_>) -> Result<Cow<'a, str>, Fault> {
    if def.cim_type == CimType::String && node.children().any(|c| c.is_element()) {
        let (Some(first), Some(last)) = (node.first_child(), node.last_child()) else {
            return Ok(Cow::Borrowed(""));
        };
        let source = node.document().input_text();
        return Ok(Cow::Borrowed(
            source
                .get(first.range().start..last.range().end)
                .unwrap_or_default()
                .trim(),
        ));
    }
    let mut text: Cow<'a, str> = Cow::Borrowed("");
    for child in node.children() {
        if child.is_element() {
            return Err(schema_error(format!(
                "parameter {} holds an element <{}>; a {} is written as text",
                def.name,
                child.tag_name().name(),
                def.cim_type
            )));
        }
        if let Some(t) = child.text().filter(|_| child.is_text()) {
            if text.is_empty() {
                text = Cow::Borrowed(t);
            } else {
                text.to_mut().push_str(t);
            }
        }
    }
    Ok(text)
}

fn scalar(def: &ParamDef, text: &str, item: Option<usize>) -> Result<Value, Fault> {
    let place = || match item {
        Some(i) => format!("parameter {} item {i}", def.name),
        None => format!("parameter {}", def.name),
    };
    let trimmed = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    let value = match def.cim_type {
        // The hot path: a key protector is one element per byte.
        CimType::UInt8 => trimmed.parse::<u8>().ok().map(Value::UInt8),
        CimType::Boolean => match trimmed {
            "true" | "1" | "TRUE" | "True" => Some(Value::Boolean(true)),
            "false" | "0" | "FALSE" | "False" => Some(Value::Boolean(false)),
            _ => None,
        },
        CimType::String => return Ok(Value::String(text.to_owned())),
        t => Value::parse_scalar(t, text).ok(),
    };
    value.ok_or_else(|| {
        let excerpt: String = trimmed.chars().take(40).collect();
        let range = match def.cim_type {
            CimType::UInt8 => " (0 to 255)",
            _ => "",
        };
        schema_error(format!(
            "{}: \"{excerpt}\" is not a {}{range}",
            place(),
            def.cim_type
        ))
    })
}

/// What has been seen of one parameter so far.
enum Slot {
    Absent,
    Null,
    Scalar(Value),
    Items(Vec<Value>),
    /// Items that are all `uint8` so far: a key protector of up to a megabyte is kept as
    /// bytes, not as a `Value` each.
    Bytes(Vec<u8>),
}

impl Slot {
    fn items(&self) -> usize {
        match self {
            Slot::Items(v) => v.len(),
            Slot::Bytes(b) => b.len(),
            _ => 0,
        }
    }

    /// This slot (absent or holding items) with one more item.
    fn push(self, item: Value) -> Slot {
        match (self, item) {
            (Slot::Bytes(mut b), Value::UInt8(x)) => {
                b.push(x);
                Slot::Bytes(b)
            }
            (Slot::Absent, Value::UInt8(x)) => Slot::Bytes(vec![x]),
            (Slot::Bytes(b), other) => {
                let mut items: Vec<Value> = b.into_iter().map(Value::UInt8).collect();
                items.push(other);
                Slot::Items(items)
            }
            (Slot::Items(mut items), other) => {
                items.push(other);
                Slot::Items(items)
            }
            (_, other) => Slot::Items(vec![other]),
        }
    }
}

/// Types the children of a `<Method_INPUT>` element against `method`. Returns every
/// declared parameter in declaration order, `Value::Null` where absent.
pub fn type_input(
    method: &MethodDef,
    input: Option<Node<'_, '_>>,
) -> Result<Vec<(String, Value)>, Fault> {
    let mut slots: Vec<Slot> = method.inputs.iter().map(|_| Slot::Absent).collect();
    let children = input
        .into_iter()
        .flat_map(|n| n.children())
        .filter(Node::is_element);
    for child in children {
        let local = child.tag_name().name();
        let found = method
            .inputs
            .iter()
            .zip(slots.iter_mut())
            .find(|(d, _)| d.name.eq_ignore_ascii_case(local));
        let Some((def, slot)) = found else {
            return Err(schema_error(format!(
                "{} has no parameter {local}",
                method.name
            )));
        };
        let nil = is_nil(child);
        *slot = match (std::mem::replace(slot, Slot::Absent), def.is_array, nil) {
            (Slot::Absent, _, true) => Slot::Null,
            (Slot::Absent, false, false) => Slot::Scalar(scalar(def, &text_of(def, child)?, None)?),
            (s @ (Slot::Absent | Slot::Items(_) | Slot::Bytes(_)), true, false) => {
                let item = scalar(def, &text_of(def, child)?, Some(s.items()))?;
                s.push(item)
            }
            (_, true, _) => {
                return Err(schema_error(format!(
                    "parameter {} mixes null (xsi:nil) with items; only the whole array may be null",
                    def.name
                )));
            }
            (_, false, _) => {
                return Err(schema_error(format!(
                    "parameter {} is given more than once",
                    def.name
                )));
            }
        };
    }
    Ok(method
        .inputs
        .iter()
        .zip(slots)
        .map(|(def, slot)| {
            let value = match slot {
                Slot::Absent | Slot::Null => Value::Null,
                Slot::Scalar(v) => v,
                Slot::Items(items) => Value::Array(items),
                Slot::Bytes(bytes) => Value::Bytes(bytes),
            };
            (def.name.to_owned(), value)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The method `name` of the class named `class`, both ignoring ASCII case.
    fn method(class: &str, name: &str) -> Option<&'static MethodDef> {
        vmsec_cim::schema::ServedClass::from_name(class)
            .and_then(|c| vmsec_cim::schema::method(c, name))
    }

    const P: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_SecurityService";

    fn typed(method: &str, children: &str) -> Result<Vec<(String, Value)>, Fault> {
        let xml = format!(
            r#"<p:{method}_INPUT xmlns:p="{P}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{children}</p:{method}_INPUT>"#
        );
        let doc = roxmltree::Document::parse(&xml).unwrap();
        type_input(method_or_panic(method), Some(doc.root_element()))
    }

    fn method_or_panic(name: &str) -> &'static MethodDef {
        method("Msvm_SecurityService", name).unwrap()
    }

    #[test]
    fn methods_are_found_ignoring_case_with_their_canonical_names() {
        let m = method("msvm_securityservice", "setkeyprotector").unwrap();
        assert_eq!(m.name, "SetKeyProtector");
        assert_eq!(
            m.inputs.iter().map(|p| p.name).collect::<Vec<_>>(),
            ["SecuritySettingData", "KeyProtector"]
        );
        assert!(method("Msvm_ComputerSystem", "GetKeyProtector").is_none());
    }

    #[test]
    fn byte_items_tolerate_surrounding_whitespace() {
        let v = typed(
            "SetKeyProtector",
            "<p:KeyProtector> 7\n</p:KeyProtector><p:KeyProtector>0</p:KeyProtector>",
        )
        .unwrap();
        assert_eq!(v[1].1, Value::Array(vec![Value::UInt8(7), Value::UInt8(0)]));
    }

    #[test]
    fn strings_are_verbatim_and_comments_inside_them_are_skipped() {
        let v = typed(
            "GetKeyProtector",
            "<p:SecuritySettingData> a<!-- note -->b &amp; </p:SecuritySettingData>",
        )
        .unwrap();
        assert_eq!(v[0].1, Value::String(" ab & ".into()));
    }

    #[test]
    fn an_empty_string_element_is_the_empty_string_and_nil_is_null() {
        let v = typed("GetKeyProtector", "<p:SecuritySettingData/>").unwrap();
        assert_eq!(v[0].1, Value::String(String::new()));
        let v = typed(
            "GetKeyProtector",
            r#"<p:SecuritySettingData xsi:nil="true"/>"#,
        )
        .unwrap();
        assert_eq!(v[0].1, Value::Null);
    }

    #[test]
    fn an_embedded_instance_pasted_as_elements_is_taken_as_its_text() {
        // What Dell's wsl sends: the instance unescaped inside the string parameter.
        let v = typed(
            "GetKeyProtector",
            "<p:SecuritySettingData>\n  <INSTANCE CLASSNAME=\"X\"><PROPERTY NAME=\"a\" TYPE=\"string\"><VALUE>1 &amp; 2</VALUE></PROPERTY></INSTANCE>\n</p:SecuritySettingData>",
        )
        .unwrap();
        assert_eq!(
            v[0].1,
            Value::String(
                "<INSTANCE CLASSNAME=\"X\"><PROPERTY NAME=\"a\" TYPE=\"string\"><VALUE>1 &amp; 2</VALUE></PROPERTY></INSTANCE>".into()
            )
        );
    }

    #[test]
    fn element_content_in_a_non_string_parameter_is_refused() {
        let e = typed(
            "SetKeyProtector",
            "<p:SecuritySettingData>x</p:SecuritySettingData><p:KeyProtector><b>1</b></p:KeyProtector>",
        )
        .unwrap_err();
        assert_eq!(e.kind, FaultKind::SchemaValidationError);
        assert!(e.reason.contains("holds an element <b>"), "{}", e.reason);
    }

    #[test]
    fn booleans_accept_the_xsd_lexical_forms() {
        let def = ParamDef::scalar("B", CimType::Boolean);
        for (text, want) in [
            ("true", true),
            ("1", true),
            ("false", false),
            (" 0 ", false),
        ] {
            assert_eq!(
                scalar(&def, text, None).unwrap(),
                Value::Boolean(want),
                "{text}"
            );
        }
        assert!(scalar(&def, "yes", None).is_err());
    }

    #[test]
    fn other_scalar_types_use_the_cim_parser() {
        let def = ParamDef::scalar("N", CimType::UInt32);
        assert_eq!(scalar(&def, "4096", None).unwrap(), Value::UInt32(4096));
        let e = scalar(&def, "4294967296", None).unwrap_err();
        assert_eq!(e.reason, "parameter N: \"4294967296\" is not a uint32");
    }

    #[test]
    fn a_parameterless_method_without_input_element_types_to_nothing() {
        assert_eq!(
            type_input(method_or_panic("StopService"), None).unwrap(),
            vec![]
        );
    }
}
