//! The WQL enumeration filters may use:
//!
//! - `SELECT * FROM Class [WHERE clause]`, the clause made of comparisons `a = b`, `a != b`,
//!   `a <> b`, `a LIKE 'pattern'` (`%` any run, `_` one character) joined by `AND`, `OR`
//!   and `NOT`, with parentheses. A side is a property (system properties `__SERVER`,
//!   `__CLASS`… included), a string in single or double quotes (backslash escapes the quote
//!   and itself), `TRUE`/`FALSE`, or a decimal integer.
//! - `ASSOCIATORS OF {path} [WHERE AssocClass = C ResultClass = C Role = R ResultRole = R]`
//!   and `REFERENCES OF {path} [WHERE ResultClass = C Role = R]`, the path a WMI object path
//!   (`Class.Key='v',Key2="w"`, optionally behind `namespace:`).
//!
//! Keywords ignore case. Anything else is refused with a message naming the token where it
//! was found. Parsing is bounded: the query's length ([`MAX_QUERY_LEN`]), the nesting of
//! parentheses and `NOT` ([`MAX_DEPTH`], the only recursion) and the number of comparisons
//! ([`MAX_CONDITIONS`]); every character is read once by the lexer and every token once by
//! the parser.

mod filter;
mod lex;

pub use filter::{Expr, Filter, Op, Operand, SYSTEM_PROPERTIES, like};

use crate::wire::association::{Returns, Source, Traversal};
use lex::{Token, describe, quoted, tokenize};

/// Longest query accepted; real clients send a few hundred characters.
pub const MAX_QUERY_LEN: usize = 4096;
/// Most comparisons in one clause.
pub const MAX_CONDITIONS: usize = 64;
/// Deepest nesting of parentheses and `NOT`.
pub const MAX_DEPTH: usize = 32;
/// Most keys an object path may bind.
pub const MAX_PATH_KEYS: usize = 16;

/// A parsed query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// `SELECT * FROM class [WHERE clause]`.
    Select {
        /// The class after `FROM`, as written.
        class: String,
        /// The `WHERE` clause.
        clause: Option<Expr>,
    },
    /// `ASSOCIATORS OF` or `REFERENCES OF`.
    Traverse(Traversal),
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

pub(crate) fn err(message: impl Into<String>, position: usize) -> WqlError {
    WqlError {
        message: message.into(),
        position,
    }
}

fn is_keyword(w: &str) -> bool {
    [
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "TRUE",
        "FALSE",
        "NULL",
        "IS",
        "LIKE",
        "ISA",
        "OF",
        "ASSOCIATORS",
        "REFERENCES",
    ]
    .iter()
    .any(|k| k.eq_ignore_ascii_case(w))
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
    conditions: usize,
}

impl Parser {
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

    fn at_word(&self, kw: &str) -> bool {
        matches!(self.peek(), Some((_, Token::Word(w))) if w.eq_ignore_ascii_case(kw))
    }

    fn keyword(&mut self, kw: &str) -> Result<(), WqlError> {
        if self.at_word(kw) {
            self.at += 1;
            return Ok(());
        }
        Err(err(
            format!("expected {kw}, found {}", describe(self.peek())),
            self.position(),
        ))
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

    fn end_of_query(&self) -> Result<(), WqlError> {
        match self.peek() {
            None => Ok(()),
            t => Err(err(
                format!("unexpected {} after the query", describe(t)),
                self.position(),
            )),
        }
    }

    /// `or := and (OR and)*`
    fn or(&mut self, depth: usize) -> Result<Expr, WqlError> {
        let mut terms = vec![self.and(depth)?];
        while self.at_word("OR") {
            self.at += 1;
            terms.push(self.and(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    /// `and := unary (AND unary)*`
    fn and(&mut self, depth: usize) -> Result<Expr, WqlError> {
        let mut terms = vec![self.unary(depth)?];
        while self.at_word("AND") {
            self.at += 1;
            terms.push(self.unary(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    /// `unary := NOT unary | ( or ) | comparison`
    fn unary(&mut self, depth: usize) -> Result<Expr, WqlError> {
        let nested = self.at_word("NOT") || matches!(self.peek(), Some((_, Token::Open)));
        if nested && depth >= MAX_DEPTH {
            return Err(err(
                format!("parentheses and NOT nest deeper than {MAX_DEPTH} levels"),
                self.position(),
            ));
        }
        if self.at_word("NOT") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        if matches!(self.peek(), Some((_, Token::Open))) {
            self.at += 1;
            let inner = self.or(depth + 1)?;
            return match self.next() {
                Some((_, Token::Close)) => Ok(inner),
                t => Err(err(
                    format!("expected \")\", found {}", describe(t.as_ref())),
                    self.tokens.get(self.at - 1).map_or(self.end, |(p, _)| *p),
                )),
            };
        }
        self.comparison()
    }

    fn operand(&mut self, after: &str) -> Result<Operand, WqlError> {
        let pos = self.position();
        match self.next() {
            Some((_, Token::Str(s))) => Ok(Operand::Str(s)),
            Some((_, Token::Number(n))) => {
                Ok(Operand::Int(n.strip_prefix('+').unwrap_or(&n).to_owned()))
            }
            Some((_, Token::Word(w))) if w.eq_ignore_ascii_case("TRUE") => Ok(Operand::Bool(true)),
            Some((_, Token::Word(w))) if w.eq_ignore_ascii_case("FALSE") => {
                Ok(Operand::Bool(false))
            }
            Some((_, Token::Word(w))) if !is_keyword(&w) => Ok(Operand::Property(w)),
            t => Err(err(
                format!(
                    "expected a property, string, number, TRUE or FALSE {after}, found {}",
                    describe(t.as_ref())
                ),
                pos,
            )),
        }
    }

    /// `comparison := operand (= | != | <> | LIKE) operand`
    fn comparison(&mut self) -> Result<Expr, WqlError> {
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(err(
                format!("more than {MAX_CONDITIONS} comparisons"),
                self.position(),
            ));
        }
        let left = self.operand("to compare")?;
        let pos = self.position();
        let op = match self.next() {
            Some((_, Token::Eq)) => Op::Eq,
            Some((_, Token::Ne)) => Op::Ne,
            Some((_, Token::Word(w))) if w.eq_ignore_ascii_case("LIKE") => Op::Like,
            t => {
                return Err(err(
                    format!(
                        "expected =, !=, <> or LIKE after {}, found {}",
                        side(&left),
                        describe(t.as_ref())
                    ),
                    pos,
                ));
            }
        };
        let pos = self.position();
        let right = self.operand(&format!("after {} {}", side(&left), op_text(op)))?;
        if op == Op::Like {
            match &right {
                Operand::Str(p) if p.contains('[') => {
                    return Err(err(
                        "LIKE character sets ([…]) are not supported; use % and _",
                        pos,
                    ));
                }
                Operand::Str(_) => {}
                _ => return Err(err("LIKE takes a string pattern", pos)),
            }
        }
        Ok(Expr::Compare { left, op, right })
    }

    /// The `WHERE` of `ASSOCIATORS OF`/`REFERENCES OF`: `Keyword = Name` pairs, no `AND`.
    fn traversal_clause(&mut self, t: &mut Traversal) -> Result<(), WqlError> {
        self.keyword("WHERE")?;
        if self.peek().is_none() {
            return Err(err(
                "expected AssocClass, ResultClass, Role or ResultRole after WHERE",
                self.end,
            ));
        }
        while self.peek().is_some() {
            let pos = self.position();
            let word = self.identifier("AssocClass, ResultClass, Role or ResultRole")?;
            let slot = match (t.returns, word.to_ascii_lowercase().as_str()) {
                (Returns::Associated, "assocclass") => &mut t.association_class,
                (Returns::Associated, "resultclass") => &mut t.result_class,
                // For REFERENCES OF, ResultClass names the association class.
                (Returns::Associations, "resultclass") => &mut t.association_class,
                (_, "role") => &mut t.role,
                (Returns::Associated, "resultrole") => &mut t.result_role,
                _ => {
                    return Err(err(
                        format!(
                            "\"{word}\" is not supported here; use AssocClass, ResultClass, Role or ResultRole"
                        ),
                        pos,
                    ));
                }
            };
            let pos = self.position();
            match self.next() {
                Some((_, Token::Eq)) => {}
                t => {
                    return Err(err(
                        format!("expected = after {word}, found {}", describe(t.as_ref())),
                        pos,
                    ));
                }
            }
            let value = self.identifier(&format!("a name after {word} ="))?;
            if slot.replace(value).is_some() {
                return Err(err(format!("{word} is given twice"), pos));
            }
        }
        Ok(())
    }
}

fn side(o: &Operand) -> String {
    match o {
        Operand::Property(p) => p.clone(),
        Operand::Str(_) => "a string".to_owned(),
        Operand::Bool(b) => b.to_string().to_uppercase(),
        Operand::Int(n) => n.clone(),
    }
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Like => "LIKE",
    }
}

fn is_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A WMI object path as `ASSOCIATORS OF {…}` gives it: `[\\host\][namespace:]Class.Key=value,…`,
/// values quoted with `'` or `"` or bare numbers and booleans. `at` is where it starts.
fn object_path(text: &str, at: usize) -> Result<Source, WqlError> {
    let bad = |why: &str| err(format!("the object path {{{}}}: {why}", excerpt(text)), at);
    let mut rest = text.trim();
    if let Some(after) = rest
        .strip_prefix("\\\\")
        .or_else(|| rest.strip_prefix("//"))
    {
        let end = after
            .find(['\\', '/'])
            .ok_or_else(|| bad("a host without a namespace"))?;
        rest = &after[end + 1..];
    }
    let head_end = rest.find('.').unwrap_or(rest.len());
    let (head, mut keys) = rest.split_at(head_end);
    let (namespace, class) = match head.rfind(':') {
        Some(i) => (Some(head[..i].replace('\\', "/")), &head[i + 1..]),
        None => (None, head),
    };
    if !is_name(class) {
        return Err(bad("it names no class"));
    }
    let mut selectors = Vec::new();
    if !keys.is_empty() {
        keys = &keys[1..];
        let chars: Vec<char> = keys.chars().collect();
        let mut i = 0;
        loop {
            let start = i;
            while chars.get(i).is_some_and(|c| *c != '=') {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect::<String>().trim().to_owned();
            if !is_name(&name) || chars.get(i).is_none() {
                return Err(bad("a key is not Name=value"));
            }
            i += 1;
            while chars.get(i).is_some_and(|c| c.is_whitespace()) {
                i += 1;
            }
            let value = match chars.get(i) {
                Some('\'' | '"') => {
                    let (v, after) = quoted(&chars, i).map_err(|e| bad(&e.message))?;
                    i = after;
                    v
                }
                _ => {
                    let s = i;
                    while chars.get(i).is_some_and(|c| *c != ',') {
                        i += 1;
                    }
                    let v: String = chars[s..i].iter().collect::<String>().trim().to_owned();
                    if v.is_empty()
                        || !v
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '+')
                    {
                        return Err(bad("a key value is neither quoted nor a number or boolean"));
                    }
                    v
                }
            };
            if selectors.len() >= MAX_PATH_KEYS {
                return Err(bad("too many keys"));
            }
            selectors.push((name, value));
            while chars.get(i).is_some_and(|c| c.is_whitespace()) {
                i += 1;
            }
            match chars.get(i) {
                None => break,
                Some(',') => i += 1,
                Some(_) => return Err(bad("expected \",\" between keys")),
            }
        }
    }
    Ok(Source {
        class: class.to_owned(),
        namespace,
        selectors,
    })
}

fn excerpt(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Parses `query`: the clauses in the order WQL's grammar reads them.
pub fn parse(query: &str) -> Result<Query, WqlError> {
    let end = query.chars().count();
    if end > MAX_QUERY_LEN {
        return Err(err(
            format!("the query is longer than {MAX_QUERY_LEN} characters"),
            MAX_QUERY_LEN,
        ));
    }
    let mut p = Parser {
        tokens: tokenize(query)?,
        at: 0,
        end,
        conditions: 0,
    };
    for (word, returns) in [
        ("ASSOCIATORS", Returns::Associated),
        ("REFERENCES", Returns::Associations),
    ] {
        if !p.at_word(word) {
            continue;
        }
        p.at += 1;
        p.keyword("OF")?;
        let pos = p.position();
        let source = match p.next() {
            Some((at, Token::Path(path))) => object_path(&path, at)?,
            t => {
                return Err(err(
                    format!(
                        "expected an object path {{…}} after {word} OF, found {}",
                        describe(t.as_ref())
                    ),
                    pos,
                ));
            }
        };
        let mut t = Traversal {
            returns,
            source,
            association_class: None,
            result_class: None,
            role: None,
            result_role: None,
        };
        if p.peek().is_some() {
            p.traversal_clause(&mut t)?;
        }
        return Ok(Query::Traverse(t));
    }
    p.keyword("SELECT")?;
    let pos = p.position();
    match p.next() {
        Some((_, Token::Star)) => {}
        Some((_, Token::Word(w))) if !is_keyword(&w) => {
            return Err(err(
                format!("only SELECT * is supported, not a property list (\"{w}\")"),
                pos,
            ));
        }
        t => {
            return Err(err(
                format!("expected *, found {}", describe(t.as_ref())),
                pos,
            ));
        }
    }
    p.keyword("FROM")?;
    let class = p.identifier("a class name")?;
    let mut clause = None;
    if p.peek().is_some() {
        p.keyword("WHERE")?;
        clause = Some(p.or(0)?);
    }
    p.end_of_query()?;
    Ok(Query::Select { class, clause })
}

#[cfg(test)]
mod tests;
