//! CIM-XML, DMTF DSP0201 DTD 2.0: what WMI's `GetText_(1)`, Hyper-V's PowerShell module and
//! libvirt's hyperv driver send.
//!
//! Parsing also accepts the WMI DTD 2.0 elements (see [`super::wmixml`]) so that a client
//! that mixes them is not refused for it.

use super::dialect::Dialect;
use crate::error::Error;
use crate::instance::Instance;

/// Parses an `<INSTANCE>` (optionally inside `VALUE.NAMEDOBJECT`/`VALUE.OBJECTWITHPATH`/... wrappers).
pub fn parse(s: &str) -> Result<Instance, Error> {
    super::read_xml::parse(s)
}

/// Serializes as CIM-XML `<INSTANCE>`; system properties carry `CLASSORIGIN="___SYSTEM"`.
pub fn serialize(i: &Instance) -> String {
    super::write_xml::serialize(i, Dialect::Cim)
}
