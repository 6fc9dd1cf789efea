//! The tokens of a WQL query. One loop with an arm per token kind: the lexer is easier to
//! check against the grammar whole than split across functions. It reads each character once.

use super::{WqlError, err};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Token {
    Word(String),
    Str(String),
    Number(String),
    /// An object path between braces (`{Class.Key='v'}`), its text without the braces.
    Path(String),
    Star,
    Comma,
    Open,
    Close,
    Eq,
    /// `!=` or `<>`.
    Ne,
}

/// How a token is named in an error message: the token itself, so that the client sees
/// what was refused.
pub(super) fn describe(t: Option<&(usize, Token)>) -> String {
    match t {
        None => "the end of the query".to_owned(),
        Some((_, Token::Word(w))) => format!("\"{w}\""),
        Some((_, Token::Str(s))) => {
            format!("the string '{}'", s.chars().take(40).collect::<String>())
        }
        Some((_, Token::Number(n))) => format!("the number {n}"),
        Some((_, Token::Path(_))) => "an object path {…}".to_owned(),
        Some((_, Token::Star)) => "\"*\"".to_owned(),
        Some((_, Token::Comma)) => "\",\"".to_owned(),
        Some((_, Token::Open)) => "\"(\"".to_owned(),
        Some((_, Token::Close)) => "\")\"".to_owned(),
        Some((_, Token::Eq)) => "\"=\"".to_owned(),
        Some((_, Token::Ne)) => "\"!=\"".to_owned(),
    }
}

/// A quoted string starting at `chars[start]`; backslash escapes a quote or itself. Returns
/// the text and the index after the closing quote.
pub(super) fn quoted(chars: &[char], start: usize) -> Result<(String, usize), WqlError> {
    let quote = chars[start];
    let mut s = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(err("unterminated string", start)),
            Some('\\') => {
                match chars.get(i + 1) {
                    Some(&e) if e == '\\' || e == '\'' || e == '"' => s.push(e),
                    _ => {
                        return Err(err("a backslash may only escape a quote or a backslash", i));
                    }
                }
                i += 2;
            }
            Some(&e) if e == quote => return Ok((s, i + 1)),
            Some(&e) => {
                s.push(e);
                i += 1;
            }
        }
    }
}

/// The tokens of `q` with their character offsets.
pub(super) fn tokenize(q: &str) -> Result<Vec<(usize, Token)>, WqlError> {
    let chars: Vec<char> = q.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let start = i;
        let single = match c {
            '*' => Some(Token::Star),
            ',' => Some(Token::Comma),
            '(' => Some(Token::Open),
            ')' => Some(Token::Close),
            '=' => Some(Token::Eq),
            _ => None,
        };
        if let Some(t) = single {
            tokens.push((start, t));
            i += 1;
            continue;
        }
        match c {
            c if c.is_whitespace() => i += 1,
            '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                match (c, next) {
                    ('!', Some('=')) | ('<', Some('>')) => {
                        tokens.push((start, Token::Ne));
                        i += 2;
                    }
                    _ => {
                        let op: String = [Some(c), next.filter(|n| *n == '=')]
                            .into_iter()
                            .flatten()
                            .collect();
                        return Err(err(
                            format!(
                                "the operator \"{op}\" is not supported; use =, !=, <> or LIKE"
                            ),
                            start,
                        ));
                    }
                }
            }
            '\'' | '"' => {
                let (s, after) = quoted(&chars, i)?;
                tokens.push((start, Token::Str(s)));
                i = after;
            }
            '{' => {
                // The path ends at the first `}` outside quotes; quotes inside are kept for
                // the path parser.
                let mut j = i + 1;
                let mut quote = None;
                loop {
                    match (chars.get(j), quote) {
                        (None, _) => return Err(err("unterminated object path {", start)),
                        (Some('\\'), Some(_)) => j += 2,
                        (Some(&c), Some(q)) if c == q => {
                            quote = None;
                            j += 1;
                        }
                        (Some(_), Some(_)) => j += 1,
                        (Some(&c), None) if c == '\'' || c == '"' => {
                            quote = Some(c);
                            j += 1;
                        }
                        (Some('}'), None) => break,
                        (Some(_), None) => j += 1,
                    }
                }
                tokens.push((start, Token::Path(chars[i + 1..j].iter().collect())));
                i = j + 1;
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
            other => return Err(err(format!("unexpected character \"{other}\""), start)),
        }
    }
    Ok(tokens)
}
