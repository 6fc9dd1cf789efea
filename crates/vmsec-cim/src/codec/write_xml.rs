//! Writes an instance as `<INSTANCE>` XML in either dialect.

use super::dialect::Dialect;
use super::xml::{escape_attr, escape_text};
use crate::cim_type::CimType;
use crate::instance::{Instance, Property};
use crate::path::ObjectPath;
use crate::value::Value;

/// Serializes `inst`: system properties first (with `CLASSORIGIN="___SYSTEM"`, as WMI writes
/// them), then ordinary properties in order. No XML declaration: the text is embedded in another
/// document.
pub(crate) fn serialize(inst: &Instance, dialect: Dialect) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("<INSTANCE CLASSNAME=\"");
    escape_attr(inst.class_name(), &mut out);
    out.push_str("\">");
    for p in inst.system_properties() {
        write_property(p, Some("___SYSTEM"), dialect, &mut out);
    }
    for p in inst.properties() {
        write_property(p, None, dialect, &mut out);
    }
    out.push_str("</INSTANCE>");
    out
}

fn open(tag: &str, name: &str, cim_type: Option<CimType>, origin: Option<&str>, out: &mut String) {
    out.push('<');
    out.push_str(tag);
    out.push_str(" NAME=\"");
    escape_attr(name, out);
    out.push('"');
    if let Some(o) = origin {
        out.push_str(" CLASSORIGIN=\"");
        escape_attr(o, out);
        out.push('"');
    }
    if let Some(t) = cim_type {
        out.push_str(" TYPE=\"");
        out.push_str(t.name());
        out.push('"');
    }
}

fn write_property(p: &Property, origin: Option<&str>, dialect: Dialect, out: &mut String) {
    match (p.cim_type, p.holds_array()) {
        (CimType::Reference, false) => {
            open("PROPERTY.REFERENCE", &p.name, None, origin, out);
            out.push('>');
            if let Value::Reference(path) = &p.value {
                write_value_reference(path, out);
            }
            out.push_str("</PROPERTY.REFERENCE>");
        }
        (CimType::Reference, true) => {
            // Neither DTD has a reference array in CIM DTD 2.0 form; both dialects use WMI's element.
            open("PROPERTY.REFARRAY", &p.name, None, origin, out);
            out.push('>');
            if let Value::Array(items) = &p.value {
                out.push_str("<VALUE.REFARRAY>");
                for item in items {
                    match item {
                        Value::Reference(path) => write_value_reference(path, out),
                        _ => out.push_str("<VALUE.NULL/>"),
                    }
                }
                out.push_str("</VALUE.REFARRAY>");
            }
            out.push_str("</PROPERTY.REFARRAY>");
        }
        (t, false) => {
            open("PROPERTY", &p.name, Some(t), origin, out);
            out.push('>');
            if let Some(text) = p.value.scalar_text() {
                out.push_str("<VALUE>");
                escape_text(&text, out);
                out.push_str("</VALUE>");
            }
            out.push_str("</PROPERTY>");
        }
        (t, true) => {
            open("PROPERTY.ARRAY", &p.name, Some(t), origin, out);
            let items = p.value.as_array();
            if let (Dialect::Wmi, Some(items)) = (dialect, &items) {
                // ARRAYSIZE is optional in both DTDs; this crate's WMI writer states the count, readers ignore it.
                out.push_str(&format!(" ARRAYSIZE=\"{}\"", items.len()));
            }
            out.push('>');
            if let Some(items) = items {
                out.push_str("<VALUE.ARRAY>");
                for item in items.iter() {
                    match item.scalar_text() {
                        Some(text) => {
                            out.push_str("<VALUE>");
                            escape_text(&text, out);
                            out.push_str("</VALUE>");
                        }
                        None => out.push_str("<VALUE.NULL/>"),
                    }
                }
                out.push_str("</VALUE.ARRAY>");
            }
            out.push_str("</PROPERTY.ARRAY>");
        }
    }
}

/// `VALUE.REFERENCE` with a `LOCALINSTANCEPATH` when the path has a namespace, else an `INSTANCENAME`.
fn write_value_reference(path: &ObjectPath, out: &mut String) {
    out.push_str("<VALUE.REFERENCE>");
    match &path.namespace {
        Some(ns) => {
            out.push_str("<LOCALINSTANCEPATH><LOCALNAMESPACEPATH>");
            for part in ns.split(['/', '\\']).filter(|p| !p.is_empty()) {
                out.push_str("<NAMESPACE NAME=\"");
                escape_attr(part, out);
                out.push_str("\"/>");
            }
            out.push_str("</LOCALNAMESPACEPATH>");
            write_instance_name(path, out);
            out.push_str("</LOCALINSTANCEPATH>");
        }
        None => write_instance_name(path, out),
    }
    out.push_str("</VALUE.REFERENCE>");
}

fn write_instance_name(path: &ObjectPath, out: &mut String) {
    out.push_str("<INSTANCENAME CLASSNAME=\"");
    escape_attr(&path.class_name, out);
    out.push_str("\">");
    for (name, value) in &path.keys {
        if !name.is_empty() {
            out.push_str("<KEYBINDING NAME=\"");
            escape_attr(name, out);
            out.push_str("\">");
        }
        write_key_value(value, out);
        if !name.is_empty() {
            out.push_str("</KEYBINDING>");
        }
    }
    out.push_str("</INSTANCENAME>");
}

/// `KEYVALUE` with both `VALUETYPE` (DSP0201 2.0) and `TYPE` (2.2+), so the exact type survives.
fn write_key_value(value: &Value, out: &mut String) {
    if let Value::Reference(p) = value {
        write_value_reference(p, out);
        return;
    }
    let t = value.cim_type().unwrap_or(CimType::String);
    let valuetype = match t {
        CimType::Boolean => "boolean",
        t if t.is_integer() || matches!(t, CimType::Real32 | CimType::Real64) => "numeric",
        _ => "string",
    };
    out.push_str("<KEYVALUE VALUETYPE=\"");
    out.push_str(valuetype);
    out.push_str("\" TYPE=\"");
    out.push_str(t.name());
    out.push_str("\">");
    escape_text(&value.scalar_text().unwrap_or_default(), out);
    out.push_str("</KEYVALUE>");
}
