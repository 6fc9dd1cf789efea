//! The key-protector parser and verifier: any bytes are parsed, and what parses is verified,
//! without a panic.
#![no_main]
use vmsec_kp::Protector;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Protector::parse(data) {
        let _ = p.verify();
    }
});
