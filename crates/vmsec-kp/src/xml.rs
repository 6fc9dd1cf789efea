//! Strict XML reading helpers shared by the protector and metadata parsers:
//! input limits, DTD refusal, and a cursor that walks an element's children
//! in schema order.

use base64::Engine;
use roxmltree::{Document, Node};

use crate::error::{Error, Result};

/// Largest document accepted (a protector with hundreds of wrappings is well under this).
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;
/// Deepest element nesting accepted; the schemas need fewer than ten levels.
pub const MAX_DEPTH: usize = 32;
/// Most attributes on one element; the schemas need two.
pub const MAX_ATTRIBUTES: usize = 64;
/// Most namespace declarations in one document. vmsec writes two per wrapping (exclusive
/// canonicalization declares `ds` and `xenc11` where they are used) and three more; a wrapping
/// holds two certificates, so no more than ~250 fit in [`MAX_INPUT_BYTES`].
pub const MAX_NAMESPACE_DECLARATIONS: usize = 512;
/// Most nodes a document may have; bounds memory before any schema check runs.
const MAX_NODES: u32 = 200_000;

const LIMITS: vmsec_xml::Limits = vmsec_xml::Limits {
    max_bytes: MAX_INPUT_BYTES,
    max_depth: MAX_DEPTH,
    max_attributes_per_element: MAX_ATTRIBUTES,
    max_namespace_declarations: MAX_NAMESPACE_DECLARATIONS,
    max_nodes: MAX_NODES,
};

/// Parses through the hardened entry point: size, at most one BOM, UTF-8, no DTD, and the
/// depth, attribute and namespace limits above, all before a tree is built.
pub fn parse_document(input: &[u8]) -> Result<Document<'_>> {
    use vmsec_xml::Error as X;
    vmsec_xml::parse_bytes(input, &LIMITS).map_err(|e| match e {
        X::TooLarge { size, limit } => Error::TooLarge { size, limit },
        X::TooDeep { limit, .. } => Error::TooDeep { limit },
        X::DtdForbidden { .. } => Error::DtdForbidden,
        other => Error::Malformed(other.to_string()),
    })
}

/// True when `node` is an element named `local` in namespace `ns`.
pub fn is(node: Node<'_, '_>, ns: &str, local: &str) -> bool {
    node.is_element() && node.tag_name().name() == local && node.tag_name().namespace() == Some(ns)
}

/// Checks the root element's name and namespace.
pub fn expect_root<'a, 'i>(
    doc: &'a Document<'i>,
    ns: &'static str,
    local: &str,
) -> Result<Node<'a, 'i>> {
    let root = doc.root_element();
    if root.tag_name().name() != local {
        return Err(Error::UnexpectedElement {
            parent: "document".into(),
            expected: format!("<{local}>"),
            found: root.tag_name().name().into(),
        });
    }
    if root.tag_name().namespace() != Some(ns) {
        return Err(Error::WrongNamespace {
            element: local.into(),
            expected: ns,
            found: root.tag_name().namespace().map(str::to_owned),
        });
    }
    Ok(root)
}

/// Refuses every attribute of `node` not in `allowed` (unqualified names).
pub fn only_attributes(node: Node<'_, '_>, allowed: &[&str]) -> Result<()> {
    for attr in node.attributes() {
        if attr.namespace().is_some() || !allowed.contains(&attr.name()) {
            return Err(Error::UnexpectedAttribute {
                element: node.tag_name().name().into(),
                attribute: attr.name().into(),
            });
        }
    }
    Ok(())
}

/// The value of a required unqualified attribute.
pub fn required_attr<'a>(node: Node<'a, '_>, name: &str) -> Result<&'a str> {
    node.attribute(name).ok_or_else(|| Error::MissingAttribute {
        element: node.tag_name().name().into(),
        attribute: name.into(),
    })
}

/// Parses xs:unsignedInt (surrounding whitespace allowed, as the schema type collapses it).
pub fn parse_u32(what: &str, text: &str) -> Result<u32> {
    let t = text.trim_matches(is_xml_space);
    let digits = t.strip_prefix('+').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidNumber {
            element: what.into(),
            value: t.chars().take(32).collect(),
        });
    }
    digits.parse::<u32>().map_err(|_| Error::InvalidNumber {
        element: what.into(),
        value: t.chars().take(32).collect(),
    })
}

/// XML whitespace (not Unicode whitespace).
pub fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Text content of a simple-typed element: children must be text only.
pub fn simple_text<'a>(node: Node<'a, '_>) -> Result<String> {
    let mut out = String::new();
    for child in node.children() {
        if child.is_element() {
            return Err(Error::UnexpectedElement {
                parent: node.tag_name().name().into(),
                expected: "text only".into(),
                found: child.tag_name().name().into(),
            });
        }
        if child.is_text() {
            out.push_str(child.text().unwrap_or_default());
        }
    }
    Ok(out)
}

/// Decodes xs:base64Binary (whitespace inside is allowed by the type).
pub fn base64_text(node: Node<'_, '_>) -> Result<Vec<u8>> {
    let text = simple_text(node)?;
    decode_base64(node.tag_name().name(), &text)
}

/// Decodes base64 after dropping XML whitespace.
pub fn decode_base64(what: &str, text: &str) -> Result<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !is_xml_space(*c)).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| Error::InvalidBase64 {
            element: what.into(),
        })
}

/// Walks an element's element children in order, refusing stray text.
pub struct Children<'a, 'i> {
    parent: Node<'a, 'i>,
    ns: &'static str,
    elements: std::vec::IntoIter<Node<'a, 'i>>,
    peeked: Option<Node<'a, 'i>>,
}

impl<'a, 'i> Children<'a, 'i> {
    /// Starts walking `parent`, whose schema children live in namespace `ns`.
    pub fn new(parent: Node<'a, 'i>, ns: &'static str) -> Result<Self> {
        let mut elements = Vec::new();
        for child in parent.children() {
            if child.is_element() {
                elements.push(child);
            } else if child.is_text() && !child.text().unwrap_or_default().chars().all(is_xml_space)
            {
                return Err(Error::UnexpectedText {
                    element: parent.tag_name().name().into(),
                });
            }
        }
        let mut elements = elements.into_iter();
        let peeked = elements.next();
        Ok(Self {
            parent,
            ns,
            elements,
            peeked,
        })
    }

    fn parent_name(&self) -> String {
        self.parent.tag_name().name().into()
    }

    /// Takes the next child if it is `local` (in the walker's namespace).
    pub fn optional(&mut self, local: &str) -> Result<Option<Node<'a, 'i>>> {
        match self.peeked {
            Some(node) if node.tag_name().name() == local => {
                if node.tag_name().namespace() != Some(self.ns) {
                    return Err(Error::WrongNamespace {
                        element: local.into(),
                        expected: self.ns,
                        found: node.tag_name().namespace().map(str::to_owned),
                    });
                }
                self.peeked = self.elements.next();
                Ok(Some(node))
            }
            _ => Ok(None),
        }
    }

    /// Takes the next child, which must be `local`.
    pub fn required(&mut self, local: &str) -> Result<Node<'a, 'i>> {
        if let Some(node) = self.optional(local)? {
            return Ok(node);
        }
        match self.peeked {
            Some(found) => Err(Error::UnexpectedElement {
                parent: self.parent_name(),
                expected: format!("<{local}>"),
                found: found.tag_name().name().into(),
            }),
            None => Err(Error::MissingElement {
                parent: self.parent_name(),
                expected: local.into(),
            }),
        }
    }

    /// Takes every remaining child, whatever its name (for `xs:any` content).
    pub fn rest(&mut self) -> Vec<Node<'a, 'i>> {
        let mut out: Vec<_> = self.peeked.take().into_iter().collect();
        out.extend(self.elements.by_ref());
        out
    }

    /// Fails if any child is left.
    pub fn finish(mut self) -> Result<()> {
        match self.peeked.take() {
            Some(found) => Err(Error::UnexpectedElement {
                parent: self.parent_name(),
                expected: "end of element".into(),
                found: found.tag_name().name().into(),
            }),
            None => Ok(()),
        }
    }
}

/// Escapes text content for our own writers (same rules as canonical XML).
pub fn escape_text(s: &str, out: &mut String) {
    // Copies runs that need no escaping whole: a key protector's text is mostly base64.
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'\r' => "&#xD;",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        out.push_str(escaped);
        run = i + 1;
    }
    out.push_str(&s[run..]);
}

/// Escapes an attribute value for our own writers (same rules as canonical XML).
pub fn escape_attr(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

/// Standard base64 with no line breaks, as vmsec writes it.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_int_accepts_the_xsd_lexical_forms_only() {
        assert_eq!(parse_u32("Id", " 7\n"), Ok(7));
        assert_eq!(parse_u32("Id", "+5"), Ok(5));
        assert_eq!(parse_u32("Id", "0004294967295"), Ok(u32::MAX));
        for bad in ["", "-1", "4294967296", "1e3", "0x10", "1 2"] {
            assert!(
                matches!(parse_u32("Id", bad), Err(Error::InvalidNumber { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn text_escaping_follows_canonical_xml_around_multibyte_text() {
        let mut out = String::new();
        escape_text("a&b<c>d\re\"'\tü✓&", &mut out);
        assert_eq!(out, "a&amp;b&lt;c&gt;d&#xD;e\"'\tü✓&amp;");
        out.clear();
        escape_text("", &mut out);
        assert_eq!(out, "");
    }

    #[test]
    fn base64_ignores_xml_whitespace_and_refuses_garbage() {
        assert_eq!(decode_base64("x", "AQ\nID\r\n BA=="), Ok(vec![1, 2, 3, 4]));
        assert_eq!(
            decode_base64("CipherValue", "not*base64"),
            Err(Error::InvalidBase64 {
                element: "CipherValue".into()
            })
        );
    }

    #[test]
    fn non_utf8_input_is_malformed() {
        assert!(matches!(
            parse_document(b"<a>\xff</a>"),
            Err(Error::Malformed(_))
        ));
    }
}
