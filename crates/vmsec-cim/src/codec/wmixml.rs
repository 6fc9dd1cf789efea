//! WMI DTD 2.0 (`GetText_(2)`): DSP0201 DTD 2.0 plus what Microsoft documents as "WMI-specific
//! extensions, such as embedded objects or scope".
//!
//! Differences from [`super::cimxml`] that this crate implements:
//! - embedded objects: `PROPERTY.OBJECT`/`VALUE.OBJECT` and `PROPERTY.OBJECTARRAY`/`VALUE.OBJECTARRAY`
//!   hold a nested `INSTANCE` element, where CIM DTD 2.0 carries a string of escaped XML.
//!   They are read into `Value::String` holding the nested instance's CIM-XML text, i.e. the
//!   CIM DTD 2.0 representation (this crate's `Value` has no object variant), so they are
//!   written back as strings;
//! - reference arrays: `PROPERTY.REFARRAY`/`VALUE.REFARRAY` (both writers use them, as CIM DTD 2.0
//!   has no reference-array property);
//! - the writer states `ARRAYSIZE` on every `PROPERTY.ARRAY` (optional in both DTDs; ignored on read).
//!
//! The reader is shared with [`super::cimxml`] and accepts both dialects. Scope and class (not
//! instance) text are not supported: methods take instances.

use super::dialect::Dialect;
use crate::error::Error;
use crate::instance::Instance;

/// Parses an `<INSTANCE>` in the WMI DTD 2.0 form (also accepts plain CIM-XML, a subset).
pub fn parse(s: &str) -> Result<Instance, Error> {
    super::read_xml::parse(s)
}

/// Serializes in the WMI DTD 2.0 form.
pub fn serialize(i: &Instance) -> String {
    super::write_xml::serialize(i, Dialect::Wmi)
}
