//! The CIM intrinsic types.

use std::fmt;

/// A CIM intrinsic data type (DSP0004). Array-ness is carried separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CimType {
    /// `boolean`
    Boolean,
    /// `uint8`
    UInt8,
    /// `uint16`
    UInt16,
    /// `uint32`
    UInt32,
    /// `uint64`
    UInt64,
    /// `sint8`
    SInt8,
    /// `sint16`
    SInt16,
    /// `sint32`
    SInt32,
    /// `sint64`
    SInt64,
    /// `real32`
    Real32,
    /// `real64`
    Real64,
    /// `char16`
    Char16,
    /// `string`
    String,
    /// `datetime`
    DateTime,
    /// `reference` (written `ClassName REF` in MOF)
    Reference,
}

const ALL: [CimType; 15] = [
    CimType::Boolean,
    CimType::UInt8,
    CimType::UInt16,
    CimType::UInt32,
    CimType::UInt64,
    CimType::SInt8,
    CimType::SInt16,
    CimType::SInt32,
    CimType::SInt64,
    CimType::Real32,
    CimType::Real64,
    CimType::Char16,
    CimType::String,
    CimType::DateTime,
    CimType::Reference,
];

impl CimType {
    /// Every CIM type, in DSP0004 order.
    pub const ALL: [CimType; 15] = ALL;

    /// The DSP0004 name, as written in CIM-XML `TYPE` attributes and MOF.
    pub fn name(self) -> &'static str {
        match self {
            CimType::Boolean => "boolean",
            CimType::UInt8 => "uint8",
            CimType::UInt16 => "uint16",
            CimType::UInt32 => "uint32",
            CimType::UInt64 => "uint64",
            CimType::SInt8 => "sint8",
            CimType::SInt16 => "sint16",
            CimType::SInt32 => "sint32",
            CimType::SInt64 => "sint64",
            CimType::Real32 => "real32",
            CimType::Real64 => "real64",
            CimType::Char16 => "char16",
            CimType::String => "string",
            CimType::DateTime => "datetime",
            CimType::Reference => "reference",
        }
    }

    /// The type named `s`, ignoring ASCII case (MOF writes `Boolean`, CIM-XML `boolean`).
    pub fn from_name(s: &str) -> Option<CimType> {
        ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(s))
    }

    /// Whether values of this type are integers.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            CimType::UInt8
                | CimType::UInt16
                | CimType::UInt32
                | CimType::UInt64
                | CimType::SInt8
                | CimType::SInt16
                | CimType::SInt32
                | CimType::SInt64
        )
    }
}

impl fmt::Display for CimType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
