//! XML plumbing shared by the CIM-XML and WMI-XML codecs: hardened parsing, positions, escaping.

use roxmltree::{Document, Node};

use crate::error::{Error, ErrorKind, Position};
use crate::limits::{
    MAX_DEPTH, MAX_INPUT_BYTES, MAX_XML_ATTRIBUTES, MAX_XML_NAMESPACE_DECLARATIONS, MAX_XML_NODES,
};

/// Rejects input over [`MAX_INPUT_BYTES`].
pub(crate) fn check_size(s: &str) -> Result<(), Error> {
    if s.len() > MAX_INPUT_BYTES {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("{} bytes, limit {MAX_INPUT_BYTES}", s.len()),
        ));
    }
    Ok(())
}

/// What the CIM codecs accept of an XML instance. CIM-XML and WMI-XML use no namespaces at
/// all; a handful of declarations leaves room for a client that adds one without letting
/// declarations multiply.
const LIMITS: vmsec_xml::Limits = vmsec_xml::Limits {
    max_bytes: MAX_INPUT_BYTES,
    max_depth: MAX_DEPTH,
    max_attributes_per_element: MAX_XML_ATTRIBUTES,
    max_namespace_declarations: MAX_XML_NAMESPACE_DECLARATIONS,
    max_nodes: MAX_XML_NODES,
};

/// Parses `s` through the hardened entry point, mapping its errors onto our kinds so that
/// callers can tell a DTD from a typo from a truncation.
pub(crate) fn parse_document(s: &str) -> Result<Document<'_>, Error> {
    check_size(s)?;
    vmsec_xml::parse(s, &LIMITS).map_err(|e| map_error(s, &e))
}

fn map_error(s: &str, e: &vmsec_xml::Error) -> Error {
    use vmsec_xml::Error as X;
    let kind = match e {
        X::TooDeep { .. } => ErrorKind::TooDeep,
        X::TooLarge { .. }
        | X::TooManyAttributes { .. }
        | X::TooManyNamespaceDeclarations { .. }
        | X::TooManyNodes { .. } => ErrorKind::TooLarge,
        X::DtdForbidden { .. } | X::Entity(_) => ErrorKind::DtdOrEntityNotAllowed,
        X::Truncated(_) => ErrorKind::Truncated,
        X::SecondByteOrderMark | X::NotUtf8(_) => ErrorKind::Encoding,
        _ => ErrorKind::Syntax,
    };
    let detail = match e {
        X::TooDeep { limit, .. } => format!("more than {limit} nested elements"),
        X::TooManyAttributes { limit, .. } => {
            format!("an element has more than {limit} attributes")
        }
        X::TooManyNamespaceDeclarations { limit, .. } => {
            format!("more than {limit} XML namespace declarations")
        }
        X::Entity(e) | X::Truncated(e) | X::Syntax(e) => e.to_string(),
        other => other.to_string(),
    };
    let err = Error::new(kind, detail);
    if matches!(kind, ErrorKind::Truncated) {
        return err.at(Position::of_offset(s, s.len()));
    }
    match e.line_column() {
        Some((line, column)) => err.at(Position { line, column }),
        None => err,
    }
}

/// Where `node` starts.
pub(crate) fn position(doc: &Document<'_>, node: Node<'_, '_>) -> Position {
    let p = doc.text_pos_at(node.range().start);
    Position {
        line: p.row,
        column: p.col,
    }
}

/// Child elements of `node`, skipping comments, processing instructions and whitespace, and
/// refusing stray text (a CIM element never mixes text and children).
pub(crate) fn element_children<'a, 'i>(
    doc: &Document<'_>,
    node: Node<'a, 'i>,
) -> Result<Vec<Node<'a, 'i>>, Error> {
    let mut out = Vec::new();
    for c in node.children() {
        if c.is_element() {
            out.push(c);
        } else if c.is_text() && !c.text().unwrap_or_default().trim().is_empty() {
            return Err(Error::new(
                ErrorKind::Structure,
                format!("unexpected text inside <{}>", node.tag_name().name()),
            )
            .at(position(doc, c)));
        }
    }
    Ok(out)
}

/// The text content of a `VALUE`-like leaf element (entity-decoded, CDATA included).
pub(crate) fn leaf_text(doc: &Document<'_>, node: Node<'_, '_>) -> Result<String, Error> {
    let mut out = String::new();
    for c in node.children() {
        if c.is_element() {
            return Err(Error::new(
                ErrorKind::Structure,
                format!(
                    "unexpected <{}> inside <{}>",
                    c.tag_name().name(),
                    node.tag_name().name()
                ),
            )
            .at(position(doc, c)));
        }
        if let Some(t) = c.text().filter(|_| c.is_text()) {
            out.push_str(t);
        }
    }
    Ok(out)
}

/// A required attribute.
pub(crate) fn required_attr<'a>(
    doc: &Document<'_>,
    node: Node<'a, '_>,
    name: &str,
) -> Result<&'a str, Error> {
    node.attribute(name).ok_or_else(|| {
        Error::new(
            ErrorKind::Structure,
            format!("<{}> without {name} attribute", node.tag_name().name()),
        )
        .at(position(doc, node))
    })
}

/// An element name, compared as the DTD spells it (CIM-XML is case-sensitive).
pub(crate) fn is(node: Node<'_, '_>, name: &str) -> bool {
    node.tag_name().name() == name
}

/// Escapes text content. `\r` becomes a character reference, or XML line-end normalisation would eat it.
pub(crate) fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
}

/// Escapes an attribute value, including whitespace that attribute normalisation would fold.
pub(crate) fn escape_attr(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
}
