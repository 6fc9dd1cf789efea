//! MOF writer: one property per line, types restored by schema or a `CIMTYPE` qualifier.

use crate::instance::Instance;
use crate::schema;
use crate::value::Value;

pub(super) fn serialize(inst: &Instance) -> String {
    let class_def = schema::class(inst.class_name());
    let mut out = format!("instance of {}\n{{\n", inst.class_name());
    for p in inst.properties() {
        out.push_str("    ");
        let schema_types_it = class_def
            .and_then(|c| c.property(&p.name))
            .is_some_and(|d| d.cim_type == p.cim_type && d.is_array == p.holds_array());
        if !schema_types_it {
            out.push_str("[CIMTYPE(\"");
            out.push_str(p.cim_type.name());
            if p.holds_array() {
                out.push_str("[]");
            }
            out.push_str("\")] ");
        }
        out.push_str(&p.name);
        out.push_str(" = ");
        match p.value.as_array() {
            Some(items) => {
                out.push('{');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    literal(item, &mut out);
                }
                out.push('}');
            }
            None => literal(&p.value, &mut out),
        }
        out.push_str(";\n");
    }
    out.push_str("};\n");
    out
}

fn literal(v: &Value, out: &mut String) {
    match v {
        Value::Null | Value::Array(_) | Value::Bytes(_) => out.push_str("NULL"),
        Value::Boolean(b) => out.push_str(if *b { "TRUE" } else { "FALSE" }),
        Value::Real32(r) => real(f64::from(*r), format!("{r:?}"), out),
        Value::Real64(r) => real(*r, format!("{r:?}"), out),
        Value::Char16(c) => {
            out.push('\'');
            escape(&c.to_string(), '\'', out);
            out.push('\'');
        }
        Value::String(_) | Value::DateTime(_) | Value::Reference(_) => {
            out.push('"');
            escape(&v.scalar_text().unwrap_or_default(), '"', out);
            out.push('"');
        }
        other => out.push_str(&other.scalar_text().unwrap_or_default()),
    }
}

/// MOF reals need a decimal point (`1.0e300`, not Rust's `1e300`).
fn real(v: f64, shortest: String, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "INF" } else { "-INF" });
    } else if shortest.contains('.') {
        out.push_str(&shortest);
    } else if let Some((mantissa, exp)) = shortest.split_once('e') {
        out.push_str(&format!("{mantissa}.0e{exp}"));
    } else {
        out.push_str(&shortest);
        out.push_str(".0");
    }
}

fn escape(s: &str, quote: char, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() && u32::from(c) <= 0xFFFF => {
                out.push_str(&format!("\\x{:04X}", u32::from(c)))
            }
            c => out.push(c),
        }
    }
}
