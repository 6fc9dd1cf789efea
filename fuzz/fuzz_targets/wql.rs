//! The WQL filter parser: any text gives a query or an error, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    let _ = vmsec_wsman::wql::parse(text);
});
