//! The SOAP envelope parser: any bytes give a typed request or a parse error, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vmsec_wsman::envelope::parse(data);
});
