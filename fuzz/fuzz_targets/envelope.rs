//! The SOAP envelope parser: any bytes give a typed request or a parse error, never a panic;
//! and a Get its shortcut reads (no tree) is the request the tree reads.
#![no_main]
use vmsec_wsman::envelope;
use vmsec_wsman::wire::quick;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let full = envelope::parse_tree(data);
    if let Some(read) = quick::get(data) {
        assert_eq!(full, Ok(read));
    }
});
