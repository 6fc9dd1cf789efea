//! Instances: a class name and its named, typed properties.

use crate::cim_type::CimType;
use crate::value::Value;

/// One property of an instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    /// Property name, as written.
    pub name: String,
    /// Scalar type (of the elements, for arrays).
    pub cim_type: CimType,
    /// Whether the property is declared as an array (its value is `Array` or `Null`).
    pub is_array: bool,
    /// The value.
    pub value: Value,
}

impl Property {
    /// A property whose array-ness follows its value (an array value → array).
    pub fn new(name: impl Into<String>, cim_type: CimType, value: Value) -> Self {
        let is_array = value.is_array();
        Property {
            name: name.into(),
            cim_type,
            is_array,
            value,
        }
    }

    /// Whether it is written as an array: by its value, or by its declaration when null.
    pub fn holds_array(&self) -> bool {
        match &self.value {
            Value::Null => self.is_array,
            v => v.is_array(),
        }
    }

    /// Whether this is a WMI system property (`__PATH`, `__CLASS`, ...).
    pub fn is_system(&self) -> bool {
        is_system_name(&self.name)
    }
}

/// Whether `name` is a WMI system property name (starts with `__`).
pub fn is_system_name(name: &str) -> bool {
    name.starts_with("__")
}

/// An instance of a CIM class. Ordinary properties keep their order; WMI system properties
/// (`__PATH`, `__GENUS`, ...) are kept apart so that round trips compare what the client meant.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    class_name: String,
    properties: Vec<Property>,
    system_properties: Vec<Property>,
}

impl Instance {
    /// An instance of `class_name` with no properties.
    pub fn new(class_name: impl Into<String>) -> Self {
        Instance {
            class_name: class_name.into(),
            properties: Vec::new(),
            system_properties: Vec::new(),
        }
    }

    /// The class name, as written.
    pub fn class_name(&self) -> &str {
        &self.class_name
    }

    /// Ordinary properties, in order.
    pub fn properties(&self) -> &[Property] {
        &self.properties
    }

    /// WMI system properties (`__PATH`, `__CLASS`, ...), in order.
    pub fn system_properties(&self) -> &[Property] {
        &self.system_properties
    }

    /// About how much memory it takes: itself, its properties and what they point to.
    pub fn heap_bytes(&self) -> usize {
        let property =
            |p: &Property| std::mem::size_of::<Property>() + p.name.len() + p.value.heap_bytes();
        std::mem::size_of::<Instance>()
            + self.class_name.len()
            + self.properties.iter().map(property).sum::<usize>()
            + self.system_properties.iter().map(property).sum::<usize>()
    }

    /// The property named `name`, ignoring ASCII case as WMI does. System names look in the system list.
    pub fn get(&self, name: &str) -> Option<&Property> {
        self.list(name)
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The value of property `name`, ignoring ASCII case.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.get(name).map(|p| &p.value)
    }

    /// Adds `p`, replacing in place a property of the same name (ASCII case-insensitive).
    /// Names starting with `__` go to the system properties.
    pub fn push(&mut self, p: Property) {
        let list = if p.is_system() {
            &mut self.system_properties
        } else {
            &mut self.properties
        };
        match list
            .iter_mut()
            .find(|q| q.name.eq_ignore_ascii_case(&p.name))
        {
            Some(slot) => *slot = p,
            None => list.push(p),
        }
    }

    /// Builder form of [`Instance::push`]; array-ness follows the value.
    pub fn with(mut self, name: &str, cim_type: CimType, value: Value) -> Self {
        self.push(Property::new(name, cim_type, value));
        self
    }

    /// Removes and returns property `name` (ASCII case-insensitive).
    pub fn remove(&mut self, name: &str) -> Option<Property> {
        let list = if is_system_name(name) {
            &mut self.system_properties
        } else {
            &mut self.properties
        };
        let i = list
            .iter()
            .position(|p| p.name.eq_ignore_ascii_case(name))?;
        Some(list.remove(i))
    }

    /// Drops the system properties, e.g. before comparing with an instance from MOF (which has none).
    pub fn without_system_properties(mut self) -> Self {
        self.system_properties.clear();
        self
    }

    /// Total properties, ordinary and system.
    pub fn len(&self) -> usize {
        self.properties.len() + self.system_properties.len()
    }

    /// Whether there are no properties at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn list(&self, name: &str) -> &[Property] {
        if is_system_name(name) {
            &self.system_properties
        } else {
            &self.properties
        }
    }
}
