//! How a start reaches the key protector's transport keys in HGS mode: the fabric's KPS rolls
//! it ([`KeyRelease`]), and what comes back is checked before anything is sealed under it.

use vmsec_kp::Protector;

use crate::ServiceError;

/// Where a start gets the key protector's transport key, and its roll.
#[derive(Clone, Copy)]
pub enum Unlock<'a> {
    /// This host's guardians unwrap and roll it (local mode).
    Local,
    /// The fabric's Key Protection Service rolls it for this attested host (HGS mode).
    Fabric(&'a dyn KeyRelease),
}

/// A Key Protection Service as a start sees it: one RollTransportKey of `ingress`, giving
/// TK1, TK2 and the rolled protector. How it is reached (attestation, URLs, TLS) is the
/// implementor's; its errors say why, with the KPS's own code.
pub trait KeyRelease {
    fn roll(&self, ingress: &[u8]) -> Result<vmsec_kps::host::Release, ServiceError>;
}

/// What the KPS returned, checked before anything is sealed under it: the egress protector
/// verifies, wraps for exactly the certificates the ingress did, and its transport key is the
/// TK2 released (its TransportKeySignature), and TK1 is the ingress's.
pub(super) fn check_egress(
    ingress: &Protector,
    release: &vmsec_kps::host::Release,
) -> Result<Vec<u8>, ServiceError> {
    let bad = |m: String| {
        ServiceError::InvalidState(format!(
            "the Key Protection Service returned an unusable roll ({m}); nothing was changed"
        ))
    };
    let egress =
        Protector::parse(&release.egress).map_err(|e| bad(format!("egress protector: {e}")))?;
    egress
        .verify()
        .map_err(|e| bad(format!("egress protector: {e}")))?;
    let certs = |p: &Protector| {
        let mut c: Vec<Vec<u8>> = p
            .wrappings()
            .iter()
            .map(|w| w.encryption_cert.clone())
            .collect();
        c.sort();
        c
    };
    if certs(ingress) != certs(&egress) {
        return Err(bad("its wrappings are not the ingress protector's".into()));
    }
    let opens = |p: &Protector, tk: &vmsec_kp::TransportKey| {
        let tks = p.transport_key_signature();
        tk.verify(&tks.kdf, p.canonical_wrappings(), &tks.mac)
            .unwrap_or(false)
    };
    if !opens(ingress, &release.keys.ingress) {
        return Err(bad(
            "TK1 is not the current protector's transport key".into()
        ));
    }
    if !opens(&egress, &release.keys.egress) {
        return Err(bad("TK2 is not the egress protector's transport key".into()));
    }
    Ok(release.egress.clone())
}
