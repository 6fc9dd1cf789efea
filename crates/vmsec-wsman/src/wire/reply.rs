//! The SOAP envelope of replies: fixed prefixes declared once on `s:Envelope`, and the
//! response headers (`wsa:To`, `wsa:Action`, fresh `wsa:MessageID`, `wsa:RelatesTo`).

use crate::wire::ns;
use crate::wire::xmlw;

/// Prefix bindings every reply declares on its root element.
const DECLARATIONS: [(&str, &str); 7] = [
    ("s", ns::SOAP),
    ("a", ns::WSA),
    ("w", ns::WSMAN),
    ("n", ns::WSEN),
    ("xsi", ns::XSI),
    ("cim", ns::CIM),
    ("x", ns::WXF),
];

/// The prefix a reply uses for namespace `uri` (one of [`DECLARATIONS`]).
pub fn prefix_of(uri: &str) -> &'static str {
    DECLARATIONS
        .iter()
        .find(|(_, u)| *u == uri)
        .map_or("w", |(p, _)| p)
}

/// An open reply envelope; [`Envelope::end`] closes it.
#[must_use = "an envelope must be closed with end()"]
pub struct Envelope(());

impl Envelope {
    /// Writes the envelope start and the whole header.
    pub fn begin(out: &mut String, action: &str, relates_to: Option<&str>) -> Envelope {
        out.push_str("<s:Envelope");
        for (prefix, uri) in DECLARATIONS {
            out.push_str(" xmlns:");
            out.push_str(prefix);
            out.push_str("=\"");
            out.push_str(uri);
            out.push('"');
        }
        out.push_str("><s:Header><a:To>");
        out.push_str(ns::ANONYMOUS);
        out.push_str("</a:To><a:Action>");
        xmlw::text(out, action);
        out.push_str("</a:Action><a:MessageID>uuid:");
        let mut id = uuid::Uuid::encode_buffer();
        out.push_str(uuid::Uuid::new_v4().hyphenated().encode_upper(&mut id));
        out.push_str("</a:MessageID>");
        if let Some(id) = relates_to {
            out.push_str("<a:RelatesTo>");
            xmlw::text(out, id);
            out.push_str("</a:RelatesTo>");
        }
        out.push_str("</s:Header>");
        Envelope(())
    }

    /// Closes the envelope.
    pub fn end(self, out: &mut String) {
        out.push_str("</s:Envelope>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_relates_to_the_request_and_carries_a_fresh_message_id() {
        let mut out = String::new();
        let env = Envelope::begin(&mut out, "urn:act<", Some("uuid:1"));
        out.push_str("<s:Body/>");
        env.end(&mut out);
        let doc = roxmltree::Document::parse(&out).unwrap();
        let text = |local: &str| {
            doc.descendants()
                .find(|n| n.has_tag_name((ns::WSA, local)))
                .and_then(|n| n.text())
                .map(str::to_owned)
        };
        assert_eq!(text("Action").as_deref(), Some("urn:act<"));
        assert_eq!(text("RelatesTo").as_deref(), Some("uuid:1"));
        assert_eq!(text("To").as_deref(), Some(ns::ANONYMOUS));
        let id = text("MessageID").unwrap();
        assert!(id.starts_with("uuid:") && id.len() == 41, "{id}");
    }
}
