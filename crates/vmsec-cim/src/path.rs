//! Object paths: what a CIM reference points at.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, ErrorKind, excerpt};
use crate::limits::MAX_KEYS;
use crate::value::{Value, check_string, parse_i128};

/// A reference to an instance: class name, key bindings in order, and optionally its namespace.
///
/// The host part of a path (`\\HOST\root...`, CIM-XML `HOST`) is accepted and dropped: vmsec serves one host,
/// and references are resolved locally.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectPath {
    /// Namespace with `/` separators (`root/virtualization/v2`), if the path names one.
    pub namespace: Option<String>,
    /// Class of the referenced instance.
    pub class_name: String,
    /// Key property names and values, in the order written. Empty for a singleton (`Class=@`).
    pub keys: Vec<(String, Value)>,
}

impl ObjectPath {
    /// A path to `class_name` with no namespace and no keys yet.
    pub fn new(class_name: impl Into<String>) -> Self {
        ObjectPath {
            namespace: None,
            class_name: class_name.into(),
            keys: Vec::new(),
        }
    }

    /// Builder: sets the namespace.
    pub fn in_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Builder: appends a key binding.
    pub fn with_key(mut self, name: impl Into<String>, value: Value) -> Self {
        self.keys.push((name.into(), value));
        self
    }

    /// The value bound to key `name` (ASCII case-insensitive).
    pub fn key(&self, name: &str) -> Option<&Value> {
        self.keys
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// Normalises a WMI (`root\cimv2`) or DMTF (`root/cimv2`) namespace to `/` separators.
pub(crate) fn normalize_namespace(ns: &str) -> String {
    ns.split(['/', '\\'])
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Writes a key value as a WMI object path does: strings quoted, booleans and numbers bare.
fn key_text(v: &Value, out: &mut String) {
    match v {
        Value::Boolean(_)
        | Value::UInt8(_)
        | Value::UInt16(_)
        | Value::UInt32(_)
        | Value::UInt64(_)
        | Value::SInt8(_)
        | Value::SInt16(_)
        | Value::SInt32(_)
        | Value::SInt64(_)
        | Value::Real32(_)
        | Value::Real64(_) => out.push_str(&v.scalar_text().unwrap_or_default()),
        // Keys are never null or arrays in a valid path; writing NULL keeps the text parseable.
        Value::Null | Value::Array(_) | Value::Bytes(_) => out.push_str("NULL"),
        Value::Char16(_) | Value::String(_) | Value::DateTime(_) | Value::Reference(_) => {
            quote(&v.scalar_text().unwrap_or_default(), out)
        }
    }
}

impl fmt::Display for ObjectPath {
    /// WMI object-path text: `root/virtualization/v2:Msvm_ComputerSystem.CreationClassName="...",Name="..."`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        if let Some(ns) = &self.namespace {
            out.push_str(ns);
            out.push(':');
        }
        out.push_str(&self.class_name);
        if self.keys.is_empty() {
            out.push_str("=@");
        }
        for (i, (k, v)) in self.keys.iter().enumerate() {
            out.push(if i == 0 { '.' } else { ',' });
            out.push_str(k);
            out.push('=');
            key_text(v, &mut out);
        }
        f.write_str(&out)
    }
}

fn bad(s: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidReference,
        format!("{why} in \"{}\"", excerpt(s)),
    )
}

/// Whether `s` is a plausible CIM identifier (class or property name).
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

impl FromStr for ObjectPath {
    type Err = Error;

    /// Parses WMI object-path text. Typing of bare key values: `TRUE`/`FALSE` → boolean,
    /// integers → uint64 (sint64 when negative), other numbers → real64; quoted values → string.
    fn from_str(s: &str) -> Result<Self, Error> {
        check_string(s)?;
        let mut rest = s.trim();
        // Host prefix: `\\HOST\` or `//HOST/`.
        if let Some(after) = rest
            .strip_prefix("\\\\")
            .or_else(|| rest.strip_prefix("//"))
        {
            let end = after
                .find(['\\', '/'])
                .ok_or_else(|| bad(s, "host without namespace"))?;
            rest = after.get(end + 1..).unwrap_or_default();
        }
        let head_end = rest.find(['.', '=']).unwrap_or(rest.len());
        let (head, mut tail) = rest.split_at(head_end);
        let (namespace, class_name) = match head.rfind(':') {
            Some(i) => (
                Some(normalize_namespace(head.get(..i).unwrap_or_default())),
                head.get(i + 1..).unwrap_or_default(),
            ),
            None => (None, head),
        };
        if !is_identifier(class_name) {
            return Err(bad(s, "missing or invalid class name"));
        }
        let mut path = ObjectPath {
            namespace,
            class_name: class_name.to_owned(),
            keys: Vec::new(),
        };
        if tail.is_empty() || tail == "=@" {
            return Ok(path);
        }
        if let Some(single) = tail.strip_prefix('=') {
            // `Class="value"`: the single key's name is implied by the class; kept as "".
            let (v, after) = key_value(s, single)?;
            if !after.trim().is_empty() {
                return Err(bad(s, "text after the key value"));
            }
            path.keys.push((String::new(), v));
            return Ok(path);
        }
        loop {
            tail = tail.get(1..).unwrap_or_default(); // skip '.' or ','
            let eq = tail.find('=').ok_or_else(|| bad(s, "key without '='"))?;
            let name = tail.get(..eq).unwrap_or_default().trim();
            if !is_identifier(name) {
                return Err(bad(s, "invalid key name"));
            }
            let (v, after) = key_value(s, tail.get(eq + 1..).unwrap_or_default())?;
            if path.keys.len() >= MAX_KEYS {
                return Err(bad(s, "too many keys"));
            }
            path.keys.push((name.to_owned(), v));
            let after = after.trim_start();
            if after.is_empty() {
                return Ok(path);
            }
            if !after.starts_with(',') {
                return Err(bad(s, "expected ',' between keys"));
            }
            tail = after;
        }
    }
}

/// One key value at the start of `t`; returns it and the text after it.
fn key_value<'a>(whole: &str, t: &'a str) -> Result<(Value, &'a str), Error> {
    let t = t.trim_start();
    if let Some(body) = t.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e)) => out.push(e),
                    None => break,
                },
                '"' => return Ok((Value::String(out), body.get(i + 1..).unwrap_or_default())),
                _ => out.push(c),
            }
        }
        return Err(bad(whole, "unterminated quoted key value"));
    }
    let end = t.find(',').unwrap_or(t.len());
    let (lit, after) = t.split_at(end);
    let lit = lit.trim();
    let v = if lit.eq_ignore_ascii_case("true") {
        Value::Boolean(true)
    } else if lit.eq_ignore_ascii_case("false") {
        Value::Boolean(false)
    } else if let Some(n) = parse_i128(lit) {
        if let Ok(u) = u64::try_from(n) {
            Value::UInt64(u)
        } else {
            Value::SInt64(i64::try_from(n).map_err(|_| bad(whole, "integer key out of range"))?)
        }
    } else if let Ok(r) = lit.parse::<f64>() {
        Value::Real64(r)
    } else {
        return Err(bad(whole, "unquoted key value is not a number or boolean"));
    };
    Ok((v, after))
}
