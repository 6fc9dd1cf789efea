//! Gets read in one forward pass, with no tree.
//!
//! Most requests a server answers are Gets: an envelope of about 800 bytes whose body is
//! empty and whose headers are flat elements holding text. Building its DOM (roxmltree,
//! after vmsec-xml's pre-scan) was 64K of the ~160K instructions a small Get cost end to end
//! (callgrind). [`get`] fills the [`Header`] straight from the bytes instead.
//!
//! It is a shortcut, not a second parser. It reads a strict subset of XML: ASCII names; no
//! comments, processing instructions (but the XML declaration), CDATA sections, DOCTYPE,
//! entity or character references, carriage returns, tabs or newlines in attribute values; only a
//! well-formed Get that [`envelope::parse_tree`] accepts. On anything else, valid or not, it
//! answers `None` and the request goes to the full parser, which alone refuses: what is
//! accepted, and the fault a refusal gets, are the full parser's. Whatever `get` reads, the
//! full parser reads the same (the tests, and the `envelope` fuzz target, check it).
//!
//! Where XML says more than one thing is right (a header given twice, an unknown child
//! element where text is expected), it answers `None` too, so it never has to agree with the
//! full parser's choice.

use crate::wire::envelope::{self, Operation, Request};
use crate::wire::header::{Header, MIN_ENVELOPE_SIZE, parse_duration};
use crate::wire::ns;

/// Larger bodies are left to the full parser: a Get needs a few hundred bytes, and a body
/// that is not a Get is read at most this far twice.
pub const MAX_BYTES: usize = 16 * 1024;

/// Most attributes on one element here; clients put up to a dozen namespace declarations on
/// the Envelope.
const MAX_ATTRIBUTES: usize = 24;

/// The Get in `bytes`, when it lies in the subset this module reads (see the module docs).
pub fn get(bytes: &[u8]) -> Option<Request> {
    if bytes.len() > MAX_BYTES {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut r = Reader::new(text)?;
    r.prolog()?;
    let envelope = r.start()?;
    if envelope.name != (ns::SOAP, "Envelope") || envelope.empty {
        return None;
    }
    // A Get has a Header (its action is one), then the Body.
    let head = r.child()??;
    if head.name != (ns::SOAP, "Header") || head.empty {
        return None;
    }
    let header = r.header()?;
    // Decided before the body is read: a body that is not a Get's is not read here at all.
    if header.action != ns::ACTION_GET || header.message_id.is_empty() {
        return None;
    }
    let body = r.child()??;
    if body.name != (ns::SOAP, "Body") {
        return None;
    }
    if !body.empty && r.child()?.is_some() {
        return None;
    }
    if r.child()?.is_some() {
        return None;
    }
    r.epilog()?;
    let class = envelope::single_class(&header).ok()?;
    Some(Request {
        header,
        operation: Operation::Get { class },
    })
}

/// A start tag, its names resolved.
struct Start<'t> {
    /// Namespace URI ("" for none) and local name.
    name: (&'t str, &'t str),
    /// `<a/>`.
    empty: bool,
    /// Of the attributes, the two this module reads: `Name` and `xml:lang`.
    name_attr: Option<&'t str>,
    lang: Option<&'t str>,
}

struct Reader<'t> {
    text: &'t str,
    at: usize,
    /// Namespace declarations in scope, innermost last: (prefix, URI), "" for the default.
    scope: Vec<(&'t str, &'t str)>,
    /// Per open element: its qname and how many declarations it pushed on `scope`.
    open: Vec<(&'t str, usize)>,
    declarations: usize,
    /// The current start tag's attributes, and their expanded names: kept to be reused.
    attributes: Vec<Attribute<'t>>,
    expanded: Vec<(&'t str, &'t str)>,
}

/// The URI the `xmlns` prefix is bound to; no other prefix may be.
const XMLNS: &str = "http://www.w3.org/2000/xmlns/";

/// The headers [`Reader::header`] has read, each once: the full parser takes the last of some
/// repeated ones and refuses others, so a repeat is left to it. Room for one of each of the
/// twelve it reads; a thirteenth (a header added there and not counted here) is left to the
/// full parser too.
#[derive(Default)]
struct Seen<'t> {
    names: [(&'t str, &'t str); 12],
    len: usize,
}

impl<'t> Seen<'t> {
    /// `Some` the first time `name` is seen.
    fn first(&mut self, name: (&'t str, &'t str)) -> Option<()> {
        if self.len == self.names.len() || self.names[..self.len].contains(&name) {
            return None;
        }
        self.names[self.len] = name;
        self.len += 1;
        Some(())
    }
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n')
}

/// Bytes [`plain`] looks at twice: control bytes but tab and newline, `&`, and the first
/// bytes of `]]>` and of U+FFFE/U+FFFF.
static SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = i != 0x09 && i != 0x0a;
        i += 1;
    }
    t[b'&' as usize] = true;
    t[b']' as usize] = true;
    t[0xef] = true;
    t
};

/// Whether the whole text lies in the subset's characters: those XML allows but carriage
/// return and U+FFFE/U+FFFF, with no reference (`&`) and no `]]>` anywhere. One pass over
/// the bytes, before anything is read; a NUL or a stray control byte fails it too.
fn plain(b: &[u8]) -> bool {
    let mut i = 0;
    while let Some(n) = b[i..].iter().position(|&c| SPECIAL[usize::from(c)]) {
        i += n;
        let fine = match b[i] {
            b']' => !b[i..].starts_with(b"]]>"),
            // U+FFFE and U+FFFF are EF BF BE and EF BF BF.
            0xef => !matches!(b.get(i + 1..i + 3), Some([0xbf, 0xbe | 0xbf])),
            _ => false,
        };
        if !fine {
            return false;
        }
        i += 1;
    }
    true
}

/// An attribute as written: prefix, local name, qname, value.
type Attribute<'t> = (&'t str, &'t str, &'t str, &'t str);

impl<'t> Reader<'t> {
    fn new(text: &'t str) -> Option<Reader<'t>> {
        // A second byte-order mark is the full parser's to refuse.
        if text.starts_with('\u{feff}') || !plain(text.as_bytes()) {
            return None;
        }
        Some(Reader {
            text,
            at: 0,
            scope: Vec::with_capacity(8),
            open: Vec::with_capacity(8),
            declarations: 0,
            attributes: Vec::with_capacity(MAX_ATTRIBUTES),
            expanded: Vec::with_capacity(MAX_ATTRIBUTES),
        })
    }

    fn bytes(&self) -> &'t [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    fn eat(&mut self, s: &str) -> bool {
        let ok = self.text[self.at..].starts_with(s);
        if ok {
            self.at += s.len();
        }
        ok
    }

    fn spaces(&mut self) -> usize {
        let n = self.bytes()[self.at..]
            .iter()
            .take_while(|&&b| is_space(b))
            .count();
        self.at += n;
        n
    }

    /// `NCName (':' NCName)?` in ASCII: (prefix, local, qname).
    fn qname(&mut self) -> Option<(&'t str, &'t str, &'t str)> {
        let from = self.at;
        let part = |r: &mut Self| {
            let b = r.bytes();
            let start = r.at;
            if !b.get(start).is_some_and(|&c| is_name_start(c)) {
                return None;
            }
            let n = b[start..].iter().take_while(|&&c| is_name_byte(c)).count();
            r.at += n;
            Some(&r.text[start..start + n])
        };
        let first = part(self)?;
        let (prefix, local) = if self.peek() == Some(b':') {
            self.at += 1;
            (first, part(self)?)
        } else {
            ("", first)
        };
        Some((prefix, local, &self.text[from..self.at]))
    }

    /// A quoted attribute value.
    fn value(&mut self) -> Option<&'t str> {
        let quote = self.peek().filter(|&q| q == b'"' || q == b'\'')?;
        let from = self.at + 1;
        let len = memchr::memchr(quote, &self.bytes()[from..])?;
        let v = &self.text[from..from + len];
        self.at = from + len + 1;
        // XML turns a tab or a newline in an attribute value into a space; left to the full
        // parser.
        memchr::memchr3(b'<', b'\t', b'\n', v.as_bytes())
            .is_none()
            .then_some(v)
    }

    /// An optional `<?xml version="1.0" encoding="utf-8"?>`, then whitespace.
    fn prolog(&mut self) -> Option<()> {
        if self.eat("<?xml") {
            if self.spaces() == 0 || !self.eat("version") {
                return None;
            }
            self.equals()?;
            if self.value()? != "1.0" {
                return None;
            }
            if self.spaces() > 0 && self.eat("encoding") {
                self.equals()?;
                if !self.value()?.eq_ignore_ascii_case("utf-8") {
                    return None;
                }
                self.spaces();
            }
            if !self.eat("?>") {
                return None;
            }
        }
        self.spaces();
        Some(())
    }

    fn epilog(&mut self) -> Option<()> {
        self.spaces();
        (self.at == self.text.len()).then_some(())
    }

    fn equals(&mut self) -> Option<()> {
        self.spaces();
        if !self.eat("=") {
            return None;
        }
        self.spaces();
        Some(())
    }

    fn resolve(&self, prefix: &str) -> Option<&'t str> {
        let uri = self
            .scope
            .iter()
            .rev()
            .find(|(p, _)| *p == prefix)
            .map(|(_, u)| *u);
        match (prefix, uri) {
            (_, Some(uri)) => Some(uri),
            ("", None) => Some(""),
            _ => None,
        }
    }

    /// The start tag at the reader (its `<` not yet read), its declarations put in scope.
    fn start(&mut self) -> Option<Start<'t>> {
        if !self.eat("<") {
            return None;
        }
        let (prefix, local, qname) = self.qname()?;
        if prefix == "xml" || prefix == "xmlns" || self.open.len() >= envelope::MAX_DEPTH {
            return None;
        }
        let mut attributes = std::mem::take(&mut self.attributes);
        attributes.clear();
        let mut pushed = 0;
        let empty = loop {
            let spaced = self.spaces() > 0;
            if self.eat(">") {
                break false;
            }
            if self.eat("/>") {
                break true;
            }
            if !spaced || attributes.len() == MAX_ATTRIBUTES {
                return None;
            }
            let (a_prefix, a_local, a_qname) = self.qname()?;
            self.equals()?;
            let value = self.value()?;
            if attributes.iter().any(|a| a.2 == a_qname) {
                return None;
            }
            attributes.push((a_prefix, a_local, a_qname, value));
            let declared = match (a_prefix, a_local) {
                ("", "xmlns") => Some(""),
                ("xmlns", p) => Some(p),
                _ => None,
            };
            if let Some(p) = declared {
                if p == "xml" || p == "xmlns" || value.is_empty() || value == ns::XML {
                    return None;
                }
                if value == XMLNS {
                    return None;
                }
                self.declarations += 1;
                if self.declarations > envelope::MAX_NAMESPACE_DECLARATIONS {
                    return None;
                }
                self.scope.push((p, value));
                pushed += 1;
            }
        };
        let mut start = Start {
            name: (self.resolve(prefix)?, local),
            empty,
            name_attr: None,
            lang: None,
        };
        // Every prefix must be bound, and no two attributes may share an expanded name.
        let mut expanded = std::mem::take(&mut self.expanded);
        expanded.clear();
        for &(a_prefix, a_local, _, value) in &attributes {
            if a_prefix == "xmlns" || (a_prefix.is_empty() && a_local == "xmlns") {
                continue;
            }
            let uri = match a_prefix {
                "" => "",
                "xml" => ns::XML,
                p => self.resolve(p)?,
            };
            if expanded.contains(&(uri, a_local)) {
                return None;
            }
            expanded.push((uri, a_local));
            match (uri, a_local) {
                ("", "Name") => start.name_attr = Some(value),
                (ns::XML, "lang") => start.lang = Some(value),
                _ => {}
            }
        }
        self.attributes = attributes;
        self.expanded = expanded;
        if empty {
            self.scope.truncate(self.scope.len() - pushed);
        } else {
            self.open.push((qname, pushed));
        }
        Some(start)
    }

    /// Text up to the next `<`, which must be there.
    fn text(&mut self) -> Option<&'t str> {
        let from = self.at;
        let len = memchr::memchr(b'<', &self.bytes()[from..])?;
        self.at += len;
        Some(&self.text[from..from + len])
    }

    /// The end tag of the innermost open element.
    fn end(&mut self) -> Option<()> {
        let (qname, pushed) = self.open.pop()?;
        if !self.eat("</") || !self.eat(qname) {
            return None;
        }
        self.spaces();
        if !self.eat(">") {
            return None;
        }
        self.scope.truncate(self.scope.len() - pushed);
        Some(())
    }

    /// The next child element of the innermost open element, its text before it skipped;
    /// `Some(None)` once that element's end tag is read.
    fn child(&mut self) -> Option<Option<Start<'t>>> {
        self.text()?;
        if self.text[self.at..].starts_with("</") {
            self.end()?;
            return Some(None);
        }
        if self
            .bytes()
            .get(self.at + 1)
            .is_some_and(|&b| b == b'!' || b == b'?')
        {
            return None;
        }
        self.start().map(Some)
    }

    /// Reads past the rest of an element whose start tag `el` was just read.
    fn skip(&mut self, el: &Start<'t>) -> Option<()> {
        if el.empty {
            return Some(());
        }
        while let Some(child) = self.child()? {
            self.skip(&child)?;
        }
        Some(())
    }

    /// The text content of an element whose start tag was just read; `None` if it holds an
    /// element.
    fn text_only(&mut self, el: &Start<'t>) -> Option<&'t str> {
        if el.empty {
            return Some("");
        }
        let t = self.text()?;
        self.end()?;
        Some(t)
    }

    /// The Header's children, after its start tag; fills what [`Header`] holds, each header
    /// read as `envelope::parse_tree` reads it.
    fn header(&mut self) -> Option<Header> {
        let mut h = Header::default();
        let (mut action, mut message_id) = (None, None);
        let mut seen = Seen::default();
        while let Some(el) = self.child()? {
            match el.name {
                (ns::WSA, "Action") => action = Some(self.trimmed(&el)?),
                (ns::WSA, "MessageID") => message_id = Some(self.trimmed(&el)?),
                (ns::WSA, "To") => h.to = Some(self.trimmed(&el)?),
                (ns::WSA, "ReplyTo") => h.reply_to = self.reply_to(&el)?,
                (ns::WSMAN, "ResourceURI") => h.resource_uri = Some(self.trimmed(&el)?),
                (ns::WSMAN, "SelectorSet") => h.selectors = self.named(&el, "Selector")?,
                (ns::WSMAN, "MaxEnvelopeSize") => {
                    let size: usize = self.trimmed(&el)?.parse().ok()?;
                    if size < MIN_ENVELOPE_SIZE {
                        return None;
                    }
                    h.max_envelope_size = Some(size);
                }
                (ns::WSMAN, "OperationTimeout") => {
                    h.operation_timeout = Some(parse_duration(&self.trimmed(&el)?)?);
                }
                (ns::WSMAN, "Locale") => {
                    h.locale = el.lang.map(str::to_owned);
                    self.skip(&el)?;
                }
                (ns::WSMV, "DataLocale") => {
                    h.data_locale = el.lang.map(str::to_owned);
                    self.skip(&el)?;
                }
                (ns::WSMV, "SessionId") => h.session_id = Some(self.trimmed(&el)?),
                (ns::WSMAN, "OptionSet") => h.options = self.named(&el, "Option")?,
                _ => {
                    self.skip(&el)?;
                    continue;
                }
            }
            seen.first(el.name)?;
        }
        h.action = action?;
        h.message_id = message_id?;
        Some(h)
    }

    /// [`Reader::text_only`], trimmed as the tree's reader trims header text.
    fn trimmed(&mut self, el: &Start<'t>) -> Option<String> {
        Some(self.text_only(el)?.trim().to_owned())
    }

    /// `wsa:ReplyTo`'s `wsa:Address`, its other children skipped.
    fn reply_to(&mut self, el: &Start<'t>) -> Option<Option<String>> {
        let mut address = None;
        if el.empty {
            return Some(None);
        }
        while let Some(child) = self.child()? {
            if child.name == (ns::WSA, "Address") {
                if address.is_some() {
                    return None;
                }
                address = Some(self.text_only(&child)?.trim().to_owned());
            } else {
                self.skip(&child)?;
            }
        }
        Some(address)
    }

    /// The `wsman:<local>` children of a SelectorSet or OptionSet as (`Name`, text), the
    /// others skipped. A selector must have a `Name`; an option without one gets "".
    fn named(&mut self, el: &Start<'t>, local: &str) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        if el.empty {
            return Some(out);
        }
        while let Some(child) = self.child()? {
            if child.name == (ns::WSMAN, local) {
                let name = match (child.name_attr, local) {
                    (Some(n), _) => n,
                    (None, "Option") => "",
                    (None, _) => return None,
                };
                let value = self.text_only(&child)?;
                out.push((name.to_owned(), value.to_owned()));
            } else {
                self.skip(&child)?;
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests;
