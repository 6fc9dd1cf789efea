//! MOF tokens. Comments and whitespace are skipped; string escapes are decoded here.

use crate::error::{Error, ErrorKind, Position, excerpt};
use crate::value::check_string;

/// One token and where it starts (byte offset).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Token {
    pub kind: Tok,
    pub offset: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    /// Identifier or keyword (`instance`, `TRUE`, `NULL`, ...).
    Ident(String),
    /// `$Alias`
    Alias(String),
    /// String literal, escapes decoded (adjacent literals are joined by the parser).
    Str(String),
    /// Character literal.
    Char(char),
    /// Number literal, as written (sign excluded).
    Number(String),
    /// One of `{ } [ ] ( ) ; , = : -  +  #`.
    Punct(char),
    /// End of input.
    Eof,
}

pub(super) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Lexer { text, pos: 0 }
    }

    pub(super) fn text(&self) -> &'a str {
        self.text
    }

    pub(super) fn error(&self, kind: ErrorKind, offset: usize, detail: impl Into<String>) -> Error {
        Error::new(kind, detail).at(Position::of_offset(self.text, offset))
    }

    fn peek_char(&self) -> Option<char> {
        self.text.get(self.pos..).and_then(|r| r.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or_default()
    }

    fn skip_trivia(&mut self) -> Result<(), Error> {
        loop {
            while self.peek_char().is_some_and(char::is_whitespace) {
                self.bump();
            }
            if self.rest().starts_with("//") {
                let len = self.rest().find('\n').unwrap_or(self.rest().len());
                self.pos += len;
            } else if self.rest().starts_with("/*") {
                let start = self.pos;
                let end = self
                    .rest()
                    .get(2..)
                    .and_then(|r| r.find("*/"))
                    .ok_or_else(|| {
                        self.error(ErrorKind::Truncated, start, "unterminated /* comment")
                    })?;
                self.pos += end + 4;
            } else {
                return Ok(());
            }
        }
    }

    pub(super) fn next(&mut self) -> Result<Token, Error> {
        self.skip_trivia()?;
        let offset = self.pos;
        let Some(c) = self.bump() else {
            return Ok(Token {
                kind: Tok::Eof,
                offset,
            });
        };
        let kind = match c {
            '"' => Tok::Str(self.quoted('"', offset)?),
            '\'' => {
                let s = self.quoted('\'', offset)?;
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(ch), None) => Tok::Char(ch),
                    _ => {
                        return Err(self.error(
                            ErrorKind::Syntax,
                            offset,
                            "character literal must hold one character",
                        ));
                    }
                }
            }
            '$' => Tok::Alias(self.ident_tail(String::new())),
            c if c.is_alphabetic() || c == '_' => Tok::Ident(self.ident_tail(c.to_string())),
            c if c.is_ascii_digit()
                || (c == '.' && self.peek_char().is_some_and(|d| d.is_ascii_digit())) =>
            {
                let mut s = c.to_string();
                while let Some(d) = self.peek_char() {
                    let exponent_sign =
                        matches!(d, '+' | '-') && s.ends_with(['e', 'E']) && !s.starts_with("0x");
                    if d.is_ascii_alphanumeric() || d == '.' || exponent_sign {
                        s.push(d);
                        self.bump();
                    } else {
                        break;
                    }
                }
                Tok::Number(s)
            }
            '{' | '}' | '[' | ']' | '(' | ')' | ';' | ',' | '=' | ':' | '-' | '+' | '#' => {
                Tok::Punct(c)
            }
            other => {
                return Err(self.error(
                    ErrorKind::Syntax,
                    offset,
                    format!("unexpected character {:?}", other),
                ));
            }
        };
        Ok(Token { kind, offset })
    }

    fn ident_tail(&mut self, mut s: String) -> String {
        while let Some(c) = self
            .peek_char()
            .filter(|c| c.is_alphanumeric() || *c == '_')
        {
            s.push(c);
            self.bump();
        }
        s
    }

    /// The body of a quoted literal, escapes decoded: `\b \t \n \f \r \" \' \\ \xHHHH`.
    fn quoted(&mut self, quote: char, start: usize) -> Result<String, Error> {
        let mut out = String::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None => {
                    return Err(self.error(ErrorKind::Truncated, start, "unterminated literal"));
                }
                Some(c) if c == quote => break,
                Some('\\') => {
                    let decoded = match self.bump() {
                        Some('b') => '\u{8}',
                        Some('t') => '\t',
                        Some('n') => '\n',
                        Some('f') => '\u{c}',
                        Some('r') => '\r',
                        Some('"') => '"',
                        Some('\'') => '\'',
                        Some('\\') => '\\',
                        Some('x' | 'X') => self.hex_escape(at)?,
                        Some(other) => {
                            return Err(self.error(
                                ErrorKind::Syntax,
                                at,
                                format!("unknown escape \\{}", excerpt(&other.to_string())),
                            ));
                        }
                        None => {
                            return Err(self.error(
                                ErrorKind::Truncated,
                                start,
                                "unterminated literal",
                            ));
                        }
                    };
                    out.push(decoded);
                }
                Some(c) => out.push(c),
            }
            if out.len() > crate::limits::MAX_STRING_BYTES {
                check_string(&out).map_err(|e| e.at(Position::of_offset(self.text, start)))?;
            }
        }
        Ok(out)
    }

    /// `\x` followed by 1–4 hex digits: one UTF-16 code unit, which must not be a lone surrogate.
    fn hex_escape(&mut self, at: usize) -> Result<char, Error> {
        let mut value = 0u32;
        let mut digits = 0;
        while digits < 4 {
            match self.peek_char().and_then(|c| c.to_digit(16)) {
                Some(d) => {
                    value = value * 16 + d;
                    digits += 1;
                    self.bump();
                }
                None => break,
            }
        }
        if digits == 0 {
            return Err(self.error(ErrorKind::Syntax, at, "\\x without hex digits"));
        }
        char::from_u32(value)
            .ok_or_else(|| self.error(ErrorKind::Syntax, at, "\\x escape is a lone surrogate"))
    }
}
