//! Which key protectors SetKeyProtector accepts.

use crate::ServiceError;
use crate::error::KeyProtectorError;

/// Largest key protector accepted. A KP with an owner and 16 guardians at RSA 4096 is about
/// 110 KB; this leaves room without letting a client fill the store.
pub const MAX_KP: usize = 1024 * 1024;

/// The MS-KPS namespace of the `Protector` element.
pub const KPS_NAMESPACE: &str = "http://schemas.microsoft.com/kps/2014/07";

/// Checks that `kp` is a key protector this service may store: a `Protector` of the MS-KPS
/// namespace (optional BOM and XML declaration, no DTD) that passes every rule of
/// docs/specs/key-protector.md — structure, one owner, parent chains, certificate
/// signatures and the GuardianSignature. The error names the rule that failed.
pub fn check(kp: &[u8]) -> Result<(), ServiceError> {
    if kp.is_empty() {
        return Err(KeyProtectorError::Empty.into());
    }
    if kp.len() > MAX_KP {
        return Err(KeyProtectorError::TooLarge {
            size: kp.len(),
            limit: MAX_KP,
        }
        .into());
    }
    let protector = vmsec_kp::Protector::parse(kp).map_err(KeyProtectorError::Malformed)?;
    protector.verify().map_err(KeyProtectorError::Unverified)?;
    // Tells whoever watches (and the service tests) that a verification finished, and on
    // which thread: it must never be inside a store write.
    tracing::debug!(bytes = kp.len(), "key protector verified");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &[u8] = include_bytes!("../../vmsec-kp/testdata/golden-kp.xml");

    #[test]
    fn accepts_a_verified_protector_with_bom_and_declaration() {
        assert!(check(GOLDEN).is_ok());
        let with_bom = [b"\xEF\xBB\xBF".as_slice(), GOLDEN].concat();
        assert!(check(&with_bom).is_ok());
    }

    #[test]
    fn refuses_a_verified_protector_behind_two_boms_so_it_is_never_stored_as_received() {
        let two = [b"\xEF\xBB\xBF\xEF\xBB\xBF".as_slice(), GOLDEN].concat();
        assert!(
            matches!(check(&two), Err(e @ ServiceError::InvalidKeyProtector(_)) if e.to_string().contains("two byte-order marks"))
        );
    }

    #[test]
    fn refuses_a_protector_whose_signature_does_not_verify() {
        let text = String::from_utf8(GOLDEN.to_vec()).unwrap();
        // Change one character of the first certificate: its signatures no longer hold.
        let at = text.find("<SigningCertificate>").unwrap() + "<SigningCertificate>".len() + 40;
        let mut bytes = text.into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        assert!(matches!(
            check(&bytes),
            Err(ServiceError::InvalidKeyProtector(
                KeyProtectorError::Malformed(_) | KeyProtectorError::Unverified(_)
            ))
        ));
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
        assert!(matches!(
            check(&kp),
            Err(ServiceError::InvalidKeyProtector(
                KeyProtectorError::TooLarge { .. }
            ))
        ));
    }
}
