//! MOF instance parser over [`Lexer`] tokens.

use super::lexer::{Lexer, Tok, Token};
use crate::cim_type::CimType;
use crate::error::{Error, ErrorKind, excerpt};
use crate::instance::{Instance, Property};
use crate::limits::{MAX_DEPTH, MAX_PROPERTIES};
use crate::schema::{self, ClassDef};
use crate::value::{Value, check_array_len, narrow_real32, real};

/// An untyped literal as written.
enum Lit {
    Null,
    Bool(bool),
    /// Integer, already widened; the text is kept for messages.
    Int(i128, String),
    /// Value and text (real32 parses the text itself to avoid double rounding).
    Real(f64, String),
    Str(String),
    Char(char),
    /// `INF`, `-INF`, `NaN`: only meaningful for real properties.
    Special(f64, String),
}

struct Parser<'a> {
    lx: Lexer<'a>,
    tok: Token,
}

pub(super) fn parse(text: &str) -> Result<Instance, Error> {
    let mut lx = Lexer::new(text);
    let tok = lx.next()?;
    let mut p = Parser { lx, tok };
    p.skip_pragmas()?;
    p.qualifiers()?;
    p.keyword("instance")?;
    p.keyword("of")?;
    let class_name = p.ident("class name")?;
    if p.is_ident("as") {
        p.advance()?;
        match p.tok.kind {
            Tok::Alias(_) => p.advance()?,
            _ => return Err(p.unexpected("an alias ($Name) after `as`")),
        }
    }
    p.punct('{')?;
    let class_def = schema::class(&class_name);
    let mut inst = Instance::new(class_name);
    while !matches!(p.tok.kind, Tok::Punct('}')) {
        if inst.len() >= MAX_PROPERTIES {
            return Err(p.error(
                ErrorKind::TooManyProperties,
                format!("more than {MAX_PROPERTIES} properties"),
            ));
        }
        let prop = p.property(class_def)?;
        if inst.get(&prop.name).is_some() {
            return Err(p
                .error(
                    ErrorKind::DuplicateProperty,
                    format!("{} appears twice", prop.name),
                )
                .in_property(&prop.name));
        }
        inst.push(prop);
    }
    p.punct('}')?;
    p.punct(';')?;
    if p.tok.kind != Tok::Eof {
        return Err(p.unexpected("end of text after the instance"));
    }
    Ok(inst)
}

impl Parser<'_> {
    fn advance(&mut self) -> Result<(), Error> {
        self.tok = self.lx.next()?;
        Ok(())
    }

    fn error(&self, kind: ErrorKind, detail: impl Into<String>) -> Error {
        self.lx.error(kind, self.tok.offset, detail)
    }

    fn unexpected(&self, wanted: &str) -> Error {
        let found = match &self.tok.kind {
            Tok::Eof => {
                return self.error(
                    ErrorKind::Truncated,
                    format!("text ends where {wanted} is expected"),
                );
            }
            Tok::Ident(s) => format!("`{}`", excerpt(s)),
            Tok::Alias(s) => format!("`${}`", excerpt(s)),
            Tok::Str(s) => format!("string \"{}\"", excerpt(s)),
            Tok::Char(c) => format!("character {c:?}"),
            Tok::Number(n) => format!("number {}", excerpt(n)),
            Tok::Punct(c) => format!("`{c}`"),
        };
        self.error(
            ErrorKind::Syntax,
            format!("expected {wanted}, found {found}"),
        )
    }

    fn is_ident(&self, kw: &str) -> bool {
        matches!(&self.tok.kind, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn keyword(&mut self, kw: &str) -> Result<(), Error> {
        if self.is_ident(kw) {
            return self.advance();
        }
        Err(self.unexpected(&format!("`{kw}`")))
    }

    fn ident(&mut self, what: &str) -> Result<String, Error> {
        match &self.tok.kind {
            Tok::Ident(s) => {
                let s = s.clone();
                self.advance()?;
                Ok(s)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn punct(&mut self, c: char) -> Result<(), Error> {
        if self.tok.kind == Tok::Punct(c) {
            return self.advance();
        }
        Err(self.unexpected(&format!("`{c}`")))
    }

    /// `#pragma name(args)` lines before the instance: accepted and ignored.
    fn skip_pragmas(&mut self) -> Result<(), Error> {
        while self.tok.kind == Tok::Punct('#') {
            self.advance()?;
            self.keyword("pragma")?;
            self.ident("pragma name")?;
            self.punct('(')?;
            while self.tok.kind != Tok::Punct(')') {
                if self.tok.kind == Tok::Eof {
                    return Err(self.unexpected("`)`"));
                }
                self.advance()?;
            }
            self.advance()?;
        }
        Ok(())
    }

    /// An optional `[ ... ]` qualifier list. Returns the `CIMTYPE` qualifier's value if present;
    /// all other qualifiers are skipped, with bracket nesting bounded by [`MAX_DEPTH`].
    fn qualifiers(&mut self) -> Result<Option<String>, Error> {
        if self.tok.kind != Tok::Punct('[') {
            return Ok(None);
        }
        let mut cimtype = None;
        let mut depth = 0usize;
        loop {
            match &self.tok.kind {
                Tok::Punct('[' | '(' | '{') => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(self.error(
                            ErrorKind::TooDeep,
                            format!("qualifiers nested more than {MAX_DEPTH} deep"),
                        ));
                    }
                }
                Tok::Punct(']' | ')' | '}') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        self.advance()?;
                        return Ok(cimtype);
                    }
                }
                Tok::Ident(name) if depth == 1 && name.eq_ignore_ascii_case("CIMTYPE") => {
                    self.advance()?;
                    self.punct('(')?;
                    match &self.tok.kind {
                        Tok::Str(s) => cimtype = Some(s.clone()),
                        _ => return Err(self.unexpected("a CIMTYPE string")),
                    }
                    self.advance()?;
                    self.punct(')')?;
                    continue;
                }
                Tok::Eof => return Err(self.unexpected("`]`")),
                _ => {}
            }
            self.advance()?;
        }
    }

    /// One `Name = value;` of an instance, typed by the class definition when there is one.
    /// A recursive-descent rule written out whole, like the grammar it follows.
    fn property(&mut self, class_def: Option<&ClassDef>) -> Result<Property, Error> {
        let cimtype = self.qualifiers()?;
        let name_offset = self.tok.offset;
        let name = self.ident("a property name or `}`")?;
        let in_prop = |e: Error| e.in_property(&name);
        let declared = match cimtype {
            Some(t) => Some(
                parse_cimtype(&t)
                    .ok_or_else(|| {
                        self.lx.error(
                            ErrorKind::UnknownType,
                            name_offset,
                            format!("CIMTYPE(\"{}\")", excerpt(&t)),
                        )
                    })
                    .map_err(in_prop)?,
            ),
            None => class_def
                .and_then(|c| c.property(&name))
                .map(|d| (d.cim_type, d.is_array)),
        };
        self.punct('=').map_err(in_prop)?;
        let prop = if self.tok.kind == Tok::Punct('{') {
            let start = self.tok.offset;
            self.advance().map_err(in_prop)?;
            let mut items = Vec::new();
            while self.tok.kind != Tok::Punct('}') {
                if !items.is_empty() {
                    self.punct(',').map_err(in_prop)?;
                }
                check_array_len(items.len() + 1)
                    .map_err(|e| self.lx.error(e.kind(), start, e.detail()))
                    .map_err(in_prop)?;
                let at = self.tok.offset;
                items.push((self.literal().map_err(in_prop)?, at));
            }
            self.advance().map_err(in_prop)?;
            if let Some((_, false)) = declared {
                return Err(self
                    .lx
                    .error(
                        ErrorKind::InvalidValue,
                        start,
                        "array value for a scalar property",
                    )
                    .in_property(&name));
            }
            let t = match declared {
                Some((t, _)) => t,
                None => infer_array(items.iter().map(|(l, _)| l))
                    .ok_or_else(|| {
                        self.lx.error(
                            ErrorKind::InvalidValue,
                            start,
                            "array elements of different kinds",
                        )
                    })
                    .map_err(in_prop)?,
            };
            let values = items
                .into_iter()
                .map(|(l, at)| {
                    typed(l, t)
                        .map_err(|e| e.at(crate::error::Position::of_offset(self.lx_text(), at)))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(in_prop)?;
            Property {
                name: name.clone(),
                cim_type: t,
                is_array: true,
                value: Value::Array(values),
            }
        } else {
            let at = self.tok.offset;
            let lit = self.literal().map_err(in_prop)?;
            let (t, is_array) =
                declared.unwrap_or_else(|| (infer(&lit).unwrap_or(CimType::String), false));
            let value = if is_array && !matches!(lit, Lit::Null) {
                return Err(self
                    .lx
                    .error(
                        ErrorKind::InvalidValue,
                        at,
                        "scalar value for an array property; use { }",
                    )
                    .in_property(&name));
            } else {
                typed(lit, t).map_err(|e| self.lx.error(e.kind(), at, e.detail()))
            }
            .map_err(in_prop)?;
            Property {
                name: name.clone(),
                cim_type: t,
                is_array,
                value,
            }
        };
        self.punct(';').map_err(|e| e.in_property(&name))?;
        Ok(prop)
    }

    fn lx_text(&self) -> &str {
        self.lx.text()
    }

    /// One scalar literal (with optional sign for numbers; adjacent strings joined).
    fn literal(&mut self) -> Result<Lit, Error> {
        let negative = match self.tok.kind {
            Tok::Punct('-') => {
                self.advance()?;
                true
            }
            Tok::Punct('+') => {
                self.advance()?;
                false
            }
            _ => false,
        };
        let lit = match &self.tok.kind {
            Tok::Number(n) => number(n, negative).ok_or_else(|| {
                self.error(
                    ErrorKind::InvalidValue,
                    format!("malformed number {}", excerpt(n)),
                )
            })?,
            Tok::Ident(s) if s.eq_ignore_ascii_case("INF") => Lit::Special(
                if negative {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                },
                s.clone(),
            ),
            Tok::Ident(s) if s.eq_ignore_ascii_case("NaN") && !negative => {
                Lit::Special(f64::NAN, s.clone())
            }
            _ if negative => return Err(self.unexpected("a number after the sign")),
            Tok::Ident(s) if s.eq_ignore_ascii_case("TRUE") => Lit::Bool(true),
            Tok::Ident(s) if s.eq_ignore_ascii_case("FALSE") => Lit::Bool(false),
            Tok::Ident(s) if s.eq_ignore_ascii_case("NULL") => Lit::Null,
            Tok::Char(c) => Lit::Char(*c),
            Tok::Str(s) => {
                let mut joined = s.clone();
                self.advance()?;
                while let Tok::Str(more) = &self.tok.kind {
                    joined.push_str(more);
                    crate::value::check_string(&joined)
                        .map_err(|e| self.lx.error(e.kind(), self.tok.offset, e.detail()))?;
                    self.advance()?;
                }
                return Ok(Lit::Str(joined));
            }
            Tok::Alias(_) => {
                return Err(self.error(
                    ErrorKind::InvalidValue,
                    "alias references are not supported as values",
                ));
            }
            _ => return Err(self.unexpected("a value")),
        };
        self.advance()?;
        Ok(lit)
    }
}

/// `uint8`, `uint8[]`, `ref:Class`, `object` (WMI's spellings of a property type).
fn parse_cimtype(s: &str) -> Option<(CimType, bool)> {
    let (base, is_array) = match s.strip_suffix("[]") {
        Some(b) => (b, true),
        None => (s, false),
    };
    if base
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("ref:"))
    {
        return Some((CimType::Reference, is_array));
    }
    CimType::from_name(base).map(|t| (t, is_array))
}

/// A number token: decimal, `0x` hex, leading-zero octal, `b`-suffixed binary, or real.
fn number(text: &str, negative: bool) -> Option<Lit> {
    let lower = text.to_ascii_lowercase();
    let magnitude = if let Some(hex) = lower.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()
    } else if let Some(bin) = lower
        .strip_suffix('b')
        .filter(|b| !b.is_empty() && b.chars().all(|c| c == '0' || c == '1'))
    {
        i128::from_str_radix(bin, 2).ok()
    } else if lower.contains(['.', 'e']) {
        let v = real(&lower)?;
        let shown = if negative {
            format!("-{lower}")
        } else {
            lower.clone()
        };
        return Some(Lit::Real(if negative { -v } else { v }, shown));
    } else if lower.len() > 1 && lower.starts_with('0') {
        i128::from_str_radix(&lower, 8).ok()
    } else if lower.chars().all(|c| c.is_ascii_digit()) {
        // Longer than i128: still a number, just out of every CIM range.
        Some(lower.parse::<i128>().unwrap_or(i128::MAX))
    } else {
        None
    }?;
    let shown = if negative {
        format!("-{text}")
    } else {
        text.to_owned()
    };
    Some(Lit::Int(
        if negative { -magnitude } else { magnitude },
        shown,
    ))
}

fn infer(lit: &Lit) -> Option<CimType> {
    Some(match lit {
        Lit::Null => return None,
        Lit::Bool(_) => CimType::Boolean,
        Lit::Int(n, _) => {
            if i64::try_from(*n).is_ok() {
                CimType::SInt64
            } else {
                CimType::UInt64
            }
        }
        Lit::Real(..) | Lit::Special(..) => CimType::Real64,
        Lit::Str(_) => CimType::String,
        Lit::Char(_) => CimType::Char16,
    })
}

/// The common type of array elements; integers and reals together make real64.
fn infer_array<'a>(items: impl Iterator<Item = &'a Lit>) -> Option<CimType> {
    let mut t: Option<CimType> = None;
    for item in items {
        let Some(it) = infer(item) else { continue };
        t = Some(match t {
            None => it,
            Some(prev) if prev == it => prev,
            Some(CimType::SInt64 | CimType::UInt64) if it == CimType::Real64 => CimType::Real64,
            Some(CimType::Real64) if matches!(it, CimType::SInt64 | CimType::UInt64) => {
                CimType::Real64
            }
            Some(CimType::SInt64) if it == CimType::UInt64 => CimType::UInt64,
            Some(CimType::UInt64) if it == CimType::SInt64 => CimType::UInt64,
            Some(_) => return None,
        });
    }
    Some(t.unwrap_or(CimType::String))
}

fn wrong(lit_kind: &str, t: CimType) -> Error {
    Error::new(
        ErrorKind::InvalidValue,
        format!("{lit_kind} is not a {}", t.name()),
    )
}

/// A literal converted to type `t`, with range checks.
fn typed(lit: Lit, t: CimType) -> Result<Value, Error> {
    Ok(match (lit, t) {
        (Lit::Null, _) => Value::Null,
        (Lit::Bool(b), CimType::Boolean) => Value::Boolean(b),
        (Lit::Int(n, text), t) if t.is_integer() => {
            if !schema::fits(t, n) {
                return Err(Error::new(
                    ErrorKind::OutOfRange,
                    format!("{} does not fit in {}", excerpt(&text), t.name()),
                ));
            }
            Value::parse_scalar(t, &n.to_string())?
        }
        // Integers are exact in f64 up to 2^53; larger ones round, as any MOF compiler would.
        (Lit::Int(n, _), CimType::Real64) => Value::Real64(int_to_f64(n)),
        (Lit::Int(n, _), CimType::Real32) => Value::Real32(narrow_real32(int_to_f64(n))?),
        (Lit::Real(v, _) | Lit::Special(v, _), CimType::Real64) => Value::Real64(v),
        (Lit::Real(_, text), CimType::Real32) => Value::parse_scalar(CimType::Real32, &text)?,
        (Lit::Special(v, _), CimType::Real32) => Value::Real32(narrow_real32(v)?),
        (Lit::Char(c), CimType::Char16) => Value::Char16(c),
        (Lit::Str(s), CimType::Char16) => Value::parse_scalar(CimType::Char16, &s)?,
        (Lit::Str(s), CimType::String) => Value::parse_scalar(CimType::String, &s)?,
        (Lit::Str(s), CimType::DateTime) => Value::DateTime(s.parse()?),
        (Lit::Str(s), CimType::Reference) => Value::Reference(s.parse()?),
        (Lit::Bool(_), t) => return Err(wrong("a boolean", t)),
        (Lit::Int(_, text), t) => return Err(wrong(&format!("integer {}", excerpt(&text)), t)),
        (Lit::Real(..), t) => return Err(wrong("a real number", t)),
        (Lit::Special(_, s), t) => return Err(wrong(&format!("`{}`", excerpt(&s)), t)),
        (Lit::Char(_), t) => return Err(wrong("a character literal", t)),
        (Lit::Str(s), t) => return Err(wrong(&format!("string \"{}\"", excerpt(&s)), t)),
    })
}

fn int_to_f64(n: i128) -> f64 {
    // Lossy by nature (see caller); the string round trip avoids a lossy `as` cast.
    n.to_string().parse().unwrap_or(f64::NAN)
}
