//! The linear pre-scan (see the crate docs): one pass, every step moves forward, and at the
//! first thing it cannot follow it stops and leaves the text to roxmltree.

use crate::{Error, Limits, Position};

/// XML's whitespace (production S).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Bytes that end a name in a tag. Lenient on purpose: the scan only has to find where
/// names end, roxmltree decides whether they are names.
fn ends_name(b: u8) -> bool {
    is_space(b) || matches!(b, b'/' | b'>' | b'=' | b'<' | b'"' | b'\'')
}

/// The index just past the first `pat` at or after `from`.
fn past(b: &[u8], from: usize, pat: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(pat.len())
        .position(|w| w == pat)
        .map(|i| from + i + pat.len())
}

struct Scan<'t> {
    text: &'t str,
    limits: &'t Limits,
    depth: usize,
    declarations: usize,
}

/// What a start tag turned out to be.
enum Tag {
    /// `<a …>`: one level deeper until its end tag.
    Open(usize),
    /// `<a …/>`.
    Empty(usize),
}

pub(crate) fn check(text: &str, limits: &Limits) -> Result<(), Error> {
    let mut scan = Scan {
        text,
        limits,
        depth: 0,
        declarations: 0,
    };
    scan.run()
}

impl Scan<'_> {
    fn at(&self, offset: usize) -> Position {
        Position::at(self.text, offset)
    }

    fn run(&mut self) -> Result<(), Error> {
        let b = self.text.as_bytes();
        let mut i = 0;
        while let Some(lt) = b.get(i..).and_then(|r| r.iter().position(|&c| c == b'<')) {
            let lt = i + lt;
            let rest = &b[lt..];
            let next = if rest.starts_with(b"<!--") {
                past(b, lt + 4, b"-->")
            } else if rest.starts_with(b"<![CDATA[") {
                past(b, lt + 9, b"]]>")
            } else if rest.starts_with(b"<?") {
                past(b, lt + 2, b"?>")
            } else if rest.starts_with(b"<!DOCTYPE") || rest.starts_with(b"<!ENTITY") {
                return Err(Error::DtdForbidden {
                    at: Some(self.at(lt)),
                });
            } else if rest.starts_with(b"<!") {
                None
            } else if rest.starts_with(b"</") {
                // An end tag with nothing open is an error roxmltree reports.
                self.depth.checked_sub(1).and_then(|d| {
                    self.depth = d;
                    past(b, lt + 2, b">")
                })
            } else {
                match self.start_tag(lt)? {
                    Some(Tag::Open(end)) => {
                        self.depth += 1;
                        Some(end)
                    }
                    Some(Tag::Empty(end)) => Some(end),
                    None => None,
                }
            };
            match next {
                Some(n) => i = n,
                None => return Ok(()),
            }
        }
        Ok(())
    }

    /// Reads the start tag at `lt` up to its `>`, counting its attributes and declarations
    /// and checking its depth. `None` when the tag cannot be followed.
    fn start_tag(&mut self, lt: usize) -> Result<Option<Tag>, Error> {
        let b = self.text.as_bytes();
        let limits = self.limits;
        if self.depth >= limits.max_depth {
            return Err(Error::TooDeep {
                limit: limits.max_depth,
                at: self.at(lt),
            });
        }
        let name_len = |from: usize| {
            b.get(from..)
                .map_or(0, |r| r.iter().take_while(|&&c| !ends_name(c)).count())
        };
        let skip_space = |from: usize| {
            from + b
                .get(from..)
                .map_or(0, |r| r.iter().take_while(|&&c| is_space(c)).count())
        };
        let mut i = lt + 1;
        let n = name_len(i);
        if n == 0 {
            return Ok(None);
        }
        i += n;
        let mut attributes = 0usize;
        loop {
            i = skip_space(i);
            match b.get(i) {
                None => return Ok(None),
                Some(b'>') => return Ok(Some(Tag::Open(i + 1))),
                Some(b'/') => {
                    return Ok((b.get(i + 1) == Some(&b'>')).then_some(Tag::Empty(i + 2)));
                }
                Some(_) => {}
            }
            let name_at = i;
            let n = name_len(i);
            if n == 0 {
                return Ok(None);
            }
            let name = &b[name_at..name_at + n];
            attributes += 1;
            if attributes > limits.max_attributes_per_element {
                return Err(Error::TooManyAttributes {
                    limit: limits.max_attributes_per_element,
                    at: self.at(lt),
                });
            }
            if name == b"xmlns" || name.starts_with(b"xmlns:") {
                self.declarations += 1;
                if self.declarations > limits.max_namespace_declarations {
                    return Err(Error::TooManyNamespaceDeclarations {
                        limit: limits.max_namespace_declarations,
                        at: self.at(lt),
                    });
                }
            }
            i = skip_space(name_at + n);
            if b.get(i) != Some(&b'=') {
                return Ok(None);
            }
            i = skip_space(i + 1);
            let quote = match b.get(i) {
                Some(&q @ (b'"' | b'\'')) => q,
                _ => return Ok(None),
            };
            match b
                .get(i + 1..)
                .and_then(|r| r.iter().position(|&c| c == quote))
            {
                Some(close) => i = i + 1 + close + 1,
                None => return Ok(None),
            }
        }
    }
}
