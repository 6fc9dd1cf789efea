//! Every decoder of the guarded fabric's wire, on the same bytes: what a stranger sends the
//! KPS (RollTransportKeyRequest XML, AttestationRequest JSON) and what a host reads back
//! (replies, errors, the PKCS#7 signer bundle). None may panic; each answers or refuses.
#![no_main]

use vmsec_kps::msgs::{attestation, pkcs7, roll};

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    if let Ok(req) = roll::parse_request(bytes) {
        // What was accepted writes back to a request that reads the same.
        assert_eq!(roll::parse_request(roll::write_request(&req).as_bytes()).as_ref(), Ok(&req));
    }
    let _ = attestation::parse_host_key_request(bytes);
    let _ = attestation::parse_reply(bytes);
    let _ = attestation::parse_signing_certificates_reply(bytes);
    let _ = roll::parse_response(bytes);
    let _ = roll::parse_error(bytes);
    let _ = pkcs7::certificates(bytes);
});
