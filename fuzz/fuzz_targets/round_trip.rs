//! The property every embedded-instance codec target checks: any text parses or fails
//! cleanly, and what parses survives serialize → parse → serialize unchanged.

use vmsec_cim::{Error, Instance};

pub fn check(
    text: &str,
    parse: fn(&str) -> Result<Instance, Error>,
    serialize: fn(&Instance) -> String,
) {
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
}
