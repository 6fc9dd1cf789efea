//! Whole requests through the sans-IO engine, with envelopes shaped like those pypsrp,
//! pywinrm and libvirt (openwsman) send.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use vmsec_cim::Value;
use vmsec_wsman::{Engine, EngineConfig, Principal, Provider, Response};

fn engine() -> (Arc<TestProvider>, Engine<TestProvider>) {
    engine_with(EngineConfig {
        machine: "hv01.test".into(),
        ..EngineConfig::default()
    })
}

fn engine_with(config: EngineConfig) -> (Arc<TestProvider>, Engine<TestProvider>) {
    let p = Arc::new(TestProvider::new());
    (p.clone(), Engine::new(p, config))
}

fn admin() -> Principal {
    Principal {
        user: "admin".into(),
        role: String::new(),
        remembered: None,
    }
}

fn send(e: &Engine<TestProvider>, body: &str) -> Response {
    e.handle(&admin(), body.as_bytes(), Instant::now())
}

/// Asserts `r` is a fault with `subcode` (local name) and returns its document text.
fn assert_fault(r: &Response, subcode: &str) -> String {
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.outcome, subcode, "{}", r.body);
    let doc = roxmltree::Document::parse(&r.body).unwrap();
    let sub = find_all(&doc, SOAP, "Subcode")[0]
        .children()
        .find(|n| n.is_element())
        .unwrap();
    let value = sub.text().unwrap();
    let (prefix, local) = value.split_once(':').unwrap();
    assert_eq!(local, subcode);
    assert!(
        sub.lookup_namespace_uri(Some(prefix)).is_some(),
        "subcode prefix {prefix} is declared"
    );
    text(&doc, WSMANFAULT, "Message").unwrap()
}

const GET_SERVICE: &str = "pypsrp_get_security_service.xml";

fn with_selectors(selectors: &str) -> String {
    let base = testdata(GET_SERVICE);
    let start = base.find("<wsman:SelectorSet>").unwrap();
    let end = base.find("</wsman:SelectorSet>").unwrap() + "</wsman:SelectorSet>".len();
    format!("{}{selectors}{}", &base[..start], &base[end..])
}

#[test]
fn get_returns_the_instance_with_response_addressing() {
    let (p, e) = engine();
    let r = send(&e, &testdata(GET_SERVICE));
    assert_eq!(
        (r.status, r.operation, r.outcome),
        (200, "get", "ok"),
        "{}",
        r.body
    );
    let doc = roxmltree::Document::parse(&r.body).unwrap();
    assert_eq!(
        text(&doc, WSA, "Action").unwrap(),
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse"
    );
    assert_eq!(
        text(&doc, WSA, "RelatesTo").unwrap(),
        "uuid:3F6F8F0B-4F4E-4C43-9C5E-2F3B0D3A9E11"
    );
    assert_eq!(
        text(&doc, WSA, "To").unwrap(),
        "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
    );
    let class_ns = format!("{V2}Msvm_SecurityService");
    let inst = find_all(&doc, &class_ns, "Msvm_SecurityService");
    assert_eq!(inst.len(), 1);
    assert_eq!(text(&doc, &class_ns, "Name").unwrap(), "vmsecuritywmi");
    assert_eq!(text(&doc, &class_ns, "EnabledState").unwrap(), "2");
    let nil = find_all(&doc, &class_ns, "OtherEnabledState")[0];
    assert_eq!(
        nil.attribute(("http://www.w3.org/2001/XMLSchema-instance", "nil")),
        Some("true")
    );
    let dt = find_all(
        &doc,
        "http://schemas.dmtf.org/wbem/wscim/1/common",
        "Datetime",
    )[0];
    assert_eq!(dt.text(), Some("20240102030405.000000+000"));
    assert_eq!(
        p.calls(),
        vec![Call::Get {
            class: "Msvm_SecurityService".into(),
            selectors: vec![
                ("CreationClassName".into(), "Msvm_SecurityService".into()),
                ("Name".into(), "vmsecuritywmi".into()),
                (
                    "SystemCreationClassName".into(),
                    "Msvm_ComputerSystem".into()
                ),
                ("SystemName".into(), "HV01".into()),
            ]
        }]
    );
}

#[test]
fn selectors_are_matched_ignoring_case_and_cimnamespace_is_dropped() {
    let (p, e) = engine();
    let body = with_selectors(
        r#"<wsman:SelectorSet><wsman:Selector Name="__cimnamespace">root/virtualization/v2</wsman:Selector><wsman:Selector Name="name">vmsecuritywmi</wsman:Selector><wsman:Selector Name="CREATIONCLASSNAME">Msvm_SecurityService</wsman:Selector><wsman:Selector Name="SystemCreationClassName">Msvm_ComputerSystem</wsman:Selector><wsman:Selector Name="SystemName">HV01</wsman:Selector></wsman:SelectorSet>"#,
    );
    assert_eq!(send(&e, &body).status, 200);
    let Call::Get { selectors, .. } = &p.calls()[0] else {
        panic!()
    };
    assert_eq!(
        selectors[0],
        ("Name".to_owned(), "vmsecuritywmi".to_owned())
    );
    assert_eq!(selectors.len(), 4);
}

#[test]
fn get_without_selectors_reaches_the_provider_as_a_singleton_request() {
    let (p, e) = engine();
    let r = send(&e, &with_selectors(""));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        p.calls(),
        vec![Call::Get {
            class: "Msvm_SecurityService".into(),
            selectors: vec![]
        }]
    );
}

#[test]
fn a_selector_that_is_not_a_key_is_invalid_selectors() {
    let (p, e) = engine();
    let r = send(
        &e,
        &with_selectors(
            r#"<wsman:SelectorSet><wsman:Selector Name="ElementName">x</wsman:Selector></wsman:SelectorSet>"#,
        ),
    );
    let msg = assert_fault(&r, "InvalidSelectors");
    assert!(
        msg.contains("ElementName is not a key of Msvm_SecurityService"),
        "{msg}"
    );
    assert!(r.body.contains("faultDetail/UnexpectedSelectors"));
    assert!(p.calls().is_empty(), "the provider is not called");
}

#[test]
fn a_missing_key_is_invalid_selectors_naming_it() {
    let (_, e) = engine();
    let r = send(
        &e,
        &with_selectors(
            r#"<wsman:SelectorSet><wsman:Selector Name="Name">vmsecuritywmi</wsman:Selector></wsman:SelectorSet>"#,
        ),
    );
    let msg = assert_fault(&r, "InvalidSelectors");
    assert!(
        msg.contains("the selector CreationClassName is missing"),
        "{msg}"
    );
    assert!(r.body.contains("Code=\"2150858842\""));
}

#[test]
fn a_duplicated_selector_is_invalid_selectors() {
    let (_, e) = engine();
    let r = send(
        &e,
        &with_selectors(
            r#"<wsman:SelectorSet><wsman:Selector Name="Name">a</wsman:Selector><wsman:Selector Name="Name">b</wsman:Selector></wsman:SelectorSet>"#,
        ),
    );
    assert_fault(&r, "InvalidSelectors");
    assert!(r.body.contains("faultDetail/DuplicateSelectors"));
}

#[test]
fn an_epr_valued_selector_is_invalid_selectors() {
    let (_, e) = engine();
    let r = send(
        &e,
        &with_selectors(
            r#"<wsman:SelectorSet><wsman:Selector Name="Name"><wsa:EndpointReference/></wsman:Selector></wsman:SelectorSet>"#,
        ),
    );
    assert_fault(&r, "InvalidSelectors");
}

#[test]
fn fault_has_soap_code_subcode_reason_and_wsmanfault_detail() {
    let (_, e) = engine();
    let r = send(
        &e,
        &with_selectors(
            r#"<wsman:SelectorSet><wsman:Selector Name="Bogus">x</wsman:Selector></wsman:SelectorSet>"#,
        ),
    );
    let doc = roxmltree::Document::parse(&r.body).unwrap();
    assert_eq!(
        text(&doc, WSA, "Action").unwrap(),
        "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
    );
    assert_eq!(
        text(&doc, WSA, "RelatesTo").unwrap(),
        "uuid:3F6F8F0B-4F4E-4C43-9C5E-2F3B0D3A9E11"
    );
    let code = find_all(&doc, SOAP, "Code")[0];
    let value = code
        .children()
        .find(|n| n.has_tag_name((SOAP, "Value")))
        .unwrap();
    assert_eq!(value.text(), Some("s:Sender"));
    let reason = text(&doc, SOAP, "Text").unwrap();
    assert!(reason.contains("Bogus"), "{reason}");
    let wf = find_all(&doc, WSMANFAULT, "WSManFault")[0];
    assert_eq!(wf.attribute("Code"), Some("2150858843"));
    assert_eq!(wf.attribute("Machine"), Some("hv01.test"));
    assert_eq!(text(&doc, WSMANFAULT, "Message").unwrap(), reason);
}

#[test]
fn an_unknown_class_is_destination_unreachable() {
    let (_, e) = engine();
    let body = testdata(GET_SERVICE).replace("v2/Msvm_SecurityService", "v2/Msvm_Nope");
    let msg = assert_fault(&send(&e, &body), "DestinationUnreachable");
    assert!(msg.contains("Msvm_Nope"), "{msg}");
}

#[test]
fn a_resource_uri_outside_the_namespace_is_destination_unreachable() {
    let (_, e) = engine();
    let body = testdata(GET_SERVICE).replace(
        "wmi/root/virtualization/v2/Msvm_SecurityService",
        "wmi/root/cimv2/Win32_Service",
    );
    assert_fault(&send(&e, &body), "DestinationUnreachable");
}

/// The pypsrp Get, addressed to `uri` and without selectors.
fn get_without_selectors(uri: &str) -> String {
    with_selectors("").replace(
        "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_SecurityService",
        uri,
    )
}

#[test]
fn a_class_of_another_namespace_is_served_in_its_own() {
    let (p, e) = engine();
    // WMI namespaces are case-insensitive; PowerShell writes root\Microsoft\Windows\Hgs.
    let body = get_without_selectors(
        "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/Microsoft/Windows/Hgs/MSFT_HgsClientConfiguration",
    );
    let r = send(&e, &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = roxmltree::Document::parse(&r.body).unwrap();
    let uri = format!("{HGS}MSFT_HgsClientConfiguration");
    assert_eq!(text(&doc, &uri, "Mode").as_deref(), Some("Local"));
    assert_eq!(
        p.calls(),
        vec![Call::Get {
            class: "MSFT_HgsClientConfiguration".into(),
            selectors: vec![]
        }]
    );
}

#[test]
fn a_served_class_named_in_another_namespace_is_destination_unreachable() {
    let (p, e) = engine();
    let body = get_without_selectors(&format!("{V2}MSFT_HgsClientConfiguration"));
    let msg = assert_fault(&send(&e, &body), "DestinationUnreachable");
    assert!(msg.contains("root/microsoft/windows/hgs"), "{msg}");
    let body = get_without_selectors(&format!("{HGS}Msvm_SecurityService"));
    let msg = assert_fault(&send(&e, &body), "DestinationUnreachable");
    assert!(msg.contains("root/virtualization/v2"), "{msg}");
    let body = testdata("libvirt_enumerate_wql.xml").replace(
        "wmi/root/virtualization/v2/*",
        "wmi/root/microsoft/windows/hgs/*",
    );
    assert_fault(&send(&e, &body), "DestinationUnreachable");
    assert!(p.calls().is_empty(), "{:?}", p.calls());
}

#[test]
fn a_keyless_singleton_takes_no_selectors() {
    let (_, e) = engine();
    let body = with_selectors(
        r#"<wsman:SelectorSet><wsman:Selector Name="Mode">Local</wsman:Selector></wsman:SelectorSet>"#,
    )
    .replace(
        &format!("{V2}Msvm_SecurityService"),
        &format!("{HGS}MSFT_HgsClientConfiguration"),
    );
    let msg = assert_fault(&send(&e, &body), "InvalidSelectors");
    assert!(msg.contains("singleton"), "{msg}");
}

#[test]
fn replies_and_references_name_the_class_namespace() {
    let (_, e) = engine();
    let body = testdata("pywinrm_enumerate_object_and_epr.xml").replace(
        &format!("{V2}Msvm_ComputerSystem"),
        &format!("{HGS}MSFT_HgsClientConfiguration"),
    );
    let r = send(&e, &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = roxmltree::Document::parse(&r.body).unwrap();
    let uri = format!("{HGS}MSFT_HgsClientConfiguration");
    assert_eq!(
        find_all(&doc, &uri, "MSFT_HgsClientConfiguration").len(),
        1,
        "{}",
        r.body
    );
    assert_eq!(text(&doc, WSMAN, "ResourceURI").as_deref(), Some(&uri[..]));
    let selectors: Vec<_> = find_all(&doc, WSMAN, "Selector")
        .iter()
        .map(|n| (n.attribute("Name").unwrap(), n.text().unwrap_or("")))
        .collect();
    assert_eq!(
        selectors,
        vec![("__cimnamespace", "root/microsoft/windows/hgs")]
    );
}

#[test]
fn the_dmtf_resource_uri_form_is_accepted() {
    let (_, e) = engine();
    let body = testdata(GET_SERVICE).replace(
        "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_SecurityService",
        "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/Msvm_SecurityService",
    );
    assert_eq!(send(&e, &body).status, 200);
}

#[test]
fn a_missing_instance_is_destination_unreachable() {
    let (_, e) = engine();
    let body = testdata(GET_SERVICE).replace(">vmsecuritywmi<", ">other<");
    let msg = assert_fault(&send(&e, &body), "DestinationUnreachable");
    assert!(msg.contains("No instance"), "{msg}");
}

#[test]
fn a_provider_failure_is_internal_error_from_the_receiver() {
    let (_, e) = engine();
    let body = with_selectors(r#"<wsman:SelectorSet><wsman:Selector Name="InstanceID">j1</wsman:Selector></wsman:SelectorSet>"#)
        .replace("v2/Msvm_SecurityService", "v2/Msvm_ConcreteJob");
    let r = send(&e, &body);
    assert_fault(&r, "InternalError");
    assert!(r.body.contains("<s:Value>s:Receiver</s:Value>"));
}

#[test]
fn unknown_actions_are_action_not_supported() {
    let (_, e) = engine();
    for action in [
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/Put",
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete",
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command",
        "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_SecurityService/DestroySystem",
    ] {
        let body = testdata(GET_SERVICE)
            .replace("http://schemas.xmlsoap.org/ws/2004/09/transfer/Get", action);
        assert_fault(&send(&e, &body), "ActionNotSupported");
    }
}

#[test]
fn missing_action_or_message_id_is_a_header_fault() {
    let (_, e) = engine();
    let no_action = testdata(GET_SERVICE).replace(
        r#"<wsa:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/transfer/Get</wsa:Action>"#,
        "",
    );
    assert_fault(&send(&e, &no_action), "MessageInformationHeaderRequired");
    let no_id = testdata(GET_SERVICE).replace(
        "<wsa:MessageID>uuid:3F6F8F0B-4F4E-4C43-9C5E-2F3B0D3A9E11</wsa:MessageID>",
        "",
    );
    assert_fault(&send(&e, &no_id), "MessageInformationHeaderRequired");
}

#[test]
fn malformed_timeout_or_envelope_size_headers_are_refused() {
    let (_, e) = engine();
    let body = testdata(GET_SERVICE).replace("PT20S", "twenty seconds");
    assert_fault(&send(&e, &body), "InvalidMessageInformationHeader");
    let body = testdata(GET_SERVICE).replace(">153600<", ">lots<");
    assert_fault(&send(&e, &body), "InvalidMessageInformationHeader");
    let body = testdata(GET_SERVICE).replace(">153600<", ">1024<");
    let r = send(&e, &body);
    assert_fault(&r, "EncodingLimit");
    assert!(
        r.body
            .contains("<a:RelatesTo>uuid:3F6F8F0B-4F4E-4C43-9C5E-2F3B0D3A9E11</a:RelatesTo>"),
        "header faults still relate to the request"
    );
    assert!(r.body.contains("faultDetail/MinimumEnvelopeLimit"));
}

#[test]
fn unknown_must_understand_headers_are_ignored() {
    let (_, e) = engine();
    let body = testdata(GET_SERVICE).replace(
        "<wsa:To>",
        r#"<x:Custom xmlns:x="urn:unknown" s:mustUnderstand="true">1</x:Custom><wsa:To>"#,
    );
    assert_eq!(send(&e, &body).status, 200);
}

#[test]
fn doctype_is_refused_as_not_soap() {
    let (p, e) = engine();
    let r = send(&e, &testdata("doctype.xml"));
    assert_eq!((r.status, r.soap, r.outcome), (400, false, "bad_request"));
    assert!(
        r.body.contains("not well-formed") || r.body.to_lowercase().contains("dtd"),
        "{}",
        r.body
    );
    assert!(p.calls().is_empty());
}

#[test]
fn deep_nesting_is_refused_as_not_soap() {
    let (_, e) = engine();
    let deep = format!("{}{}{}", "<a>".repeat(300_000), "x", "</a>".repeat(300_000));
    let body = testdata(GET_SERVICE).replace("<s:Body />", &format!("<s:Body>{deep}</s:Body>"));
    let r = send(&e, &body);
    assert_eq!(r.status, 400);
    assert!(r.body.contains("deeper than"), "{}", r.body);
}

/// `n` nested elements each declaring a new prefix: the parse used to cost about n³.
fn namespace_nest(n: usize) -> String {
    let open: String = (0..n).map(|i| format!("<a xmlns:p{i}=\"u\">")).collect();
    format!("{open}{}", "</a>".repeat(n))
}

#[test]
fn a_namespace_nesting_bomb_is_refused_as_not_soap_before_the_provider_is_asked() {
    // 3,000 levels (70 KB) used to take 17.6 s to parse before the depth was looked at.
    let (p, e) = engine();
    let body = testdata(GET_SERVICE).replace(
        "<s:Body />",
        &format!("<s:Body>{}</s:Body>", namespace_nest(3_000)),
    );
    let r = send(&e, &body);
    assert_eq!((r.status, r.soap, r.outcome), (400, false, "bad_request"));
    assert!(r.body.contains("nest deeper than 64"), "{}", r.body);
    assert!(p.calls().is_empty());
    // The whole envelope as the nest, with nothing SOAP about it.
    let r = send(&e, &namespace_nest(100_000));
    assert_eq!(r.status, 400);
    assert!(r.body.contains("nest deeper than 64"), "{}", r.body);
}

#[test]
fn more_namespace_declarations_than_the_limit_are_refused_on_one_element_or_spread() {
    let (p, e) = engine();
    let n = vmsec_wsman::envelope::MAX_NAMESPACE_DECLARATIONS;
    let siblings: String = (0..n)
        .map(|i| format!("<x:h{i} xmlns:x=\"urn:x{i}\"/>"))
        .collect();
    let spread = testdata(GET_SERVICE).replace("<wsa:To>", &format!("{siblings}<wsa:To>"));
    let r = send(&e, &spread);
    assert_eq!((r.status, r.soap), (400, false));
    assert!(
        r.body.contains("more than 128 namespace declarations"),
        "{}",
        r.body
    );
    let decls: String = (0..n).map(|i| format!(" xmlns:q{i}=\"urn:q\"")).collect();
    let one = testdata(GET_SERVICE).replacen("<s:Envelope ", &format!("<s:Envelope{decls} "), 1);
    let r = send(&e, &one);
    assert_eq!((r.status, r.soap), (400, false));
    // 128 extra declarations on one element cross the attribute limit first.
    assert!(r.body.contains("more than 64 attributes"), "{}", r.body);
    assert!(p.calls().is_empty());
    // A request declaring its prefixes on every header element is still read.
    let redeclared = testdata(GET_SERVICE).replace(
        "<wsa:To>",
        "<wsa:To xmlns:wsa=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\">",
    );
    assert_eq!(send(&e, &redeclared).status, 200);
}

#[test]
fn bodies_that_are_not_soap_12_envelopes_get_400() {
    let (_, e) = engine();
    for body in [
        "not xml at all",
        "<Envelope/>",
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>"#,
        r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header/></s:Envelope>"#,
    ] {
        let r = send(&e, body);
        assert_eq!((r.status, r.soap), (400, false), "{body}");
    }
    assert_eq!(
        e.handle(&admin(), b"\xff\xfe<\x00", Instant::now()).status,
        400
    );
}

// ---- Enumerate / Pull / Release ----

fn context_of(body: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(body).unwrap();
    text(&doc, WSEN, "EnumerationContext").filter(|c| !c.is_empty())
}

fn pull(context: &str, max: u32) -> String {
    testdata("pull.xml")
        .replace("{{CONTEXT}}", context)
        .replace("{{MAX}}", &max.to_string())
}

#[test]
fn libvirt_wql_enumeration_is_pulled_one_instance_at_a_time_until_the_context_ends() {
    let (p, e) = engine();
    let r = send(&e, &testdata("libvirt_enumerate_wql.xml"));
    assert_eq!((r.status, r.operation), (200, "enumerate"), "{}", r.body);
    let doc = roxmltree::Document::parse(&r.body).unwrap();
    assert_eq!(
        text(&doc, WSA, "Action").unwrap(),
        "http://schemas.xmlsoap.org/ws/2004/09/enumeration/EnumerateResponse"
    );
    assert!(
        find_all(&doc, WSMAN, "Items").is_empty(),
        "not optimized: no items yet"
    );
    assert_eq!(
        p.calls(),
        vec![Call::Enumerate {
            class: "Msvm_ComputerSystem".into(),
            filter: vec![("Description".into(), "Microsoft Virtual Machine".into())]
        }]
    );
    // libvirt pulls (no MaxElements) with the class URI until no context comes back.
    let class_ns = format!("{V2}Msvm_ComputerSystem");
    let mut context = context_of(&r.body);
    let mut names = Vec::new();
    while let Some(ctx) = context {
        let body = pull(&ctx, 1).replace("<wsen:MaxElements>1</wsen:MaxElements>", "");
        let r = send(&e, &body);
        assert_eq!(r.status, 200, "{}", r.body);
        let doc = roxmltree::Document::parse(&r.body).unwrap();
        let items = find_all(&doc, WSEN, "Items")[0];
        let inst = items
            .children()
            .find(|n| n.has_tag_name((class_ns.as_str(), "Msvm_ComputerSystem")));
        names.push(
            inst.unwrap()
                .children()
                .find(|n| n.has_tag_name((class_ns.as_str(), "Name")))
                .unwrap()
                .text()
                .unwrap()
                .to_owned(),
        );
        context = context_of(&r.body);
        assert!(names.len() <= 3);
    }
    assert_eq!(names.len(), 3, "only the VMs match: {names:?}");
    assert_eq!(e.open_enumerations(), 0);
}

#[test]
fn optimized_wql_enumeration_returns_every_match_in_the_response() {
    let (_, e) = engine();
    let body = testdata("libvirt_enumerate_wql.xml").replace(
        "<wsen:Enumerate>",
        "<wsen:Enumerate><wsman:OptimizeEnumeration/><wsman:MaxElements>100</wsman:MaxElements>",
    );
    let r = send(&e, &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = roxmltree::Document::parse(&r.body).unwrap();
    let class_ns = format!("{V2}Msvm_ComputerSystem");
    let items = find_all(&doc, &class_ns, "Msvm_ComputerSystem");
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].parent().unwrap().tag_name().name(), "Items");
    assert_eq!(find_all(&doc, WSMAN, "EndOfSequence").len(), 1);
    assert_eq!(text(&doc, &class_ns, "ElementName").unwrap(), "vm-1 <&>");
    assert!(context_of(&r.body).is_none());
    assert_eq!(
        e.open_enumerations(),
        0,
        "a finished optimized enumeration keeps no context"
    );
}

#[test]
fn the_engine_applies_the_filter_to_a_provider_that_ignores_it() {
    for read_at_once in [false, true] {
        let mut provider = TestProvider::new();
        provider.ignore_filter = true;
        provider.read_at_once = read_at_once;
        let e = Engine::new(Arc::new(provider), EngineConfig::default());
        let body = testdata("libvirt_enumerate_wql.xml").replace(
            "<wsen:Enumerate>",
            "<wsen:Enumerate><wsman:OptimizeEnumeration/><wsman:MaxElements>100</wsman:MaxElements>",
        );
        let r = send(&e, &body);
        assert_eq!(r.status, 200, "{}", r.body);
        let doc = roxmltree::Document::parse(&r.body).unwrap();
        let class_ns = format!("{V2}Msvm_ComputerSystem");
        let descriptions: Vec<&str> = find_all(&doc, &class_ns, "Description")
            .iter()
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(
            descriptions, ["Microsoft Virtual Machine"; 3],
            "the host does not match (read at once: {read_at_once})"
        );
        assert!(context_of(&r.body).is_none());
    }
}

#[test]
fn pywinrm_object_and_epr_enumeration_pages_through_pull() {
    let (_, e) = engine();
    let r = send(&e, &testdata("pywinrm_enumerate_object_and_epr.xml"));
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = roxmltree::Document::parse(&r.body).unwrap();
    let items = find_all(&doc, WSMAN, "Item");
    assert_eq!(items.len(), 2, "MaxElements 2");
    let epr = items[0]
        .children()
        .find(|n| n.has_tag_name((WSA, "EndpointReference")))
        .unwrap();
    let selectors: Vec<_> = epr
        .descendants()
        .filter(|n| n.has_tag_name((WSMAN, "Selector")))
        .map(|n| {
            (
                n.attribute("Name").unwrap().to_owned(),
                n.text().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        selectors,
        vec![
            (
                "CreationClassName".to_owned(),
                "Msvm_ComputerSystem".to_owned()
            ),
            ("Name".to_owned(), "HV01".to_owned()),
            (
                "__cimnamespace".to_owned(),
                "root/virtualization/v2".to_owned()
            ),
        ]
    );
    assert!(find_all(&doc, WSMAN, "EndOfSequence").is_empty());
    let ctx = context_of(&r.body).unwrap();

    let r = send(&e, &pull(&ctx, 5));
    assert_eq!((r.status, r.operation), (200, "pull"), "{}", r.body);
    let doc = roxmltree::Document::parse(&r.body).unwrap();
    assert_eq!(
        text(&doc, WSA, "Action").unwrap(),
        "http://schemas.xmlsoap.org/ws/2004/09/enumeration/PullResponse"
    );
    assert_eq!(find_all(&doc, WSMAN, "Item").len(), 2, "the remaining two");
    assert_eq!(find_all(&doc, WSEN, "EndOfSequence").len(), 1);
    assert!(
        context_of(&r.body).is_none(),
        "a finished enumeration returns no context"
    );

    assert_fault(&send(&e, &pull(&ctx, 5)), "InvalidEnumerationContext");
}

#[test]
fn plain_enumeration_returns_only_a_context_and_pull_defaults_to_one_item() {
    let (_, e) = engine();
    let body = testdata("pywinrm_enumerate_object_and_epr.xml")
        .replace("<w:OptimizeEnumeration/><w:MaxElements>2</w:MaxElements><w:EnumerationMode>EnumerateObjectAndEPR</w:EnumerationMode>", "");
    let r = send(&e, &body);
    let doc = roxmltree::Document::parse(&r.body).unwrap();
    assert!(find_all(&doc, WSMAN, "Items").is_empty());
    let ctx = context_of(&r.body).unwrap();
    let pull_one = pull(&ctx, 1).replace("<wsen:MaxElements>1</wsen:MaxElements>", "");
    let mut names = Vec::new();
    for _ in 0..4 {
        let r = send(&e, &pull_one);
        let doc = roxmltree::Document::parse(&r.body).unwrap();
        let items = find_all(
            &doc,
            &format!("{V2}Msvm_ComputerSystem"),
            "Msvm_ComputerSystem",
        );
        assert_eq!(items.len(), 1);
        names.push(text(&doc, &format!("{V2}Msvm_ComputerSystem"), "Name").unwrap());
    }
    assert_eq!(names[0], "HV01");
    assert_eq!(e.open_enumerations(), 0);
}

#[test]
fn epr_mode_returns_endpoint_references_only() {
    let (_, e) = engine();
    let body = testdata("pywinrm_enumerate_object_and_epr.xml")
        .replace(">EnumerateObjectAndEPR<", ">EnumerateEPR<");
    let r = send(&e, &body);
    let doc = roxmltree::Document::parse(&r.body).unwrap();
    assert_eq!(find_all(&doc, WSA, "EndpointReference").len(), 2);
    assert!(
        find_all(
            &doc,
            &format!("{V2}Msvm_ComputerSystem"),
            "Msvm_ComputerSystem"
        )
        .is_empty()
    );
}

#[test]
fn an_unknown_enumeration_mode_is_refused() {
    let (_, e) = engine();
    let body = testdata("pywinrm_enumerate_object_and_epr.xml")
        .replace(">EnumerateObjectAndEPR<", ">EnumerateEverything<");
    assert_fault(&send(&e, &body), "SchemaValidationError");
}

#[test]
fn release_ends_the_enumeration() {
    let (_, e) = engine();
    let r = send(&e, &testdata("pywinrm_enumerate_object_and_epr.xml"));
    let ctx = context_of(&r.body).unwrap();
    let r = send(&e, &testdata("release.xml").replace("{{CONTEXT}}", &ctx));
    assert_eq!((r.status, r.operation), (200, "release"), "{}", r.body);
    let doc = roxmltree::Document::parse(&r.body).unwrap();
    assert_eq!(
        text(&doc, WSA, "Action").unwrap(),
        "http://schemas.xmlsoap.org/ws/2004/09/enumeration/ReleaseResponse"
    );
    assert_fault(&send(&e, &pull(&ctx, 1)), "InvalidEnumerationContext");
    assert_fault(
        &send(&e, &testdata("release.xml").replace("{{CONTEXT}}", &ctx)),
        "InvalidEnumerationContext",
    );
}

#[test]
fn another_user_cannot_pull_an_enumeration() {
    let (_, e) = engine();
    let r = send(&e, &testdata("pywinrm_enumerate_object_and_epr.xml"));
    let ctx = context_of(&r.body).unwrap();
    let r = e.handle(
        &Principal {
            user: "reader".into(),
            role: String::new(),
            remembered: None,
        },
        pull(&ctx, 1).as_bytes(),
        Instant::now(),
    );
    assert_fault(&r, "InvalidEnumerationContext");
    assert_eq!(send(&e, &pull(&ctx, 1)).status, 200, "the owner still can");
}

#[test]
fn expired_enumerations_are_invalid() {
    // The engine reads no clock of its own: expiry is shown by handing it later instants.
    let expiry = Duration::from_secs(300);
    let (_, e) = engine_with(EngineConfig {
        enumeration_expiry: expiry,
        ..EngineConfig::default()
    });
    let t0 = Instant::now();
    let enumerate = testdata("pywinrm_enumerate_object_and_epr.xml");
    let at = |body: &str, now: Instant| e.handle(&admin(), body.as_bytes(), now);
    let r = at(&enumerate, t0);
    let ctx = context_of(&r.body).unwrap();
    let r = at(&pull(&ctx, 1), t0 + expiry - Duration::from_secs(1));
    assert_eq!(r.status, 200, "still open just before expiry: {}", r.body);
    // That Pull renewed the context; its deadline is now counted from then.
    let renewed = t0 + expiry - Duration::from_secs(1);
    let r = at(&pull(&ctx, 1), renewed + expiry + Duration::from_secs(1));
    assert_fault(&r, "InvalidEnumerationContext");

    let r = at(&enumerate, t0);
    let ctx = context_of(&r.body).unwrap();
    let r = at(&pull(&ctx, 1), t0 + expiry + Duration::from_secs(1));
    assert_fault(&r, "InvalidEnumerationContext");
}

#[test]
fn open_enumerations_are_bounded() {
    let (_, e) = engine_with(EngineConfig {
        max_enumerations: 2,
        ..EngineConfig::default()
    });
    let body = testdata("pywinrm_enumerate_object_and_epr.xml");
    assert_eq!(send(&e, &body).status, 200);
    assert_eq!(send(&e, &body).status, 200);
    assert_fault(&send(&e, &body), "QuotaLimit");
}

#[test]
fn one_user_who_never_pulls_cannot_deny_enumeration_to_another() {
    let (_, e) = engine_with(EngineConfig {
        max_enumerations: 1024,
        max_enumerations_per_user: 16,
        ..EngineConfig::default()
    });
    let reader = Principal {
        user: "reader".into(),
        role: String::new(),
        remembered: None,
    };
    let body = testdata("pywinrm_enumerate_object_and_epr.xml");
    let mut refused = 0;
    for _ in 0..1030 {
        let r = e.handle(&reader, body.as_bytes(), Instant::now());
        if r.status != 200 {
            assert_fault(&r, "QuotaLimit");
            refused += 1;
        }
    }
    assert_eq!(refused, 1030 - 16, "the reader holds only their share");
    assert_eq!(send(&e, &body).status, 200, "the admin still enumerates");
}

#[test]
fn open_enumerations_hold_a_bounded_amount_of_memory() {
    let mut provider = TestProvider::new();
    provider.vm_count = 40;
    provider.read_at_once = true;
    let who = Principal {
        user: "admin".into(),
        role: String::new(),
        remembered: None,
    };
    let one = Provider::enumerate(&provider, &who, "Msvm_ComputerSystem", &[])
        .unwrap()
        .heap_bytes();
    assert!(one > 41 * std::mem::size_of::<vmsec_cim::Instance>());
    let e = Engine::new(
        Arc::new(provider),
        EngineConfig {
            max_enumeration_bytes: one * 3 / 2,
            ..EngineConfig::default()
        },
    );
    let body = testdata("pywinrm_enumerate_object_and_epr.xml").replace(
        "<w:OptimizeEnumeration/><w:MaxElements>2</w:MaxElements>",
        "",
    );
    // The 41 instances fit once, not twice.
    let first = send(&e, &body);
    assert_eq!(first.status, 200, "{}", first.body);
    let msg = assert_fault(&send(&e, &body), "QuotaLimit");
    assert!(msg.contains("does not fit"), "{msg}");
    // Releasing the first makes room again.
    let ctx = context_of(&first.body).unwrap();
    let release = testdata("release.xml").replace("{{CONTEXT}}", &ctx);
    assert_eq!(send(&e, &release).status, 200);
    assert_eq!(send(&e, &body).status, 200);
}

#[test]
fn pull_returns_fewer_items_when_the_envelope_limit_is_reached() {
    let mut provider = TestProvider::new();
    provider.vm_count = 40;
    let e = Engine::new(Arc::new(provider), EngineConfig::default());
    let body = testdata("pywinrm_enumerate_object_and_epr.xml").replace(
        "<w:OptimizeEnumeration/><w:MaxElements>2</w:MaxElements>",
        "",
    );
    let ctx = context_of(&send(&e, &body).body).unwrap();
    // Each item is over 1 KB: 8192 bytes hold a few, not the 100 asked for.
    let small_pull = pull(&ctx, 100).replace(">153600<", ">8192<");
    let mut total = 0;
    loop {
        let r = send(&e, &small_pull);
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.len() <= 8192, "{}", r.body.len());
        let doc = roxmltree::Document::parse(&r.body).unwrap();
        let n = find_all(&doc, WSMAN, "Item").len();
        assert!((1..10).contains(&n), "{n} items");
        total += n;
        if context_of(&r.body).is_none() {
            break;
        }
    }
    assert_eq!(total, 41, "every instance arrives exactly once");
}

/// The `Name`s of the `Msvm_ComputerSystem` instances in a reply, in order.
fn computer_system_names(body: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(body).unwrap();
    let class_ns = format!("{V2}Msvm_ComputerSystem");
    find_all(&doc, &class_ns, "Name")
        .iter()
        .map(|n| n.text().unwrap().to_owned())
        .collect()
}

/// An Enumerate without optimization, of the 1 + `vm_count` computer systems.
fn unoptimized_enumerate() -> String {
    testdata("pywinrm_enumerate_object_and_epr.xml").replace(
        "<w:OptimizeEnumeration/><w:MaxElements>2</w:MaxElements>",
        "",
    )
}

#[test]
fn an_enumeration_reads_its_instances_as_they_are_pulled() {
    let mut provider = TestProvider::new();
    provider.vm_count = 40;
    let (p, e) = {
        let p = Arc::new(provider);
        (p.clone(), Engine::new(p, EngineConfig::default()))
    };
    let ctx = context_of(&send(&e, &unoptimized_enumerate()).body).unwrap();
    assert_eq!(p.made(), 0, "nothing is read before the first Pull");
    let mut names = Vec::new();
    loop {
        let r = send(&e, &pull(&ctx, 5));
        assert_eq!(r.status, 200, "{}", r.body);
        names.extend(computer_system_names(&r.body));
        // What was sent, and the one read ahead to learn whether any are left.
        assert!(
            p.made() <= names.len() + 1,
            "{} made, {} sent",
            p.made(),
            names.len()
        );
        if context_of(&r.body).is_none() {
            break;
        }
    }
    let expected: Vec<String> = (0..=40)
        .map(|i| match computer_system(i).value("Name") {
            Some(Value::String(name)) => name.clone(),
            other => panic!("Name is {other:?}"),
        })
        .collect();
    assert_eq!(names, expected, "every instance once, in order");
    assert_eq!(e.open_enumerations(), 0);
}

#[test]
fn a_pull_that_fails_leaves_the_enumeration_where_it_was() {
    let mut provider = TestProvider::new();
    provider.vm_count = 40;
    provider.fail_at = Some(4);
    let e = Engine::new(Arc::new(provider), EngineConfig::default());
    let ctx = context_of(&send(&e, &unoptimized_enumerate()).body).unwrap();
    let first = send(&e, &pull(&ctx, 3));
    assert_eq!(computer_system_names(&first.body).len(), 3);
    // The second Pull sends the 4th instance, then fails reading the 5th.
    let failed = send(&e, &pull(&ctx, 3));
    assert!(assert_fault(&failed, "InternalError").contains("the disk failed"));
    // The next Pull starts with the instance the failed one had taken.
    let mut names = computer_system_names(&first.body);
    loop {
        let r = send(&e, &pull(&ctx, 3));
        assert_eq!(r.status, 200, "{}", r.body);
        names.extend(computer_system_names(&r.body));
        if context_of(&r.body).is_none() {
            break;
        }
    }
    assert_eq!(names.len(), 41, "{names:?}");
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 41, "none twice: {names:?}");
}

#[test]
fn wql_errors_are_cannot_process_filter() {
    let (p, e) = engine();
    let base = testdata("libvirt_enumerate_wql.xml");
    let cases = [
        (base.replace("SELECT * FROM", "SELECT Name FROM"), "only SELECT *"),
        (base.replace("Description =", "Description >"), "the operator \">\" is not supported"),
        (base.replace("WHERE Description", "WHERE (((Description"), "expected \")\""),
        (base.replace("WHERE Description", "WHERE __DYNASTY = 'x' AND Description"), "has no property __DYNASTY"),
        (base.replace("WHERE Description", "WHERE NoSuchProperty"), "has no property NoSuchProperty"),
        (base.replace("http://schemas.microsoft.com/wbem/wsman/1/WQL", "http://www.w3.org/TR/1999/REC-xpath-19991116"), "dialect"),
        (base.replace(r#"<wsman:Filter Dialect="http://schemas.microsoft.com/wbem/wsman/1/WQL">SELECT * FROM Msvm_ComputerSystem WHERE Description = "Microsoft Virtual Machine"</wsman:Filter>"#, ""), "needs a WQL filter"),
    ];
    for (body, expected) in cases {
        let msg = assert_fault(&send(&e, &body), "CannotProcessFilter");
        assert!(msg.contains(expected), "{msg} should contain {expected}");
    }
    assert!(p.calls().is_empty());
    let mismatch = base.replace("v2/*", "v2/Msvm_SecurityService");
    assert!(
        assert_fault(&send(&e, &mismatch), "CannotProcessFilter").contains("resource URI names")
    );
}

#[test]
fn wql_from_an_unknown_class_is_destination_unreachable() {
    let (_, e) = engine();
    let body = testdata("libvirt_enumerate_wql.xml")
        .replace("FROM Msvm_ComputerSystem", "FROM Win32_Process");
    assert_fault(&send(&e, &body), "DestinationUnreachable");
}

// ---- Invoke ----

fn key_protector_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 256) as u8).collect()
}

fn set_key_protector(items: &str) -> String {
    testdata("libvirt_invoke_set_key_protector.xml").replace("{{KEYPROTECTOR}}", items)
}

fn kp_elements(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("<p:KeyProtector>{b}</p:KeyProtector>\n"))
        .collect()
}

#[test]
fn set_key_protector_types_a_13k_byte_array_and_returns_a_job_reference() {
    let (p, e) = engine();
    let kp = key_protector_bytes(13 * 1024);
    let body = set_key_protector(&kp_elements(&kp));
    assert!(
        body.len() > 400_000,
        "the request really is large: {}",
        body.len()
    );
    let r = send(&e, &body);
    assert_eq!(
        (r.status, r.operation),
        (200, "invoke"),
        "{}",
        &r.body[..r.body.len().min(2000)]
    );
    let Call::Invoke {
        method,
        input,
        selectors,
        ..
    } = &p.calls()[0]
    else {
        panic!()
    };
    assert_eq!(method, "SetKeyProtector");
    assert_eq!(selectors.len(), 4, "__cimnamespace is dropped");
    assert_eq!(input[0].0, "SecuritySettingData");
    let ssd = input[0].1.as_str().unwrap();
    assert!(
        ssd.starts_with(r#"<INSTANCE CLASSNAME="Msvm_SecuritySettingData">"#),
        "{ssd}"
    );
    assert_eq!(input[1].0, "KeyProtector");
    assert_eq!(
        input[1].1,
        Value::Array(kp.iter().map(|b| Value::UInt8(*b)).collect())
    );

    let doc = roxmltree::Document::parse(&r.body).unwrap();
    assert_eq!(
        text(&doc, WSA, "Action").unwrap(),
        "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_SecurityService/SetKeyProtectorResponse"
    );
    let class_ns = format!("{V2}Msvm_SecurityService");
    assert_eq!(find_all(&doc, &class_ns, "SetKeyProtector_OUTPUT").len(), 1);
    assert_eq!(text(&doc, &class_ns, "ReturnValue").unwrap(), "4096");
    let job = find_all(&doc, &class_ns, "Job")[0];
    let uri = job
        .descendants()
        .find(|n| n.has_tag_name((WSMAN, "ResourceURI")))
        .unwrap();
    assert_eq!(uri.text().unwrap(), format!("{V2}Msvm_ConcreteJob"));
    let id = job
        .descendants()
        .find(|n| n.has_tag_name((WSMAN, "Selector")) && n.attribute("Name") == Some("InstanceID"))
        .unwrap();
    assert_eq!(id.text(), Some("5B0E2E2B-0000-4B39-9A43-JOB"));
}

#[test]
fn get_key_protector_with_cdata_input_and_foreign_prefixes_returns_bytes_as_repeated_elements() {
    let (p, e) = engine();
    let kp = key_protector_bytes(13 * 1024);
    *p.key_protector.lock().unwrap() = kp.clone();
    let body =
        testdata("etree_invoke_get_key_protector_cdata.xml").replace("{{MAXENV}}", "2000000");
    let r = send(&e, &body);
    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(2000)]);
    let Call::Invoke { input, .. } = &p.calls()[0] else {
        panic!()
    };
    assert_eq!(
        input[0].1.as_str().unwrap(),
        r#"instance of Msvm_SecuritySettingData { InstanceID = "Microsoft:5B0E2E2B-7F77-4B39-9A43-0A5F0D3C9E11"; TpmEnabled = TRUE; };"#
    );
    let doc = roxmltree::Document::parse(&r.body).unwrap();
    let class_ns = format!("{V2}Msvm_SecurityService");
    let got: Vec<u8> = find_all(&doc, &class_ns, "KeyProtector")
        .iter()
        .map(|n| n.text().unwrap().parse().unwrap())
        .collect();
    assert_eq!(got, kp);
    assert_eq!(text(&doc, &class_ns, "ReturnValue").unwrap(), "0");
}

#[test]
fn a_reply_over_max_envelope_size_is_an_encoding_limit_fault_naming_the_size_needed() {
    let (p, e) = engine();
    *p.key_protector.lock().unwrap() = key_protector_bytes(13 * 1024);
    let body = testdata("etree_invoke_get_key_protector_cdata.xml").replace("{{MAXENV}}", "153600");
    let r = send(&e, &body);
    let msg = assert_fault(&r, "EncodingLimit");
    assert!(r.body.len() < 4096, "no truncated reply rides along");
    let needed: usize = msg
        .split("needs ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{msg}"));
    assert!(needed > 153_600, "{msg}");
    assert!(msg.contains("153600"), "{msg}");
    // Asking for what the fault named succeeds.
    let body = testdata("etree_invoke_get_key_protector_cdata.xml")
        .replace("{{MAXENV}}", &needed.to_string());
    assert_eq!(send(&e, &body).status, 200);
}

#[test]
fn an_embedded_instance_sent_as_escaped_text_arrives_like_cdata() {
    let (p, e) = engine();
    let cdata = r#"<![CDATA[<INSTANCE CLASSNAME="Msvm_SecuritySettingData"><PROPERTY NAME="InstanceID" TYPE="string"><VALUE>Microsoft:5B0E2E2B-7F77-4B39-9A43-0A5F0D3C9E11</VALUE></PROPERTY></INSTANCE>]]>"#;
    let escaped = "&lt;INSTANCE CLASSNAME=&quot;Msvm_SecuritySettingData&quot;&gt;&lt;PROPERTY NAME=\"InstanceID\" TYPE=\"string\"&gt;&lt;VALUE&gt;Microsoft:5B0E2E2B-7F77-4B39-9A43-0A5F0D3C9E11&lt;/VALUE&gt;&lt;/PROPERTY&gt;&lt;/INSTANCE&gt;";
    let with_cdata = set_key_protector("");
    assert!(with_cdata.contains(cdata));
    assert_eq!(send(&e, &with_cdata).status, 200);
    assert_eq!(send(&e, &with_cdata.replace(cdata, escaped)).status, 200);
    let calls = p.calls();
    let ssd = |c: &Call| match c {
        Call::Invoke { input, .. } => input[0].1.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(ssd(&calls[0]), ssd(&calls[1]));
}

#[test]
fn a_byte_out_of_range_is_a_schema_validation_error_naming_the_item() {
    let (p, e) = engine();
    let r = send(
        &e,
        &set_key_protector(
            "<p:KeyProtector>1</p:KeyProtector><p:KeyProtector>300</p:KeyProtector>",
        ),
    );
    let msg = assert_fault(&r, "SchemaValidationError");
    assert!(
        msg.contains("KeyProtector item 1: \"300\" is not a uint8"),
        "{msg}"
    );
    assert!(p.calls().is_empty());
    for bad in ["-1", "0x10", "", "1 2", "<x/>"] {
        let r = send(
            &e,
            &set_key_protector(&format!("<p:KeyProtector>{bad}</p:KeyProtector>")),
        );
        assert_fault(&r, "SchemaValidationError");
    }
}

#[test]
fn a_nil_array_is_null_and_nil_mixed_with_items_is_refused() {
    let (p, e) = engine();
    let nil =
        r#"<p:KeyProtector xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>"#;
    assert_eq!(send(&e, &set_key_protector(nil)).status, 200);
    let Call::Invoke { input, .. } = &p.calls()[0] else {
        panic!()
    };
    assert_eq!(input[1].1, Value::Null);
    let mixed = format!("<p:KeyProtector>1</p:KeyProtector>{nil}");
    assert_fault(
        &send(&e, &set_key_protector(&mixed)),
        "SchemaValidationError",
    );
}

#[test]
fn absent_parameters_are_passed_as_null() {
    let (p, e) = engine();
    assert_eq!(send(&e, &set_key_protector("")).status, 200);
    let Call::Invoke { input, .. } = &p.calls()[0] else {
        panic!()
    };
    assert_eq!(input[1], ("KeyProtector".to_owned(), Value::Null));
}

#[test]
fn an_unknown_or_repeated_parameter_is_a_schema_validation_error() {
    let (_, e) = engine();
    let msg = assert_fault(
        &send(&e, &set_key_protector("<p:Bogus>1</p:Bogus>")),
        "SchemaValidationError",
    );
    assert!(
        msg.contains("SetKeyProtector has no parameter Bogus"),
        "{msg}"
    );
    let twice = "<p:SecuritySettingData>x</p:SecuritySettingData>";
    let msg = assert_fault(
        &send(&e, &set_key_protector(twice)),
        "SchemaValidationError",
    );
    assert!(msg.contains("more than once"), "{msg}");
}

#[test]
fn an_input_element_for_another_method_or_namespace_is_refused() {
    let (_, e) = engine();
    let body = set_key_protector("").replace("SetKeyProtector_INPUT", "GetKeyProtector_INPUT");
    assert_fault(&send(&e, &body), "SchemaValidationError");
    let body = set_key_protector("").replace(
        r#"xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_SecurityService""#,
        r#"xmlns:p="urn:elsewhere""#,
    );
    assert_fault(&send(&e, &body), "SchemaValidationError");
}

#[test]
fn provider_refusals_map_to_access_denied_and_invalid_parameter() {
    let (_, e) = engine();
    let r = e.handle(
        &Principal {
            user: "reader".into(),
            role: String::new(),
            remembered: None,
        },
        set_key_protector("").as_bytes(),
        Instant::now(),
    );
    assert_fault(&r, "AccessDenied");
    let body = testdata("etree_invoke_get_key_protector_cdata.xml")
        .replace("{{MAXENV}}", "153600")
        .replace(
            r#"<![CDATA[instance of Msvm_SecuritySettingData { InstanceID = "Microsoft:5B0E2E2B-7F77-4B39-9A43-0A5F0D3C9E11"; TpmEnabled = TRUE; };]]>"#,
            "bad",
        );
    let msg = assert_fault(&send(&e, &body), "InvalidParameter");
    assert!(
        msg.contains("SecuritySettingData is not an instance"),
        "{msg}"
    );
}

#[test]
fn start_service_takes_no_parameters_and_may_omit_the_input_element() {
    let (p, e) = engine();
    let body = set_key_protector("").replace("/SetKeyProtector<", "/StartService<");
    let start = body.find("<p:SetKeyProtector_INPUT").unwrap();
    let end = body.find("</p:SetKeyProtector_INPUT>").unwrap() + "</p:SetKeyProtector_INPUT>".len();
    let body = format!("{}{}", &body[..start], &body[end..]);
    let r = send(&e, &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<p:StartService_OUTPUT"));
    assert!(r.body.contains("<p:ReturnValue>0</p:ReturnValue>"));
    let Call::Invoke { method, input, .. } = &p.calls()[0] else {
        panic!()
    };
    assert_eq!((method.as_str(), input.len()), ("StartService", 0));
}

#[test]
fn invoke_action_and_resource_uri_must_name_the_same_class() {
    let (_, e) = engine();
    let body = set_key_protector("").replace(
        "<wsman:ResourceURI s:mustUnderstand=\"true\">http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_SecurityService<",
        "<wsman:ResourceURI s:mustUnderstand=\"true\">http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_ComputerSystem<",
    );
    assert_fault(&send(&e, &body), "ActionNotSupported");
}

#[test]
fn identify_answers_with_the_protocol_version_and_needs_no_addressing_headers() {
    let (p, e) = engine();
    let body = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identify/1/wsmanidentity.xsd"><s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>"#;
    let r = send(&e, body);
    assert_eq!((r.status, r.operation), (200, "identify"), "{}", r.body);
    let doc = roxmltree::Document::parse(&r.body).unwrap();
    let wsmid = "http://schemas.dmtf.org/wbem/wsman/identify/1/wsmanidentity.xsd";
    assert_eq!(text(&doc, wsmid, "ProtocolVersion").unwrap(), WSMAN);
    assert_eq!(text(&doc, wsmid, "ProductVendor").unwrap(), "vmsec");
    assert!(p.calls().is_empty());
}

// ---- Robustness ----

#[test]
fn every_truncation_of_a_request_gets_an_answer() {
    let (p, e) = engine();
    let full = set_key_protector("<p:KeyProtector>1</p:KeyProtector>");
    let body = full.trim_end();
    for cut in (0..body.len()).filter(|c| body.is_char_boundary(*c)) {
        let r = send(&e, &body[..cut]);
        assert!(matches!(r.status, 400 | 500), "cut at {cut}: {}", r.status);
    }
    assert!(p.calls().is_empty(), "no truncated request was executed");
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let (_, e) = engine();
        let r = e.handle(&admin(), &bytes, Instant::now());
        proptest::prop_assert!(matches!(r.status, 400 | 500));
    }

    #[test]
    fn arbitrary_text_in_any_request_field_never_panics(field in "\\PC{0,64}", which in 0usize..6) {
        let (_, e) = engine();
        let escaped = field.replace('&', "&amp;").replace('<', "&lt;");
        let body = match which {
            0 => testdata(GET_SERVICE).replace(">vmsecuritywmi<", &format!(">{escaped}<")),
            1 => testdata(GET_SERVICE).replace("PT20S", &escaped),
            2 => testdata("libvirt_enumerate_wql.xml").replace("SELECT * FROM Msvm_ComputerSystem WHERE Description = \"Microsoft Virtual Machine\"", &escaped),
            3 => pull(&escaped, 1),
            4 => set_key_protector(&format!("<p:KeyProtector>{escaped}</p:KeyProtector>")),
            _ => testdata(GET_SERVICE).replace("http://schemas.xmlsoap.org/ws/2004/09/transfer/Get", &escaped),
        };
        let r = send(&e, &body);
        proptest::prop_assert!(matches!(r.status, 200 | 400 | 500));
        if r.soap {
            proptest::prop_assert!(roxmltree::Document::parse(&r.body).is_ok(), "replies are well-formed XML");
        }
    }
}
