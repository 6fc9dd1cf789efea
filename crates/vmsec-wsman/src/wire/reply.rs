//! Replies: one typed value per operation's response, each with its one serializer, and the
//! SOAP envelope they share (fixed prefixes declared once on `s:Envelope`, and the response
//! headers `wsa:To`, `wsa:Action`, fresh `wsa:MessageID`, `wsa:RelatesTo`).
//!
//! The engine decides what a reply holds; only this module decides how it is spelled.

use vmsec_cim::{Instance, Value};

use bytes::Bytes;

use crate::provider::{MethodOutput, OutValue};
use crate::wire::arrays::ByteArrays;
use crate::wire::envelope::EnumerationMode;
use crate::wire::ns;
use crate::wire::wscim::{self, BadName};
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
pub(crate) fn prefix_of(uri: &str) -> &'static str {
    DECLARATIONS
        .iter()
        .find(|(_, u)| *u == uri)
        .map_or("w", |(p, _)| p)
}

/// An open reply envelope; [`Envelope::end`] closes it.
#[must_use = "an envelope must be closed with end()"]
pub(crate) struct Envelope(());

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

const GET_RESPONSE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse";
const ENUMERATE_RESPONSE: &str =
    "http://schemas.xmlsoap.org/ws/2004/09/enumeration/EnumerateResponse";
const PULL_RESPONSE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/PullResponse";
const RELEASE_RESPONSE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/ReleaseResponse";

/// Room the fixed elements around enumeration items take beyond the body's opening: the
/// context id (41 characters) and the closing tags, with margin.
const ITEMS_FRAME: usize = 300;

/// A reply to send, one variant per operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// A Get's instance.
    Get(GetResponse),
    /// An Enumerate's context, and items when optimized.
    Enumerate(EnumerateResponse),
    /// A Pull's items.
    Pull(PullResponse),
    /// A Release's acknowledgement.
    Release(ReleaseResponse),
    /// The answer to Identify.
    Identify(IdentifyResponse),
    /// A method's output.
    Invoke(InvokeResponse),
}

impl Reply {
    /// The reply envelope; an error names an instance or parameter that cannot be an
    /// element name.
    pub fn to_xml(&self) -> Result<String, BadName> {
        static UNCACHED: ByteArrays = ByteArrays::new(0);
        self.to_parts(&UNCACHED).map(Parts::into_string)
    }

    /// [`Reply::to_xml`] in parts, a method's large `uint8[]` out-parameters taken from
    /// `arrays` (shared, not copied) when written before.
    pub fn to_parts(&self, arrays: &ByteArrays) -> Result<Parts, BadName> {
        Ok(match self {
            Reply::Get(r) => r.to_xml()?.into(),
            Reply::Enumerate(r) => r.to_xml().into(),
            Reply::Pull(r) => r.to_xml().into(),
            Reply::Release(r) => r.to_xml().into(),
            Reply::Identify(r) => r.to_xml().into(),
            Reply::Invoke(r) => r.to_parts(arrays)?,
        })
    }
}

/// A reply's bytes in order: text written for it, and XML it shares with other replies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parts(Vec<Bytes>);

impl Parts {
    /// Bytes in all.
    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Bytes::is_empty)
    }

    /// The parts, to be sent one after the other.
    pub fn into_chunks(self) -> Vec<Bytes> {
        self.0
    }

    /// The parts joined (every part is UTF-8: each was written from a `String`).
    pub fn into_string(self) -> String {
        match <[Bytes; 1]>::try_from(self.0) {
            Ok([one]) => String::from_utf8_lossy(&one).into_owned(),
            Err(parts) => String::from_utf8_lossy(&parts.concat()).into_owned(),
        }
    }
}

impl From<String> for Parts {
    fn from(s: String) -> Parts {
        Parts(vec![Bytes::from(s)])
    }
}

/// `wxf:GetResponse`: the instance.
#[derive(Clone, Debug, PartialEq)]
pub struct GetResponse {
    /// The request's `wsa:MessageID`.
    pub relates_to: String,
    /// The instance got.
    pub instance: Instance,
}

impl GetResponse {
    /// The reply envelope.
    pub fn to_xml(&self) -> Result<String, BadName> {
        let mut out = String::with_capacity(1024 + wscim::estimate_instance(&self.instance));
        let env = Envelope::begin(&mut out, GET_RESPONSE, Some(&self.relates_to));
        out.push_str("<s:Body>");
        wscim::instance(&mut out, &self.instance)?;
        out.push_str("</s:Body>");
        env.end(&mut out);
        Ok(out)
    }
}

/// Enumeration items, written as they are added so that whoever fills a reply can stop
/// when the next one would pass the envelope limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Items {
    xml: String,
}

impl Items {
    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.xml.len()
    }

    /// Whether no item was added.
    pub fn is_empty(&self) -> bool {
        self.xml.is_empty()
    }

    /// Adds `inst` as `mode` spells an item and returns the bytes it took; on error nothing
    /// is added.
    pub fn push(&mut self, inst: &Instance, mode: EnumerationMode) -> Result<usize, BadName> {
        let before = self.xml.len();
        self.xml.reserve(wscim::estimate_instance(inst));
        let written = item(&mut self.xml, inst, mode);
        if written.is_err() {
            self.xml.truncate(before);
        }
        written.map(|()| self.xml.len() - before)
    }

    /// Takes back the last item, which [`Items::push`] said took `bytes`.
    pub fn pop(&mut self, bytes: usize) {
        self.xml.truncate(self.xml.len() - bytes);
    }
}

/// Writes one enumeration item.
fn item(out: &mut String, inst: &Instance, mode: EnumerationMode) -> Result<(), BadName> {
    match mode {
        EnumerationMode::Objects => wscim::instance(out, inst),
        EnumerationMode::Epr => {
            out.push_str("<a:EndpointReference>");
            wscim::instance_reference(out, inst);
            out.push_str("</a:EndpointReference>");
            Ok(())
        }
        EnumerationMode::ObjectAndEpr => {
            out.push_str("<w:Item>");
            wscim::instance(out, inst)?;
            out.push_str("<a:EndpointReference>");
            wscim::instance_reference(out, inst);
            out.push_str("</a:EndpointReference></w:Item>");
            Ok(())
        }
    }
}

/// The bytes of a reply besides its items, with room for its context and closing tags.
fn overhead(action: &str, relates_to: &str, body_open: &str) -> usize {
    let mut out = String::with_capacity(1024);
    // Never closed: only its length is wanted.
    let _ = Envelope::begin(&mut out, action, Some(relates_to));
    out.push_str(body_open);
    out.len() + ITEMS_FRAME
}

const ENUMERATE_OPEN: &str = "<s:Body><n:EnumerateResponse>";
const PULL_OPEN: &str = "<s:Body><n:PullResponse>";

/// `wsen:EnumerateResponse`: the context, and with `OptimizeEnumeration` the first items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnumerateResponse {
    /// The request's `wsa:MessageID`.
    pub relates_to: String,
    /// The context to pull from; `None` when an optimized enumeration returned every item
    /// (written as an empty `EnumerationContext`).
    pub context: Option<String>,
    /// The items of an optimized enumeration (`None`: not optimized).
    pub items: Option<Items>,
}

impl EnumerateResponse {
    /// The bytes of this reply besides its items, for one that relates to `relates_to`.
    pub fn overhead(relates_to: &str) -> usize {
        overhead(ENUMERATE_RESPONSE, relates_to, ENUMERATE_OPEN)
    }

    /// The reply envelope.
    pub fn to_xml(&self) -> String {
        let items = self.items.as_ref().map_or(0, Items::len);
        let mut out = String::with_capacity(2048 + items);
        let env = Envelope::begin(&mut out, ENUMERATE_RESPONSE, Some(&self.relates_to));
        out.push_str(ENUMERATE_OPEN);
        out.push_str("<n:EnumerationContext>");
        if let Some(id) = &self.context {
            out.push_str(id);
        }
        out.push_str("</n:EnumerationContext>");
        if let Some(items) = &self.items {
            out.push_str("<w:Items>");
            out.push_str(&items.xml);
            out.push_str("</w:Items>");
            if self.context.is_none() {
                out.push_str("<w:EndOfSequence/>");
            }
        }
        out.push_str("</n:EnumerateResponse></s:Body>");
        env.end(&mut out);
        out
    }
}

/// `wsen:PullResponse`: the next items, and the context while any are left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullResponse {
    /// The request's `wsa:MessageID`.
    pub relates_to: String,
    /// The context to pull from next; `None` at the end of the sequence.
    pub context: Option<String>,
    /// The items.
    pub items: Items,
}

impl PullResponse {
    /// The bytes of this reply besides its items, for one that relates to `relates_to`.
    pub fn overhead(relates_to: &str) -> usize {
        overhead(PULL_RESPONSE, relates_to, PULL_OPEN)
    }

    /// The reply envelope.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(2048 + self.items.len());
        let env = Envelope::begin(&mut out, PULL_RESPONSE, Some(&self.relates_to));
        out.push_str(PULL_OPEN);
        if let Some(id) = &self.context {
            out.push_str("<n:EnumerationContext>");
            xmlw::text(&mut out, id);
            out.push_str("</n:EnumerationContext>");
        }
        out.push_str("<n:Items>");
        out.push_str(&self.items.xml);
        out.push_str("</n:Items>");
        if self.context.is_none() {
            out.push_str("<n:EndOfSequence/>");
        }
        out.push_str("</n:PullResponse></s:Body>");
        env.end(&mut out);
        out
    }
}

/// `wsen:ReleaseResponse`: an empty body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseResponse {
    /// The request's `wsa:MessageID`.
    pub relates_to: String,
}

impl ReleaseResponse {
    /// The reply envelope.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(1024);
        let env = Envelope::begin(&mut out, RELEASE_RESPONSE, Some(&self.relates_to));
        out.push_str("<s:Body/>");
        env.end(&mut out);
        out
    }
}

/// `wsmid:IdentifyResponse`: protocol version and product, without addressing headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdentifyResponse;

impl IdentifyResponse {
    /// The reply envelope.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(512);
        out.push_str("<s:Envelope xmlns:s=\"");
        out.push_str(ns::SOAP);
        out.push_str("\"><s:Header/><s:Body><wsmid:IdentifyResponse xmlns:wsmid=\"");
        out.push_str(ns::WSMID);
        out.push_str("\"><wsmid:ProtocolVersion>");
        out.push_str(ns::WSMAN);
        out.push_str("</wsmid:ProtocolVersion><wsmid:ProductVendor>vmsec</wsmid:ProductVendor><wsmid:ProductVersion>");
        out.push_str(env!("CARGO_PKG_VERSION"));
        out.push_str("</wsmid:ProductVersion></wsmid:IdentifyResponse></s:Body></s:Envelope>");
        out
    }
}

/// `<p:Method_OUTPUT>`: a method's out-parameters and `ReturnValue`.
#[derive(Clone, Debug, PartialEq)]
pub struct InvokeResponse {
    /// The request's `wsa:Action`; the reply's is it with `Response` appended.
    pub request_action: String,
    /// The request's `wsa:MessageID`.
    pub relates_to: String,
    /// The method's class, in the schema's spelling.
    pub class: &'static str,
    /// The method, in the spelling of the method table.
    pub method: &'static str,
    /// What the provider returned.
    pub output: MethodOutput,
}

impl InvokeResponse {
    /// The reply envelope.
    pub fn to_xml(&self) -> Result<String, BadName> {
        self.to_parts(&ByteArrays::new(0)).map(Parts::into_string)
    }

    /// The reply envelope in parts, `uint8[]` out-parameters written by `arrays` and shared
    /// with every reply holding the same bytes: a key protector's ~35 bytes of XML per byte
    /// are neither written nor copied again.
    pub fn to_parts(&self, arrays: &ByteArrays) -> Result<Parts, BadName> {
        let estimate: usize = self
            .output
            .out
            .iter()
            .map(|(name, v)| match v {
                OutValue::Value(Value::Bytes(_)) => 0,
                OutValue::Value(v) => wscim::estimate_value(name, v),
                OutValue::JobRef { instance_id } => 600 + instance_id.len(),
            })
            .sum();
        let mut action = String::with_capacity(self.request_action.len() + 8);
        action.push_str(&self.request_action);
        action.push_str("Response");
        let mut parts = Vec::new();
        let mut out = String::with_capacity(1536 + estimate);
        let env = Envelope::begin(&mut out, &action, Some(&self.relates_to));
        out.push_str("<s:Body><p:");
        out.push_str(self.method);
        out.push_str("_OUTPUT xmlns:p=\"");
        out.push_str(&ns::class_uri(self.class));
        out.push_str("\">");
        for (name, value) in &self.output.out {
            match value {
                OutValue::Value(Value::Bytes(b)) => {
                    if !wscim::is_element_name(name) {
                        return Err(BadName(name.clone()));
                    }
                    parts.push(Bytes::from(std::mem::replace(
                        &mut out,
                        String::with_capacity(256),
                    )));
                    parts.push(arrays.xml(name, b));
                }
                OutValue::Value(v) => wscim::property(&mut out, name, v)?,
                OutValue::JobRef { instance_id } => {
                    if !wscim::is_element_name(name) {
                        return Err(BadName(name.clone()));
                    }
                    out.push_str("<p:");
                    out.push_str(name);
                    out.push('>');
                    wscim::job_reference(&mut out, instance_id);
                    out.push_str("</p:");
                    out.push_str(name);
                    out.push('>');
                }
            }
        }
        out.push_str("<p:ReturnValue>");
        xmlw::uint(&mut out, u64::from(self.output.return_value));
        out.push_str("</p:ReturnValue></p:");
        out.push_str(self.method);
        out.push_str("_OUTPUT></s:Body>");
        env.end(&mut out);
        parts.push(Bytes::from(out));
        Ok(Parts(parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_popped_item_leaves_the_items_as_they_were() {
        let inst = Instance::new("Msvm_ComputerSystem");
        let mut items = Items::default();
        let one = items.push(&inst, EnumerationMode::Epr).unwrap();
        let before = items.clone();
        let two = items.push(&inst, EnumerationMode::ObjectAndEpr).unwrap();
        assert!(two > one);
        items.pop(two);
        assert_eq!(items, before);
    }

    #[test]
    fn the_last_pull_has_no_context_and_ends_the_sequence() {
        let r = PullResponse {
            relates_to: "uuid:1".into(),
            context: None,
            items: Items::default(),
        };
        let xml = r.to_xml();
        assert!(xml.contains("<n:Items></n:Items><n:EndOfSequence/></n:PullResponse>"));
        assert!(!xml.contains("EnumerationContext"));
        assert!(PullResponse::overhead("uuid:1") > xml.len() - "</s:Envelope>".len());
    }

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

    #[test]
    fn an_invoke_reply_from_cached_byte_arrays_is_the_reply_written_afresh() {
        let arrays = ByteArrays::new(1 << 20);
        let reply = |kp: Vec<u8>, name: &str| InvokeResponse {
            request_action: "urn:GetKeyProtector".into(),
            relates_to: "uuid:1".into(),
            class: "Msvm_SecurityService",
            method: "GetKeyProtector",
            output: MethodOutput {
                return_value: 0,
                out: vec![(name.into(), OutValue::Value(Value::Bytes(kp)))],
            },
        };
        let without_id = |xml: String| {
            let at = xml.find("<a:MessageID>").unwrap();
            let end = xml.find("</a:MessageID>").unwrap();
            format!("{}{}", &xml[..at], &xml[end..])
        };
        let kp: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        for _ in 0..2 {
            let r = reply(kp.clone(), "KeyProtector");
            let parts = r.to_parts(&arrays).unwrap();
            assert_eq!(parts.clone().into_chunks().len(), 3);
            let xml = parts.into_string();
            assert_eq!(without_id(xml), without_id(r.to_xml().unwrap()));
        }
        assert!(reply(kp, "Key Protector").to_parts(&arrays).is_err());
    }
}
