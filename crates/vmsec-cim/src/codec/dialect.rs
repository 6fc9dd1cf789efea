//! The two XML dialects: DMTF CIM DTD 2.0 (`GetText_(1)`) and WMI's extension of it (`GetText_(2)`).

/// Which XML dialect to read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// DMTF DSP0201 (CIM DTD 2.0).
    Cim,
    /// WMI DTD 2.0 extension.
    Wmi,
}
