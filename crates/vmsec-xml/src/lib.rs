//! The one way vmsec turns untrusted text into an XML tree: request envelopes, embedded
//! instances, key protectors and guardian metadata all go through [`parse`] (or
//! [`parse_bytes`]), each with its own [`Limits`]. Pure: no I/O.
//!
//! # Why a pre-scan
//!
//! roxmltree keeps, for every element that declares a namespace, its own copy of the
//! namespaces in scope, and checks each copied entry against the element's new declarations.
//! An element nested *d* deep under ancestors that each declared one prefix therefore costs
//! about *d*² before it exists, and a chain of *N* such elements about *N*³:
//! `<a xmlns:p0="u"><a xmlns:p1="u">…` took 4.2 s at 2,000 levels (46 KB) and 17.6 s at
//! 3,000. Its duplicate-attribute check is pairwise too, so one element with 100,000
//! attributes kept a thread busy for minutes. Checking depth on the finished tree comes too
//! late: the cost has been paid by then.
//!
//! So before roxmltree sees the text, [`parse`] runs one linear pass over it (a lexer that
//! knows start, end and empty tags, quoted attribute values, comments, processing
//! instructions and CDATA sections) that counts element depth, attributes per element and
//! namespace declarations (`xmlns`, `xmlns:*`) in the whole document, and stops at the first
//! limit crossed. With depth and declarations bounded, the namespace copying above is bounded
//! by a constant per element; the node budget is roxmltree's own `nodes_limit`, enforced while
//! it builds. A DOCTYPE or ENTITY declaration is refused as soon as it is seen.
//!
//! The pre-scan bounds cost; it does not validate. When it meets something it cannot follow
//! (an unclosed comment, a tag cut short, stray `<!`), the text is not well-formed at that
//! point, so it stops and leaves the refusal to roxmltree, which fails there too, having
//! built no more than the part already counted.
//!
//! # Byte-order marks
//!
//! One leading UTF-8 byte-order mark is dropped. A second one right after it is refused
//! ([`Error::SecondByteOrderMark`]): roxmltree would silently skip it, and a key protector
//! stored as received would then carry both back to clients.
//!
//! ```
//! let limits = vmsec_xml::Limits {
//!     max_bytes: 1 << 20,
//!     max_depth: 8,
//!     max_attributes_per_element: 8,
//!     max_namespace_declarations: 4,
//!     max_nodes: 1000,
//! };
//! let doc = vmsec_xml::parse("<a xmlns=\"urn:x\"><b/></a>", &limits)?;
//! assert_eq!(doc.root_element().tag_name().namespace(), Some("urn:x"));
//! let bomb = "<a xmlns:p=\"u\">".repeat(5);
//! assert!(matches!(
//!     vmsec_xml::parse(&bomb, &limits),
//!     Err(vmsec_xml::Error::TooManyNamespaceDeclarations { limit: 4, .. })
//! ));
//! # Ok::<(), vmsec_xml::Error>(())
//! ```
#![warn(missing_docs)]

mod scan;

use std::fmt;

use roxmltree::{Document, ParsingOptions};

/// Bounds on one document. Each caller picks its own; every one of them is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input, in bytes (a BOM included).
    pub max_bytes: usize,
    /// Deepest accepted element nesting; the root element is at depth 1.
    pub max_depth: usize,
    /// Most attributes on one element, namespace declarations included.
    pub max_attributes_per_element: usize,
    /// Most namespace declarations (`xmlns="…"`, `xmlns:p="…"`) in the whole document.
    pub max_namespace_declarations: usize,
    /// Most nodes roxmltree may build (elements, text, comments, processing instructions).
    pub max_nodes: u32,
}

/// Where in the text (after a dropped BOM) a limit was crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    /// Byte offset of the markup that crossed the limit.
    pub offset: usize,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub column: u32,
}

impl Position {
    /// The position of byte `offset` in `text`; computed only once, when a limit is crossed.
    fn at(text: &str, offset: usize) -> Position {
        let before = text.get(..offset).unwrap_or(text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let column = before[line_start..].chars().count() + 1;
        Position {
            offset,
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a text was not turned into a tree. Limit variants name the limit and where it was
/// crossed; roxmltree's own errors are kept whole, sorted by what callers tell apart.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is larger than [`Limits::max_bytes`].
    #[error("the document is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A second UTF-8 byte-order mark follows the first.
    #[error("the document starts with two byte-order marks (U+FEFF); at most one is accepted")]
    SecondByteOrderMark,
    /// The bytes given to [`parse_bytes`] are not UTF-8.
    #[error("not UTF-8: {0}")]
    NotUtf8(std::str::Utf8Error),
    /// An element deeper than [`Limits::max_depth`].
    #[error("elements nest deeper than {limit} levels (at {at})")]
    TooDeep {
        /// The limit.
        limit: usize,
        /// The start tag of the first element too deep.
        at: Position,
    },
    /// An element with more than [`Limits::max_attributes_per_element`] attributes.
    #[error("an element has more than {limit} attributes (at {at})")]
    TooManyAttributes {
        /// The limit.
        limit: usize,
        /// The start tag of that element.
        at: Position,
    },
    /// More than [`Limits::max_namespace_declarations`] namespace declarations.
    #[error("the document has more than {limit} namespace declarations (at {at})")]
    TooManyNamespaceDeclarations {
        /// The limit.
        limit: usize,
        /// The start tag holding the first declaration over the limit.
        at: Position,
    },
    /// More than [`Limits::max_nodes`] nodes.
    #[error("the document has more than {limit} XML nodes")]
    TooManyNodes {
        /// The limit.
        limit: u32,
    },
    /// A DOCTYPE or ENTITY declaration; never accepted.
    #[error("a DTD (<!DOCTYPE or <!ENTITY) is not allowed{}", at_suffix(.at))]
    DtdForbidden {
        /// The declaration, when the pre-scan found it.
        at: Option<Position>,
    },
    /// A reference to an entity XML does not predefine (there is no DTD to define one).
    #[error("{0}")]
    Entity(roxmltree::Error),
    /// The text ends before the document does (or holds no element at all).
    #[error("{0}")]
    Truncated(roxmltree::Error),
    /// Any other way of not being well-formed XML with well-formed namespaces.
    #[error("{0}")]
    Syntax(roxmltree::Error),
}

fn at_suffix(at: &Option<Position>) -> String {
    at.map(|p| format!(" (at {p})")).unwrap_or_default()
}

impl Error {
    /// Line and column (1-based) of the error, when known.
    pub fn line_column(&self) -> Option<(u32, u32)> {
        match self {
            Error::TooDeep { at, .. }
            | Error::TooManyAttributes { at, .. }
            | Error::TooManyNamespaceDeclarations { at, .. }
            | Error::DtdForbidden { at: Some(at) } => Some((at.line, at.column)),
            Error::Entity(e) | Error::Truncated(e) | Error::Syntax(e) => {
                let p = e.pos();
                Some((p.row, p.col))
            }
            _ => None,
        }
    }

    fn from_roxmltree(e: roxmltree::Error, limits: &Limits) -> Error {
        use roxmltree::Error as X;
        match e {
            X::DtdDetected => Error::DtdForbidden { at: None },
            X::NodesLimitReached => Error::TooManyNodes {
                limit: limits.max_nodes,
            },
            X::UnknownEntityReference(..)
            | X::EntityReferenceLoop(..)
            | X::MalformedEntityReference(..)
            | X::InvalidExternalID(..)
            | X::EntityResolver(..) => Error::Entity(e),
            X::UnexpectedEndOfStream | X::UnclosedRootNode | X::NoRootNode => Error::Truncated(e),
            other => Error::Syntax(other),
        }
    }
}

/// Parses `text` within `limits`: size, BOM, then the linear pre-scan (depth, attributes,
/// namespace declarations, DTD), then roxmltree with DTDs refused and the node budget.
pub fn parse<'i>(text: &'i str, limits: &Limits) -> Result<Document<'i>, Error> {
    if text.len() > limits.max_bytes {
        return Err(Error::TooLarge {
            size: text.len(),
            limit: limits.max_bytes,
        });
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.starts_with('\u{feff}') {
        return Err(Error::SecondByteOrderMark);
    }
    scan::check(text, limits)?;
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: limits.max_nodes,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(text, options).map_err(|e| Error::from_roxmltree(e, limits))
}

/// [`parse`] for bytes that must be UTF-8; the size limit applies before decoding.
pub fn parse_bytes<'i>(bytes: &'i [u8], limits: &Limits) -> Result<Document<'i>, Error> {
    if bytes.len() > limits.max_bytes {
        return Err(Error::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(Error::NotUtf8)?;
    parse(text, limits)
}

#[cfg(test)]
mod tests;
