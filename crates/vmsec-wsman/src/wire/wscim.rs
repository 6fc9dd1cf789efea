//! The WS-CIM mapping (DSP0230) of instances, values and endpoint references, written
//! straight into the reply buffer.

use vmsec_cim::{Instance, ObjectPath, Value};

use crate::wire::ns;
use crate::wire::xmlw;

/// A name that cannot be written as an XML element name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid XML element name")]
pub struct BadName(pub String);

/// Whether `name` can stand as the local part of an element name. CIM names are
/// identifiers, so ASCII letters, digits and `_` (not leading a digit) are enough.
pub fn is_element_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn check(name: &str) -> Result<(), BadName> {
    if is_element_name(name) {
        Ok(())
    } else {
        Err(BadName(name.to_owned()))
    }
}

/// A capacity guess for the XML of `value` under property `name`, so that large arrays
/// are written into a buffer that never reallocates.
pub fn estimate_value(name: &str, value: &Value) -> usize {
    let tags = 2 * name.len() + 8;
    match value {
        Value::Null => tags + 20,
        Value::Array(items) => {
            items.len() * (tags + 4) + items.iter().map(scalar_estimate).sum::<usize>()
        }
        Value::Bytes(bytes) => estimate_bytes(name, bytes),
        v => tags + scalar_estimate(v),
    }
}

/// The exact length of the XML [`property`] writes for a `Value::Bytes`.
pub fn estimate_bytes(name: &str, bytes: &[u8]) -> usize {
    // `<p:` name `>` … `</p:` name `>`
    let tags = 2 * name.len() + 9;
    bytes
        .iter()
        .map(|&b| tags + DECIMAL[usize::from(b)].len())
        .sum()
}

fn scalar_estimate(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len() + s.len() / 8,
        Value::Reference(p) => 400 + p.keys.len() * 120,
        Value::DateTime(_) => 80,
        _ => 24,
    }
}

/// A capacity guess for the XML of a whole instance.
pub fn estimate_instance(inst: &Instance) -> usize {
    200 + inst
        .properties()
        .iter()
        .map(|p| estimate_value(&p.name, &p.value))
        .sum::<usize>()
}

/// Writes `<p:Class xmlns:p="…">` with one child per property.
pub fn instance(out: &mut String, inst: &Instance) -> Result<(), BadName> {
    let class = inst.class_name();
    check(class)?;
    out.push_str("<p:");
    out.push_str(class);
    out.push_str(" xmlns:p=\"");
    out.push_str(&ns::class_uri(class));
    out.push_str("\">");
    for p in inst.properties() {
        property(out, &p.name, &p.value)?;
    }
    out.push_str("</p:");
    out.push_str(class);
    out.push('>');
    Ok(())
}

/// Writes one property (or out parameter) as `p:`-prefixed elements: one element per
/// array item, `xsi:nil="true"` for null, nothing for an empty array.
pub fn property(out: &mut String, name: &str, value: &Value) -> Result<(), BadName> {
    check(name)?;
    match value {
        Value::Array(items) => {
            for item in items {
                element(out, name, item);
            }
        }
        Value::Bytes(bytes) => write_bytes(out, name, bytes),
        v => element(out, name, v),
    }
    Ok(())
}

/// A `uint8[]` held as bytes: one element per byte, as for a `Value::Array` of `UInt8`s.
pub(crate) fn write_bytes(out: &mut String, name: &str, bytes: &[u8]) {
    for &b in bytes {
        out.push_str("<p:");
        out.push_str(name);
        out.push('>');
        out.push_str(DECIMAL[usize::from(b)]);
        out.push_str("</p:");
        out.push_str(name);
        out.push('>');
    }
}

/// The decimal text of every byte value.
static DECIMAL: [&str; 256] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32",
    "33", "34", "35", "36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46", "47", "48",
    "49", "50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61", "62", "63", "64",
    "65", "66", "67", "68", "69", "70", "71", "72", "73", "74", "75", "76", "77", "78", "79", "80",
    "81", "82", "83", "84", "85", "86", "87", "88", "89", "90", "91", "92", "93", "94", "95", "96",
    "97", "98", "99", "100", "101", "102", "103", "104", "105", "106", "107", "108", "109", "110",
    "111", "112", "113", "114", "115", "116", "117", "118", "119", "120", "121", "122", "123",
    "124", "125", "126", "127", "128", "129", "130", "131", "132", "133", "134", "135", "136",
    "137", "138", "139", "140", "141", "142", "143", "144", "145", "146", "147", "148", "149",
    "150", "151", "152", "153", "154", "155", "156", "157", "158", "159", "160", "161", "162",
    "163", "164", "165", "166", "167", "168", "169", "170", "171", "172", "173", "174", "175",
    "176", "177", "178", "179", "180", "181", "182", "183", "184", "185", "186", "187", "188",
    "189", "190", "191", "192", "193", "194", "195", "196", "197", "198", "199", "200", "201",
    "202", "203", "204", "205", "206", "207", "208", "209", "210", "211", "212", "213", "214",
    "215", "216", "217", "218", "219", "220", "221", "222", "223", "224", "225", "226", "227",
    "228", "229", "230", "231", "232", "233", "234", "235", "236", "237", "238", "239", "240",
    "241", "242", "243", "244", "245", "246", "247", "248", "249", "250", "251", "252", "253",
    "254", "255",
];

fn element(out: &mut String, name: &str, v: &Value) {
    out.push_str("<p:");
    out.push_str(name);
    if matches!(v, Value::Null | Value::Array(_) | Value::Bytes(_)) {
        // Arrays cannot nest in CIM; a nested one is written as null rather than flattened.
        out.push_str(" xsi:nil=\"true\"/>");
        return;
    }
    out.push('>');
    scalar(out, v);
    out.push_str("</p:");
    out.push_str(name);
    out.push('>');
}

/// Writes the content of a scalar: XSD lexical forms, `cim:Datetime` for datetimes and
/// the endpoint reference for references.
fn scalar(out: &mut String, v: &Value) {
    match v {
        Value::Null | Value::Array(_) | Value::Bytes(_) => {}
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::UInt8(n) => xmlw::uint(out, u64::from(*n)),
        Value::UInt16(n) => xmlw::uint(out, u64::from(*n)),
        Value::UInt32(n) => xmlw::uint(out, u64::from(*n)),
        Value::UInt64(n) => xmlw::uint(out, *n),
        Value::SInt8(n) => xmlw::int(out, i64::from(*n)),
        Value::SInt16(n) => xmlw::int(out, i64::from(*n)),
        Value::SInt32(n) => xmlw::int(out, i64::from(*n)),
        Value::SInt64(n) => xmlw::int(out, *n),
        Value::Real32(_) | Value::Real64(_) => {
            if let Some(text) = v.scalar_text() {
                out.push_str(&text);
            }
        }
        Value::Char16(c) => {
            let mut buf = [0u8; 4];
            xmlw::text(out, c.encode_utf8(&mut buf));
        }
        Value::String(s) => xmlw::text(out, s),
        Value::DateTime(d) => {
            out.push_str("<cim:Datetime>");
            out.push_str(&d.to_string());
            out.push_str("</cim:Datetime>");
        }
        Value::Reference(path) => reference(out, path),
    }
}

/// Writes the content of an endpoint reference to `path` (`wsa:Address` +
/// `wsa:ReferenceParameters`).
pub fn reference(out: &mut String, path: &ObjectPath) {
    let namespace = path
        .namespace
        .as_deref()
        .unwrap_or_else(|| ns::namespace_of(&path.class_name));
    epr_begin(out, namespace, &path.class_name);
    for (name, value) in &path.keys {
        if let Some(text) = value.scalar_text() {
            selector(out, name, &text);
        }
    }
    epr_end(out, namespace);
}

/// Writes the endpoint reference of `inst`, its selectors being the class's key properties
/// (every served class has a definition, so keys come from the schema).
pub fn instance_reference(out: &mut String, inst: &Instance) {
    let class = inst.class_name();
    let namespace = ns::namespace_of(class);
    epr_begin(out, namespace, class);
    if let Some(def) = vmsec_cim::schema::class(class) {
        for key in def.keys() {
            if let Some(text) = inst.value(key.name).and_then(Value::scalar_text) {
                selector(out, key.name, &text);
            }
        }
    }
    epr_end(out, namespace);
}

/// Writes the endpoint reference of the `Msvm_ConcreteJob` with `instance_id`.
pub fn job_reference(out: &mut String, instance_id: &str) {
    let namespace = ns::namespace_of("Msvm_ConcreteJob");
    epr_begin(out, namespace, "Msvm_ConcreteJob");
    selector(out, "InstanceID", instance_id);
    epr_end(out, namespace);
}

fn epr_begin(out: &mut String, namespace: &str, class: &str) {
    out.push_str("<a:Address>");
    out.push_str(ns::ANONYMOUS);
    out.push_str("</a:Address><a:ReferenceParameters><w:ResourceURI>");
    out.push_str(ns::WMI_PREFIX);
    xmlw::text(out, namespace);
    out.push('/');
    xmlw::text(out, class);
    // The SelectorSet declares its own namespace: clients such as Dell's wsl cut it out of
    // the reply and paste it into their next request, where `w` may mean nothing.
    out.push_str("</w:ResourceURI><w:SelectorSet xmlns:w=\"");
    out.push_str(ns::WSMAN);
    out.push_str("\">");
}

fn epr_end(out: &mut String, namespace: &str) {
    // Windows names the namespace in every EPR; clients echo it back, and we accept it.
    selector(out, "__cimnamespace", namespace);
    out.push_str("</w:SelectorSet></a:ReferenceParameters>");
}

fn selector(out: &mut String, name: &str, value: &str) {
    out.push_str("<w:Selector Name=\"");
    xmlw::text(out, name);
    out.push_str("\">");
    xmlw::text(out, value);
    out.push_str("</w:Selector>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmsec_cim::CimType;

    #[test]
    fn element_names_are_cim_identifiers_only() {
        assert!(is_element_name("Msvm_SecurityService"));
        assert!(is_element_name("_x1"));
        assert!(!is_element_name("1abc"));
        assert!(!is_element_name("a b"));
        assert!(!is_element_name("a:b"));
        assert!(!is_element_name(""));
    }

    #[test]
    fn arrays_repeat_the_element_and_null_is_nil() {
        let mut out = String::new();
        property(
            &mut out,
            "KP",
            &Value::Array(vec![Value::UInt8(1), Value::UInt8(255)]),
        )
        .unwrap();
        property(&mut out, "N", &Value::Null).unwrap();
        property(&mut out, "E", &Value::Array(vec![])).unwrap();
        assert_eq!(out, "<p:KP>1</p:KP><p:KP>255</p:KP><p:N xsi:nil=\"true\"/>");
    }

    #[test]
    fn bytes_are_written_exactly_as_a_uint8_array_and_the_estimate_is_exact() {
        let bytes: Vec<u8> = (0..=255).chain([0, 9, 10, 99, 100, 255]).collect();
        let array = Value::Array(bytes.iter().map(|&b| Value::UInt8(b)).collect());
        let (mut fast, mut slow) = (String::new(), String::new());
        property(&mut fast, "KeyProtector", &Value::Bytes(bytes.clone())).unwrap();
        property(&mut slow, "KeyProtector", &array).unwrap();
        assert_eq!(fast, slow);
        assert_eq!(estimate_bytes("KeyProtector", &bytes), fast.len());
        assert!(property(&mut fast, "a b", &Value::Bytes(bytes)).is_err());
    }

    #[test]
    fn booleans_use_xsd_lexical_form_and_strings_are_escaped() {
        let inst = Instance::new("Msvm_SecuritySettingData")
            .with("TpmEnabled", CimType::Boolean, Value::Boolean(true))
            .with(
                "ElementName",
                CimType::String,
                Value::String("a<b&c".into()),
            );
        let mut out = String::new();
        instance(&mut out, &inst).unwrap();
        assert!(out.contains("<p:TpmEnabled>true</p:TpmEnabled>"), "{out}");
        assert!(
            out.contains("<p:ElementName>a&lt;b&amp;c</p:ElementName>"),
            "{out}"
        );
        assert!(out.starts_with(
            "<p:Msvm_SecuritySettingData xmlns:p=\"http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_SecuritySettingData\">"
        ));
    }

    #[test]
    fn a_property_name_that_is_not_an_identifier_is_refused() {
        let mut out = String::new();
        assert!(property(&mut out, "a><x", &Value::Null).is_err());
    }

    #[test]
    fn the_estimate_for_a_key_protector_covers_its_xml_so_the_buffer_never_grows() {
        let kp = Value::Array(
            (0..13 * 1024)
                .map(|i| Value::UInt8((i % 256) as u8))
                .collect(),
        );
        let estimate = estimate_value("KeyProtector", &kp);
        let mut out = String::with_capacity(estimate);
        property(&mut out, "KeyProtector", &kp).unwrap();
        assert!(out.len() <= estimate, "{} > {estimate}", out.len());
        assert!(out.len() > 400_000);
    }

    #[test]
    fn job_reference_names_the_job_instance() {
        let mut out = String::new();
        job_reference(&mut out, "5B0E\"&");
        assert!(out.contains("Msvm_ConcreteJob</w:ResourceURI>"));
        assert!(out.contains("<w:Selector Name=\"InstanceID\">5B0E&quot;&amp;</w:Selector>"));
        assert!(
            out.contains("<w:Selector Name=\"__cimnamespace\">root/virtualization/v2</w:Selector>")
        );
    }
}
