//! Limits applied to hostile input. Every codec enforces all of them.

/// Largest accepted embedded instance, in bytes of UTF-8 (UTF-16 input is measured after decoding).
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;

/// Deepest accepted element nesting (XML) or brace/reference nesting (MOF).
/// A GetText_(1) instance with a reference property nests 8 deep; 32 leaves room.
pub const MAX_DEPTH: usize = 32;

/// Most properties (ordinary plus system) in one instance.
pub const MAX_PROPERTIES: usize = 1024;

/// Longest array. A key protector carried as uint8[] is ~16 KiB; 65536 leaves room.
pub const MAX_ARRAY_LEN: usize = 65536;

/// Longest string value, in bytes of UTF-8.
pub const MAX_STRING_BYTES: usize = 256 * 1024;

/// Most key bindings in one object path.
pub const MAX_KEYS: usize = 64;

/// Most XML nodes roxmltree may build; bounds memory before our own checks run.
pub(crate) const MAX_XML_NODES: u32 = 400_000;

/// Most attributes on one element of an XML instance (CIM-XML needs 3 per element). Bounded
/// because the XML parser checks attributes for duplicates pairwise.
pub const MAX_XML_ATTRIBUTES: usize = 64;

/// Most namespace declarations in one XML instance. CIM-XML and WMI-XML declare none; each
/// declaring element costs the parser a copy of the namespaces in scope.
pub const MAX_XML_NAMESPACE_DECLARATIONS: usize = 16;
