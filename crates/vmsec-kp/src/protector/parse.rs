//! The strict Protector parser: schema order, namespaces by URI, unique Ids,
//! supported algorithms only (unknown ones are named in the error).

use std::collections::HashSet;

use roxmltree::Node;

use crate::c14n;
use crate::crypto::{
    Hash, Hkdf, KeyEncryption, NS_DSIG, NS_VMSEC, NS_XENC11, Signature, SignatureAlgorithm,
    TKS_INFO, URI_HKDF, URI_HMAC_SHA256, URI_RSA_OAEP, URI_RSA_OAEP_MGF1P,
};
use crate::error::{Error, Result};
use crate::protector::model::{GuardianSignature, NS_KPS, TransportKeySignature, Wrapping};
use crate::xml::{
    Children, base64_text, expect_root, only_attributes, parse_document, parse_u32, required_attr,
    simple_text,
};

/// XML Encryption 1.0 namespace (where `OAEPparams` lives).
const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";

/// Everything parsed from one Protector document.
pub struct Parsed {
    pub max_offline_unwraps: u32,
    pub wrappings: Vec<Wrapping>,
    pub transport_key_signature: TransportKeySignature,
    pub guardian_signature: GuardianSignature,
    pub canonical_wrappings: Vec<u8>,
}

/// Parses a Protector document.
pub fn parse(input: &[u8]) -> Result<Parsed> {
    let doc = parse_document(input)?;
    let root = expect_root(&doc, NS_KPS, "Protector")?;
    only_attributes(root, &["MaxOfflineUnwraps"])?;
    let max_offline_unwraps = match root.attribute("MaxOfflineUnwraps") {
        Some(v) => parse_u32("MaxOfflineUnwraps", v)?,
        None => 0,
    };
    let mut children = Children::new(root, NS_KPS)?;
    let wrappings_node = children.required("Wrappings")?;
    let tks_node = children.required("TransportKeySignature")?;
    let gs_node = children.required("GuardianSignature")?;
    children.finish()?;

    only_attributes(wrappings_node, &[])?;
    let mut list = Children::new(wrappings_node, NS_KPS)?;
    let mut wrappings = Vec::new();
    let mut ids = HashSet::new();
    while let Some(node) = list.optional("Wrapping")? {
        let w = wrapping(node)?;
        if !ids.insert(w.id) {
            return Err(Error::DuplicateWrappingId { id: w.id });
        }
        wrappings.push(w);
    }
    list.finish()?;
    if wrappings.is_empty() {
        return Err(Error::MissingElement {
            parent: "Wrappings".into(),
            expected: "Wrapping".into(),
        });
    }

    Ok(Parsed {
        max_offline_unwraps,
        wrappings,
        transport_key_signature: transport_key_signature(tks_node)?,
        guardian_signature: guardian_signature(gs_node)?,
        canonical_wrappings: c14n::canonicalize_element(wrappings_node, None),
    })
}

fn wrapping(node: Node<'_, '_>) -> Result<Wrapping> {
    only_attributes(node, &[])?;
    let mut c = Children::new(node, NS_KPS)?;
    let id_node = c.required("Id")?;
    let id = parse_u32("Id", &simple_text(id_node)?)?;
    let ctx = |what: &str| format!("Wrapping {id}/{what}");
    let signing_cert = base64_text(c.required("SigningCertificate")?)?;
    let scs = c.required("SigningCertificateSignature")?;
    only_attributes(scs, &["ParentWrappingId"])?;
    let parent_id = parse_u32("ParentWrappingId", required_attr(scs, "ParentWrappingId")?)?;
    let signing_cert_signature = single_signature(scs, &ctx("SigningCertificateSignature"))?;
    let encryption_cert = base64_text(c.required("EncryptionCertificate")?)?;
    let ecs = c.required("EncryptionCertificateSignature")?;
    only_attributes(ecs, &[])?;
    let encryption_cert_signature = single_signature(ecs, &ctx("EncryptionCertificateSignature"))?;
    let tk = c.required("TransportKey")?;
    only_attributes(tk, &[])?;
    let mut tk_children = Children::new(tk, NS_KPS)?;
    let (key_encryption, encrypted_key) = encrypted_data(
        tk_children.required("EncryptedData")?,
        &ctx("TransportKey/EncryptedData"),
    )?;
    tk_children.finish()?;
    c.finish()?;
    Ok(Wrapping {
        id,
        signing_cert,
        parent_id,
        signing_cert_signature,
        encryption_cert,
        encryption_cert_signature,
        key_encryption,
        encrypted_key,
    })
}

/// A container whose only child is a `Signature` element.
fn single_signature(node: Node<'_, '_>, ctx: &str) -> Result<Signature> {
    let mut c = Children::new(node, NS_KPS)?;
    let sig = rsa_signature(c.required("Signature")?, ctx)?;
    c.finish()?;
    Ok(sig)
}

/// A `Signature_T` element: `Algorithm`, optional `Parameters`, `SignatureValue`.
/// Returns the algorithm URI, the parameter elements and the value.
fn signature_parts<'a, 'i>(node: Node<'a, 'i>) -> Result<(&'a str, Vec<Node<'a, 'i>>, Vec<u8>)> {
    only_attributes(node, &["Algorithm"])?;
    let uri = required_attr(node, "Algorithm")?;
    let mut c = Children::new(node, NS_KPS)?;
    let params = parameters(c.optional("Parameters")?)?;
    let value = base64_text(c.required("SignatureValue")?)?;
    c.finish()?;
    Ok((uri, params, value))
}

fn parameters<'a, 'i>(node: Option<Node<'a, 'i>>) -> Result<Vec<Node<'a, 'i>>> {
    match node {
        None => Ok(Vec::new()),
        Some(node) => {
            only_attributes(node, &[])?;
            Ok(Children::new(node, NS_KPS)?.rest())
        }
    }
}

fn rsa_signature(node: Node<'_, '_>, ctx: &str) -> Result<Signature> {
    let (uri, params, value) = signature_parts(node)?;
    let algorithm =
        SignatureAlgorithm::from_uri(uri).ok_or_else(|| Error::UnsupportedAlgorithm {
            element: format!("{ctx}/Signature"),
            uri: uri.into(),
        })?;
    if let Some(p) = params.first() {
        return Err(Error::UnsupportedParameters {
            element: format!("{ctx}/Signature"),
            detail: format!(
                "RSA PKCS#1 v1.5 takes no parameters, found <{}>",
                p.tag_name().name()
            ),
        });
    }
    Ok(Signature { algorithm, value })
}

fn encrypted_data(node: Node<'_, '_>, ctx: &str) -> Result<(KeyEncryption, Vec<u8>)> {
    only_attributes(node, &["Algorithm"])?;
    let uri = required_attr(node, "Algorithm")?;
    let uri_mgf1p = match uri {
        URI_RSA_OAEP => false,
        URI_RSA_OAEP_MGF1P => true,
        other => {
            return Err(Error::UnsupportedAlgorithm {
                element: ctx.into(),
                uri: other.into(),
            });
        }
    };
    let mut c = Children::new(node, NS_KPS)?;
    let params = parameters(c.optional("Parameters")?)?;
    let cipher = base64_text(c.required("CipherValue")?)?;
    c.finish()?;

    // XML Encryption defaults: SHA-1 digest, MGF1 with SHA-1.
    let mut digest = Hash::Sha1;
    let mut mgf = Hash::Sha1;
    let refuse = |detail: String| Error::UnsupportedParameters {
        element: ctx.into(),
        detail,
    };
    for p in params {
        let name = p.tag_name();
        match (name.namespace(), name.name()) {
            (Some(NS_DSIG), "DigestMethod") => {
                let alg = required_attr(p, "Algorithm")?;
                digest = Hash::from_digest_uri(alg).ok_or_else(|| Error::UnsupportedAlgorithm {
                    element: format!("{ctx}/Parameters/DigestMethod"),
                    uri: alg.into(),
                })?;
            }
            (Some(NS_XENC11), "MGF") if !uri_mgf1p => {
                let alg = required_attr(p, "Algorithm")?;
                mgf = Hash::from_mgf_uri(alg).ok_or_else(|| Error::UnsupportedAlgorithm {
                    element: format!("{ctx}/Parameters/MGF"),
                    uri: alg.into(),
                })?;
            }
            (Some(NS_XENC11 | NS_XENC), "OAEPparams") => {
                if !simple_text(p)?.trim().is_empty() {
                    return Err(refuse("a non-empty OAEP label is not supported".into()));
                }
            }
            (ns, local) => {
                return Err(refuse(format!(
                    "unknown parameter <{local}> in namespace {}",
                    ns.unwrap_or("(none)")
                )));
            }
        }
    }
    if digest != mgf {
        return Err(refuse(format!(
            "OAEP digest {} with MGF1 {} is not a supported combination",
            digest.digest_uri(),
            mgf.mgf_uri()
        )));
    }
    Ok((
        KeyEncryption::RsaOaep {
            hash: digest,
            uri_mgf1p,
        },
        cipher,
    ))
}

fn transport_key_signature(node: Node<'_, '_>) -> Result<TransportKeySignature> {
    only_attributes(node, &[])?;
    let mut c = Children::new(node, NS_KPS)?;
    let kdm = c.required("KeyDerivationMethod")?;
    let sig = c.required("Signature")?;
    c.finish()?;

    only_attributes(kdm, &["Algorithm"])?;
    let kdf_uri = required_attr(kdm, "Algorithm")?;
    if kdf_uri != URI_HKDF {
        return Err(Error::UnsupportedAlgorithm {
            element: "TransportKeySignature/KeyDerivationMethod".into(),
            uri: kdf_uri.into(),
        });
    }
    let mut kc = Children::new(kdm, NS_KPS)?;
    let params = parameters(kc.optional("Parameters")?)?;
    kc.finish()?;
    // Absent parameters: no salt (RFC 5869's default) and vmsec's info string.
    let mut kdf = Hkdf {
        salt: Vec::new(),
        info: TKS_INFO.to_vec(),
    };
    for p in params {
        let name = p.tag_name();
        match (name.namespace(), name.name()) {
            (Some(NS_VMSEC), "Salt") => kdf.salt = base64_text(p)?,
            (Some(NS_VMSEC), "Info") => kdf.info = simple_text(p)?.into_bytes(),
            (ns, local) => {
                return Err(Error::UnsupportedParameters {
                    element: "TransportKeySignature/KeyDerivationMethod".into(),
                    detail: format!(
                        "unknown parameter <{local}> in namespace {}",
                        ns.unwrap_or("(none)")
                    ),
                });
            }
        }
    }

    let (mac_uri, mac_params, mac) = signature_parts(sig)?;
    if mac_uri != URI_HMAC_SHA256 {
        return Err(Error::UnsupportedAlgorithm {
            element: "TransportKeySignature/Signature".into(),
            uri: mac_uri.into(),
        });
    }
    if let Some(p) = mac_params.first() {
        return Err(Error::UnsupportedParameters {
            element: "TransportKeySignature/Signature".into(),
            detail: format!(
                "HMAC-SHA256 takes no parameters, found <{}>",
                p.tag_name().name()
            ),
        });
    }
    Ok(TransportKeySignature { kdf, mac })
}

fn guardian_signature(node: Node<'_, '_>) -> Result<GuardianSignature> {
    only_attributes(node, &["WrappingId"])?;
    let wrapping_id = parse_u32("WrappingId", required_attr(node, "WrappingId")?)?;
    let signature = single_signature(node, "GuardianSignature")?;
    Ok(GuardianSignature {
        wrapping_id,
        signature,
    })
}
