//! Guardians as MS-KPS `metadata.xml` ([MS-KPS] appendix 6.4): both
//! certificates, the encryption certificate's signature, the signing
//! certificate's self-signature, all under an enveloped XML-DSig signature.

use roxmltree::{Document, Node};

use crate::c14n::{self, Mode};
use crate::cert;
use crate::crypto::{Hash, NS_DSIG, Signature, SignatureAlgorithm, sign_rsa_sha256};
use crate::error::{CertRole, Error, Result, SignatureKind};
use crate::guardian::Guardian;
use crate::protector::NS_KPS;
use crate::xml::{
    Children, b64, base64_text, expect_root, is, only_attributes, parse_document, parse_u32,
    required_attr, simple_text,
};

const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// Writes a guardian's `metadata.xml`, signed by the guardian's signing key. Needs it.
pub fn export_metadata(guardian: &Guardian) -> Result<String> {
    let key = guardian.signing_key()?;
    write_metadata(guardian, key, guardian.signing_cert_der())
}

/// Writes a guardian's `metadata.xml` signed by another key (a KPS's communications key,
/// PKCS#8 DER, with its certificate), as a Key Protection Service publishes its guardian.
/// Needs the guardian's signing key too, for the signing certificate's self-signature.
pub fn export_metadata_signed_by(
    guardian: &Guardian,
    signer_pkcs8: &[u8],
    signer_cert_der: &[u8],
) -> Result<String> {
    let signer = aws_lc_rs::rsa::KeyPair::from_pkcs8(signer_pkcs8).map_err(|e| {
        Error::InvalidPrivateKey {
            role: CertRole::Signing,
            detail: e.to_string(),
        }
    })?;
    let cert_keys = cert::keys(signer_cert_der, CertRole::Signing, None)?;
    if aws_lc_rs::signature::KeyPair::public_key(&signer).as_ref()
        != cert_keys.rsa_public.as_slice()
    {
        return Err(Error::KeyMismatch {
            role: CertRole::Signing,
        });
    }
    write_metadata(guardian, &signer, signer_cert_der)
}

fn write_metadata(
    guardian: &Guardian,
    signer: &aws_lc_rs::rsa::KeyPair,
    signer_cert_der: &[u8],
) -> Result<String> {
    let key = guardian.signing_key()?;
    let ecs = guardian.encryption_cert_signature();
    let self_sig = sign_rsa_sha256(key, guardian.signing_cert_der())?;
    let sig_elem = |name: &str, sig: &Signature| {
        format!(
            "    <{name} Algorithm=\"{}\">\n      <SignatureValue>{}</SignatureValue>\n    </{name}>\n",
            sig.algorithm.uri(),
            b64(&sig.value)
        )
    };
    // The enveloped-signature transform removes ds:Signature but keeps the
    // whitespace around it, so the digest is over head + tail exactly.
    let head = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Metadata xmlns=\"{NS_KPS}\" Version=\"1\">\n  <GuardianInformation>\n    <Version>1</Version>\n    <EncryptionCertificate>{}</EncryptionCertificate>\n    <SigningCertificate>{}</SigningCertificate>\n{}{}  </GuardianInformation>\n  ",
        b64(guardian.encryption_cert_der()),
        b64(guardian.signing_cert_der()),
        sig_elem("EncryptionCertificateSignature", ecs),
        sig_elem("SigningCertificateSelfSignature", &self_sig),
    );
    let tail = "\n</Metadata>\n";
    let unsigned = format!("{head}{tail}");
    let digest = {
        let doc = parse_document(unsigned.as_bytes())?;
        Hash::Sha256.digest(&c14n::canonicalize_document(Mode::Exclusive, &doc, None))
    };
    let signature = |value: &str| {
        format!(
            "<ds:Signature xmlns:ds=\"{NS_DSIG}\">\n    <ds:SignedInfo>\n      <ds:CanonicalizationMethod Algorithm=\"{exc}\"/>\n      <ds:SignatureMethod Algorithm=\"{rsa}\"/>\n      <ds:Reference URI=\"\">\n        <ds:Transforms>\n          <ds:Transform Algorithm=\"{ENVELOPED}\"/>\n          <ds:Transform Algorithm=\"{exc}\"/>\n        </ds:Transforms>\n        <ds:DigestMethod Algorithm=\"{sha}\"/>\n        <ds:DigestValue>{dv}</ds:DigestValue>\n      </ds:Reference>\n    </ds:SignedInfo>\n    <ds:SignatureValue>{value}</ds:SignatureValue>\n    <ds:KeyInfo>\n      <ds:X509Data>\n        <ds:X509Certificate>{cert}</ds:X509Certificate>\n      </ds:X509Data>\n    </ds:KeyInfo>\n  </ds:Signature>",
            exc = c14n::EXC_C14N,
            rsa = SignatureAlgorithm::RsaSha256.uri(),
            sha = Hash::Sha256.digest_uri(),
            dv = b64(&digest),
            cert = b64(signer_cert_der),
        )
    };
    // SignatureValue lies outside SignedInfo, so a draft with an empty value
    // has the same canonical SignedInfo as the final document.
    let draft = format!("{head}{}{tail}", signature(""));
    let signed_info = {
        let doc = parse_document(draft.as_bytes())?;
        let si = doc
            .descendants()
            .find(|n| is(*n, NS_DSIG, "SignedInfo"))
            .ok_or(Error::Crypto("metadata writer lost SignedInfo"))?;
        c14n::canonicalize_element(si, None)
    };
    let value = sign_rsa_sha256(signer, &signed_info)?;
    let text = format!("{head}{}{tail}", signature(&b64(&value.value)));
    // What we hand out must be what we accept.
    import_metadata(guardian.name(), text.as_bytes())?;
    Ok(text)
}

/// Reads a `metadata.xml` (vmsec's or a Windows HGS's) into a public guardian
/// named `name`, checking the document signature, the signing certificate's
/// self-signature and the encryption certificate's signature.
pub fn import_metadata(name: &str, xml: &[u8]) -> Result<Guardian> {
    let doc = parse_document(xml)?;
    let root = expect_root(&doc, NS_KPS, "Metadata")?;
    // Metadata_T has anyAttribute: only Version is required and checked.
    parse_u32("Version", required_attr(root, "Version")?)?;
    let elements: Vec<Node<'_, '_>> = root.children().filter(Node::is_element).collect();
    let info = match elements.first() {
        Some(n) if is(*n, NS_KPS, "GuardianInformation") => *n,
        Some(n) => {
            return Err(Error::UnexpectedElement {
                parent: "Metadata".into(),
                expected: "<GuardianInformation>".into(),
                found: n.tag_name().name().into(),
            });
        }
        None => {
            return Err(Error::MissingElement {
                parent: "Metadata".into(),
                expected: "GuardianInformation".into(),
            });
        }
    };
    let signature = match elements.get(1) {
        Some(n) if is(*n, NS_DSIG, "Signature") => *n,
        _ => {
            return Err(Error::MissingElement {
                parent: "Metadata".into(),
                expected: "ds:Signature".into(),
            });
        }
    };

    only_attributes(info, &[])?;
    let mut c = Children::new(info, NS_KPS)?;
    parse_u32("Version", &simple_text(c.required("Version")?)?)?;
    let encryption_cert = base64_text(c.required("EncryptionCertificate")?)?;
    let signing_cert = base64_text(c.required("SigningCertificate")?)?;
    let ecs = signature_t(c.required("EncryptionCertificateSignature")?)?;
    let self_sig = signature_t(c.required("SigningCertificateSelfSignature")?)?;
    if let Some(others) = c.optional("OtherSigningCertificates")? {
        let mut oc = Children::new(others, NS_KPS)?;
        while let Some(cert) = oc.optional("Certificate")? {
            base64_text(cert)?;
        }
        oc.finish()?;
    }
    c.finish()?;

    let signing = cert::keys(&signing_cert, CertRole::Signing, None)?;
    if !self_sig
        .algorithm
        .verify(&signing.rsa_public, &signing_cert, &self_sig.value)
    {
        return Err(Error::BadSignature {
            kind: SignatureKind::SigningCertificateSelf,
            wrapping: None,
        });
    }
    verify_dsig(&doc, root, signature, &signing_cert, &signing.rsa_public)?;
    Guardian::from_parts(name, encryption_cert, signing_cert, Some(ecs), None)
}

/// A `Signature_T` element of GuardianInformation.
fn signature_t(node: Node<'_, '_>) -> Result<Signature> {
    only_attributes(node, &["Algorithm"])?;
    let uri = required_attr(node, "Algorithm")?;
    let algorithm =
        SignatureAlgorithm::from_uri(uri).ok_or_else(|| Error::UnsupportedAlgorithm {
            element: node.tag_name().name().into(),
            uri: uri.into(),
        })?;
    let mut c = Children::new(node, NS_KPS)?;
    if let Some(p) = c.optional("Parameters")?
        && p.children().any(|n| n.is_element())
    {
        return Err(Error::UnsupportedParameters {
            element: node.tag_name().name().into(),
            detail: "RSA PKCS#1 v1.5 takes no parameters".into(),
        });
    }
    let value = base64_text(c.required("SignatureValue")?)?;
    c.finish()?;
    Ok(Signature { algorithm, value })
}

fn algorithm_of<'a>(node: Node<'a, '_>) -> Result<&'a str> {
    required_attr(node, "Algorithm")
}

/// A canonicalization method or transform that must carry no parameters
/// (an InclusiveNamespaces PrefixList would change the output).
fn c14n_mode(node: Node<'_, '_>) -> Result<Mode> {
    let uri = algorithm_of(node)?;
    let mode = Mode::from_uri(uri).ok_or_else(|| Error::UnsupportedAlgorithm {
        element: format!("ds:{}", node.tag_name().name()),
        uri: uri.into(),
    })?;
    if let Some(child) = node.children().find(|n| n.is_element()) {
        return Err(Error::UnsupportedParameters {
            element: format!("ds:{}", node.tag_name().name()),
            detail: format!("<{}> is not supported", child.tag_name().name()),
        });
    }
    Ok(mode)
}

/// Verifies an enveloped XML-DSig signature with one Reference to the whole
/// document (`URI=""`) or to the root element by its ID. The steps of XML-DSig core
/// validation in order (SignedInfo's shape, the reference's digest, then the signature),
/// kept in one function so that none can be skipped.
fn verify_dsig(
    doc: &Document<'_>,
    root: Node<'_, '_>,
    signature: Node<'_, '_>,
    signing_cert: &[u8],
    rsa_public: &[u8],
) -> Result<()> {
    let mut signer_public = rsa_public.to_vec();
    let mut c = Children::new(signature, NS_DSIG)?;
    let signed_info = c.required("SignedInfo")?;
    let value = base64_text(c.required("SignatureValue")?)?;
    if let Some(key_info) = c.optional("KeyInfo")? {
        let given: Vec<Vec<u8>> = key_info
            .descendants()
            .filter(|n| is(*n, NS_DSIG, "X509Certificate"))
            .map(base64_text)
            .collect::<Result<_>>()?;
        // A KPS signs its metadata with a communications key of its own ([MS-KPS] lets the
        // document name its signer): one certificate other than the SigningCertificate is
        // that signer. It proves the document whole, not who sent it; trust in the guardian
        // comes from how the owner obtained the file, as with a guardian's own signature.
        match given.as_slice() {
            [] => {}
            g if g.iter().any(|g| g.as_slice() == signing_cert) => {}
            [communications] => {
                let keys = cert::keys(communications, CertRole::Signing, None).map_err(|e| {
                    Error::MetadataSignature(format!("the KeyInfo certificate: {e}"))
                })?;
                signer_public = keys.rsa_public;
            }
            _ => {
                return Err(Error::MetadataSignature(
                    "KeyInfo names several certificates, none the SigningCertificate".into(),
                ));
            }
        }
    }

    let mut si = Children::new(signed_info, NS_DSIG)?;
    let c14n_method = c14n_mode(si.required("CanonicalizationMethod")?)?;
    let sm = si.required("SignatureMethod")?;
    let sm_uri = algorithm_of(sm)?;
    let algorithm =
        SignatureAlgorithm::from_uri(sm_uri).ok_or_else(|| Error::UnsupportedAlgorithm {
            element: "ds:SignatureMethod".into(),
            uri: sm_uri.into(),
        })?;
    let reference = si.required("Reference")?;
    if si.optional("Reference")?.is_some() {
        return Err(Error::MetadataSignature(
            "more than one Reference is not supported".into(),
        ));
    }
    si.finish()?;

    let uri = reference.attribute("URI").unwrap_or("");
    let whole_document = match uri.strip_prefix('#') {
        None if uri.is_empty() => true,
        Some(id)
            if ["ID", "Id", "id"]
                .iter()
                .any(|a| root.attribute(*a) == Some(id)) =>
        {
            false
        }
        _ => {
            return Err(Error::MetadataSignature(format!(
                "Reference URI {uri:?} does not name the Metadata document"
            )));
        }
    };
    let mut rc = Children::new(reference, NS_DSIG)?;
    let mut enveloped = false;
    // Without a canonicalization transform XML-DSig applies inclusive C14N to a node-set.
    let mut mode = Mode::Inclusive;
    if let Some(transforms) = rc.optional("Transforms")? {
        let mut tc = Children::new(transforms, NS_DSIG)?;
        while let Some(t) = tc.optional("Transform")? {
            if algorithm_of(t)? == ENVELOPED {
                enveloped = true;
            } else {
                mode = c14n_mode(t)?;
            }
        }
        tc.finish()?;
    }
    if !enveloped {
        return Err(Error::MetadataSignature(
            "the Reference lacks the enveloped-signature transform".into(),
        ));
    }
    let dm = rc.required("DigestMethod")?;
    let dm_uri = algorithm_of(dm)?;
    let hash = Hash::from_digest_uri(dm_uri).ok_or_else(|| Error::UnsupportedAlgorithm {
        element: "ds:DigestMethod".into(),
        uri: dm_uri.into(),
    })?;
    let digest_value = base64_text(rc.required("DigestValue")?)?;
    rc.finish()?;

    let content = if whole_document {
        c14n::canonicalize_document(mode, doc, Some(signature.id()))
    } else {
        c14n::canonicalize_element_with(mode, root, Some(signature.id()))
    };
    if hash.digest(&content) != digest_value {
        return Err(Error::MetadataSignature(
            "DigestValue does not match the document".into(),
        ));
    }
    let canonical_si = c14n::canonicalize_element_with(c14n_method, signed_info, None);
    if !algorithm.verify(&signer_public, &canonical_si, &value) {
        return Err(Error::BadSignature {
            kind: SignatureKind::MetadataDocument,
            wrapping: None,
        });
    }
    Ok(())
}
