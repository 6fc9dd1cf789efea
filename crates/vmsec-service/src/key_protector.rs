//! Which key protectors SetKeyProtector accepts.

use crate::ServiceError;

/// Largest key protector accepted. A KP with an owner and 16 guardians at RSA 4096 is about
/// 110 KB; this leaves room without letting a client fill the store.
pub const MAX_KP: usize = 1024 * 1024;

/// The MS-KPS namespace of the `Protector` element.
pub const KPS_NAMESPACE: &str = "http://schemas.microsoft.com/kps/2014/07";

/// Checks that `kp` is a key protector this service may store.
///
/// Until full verification (signatures, owner, chains) is wired in, this accepts exactly the
/// well-formed UTF-8 XML documents whose root is `Protector` in the MS-KPS namespace, with
/// an optional BOM and XML declaration, and refuses DTDs.
pub fn check(kp: &[u8]) -> Result<(), ServiceError> {
    if kp.is_empty() {
        return Err(ServiceError::InvalidKeyProtector(
            "the key protector is empty".into(),
        ));
    }
    if kp.len() > MAX_KP {
        return Err(ServiceError::InvalidKeyProtector(format!(
            "the key protector is {} bytes, more than the {MAX_KP} allowed",
            kp.len()
        )));
    }
    let body = kp.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(kp);
    let text = std::str::from_utf8(body).map_err(|e| {
        ServiceError::InvalidKeyProtector(format!("the key protector is not UTF-8: {e}"))
    })?;
    let doc = roxmltree::Document::parse(text).map_err(|e| {
        ServiceError::InvalidKeyProtector(format!("the key protector is not well-formed XML: {e}"))
    })?;
    let root = doc.root_element();
    if root.tag_name().name() != "Protector" || root.tag_name().namespace() != Some(KPS_NAMESPACE) {
        return Err(ServiceError::InvalidKeyProtector(format!(
            "the key protector's root element is {{{}}}{}, expected {{{KPS_NAMESPACE}}}Protector",
            root.tag_name().namespace().unwrap_or(""),
            root.tag_name().name()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_protector_in_the_kps_namespace_with_bom_and_declaration() {
        let kp = "\u{FEFF}<?xml version=\"1.0\" encoding=\"utf-8\"?>\
                  <Protector xmlns=\"http://schemas.microsoft.com/kps/2014/07\"><Wrappings/></Protector>";
        assert_eq!(check(kp.as_bytes()), Ok(()));
    }

    #[test]
    fn refuses_other_roots_namespaces_dtds_and_garbage() {
        for bad in [
            &b""[..],
            b"<Protector/>",
            b"<p:Protector xmlns:p=\"urn:other\"/>",
            b"<Wrappings xmlns=\"http://schemas.microsoft.com/kps/2014/07\"/>",
            b"<!DOCTYPE Protector [<!ENTITY a \"b\">]><Protector xmlns=\"http://schemas.microsoft.com/kps/2014/07\">&a;</Protector>",
            b"<Protector xmlns=\"http://schemas.microsoft.com/kps/2014/07\">",
            b"\xff\xfe<",
        ] {
            assert!(
                matches!(check(bad), Err(ServiceError::InvalidKeyProtector(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn refuses_a_key_protector_over_the_size_limit() {
        let mut kp = b"<Protector xmlns=\"http://schemas.microsoft.com/kps/2014/07\">".to_vec();
        kp.resize(MAX_KP + 1, b' ');
        assert!(
            matches!(check(&kp), Err(ServiceError::InvalidKeyProtector(m)) if m.contains("more than"))
        );
    }
}
