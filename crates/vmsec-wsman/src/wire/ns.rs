//! Namespace URIs, action URIs and resource-URI addressing of the profile.

/// SOAP 1.2 envelope.
pub const SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
/// WS-Addressing (2004/08, as WS-Management 1.x uses).
pub const WSA: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
/// WS-Management.
pub const WSMAN: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";
/// WS-Management Identify.
pub const WSMID: &str = "http://schemas.dmtf.org/wbem/wsman/identify/1/wsmanidentity.xsd";
/// Microsoft's WS-Management extensions (`DataLocale`, `SessionId`).
pub const WSMV: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd";
/// WS-Enumeration.
pub const WSEN: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration";
/// WS-Transfer.
pub const WXF: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer";
/// XML Schema instance (`xsi:nil`).
pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// WS-CIM common types (`cim:Datetime`).
pub const CIM: &str = "http://schemas.dmtf.org/wbem/wscim/1/common";
/// Microsoft's fault detail (`WSManFault`).
pub const WSMANFAULT: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault";
/// The `xml:` namespace (`xml:lang`).
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";

/// The anonymous endpoint address.
pub const ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";
/// The WQL filter dialect.
pub const WQL_DIALECT: &str = "http://schemas.microsoft.com/wbem/wsman/1/WQL";

/// WS-Transfer Get.
pub const ACTION_GET: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get";
/// WS-Enumeration Enumerate.
pub const ACTION_ENUMERATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate";
/// WS-Enumeration Pull.
pub const ACTION_PULL: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull";
/// WS-Enumeration Release.
pub const ACTION_RELEASE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Release";
/// Action of WS-Management faults.
pub const ACTION_WSMAN_FAULT: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault";
/// Action of WS-Addressing faults.
pub const ACTION_WSA_FAULT: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault";
/// Action of WS-Enumeration faults.
pub const ACTION_WSEN_FAULT: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/fault";

/// Prefix of WMI resource URIs: the namespace and the class follow
/// (`…/wmi/root/virtualization/v2/Msvm_SecurityService`). Replies always use this form.
pub const WMI_PREFIX: &str = "http://schemas.microsoft.com/wbem/wsman/1/wmi/";
/// Prefix of DMTF class resource URIs, accepted on input; they name no namespace.
pub const DMTF_PREFIX: &str = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/";
/// DMTF's "all classes" URI, accepted for WQL enumeration.
pub const DMTF_ALL: &str = "http://schemas.dmtf.org/wbem/wscim/1/*";

/// What a resource URI addresses. `namespace` is the WMI namespace as the URI spells it
/// (`root/Microsoft/Windows/Hgs`), `None` for the DMTF forms, which name none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// One class, by the name the URI spells.
    Class {
        /// The namespace the URI names.
        namespace: Option<String>,
        /// The class.
        class: String,
    },
    /// The whole namespace (`…/*`): only a WQL enumeration names the class.
    AllClasses {
        /// The namespace the URI names.
        namespace: Option<String>,
    },
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Resolves a resource URI of either accepted form; `None` if it is outside the profile.
/// Any WMI namespace of plain names is accepted here: whether the class lives in it is the
/// schema's to say ([`vmsec_cim::schema::ClassDef::in_namespace`]).
pub fn resource(uri: &str) -> Option<Resource> {
    let uri = uri.trim();
    if uri == DMTF_ALL {
        return Some(Resource::AllClasses { namespace: None });
    }
    let (namespace, rest) = match uri.strip_prefix(WMI_PREFIX) {
        Some(path) => {
            let (namespace, rest) = path.rsplit_once('/')?;
            if !namespace.split('/').all(is_name) {
                return None;
            }
            (Some(namespace.to_owned()), rest)
        }
        None => (None, uri.strip_prefix(DMTF_PREFIX)?),
    };
    if rest == "*" {
        return Some(Resource::AllClasses { namespace });
    }
    is_name(rest).then(|| Resource::Class {
        namespace,
        class: rest.to_owned(),
    })
}

/// The namespace of `class`: the schema's, or for a class outside it (a reference to a
/// Hyper-V class vmsec does not serve) `root/virtualization/v2`.
pub fn namespace_of(class: &str) -> &'static str {
    vmsec_cim::schema::class(class).map_or(vmsec_cim::schema::VIRTUALIZATION_V2, |c| c.namespace)
}

/// The resource URI replies use for `class`, in its namespace ([`namespace_of`]).
pub fn class_uri(class: &str) -> String {
    let namespace = namespace_of(class);
    let mut uri = String::with_capacity(WMI_PREFIX.len() + namespace.len() + 1 + class.len());
    uri.push_str(WMI_PREFIX);
    uri.push_str(namespace);
    uri.push('/');
    uri.push_str(class);
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wmi_and_dmtf_class_uris_resolve_to_the_class() {
        assert_eq!(
            resource(
                "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_SecurityService"
            ),
            Some(Resource::Class {
                namespace: Some("root/virtualization/v2".into()),
                class: "Msvm_SecurityService".into()
            })
        );
        assert_eq!(
            resource(
                "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/Microsoft/Windows/Hgs/MSFT_HgsClientConfiguration"
            ),
            Some(Resource::Class {
                namespace: Some("root/Microsoft/Windows/Hgs".into()),
                class: "MSFT_HgsClientConfiguration".into()
            })
        );
        assert_eq!(
            resource("http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ConcreteJob"),
            Some(Resource::Class {
                namespace: None,
                class: "CIM_ConcreteJob".into()
            })
        );
    }

    #[test]
    fn star_uris_address_all_classes() {
        assert_eq!(
            resource("http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/*"),
            Some(Resource::AllClasses {
                namespace: Some("root/virtualization/v2".into())
            })
        );
        assert_eq!(
            resource(DMTF_ALL),
            Some(Resource::AllClasses { namespace: None })
        );
    }

    #[test]
    fn uris_outside_the_profile_or_with_odd_characters_are_refused() {
        assert_eq!(
            resource("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"),
            None
        );
        let v2 = format!("{WMI_PREFIX}root/virtualization/v2/");
        assert_eq!(resource(&format!("{v2}Msvm_X/../y")), None);
        assert_eq!(resource(&format!("{WMI_PREFIX}root//Msvm_X")), None);
        assert_eq!(resource(&format!("{WMI_PREFIX}Msvm_X")), None);
        assert_eq!(resource(&v2), None);
    }

    #[test]
    fn class_uris_are_in_the_class_namespace() {
        assert_eq!(
            class_uri("Msvm_SecurityService"),
            "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_SecurityService"
        );
        assert_eq!(
            class_uri("MSFT_HgsClientConfiguration"),
            "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/windows/hgs/MSFT_HgsClientConfiguration"
        );
    }
}
