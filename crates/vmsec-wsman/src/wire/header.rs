//! The SOAP header of a request: addressing (`wsa:*`) and WS-Man (`wsman:*`) headers, read
//! into a typed [`Header`] with the fault DSP0226 gives for each that is missing or wrong.

use std::time::Duration;

use roxmltree::Node;

use crate::wire::envelope::{excerpt, fault, text_of};
use crate::wire::fault::{Fault, FaultKind};
use crate::wire::ns;

/// Smallest `MaxEnvelopeSize` a client may ask for (DSP0226 R6.2-4).
pub const MIN_ENVELOPE_SIZE: usize = 8192;

/// Headers of a request, as the profile reads them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Header {
    /// `wsa:Action`.
    pub action: String,
    /// `wsa:MessageID`, echoed as `wsa:RelatesTo`.
    pub message_id: String,
    /// `wsa:To`, not checked.
    pub to: Option<String>,
    /// `wsa:ReplyTo/wsa:Address`.
    pub reply_to: Option<String>,
    /// `wsman:ResourceURI`.
    pub resource_uri: Option<String>,
    /// `wsman:SelectorSet`, in order, `__cimnamespace` included.
    pub selectors: Vec<(String, String)>,
    /// `wsman:MaxEnvelopeSize` in bytes.
    pub max_envelope_size: Option<usize>,
    /// `wsman:OperationTimeout`.
    pub operation_timeout: Option<Duration>,
    /// `wsman:Locale/@xml:lang`.
    pub locale: Option<String>,
    /// `wsmv:DataLocale/@xml:lang`.
    pub data_locale: Option<String>,
    /// `wsmv:SessionId`.
    pub session_id: Option<String>,
    /// `wsman:OptionSet` options as name and value.
    pub options: Vec<(String, String)>,
}

/// Parses an ISO 8601 duration as WS-Man uses it (`PT60S`, `PT60.000S`, `P1DT2H`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let rest = s.trim().strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut seconds = 0f64;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            let factor = units.iter().find(|(u, _)| *u == c)?.1;
            let n: f64 = num.parse().ok()?;
            seconds += n * factor;
            num.clear();
            any = true;
        }
        num.is_empty().then_some(())
    };
    take(
        date,
        &[
            ('Y', 365.0 * 86400.0),
            ('M', 30.0 * 86400.0),
            ('W', 7.0 * 86400.0),
            ('D', 86400.0),
        ],
    )?;
    if let Some(t) = time {
        if t.is_empty() {
            return None;
        }
        take(t, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    (any && seconds.is_finite()).then(|| Duration::try_from_secs_f64(seconds).ok())?
}

/// The addressing and WS-Man headers of a request, each checked as it is read. Long on
/// purpose: one pass over the header children with an arm per header keeps every header's
/// rule (required, repeated, mustUnderstand) in one place, in the order DSP0226 lists them.
pub(super) fn parse_header(header: Option<Node<'_, '_>>) -> Result<Header, Fault> {
    let mut h = Header::default();
    let mut action = None;
    let mut message_id = None;
    for child in header
        .into_iter()
        .flat_map(|n| n.children())
        .filter(Node::is_element)
    {
        let name = child.tag_name();
        let once = |slot: &Option<String>, what: &str| {
            if slot.is_some() {
                Err(fault(
                    FaultKind::InvalidMessageInformationHeader,
                    format!("the header {what} appears twice"),
                ))
            } else {
                Ok(())
            }
        };
        match (name.namespace().unwrap_or(""), name.name()) {
            (ns::WSA, "Action") => {
                once(&action, "wsa:Action")?;
                action = Some(text_of(child).to_owned());
            }
            (ns::WSA, "MessageID") => {
                once(&message_id, "wsa:MessageID")?;
                message_id = Some(text_of(child).to_owned());
            }
            (ns::WSA, "To") => h.to = Some(text_of(child).to_owned()),
            (ns::WSA, "ReplyTo") => {
                h.reply_to = child
                    .children()
                    .find(|n| n.has_tag_name((ns::WSA, "Address")))
                    .map(|n| text_of(n).to_owned());
            }
            (ns::WSMAN, "ResourceURI") => {
                once(&h.resource_uri, "wsman:ResourceURI")?;
                h.resource_uri = Some(text_of(child).to_owned());
            }
            (ns::WSMAN, "SelectorSet") => {
                for sel in child.children().filter(Node::is_element) {
                    if !sel.has_tag_name((ns::WSMAN, "Selector")) {
                        continue;
                    }
                    let Some(sel_name) = sel.attribute("Name") else {
                        return Err(fault(
                            FaultKind::InvalidSelectors,
                            "a selector has no Name attribute",
                        ));
                    };
                    if sel.children().any(|n| n.is_element()) {
                        return Err(fault(
                            FaultKind::InvalidSelectors,
                            format!("selector {sel_name} holds an endpoint reference; only text selectors are supported"),
                        )
                        .with_detail("TypeMismatch"));
                    }
                    h.selectors
                        .push((sel_name.to_owned(), sel.text().unwrap_or("").to_owned()));
                }
            }
            (ns::WSMAN, "MaxEnvelopeSize") => {
                let text = text_of(child);
                let size: usize = text.parse().map_err(|_| {
                    fault(
                        FaultKind::InvalidMessageInformationHeader,
                        format!(
                            "wsman:MaxEnvelopeSize \"{}\" is not a number of bytes",
                            excerpt(text)
                        ),
                    )
                })?;
                if size < MIN_ENVELOPE_SIZE {
                    return Err(fault(
                        FaultKind::EncodingLimit,
                        format!("wsman:MaxEnvelopeSize {size} is below the minimum of {MIN_ENVELOPE_SIZE} bytes"),
                    )
                    .with_detail("MinimumEnvelopeLimit"));
                }
                h.max_envelope_size = Some(size);
            }
            (ns::WSMAN, "OperationTimeout") => {
                let text = text_of(child);
                h.operation_timeout = Some(parse_duration(text).ok_or_else(|| {
                    fault(
                        FaultKind::InvalidMessageInformationHeader,
                        format!(
                            "wsman:OperationTimeout \"{}\" is not an xs:duration",
                            excerpt(text)
                        ),
                    )
                })?);
            }
            (ns::WSMAN, "Locale") => {
                h.locale = child.attribute((ns::XML, "lang")).map(str::to_owned)
            }
            (ns::WSMV, "DataLocale") => {
                h.data_locale = child.attribute((ns::XML, "lang")).map(str::to_owned)
            }
            (ns::WSMV, "SessionId") => h.session_id = Some(text_of(child).to_owned()),
            (ns::WSMAN, "OptionSet") => {
                for opt in child
                    .children()
                    .filter(|n| n.has_tag_name((ns::WSMAN, "Option")))
                {
                    let opt_name = opt.attribute("Name").unwrap_or("");
                    h.options
                        .push((opt_name.to_owned(), opt.text().unwrap_or("").to_owned()));
                }
            }
            _ => {}
        }
    }
    h.message_id = message_id.unwrap_or_default();
    h.action = action.ok_or_else(|| {
        fault(
            FaultKind::MessageInformationHeaderRequired,
            "the request has no wsa:Action header",
        )
    })?;
    Ok(h)
}
