//! The pre-scan against roxmltree on generated documents: it counts exactly what the text
//! holds, and with limits out of reach it refuses nothing roxmltree accepts.

use proptest::prelude::*;
use vmsec_xml::{Error, Limits, parse};

const UNBOUNDED: Limits = Limits {
    max_bytes: usize::MAX,
    max_depth: usize::MAX,
    max_attributes_per_element: usize::MAX,
    max_namespace_declarations: usize::MAX,
    max_nodes: u32::MAX,
};

#[derive(Clone, Debug)]
enum Node {
    /// Attributes as (name, whether it declares a namespace).
    Element {
        attrs: Vec<(String, bool)>,
        children: Vec<Node>,
    },
    Text(String),
    Comment(String),
    Cdata(String),
    Pi(String),
}

fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        "[a-z <>&=\"'/!?\\]-]{0,12}".prop_map(|t| Node::Text(
            t.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace(']', "&#93;")
        )),
        "[a-z <>=\"'/!?\\]]{0,12}".prop_map(Node::Comment),
        "[a-z <>=\"'/!?-]{0,12}".prop_map(|t| Node::Cdata(t.replace("]]>", "]] >"))),
        "[a-z <>=\"'/!-]{0,12}".prop_map(|t| Node::Pi(t.replace("?>", "? >"))),
    ]
}

fn attrs() -> impl Strategy<Value = Vec<(String, bool)>> {
    proptest::collection::vec((0u8..4, "[a-w]{1,3}"), 0..6).prop_map(|v| {
        let mut seen = std::collections::HashSet::new();
        v.into_iter()
            .filter_map(|(kind, name)| {
                let (name, decl) = match kind {
                    0 => ("xmlns".to_owned(), true),
                    1 => (format!("xmlns:{name}"), true),
                    _ => (name, false),
                };
                seen.insert(name.clone()).then_some((name, decl))
            })
            .collect()
    })
}

fn tree() -> impl Strategy<Value = Node> {
    let leaf_element = attrs().prop_map(|attrs| Node::Element {
        attrs,
        children: vec![],
    });
    leaf_element.prop_recursive(8, 64, 6, |inner| {
        (
            attrs(),
            proptest::collection::vec(prop_oneof![inner, leaf()], 0..6),
        )
            .prop_map(|(attrs, children)| Node::Element { attrs, children })
    })
}

#[derive(Default)]
struct Counts {
    depth: usize,
    attrs: usize,
    decls: usize,
}

/// Writes `node` with quoting and spacing varied by `style`, counting what the scan must count.
fn write(node: &Node, depth: usize, style: u32, out: &mut String, c: &mut Counts) {
    match node {
        Node::Element { attrs, children } => {
            c.depth = c.depth.max(depth);
            c.attrs = c.attrs.max(attrs.len());
            c.decls += attrs.iter().filter(|(_, d)| *d).count();
            out.push_str("<e");
            for (i, (name, _)) in attrs.iter().enumerate() {
                let bit = |k: usize| (style >> (i % k)) & 1 == 0;
                let (q, other) = if bit(8) { ('"', '\'') } else { ('\'', '"') };
                let space = if bit(5) { " " } else { "\n\t" };
                let eq = if bit(3) { "=" } else { " = " };
                // Values hold the other quote, `>` and `/` to trip a careless lexer.
                out.push_str(&format!("{space}{name}{eq}{q}u{other}>/{q}"));
            }
            if children.is_empty() && style & 1 == 0 {
                out.push_str(if style & 2 == 0 { "/>" } else { " />" });
            } else {
                out.push('>');
                for child in children {
                    write(child, depth + 1, style.rotate_left(3), out, c);
                }
                out.push_str(if style & 4 == 0 { "</e>" } else { "</e \n>" });
            }
        }
        Node::Text(t) => out.push_str(t),
        Node::Comment(t) => out.push_str(&format!("<!--{t}-->")),
        Node::Cdata(t) => out.push_str(&format!("<![CDATA[{t}]]>")),
        Node::Pi(t) => out.push_str(&format!("<?pi {t}?>")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn limits_met_exactly_pass_and_one_less_is_refused(root in tree(), style in any::<u32>()) {
        let mut text = String::from("<?xml version=\"1.0\"?><!-- <e a='1'> -->");
        let mut c = Counts::default();
        write(&root, 1, style, &mut text, &mut c);
        // Generated comments may hold `--`; those documents are not XML and prove nothing here.
        prop_assume!(roxmltree::Document::parse(&text).is_ok());
        let exact = Limits {
            max_depth: c.depth,
            max_attributes_per_element: c.attrs,
            max_namespace_declarations: c.decls,
            ..UNBOUNDED
        };
        prop_assert!(parse(&text, &exact).is_ok(), "{}", text);
        let shallower = Limits { max_depth: c.depth - 1, ..exact };
        prop_assert!(matches!(parse(&text, &shallower), Err(Error::TooDeep { .. })), "{}", text);
        if c.attrs > 0 {
            let fewer = Limits { max_attributes_per_element: c.attrs - 1, ..exact };
            prop_assert!(
                matches!(parse(&text, &fewer), Err(Error::TooManyAttributes { .. })),
                "{}", text
            );
        }
        if c.decls > 0 {
            let fewer = Limits { max_namespace_declarations: c.decls - 1, ..exact };
            prop_assert!(
                matches!(parse(&text, &fewer), Err(Error::TooManyNamespaceDeclarations { .. })),
                "{}", text
            );
        }
    }

    #[test]
    fn out_of_reach_limits_refuse_exactly_what_roxmltree_refuses(
        text in "[<>/!?a-e:= \"'\\[\\]-]{0,64}|<a>[<>/!?a-e:= \"'\\[\\]-]{0,64}</a>|<a>(<b( c='[<>/]{0,3}')?>|</b>|<b/>|<!--[a-]{0,3}-->|[a<>/ ]){0,24}</a>"
    ) {
        let options = roxmltree::ParsingOptions { allow_dtd: false, ..Default::default() };
        let theirs = roxmltree::Document::parse_with_options(&text, options);
        prop_assert_eq!(parse(&text, &UNBOUNDED).is_ok(), theirs.is_ok(), "{}", text);
        // Where roxmltree reads a document, the scan followed all of it: it finds the same
        // deepest element.
        if let Ok(doc) = theirs {
            let depth = doc
                .descendants()
                .filter(|n| n.is_element())
                .map(|n| n.ancestors().filter(|a| a.is_element()).count())
                .max()
                .unwrap_or(0);
            let exact = Limits { max_depth: depth, ..UNBOUNDED };
            prop_assert!(parse(&text, &exact).is_ok(), "{}", text);
            let shallower = Limits { max_depth: depth - 1, ..UNBOUNDED };
            prop_assert!(matches!(parse(&text, &shallower), Err(Error::TooDeep { .. })), "{}", text);
        }
    }
}
