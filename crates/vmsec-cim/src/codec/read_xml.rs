//! Reads an `<INSTANCE>` in CIM DTD 2.0 or its WMI extension. One lenient reader serves both
//! dialects: the WMI-only elements are accepted wherever CIM-XML would put their CIM counterparts.

use roxmltree::{Document, Node};

use super::xml::{element_children, is, leaf_text, parse_document, position, required_attr};
use crate::cim_type::CimType;
use crate::error::{Error, ErrorKind, excerpt};
use crate::instance::{Instance, Property};
use crate::limits::{MAX_DEPTH, MAX_KEYS, MAX_PROPERTIES};
use crate::path::{ObjectPath, normalize_namespace};
use crate::schema;
use crate::value::{Value, check_array_len};

/// Elements only the WMI DTD 2.0 defines; their presence marks `GetText_(2)` output.
pub(crate) const WMI_ONLY_ELEMENTS: &[&str] = &[
    "PROPERTY.OBJECT",
    "PROPERTY.OBJECTARRAY",
    "PROPERTY.REFARRAY",
    "VALUE.OBJECT",
    "VALUE.OBJECTARRAY",
    "VALUE.REFARRAY",
];

/// Parses `text` as an XML embedded instance.
pub(crate) fn parse(text: &str) -> Result<Instance, Error> {
    let doc = parse_document(text)?;
    let root = doc.root_element();
    let instance = find_instance(&doc, root)?;
    read_instance(&doc, instance, 0)
}

/// The `INSTANCE` at the root, or inside the wrappers `GetText_` writes for `PathLevel` 1–3
/// (`VALUE.NAMEDOBJECT`, `VALUE.OBJECTWITHLOCALPATH`, `VALUE.OBJECTWITHPATH`) or a `VALUE.OBJECT`.
fn find_instance<'a, 'i>(doc: &Document<'_>, root: Node<'a, 'i>) -> Result<Node<'a, 'i>, Error> {
    if is(root, "INSTANCE") {
        return Ok(root);
    }
    let wrapper = [
        "VALUE.NAMEDOBJECT",
        "VALUE.OBJECTWITHLOCALPATH",
        "VALUE.OBJECTWITHPATH",
        "VALUE.OBJECT",
        "VALUE.NAMEDINSTANCE",
    ];
    if wrapper.contains(&root.tag_name().name())
        && let Some(inst) = element_children(doc, root)?
            .into_iter()
            .find(|c| is(*c, "INSTANCE"))
    {
        return Ok(inst);
    }
    Err(Error::new(
        ErrorKind::Structure,
        format!(
            "root element <{}> is not an INSTANCE",
            excerpt(root.tag_name().name())
        ),
    )
    .at(position(doc, root)))
}

fn read_instance(doc: &Document<'_>, node: Node<'_, '_>, depth: usize) -> Result<Instance, Error> {
    let class_name = required_attr(doc, node, "CLASSNAME")?;
    let class_def = schema::class(class_name);
    let mut inst = Instance::new(class_name);
    let children = element_children(doc, node)?;
    let count = children
        .iter()
        .filter(|c| c.tag_name().name().starts_with("PROPERTY"))
        .count();
    if count > MAX_PROPERTIES {
        return Err(Error::new(
            ErrorKind::TooManyProperties,
            format!("{count} properties, limit {MAX_PROPERTIES}"),
        )
        .at(position(doc, node)));
    }
    for child in children {
        let tag = child.tag_name().name();
        if tag == "QUALIFIER" {
            continue;
        }
        let name = required_attr(doc, child, "NAME")?;
        let declared = class_def.and_then(|c| c.property(name));
        let prop = read_property(doc, child, name, declared.map(|d| d.cim_type), depth)
            .map_err(|e| e.in_property(name).at(position(doc, child)))?;
        if inst.get(name).is_some() {
            return Err(Error::new(
                ErrorKind::DuplicateProperty,
                format!("{name} appears twice"),
            )
            .in_property(name)
            .at(position(doc, child)));
        }
        inst.push(prop);
    }
    Ok(inst)
}

/// The `TYPE` attribute, else the schema's type, else string (what WMI means by an untyped value).
fn property_type(
    doc: &Document<'_>,
    node: Node<'_, '_>,
    schema_type: Option<CimType>,
) -> Result<CimType, Error> {
    match node.attribute("TYPE") {
        Some(t) => CimType::from_name(t).ok_or_else(|| {
            Error::new(ErrorKind::UnknownType, format!("TYPE=\"{}\"", excerpt(t)))
                .at(position(doc, node))
        }),
        None => Ok(schema_type.unwrap_or(CimType::String)),
    }
}

/// One `PROPERTY`, `PROPERTY.ARRAY` or `PROPERTY.REFERENCE` element, with its attributes
/// checked against the schema. Kept whole: the three element kinds share the attribute
/// checks and differ only in how their value is read, which a split would scatter.
fn read_property(
    doc: &Document<'_>,
    node: Node<'_, '_>,
    name: &str,
    schema_type: Option<CimType>,
    depth: usize,
) -> Result<Property, Error> {
    let tag = node.tag_name().name();
    let children: Vec<_> = element_children(doc, node)?
        .into_iter()
        .filter(|c| !is(*c, "QUALIFIER"))
        .collect();
    let single = |allowed: &[&str]| -> Result<Option<Node<'_, '_>>, Error> {
        match children.as_slice() {
            [] => Ok(None),
            [only] if allowed.contains(&only.tag_name().name()) => Ok(Some(*only)),
            [first, ..] => Err(Error::new(
                ErrorKind::Structure,
                format!(
                    "unexpected <{}> in <{tag}>",
                    excerpt(first.tag_name().name())
                ),
            )
            .at(position(doc, *first))),
        }
    };
    if name.is_empty() {
        return Err(Error::new(ErrorKind::Structure, "empty property NAME").at(position(doc, node)));
    }
    let prop = match tag {
        "PROPERTY" => {
            let t = property_type(doc, node, schema_type)?;
            let value = match single(&["VALUE"])? {
                Some(v) => Value::parse_scalar(t, &leaf_text(doc, v)?)
                    .map_err(|e| e.at(position(doc, v)))?,
                None => Value::Null,
            };
            Property {
                name: name.to_owned(),
                cim_type: t,
                is_array: false,
                value,
            }
        }
        "PROPERTY.ARRAY" => {
            let t = property_type(doc, node, schema_type)?;
            let value = match single(&["VALUE.ARRAY"])? {
                Some(arr) => read_array(doc, arr, |v| {
                    Value::parse_scalar(t, &leaf_text(doc, v)?).map_err(|e| e.at(position(doc, v)))
                })?,
                None => Value::Null,
            };
            Property {
                name: name.to_owned(),
                cim_type: t,
                is_array: true,
                value,
            }
        }
        "PROPERTY.REFERENCE" => {
            let value = match single(&["VALUE.REFERENCE"])? {
                Some(r) => Value::Reference(read_value_reference(doc, r, depth + 1)?),
                None => Value::Null,
            };
            Property {
                name: name.to_owned(),
                cim_type: CimType::Reference,
                is_array: false,
                value,
            }
        }
        "PROPERTY.REFARRAY" => {
            let value = match single(&["VALUE.REFARRAY"])? {
                Some(arr) => read_array(doc, arr, |v| {
                    if is(v, "VALUE.REFERENCE") {
                        Ok(Value::Reference(read_value_reference(doc, v, depth + 1)?))
                    } else {
                        Err(unexpected(doc, v, "VALUE.REFARRAY"))
                    }
                })?,
                None => Value::Null,
            };
            Property {
                name: name.to_owned(),
                cim_type: CimType::Reference,
                is_array: true,
                value,
            }
        }
        "PROPERTY.OBJECT" => {
            let value = match single(&["VALUE.OBJECT"])? {
                Some(o) => embedded_object(doc, o, depth)?,
                None => Value::Null,
            };
            Property {
                name: name.to_owned(),
                cim_type: CimType::String,
                is_array: false,
                value,
            }
        }
        "PROPERTY.OBJECTARRAY" => {
            let value = match single(&["VALUE.OBJECTARRAY"])? {
                Some(arr) => read_array(doc, arr, |v| {
                    if is(v, "VALUE.OBJECT") {
                        embedded_object(doc, v, depth)
                    } else {
                        Err(unexpected(doc, v, "VALUE.OBJECTARRAY"))
                    }
                })?,
                None => Value::Null,
            };
            Property {
                name: name.to_owned(),
                cim_type: CimType::String,
                is_array: true,
                value,
            }
        }
        other => {
            return Err(Error::new(
                ErrorKind::Structure,
                format!("unexpected <{}> in INSTANCE", excerpt(other)),
            )
            .at(position(doc, node)));
        }
    };
    Ok(prop)
}

fn unexpected(doc: &Document<'_>, node: Node<'_, '_>, parent: &str) -> Error {
    Error::new(
        ErrorKind::Structure,
        format!(
            "unexpected <{}> in <{parent}>",
            excerpt(node.tag_name().name())
        ),
    )
    .at(position(doc, node))
}

/// An array element: `VALUE.NULL` entries become `Null`, others go through `item`.
fn read_array<'a, 'i>(
    doc: &Document<'_>,
    arr: Node<'a, 'i>,
    mut item: impl FnMut(Node<'a, 'i>) -> Result<Value, Error>,
) -> Result<Value, Error> {
    let children = element_children(doc, arr)?;
    check_array_len(children.len()).map_err(|e| e.at(position(doc, arr)))?;
    let scalar_tag = arr.tag_name().name() == "VALUE.ARRAY";
    let mut out = Vec::with_capacity(children.len());
    for c in children {
        if is(c, "VALUE.NULL") {
            out.push(Value::Null);
        } else if scalar_tag && !is(c, "VALUE") {
            return Err(unexpected(doc, c, "VALUE.ARRAY"));
        } else {
            out.push(item(c)?);
        }
    }
    Ok(Value::Array(out))
}

/// WMI's embedded object: kept as the CIM-XML text of the nested instance, which is how the
/// CIM DTD carries the same value (a string with the EmbeddedObject qualifier).
fn embedded_object(doc: &Document<'_>, node: Node<'_, '_>, depth: usize) -> Result<Value, Error> {
    if depth + 1 > MAX_DEPTH {
        return Err(
            Error::new(ErrorKind::TooDeep, "embedded objects nested too deep")
                .at(position(doc, node)),
        );
    }
    let inner = element_children(doc, node)?
        .into_iter()
        .find(|c| is(*c, "INSTANCE"))
        .ok_or_else(|| unexpected(doc, node, "PROPERTY.OBJECT"))?;
    let nested = read_instance(doc, inner, depth + 1)?;
    Ok(Value::String(super::cimxml::serialize(&nested)))
}

/// `VALUE.REFERENCE`: a path element, or (WMI) the object path as text.
fn read_value_reference(
    doc: &Document<'_>,
    node: Node<'_, '_>,
    depth: usize,
) -> Result<ObjectPath, Error> {
    if depth > MAX_DEPTH {
        return Err(
            Error::new(ErrorKind::TooDeep, "references nested too deep").at(position(doc, node))
        );
    }
    let children = element_children(doc, node)?;
    let [inner] = children.as_slice() else {
        if children.is_empty() {
            let text = leaf_text(doc, node)?;
            return text.parse().map_err(|e: Error| e.at(position(doc, node)));
        }
        return Err(
            Error::new(ErrorKind::Structure, "VALUE.REFERENCE must hold one path")
                .at(position(doc, node)),
        );
    };
    let inner = *inner;
    match inner.tag_name().name() {
        "INSTANCEPATH" => {
            let parts = element_children(doc, inner)?;
            let [nspath, name] = parts.as_slice() else {
                return Err(Error::new(
                    ErrorKind::Structure,
                    "INSTANCEPATH needs NAMESPACEPATH and INSTANCENAME",
                )
                .at(position(doc, inner)));
            };
            let mut path = read_instance_name(doc, *name, depth)?;
            path.namespace = Some(read_namespace_path(doc, *nspath)?);
            Ok(path)
        }
        "LOCALINSTANCEPATH" => {
            let parts = element_children(doc, inner)?;
            let [nspath, name] = parts.as_slice() else {
                return Err(Error::new(
                    ErrorKind::Structure,
                    "LOCALINSTANCEPATH needs LOCALNAMESPACEPATH and INSTANCENAME",
                )
                .at(position(doc, inner)));
            };
            let mut path = read_instance_name(doc, *name, depth)?;
            path.namespace = Some(read_local_namespace(doc, *nspath)?);
            Ok(path)
        }
        "INSTANCENAME" => read_instance_name(doc, inner, depth),
        "CLASSNAME" => Ok(ObjectPath::new(required_attr(doc, inner, "NAME")?)),
        other => Err(Error::new(
            ErrorKind::InvalidReference,
            format!("unsupported path element <{}>", excerpt(other)),
        )
        .at(position(doc, inner))),
    }
}

/// `NAMESPACEPATH`: the `HOST` is dropped (see [`ObjectPath`]).
fn read_namespace_path(doc: &Document<'_>, node: Node<'_, '_>) -> Result<String, Error> {
    if !is(node, "NAMESPACEPATH") {
        return Err(unexpected(doc, node, "INSTANCEPATH"));
    }
    let local = element_children(doc, node)?
        .into_iter()
        .find(|c| is(*c, "LOCALNAMESPACEPATH"))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Structure,
                "NAMESPACEPATH without LOCALNAMESPACEPATH",
            )
            .at(position(doc, node))
        })?;
    read_local_namespace(doc, local)
}

fn read_local_namespace(doc: &Document<'_>, node: Node<'_, '_>) -> Result<String, Error> {
    if !is(node, "LOCALNAMESPACEPATH") {
        return Err(unexpected(doc, node, "LOCALINSTANCEPATH"));
    }
    let mut parts = Vec::new();
    for c in element_children(doc, node)? {
        if !is(c, "NAMESPACE") {
            return Err(unexpected(doc, c, "LOCALNAMESPACEPATH"));
        }
        parts.push(required_attr(doc, c, "NAME")?);
    }
    Ok(normalize_namespace(&parts.join("/")))
}

fn read_instance_name(
    doc: &Document<'_>,
    node: Node<'_, '_>,
    depth: usize,
) -> Result<ObjectPath, Error> {
    if !is(node, "INSTANCENAME") {
        return Err(unexpected(doc, node, "instance path"));
    }
    let mut path = ObjectPath::new(required_attr(doc, node, "CLASSNAME")?);
    let children = element_children(doc, node)?;
    if children.len() > MAX_KEYS {
        return Err(Error::new(
            ErrorKind::InvalidReference,
            format!("more than {MAX_KEYS} keys"),
        )
        .at(position(doc, node)));
    }
    for c in children {
        match c.tag_name().name() {
            "KEYBINDING" => {
                let key = required_attr(doc, c, "NAME")?;
                let inner = element_children(doc, c)?;
                let [v] = inner.as_slice() else {
                    return Err(
                        Error::new(ErrorKind::Structure, "KEYBINDING must hold one value")
                            .at(position(doc, c)),
                    );
                };
                path.keys
                    .push((key.to_owned(), read_key_value(doc, *v, depth)?));
            }
            // A single unnamed key, as DSP0201 allows for one-key classes.
            "KEYVALUE" | "VALUE.REFERENCE" => path
                .keys
                .push((String::new(), read_key_value(doc, c, depth)?)),
            _ => return Err(unexpected(doc, c, "INSTANCENAME")),
        }
    }
    Ok(path)
}

/// `KEYVALUE` typed by its `TYPE` attribute when present, else by `VALUETYPE`
/// (string → string, boolean → boolean, numeric → uint64/sint64/real64), or a nested reference.
fn read_key_value(doc: &Document<'_>, node: Node<'_, '_>, depth: usize) -> Result<Value, Error> {
    if is(node, "VALUE.REFERENCE") {
        return Ok(Value::Reference(read_value_reference(
            doc,
            node,
            depth + 1,
        )?));
    }
    if !is(node, "KEYVALUE") {
        return Err(unexpected(doc, node, "KEYBINDING"));
    }
    let text = leaf_text(doc, node)?;
    let at = |e: Error| e.at(position(doc, node));
    if let Some(t) = node.attribute("TYPE") {
        let t = CimType::from_name(t).ok_or_else(|| {
            at(Error::new(
                ErrorKind::UnknownType,
                format!("TYPE=\"{}\"", excerpt(t)),
            ))
        })?;
        return Value::parse_scalar(t, &text).map_err(at);
    }
    match node.attribute("VALUETYPE").unwrap_or("string") {
        "string" => Value::parse_scalar(CimType::String, &text).map_err(at),
        "boolean" => Value::parse_scalar(CimType::Boolean, &text).map_err(at),
        "numeric" => {
            let t = text.trim();
            let ty = if t.contains(['.', 'e', 'E']) {
                CimType::Real64
            } else if t.starts_with('-') {
                CimType::SInt64
            } else {
                CimType::UInt64
            };
            Value::parse_scalar(ty, t).map_err(at)
        }
        other => Err(at(Error::new(
            ErrorKind::UnknownType,
            format!("VALUETYPE=\"{}\"", excerpt(other)),
        ))),
    }
}
