//! The deterministic Protector writer: same model in, same bytes out.
//! Two-space indentation, namespaces declared where the profile shows them.

use crate::crypto::{
    Hash, KeyEncryption, NS_DSIG, NS_VMSEC, NS_XENC11, Signature, URI_HKDF, URI_HMAC_SHA256,
    URI_RSA_OAEP, URI_RSA_OAEP_MGF1P,
};
use crate::protector::model::{GuardianSignature, NS_KPS, TransportKeySignature, Wrapping};
use crate::xml::{b64, escape_attr, escape_text};

struct Writer {
    out: String,
    depth: usize,
}

impl Writer {
    fn new() -> Self {
        Self {
            out: String::new(),
            depth: 0,
        }
    }

    fn indent(&mut self) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn start_tag(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            escape_attr(v, &mut self.out);
            self.out.push('"');
        }
    }

    fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.start_tag(name, attrs);
        self.out.push('>');
        self.depth += 1;
    }

    fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    fn leaf(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.start_tag(name, attrs);
        self.out.push('>');
        escape_text(text, &mut self.out);
        self.out.push_str("</");
        // Close with the bare qualified name (attributes never belong in an end tag).
        self.out.push_str(name);
        self.out.push('>');
    }

    fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.start_tag(name, attrs);
        self.out.push_str("/>");
    }

    fn signature(&mut self, sig: &Signature) {
        self.open("Signature", &[("Algorithm", sig.algorithm.uri())]);
        self.leaf("SignatureValue", &[], &b64(&sig.value));
        self.close("Signature");
    }

    fn wrapping(&mut self, w: &Wrapping) {
        self.open("Wrapping", &[]);
        self.leaf("Id", &[], &w.id.to_string());
        self.leaf("SigningCertificate", &[], &b64(&w.signing_cert));
        let parent = w.parent_id.to_string();
        self.open(
            "SigningCertificateSignature",
            &[("ParentWrappingId", &parent)],
        );
        self.signature(&w.signing_cert_signature);
        self.close("SigningCertificateSignature");
        self.leaf("EncryptionCertificate", &[], &b64(&w.encryption_cert));
        self.open("EncryptionCertificateSignature", &[]);
        self.signature(&w.encryption_cert_signature);
        self.close("EncryptionCertificateSignature");
        self.open("TransportKey", &[]);
        let KeyEncryption::RsaOaep { hash, uri_mgf1p } = w.key_encryption;
        let uri = if uri_mgf1p {
            URI_RSA_OAEP_MGF1P
        } else {
            URI_RSA_OAEP
        };
        self.open("EncryptedData", &[("Algorithm", uri)]);
        // SHA-1/MGF1-SHA-1 is the default of both URIs: written without Parameters.
        if hash != Hash::Sha1 {
            self.open("Parameters", &[]);
            self.empty(
                "ds:DigestMethod",
                &[("xmlns:ds", NS_DSIG), ("Algorithm", hash.digest_uri())],
            );
            if !uri_mgf1p {
                self.empty(
                    "xenc11:MGF",
                    &[("xmlns:xenc11", NS_XENC11), ("Algorithm", hash.mgf_uri())],
                );
            }
            self.close("Parameters");
        }
        self.leaf("CipherValue", &[], &b64(&w.encrypted_key));
        self.close("EncryptedData");
        self.close("TransportKey");
        self.close("Wrapping");
    }

    fn wrappings(&mut self, wrappings: &[Wrapping]) {
        self.open("Wrappings", &[]);
        for w in wrappings {
            self.wrapping(w);
        }
        self.close("Wrappings");
    }
}

/// The whole `Protector` document.
pub fn protector(
    max_offline_unwraps: u32,
    wrappings: &[Wrapping],
    tks: &TransportKeySignature,
    gs: &GuardianSignature,
) -> String {
    let mut w = Writer::new();
    let max = max_offline_unwraps.to_string();
    w.open(
        "Protector",
        &[("xmlns", NS_KPS), ("MaxOfflineUnwraps", &max)],
    );
    w.wrappings(wrappings);
    w.open("TransportKeySignature", &[]);
    w.open("KeyDerivationMethod", &[("Algorithm", URI_HKDF)]);
    w.open("Parameters", &[]);
    w.leaf("v:Salt", &[("xmlns:v", NS_VMSEC)], &b64(&tks.kdf.salt));
    w.leaf(
        "v:Info",
        &[("xmlns:v", NS_VMSEC)],
        &String::from_utf8_lossy(&tks.kdf.info),
    );
    w.close("Parameters");
    w.close("KeyDerivationMethod");
    w.open("Signature", &[("Algorithm", URI_HMAC_SHA256)]);
    w.leaf("SignatureValue", &[], &b64(&tks.mac));
    w.close("Signature");
    w.close("TransportKeySignature");
    let id = gs.wrapping_id.to_string();
    w.open("GuardianSignature", &[("WrappingId", &id)]);
    w.signature(&gs.signature);
    w.close("GuardianSignature");
    w.close("Protector");
    w.out.push('\n');
    w.out
}
