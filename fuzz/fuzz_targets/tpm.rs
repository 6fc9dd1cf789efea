//! Every decoder of TPM mode on the same bytes: the TCG event log (and its replay), the TPM
//! structures a host sends (TPMT_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE), the two attestation
//! requests, the challenge a host reads back, and a baseline file. None may panic.
#![no_main]

use vmsec_kps::msgs::tpm;
use vmsec_kps::tpm::Baseline;
use vmsec_kps::tpm::eventlog::EventLog;
use vmsec_kps::tpm::wire::{Attest, RsaPublic, rsassa_signature};

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    if let Ok(log) = EventLog::parse(bytes) {
        let _ = log.replay();
    }
    if let Ok(p) = RsaPublic::parse(bytes) {
        let _ = p.spki();
        let _ = p.name();
    }
    let _ = Attest::parse(bytes);
    let _ = rsassa_signature(bytes);
    let _ = tpm::parse_request(bytes);
    let _ = tpm::parse_challenge(bytes);
    if let Ok(b) = Baseline::parse(bytes) {
        assert_eq!(Baseline::parse(b.to_json().as_bytes()), Ok(b));
    }
});
