use super::*;

const LIMITS: Limits = Limits {
    max_bytes: 16 * 1024 * 1024,
    max_depth: 64,
    max_attributes_per_element: 64,
    max_namespace_declarations: 128,
    max_nodes: 1_000_000,
};

/// `n` nested `<a>`, each declaring its own prefix: the shape whose parse cost grew as n³.
fn namespace_nest(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!("<a xmlns:p{i}=\"u\">"));
    }
    s.push_str(&"</a>".repeat(n));
    s
}

fn plain_nest(n: usize) -> String {
    format!("{}{}", "<a>".repeat(n), "</a>".repeat(n))
}

fn refusal(r: Result<Document<'_>, Error>) -> Option<Error> {
    r.err()
}

fn with(f: impl FnOnce(&mut Limits)) -> Limits {
    let mut l = LIMITS;
    f(&mut l);
    l
}

#[test]
fn nesting_up_to_the_limit_parses_and_one_level_more_is_refused_where_it_starts() {
    let text = plain_nest(64);
    let doc = parse(&text, &LIMITS).unwrap();
    assert_eq!(doc.descendants().filter(|n| n.is_element()).count(), 64);
    // Empty elements count as a level too.
    let empty_at_65 = format!("{}<b/>{}", "<a>".repeat(64), "</a>".repeat(64));
    let err = parse(&empty_at_65, &LIMITS).unwrap_err();
    assert_eq!(
        err,
        Error::TooDeep {
            limit: 64,
            at: Position {
                offset: 64 * 3,
                line: 1,
                column: 64 * 3 + 1
            }
        }
    );
    // Siblings do not add depth.
    let wide = format!("<r>{}</r>", "<a><b/></a>".repeat(1000));
    assert!(parse(&wide, &with(|l| l.max_depth = 3)).is_ok());
    assert!(matches!(
        parse(&wide, &with(|l| l.max_depth = 2)),
        Err(Error::TooDeep { limit: 2, .. })
    ));
}

#[test]
fn a_million_level_plain_nest_is_refused_at_the_first_level_too_deep() {
    let text = plain_nest(1_000_000);
    match parse(&text, &LIMITS) {
        Err(Error::TooDeep { limit: 64, at }) => assert_eq!(at.offset, 64 * 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_hundred_thousand_level_namespace_nest_is_refused_by_depth_or_by_declarations() {
    let text = namespace_nest(100_000);
    assert!(matches!(
        parse(&text, &LIMITS),
        Err(Error::TooDeep { limit: 64, .. })
    ));
    // With depth unbounded, the declaration count stops it at the 129th element.
    let no_depth = with(|l| l.max_depth = usize::MAX);
    match parse(&text, &no_depth) {
        Err(Error::TooManyNamespaceDeclarations { limit: 128, at }) => {
            assert_eq!(at.offset, namespace_nest(128).find("</a>").unwrap());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn namespace_declarations_are_counted_over_the_whole_document() {
    let one_element = |n: usize| {
        let decls: String = (0..n).map(|i| format!(" xmlns:p{i}='u'")).collect();
        format!("<a{decls}/>")
    };
    let limits = with(|l| l.max_namespace_declarations = 10);
    assert!(parse(&one_element(10), &limits).is_ok());
    assert!(matches!(
        parse(&one_element(11), &limits),
        Err(Error::TooManyNamespaceDeclarations { limit: 10, .. })
    ));
    let siblings = |n: usize| {
        let kids: String = (0..n).map(|i| format!("<b xmlns:q{i}=\"u\"/>")).collect();
        format!("<a>{kids}</a>")
    };
    assert!(parse(&siblings(10), &limits).is_ok());
    assert!(matches!(
        parse(&siblings(11), &limits),
        Err(Error::TooManyNamespaceDeclarations { limit: 10, .. })
    ));
    // The default namespace is a declaration; attributes that merely start with "xmlns" or
    // live in another prefix are not, nor is text that looks like one.
    let defaults = "<b xmlns=\"u\"/>".repeat(11);
    assert!(matches!(
        parse(&format!("<a>{defaults}</a>"), &limits),
        Err(Error::TooManyNamespaceDeclarations { .. })
    ));
    let lookalikes = format!(
        "<a xmlns:x='u'>{}<!-- {} --><![CDATA[{}]]></a>",
        "<b xmlnsfoo='1' x:xmlns='2'>xmlns:p=\"u\"</b>".repeat(20),
        one_element(20),
        one_element(20)
    );
    assert!(parse(&lookalikes, &limits).is_ok());
}

#[test]
fn attributes_are_counted_per_element_and_only_inside_tags() {
    let many = |n: usize| -> String { (0..n).map(|i| format!(" a{i}=\"=\"")).collect() };
    assert!(parse(&format!("<x{}/>", many(64)), &LIMITS).is_ok());
    assert_eq!(
        refusal(parse(&format!("\n  <x{}/>", many(65)), &LIMITS)),
        Some(Error::TooManyAttributes {
            limit: 64,
            at: Position {
                offset: 3,
                line: 2,
                column: 3
            }
        })
    );
    // Declarations are attributes too.
    let decls: String = (0..33).map(|i| format!(" xmlns:p{i}='u'")).collect();
    assert!(matches!(
        parse(&format!("<x{decls}{}/>", many(32)), &LIMITS),
        Err(Error::TooManyAttributes { .. })
    ));
    let hidden = format!(
        "<x>{}<!-- <y{m}/> --><![CDATA[<z{m}/>]]><?pi {m}?></x>",
        "a=b ".repeat(1000),
        m = many(100)
    );
    assert!(parse(&hidden, &LIMITS).is_ok());
    let spread: String = (0..100).map(|i| format!("<e a{i}=\"1\" b='2'/>")).collect();
    assert!(parse(&format!("<r>{spread}</r>"), &LIMITS).is_ok());
    // Quoted values may hold what would otherwise end the tag or start an attribute.
    let tricky = "<x a='>\" b=\"c' d=\"'/>\"/>";
    let doc = parse(tricky, &with(|l| l.max_attributes_per_element = 2)).unwrap();
    assert_eq!(doc.root_element().attribute("a"), Some(">\" b=\"c"));
}

#[test]
fn the_node_budget_is_enforced_while_the_tree_is_built() {
    let text = format!("<r>{}</r>", "<a/>".repeat(1000));
    assert!(parse(&text, &with(|l| l.max_nodes = 1002)).is_ok());
    assert_eq!(
        refusal(parse(&text, &with(|l| l.max_nodes = 500))),
        Some(Error::TooManyNodes { limit: 500 })
    );
}

#[test]
fn size_is_checked_before_anything_else() {
    let limits = with(|l| l.max_bytes = 10);
    assert!(parse("<abcdefg/>", &limits).is_ok());
    assert_eq!(
        refusal(parse("<abcdefgh/>", &limits)),
        Some(Error::TooLarge {
            size: 11,
            limit: 10
        })
    );
    assert_eq!(
        refusal(parse_bytes(
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            &limits
        )),
        Some(Error::TooLarge {
            size: 11,
            limit: 10
        })
    );
}

#[test]
fn dtds_and_entity_declarations_are_refused_wherever_they_are_markup() {
    let laughs = "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;\">]><l>&b;</l>";
    assert_eq!(
        refusal(parse(laughs, &LIMITS)),
        Some(Error::DtdForbidden {
            at: Some(Position {
                offset: 21,
                line: 1,
                column: 22
            })
        })
    );
    assert!(matches!(
        parse("<!DOCTYPE a><a/>", &LIMITS),
        Err(Error::DtdForbidden { at: Some(_) })
    ));
    assert!(matches!(
        parse("<a><!ENTITY x \"y\"></a>", &LIMITS),
        Err(Error::DtdForbidden { at: Some(_) })
    ));
    // Without a DTD no entity but the five predefined ones exists.
    assert!(matches!(
        parse("<a>&lt;&amp;&ext;</a>", &LIMITS),
        Err(Error::Entity(_))
    ));
    // Not markup: text about DTDs is just text.
    assert!(parse("<a><!-- <!DOCTYPE a> --><![CDATA[<!ENTITY>]]></a>", &LIMITS).is_ok());
}

#[test]
fn one_byte_order_mark_is_dropped_and_a_second_is_refused() {
    let doc = parse("\u{feff}<a/>", &LIMITS).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "a");
    assert!(parse_bytes(b"\xEF\xBB\xBF<?xml version='1.0'?><a/>", &LIMITS).is_ok());
    assert_eq!(
        refusal(parse("\u{feff}\u{feff}<a/>", &LIMITS)),
        Some(Error::SecondByteOrderMark)
    );
    assert_eq!(
        refusal(parse_bytes(b"\xEF\xBB\xBF\xEF\xBB\xBF<a/>", &LIMITS)),
        Some(Error::SecondByteOrderMark)
    );
    assert!(
        Error::SecondByteOrderMark
            .to_string()
            .contains("two byte-order marks")
    );
}

#[test]
fn malformed_text_is_left_to_roxmltree_and_sorted_by_kind() {
    assert!(matches!(parse("<a><b>", &LIMITS), Err(Error::Truncated(_))));
    assert!(matches!(parse("", &LIMITS), Err(Error::Truncated(_))));
    assert!(matches!(parse("<a></b>", &LIMITS), Err(Error::Syntax(_))));
    assert!(matches!(parse("<a x=1/>", &LIMITS), Err(Error::Syntax(_))));
    assert!(matches!(parse("</a>", &LIMITS), Err(Error::Syntax(_))));
    assert!(matches!(
        parse("<p:a/>", &LIMITS),
        Err(Error::Syntax(roxmltree::Error::UnknownNamespace(..)))
    ));
    assert!(matches!(
        parse_bytes(b"<a>\xff</a>", &LIMITS),
        Err(Error::NotUtf8(_))
    ));
    let e = parse("<a>\n  <b></c></a>", &LIMITS).unwrap_err();
    assert_eq!(e.line_column().map(|(line, _)| line), Some(2));
}

#[test]
fn every_prefix_of_a_document_is_scanned_without_panicking_and_refused_or_parsed() {
    let text = "\u{feff}<?xml version=\"1.0\"?>\n<!-- c - > --><r xmlns='u' xmlns:p=\"v\" a='1'>\
                <p:b c = \"x'y\" >t&amp;<![CDATA[<z>]]></p:b><?pi x?><e/>\n</r>\n";
    assert!(parse(text, &LIMITS).is_ok());
    let root_end = text.rfind("</r>").unwrap() + "</r>".len();
    for (end, _) in text.char_indices().take_while(|&(i, _)| i < root_end) {
        let prefix = &text[..end];
        // Any prefix short of the root's end tag is incomplete; it must be refused, not hang.
        assert!(parse(prefix, &LIMITS).is_err(), "{prefix:?}");
    }
}

#[test]
fn a_real_key_protector_passes_the_scan_with_the_counts_it_has() {
    let kp = include_str!("../../vmsec-kp/testdata/golden-kp.xml");
    let doc = parse(kp, &LIMITS).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "Protector");
    let declarations = kp.matches("xmlns").count();
    let exact = with(|l| l.max_namespace_declarations = declarations);
    assert!(parse(kp, &exact).is_ok());
    let one_less = with(|l| l.max_namespace_declarations = declarations - 1);
    assert!(matches!(
        parse(kp, &one_less),
        Err(Error::TooManyNamespaceDeclarations { .. })
    ));
}
