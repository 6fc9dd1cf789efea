//! Parsing a request envelope into a typed [`Request`].
//!
//! Namespaces are matched by URI, never by prefix. The body is read through `vmsec_xml`:
//! DTDs are refused and nesting ([`MAX_DEPTH`]), attributes ([`MAX_ATTRIBUTES`]) and namespace
//! declarations ([`MAX_NAMESPACE_DECLARATIONS`]) are bounded before a tree is built.
//! `mustUnderstand` is accepted on every header, known or not: headers outside the profile
//! are ignored.

use roxmltree::Node;
use vmsec_cim::Value;
use vmsec_cim::schema::{MethodDef, ServedClass};

use crate::wire::association::{self, Traversal};
use crate::wire::fault::{Fault, FaultKind};
use crate::wire::header::parse_header;
pub use crate::wire::header::{Header, MIN_ENVELOPE_SIZE, parse_duration};
use crate::wire::invoke;
use crate::wire::ns::{self, Resource};
use crate::wire::wql::{self, Expr, Query};

/// Deepest element nesting accepted; a WS-Man request needs fewer than 10 levels.
pub const MAX_DEPTH: usize = 64;

/// Most attributes accepted on one element; a WS-Man request needs fewer than 5.
pub const MAX_ATTRIBUTES: usize = 64;

/// Most namespace declarations in one request. Clients declare 4 to 10, on the Envelope or
/// on the elements that use them; 128 leaves room for one that declares on every header,
/// while each declaring element costs the parser a copy of the namespaces in scope.
pub const MAX_NAMESPACE_DECLARATIONS: usize = 128;

/// Most XML nodes accepted in one request (a 13 KB key protector is ~27,000).
pub const MAX_NODES: u32 = 1_000_000;

/// The body's size is bounded while it is read (the server's `max_request_bytes`), so the
/// parser adds no byte limit of its own.
const LIMITS: vmsec_xml::Limits = vmsec_xml::Limits {
    max_bytes: usize::MAX,
    max_depth: MAX_DEPTH,
    max_attributes_per_element: MAX_ATTRIBUTES,
    max_namespace_declarations: MAX_NAMESPACE_DECLARATIONS,
    max_nodes: MAX_NODES,
};

/// Why a body is not XML this profile reads, in the words of a plain-text 400.
fn not_xml(e: &vmsec_xml::Error) -> ParseError {
    use vmsec_xml::Error as X;
    ParseError::NotSoap(match e {
        X::NotUtf8(e) => format!("the body is not UTF-8: {e}"),
        X::TooDeep { at, .. } => format!("elements nest deeper than {MAX_DEPTH} levels (at {at})"),
        X::TooManyAttributes { at, .. } => {
            format!("an element has more than {MAX_ATTRIBUTES} attributes (at {at})")
        }
        X::TooManyNamespaceDeclarations { at, .. } => format!(
            "the body has more than {MAX_NAMESPACE_DECLARATIONS} namespace declarations (at {at})"
        ),
        other => format!("the body is not well-formed XML: {other}"),
    })
}

/// What items of an enumeration carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EnumerationMode {
    /// The instances (the default).
    #[default]
    Objects,
    /// Endpoint references only (`EnumerateEPR`).
    Epr,
    /// Instance and endpoint reference (`EnumerateObjectAndEPR`).
    ObjectAndEpr,
}

/// What an Enumerate returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Instances of one class (from the resource URI or the WQL `FROM`), those for which
    /// the `WHERE` clause is true when there is one.
    Class {
        /// The class as the request spelled it.
        class: String,
        /// The WQL `WHERE` clause.
        clause: Option<Expr>,
    },
    /// The instances an association traversal reaches (an association filter, or WQL
    /// `ASSOCIATORS OF`/`REFERENCES OF`).
    Traverse(Traversal),
}

impl Default for Selection {
    fn default() -> Self {
        Selection::Class {
            class: String::new(),
            clause: None,
        }
    }
}

/// The body of an Enumerate request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Enumerate {
    /// What it returns.
    pub selection: Selection,
    /// What items carry.
    pub mode: EnumerationMode,
    /// `wsman:OptimizeEnumeration`: return the first items with the response.
    pub optimize: bool,
    /// `wsman:MaxElements`.
    pub max_elements: Option<u32>,
}

/// A typed request.
#[derive(Clone, Debug, PartialEq)]
pub enum Operation {
    /// WS-Transfer Get of one instance.
    Get {
        /// The class.
        class: String,
    },
    /// WS-Enumeration Enumerate.
    Enumerate(Enumerate),
    /// WS-Enumeration Pull.
    Pull {
        /// The enumeration context.
        context: String,
        /// `wsen:MaxElements`.
        max_elements: Option<u32>,
    },
    /// WS-Enumeration Release.
    Release {
        /// The enumeration context.
        context: String,
    },
    /// WS-Management Identify (what `Test-WSMan` and `wsl id` send first).
    Identify,
    /// A CIM method invocation.
    Invoke {
        /// The method's definition.
        method: &'static MethodDef,
        /// Every in-parameter, typed, in declaration order.
        input: Vec<(String, Value)>,
    },
}

impl Operation {
    /// Short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Get { .. } => "get",
            Operation::Enumerate(_) => "enumerate",
            Operation::Pull { .. } => "pull",
            Operation::Release { .. } => "release",
            Operation::Invoke { .. } => "invoke",
            Operation::Identify => "identify",
        }
    }

    /// Whether answering it takes only a point read of the provider and no writes (Get,
    /// Release, Identify), so that a server may answer it on the thread that read it rather
    /// than hand it to a blocking thread. Enumerate may read every instance, Pull renders up
    /// to a whole envelope of them, Invoke writes.
    pub fn is_quick(&self) -> bool {
        matches!(
            self,
            Operation::Get { .. } | Operation::Release { .. } | Operation::Identify
        )
    }
}

/// A parsed request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Its headers.
    pub header: Header,
    /// What it asks.
    pub operation: Operation,
}

/// Why a body could not become a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not a SOAP 1.2 envelope at all (HTTP 400, no fault).
    NotSoap(String),
    /// A SOAP request the profile refuses, answered with this fault. `relates_to` is
    /// the request's MessageID when it could be read.
    Fault {
        /// The fault to send.
        fault: Fault,
        /// The request's `wsa:MessageID`, if known.
        relates_to: Option<String>,
        /// The operation, when the action was understood (for metrics).
        operation: Option<&'static str>,
    },
}

pub(super) fn fault(kind: FaultKind, reason: impl Into<String>) -> Fault {
    Fault::new(kind, reason)
}

pub(super) fn text_of<'a>(node: Node<'a, '_>) -> &'a str {
    node.text().unwrap_or("").trim()
}

pub(super) fn excerpt(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Resolves the class a request addresses from its resource URI.
fn class_of(h: &Header) -> Result<Resource, Fault> {
    let Some(uri) = h.resource_uri.as_deref() else {
        return Err(fault(
            FaultKind::DestinationUnreachable,
            "the request has no wsman:ResourceURI header",
        )
        .with_code(2_150_858_811));
    };
    ns::resource(uri).ok_or_else(|| {
        fault(
            FaultKind::DestinationUnreachable,
            format!(
                "the resource URI {} is not served; classes live under {}<namespace>/<class>",
                excerpt(uri),
                ns::WMI_PREFIX
            ),
        )
        .with_code(2_150_858_811)
    })
}

/// `class` as addressed in `namespace` (when the URI names one): a served class is served
/// in its own namespace only. A class outside the schema is left for the engine to refuse.
fn in_namespace(namespace: Option<&str>, class: String) -> Result<String, Fault> {
    match (namespace, ServedClass::from_name(&class)) {
        (Some(namespace), Some(served)) if !served.def().in_namespace(namespace) => Err(fault(
            FaultKind::DestinationUnreachable,
            format!(
                "the class {} is not served in {}; it lives in {}",
                served.name(),
                excerpt(namespace),
                served.namespace()
            ),
        )
        .with_code(2_150_858_811)),
        _ => Ok(class),
    }
}

pub(super) fn single_class(h: &Header) -> Result<String, Fault> {
    match class_of(h)? {
        Resource::Class { namespace, class } => in_namespace(namespace.as_deref(), class),
        Resource::AllClasses { .. } => Err(fault(
            FaultKind::DestinationUnreachable,
            "the namespace URI (…/*) addresses no single instance; use a class resource URI",
        )
        .with_code(2_150_858_811)),
    }
}

fn body_element<'a, 'i>(
    body: Node<'a, 'i>,
    ns_uri: &str,
    local: &str,
) -> Result<Node<'a, 'i>, Fault> {
    body.children()
        .find(|n| n.has_tag_name((ns_uri, local)))
        .ok_or_else(|| {
            fault(
                FaultKind::SchemaValidationError,
                format!("the body has no {local} element"),
            )
        })
}

fn max_elements(node: Node<'_, '_>, ns_uri: &str) -> Result<Option<u32>, Fault> {
    let Some(n) = node
        .children()
        .find(|n| n.has_tag_name((ns_uri, "MaxElements")))
    else {
        return Ok(None);
    };
    let text = text_of(n);
    match text.parse::<u32>() {
        Ok(v) if v > 0 => Ok(Some(v)),
        _ => Err(fault(
            FaultKind::SchemaValidationError,
            format!(
                "MaxElements \"{}\" is not a positive integer",
                excerpt(text)
            ),
        )),
    }
}

fn enumerate(h: &Header, body: Node<'_, '_>) -> Result<Enumerate, Fault> {
    let en = body_element(body, ns::WSEN, "Enumerate")?;
    let mut req = Enumerate::default();
    let mut query = None;
    for child in en.children().filter(Node::is_element) {
        let name = child.tag_name();
        match (name.namespace().unwrap_or(""), name.name()) {
            (ns::WSMAN | ns::WSEN, "Filter") => {
                let dialect = child.attribute("Dialect").unwrap_or("");
                query = Some(match dialect {
                    ns::WQL_DIALECT => wql::parse(child.text().unwrap_or(""))
                        .map_err(|e| fault(FaultKind::CannotProcessFilter, e.to_string()))?,
                    association::DIALECT => Query::Traverse(association::parse(child)?),
                    other => {
                        return Err(fault(
                            FaultKind::CannotProcessFilter,
                            format!(
                                "the filter dialect \"{}\" is not supported; use {} or {}",
                                excerpt(other),
                                ns::WQL_DIALECT,
                                association::DIALECT
                            ),
                        ));
                    }
                });
            }
            (ns::WSMAN, "EnumerationMode") => {
                req.mode = match text_of(child) {
                    "EnumerateEPR" => EnumerationMode::Epr,
                    "EnumerateObjectAndEPR" => EnumerationMode::ObjectAndEpr,
                    other => {
                        return Err(fault(
                            FaultKind::SchemaValidationError,
                            format!(
                                "wsman:EnumerationMode \"{}\" is not EnumerateEPR or EnumerateObjectAndEPR",
                                excerpt(other)
                            ),
                        ));
                    }
                };
            }
            (ns::WSMAN, "OptimizeEnumeration") => req.optimize = true,
            (ns::WSMAN, "MaxElements") => req.max_elements = max_elements(en, ns::WSMAN)?,
            _ => {}
        }
    }
    let resource = class_of(h)?;
    req.selection = match (resource, query) {
        (Resource::Class { namespace, class }, None) => Selection::Class {
            class: in_namespace(namespace.as_deref(), class)?,
            clause: None,
        },
        (Resource::AllClasses { .. }, None) => {
            return Err(fault(
                FaultKind::CannotProcessFilter,
                "enumerating the namespace URI (…/*) needs a WQL filter naming the class",
            ));
        }
        // A traversal's classes are the filter's to name, whatever URI it was sent to.
        (_, Some(Query::Traverse(t))) => Selection::Traverse(t),
        (Resource::AllClasses { namespace }, Some(Query::Select { class, clause })) => {
            Selection::Class {
                class: in_namespace(namespace.as_deref(), class)?,
                clause,
            }
        }
        (
            Resource::Class {
                namespace,
                class: c,
            },
            Some(Query::Select { class, clause }),
        ) => {
            if !c.eq_ignore_ascii_case(&class) {
                return Err(fault(
                    FaultKind::CannotProcessFilter,
                    format!("the filter selects from {class} but the resource URI names {c}"),
                ));
            }
            Selection::Class {
                class: in_namespace(namespace.as_deref(), c)?,
                clause,
            }
        }
    };
    Ok(req)
}

fn context_of<'a, 'i>(body: Node<'a, 'i>, local: &str) -> Result<(Node<'a, 'i>, String), Fault> {
    let el = body_element(body, ns::WSEN, local)?;
    let ctx = el
        .children()
        .find(|n| n.has_tag_name((ns::WSEN, "EnumerationContext")))
        .ok_or_else(|| {
            fault(
                FaultKind::SchemaValidationError,
                format!("{local} has no EnumerationContext"),
            )
        })?;
    Ok((el, text_of(ctx).to_owned()))
}

fn invoke(h: &Header, body: Node<'_, '_>) -> Result<Operation, Fault> {
    let not_supported = || {
        fault(
            FaultKind::ActionNotSupported,
            format!("the action {} is not supported", excerpt(&h.action)),
        )
    };
    let (prefix, method_name) = h.action.rsplit_once('/').ok_or_else(not_supported)?;
    let Some(Resource::Class {
        namespace,
        class: action_class,
    }) = ns::resource(prefix)
    else {
        return Err(not_supported());
    };
    let action_class = in_namespace(namespace.as_deref(), action_class)?;
    let class = match &h.resource_uri {
        Some(_) => single_class(h)?,
        None => action_class.clone(),
    };
    if !class.eq_ignore_ascii_case(&action_class) {
        return Err(fault(
            FaultKind::ActionNotSupported,
            format!("the action is for class {action_class} but the resource URI names {class}"),
        ));
    }
    let Some(served) = ServedClass::from_name(&class) else {
        return Err(unknown_class(&class));
    };
    let method = vmsec_cim::schema::method(served, method_name).ok_or_else(|| {
        fault(
            FaultKind::ActionNotSupported,
            format!("class {class} has no method {}", excerpt(method_name)),
        )
    })?;
    let input_name = format!("{}_INPUT", method.name);
    let input = body.children().find(Node::is_element);
    if let Some(el) = input {
        let tag = el.tag_name();
        let in_class_ns = matches!(ns::resource(tag.namespace().unwrap_or("")),
            Some(Resource::Class { namespace, class: c })
                if ServedClass::from_name(&c) == Some(served)
                    && namespace.as_deref().is_none_or(|n| served.def().in_namespace(n)));
        if !tag.name().eq_ignore_ascii_case(&input_name) || !in_class_ns {
            return Err(fault(
                FaultKind::SchemaValidationError,
                format!(
                    "the body holds <{}> in namespace \"{}\"; expected {input_name} in {}",
                    tag.name(),
                    excerpt(tag.namespace().unwrap_or("")),
                    ns::class_uri(method.class.name())
                ),
            ));
        }
    }
    let input = invoke::type_input(method, input)?;
    Ok(Operation::Invoke { method, input })
}

/// The fault for a class outside the schema.
pub fn unknown_class(class: &str) -> Fault {
    fault(
        FaultKind::DestinationUnreachable,
        format!("the class {} is not served", excerpt(class)),
    )
    .with_code(2_150_858_811)
}

/// Parses a request body: a Get in the subset [`quick`](crate::wire::quick) reads without a
/// tree, any other body with [`parse_tree`]. The answer is the same either way.
pub fn parse(bytes: &[u8]) -> Result<Request, ParseError> {
    match crate::wire::quick::get(bytes) {
        Some(request) => Ok(request),
        None => parse_tree(bytes),
    }
}

/// Parses a request body through its tree: the envelope, then the operation its action
/// names, each refused with the fault DSP0226 gives. One function so the order of the checks
/// is plain.
pub fn parse_tree(bytes: &[u8]) -> Result<Request, ParseError> {
    let doc = vmsec_xml::parse_bytes(bytes, &LIMITS).map_err(|e| not_xml(&e))?;
    let root = doc.root_element();
    if !root.has_tag_name((ns::SOAP, "Envelope")) {
        return Err(ParseError::NotSoap(format!(
            "the root element is not a SOAP 1.2 Envelope ({}:{})",
            excerpt(root.tag_name().namespace().unwrap_or("")),
            root.tag_name().name()
        )));
    }
    let header = root
        .children()
        .find(|n| n.has_tag_name((ns::SOAP, "Header")));
    let Some(body) = root.children().find(|n| n.has_tag_name((ns::SOAP, "Body"))) else {
        return Err(ParseError::NotSoap("the envelope has no SOAP Body".into()));
    };
    // DSP0226 §11: Identify carries no addressing headers at all.
    if body
        .children()
        .any(|n| n.has_tag_name((ns::WSMID, "Identify")))
    {
        return Ok(Request {
            header: Header::default(),
            operation: Operation::Identify,
        });
    }
    let header = parse_header(header).map_err(|fault| ParseError::Fault {
        fault,
        // A fault about another header still relates to the request when its id is readable.
        relates_to: header
            .and_then(|h| {
                h.children()
                    .find(|n| n.has_tag_name((ns::WSA, "MessageID")))
            })
            .map(|n| text_of(n).to_owned())
            .filter(|id| !id.is_empty()),
        operation: None,
    })?;
    let wrap = |op: Option<&'static str>| {
        let relates_to = Some(header.message_id.clone()).filter(|id| !id.is_empty());
        move |fault| ParseError::Fault {
            fault,
            relates_to,
            operation: op,
        }
    };
    if header.message_id.is_empty() {
        return Err(wrap(None)(fault(
            FaultKind::MessageInformationHeaderRequired,
            "the request has no wsa:MessageID header",
        )));
    }
    let operation = match header.action.as_str() {
        ns::ACTION_GET => single_class(&header)
            .map(|class| Operation::Get { class })
            .map_err(wrap(Some("get")))?,
        ns::ACTION_ENUMERATE => enumerate(&header, body)
            .map(Operation::Enumerate)
            .map_err(wrap(Some("enumerate")))?,
        ns::ACTION_PULL => {
            let (el, context) = context_of(body, "Pull").map_err(wrap(Some("pull")))?;
            let max_elements = max_elements(el, ns::WSEN).map_err(wrap(Some("pull")))?;
            Operation::Pull {
                context,
                max_elements,
            }
        }
        ns::ACTION_RELEASE => {
            let (_, context) = context_of(body, "Release").map_err(wrap(Some("release")))?;
            Operation::Release { context }
        }
        _ => invoke(&header, body).map_err(wrap(Some("invoke")))?,
    };
    Ok(Request { header, operation })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_in_the_forms_clients_send_parse() {
        assert_eq!(parse_duration("PT20S"), Some(Duration::from_secs(20)));
        assert_eq!(parse_duration("PT60.000S"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("PT1.5M"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("P1DT2H"), Some(Duration::from_secs(93_600)));
    }

    #[test]
    fn malformed_durations_are_refused() {
        for bad in ["", "P", "PT", "20", "PT20", "PTS", "PT-5S", "PT5X", "P1H"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_profile_header_is_read_whatever_the_prefixes() {
        let body = include_str!("../../testdata/etree_invoke_get_key_protector_cdata.xml")
            .replace("{{MAXENV}}", "512000");
        let req = parse(body.as_bytes()).unwrap();
        let h = &req.header;
        assert_eq!(h.message_id, "uuid:9C8B7A6D-5E4F-4A3B-2C1D-0E9F8A7B6C5D");
        assert_eq!(h.max_envelope_size, Some(512_000));
        assert_eq!(h.operation_timeout, Some(Duration::from_secs(20)));
        assert_eq!(h.locale.as_deref(), Some("en-US"));
        assert_eq!(h.data_locale.as_deref(), Some("en-US"));
        assert_eq!(
            h.session_id.as_deref(),
            Some("uuid:7A1B8E56-0C2D-4E1F-9A3B-5C6D7E8F9A0B")
        );
        assert_eq!(h.reply_to.as_deref(), Some(ns::ANONYMOUS));
        assert_eq!(
            h.to.as_deref(),
            Some("https://hv01.example.test:5986/wsman")
        );
        assert_eq!(h.options, vec![("WMI_FLAG".to_owned(), "0".to_owned())]);
        assert_eq!(h.selectors.len(), 4);
        let Operation::Invoke { method, input } = &req.operation else {
            panic!("{:?}", req.operation)
        };
        assert_eq!(method.name, "GetKeyProtector");
        assert_eq!(input.len(), 1);
    }

    #[test]
    fn a_utf8_byte_order_mark_is_accepted() {
        let body = format!(
            "\u{FEFF}{}",
            include_str!("../../testdata/pypsrp_get_security_service.xml")
        );
        assert!(matches!(
            parse(body.as_bytes()),
            Ok(Request {
                operation: Operation::Get { .. },
                ..
            })
        ));
    }

    #[test]
    fn a_repeated_action_header_is_refused() {
        let body = include_str!("../../testdata/pypsrp_get_security_service.xml").replace(
            "<wsa:To>",
            "<wsa:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/Get</wsa:Action><wsa:To>",
        );
        let Err(ParseError::Fault { fault, .. }) = parse(body.as_bytes()) else {
            panic!()
        };
        assert_eq!(fault.kind, FaultKind::InvalidMessageInformationHeader);
    }
}
