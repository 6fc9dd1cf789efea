//! metadata.xml import (vmsec's and HGS-style documents): any bytes import or fail cleanly.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vmsec_kp::import_metadata("fuzz", data);
});
