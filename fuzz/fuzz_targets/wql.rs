//! The WQL filter parser and its evaluation: any text gives a query or an error, never a
//! panic, and a parsed clause evaluates over an instance (LIKE patterns included) without
//! one either.
#![no_main]
use vmsec_cim::{CimType, Instance, Value};
use vmsec_wsman::wql::{Filter, Query, parse};

libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Ok(Query::Select {
        clause: Some(clause),
        ..
    }) = parse(text)
    {
        let vm = Instance::new("Msvm_ComputerSystem")
            .with(
                "CreationClassName",
                CimType::String,
                Value::String("Msvm_ComputerSystem".into()),
            )
            .with("Name", CimType::String, Value::String("HV01".into()))
            .with("EnabledState", CimType::UInt16, Value::UInt16(2))
            .with("Caption", CimType::String, Value::Null);
        let _ = Filter::new(clause).on_server("HV01").matches(&vm);
    }
});
