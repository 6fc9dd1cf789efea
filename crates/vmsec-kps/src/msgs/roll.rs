//! [MS-KPS] RollTransportKey messages (XML, namespace
//! `http://schemas.microsoft.com/kps/2014/07/service`) and the `<Error>` reply. Parsed through
//! the hardened entry point (`vmsec-xml`): a request comes from anyone on the network.

use roxmltree::Node;

use super::{b64, unb64};
use crate::error::ReleaseError;

pub const NS_SERVICE: &str = "http://schemas.microsoft.com/kps/2014/07/service";

pub const RSA_OAEP: &str = "http://www.w3.org/2009/xmlenc11#rsa-oaep";
pub const KW_AES256: &str = "http://www.w3.org/2001/04/xmlenc#kw-aes256";
pub const AES256_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes256-gcm";

/// A request is a few base64 fields: shallow, few attributes, one namespace.
const LIMITS: vmsec_xml::Limits = vmsec_xml::Limits {
    max_bytes: 4 * 1024 * 1024,
    max_depth: 8,
    max_attributes_per_element: 8,
    max_namespace_declarations: 8,
    max_nodes: 64,
};

/// The protocol version of the path (`/service/V1.0/…` or `/service/V2.0/…`), which is the
/// `Version` of the TransportKey blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    /// From the path segment, case-insensitively.
    pub fn from_segment(s: &str) -> Option<Version> {
        match s.to_ascii_lowercase().as_str() {
            "v1.0" => Some(Version::V1),
            "v2.0" => Some(Version::V2),
            _ => None,
        }
    }

    pub fn segment(self) -> &'static str {
        match self {
            Version::V1 => "V1.0",
            Version::V2 => "V2.0",
        }
    }
}

/// A decoded `RollTransportKeyRequest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollRequest {
    /// The current protector's exact bytes.
    pub ingress: Vec<u8>,
    /// DER.
    pub health_certificate: Vec<u8>,
}

/// A `RollTransportKeyResponse`: the rolled protector and the keys for the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollResponse {
    pub egress: Vec<u8>,
    pub encrypted_transfer_key: Vec<u8>,
    pub encrypted_wrapping_key: Vec<u8>,
    pub encrypted_transport_keys: Vec<u8>,
}

fn malformed(m: impl Into<String>) -> ReleaseError {
    ReleaseError::Malformed(m.into())
}

/// The element children of `node`, in order, all in the service namespace and each holding
/// text only.
fn fields<'a>(node: Node<'a, 'a>) -> Result<Vec<(&'a str, String)>, ReleaseError> {
    let mut out = Vec::new();
    for child in node.children() {
        if child.is_text() {
            if child.text().is_some_and(|t| !t.trim().is_empty()) {
                return Err(malformed(format!(
                    "text directly inside <{}>",
                    node.tag_name().name()
                )));
            }
            continue;
        }
        if !child.is_element() {
            continue;
        }
        let name = child.tag_name().name();
        if child.tag_name().namespace() != Some(NS_SERVICE) {
            return Err(malformed(format!(
                "<{name}> is not in the namespace {NS_SERVICE}"
            )));
        }
        if child.children().any(|c| c.is_element()) {
            return Err(malformed(format!("<{name}> must hold text only")));
        }
        let text: String = child.children().filter_map(|c| c.text()).collect();
        out.push((name, text));
    }
    Ok(out)
}

fn parse_root<'a>(
    doc: &'a roxmltree::Document<'a>,
    root_name: &str,
) -> Result<Vec<(&'a str, String)>, ReleaseError> {
    let root = doc.root_element();
    if root.tag_name().name() != root_name || root.tag_name().namespace() != Some(NS_SERVICE) {
        return Err(malformed(format!(
            "the root is <{}>, not <{root_name} xmlns=\"{NS_SERVICE}\">",
            root.tag_name().name()
        )));
    }
    fields(root)
}

fn take(fields: &mut Vec<(&str, String)>, name: &str) -> Result<String, ReleaseError> {
    let mut at = fields
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| *n == name)
        .map(|(i, _)| i);
    let i = at
        .next()
        .ok_or_else(|| malformed(format!("<{name}> is missing")))?;
    if at.next().is_some() {
        return Err(malformed(format!("<{name}> appears twice")));
    }
    Ok(fields.remove(i).1)
}

fn base64_field(name: &str, text: &str) -> Result<Vec<u8>, ReleaseError> {
    unb64(text).ok_or_else(|| malformed(format!("<{name}> is not base64")))
}

/// Decodes a request and checks its algorithms are the profile's.
pub fn parse_request(body: &[u8]) -> Result<RollRequest, ReleaseError> {
    let doc = vmsec_xml::parse_bytes(body, &LIMITS).map_err(|e| malformed(e.to_string()))?;
    let mut f = parse_root(&doc, "RollTransportKeyRequest")?;
    let ingress = base64_field("IngressProtector", &take(&mut f, "IngressProtector")?)?;
    let health_certificate =
        base64_field("HealthCertificate", &take(&mut f, "HealthCertificate")?)?;
    for (field, want) in [
        ("TransferKeyEncryptionAlgorithm", RSA_OAEP),
        ("WrappingKeyEncryptionAlgorithm", KW_AES256),
        ("TransportKeysEncryptionAlgorithm", AES256_GCM),
    ] {
        let uri = take(&mut f, field)?;
        if uri.trim() != want {
            return Err(ReleaseError::UnsupportedAlgorithm {
                field,
                uri: uri.trim().chars().take(200).collect(),
            });
        }
    }
    if let Some((name, _)) = f.first() {
        return Err(malformed(format!("unexpected element <{name}>")));
    }
    Ok(RollRequest {
        ingress,
        health_certificate,
    })
}

/// Encodes a request (the host side), with the profile's algorithms.
pub fn write_request(req: &RollRequest) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<RollTransportKeyRequest xmlns=\"{NS_SERVICE}\">\
         <IngressProtector>{}</IngressProtector><HealthCertificate>{}</HealthCertificate>\
         <TransferKeyEncryptionAlgorithm>{RSA_OAEP}</TransferKeyEncryptionAlgorithm>\
         <WrappingKeyEncryptionAlgorithm>{KW_AES256}</WrappingKeyEncryptionAlgorithm>\
         <TransportKeysEncryptionAlgorithm>{AES256_GCM}</TransportKeysEncryptionAlgorithm>\
         </RollTransportKeyRequest>\n",
        b64(&req.ingress),
        b64(&req.health_certificate)
    )
}

/// Encodes a response.
pub fn write_response(r: &RollResponse) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<RollTransportKeyResponse xmlns=\"{NS_SERVICE}\">\
         <EgressProtector>{}</EgressProtector><EncryptedTransferKey>{}</EncryptedTransferKey>\
         <EncryptedWrappingKey>{}</EncryptedWrappingKey><EncryptedTransportKeys>{}</EncryptedTransportKeys>\
         </RollTransportKeyResponse>\n",
        b64(&r.egress),
        b64(&r.encrypted_transfer_key),
        b64(&r.encrypted_wrapping_key),
        b64(&r.encrypted_transport_keys)
    )
}

/// Decodes a response (the host side); the children in the profile's order.
pub fn parse_response(body: &[u8]) -> Result<RollResponse, String> {
    let doc = vmsec_xml::parse_bytes(body, &LIMITS).map_err(|e| e.to_string())?;
    let f = parse_root(&doc, "RollTransportKeyResponse").map_err(|e| e.to_string())?;
    let names: Vec<&str> = f.iter().map(|(n, _)| *n).collect();
    let want = [
        "EgressProtector",
        "EncryptedTransferKey",
        "EncryptedWrappingKey",
        "EncryptedTransportKeys",
    ];
    if names != want {
        return Err(format!(
            "RollTransportKeyResponse has {names:?}, not {want:?}"
        ));
    }
    let field = |i: usize| unb64(&f[i].1).ok_or_else(|| format!("<{}> is not base64", want[i]));
    Ok(RollResponse {
        egress: field(0)?,
        encrypted_transfer_key: field(1)?,
        encrypted_wrapping_key: field(2)?,
        encrypted_transport_keys: field(3)?,
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The `<Error>` reply for a refusal.
pub fn write_error(error: &ReleaseError) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Error><Code>{}</Code><Message>{}</Message></Error>\n",
        error.code(),
        escape(&error.to_string())
    )
}

/// Decodes an `<Error>` reply: (Code, Message).
pub fn parse_error(body: &[u8]) -> Option<(String, String)> {
    let doc = vmsec_xml::parse_bytes(body, &LIMITS).ok()?;
    let root = doc.root_element();
    if root.tag_name().name() != "Error" {
        return None;
    }
    let text = |name: &str| {
        root.children()
            .find(|c| c.tag_name().name() == name)
            .map(|c| c.children().filter_map(|t| t.text()).collect::<String>())
    };
    Some((text("Code")?, text("Message").unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RollRequest {
        RollRequest {
            ingress: b"<Protector/>".to_vec(),
            health_certificate: vec![0x30, 1, 2],
        }
    }

    #[test]
    fn a_request_reads_back() {
        assert_eq!(
            parse_request(write_request(&request()).as_bytes()).unwrap(),
            request()
        );
    }

    #[test]
    fn a_response_reads_back() {
        let r = RollResponse {
            egress: b"<Protector/>".to_vec(),
            encrypted_transfer_key: vec![1; 256],
            encrypted_wrapping_key: vec![2; 40],
            encrypted_transport_keys: vec![3; 112],
        };
        assert_eq!(parse_response(write_response(&r).as_bytes()).unwrap(), r);
    }

    #[test]
    fn another_algorithm_is_unsupported_and_named() {
        let body = write_request(&request())
            .replace(KW_AES256, "http://www.w3.org/2001/04/xmlenc#kw-aes128");
        let e = parse_request(body.as_bytes()).unwrap_err();
        assert_eq!(e.code(), "UnsupportedAlgorithm");
        assert!(e.to_string().contains("kw-aes128"), "{e}");
    }

    #[test]
    fn shapes_other_than_the_schemas_are_malformed() {
        let good = write_request(&request());
        for bad in [
            good.replace(NS_SERVICE, "urn:other"),
            good.replace("<HealthCertificate>", "<HealthCertificate><x/>"),
            good.replace("<IngressProtector>", "<IngressProtector>!!!"),
            good.replace(
                "</RollTransportKeyRequest>",
                "<Extra/></RollTransportKeyRequest>",
            ),
            good.replace("<HealthCertificate>MAEC</HealthCertificate>", ""),
            good.replace(
                "</RollTransportKeyRequest>",
                "<HealthCertificate>MAEC</HealthCertificate></RollTransportKeyRequest>",
            ),
            "<!DOCTYPE x [<!ENTITY a \"b\">]><RollTransportKeyRequest/>".to_owned(),
            format!("{}{}", "<a>".repeat(100), "</a>".repeat(100)),
            String::new(),
        ] {
            let e = parse_request(bad.as_bytes()).unwrap_err();
            assert_eq!(e.code(), "MalformedRequest", "{bad}: {e}");
        }
    }

    #[test]
    fn an_error_reply_reads_back_with_its_message_escaped() {
        let e = ReleaseError::InvalidProtector("<bad> & worse".into());
        assert_eq!(
            parse_error(write_error(&e).as_bytes()).unwrap(),
            (
                "InvalidProtectorException".into(),
                "invalid protector: <bad> & worse".into()
            )
        );
    }
}
