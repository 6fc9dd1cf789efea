//! Association traversals through the sans-IO engine: the engine crosses the schema's
//! associations by the provider's `references`, gets each far end with `get`, and pulls them
//! as any enumeration.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use vmsec_wsman::{Engine, EngineConfig, Principal, Response};

fn engine() -> (Arc<TestProvider>, Engine<TestProvider>) {
    let p = Arc::new(TestProvider::new());
    let config = EngineConfig {
        machine: "hv01.test".into(),
        ..EngineConfig::default()
    };
    (p.clone(), Engine::new(p, config))
}

fn send(e: &Engine<TestProvider>, body: &str) -> Response {
    let admin = Principal {
        user: "admin".into(),
        role: String::new(),
        remembered: None,
    };
    e.handle(&admin, body.as_bytes(), Instant::now())
}

fn enumerate(filter: &str, optimize: bool) -> String {
    let optimize = if optimize {
        "<w:OptimizeEnumeration/><w:MaxElements>100</w:MaxElements>"
    } else {
        ""
    };
    format!(
        r#"<s:Envelope xmlns:s="{SOAP}" xmlns:a="{WSA}" xmlns:w="{WSMAN}"><s:Header><a:To>http://localhost/wsman</a:To><w:ResourceURI>{V2}*</w:ResourceURI><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><a:Action>http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate</a:Action><a:MessageID>uuid:1</a:MessageID></s:Header><s:Body><n:Enumerate xmlns:n="{WSEN}">{optimize}{filter}</n:Enumerate></s:Body></s:Envelope>"#
    )
}

fn association_filter(kind: &str, object_class: &str, selectors: &str, parts: &str) -> String {
    format!(
        r#"<w:Filter Dialect="http://schemas.dmtf.org/wbem/wsman/1/cimbinding/associationFilter"><b:{kind} xmlns:b="http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd"><b:Object><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address><a:ReferenceParameters><w:ResourceURI>{V2}{object_class}</w:ResourceURI><w:SelectorSet>{selectors}</w:SelectorSet></a:ReferenceParameters></b:Object>{parts}</b:{kind}></w:Filter>"#
    )
}

const SERVICE_KEYS: &str = r#"<w:Selector Name="CreationClassName">Msvm_SecurityService</w:Selector><w:Selector Name="Name">vmsecuritywmi</w:Selector><w:Selector Name="SystemCreationClassName">Msvm_ComputerSystem</w:Selector><w:Selector Name="SystemName">HV01</w:Selector><w:Selector Name="__cimnamespace">root/virtualization/v2</w:Selector>"#;

fn names(body: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(body).unwrap();
    doc.descendants()
        .filter(|n| {
            n.tag_name().name() == "Name"
                && n.parent()
                    .is_some_and(|p| p.tag_name().name() == "Msvm_ComputerSystem")
        })
        .filter_map(|n| n.text().map(str::to_owned))
        .collect()
}

fn text_in(body: &str, ns: &str, local: &str) -> Option<String> {
    text(&roxmltree::Document::parse(body).unwrap(), ns, local)
}

#[test]
fn associated_instances_are_the_far_ends_got_from_the_provider_and_a_gone_one_is_skipped() {
    let (p, e) = engine();
    let filter = association_filter(
        "AssociatedInstances",
        "Msvm_SecurityService",
        SERVICE_KEYS,
        "<b:ResultClassName>Msvm_ComputerSystem</b:ResultClassName>",
    );
    let r = send(&e, &enumerate(&filter, true));
    assert_eq!(r.status, 200, "{}", r.body);
    let want: Vec<String> = (1..=p.vm_count)
        .map(|i| {
            computer_system(i)
                .value("Name")
                .and_then(vmsec_cim::Value::as_str)
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        names(&r.body),
        want,
        "every VM once; the removed one is not there"
    );
    let calls = p.calls();
    assert_eq!(
        calls[0],
        Call::References {
            association: "Msvm_ServiceAffectsElement".into(),
            role: "AffectingElement".into(),
            target: vec![
                ("CreationClassName".into(), "Msvm_SecurityService".into()),
                ("Name".into(), "vmsecuritywmi".into()),
                (
                    "SystemCreationClassName".into(),
                    "Msvm_ComputerSystem".into()
                ),
                ("SystemName".into(), "HV01".into()),
            ],
        },
        "the source's keys in the schema's spelling, without __cimnamespace"
    );
    let gets = calls
        .iter()
        .filter(|c| matches!(c, Call::Get { .. }))
        .count();
    assert_eq!(
        gets,
        p.vm_count + 1,
        "each far end got, the removed one too"
    );
}

#[test]
fn association_instances_carry_both_references_as_endpoint_references() {
    let (_, e) = engine();
    let vm1 = computer_system(1)
        .value("Name")
        .and_then(vmsec_cim::Value::as_str)
        .unwrap()
        .to_owned();
    let filter = association_filter(
        "AssociationInstances",
        "Msvm_ComputerSystem",
        &format!(
            r#"<w:Selector Name="CreationClassName">Msvm_ComputerSystem</w:Selector><w:Selector Name="Name">{vm1}</w:Selector>"#
        ),
        "",
    );
    let r = send(&e, &enumerate(&filter, true));
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = roxmltree::Document::parse(&r.body).unwrap();
    let assoc: Vec<_> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "Msvm_ServiceAffectsElement")
        .collect();
    assert_eq!(assoc.len(), 1, "{}", r.body);
    let selectors: Vec<(String, String)> = assoc[0]
        .descendants()
        .filter(|n| n.has_tag_name((WSMAN, "Selector")))
        .map(|n| {
            (
                n.attribute("Name").unwrap().to_owned(),
                n.text().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(selectors.contains(&("Name".into(), vm1)));
    assert!(selectors.contains(&("Name".into(), "vmsecuritywmi".into())));
}

#[test]
fn a_traversal_unpushed_is_pulled_one_far_end_at_a_time() {
    let (p, e) = engine();
    let wql = r#"<w:Filter Dialect="http://schemas.microsoft.com/wbem/wsman/1/WQL">ASSOCIATORS OF {Msvm_SecurityService.CreationClassName="Msvm_SecurityService",Name="vmsecuritywmi",SystemCreationClassName="Msvm_ComputerSystem",SystemName="HV01"} WHERE AssocClass = Msvm_ServiceAffectsElement</w:Filter>"#;
    let r = send(&e, &enumerate(wql, false));
    assert_eq!(r.status, 200, "{}", r.body);
    let mut context = text_in(&r.body, WSEN, "EnumerationContext");
    let mut seen = Vec::new();
    while let Some(ctx) = context.filter(|c| !c.is_empty()) {
        let body = testdata("pull.xml")
            .replace("{{CONTEXT}}", &ctx)
            .replace("<wsen:MaxElements>{{MAX}}</wsen:MaxElements>", "");
        let r = send(&e, &body);
        assert_eq!(r.status, 200, "{}", r.body);
        let got = names(&r.body);
        assert!(got.len() <= 1, "{}", r.body);
        seen.extend(got);
        context = text_in(&r.body, WSEN, "EnumerationContext");
    }
    assert_eq!(seen.len(), p.vm_count);
}

#[test]
fn a_source_that_misses_a_key_or_is_not_served_is_cannot_process_filter() {
    let (p, e) = engine();
    for (class, selectors, says) in [
        (
            "Msvm_ComputerSystem",
            r#"<w:Selector Name="Name">x</w:Selector>"#,
            "CreationClassName is missing",
        ),
        ("Msvm_ComputerSystem", "", "names no instance"),
        (
            "Win32_Process",
            r#"<w:Selector Name="Handle">1</w:Selector>"#,
            "Win32_Process",
        ),
    ] {
        let r = send(
            &e,
            &enumerate(
                &association_filter("AssociatedInstances", class, selectors, ""),
                false,
            ),
        );
        assert_eq!(
            (r.status, r.outcome),
            (500, "CannotProcessFilter"),
            "{}",
            r.body
        );
        assert!(r.body.contains(says), "{says}: {}", r.body);
    }
    assert!(p.calls().is_empty(), "nothing reached the provider");
}
