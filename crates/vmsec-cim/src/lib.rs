//! CIM values and instances for vmsec, and the codecs for Hyper-V's embedded-instance text.
//!
//! Every `Msvm_SecurityService` method takes its `SecuritySettingData` argument as an embedded
//! instance: an object serialized to text by the client as CIM-XML (`GetText_(1)`), WMI-XML
//! (`GetText_(2)`) or MOF. [`parse_embedded_instance`] reads any of them into an [`Instance`];
//! [`schema`] checks it against the classes vmsec serves. Pure: no I/O, no async.
//!
//! ```
//! use vmsec_cim::{Value, codec::mof, parse_embedded_instance, schema};
//!
//! let text = r#"<INSTANCE CLASSNAME="Msvm_SecuritySettingData">
//!   <PROPERTY NAME="__GENUS" CLASSORIGIN="___SYSTEM" TYPE="sint32"><VALUE>2</VALUE></PROPERTY>
//!   <PROPERTY NAME="TpmEnabled" TYPE="boolean"><VALUE>TRUE</VALUE></PROPERTY>
//! </INSTANCE>"#;
//! let inst = parse_embedded_instance(text)?;
//! schema::class(inst.class_name()).expect("served class").check(&inst)?;
//! assert_eq!(inst.value("tpmenabled").and_then(Value::as_bool), Some(true));
//! assert_eq!(inst.properties().len(), 1); // __GENUS is in system_properties()
//! assert_eq!(parse_embedded_instance(&mof::serialize(&inst))?, inst.without_system_properties());
//! # Ok::<(), vmsec_cim::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cim_type;
mod datetime;
mod detect;
mod error;
mod instance;
pub mod limits;
mod path;
mod value;

pub mod codec;
pub mod schema;

pub use cim_type::CimType;
pub use datetime::CimDateTime;
pub use detect::{Format, detect_format, parse_embedded_instance, parse_embedded_instance_bytes};
pub use error::{Error, ErrorKind, Position};
pub use instance::{Instance, Property, is_system_name};
pub use path::ObjectPath;
pub use schema::SchemaError;
pub use value::Value;
