//! The WQL subset enumeration filters may use:
//! `SELECT * FROM Class [WHERE Prop = literal [AND Prop = literal]…]`.
//!
//! Literals are strings in single or double quotes (backslash escapes the quote and
//! itself), `TRUE`/`FALSE`, and decimal integers. Keywords ignore case. Anything else —
//! property lists, `OR`, other operators, `NULL` — is refused with a message saying
//! what was expected where.

use vmsec_cim::{Instance, Value};

/// Longest query accepted; real clients send a few hundred characters.
pub const MAX_QUERY_LEN: usize = 4096;
/// Most `AND` terms accepted.
pub const MAX_CONDITIONS: usize = 32;

/// A parsed query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The class after `FROM`, as written.
    pub class: String,
    /// `WHERE` equalities in order: property as written, literal as text (strings
    /// unquoted and unescaped, booleans `true`/`false`, integers in decimal).
    pub conditions: Vec<(String, String)>,
}

/// Why a query was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("WQL: {message} (at character {position})")]
pub struct WqlError {
    /// What was wrong.
    pub message: String,
    /// 0-based character offset where it was noticed.
    pub position: usize,
}

/// The `WHERE` equalities of an enumeration, evaluated over instances: the engine applies it
/// to every instance an enumeration returns, so a provider may treat it as a hint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    conditions: Vec<(String, String)>,
}

impl Filter {
    /// The conjunction of `conditions`: property names and literals as text, as
    /// [`Query::conditions`] holds them.
    pub fn new(conditions: Vec<(String, String)>) -> Filter {
        Filter { conditions }
    }

    /// The equalities, in order.
    pub fn conditions(&self) -> &[(String, String)] {
        &self.conditions
    }

    /// Whether there is no condition (every instance matches).
    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    /// Whether `instance` has every property of the filter equal to its literal. Property
    /// names ignore ASCII case. Strings compare ignoring ASCII case, as WQL does; booleans
    /// against `true`/`false` in any case; integers by their decimal text (so `007` matches
    /// nothing); datetimes by their CIM text exactly. A property that is absent, null, an
    /// array, a real, a char16 or a reference matches nothing. These are the rules
    /// `vmsec-service` has filtered by, so a provider that filters agrees with the engine.
    pub fn matches(&self, instance: &Instance) -> bool {
        self.conditions
            .iter()
            .all(|(name, want)| match instance.value(name) {
                Some(Value::String(v)) => v.eq_ignore_ascii_case(want),
                Some(Value::Boolean(v)) => {
                    want.eq_ignore_ascii_case(if *v { "true" } else { "false" })
                }
                Some(Value::Null) | None => false,
                Some(Value::DateTime(d)) => d.to_string() == *want,
                Some(v) => {
                    v.as_u64().is_some_and(|n| n.to_string() == *want)
                        || v.as_i64().is_some_and(|n| n.to_string() == *want)
                }
            })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Str(String),
    Number(String),
    Star,
    Equals,
    Comma,
}

fn describe(t: Option<&(usize, Token)>) -> String {
    match t {
        None => "the end of the query".to_owned(),
        Some((_, Token::Word(w))) => format!("\"{w}\""),
        Some((_, Token::Str(_))) => "a string".to_owned(),
        Some((_, Token::Number(n))) => format!("the number {n}"),
        Some((_, Token::Star)) => "\"*\"".to_owned(),
        Some((_, Token::Equals)) => "\"=\"".to_owned(),
        Some((_, Token::Comma)) => "\",\"".to_owned(),
    }
}

fn err(message: impl Into<String>, position: usize) -> WqlError {
    WqlError {
        message: message.into(),
        position,
    }
}

/// The tokens of `q` with their byte offsets. One loop with an arm per token kind: the
/// lexer is easier to check against the grammar whole than split across functions.
fn tokenize(q: &str) -> Result<Vec<(usize, Token)>, WqlError> {
    let chars: Vec<char> = q.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let start = i;
        match c {
            c if c.is_whitespace() => i += 1,
            '*' => {
                tokens.push((start, Token::Star));
                i += 1;
            }
            '=' => {
                tokens.push((start, Token::Equals));
                i += 1;
            }
            ',' => {
                tokens.push((start, Token::Comma));
                i += 1;
            }
            '\'' | '"' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err("unterminated string", start)),
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(&e) if e == '\\' || e == '\'' || e == '"' => s.push(e),
                                _ => {
                                    return Err(err(
                                        "a backslash may only escape a quote or a backslash",
                                        i,
                                    ));
                                }
                            }
                            i += 2;
                        }
                        Some(&e) if e == quote => {
                            i += 1;
                            break;
                        }
                        Some(&e) => {
                            s.push(e);
                            i += 1;
                        }
                    }
                }
                tokens.push((start, Token::Str(s)));
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let mut s = String::new();
                s.push(c);
                i += 1;
                while let Some(&d) = chars.get(i) {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    s.push(d);
                    i += 1;
                }
                if s.len() == 1 && !c.is_ascii_digit() {
                    return Err(err(format!("\"{c}\" must be followed by digits"), start));
                }
                if chars
                    .get(i)
                    .is_some_and(|d| d.is_alphanumeric() || *d == '_' || *d == '.')
                {
                    return Err(err("only decimal integers are supported as numbers", start));
                }
                tokens.push((start, Token::Number(s)));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut s = String::new();
                while let Some(&d) = chars.get(i) {
                    if !(d.is_ascii_alphanumeric() || d == '_') {
                        break;
                    }
                    s.push(d);
                    i += 1;
                }
                tokens.push((start, Token::Word(s)));
            }
            other => {
                let what = match other {
                    '<' | '>' | '!' => "only \"=\" comparisons are supported",
                    _ => "unexpected character",
                };
                return Err(err(format!("{what}: \"{other}\""), start));
            }
        }
    }
    Ok(tokens)
}

struct Cursor {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
}

impl Cursor {
    fn peek(&self) -> Option<&(usize, Token)> {
        self.tokens.get(self.at)
    }

    fn position(&self) -> usize {
        self.peek().map_or(self.end, |(p, _)| *p)
    }

    fn next(&mut self) -> Option<(usize, Token)> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn keyword(&mut self, kw: &str) -> Result<(), WqlError> {
        match self.peek() {
            Some((_, Token::Word(w))) if w.eq_ignore_ascii_case(kw) => {
                self.at += 1;
                Ok(())
            }
            t => Err(err(
                format!("expected {kw}, found {}", describe(t)),
                self.position(),
            )),
        }
    }

    fn identifier(&mut self, what: &str) -> Result<String, WqlError> {
        let pos = self.position();
        match self.next() {
            Some((_, Token::Word(w))) if !is_keyword(&w) => Ok(w),
            t => Err(err(
                format!("expected {what}, found {}", describe(t.as_ref())),
                pos,
            )),
        }
    }
}

fn is_keyword(w: &str) -> bool {
    [
        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "TRUE", "FALSE", "NULL", "IS", "LIKE", "ISA",
    ]
    .iter()
    .any(|k| k.eq_ignore_ascii_case(w))
}

/// Parses `query`. A recursive-descent parser written out in one function, clause by
/// clause (SELECT, FROM, WHERE), as WQL's grammar reads.
pub fn parse(query: &str) -> Result<Query, WqlError> {
    if query.chars().count() > MAX_QUERY_LEN {
        return Err(err(
            format!("the query is longer than {MAX_QUERY_LEN} characters"),
            MAX_QUERY_LEN,
        ));
    }
    let tokens = tokenize(query)?;
    let mut c = Cursor {
        tokens,
        at: 0,
        end: query.chars().count(),
    };
    c.keyword("SELECT")?;
    let pos = c.position();
    match c.next() {
        Some((_, Token::Star)) => {}
        Some((_, Token::Word(w))) if !is_keyword(&w) => {
            return Err(err("only SELECT * is supported, not a property list", pos));
        }
        t => {
            return Err(err(
                format!("expected *, found {}", describe(t.as_ref())),
                pos,
            ));
        }
    }
    c.keyword("FROM")?;
    let class = c.identifier("a class name")?;
    let mut conditions = Vec::new();
    if c.peek().is_some() {
        c.keyword("WHERE")?;
        loop {
            let property = c.identifier("a property name")?;
            let pos = c.position();
            match c.next() {
                Some((_, Token::Equals)) => {}
                t => {
                    return Err(err(
                        format!(
                            "expected = after {property}, found {}",
                            describe(t.as_ref())
                        ),
                        pos,
                    ));
                }
            }
            let pos = c.position();
            let value = match c.next() {
                Some((_, Token::Str(s))) => s,
                Some((_, Token::Number(n))) => n.strip_prefix('+').unwrap_or(&n).to_owned(),
                Some((_, Token::Word(w))) if w.eq_ignore_ascii_case("TRUE") => "true".to_owned(),
                Some((_, Token::Word(w))) if w.eq_ignore_ascii_case("FALSE") => "false".to_owned(),
                t => {
                    return Err(err(
                        format!(
                            "expected a string, number, TRUE or FALSE after {property} =, found {}",
                            describe(t.as_ref())
                        ),
                        pos,
                    ));
                }
            };
            conditions.push((property, value));
            if conditions.len() > MAX_CONDITIONS {
                return Err(err(format!("more than {MAX_CONDITIONS} conditions"), pos));
            }
            match c.peek() {
                None => break,
                Some((_, Token::Word(w))) if w.eq_ignore_ascii_case("AND") => c.at += 1,
                Some((_, Token::Word(w))) if w.eq_ignore_ascii_case("OR") => {
                    return Err(err("OR is not supported; only AND", c.position()));
                }
                t => {
                    return Err(err(
                        format!(
                            "expected AND or the end of the query, found {}",
                            describe(t)
                        ),
                        c.position(),
                    ));
                }
            }
        }
    }
    if c.peek().is_some() {
        return Err(err(
            format!("unexpected {} after the query", describe(c.peek())),
            c.position(),
        ));
    }
    Ok(Query { class, conditions })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(class: &str, conditions: &[(&str, &str)]) -> Query {
        Query {
            class: class.to_owned(),
            conditions: conditions
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn filters_match_as_the_service_compares() {
        use vmsec_cim::CimType;
        let inst = Instance::new("Msvm_ComputerSystem")
            .with("Name", CimType::String, Value::String("HV01".into()))
            .with("EnabledState", CimType::UInt16, Value::UInt16(2))
            .with("Delta", CimType::SInt32, Value::SInt32(-3))
            .with("Cancellable", CimType::Boolean, Value::Boolean(true))
            .with("Caption", CimType::String, Value::Null);
        let f = |c: &[(&str, &str)]| {
            Filter::new(
                c.iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                    .collect(),
            )
        };
        assert!(f(&[]).matches(&inst));
        assert!(f(&[("name", "hv01"), ("ENABLEDSTATE", "2")]).matches(&inst));
        assert!(f(&[("Delta", "-3"), ("Cancellable", "TRUE")]).matches(&inst));
        assert!(!f(&[("EnabledState", "02")]).matches(&inst));
        assert!(!f(&[("Name", "hv01"), ("EnabledState", "3")]).matches(&inst));
        assert!(
            !f(&[("Caption", "")]).matches(&inst),
            "null matches nothing"
        );
        assert!(!f(&[("Description", "")]).matches(&inst), "nor does absent");
    }

    #[test]
    fn select_star_without_where_names_the_class() {
        assert_eq!(
            parse("SELECT * FROM Msvm_ComputerSystem"),
            Ok(q("Msvm_ComputerSystem", &[]))
        );
    }

    #[test]
    fn keywords_ignore_case_and_whitespace_is_free() {
        assert_eq!(
            parse("  select\t*\nfrom Msvm_ComputerSystem wHeRe Name='x'  "),
            Ok(q("Msvm_ComputerSystem", &[("Name", "x")]))
        );
    }

    #[test]
    fn and_joins_string_boolean_and_number_literals() {
        assert_eq!(
            parse(
                r#"SELECT * FROM C WHERE A = 'a b' AND B = "q" AND T = TRUE AND F = false AND N = 5 AND M = -12"#
            ),
            Ok(q(
                "C",
                &[
                    ("A", "a b"),
                    ("B", "q"),
                    ("T", "true"),
                    ("F", "false"),
                    ("N", "5"),
                    ("M", "-12")
                ]
            ))
        );
    }

    #[test]
    fn backslash_escapes_quotes_in_strings() {
        assert_eq!(
            parse(r#"SELECT * FROM C WHERE A = 'it\'s \\ "ok"'"#),
            Ok(q("C", &[("A", r#"it's \ "ok""#)]))
        );
    }

    #[test]
    fn property_lists_are_refused_with_a_reason() {
        let e = parse("SELECT Name FROM C").unwrap_err();
        assert!(e.message.contains("only SELECT *"), "{e}");
        assert_eq!(e.position, 7);
    }

    #[test]
    fn or_and_other_operators_are_refused() {
        assert!(
            parse("SELECT * FROM C WHERE A = 1 OR B = 2")
                .unwrap_err()
                .message
                .contains("OR")
        );
        assert!(
            parse("SELECT * FROM C WHERE A > 1")
                .unwrap_err()
                .message
                .contains("only \"=\"")
        );
        assert!(
            parse("SELECT * FROM C WHERE A = NULL")
                .unwrap_err()
                .message
                .contains("expected a string")
        );
        assert!(
            parse("SELECT * FROM C WHERE A = 1.5")
                .unwrap_err()
                .message
                .contains("decimal integers")
        );
    }

    #[test]
    fn truncated_queries_say_what_was_expected() {
        assert_eq!(
            parse("SELECT * FROM").unwrap_err().message,
            "expected a class name, found the end of the query"
        );
        assert_eq!(
            parse("SELECT * FROM C WHERE A =").unwrap_err().message,
            "expected a string, number, TRUE or FALSE after A =, found the end of the query"
        );
        assert!(
            parse("SELECT * FROM C WHERE A = 'x")
                .unwrap_err()
                .message
                .contains("unterminated")
        );
        assert!(
            parse("SELECT * FROM C WHERE")
                .unwrap_err()
                .message
                .contains("property name")
        );
        assert!(parse("").unwrap_err().message.contains("expected SELECT"));
    }

    #[test]
    fn trailing_garbage_is_refused() {
        assert!(
            parse("SELECT * FROM C D")
                .unwrap_err()
                .message
                .contains("expected WHERE")
        );
        assert!(
            parse("SELECT * FROM C WHERE A = 1 B")
                .unwrap_err()
                .message
                .contains("expected AND")
        );
    }

    #[test]
    fn overlong_queries_are_refused() {
        let long = format!("SELECT * FROM C WHERE A = '{}'", "x".repeat(MAX_QUERY_LEN));
        assert!(parse(&long).unwrap_err().message.contains("longer than"));
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn any_quoted_string_round_trips(v in "[^\\\\']{0,40}") {
            let query = format!("SELECT * FROM C WHERE P = '{v}'");
            proptest::prop_assert_eq!(parse(&query), Ok(q("C", &[("P", &v)])));
        }
    }
}
