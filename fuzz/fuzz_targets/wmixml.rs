//! The wmixml embedded-instance codec: any text parses or fails cleanly, and what parses
//! survives serialize → parse → serialize unchanged.
#![no_main]
use vmsec_cim::codec::wmixml::{parse, serialize};

libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Ok(instance) = parse(text) {
        let once = serialize(&instance);
        let again =
            parse(&once).unwrap_or_else(|e| panic!("own output does not parse: {e}\n{once}"));
        assert_eq!(
            serialize(&again),
            once,
            "serialize → parse → serialize changed the text"
        );
    }
});
