use proptest::prelude::*;

use super::*;
use crate::wire::envelope::parse_tree;

const PYPSRP: &str =
    include_str!("../../../../../fuzz/corpus/envelope/pypsrp_get_security_service.xml");
const BENCH: &str = include_str!("../../../../../fuzz/corpus/envelope/get-ssd.xml");

/// As the Windows WinRM client lays a Get out: a declaration, newlines and indentation,
/// namespaces declared on the Envelope and again on a header, an OptionSet.
const WINDOWS_STYLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
            xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
            xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
            xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">
  <s:Header>
    <a:To>http://hv01:5985/wsman</a:To>
    <w:ResourceURI s:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_SecuritySettingData</w:ResourceURI>
    <a:ReplyTo>
      <a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address>
      <a:ReferenceParameters><x:Any xmlns:x="urn:other">kept out</x:Any></a:ReferenceParameters>
    </a:ReplyTo>
    <a:Action s:mustUnderstand='true'>  http://schemas.xmlsoap.org/ws/2004/09/transfer/Get  </a:Action>
    <w:MaxEnvelopeSize s:mustUnderstand="true">512000</w:MaxEnvelopeSize>
    <a:MessageID>uuid:5D4C3B2A-1F0E-4D9C-8B7A-6F5E4D3C2B1A</a:MessageID>
    <w:Locale xml:lang="en-US" s:mustUnderstand="false" />
    <p:DataLocale xml:lang="de-DE" s:mustUnderstand="false"/>
    <p:SessionId s:mustUnderstand="false">uuid:11111111-2222-3333-4444-555555555555</p:SessionId>
    <w:OperationTimeout>PT60.000S</w:OperationTimeout>
    <w:OptionSet xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><w:Option Name="__cimnamespace">root/virtualization/v2</w:Option><w:Option> untrimmed </w:Option></w:OptionSet>
    <w:SelectorSet>
      <w:Selector Name="InstanceID">Microsoft:B5314955-3924-42BA-ABF9-793993D340A0</w:Selector>
      <w:Selector Name='Spaced'>  kept as sent  </w:Selector>
      <w:Selector Name="Empty"></w:Selector>
    </w:SelectorSet>
    <v:Unknown xmlns:v="urn:vendor" v:flag="1"><v:deep><v:deeper/>text</v:deep></v:Unknown>
  </s:Header>
  <s:Body></s:Body>
</s:Envelope>
"#;

/// `get`'s promise: whatever it reads, the tree reads the same.
fn agrees(text: &str) -> Option<Request> {
    let quick = get(text.as_bytes());
    if let Some(q) = &quick {
        assert_eq!(
            parse_tree(text.as_bytes()).as_ref(),
            Ok(q),
            "the shortcut and the tree differ on {text}"
        );
    }
    quick
}

#[test]
fn the_gets_clients_send_are_read_without_a_tree_as_the_tree_reads_them() {
    for text in [PYPSRP, BENCH, WINDOWS_STYLE] {
        let r = agrees(text).unwrap_or_else(|| panic!("not read quickly: {text}"));
        assert!(matches!(r.operation, Operation::Get { .. }));
    }
    let r = agrees(WINDOWS_STYLE).unwrap();
    let h = &r.header;
    assert_eq!(h.action, ns::ACTION_GET);
    assert_eq!(h.locale.as_deref(), Some("en-US"));
    assert_eq!(h.data_locale.as_deref(), Some("de-DE"));
    assert_eq!(h.reply_to.as_deref(), Some(ns::ANONYMOUS));
    assert_eq!(
        h.operation_timeout,
        Some(std::time::Duration::from_secs(60))
    );
    assert_eq!(h.selectors[1], ("Spaced".into(), "  kept as sent  ".into()));
    assert_eq!(h.selectors[2], ("Empty".into(), String::new()));
    assert_eq!(h.options[1], (String::new(), " untrimmed ".into()));
}

#[test]
fn a_byte_order_mark_is_read_past() {
    assert!(agrees(&format!("\u{feff}{BENCH}")).is_some());
}

/// Each is a Get the tree reads, or one it refuses; the shortcut leaves all of them to it.
#[test]
fn what_lies_outside_the_subset_goes_to_the_full_parser() {
    let cases: Vec<(&str, String)> = vec![
        ("a comment", BENCH.replacen("<s:Header>", "<s:Header><!-- c -->", 1)),
        ("a CDATA section", BENCH.replacen(">Microsoft:", "><![CDATA[Microsoft:]]>", 1)),
        ("an entity reference", BENCH.replacen(">Microsoft:", ">Micro&amp;soft:", 1)),
        ("a character reference", BENCH.replacen(">Microsoft:", ">&#x4D;icrosoft:", 1)),
        ("a processing instruction", BENCH.replacen("<s:Body/>", "<?pi x?><s:Body/>", 1)),
        ("a carriage return", BENCH.replacen("<s:Header>", "<s:Header>\r\n", 1)),
        ("a DOCTYPE", format!("<!DOCTYPE x>{BENCH}")),
        ("a second byte-order mark", format!("\u{feff}\u{feff}{BENCH}")),
        ("a newline in an attribute", BENCH.replacen("Name=\"InstanceID\"", "Name=\"Instance\nID\"", 1)),
        ("a header twice", BENCH.replacen("<a:To>", "<a:To>x</a:To><a:To>", 1)),
        ("a selector set twice", BENCH.replacen("</s:Header>", "<w:SelectorSet/></s:Header>", 1)),
        ("an element in a text header", BENCH.replacen("<a:To>", "<a:To><a:X/>", 1)),
        ("a selector without a name", BENCH.replacen(" Name=\"InstanceID\"", "", 1)),
        ("an element in a selector", BENCH.replacen(">Microsoft:", "><w:EPR/>Microsoft:", 1)),
        ("a small MaxEnvelopeSize", BENCH.replacen(">512000<", ">100<", 1)),
        ("a MaxEnvelopeSize that is no number", BENCH.replacen(">512000<", ">lots<", 1)),
        ("an undeclared prefix", BENCH.replacen("<a:To>", "<q:X/><a:To>", 1)),
        ("a mismatched end tag", BENCH.replacen("</a:To>", "</a:Tx>", 1)),
        ("an end tag in another prefix", BENCH.replacen("</a:To>", "</A:To>", 1)),
        ("no MessageID", BENCH.replacen("<a:MessageID>", "<a:Other>", 1).replacen("</a:MessageID>", "</a:Other>", 1)),
        ("an empty MessageID", BENCH.replacen("uuid:00000000-0000-0000-0000-000000000002", "", 1)),
        ("another action", BENCH.replacen("transfer/Get", "transfer/Put", 1)),
        ("a body with content", BENCH.replacen("<s:Body/>", "<s:Body><x/></s:Body>", 1)),
        ("an Identify", BENCH.replacen("<s:Body/>", "<s:Body><i:Identify xmlns:i=\"http://schemas.dmtf.org/wbem/wsman/identify/1/wsmanidentity.xsd\"/></s:Body>", 1)),
        ("text after the root", format!("{BENCH}x")),
        ("a second root", format!("{BENCH}<x/>")),
        ("a truncated envelope", BENCH[..BENCH.len() - 5].to_owned()),
        ("no header", BENCH.replacen("<s:Header>", "<s:Headed>", 1).replacen("</s:Header>", "</s:Headed>", 1)),
        ("a resource URI outside WMI's", BENCH.replacen("http://schemas.microsoft.com/wbem/wsman/1/wmi/", "urn:elsewhere/", 1)),
        ("a class in another namespace", BENCH.replacen("virtualization/v2", "cimv2", 1)),
        ("a rebound xml prefix", BENCH.replacen("<s:Header>", "<s:Header xmlns:xml=\"urn:x\">", 1)),
        ("a duplicate attribute", BENCH.replacen("Name=\"InstanceID\"", "Name=\"InstanceID\" Name=\"x\"", 1)),
        ("one attribute twice by namespace", BENCH.replacen("<a:To>", "<a:To xmlns:b=\"urn:u\" xmlns:c=\"urn:u\" b:k=\"1\" c:k=\"2\">", 1)),
        ("attributes with no space between", BENCH.replacen("Name=\"InstanceID\"", "Name=\"InstanceID\"x=\"1\"", 1)),
        ("a non-ASCII name", BENCH.replacen("<a:To>", "<a:Tö/><a:To>", 1)),
        ("an XML declaration in UTF-16", format!("<?xml version=\"1.0\" encoding=\"UTF-16\"?>{BENCH}")),
        ("a noncharacter", BENCH.replacen(">Microsoft:", ">\u{fffe}Microsoft:", 1)),
    ];
    for (what, text) in cases {
        assert!(get(text.as_bytes()).is_none(), "{what}: read quickly");
        assert_eq!(
            super::envelope::parse(text.as_bytes()),
            parse_tree(text.as_bytes()),
            "{what}"
        );
    }
}

#[test]
fn bodies_larger_than_the_shortcut_reads_go_to_the_full_parser() {
    let padded = BENCH.replacen(
        "<s:Body/>",
        &format!("<s:Body>{}</s:Body>", " ".repeat(MAX_BYTES)),
        1,
    );
    assert!(get(padded.as_bytes()).is_none());
    assert!(parse_tree(padded.as_bytes()).is_ok());
}

/// Pieces a Get is made of, each in several spellings XML allows.
fn envelopes() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(vec!["s", "env", "S_1", "a.b", "x-y"]);
    let space = prop::sample::select(vec!["", " ", "\n  ", "\t"]);
    let quote = prop::sample::select(vec!['"', '\'']);
    // Text the subset passes on as it is: no markup, no reference, no quote, no "]]>".
    let chars: Vec<char> = (' '..='~')
        .filter(|c| !matches!(c, '&' | '<' | '"' | '\'' | ']'))
        .chain(['\u{e9}', '\u{4e2d}', '\t', '\n'])
        .collect();
    let value = prop::collection::vec(prop::sample::select(chars), 0..12)
        .prop_map(|cs| cs.into_iter().collect::<String>());
    let header_order = Just((0..6).collect::<Vec<usize>>()).prop_shuffle();
    (prefix, space, quote, value, header_order, any::<bool>(), any::<bool>(), any::<bool>())
        .prop_map(|(p, sp, q, val, order, declare_on_header, empty_body, with_decl)| {
            let w = if declare_on_header { format!(" xmlns:w={q}{}{q}", ns::WSMAN) } else { String::new() };
            let headers = [
                format!("<a:Action{sp}>{}</a:Action>", ns::ACTION_GET),
                "<a:MessageID>uuid:1</a:MessageID>".to_owned(),
                format!("<w:ResourceURI{w}>{}root/virtualization/v2/Msvm_SecuritySettingData</w:ResourceURI>", ns::WMI_PREFIX),
                format!("<w:SelectorSet{w}><w:Selector Name={q}InstanceID{q}{sp}>{val}</w:Selector></w:SelectorSet>"),
                format!("<w:Locale{w} xml:lang={q}{}{q}{sp}/>", val.replace(['\t', '\n'], "")),
                format!("<x:Other xmlns:x={q}urn:x{q}>{val}<x:In/></x:Other>"),
            ];
            let header: String = order.iter().map(|&i| format!("{sp}{}", headers[i])).collect();
            let root_w = if declare_on_header { String::new() } else { format!(" xmlns:w=\"{}\"", ns::WSMAN) };
            let body = if empty_body { format!("<{p}:Body{sp}/>") } else { format!("<{p}:Body>{sp}</{p}:Body>") };
            let decl = if with_decl { "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n" } else { "" };
            format!(
                "{decl}<{p}:Envelope xmlns:{p}=\"{}\" xmlns:a=\"{}\"{root_w}>{sp}<{p}:Header>{header}{sp}</{p}:Header>{sp}{body}{sp}</{p}:Envelope>{sp}",
                ns::SOAP,
                ns::WSA
            )
        })
}

proptest! {
    #[test]
    fn every_get_of_the_subset_is_read_quickly_and_as_the_tree_reads_it(text in envelopes()) {
        let r = agrees(&text);
        // The values hold only what the subset allows, but for a newline or tab, which an
        // attribute may not carry here; the selector's text may.
        prop_assert!(r.is_some(), "not read quickly: {}", text);
    }

    #[test]
    fn whatever_an_edit_makes_of_a_get_the_shortcut_agrees_with_the_tree(
        text in envelopes(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, prop::sample::select(vec![
            "<", ">", "/", "&", ";", ":", "=", "\"", "'", " ", "\n", "\r", "!", "?", "[", "]", "-",
            "a", "xmlns", "xml:", "&amp;", "<!--", "-->", "</", "/>", "\u{feff}", "\u{0}",
        ])), 1..4),
    ) {
        let mut text = text;
        for (at, kind, piece) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            match kind {
                0 => text.insert_str(i, piece),
                1 => {
                    let end = text[i..].chars().next().map_or(i, |c| i + c.len_utf8());
                    text.replace_range(i..end, "");
                }
                _ => {
                    let end = text[i..].chars().next().map_or(i, |c| i + c.len_utf8());
                    text.replace_range(i..end, piece);
                }
            }
        }
        agrees(&text);
    }
}
