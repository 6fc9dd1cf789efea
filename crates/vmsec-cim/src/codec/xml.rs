//! XML plumbing shared by the CIM-XML and WMI-XML codecs: hardened parsing, positions, escaping.

use roxmltree::{Document, Node, ParsingOptions};

use crate::error::{Error, ErrorKind, Position};
use crate::limits::{MAX_DEPTH, MAX_INPUT_BYTES, MAX_XML_NODES};

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

/// Parses `s` with DTDs refused, a node budget, and a nesting limit, mapping roxmltree's
/// errors onto our kinds so that callers can tell a DTD from a typo from a truncation.
pub(crate) fn parse_document(s: &str) -> Result<Document<'_>, Error> {
    check_size(s)?;
    if crate::limits::too_many_attributes(s, crate::limits::MAX_XML_ATTRIBUTES) {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "an element has more than {} attributes",
                crate::limits::MAX_XML_ATTRIBUTES
            ),
        ));
    }
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_XML_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(s, options).map_err(|e| map_error(s, &e))?;
    check_depth(&doc)?;
    Ok(doc)
}

fn map_error(s: &str, e: &roxmltree::Error) -> Error {
    use roxmltree::Error as X;
    let kind = match e {
        X::DtdDetected
        | X::UnknownEntityReference(..)
        | X::EntityReferenceLoop(..)
        | X::MalformedEntityReference(..)
        | X::InvalidExternalID(..)
        | X::EntityResolver(..) => ErrorKind::DtdOrEntityNotAllowed,
        X::UnexpectedEndOfStream | X::UnclosedRootNode | X::NoRootNode => ErrorKind::Truncated,
        X::NodesLimitReached => ErrorKind::TooLarge,
        _ => ErrorKind::Syntax,
    };
    let mut err = Error::new(kind, e.to_string());
    if matches!(kind, ErrorKind::Truncated) {
        err = err.at(Position::of_offset(s, s.len()));
    } else if !matches!(e, X::DtdDetected | X::NodesLimitReached) {
        let p = e.pos();
        err = err.at(Position {
            line: p.row,
            column: p.col,
        });
    }
    err
}

/// Walks the tree without recursion and fails on the first element deeper than [`MAX_DEPTH`].
fn check_depth(doc: &Document<'_>) -> Result<(), Error> {
    let mut stack = vec![(doc.root(), 0usize)];
    while let Some((node, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(Error::new(
                ErrorKind::TooDeep,
                format!("more than {MAX_DEPTH} nested elements"),
            )
            .at(position(doc, node)));
        }
        stack.extend(
            node.children()
                .filter(Node::is_element)
                .map(|c| (c, depth + 1)),
        );
    }
    Ok(())
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
