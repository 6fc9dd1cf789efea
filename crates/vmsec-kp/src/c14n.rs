//! Exclusive XML Canonicalization 1.0 without comments
//! (<http://www.w3.org/2001/10/xml-exc-c14n#>), over a parsed roxmltree
//! document, for the node-sets this crate signs: one element subtree, or the
//! whole document, optionally minus one subtree (the enveloped-signature
//! transform). The InclusiveNamespaces PrefixList is always empty.
//!
//! Rules implemented (W3C exc-c14n §3 and C14N 1.0 §2.3):
//! - a namespace declaration is output on an element only where its prefix is
//!   visibly utilized (by the element's own name or one of its attributes) and
//!   the nearest output ancestor has not already output the same binding;
//! - `xmlns=""` is output only to undo a non-empty default namespace output above;
//! - declarations are sorted by prefix (default first), attributes by
//!   (namespace URI, local name);
//! - text escapes `& < >` and CR; attribute values escape `& < "` TAB LF CR;
//! - empty elements become start/end pairs; comments are dropped; processing
//!   instructions are kept, with line breaks around them at document level.

use std::collections::BTreeMap;
use std::rc::Rc;

use roxmltree::{Document, Node, NodeId};

use crate::xml::{escape_attr, escape_text};

/// The algorithm URI of exclusive canonicalization (what vmsec writes).
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
/// The algorithm URI of inclusive Canonical XML 1.0 (read in metadata made by .NET's SignedXml).
pub const C14N: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";

/// Which canonicalization: they differ only in which namespace declarations are output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Exclusive XML Canonicalization 1.0, no comments, empty PrefixList.
    Exclusive,
    /// Canonical XML 1.0, no comments: every in-scope namespace not already output above.
    Inclusive,
}

impl Mode {
    /// The mode named by a canonicalization or transform URI.
    pub fn from_uri(uri: &str) -> Option<Self> {
        match uri {
            EXC_C14N => Some(Self::Exclusive),
            C14N => Some(Self::Inclusive),
            _ => None,
        }
    }
}

const XML_PREFIX: &str = "xml";

/// Canonical form of the subtree rooted at `element`, leaving out the subtree
/// rooted at `exclude` if given.
pub fn canonicalize_element(element: Node<'_, '_>, exclude: Option<NodeId>) -> Vec<u8> {
    canonicalize_element_with(Mode::Exclusive, element, exclude)
}

/// [`canonicalize_element`] in a chosen mode.
pub fn canonicalize_element_with(
    mode: Mode,
    element: Node<'_, '_>,
    exclude: Option<NodeId>,
) -> Vec<u8> {
    let mut out = String::new();
    write_element(mode, element, exclude, &BTreeMap::new(), &mut out);
    out.into_bytes()
}

/// Canonical form of a whole document (URI="" in XML-DSig), leaving out the
/// subtree rooted at `exclude` if given.
pub fn canonicalize_document(mode: Mode, doc: &Document<'_>, exclude: Option<NodeId>) -> Vec<u8> {
    let mut out = String::new();
    let mut seen_root = false;
    for child in doc.root().children() {
        if child.is_element() {
            write_element(mode, child, exclude, &BTreeMap::new(), &mut out);
            seen_root = true;
        } else if child.is_pi() {
            if seen_root {
                out.push('\n');
            }
            write_pi(child, &mut out);
            if !seen_root {
                out.push('\n');
            }
        }
    }
    out.into_bytes()
}

/// The prefix of a qualified name as written in the source, if any.
fn prefix_of(qname: &str) -> Option<&str> {
    qname.split_once(':').map(|(p, _)| p)
}

/// The qualified name of an element as written in the source.
fn element_qname<'i>(node: Node<'_, 'i>) -> &'i str {
    let text = node.document().input_text();
    let start = node.range().start + 1;
    let rest = text.get(start..).unwrap_or_default();
    let end = rest
        .find([' ', '\t', '\r', '\n', '/', '>'])
        .unwrap_or(rest.len());
    rest.get(..end).unwrap_or_default()
}

/// One pending piece of output; an explicit stack instead of recursion, so
/// any nesting depth costs heap, never call stack.
enum Step<'a, 'i> {
    Open(Node<'a, 'i>, Rc<BTreeMap<String, String>>),
    Close(&'i str),
    Text(Node<'a, 'i>),
}

fn write_element(
    mode: Mode,
    node: Node<'_, '_>,
    exclude: Option<NodeId>,
    rendered: &BTreeMap<String, String>,
    out: &mut String,
) {
    let mut stack = vec![Step::Open(node, Rc::new(rendered.clone()))];
    while let Some(step) = stack.pop() {
        match step {
            Step::Close(qname) => {
                out.push_str("</");
                out.push_str(qname);
                out.push('>');
            }
            Step::Text(child) if child.is_text() => {
                escape_text(child.text().unwrap_or_default(), out);
            }
            Step::Text(child) => write_pi(child, out),
            Step::Open(node, _) if Some(node.id()) == exclude => {}
            Step::Open(node, rendered) => {
                let now_rendered = Rc::new(write_start_tag(mode, node, &rendered, out));
                stack.push(Step::Close(element_qname(node)));
                for child in node.children().rev() {
                    if child.is_element() {
                        stack.push(Step::Open(child, Rc::clone(&now_rendered)));
                    } else if child.is_text() || child.is_pi() {
                        stack.push(Step::Text(child));
                    }
                }
            }
        }
    }
}

/// Writes `<qname ns-decls attrs>` and returns the namespace bindings output
/// so far, for the children.
fn write_start_tag(
    mode: Mode,
    node: Node<'_, '_>,
    rendered: &BTreeMap<String, String>,
    out: &mut String,
) -> BTreeMap<String, String> {
    let text = node.document().input_text();
    let qname = element_qname(node);

    // Prefixes this element visibly utilizes, with the URI each is bound to here.
    let mut utilized: BTreeMap<String, String> = BTreeMap::new();
    let own_prefix = prefix_of(qname).unwrap_or("");
    utilized.insert(
        own_prefix.to_owned(),
        node.tag_name().namespace().unwrap_or("").to_owned(),
    );

    let mut attrs: Vec<(&str, &str, &str, &str)> = Vec::new();
    for attr in node.attributes() {
        let attr_qname = text.get(attr.range_qname()).unwrap_or(attr.name());
        if let (Some(prefix), Some(ns)) = (prefix_of(attr_qname), attr.namespace())
            && prefix != XML_PREFIX
        {
            utilized.insert(prefix.to_owned(), ns.to_owned());
        }
        attrs.push((
            attr.namespace().unwrap_or(""),
            attr.name(),
            attr_qname,
            attr.value(),
        ));
    }
    attrs.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    if mode == Mode::Inclusive {
        // Every namespace in scope counts, used or not; an absent default
        // namespace is the empty one (so xmlns="" undoes one output above).
        utilized.clear();
        utilized.insert(String::new(), String::new());
        for ns in node.namespaces() {
            utilized.insert(ns.name().unwrap_or("").to_owned(), ns.uri().to_owned());
        }
    }

    let mut now_rendered = rendered.clone();
    out.push('<');
    out.push_str(qname);
    for (prefix, uri) in &utilized {
        if prefix == XML_PREFIX {
            continue;
        }
        let already = rendered.get(prefix);
        let needed = if prefix.is_empty() && uri.is_empty() {
            already.is_some_and(|u| !u.is_empty())
        } else {
            already != Some(uri)
        };
        if needed {
            if prefix.is_empty() {
                out.push_str(" xmlns=\"");
            } else {
                out.push_str(" xmlns:");
                out.push_str(prefix);
                out.push_str("=\"");
            }
            escape_attr(uri, out);
            out.push('"');
            now_rendered.insert(prefix.clone(), uri.clone());
        }
    }
    for (_, _, attr_qname, value) in &attrs {
        out.push(' ');
        out.push_str(attr_qname);
        out.push_str("=\"");
        escape_attr(value, out);
        out.push('"');
    }
    out.push('>');
    now_rendered
}

fn write_pi(node: Node<'_, '_>, out: &mut String) {
    if let Some(pi) = node.pi() {
        out.push_str("<?");
        out.push_str(pi.target);
        if let Some(value) = pi.value.filter(|v| !v.is_empty()) {
            out.push(' ');
            out.push_str(value);
        }
        out.push_str("?>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c14n_root(xml: &str) -> String {
        let doc = Document::parse(xml).expect("test input is well-formed");
        String::from_utf8(canonicalize_element(doc.root_element(), None)).expect("utf-8")
    }

    fn c14n_first(xml: &str, local: &str) -> String {
        let doc = Document::parse(xml).expect("test input is well-formed");
        let node = doc
            .descendants()
            .find(|n| n.tag_name().name() == local)
            .expect("element present");
        String::from_utf8(canonicalize_element(node, None)).expect("utf-8")
    }

    #[test]
    fn empty_elements_become_start_end_pairs_and_attributes_sort() {
        assert_eq!(c14n_root(r#"<e b="2"   a='1'/>"#), r#"<e a="1" b="2"></e>"#);
    }

    #[test]
    fn attributes_sort_by_namespace_uri_then_local_name() {
        // From C14N 1.0 §3.3: unqualified first, then by namespace URI, not by prefix.
        let xml = r#"<e5 xmlns:a="http://www.w3.org" xmlns:b="http://www.ietf.org" attr="I'm" attr2="all" b:attr="sorted" a:attr="out"></e5>"#;
        assert_eq!(
            c14n_root(xml),
            r#"<e5 xmlns:a="http://www.w3.org" xmlns:b="http://www.ietf.org" attr="I'm" attr2="all" b:attr="sorted" a:attr="out"></e5>"#
        );
    }

    #[test]
    fn only_visibly_utilized_namespaces_are_output() {
        // The W3C exc-c14n §2.2 example: n1 is not utilized by n1:elem2's subtree except where used.
        let xml = r#"<n0:local xmlns:n0="foo:bar" xmlns:n3="ftp://example.org"><n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"/></n1:elem2></n0:local>"#;
        assert_eq!(
            c14n_first(xml, "elem2"),
            r#"<n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"></n3:stuff></n1:elem2>"#
        );
    }

    #[test]
    fn inherited_default_namespace_is_output_on_the_apex() {
        let xml = r#"<P xmlns="urn:k"><W a="1"><X>t</X></W></P>"#;
        assert_eq!(
            c14n_first(xml, "W"),
            r#"<W xmlns="urn:k" a="1"><X>t</X></W>"#
        );
    }

    #[test]
    fn redundant_declarations_are_dropped_and_rebindings_kept() {
        let xml = r#"<a:r xmlns:a="urn:1"><a:c xmlns:a="urn:1"><a:d xmlns:a="urn:2"/></a:c></a:r>"#;
        assert_eq!(
            c14n_root(xml),
            r#"<a:r xmlns:a="urn:1"><a:c><a:d xmlns:a="urn:2"></a:d></a:c></a:r>"#
        );
    }

    #[test]
    fn default_namespace_is_undone_only_when_output_above() {
        let xml = r#"<r xmlns="urn:d"><c xmlns=""><g/></c></r>"#;
        assert_eq!(
            c14n_root(xml),
            r#"<r xmlns="urn:d"><c xmlns=""><g></g></c></r>"#
        );
        // Apex in no namespace: nothing above to undo.
        assert_eq!(c14n_first(xml, "c"), r#"<c><g></g></c>"#);
    }

    #[test]
    fn unused_declarations_on_an_element_are_dropped() {
        let xml = r#"<r xmlns:u="urn:unused" xmlns:v="urn:v"><v:c/></r>"#;
        assert_eq!(c14n_root(xml), r#"<r><v:c xmlns:v="urn:v"></v:c></r>"#);
    }

    #[test]
    fn text_and_attribute_escaping_follow_c14n() {
        let xml =
            "<r a=\"&lt;&amp;&quot;&#9;&#10;&#13;&gt;'\">&lt;&amp;&gt;&#13;\"'<![CDATA[<x>]]></r>";
        assert_eq!(
            c14n_root(xml),
            "<r a=\"&lt;&amp;&quot;&#x9;&#xA;&#xD;>'\">&lt;&amp;&gt;&#xD;\"'&lt;x&gt;</r>"
        );
    }

    #[test]
    fn comments_are_dropped_and_whitespace_is_kept() {
        let xml = "<r>\n  <!-- c --><c/>\r\n</r>";
        assert_eq!(c14n_root(xml), "<r>\n  <c></c>\n</r>");
    }

    #[test]
    fn inclusive_mode_outputs_every_in_scope_namespace_on_the_apex() {
        let xml =
            r#"<r xmlns="urn:d" xmlns:u="urn:unused"><ds:s xmlns:ds="urn:ds"><ds:t/></ds:s></r>"#;
        let doc = Document::parse(xml).expect("well-formed");
        let s = doc
            .descendants()
            .find(|n| n.tag_name().name() == "s")
            .expect("present");
        assert_eq!(
            String::from_utf8(canonicalize_element_with(Mode::Inclusive, s, None)).expect("utf-8"),
            r#"<ds:s xmlns="urn:d" xmlns:ds="urn:ds" xmlns:u="urn:unused"><ds:t></ds:t></ds:s>"#
        );
        assert_eq!(
            String::from_utf8(canonicalize_element(s, None)).expect("utf-8"),
            r#"<ds:s xmlns:ds="urn:ds"><ds:t></ds:t></ds:s>"#
        );
    }

    #[test]
    fn very_deep_documents_do_not_exhaust_the_call_stack() {
        let depth = 20_000;
        let xml = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
        let doc = Document::parse(&xml).expect("roxmltree parses deep documents");
        assert_eq!(
            canonicalize_element(doc.root_element(), None),
            xml.as_bytes()
        );
    }

    #[test]
    fn document_form_puts_line_breaks_around_top_level_pis_and_excludes_a_subtree() {
        let xml = "<?xml version=\"1.0\"?>\n<?pi x?><!--c--><r><s/><keep/></r><?end?>";
        let doc = Document::parse(xml).expect("well-formed");
        let skip = doc
            .descendants()
            .find(|n| n.tag_name().name() == "s")
            .map(|n| n.id());
        assert_eq!(
            String::from_utf8(canonicalize_document(Mode::Exclusive, &doc, skip)).expect("utf-8"),
            "<?pi x?>\n<r><keep></keep></r>\n<?end?>"
        );
    }
}
