//! Typed CIM values and their canonical text form (as in CIM-XML `VALUE` elements).

use std::borrow::Cow;

use crate::cim_type::CimType;
use crate::datetime::CimDateTime;
use crate::error::{Error, ErrorKind, excerpt};
use crate::limits::{MAX_ARRAY_LEN, MAX_STRING_BYTES};
use crate::path::ObjectPath;

/// A CIM value. `Null` stands for an absent value of any type; arrays hold scalars of one type.
#[derive(Clone, Debug)]
pub enum Value {
    /// No value.
    Null,
    /// `boolean`
    Boolean(bool),
    /// `uint8`
    UInt8(u8),
    /// `uint16`
    UInt16(u16),
    /// `uint32`
    UInt32(u32),
    /// `uint64`
    UInt64(u64),
    /// `sint8`
    SInt8(i8),
    /// `sint16`
    SInt16(i16),
    /// `sint32`
    SInt32(i32),
    /// `sint64`
    SInt64(i64),
    /// `real32`
    Real32(f32),
    /// `real64`
    Real64(f64),
    /// `char16` (any Unicode scalar; CIM's UTF-16 unit is widened)
    Char16(char),
    /// `string`
    String(String),
    /// `datetime`
    DateTime(CimDateTime),
    /// `reference`
    Reference(ObjectPath),
    /// An array of scalars (elements may be `Null`, as CIM-XML `VALUE.NULL` allows).
    Array(Vec<Value>),
    /// A `uint8[]` without null elements, held as bytes: a key protector is one, and as an
    /// `Array` it would take some 30 times its size. Equal to the `Array` of the same
    /// `UInt8`s; [`Value::from_bytes`] builds it, parsers build `Array`s.
    Bytes(Vec<u8>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Boolean(a), Boolean(b)) => a == b,
            (UInt8(a), UInt8(b)) => a == b,
            (UInt16(a), UInt16(b)) => a == b,
            (UInt32(a), UInt32(b)) => a == b,
            (UInt64(a), UInt64(b)) => a == b,
            (SInt8(a), SInt8(b)) => a == b,
            (SInt16(a), SInt16(b)) => a == b,
            (SInt32(a), SInt32(b)) => a == b,
            (SInt64(a), SInt64(b)) => a == b,
            (Real32(a), Real32(b)) => a == b,
            (Real64(a), Real64(b)) => a == b,
            (Char16(a), Char16(b)) => a == b,
            (String(a), String(b)) => a == b,
            (DateTime(a), DateTime(b)) => a == b,
            (Reference(a), Reference(b)) => a == b,
            (Array(a), Array(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (Bytes(bytes), Array(items)) | (Array(items), Bytes(bytes)) => {
                bytes.len() == items.len() && bytes.iter().zip(items).all(|(b, v)| *v == UInt8(*b))
            }
            _ => false,
        }
    }
}

impl Value {
    /// About how many bytes it holds on the heap (what a server keeping instances between
    /// requests counts against its memory budget).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Value::String(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Array(items) => {
                items.len() * std::mem::size_of::<Value>()
                    + items.iter().map(Value::heap_bytes).sum::<usize>()
            }
            Value::Reference(path) => {
                path.class_name.len()
                    + path.namespace.as_ref().map_or(0, String::len)
                    + path
                        .keys
                        .iter()
                        .map(|(k, v)| k.len() + std::mem::size_of::<Value>() + v.heap_bytes())
                        .sum::<usize>()
            }
            _ => 0,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Any unsigned integer, widened.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::UInt8(v) => Some(u64::from(*v)),
            Value::UInt16(v) => Some(u64::from(*v)),
            Value::UInt32(v) => Some(u64::from(*v)),
            Value::UInt64(v) => Some(*v),
            _ => None,
        }
    }

    /// Any signed integer, widened.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::SInt8(v) => Some(i64::from(*v)),
            Value::SInt16(v) => Some(i64::from(*v)),
            Value::SInt32(v) => Some(i64::from(*v)),
            Value::SInt64(v) => Some(*v),
            _ => None,
        }
    }

    /// The elements, if this is an array (a `Bytes` value's are made for the call).
    pub fn as_array(&self) -> Option<Cow<'_, [Value]>> {
        match self {
            Value::Array(v) => Some(Cow::Borrowed(v)),
            Value::Bytes(b) => Some(Cow::Owned(b.iter().map(|&b| Value::UInt8(b)).collect())),
            _ => None,
        }
    }

    /// Whether this is an array, of either form.
    pub fn is_array(&self) -> bool {
        matches!(self, Value::Array(_) | Value::Bytes(_))
    }

    /// The datetime, if this is one.
    pub fn as_datetime(&self) -> Option<&CimDateTime> {
        match self {
            Value::DateTime(d) => Some(d),
            _ => None,
        }
    }

    /// The object path, if this is a reference.
    pub fn as_reference(&self) -> Option<&ObjectPath> {
        match self {
            Value::Reference(p) => Some(p),
            _ => None,
        }
    }

    /// A `uint8[]` as bytes (how key protectors travel); `None` if any element is not a uint8.
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        let Value::Array(items) = self else {
            return match self {
                Value::Bytes(b) => Some(b.clone()),
                _ => None,
            };
        };
        items
            .iter()
            .map(|v| match v {
                Value::UInt8(b) => Some(*b),
                _ => None,
            })
            .collect()
    }

    /// Bytes as a `uint8[]` value.
    pub fn from_bytes(bytes: &[u8]) -> Value {
        Value::Bytes(bytes.to_vec())
    }

    /// The scalar type of this value; for arrays, of the first non-null element. `None` for `Null`.
    pub fn cim_type(&self) -> Option<CimType> {
        Some(match self {
            Value::Null => return None,
            Value::Boolean(_) => CimType::Boolean,
            Value::UInt8(_) => CimType::UInt8,
            Value::UInt16(_) => CimType::UInt16,
            Value::UInt32(_) => CimType::UInt32,
            Value::UInt64(_) => CimType::UInt64,
            Value::SInt8(_) => CimType::SInt8,
            Value::SInt16(_) => CimType::SInt16,
            Value::SInt32(_) => CimType::SInt32,
            Value::SInt64(_) => CimType::SInt64,
            Value::Real32(_) => CimType::Real32,
            Value::Real64(_) => CimType::Real64,
            Value::Char16(_) => CimType::Char16,
            Value::String(_) => CimType::String,
            Value::DateTime(_) => CimType::DateTime,
            Value::Reference(_) => CimType::Reference,
            Value::Array(items) => return items.iter().find_map(Value::cim_type),
            Value::Bytes(b) => return (!b.is_empty()).then_some(CimType::UInt8),
        })
    }

    /// Parses the text of one scalar of type `t` as CIM-XML writes it.
    ///
    /// Numbers and booleans tolerate surrounding whitespace; strings are taken verbatim.
    /// References are parsed from WMI object-path text (`ns:Class.Key="v"`).
    pub fn parse_scalar(t: CimType, text: &str) -> Result<Value, Error> {
        let trimmed = text.trim();
        let invalid = || {
            Error::new(
                ErrorKind::InvalidValue,
                format!("\"{}\" is not a {}", excerpt(trimmed), t.name()),
            )
        };
        Ok(match t {
            CimType::Boolean => {
                if trimmed.eq_ignore_ascii_case("true") {
                    Value::Boolean(true)
                } else if trimmed.eq_ignore_ascii_case("false") {
                    Value::Boolean(false)
                } else {
                    return Err(invalid());
                }
            }
            CimType::UInt8 => Value::UInt8(int(t, trimmed)?),
            CimType::UInt16 => Value::UInt16(int(t, trimmed)?),
            CimType::UInt32 => Value::UInt32(int(t, trimmed)?),
            CimType::UInt64 => Value::UInt64(int(t, trimmed)?),
            CimType::SInt8 => Value::SInt8(int(t, trimmed)?),
            CimType::SInt16 => Value::SInt16(int(t, trimmed)?),
            CimType::SInt32 => Value::SInt32(int(t, trimmed)?),
            CimType::SInt64 => Value::SInt64(int(t, trimmed)?),
            CimType::Real32 => Value::Real32(real32(trimmed).ok_or_else(invalid)??),
            CimType::Real64 => Value::Real64(real(trimmed).ok_or_else(invalid)?),
            CimType::Char16 => {
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Value::Char16(c),
                    _ => return Err(invalid()),
                }
            }
            CimType::String => {
                check_string(text)?;
                Value::String(text.to_owned())
            }
            CimType::DateTime => Value::DateTime(trimmed.parse()?),
            CimType::Reference => Value::Reference(trimmed.parse()?),
        })
    }

    /// The canonical text of a scalar, as CIM-XML writes it; `None` for `Null` and arrays.
    pub fn scalar_text(&self) -> Option<String> {
        Some(match self {
            Value::Null | Value::Array(_) | Value::Bytes(_) => return None,
            Value::Boolean(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
            Value::UInt8(v) => v.to_string(),
            Value::UInt16(v) => v.to_string(),
            Value::UInt32(v) => v.to_string(),
            Value::UInt64(v) => v.to_string(),
            Value::SInt8(v) => v.to_string(),
            Value::SInt16(v) => v.to_string(),
            Value::SInt32(v) => v.to_string(),
            Value::SInt64(v) => v.to_string(),
            Value::Real32(v) => real_text(f64::from(*v), format!("{v:?}")),
            Value::Real64(v) => real_text(*v, format!("{v:?}")),
            Value::Char16(c) => c.to_string(),
            Value::String(s) => s.clone(),
            Value::DateTime(d) => d.to_string(),
            Value::Reference(p) => p.to_string(),
        })
    }
}

fn real_text(v: f64, shortest: String) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "INF" } else { "-INF" }.to_owned()
    } else {
        shortest
    }
}

/// Rejects strings over [`MAX_STRING_BYTES`].
pub(crate) fn check_string(s: &str) -> Result<(), Error> {
    if s.len() > MAX_STRING_BYTES {
        return Err(Error::new(
            ErrorKind::StringTooLong,
            format!("{} bytes, limit {MAX_STRING_BYTES}", s.len()),
        ));
    }
    Ok(())
}

/// Rejects arrays over [`MAX_ARRAY_LEN`].
pub(crate) fn check_array_len(n: usize) -> Result<(), Error> {
    if n > MAX_ARRAY_LEN {
        return Err(Error::new(
            ErrorKind::ArrayTooLong,
            format!("more than {MAX_ARRAY_LEN} elements"),
        ));
    }
    Ok(())
}

/// Parses a decimal (or `0x` hexadecimal, as MOF allows) integer into `T`, telling
/// "not a number" apart from "a number that does not fit".
pub(crate) fn int<T: TryFrom<i128>>(t: CimType, s: &str) -> Result<T, Error> {
    let wide = parse_i128(s).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidValue,
            format!("\"{}\" is not a {}", excerpt(s), t.name()),
        )
    })?;
    T::try_from(wide).map_err(|_| {
        Error::new(
            ErrorKind::OutOfRange,
            format!("{} does not fit in {}", excerpt(s), t.name()),
        )
    })
}

/// An integer literal widened to i128; `None` when it is not an integer or exceeds even i128.
pub(crate) fn parse_i128(s: &str) -> Option<i128> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, s.get(1..)?),
        Some(b'+') => (false, s.get(1..)?),
        _ => (false, s),
    };
    let (radix, digits) = match body.get(..2) {
        Some("0x" | "0X") => (16, body.get(2..)?),
        _ => (10, body),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok();
    match magnitude {
        Some(m) => Some(if neg { -m } else { m }),
        // More digits than i128 holds: a number, but out of every CIM range.
        None => Some(if neg { i128::MIN } else { i128::MAX }),
    }
}

/// A real literal, accepting DSP0201's `INF`, `-INF` and `NaN`.
pub(crate) fn real(s: &str) -> Option<f64> {
    match s {
        "INF" | "+INF" => Some(f64::INFINITY),
        "-INF" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => {
            let looks_numeric = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'));
            if looks_numeric { s.parse().ok() } else { None }
        }
    }
}

/// A real32 literal parsed directly (parsing via f64 would round twice); `Some(Err)` when a
/// finite literal overflows real32.
pub(crate) fn real32(s: &str) -> Option<Result<f32, Error>> {
    let wide = real(s)?;
    if !wide.is_finite() {
        return Some(narrow_real32(wide));
    }
    let narrow: f32 = s.parse().ok()?;
    if narrow.is_infinite() {
        return Some(Err(Error::new(
            ErrorKind::OutOfRange,
            format!("{} does not fit in real32", excerpt(s)),
        )));
    }
    Some(Ok(narrow))
}

/// A real64 narrowed to real32, refusing finite values that overflow it.
pub(crate) fn narrow_real32(v: f64) -> Result<f32, Error> {
    // `as` rounds to nearest and keeps infinities and NaN, which is what a real32 literal means.
    #[allow(clippy::cast_possible_truncation)]
    let narrowed = v as f32;
    if narrowed.is_finite() != v.is_finite() {
        return Err(Error::new(
            ErrorKind::OutOfRange,
            format!("{v:e} does not fit in real32"),
        ));
    }
    Ok(narrowed)
}
