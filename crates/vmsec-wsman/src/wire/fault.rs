//! SOAP 1.2 faults of the profile: each [`FaultKind`] fixes the SOAP code, the
//! WS-Management/WS-Addressing subcode, the fault action and Microsoft's numeric
//! `WSManFault` code, so every error path produces the same shape.

use crate::provider::ProviderError;
use crate::wire::ns;
use crate::wire::reply::{self, Envelope};
use crate::wire::xmlw;

/// The prefix of DSP0226 fault-detail URIs.
const FAULT_DETAIL: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/";

/// The kinds of fault this endpoint sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// `wsa:DestinationUnreachable`: unknown resource URI, class or instance.
    DestinationUnreachable,
    /// `wsa:ActionNotSupported`: unknown action or method.
    ActionNotSupported,
    /// `wsa:MessageInformationHeaderRequired`: a required header is missing.
    MessageInformationHeaderRequired,
    /// `wsa:InvalidMessageInformationHeader`: a header is malformed.
    InvalidMessageInformationHeader,
    /// `wsman:InvalidSelectors`: selectors do not address an instance of the class.
    InvalidSelectors,
    /// `wsman:EncodingLimit`: a size limit was exceeded.
    EncodingLimit,
    /// `wsman:InternalError`: the service failed.
    InternalError,
    /// `wsen:InvalidEnumerationContext`: unknown, expired or foreign context.
    InvalidEnumerationContext,
    /// `wsman:CannotProcessFilter`: unsupported dialect or bad WQL.
    CannotProcessFilter,
    /// `wsman:SchemaValidationError`: the body does not fit the operation's schema
    /// (a method parameter of the wrong type, an unknown parameter, a missing element).
    SchemaValidationError,
    /// `wsman:InvalidParameter`: a well-typed parameter the service refused.
    InvalidParameter,
    /// `wsman:AccessDenied`: the caller may not do this.
    AccessDenied,
    /// `wsman:QuotaLimit`: too many open enumeration contexts.
    QuotaLimit,
}

struct Shape {
    receiver: bool,
    subcode_ns: &'static str,
    subcode: &'static str,
    action: &'static str,
    code: u32,
}

impl FaultKind {
    /// The fault's SOAP code, subcode, action and WSManFault code. A table as a `match`, one
    /// arm per kind: long, but each row reads alone.
    fn shape(self) -> Shape {
        let (receiver, subcode_ns, subcode, action, code) = match self {
            // 0x80338000 ERROR_WSMAN_RESOURCE_NOT_FOUND; resource-URI errors use their own code
            // (see Fault::with_code).
            FaultKind::DestinationUnreachable => (
                false,
                ns::WSA,
                "DestinationUnreachable",
                ns::ACTION_WSA_FAULT,
                2_150_858_752,
            ),
            FaultKind::ActionNotSupported => (
                false,
                ns::WSA,
                "ActionNotSupported",
                ns::ACTION_WSA_FAULT,
                2_150_858_771,
            ),
            FaultKind::MessageInformationHeaderRequired => (
                false,
                ns::WSA,
                "MessageInformationHeaderRequired",
                ns::ACTION_WSA_FAULT,
                13,
            ),
            FaultKind::InvalidMessageInformationHeader => (
                false,
                ns::WSA,
                "InvalidMessageInformationHeader",
                ns::ACTION_WSA_FAULT,
                13,
            ),
            FaultKind::InvalidSelectors => (
                false,
                ns::WSMAN,
                "InvalidSelectors",
                ns::ACTION_WSMAN_FAULT,
                2_150_858_843,
            ),
            FaultKind::EncodingLimit => (
                false,
                ns::WSMAN,
                "EncodingLimit",
                ns::ACTION_WSMAN_FAULT,
                2_150_858_805,
            ),
            FaultKind::InternalError => (
                true,
                ns::WSMAN,
                "InternalError",
                ns::ACTION_WSMAN_FAULT,
                1359,
            ),
            FaultKind::InvalidEnumerationContext => (
                true,
                ns::WSEN,
                "InvalidEnumerationContext",
                ns::ACTION_WSEN_FAULT,
                2_150_858_779,
            ),
            FaultKind::CannotProcessFilter => (
                false,
                ns::WSMAN,
                "CannotProcessFilter",
                ns::ACTION_WSMAN_FAULT,
                2_150_858_778,
            ),
            FaultKind::SchemaValidationError => (
                false,
                ns::WSMAN,
                "SchemaValidationError",
                ns::ACTION_WSMAN_FAULT,
                2_150_858_817,
            ),
            FaultKind::InvalidParameter => (
                false,
                ns::WSMAN,
                "InvalidParameter",
                ns::ACTION_WSMAN_FAULT,
                87,
            ),
            FaultKind::AccessDenied => {
                (false, ns::WSMAN, "AccessDenied", ns::ACTION_WSMAN_FAULT, 5)
            }
            FaultKind::QuotaLimit => (false, ns::WSMAN, "QuotaLimit", ns::ACTION_WSMAN_FAULT, 1816),
        };
        Shape {
            receiver,
            subcode_ns,
            subcode,
            action,
            code,
        }
    }

    /// The subcode's local name, e.g. `InvalidSelectors` (also the metrics outcome label).
    pub fn subcode(self) -> &'static str {
        self.shape().subcode
    }
}

/// A fault ready to be written as a SOAP envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// What went wrong.
    pub kind: FaultKind,
    /// Plain-words explanation (`s:Reason` and `WSManFault/Message`).
    pub reason: String,
    /// A DSP0226 fault-detail name (`MaxEnvelopeSize`, `UnexpectedSelectors`, …).
    pub detail: Option<&'static str>,
    /// Microsoft's numeric code; defaults to the kind's.
    pub code: u32,
}

impl Fault {
    /// A fault of `kind` explained by `reason`.
    pub fn new(kind: FaultKind, reason: impl Into<String>) -> Fault {
        Fault {
            kind,
            reason: reason.into(),
            detail: None,
            code: kind.shape().code,
        }
    }

    /// Adds a DSP0226 fault-detail name.
    pub fn with_detail(mut self, detail: &'static str) -> Fault {
        self.detail = Some(detail);
        self
    }

    /// Overrides Microsoft's numeric code.
    pub fn with_code(mut self, code: u32) -> Fault {
        self.code = code;
        self
    }

    /// Writes the complete fault envelope.
    pub fn to_envelope(&self, relates_to: Option<&str>, machine: &str) -> String {
        let shape = self.kind.shape();
        let mut out = String::with_capacity(1536 + self.reason.len() * 2);
        let env = Envelope::begin(&mut out, shape.action, relates_to);
        out.push_str("<s:Body><s:Fault><s:Code><s:Value>");
        out.push_str(if shape.receiver {
            "s:Receiver"
        } else {
            "s:Sender"
        });
        out.push_str("</s:Value><s:Subcode><s:Value>");
        out.push_str(reply::prefix_of(shape.subcode_ns));
        out.push(':');
        out.push_str(shape.subcode);
        out.push_str("</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang=\"en-US\">");
        xmlw::text(&mut out, &self.reason);
        out.push_str("</s:Text></s:Reason><s:Detail>");
        if let Some(detail) = self.detail {
            out.push_str("<w:FaultDetail>");
            out.push_str(FAULT_DETAIL);
            out.push_str(detail);
            out.push_str("</w:FaultDetail>");
        }
        out.push_str("<f:WSManFault xmlns:f=\"");
        out.push_str(ns::WSMANFAULT);
        out.push_str("\" Code=\"");
        xmlw::uint(&mut out, u64::from(self.code));
        out.push_str("\" Machine=\"");
        xmlw::text(&mut out, machine);
        out.push_str("\"><f:Message>");
        xmlw::text(&mut out, &self.reason);
        out.push_str("</f:Message></f:WSManFault></s:Detail></s:Fault></s:Body>");
        env.end(&mut out);
        out
    }
}

impl From<ProviderError> for Fault {
    fn from(e: ProviderError) -> Fault {
        match e {
            ProviderError::NoSuchClass(class) => Fault::new(
                FaultKind::DestinationUnreachable,
                format!("The class {class} is not served."),
            )
            .with_code(2_150_858_811),
            ProviderError::NoSuchInstance => Fault::new(
                FaultKind::DestinationUnreachable,
                "No instance matches the selectors.",
            ),
            ProviderError::InvalidSelectors(why) => Fault::new(
                FaultKind::InvalidSelectors,
                format!("The selectors are not valid: {why}"),
            ),
            ProviderError::AccessDenied => Fault::new(FaultKind::AccessDenied, "Access is denied."),
            ProviderError::InvalidParameter(why) => Fault::new(
                FaultKind::InvalidParameter,
                format!("A parameter is not valid: {why}"),
            ),
            ProviderError::Internal(why) => Fault::new(
                FaultKind::InternalError,
                format!("The service failed: {why}"),
            ),
        }
    }
}
