//! The wmixml embedded-instance codec (see round_trip.rs for the property).
#![no_main]
#[path = "round_trip.rs"]
mod round_trip;

libfuzzer_sys::fuzz_target!(|text: &str| {
    round_trip::check(
        text,
        vmsec_cim::codec::wmixml::parse,
        vmsec_cim::codec::wmixml::serialize,
    );
});
