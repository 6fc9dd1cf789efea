use super::*;

fn select(class: &str, clause: Option<Expr>) -> Result<Query, WqlError> {
    Ok(Query::Select {
        class: class.to_owned(),
        clause,
    })
}

fn cmp(l: Operand, op: Op, r: Operand) -> Expr {
    Expr::Compare {
        left: l,
        op,
        right: r,
    }
}

fn prop(p: &str) -> Operand {
    Operand::Property(p.into())
}

fn s(v: &str) -> Operand {
    Operand::Str(v.into())
}

fn eq(p: &str, v: &str) -> Expr {
    cmp(prop(p), Op::Eq, s(v))
}

fn message(q: &str) -> String {
    parse(q).unwrap_err().message
}

#[test]
fn select_star_without_where_names_the_class() {
    assert_eq!(
        parse("SELECT * FROM Msvm_ComputerSystem"),
        select("Msvm_ComputerSystem", None)
    );
}

#[test]
fn keywords_ignore_case_and_whitespace_is_free() {
    assert_eq!(
        parse("  select\t*\nfrom Msvm_ComputerSystem wHeRe Name='x'  "),
        select("Msvm_ComputerSystem", Some(eq("Name", "x")))
    );
}

#[test]
fn and_joins_string_boolean_and_number_literals() {
    assert_eq!(
        parse(
            r#"SELECT * FROM C WHERE A = 'a b' AND B = "q" AND T = TRUE AND F = false AND N = +5 AND M = -12"#
        ),
        select(
            "C",
            Some(Expr::And(vec![
                eq("A", "a b"),
                eq("B", "q"),
                cmp(prop("T"), Op::Eq, Operand::Bool(true)),
                cmp(prop("F"), Op::Eq, Operand::Bool(false)),
                cmp(prop("N"), Op::Eq, Operand::Int("5".into())),
                cmp(prop("M"), Op::Eq, Operand::Int("-12".into())),
            ]))
        )
    );
}

#[test]
fn backslash_escapes_quotes_in_strings() {
    assert_eq!(
        parse(r#"SELECT * FROM C WHERE A = 'it\'s \\ "ok"'"#),
        select("C", Some(eq("A", r#"it's \ "ok""#)))
    );
}

#[test]
fn or_binds_looser_than_and_and_parentheses_regroup() {
    let (a, b, c) = (eq("A", "1"), eq("B", "2"), eq("C", "3"));
    assert_eq!(
        parse("SELECT * FROM X WHERE A = '1' or B = '2' and C = '3'"),
        select(
            "X",
            Some(Expr::Or(vec![
                a.clone(),
                Expr::And(vec![b.clone(), c.clone()])
            ]))
        )
    );
    assert_eq!(
        parse("SELECT * FROM X WHERE (A = '1' OR B = '2') AND C = '3'"),
        select("X", Some(Expr::And(vec![Expr::Or(vec![a.clone(), b]), c])))
    );
    assert_eq!(
        parse("SELECT * FROM X WHERE not (A = '1')"),
        select("X", Some(Expr::Not(Box::new(a))))
    );
}

#[test]
fn not_equal_is_spelled_both_ways_and_like_takes_a_pattern() {
    assert_eq!(
        parse("SELECT * FROM X WHERE A != 'x' AND B <> 2 AND C LIKE 'Microsoft:%'"),
        select(
            "X",
            Some(Expr::And(vec![
                cmp(prop("A"), Op::Ne, s("x")),
                cmp(prop("B"), Op::Ne, Operand::Int("2".into())),
                cmp(prop("C"), Op::Like, s("Microsoft:%")),
            ]))
        )
    );
}

#[test]
fn a_property_may_be_compared_with_a_system_property() {
    assert_eq!(
        parse("select * from Msvm_ComputerSystem where Name != __SERVER"),
        select(
            "Msvm_ComputerSystem",
            Some(cmp(prop("Name"), Op::Ne, prop("__SERVER")))
        )
    );
}

#[test]
fn os_win_queries_settings_with_like() {
    let q = "SELECT * FROM Msvm_SecuritySettingData WHERE InstanceID LIKE 'Microsoft:B5314955-3924-42BA-ABF9-793993D340A0%'";
    assert_eq!(
        parse(q),
        select(
            "Msvm_SecuritySettingData",
            Some(cmp(
                prop("InstanceID"),
                Op::Like,
                s("Microsoft:B5314955-3924-42BA-ABF9-793993D340A0%")
            ))
        )
    );
}

#[test]
fn libvirts_associators_query_names_its_source_and_classes() {
    let q = "ASSOCIATORS OF {Msvm_ComputerSystem.CreationClassName='Msvm_ComputerSystem',Name='B5314955-3924-42BA-ABF9-793993D340A0'} WHERE AssocClass = Msvm_SettingsDefineState ResultClass = Msvm_VirtualSystemSettingData";
    let Ok(Query::Traverse(t)) = parse(q) else {
        panic!("{:?}", parse(q))
    };
    assert_eq!(t.returns, Returns::Associated);
    assert_eq!(t.source.class, "Msvm_ComputerSystem");
    assert_eq!(
        t.source.selectors,
        vec![
            (
                "CreationClassName".to_owned(),
                "Msvm_ComputerSystem".to_owned()
            ),
            (
                "Name".to_owned(),
                "B5314955-3924-42BA-ABF9-793993D340A0".to_owned()
            )
        ]
    );
    assert_eq!(
        t.association_class.as_deref(),
        Some("Msvm_SettingsDefineState")
    );
    assert_eq!(
        t.result_class.as_deref(),
        Some("Msvm_VirtualSystemSettingData")
    );
}

#[test]
fn references_of_takes_the_association_class_as_result_class_and_a_namespaced_path() {
    let q = r#"references of {\\HV01\root\virtualization\v2:Msvm_VirtualSystemSettingData.InstanceID="Microsoft:X"} where ResultClass = Msvm_VirtualSystemSettingDataComponent Role = GroupComponent"#;
    let Ok(Query::Traverse(t)) = parse(q) else {
        panic!("{:?}", parse(q))
    };
    assert_eq!(t.returns, Returns::Associations);
    assert_eq!(
        t.source.namespace.as_deref(),
        Some("root/virtualization/v2")
    );
    assert_eq!(
        t.source.selectors,
        vec![("InstanceID".to_owned(), "Microsoft:X".to_owned())]
    );
    assert_eq!(
        t.association_class.as_deref(),
        Some("Msvm_VirtualSystemSettingDataComponent")
    );
    assert_eq!(t.role.as_deref(), Some("GroupComponent"));
    assert_eq!(t.result_class, None);
}

#[test]
fn unsupported_traversal_keywords_and_paths_are_refused_naming_them() {
    assert!(message("ASSOCIATORS OF {C.K='v'} WHERE ClassDefsOnly").contains("\"ClassDefsOnly\""));
    assert!(message("REFERENCES OF {C.K='v'} WHERE ResultRole = X").contains("\"ResultRole\""));
    assert!(message("ASSOCIATORS OF C WHERE AssocClass = A").contains("object path"));
    assert!(message("ASSOCIATORS OF {C.K='v'").contains("unterminated object path"));
    assert!(message("ASSOCIATORS OF {C.K=v w}").contains("neither quoted"));
    assert!(
        message("ASSOCIATORS OF {C.K='v'} WHERE AssocClass = A AssocClass = B").contains("twice")
    );
}

#[test]
fn property_lists_are_refused_with_a_reason() {
    let e = parse("SELECT Name FROM C").unwrap_err();
    assert!(
        e.message.contains("only SELECT *") && e.message.contains("Name"),
        "{e}"
    );
    assert_eq!(e.position, 7);
}

#[test]
fn other_operators_and_literals_are_refused_naming_the_token() {
    assert!(message("SELECT * FROM C WHERE A > 1").contains("\">\""));
    assert!(message("SELECT * FROM C WHERE A <= 1").contains("\"<=\""));
    assert!(message("SELECT * FROM C WHERE A = NULL").contains("\"NULL\""));
    assert!(message("SELECT * FROM C WHERE A IS NULL").contains("\"IS\""));
    assert!(message("SELECT * FROM C WHERE A = 1.5").contains("decimal integers"));
    assert!(message("SELECT * FROM C WHERE A LIKE '[ab]%'").contains("character sets"));
    assert!(message("SELECT * FROM C WHERE A LIKE B").contains("string pattern"));
    assert!(message("SELECT * FROM C WHERE A = 1 ISA B").contains("\"ISA\""));
}

#[test]
fn truncated_queries_say_what_was_expected() {
    assert_eq!(
        message("SELECT * FROM"),
        "expected a class name, found the end of the query"
    );
    assert_eq!(
        message("SELECT * FROM C WHERE A ="),
        "expected a property, string, number, TRUE or FALSE after A =, found the end of the query"
    );
    assert!(message("SELECT * FROM C WHERE A = 'x").contains("unterminated"));
    assert!(message("SELECT * FROM C WHERE").contains("expected a property"));
    assert!(message("SELECT * FROM C WHERE (A = 1").contains("expected \")\""));
    assert!(message("").contains("expected SELECT"));
}

#[test]
fn trailing_garbage_is_refused() {
    assert!(message("SELECT * FROM C D").contains("expected WHERE"));
    assert!(message("SELECT * FROM C WHERE A = 1 B").contains("unexpected \"B\""));
    assert!(message("SELECT * FROM C WHERE A = 1)").contains("unexpected \")\""));
}

#[test]
fn overlong_queries_are_refused() {
    let long = format!("SELECT * FROM C WHERE A = '{}'", "x".repeat(MAX_QUERY_LEN));
    assert!(message(&long).contains("longer than"));
}

#[test]
fn nesting_is_bounded_whether_by_parentheses_or_by_not() {
    let ok = format!(
        "SELECT * FROM C WHERE {}A = 1{}",
        "(".repeat(MAX_DEPTH),
        ")".repeat(MAX_DEPTH)
    );
    assert!(parse(&ok).is_ok());
    let deep = format!(
        "SELECT * FROM C WHERE {}A = 1{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert!(
        message(&deep).contains("nest deeper than 32"),
        "{}",
        message(&deep)
    );
    let nots = format!(
        "SELECT * FROM C WHERE {}A = 1",
        "NOT ".repeat(MAX_DEPTH + 1)
    );
    assert!(message(&nots).contains("nest deeper"));
    // A query of nothing but parentheses, as long as one may be, is refused at once.
    let worst = format!("SELECT * FROM C WHERE {}", "(".repeat(MAX_QUERY_LEN - 22));
    assert!(message(&worst).contains("nest deeper"));
}

#[test]
fn the_number_of_comparisons_is_bounded() {
    let many = vec!["A = 1"; MAX_CONDITIONS + 1].join(" OR ");
    assert!(message(&format!("SELECT * FROM C WHERE {many}")).contains("more than 64"));
}

proptest::proptest! {
    #[test]
    fn parsing_never_panics(q in "\\PC{0,200}") {
        let _ = parse(&q);
    }

    #[test]
    fn parsing_clause_shaped_text_never_panics(q in "(\\(|\\)| NOT | AND | OR |A|'x'|=|!=|<>| LIKE |__SERVER|\\{|\\}|,|\\.){0,80}") {
        let _ = parse(&format!("SELECT * FROM C WHERE {q}"));
        let _ = parse(&format!("ASSOCIATORS OF {q}"));
    }

    #[test]
    fn any_quoted_string_round_trips(v in "[^\\\\']{0,40}") {
        let query = format!("SELECT * FROM C WHERE P = '{v}'");
        proptest::prop_assert_eq!(parse(&query), select("C", Some(eq("P", &v))));
    }
}
