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

/// The WMI namespace every served class lives in.
pub const CIM_NAMESPACE: &str = "root/virtualization/v2";
/// Prefix of class resource URIs (Microsoft's WMI form); replies always use it.
pub const WMI_V2_PREFIX: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/";
/// Prefix of DMTF class resource URIs, accepted on input.
pub const DMTF_PREFIX: &str = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/";
/// DMTF's "all classes" URI, accepted for WQL enumeration.
pub const DMTF_ALL: &str = "http://schemas.dmtf.org/wbem/wscim/1/*";

/// What a resource URI addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// One class, by the name the URI spells.
    Class(String),
    /// The whole namespace (`…/*`): only a WQL enumeration names the class.
    AllClasses,
}

/// Resolves a resource URI of either accepted form; `None` if it is outside the profile.
pub fn resource(uri: &str) -> Option<Resource> {
    let uri = uri.trim();
    if uri == DMTF_ALL {
        return Some(Resource::AllClasses);
    }
    let rest = uri
        .strip_prefix(WMI_V2_PREFIX)
        .or_else(|| uri.strip_prefix(DMTF_PREFIX))?;
    if rest == "*" {
        return Some(Resource::AllClasses);
    }
    let valid = !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid.then(|| Resource::Class(rest.to_owned()))
}

/// The resource URI replies use for `class`.
pub fn class_uri(class: &str) -> String {
    let mut uri = String::with_capacity(WMI_V2_PREFIX.len() + class.len());
    uri.push_str(WMI_V2_PREFIX);
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
            Some(Resource::Class("Msvm_SecurityService".into()))
        );
        assert_eq!(
            resource("http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ConcreteJob"),
            Some(Resource::Class("CIM_ConcreteJob".into()))
        );
    }

    #[test]
    fn star_uris_address_all_classes() {
        assert_eq!(
            resource("http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/*"),
            Some(Resource::AllClasses)
        );
        assert_eq!(resource(DMTF_ALL), Some(Resource::AllClasses));
    }

    #[test]
    fn uris_outside_the_namespace_or_with_odd_characters_are_refused() {
        assert_eq!(
            resource("http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Process"),
            None
        );
        assert_eq!(
            resource("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"),
            None
        );
        assert_eq!(resource(&format!("{WMI_V2_PREFIX}Msvm_X/../y")), None);
        assert_eq!(resource(WMI_V2_PREFIX), None);
    }
}
