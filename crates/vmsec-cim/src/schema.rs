//! Class definitions for the classes vmsec serves, checking instances against them, and the
//! signatures of the methods vmsec serves ([`METHODS`]).
//!
//! Property names and types follow Microsoft's published `root\virtualization\v2` MOF
//! (WindowsVirtualization.V2.mof) including inherited CIM properties, and for
//! `MSFT_HgsClientConfiguration` the class of `root\Microsoft\Windows\Hgs`. Each class names
//! the WMI namespace it lives in ([`ClassDef::namespace`]): resource URIs, replies and
//! endpoint references are written from it.

use crate::cim_type::CimType;
use crate::instance::Instance;
use crate::value::Value;

mod associations;
mod classes;
mod methods;
mod served;

pub use associations::{ASSOCIATIONS, AssociationDef, End, association};
pub use methods::{METHODS, MethodDef, ParamDef, ReturnCodes, method};
pub use served::ServedClass;

/// The WMI namespace of the Hyper-V classes.
pub const VIRTUALIZATION_V2: &str = "root/virtualization/v2";
/// The WMI namespace of the guarded-fabric client classes (`root\Microsoft\Windows\Hgs`,
/// written as WS-Management resource URIs spell it).
pub const HGS: &str = "root/microsoft/windows/hgs";

/// A class: its name, its namespace and every property (inherited ones included).
#[derive(Debug, PartialEq, Eq)]
pub struct ClassDef {
    /// Class name as Microsoft spells it.
    pub name: &'static str,
    /// The WMI namespace it lives in, `/`-separated and lowercase ([`VIRTUALIZATION_V2`]);
    /// clients may spell it in any case.
    pub namespace: &'static str,
    /// All properties, keys first.
    pub properties: &'static [PropertyDef],
}

/// One property of a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PropertyDef {
    /// Property name as Microsoft spells it.
    pub name: &'static str,
    /// Scalar type (of the elements, for arrays).
    pub cim_type: CimType,
    /// Whether the property is an array.
    pub is_array: bool,
    /// Whether the property is a key of the class.
    pub is_key: bool,
}

/// How an instance fails its class definition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The class has no property of this name.
    #[error("class {class} has no property {property}")]
    UnknownProperty {
        /// Class checked against.
        class: String,
        /// Offending property, as written.
        property: String,
    },
    /// The property's type (or array-ness) differs from the class definition.
    #[error("property {property} is {found}, expected {expected}")]
    WrongType {
        /// Offending property.
        property: String,
        /// Type per the class, `uint8[]` for arrays.
        expected: String,
        /// Type found.
        found: String,
    },
    /// A numeric value does not fit the property's type.
    #[error("property {property}: {value} does not fit in {cim_type}")]
    OutOfRange {
        /// Offending property.
        property: String,
        /// The value, as text.
        value: String,
        /// The property's type.
        cim_type: CimType,
    },
    /// The instance is of another class.
    #[error("instance of {found}, expected {expected}")]
    WrongClass {
        /// Class checked against.
        expected: String,
        /// The instance's class.
        found: String,
    },
}

impl SchemaError {
    /// The property concerned, if any.
    pub fn property(&self) -> Option<&str> {
        match self {
            SchemaError::UnknownProperty { property, .. }
            | SchemaError::WrongType { property, .. }
            | SchemaError::OutOfRange { property, .. } => Some(property),
            SchemaError::WrongClass { .. } => None,
        }
    }
}

/// Every class vmsec knows.
pub fn classes() -> &'static [ClassDef] {
    classes::ALL
}

/// The definition of class `name`, ignoring ASCII case. Class names are unique across the
/// namespaces served.
pub fn class(name: &str) -> Option<&'static ClassDef> {
    classes::ALL
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))
}

fn type_text(t: CimType, is_array: bool) -> String {
    if is_array {
        format!("{}[]", t.name())
    } else {
        t.name().to_owned()
    }
}

impl PropertyDef {
    fn type_text(&self) -> String {
        type_text(self.cim_type, self.is_array)
    }
}

impl ClassDef {
    /// The property `name`, ignoring ASCII case.
    pub fn property(&self, name: &str) -> Option<&PropertyDef> {
        self.properties
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Whether `namespace` (as a client wrote it, `/`- or `\`-separated) is this class's.
    pub fn in_namespace(&self, namespace: &str) -> bool {
        let given = namespace.trim_matches(|c| c == '/' || c == '\\');
        given.len() == self.namespace.len()
            && given
                .bytes()
                .zip(self.namespace.bytes())
                .all(|(g, n)| g.eq_ignore_ascii_case(&n) || (g == b'\\' && n == b'/'))
    }

    /// The key properties, in declaration order.
    pub fn keys(&self) -> impl Iterator<Item = &PropertyDef> {
        self.properties.iter().filter(|p| p.is_key)
    }

    /// Checks that `inst` is of this class and every ordinary property exists with the declared
    /// type, array-ness and a value that fits. System properties (`__PATH`...) are not checked;
    /// missing properties are allowed (clients send partial instances).
    pub fn check(&self, inst: &Instance) -> Result<(), SchemaError> {
        if !self.name.eq_ignore_ascii_case(inst.class_name()) {
            return Err(SchemaError::WrongClass {
                expected: self.name.to_owned(),
                found: inst.class_name().to_owned(),
            });
        }
        for p in inst.properties() {
            let def = self
                .property(&p.name)
                .ok_or_else(|| SchemaError::UnknownProperty {
                    class: self.name.to_owned(),
                    property: p.name.clone(),
                })?;
            let wrong = |found: String| SchemaError::WrongType {
                property: p.name.clone(),
                expected: def.type_text(),
                found,
            };
            match &p.value {
                Value::Array(items) => {
                    if !def.is_array {
                        return Err(wrong(type_text(p.cim_type, true)));
                    }
                    for item in items {
                        check_scalar(def, &p.name, item)?;
                    }
                }
                Value::Bytes(bytes) => {
                    if !def.is_array {
                        return Err(wrong(type_text(p.cim_type, true)));
                    }
                    // Every element has the one type: checking the first checks them all.
                    if !bytes.is_empty() {
                        check_scalar(def, &p.name, &Value::UInt8(bytes[0]))?;
                    }
                }
                Value::Null => {}
                scalar => {
                    if def.is_array {
                        return Err(wrong(type_text(p.cim_type, false)));
                    }
                    check_scalar(def, &p.name, scalar)?;
                }
            }
            if p.cim_type != def.cim_type || p.is_array != def.is_array {
                return Err(wrong(type_text(p.cim_type, p.is_array)));
            }
        }
        Ok(())
    }
}

/// One scalar against the property's declared type: integers are range-checked whatever their
/// variant, so `UInt64(300)` for a uint8 reports [`SchemaError::OutOfRange`], not a type mismatch.
fn check_scalar(def: &PropertyDef, name: &str, v: &Value) -> Result<(), SchemaError> {
    if v.is_null() {
        return Ok(());
    }
    let wide = v
        .as_u64()
        .map(i128::from)
        .or_else(|| v.as_i64().map(i128::from));
    if let (Some(n), true) = (wide, def.cim_type.is_integer())
        && !fits(def.cim_type, n)
    {
        return Err(SchemaError::OutOfRange {
            property: name.to_owned(),
            value: n.to_string(),
            cim_type: def.cim_type,
        });
    }
    match v.cim_type() {
        Some(t) if t == def.cim_type => Ok(()),
        found => Err(SchemaError::WrongType {
            property: name.to_owned(),
            expected: def.type_text(),
            found: found.map_or("null", CimType::name).to_owned(),
        }),
    }
}

/// Whether integer `n` fits integer type `t`.
pub(crate) fn fits(t: CimType, n: i128) -> bool {
    let (lo, hi): (i128, i128) = match t {
        CimType::UInt8 => (0, u8::MAX.into()),
        CimType::UInt16 => (0, u16::MAX.into()),
        CimType::UInt32 => (0, u32::MAX.into()),
        CimType::UInt64 => (0, u64::MAX.into()),
        CimType::SInt8 => (i8::MIN.into(), i8::MAX.into()),
        CimType::SInt16 => (i16::MIN.into(), i16::MAX.into()),
        CimType::SInt32 => (i32::MIN.into(), i32::MAX.into()),
        CimType::SInt64 => (i64::MIN.into(), i64::MAX.into()),
        _ => return false,
    };
    (lo..=hi).contains(&n)
}
