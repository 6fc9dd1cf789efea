"""Hyper-V's Msvm_SecurityService scenario, driven by real WinRM clients against `vmsec serve`.

Usage: wsman_scenario.py CLIENT URL USER PASSWORD VM_GUID KP_FILE [READER_USER READER_PASSWORD]
CLIENT is "pypsrp" or "pywinrm". Exits non-zero, saying which step failed, on any deviation.

The envelopes are what a Hyper-V management script sends: Enumerate with a WQL filter, the
returned instance turned into CIM-XML DTD 2.0 text the way WMI's GetText_(1) writes it
(with system properties), Invoke of the security service's methods, and polling of the job.
"""

import sys
import time
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import urlparse
from xml.sax.saxutils import escape

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "wsen": "http://schemas.xmlsoap.org/ws/2004/09/enumeration",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
V2 = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2"
SERVICE_URI = V2 + "/Msvm_SecurityService"
HGS_URI = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/Microsoft/Windows/Hgs/MSFT_HgsClientConfiguration"
WQL = "http://schemas.microsoft.com/wbem/wsman/1/WQL"
ENUMERATE = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate"
PULL = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull"
GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)
    print("ok -", what)


class Client:
    """Sends one SOAP request; subclasses do it with a real WinRM library."""

    def envelope(self, action, resource_uri, body, selectors=None):
        sel = ""
        if selectors:
            sel = "<w:SelectorSet>%s</w:SelectorSet>" % "".join(
                '<w:Selector Name="%s">%s</w:Selector>' % (k, escape(v)) for k, v in selectors.items()
            )
        return (
            '<s:Envelope xmlns:s="%(s)s" xmlns:a="%(wsa)s" xmlns:w="%(wsman)s">'
            "<s:Header><a:To>%(to)s</a:To>"
            '<w:ResourceURI s:mustUnderstand="true">%(uri)s</w:ResourceURI>'
            "<a:ReplyTo><a:Address s:mustUnderstand=\"true\">"
            "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>"
            '<a:Action s:mustUnderstand="true">%(action)s</a:Action>'
            '<w:MaxEnvelopeSize s:mustUnderstand="true">4096000</w:MaxEnvelopeSize>'
            "<a:MessageID>uuid:%(mid)s</a:MessageID>"
            '<w:Locale xml:lang="en-US" s:mustUnderstand="false"/>'
            "<w:OperationTimeout>PT60.000S</w:OperationTimeout>%(sel)s</s:Header>"
            "<s:Body>%(body)s</s:Body></s:Envelope>"
        ) % dict(NS, to=self.url, uri=resource_uri, action=action, mid=uuid.uuid4(), sel=sel, body=body)


class PypsrpClient(Client):
    def __init__(self, url, user, password):
        from pypsrp.wsman import WSMan

        u = urlparse(url)
        self.url = url
        self.wsman = WSMan(
            u.hostname, port=u.port, username=user, password=password, ssl=u.scheme == "https",
            auth="basic", cert_validation=False, encryption="never", max_envelope_size=4096000,
        )

    def call(self, action, resource_uri, body, selectors=None):
        from pypsrp.wsman import SelectorSet

        sel = None
        if selectors:
            sel = SelectorSet()
            for k, v in selectors.items():
                sel.add_option(k, v)
        resource = ET.fromstring(body) if body else None
        return self.wsman.invoke(action, resource_uri, resource, selector_set=sel)


class PywinrmClient(Client):
    def __init__(self, url, user, password):
        from winrm.protocol import Protocol

        self.url = url
        self.protocol = Protocol(
            endpoint=url, transport="basic", username=user, password=password,
            server_cert_validation="ignore", message_encryption="never",
        )

    def call(self, action, resource_uri, body, selectors=None):
        reply = self.protocol.send_message(self.envelope(action, resource_uri, body, selectors))
        return ET.fromstring(reply)


def enumerate_all(client, resource_uri, wql=None):
    """Enumerate (optimized) then Pull until the end; returns the item elements."""
    flt = '<w:Filter Dialect="%s">%s</w:Filter>' % (WQL, escape(wql)) if wql else ""
    body = (
        '<n:Enumerate xmlns:n="%s" xmlns:w="%s"><w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements>'
        "%s</n:Enumerate>" % (NS["wsen"], NS["wsman"], flt)
    )
    reply = client.call(ENUMERATE, resource_uri, body)
    items = []
    resp = reply.find(".//wsen:EnumerateResponse", NS)
    while True:
        got = resp.find("wsman:Items", NS)
        if got is None:
            got = resp.find("wsen:Items", NS)
        if got is not None:
            items.extend(list(got))
        if resp.find("wsman:EndOfSequence", NS) is not None or resp.find("wsen:EndOfSequence", NS) is not None:
            return items
        ctx = resp.find("wsen:EnumerationContext", NS).text
        body = '<n:Pull xmlns:n="%s"><n:EnumerationContext>%s</n:EnumerationContext></n:Pull>' % (NS["wsen"], ctx)
        resp = client.call(PULL, resource_uri, body).find(".//wsen:PullResponse", NS)


def props(instance):
    """Element → {property: text or list of texts or None}."""
    out = {}
    for child in instance:
        name = child.tag.split("}")[1]
        nil = child.get("{%s}nil" % NS["xsi"]) == "true"
        value = None if nil else (child.text or "")
        if name in out:
            if not isinstance(out[name], list):
                out[name] = [out[name]]
            out[name].append(value)
        else:
            out[name] = value
    return out


def get_text_1(class_name, p, host):
    """The instance as WMI's GetText_(1) writes it: CIM-XML DTD 2.0 with system properties."""
    def prop(name, typ, value, origin):
        v = "" if value is None else "<VALUE>%s</VALUE>" % escape(value)
        return '<PROPERTY NAME="%s" CLASSORIGIN="%s" TYPE="%s">%s</PROPERTY>' % (name, origin, typ, v)

    relpath = '%s.InstanceID="%s"' % (class_name, p["InstanceID"].replace("\\", "\\\\"))
    system = [
        ("__PATH", "\\\\%s\\root\\virtualization\\v2:%s" % (host, relpath)),
        ("__NAMESPACE", "root\\virtualization\\v2"),
        ("__SERVER", host),
        ("__PROPERTY_COUNT", None),
        ("__RELPATH", relpath),
        ("__DYNASTY", "CIM_ManagedElement"),
        ("__SUPERCLASS", "CIM_SettingData"),
        ("__CLASS", class_name),
        ("__GENUS", None),
    ]
    parts = ['<INSTANCE CLASSNAME="%s">' % class_name]
    for name, value in system:
        if name == "__PROPERTY_COUNT":
            parts.append(prop(name, "sint32", str(len(p)), "___SYSTEM"))
        elif name == "__GENUS":
            parts.append(prop(name, "sint32", "2", "___SYSTEM"))
        else:
            parts.append(prop(name, "string", value, "___SYSTEM"))
    parts.append(
        '<PROPERTY.ARRAY NAME="__DERIVATION" CLASSORIGIN="___SYSTEM" TYPE="string"><VALUE.ARRAY>'
        "<VALUE>CIM_SettingData</VALUE><VALUE>CIM_ManagedElement</VALUE></VALUE.ARRAY></PROPERTY.ARRAY>"
    )
    for name, value in p.items():
        typ = "boolean" if value in ("true", "false") else "string"
        if typ == "boolean":
            value = value.upper()
        parts.append(prop(name, typ, value, "Msvm_SecuritySettingData"))
    parts.append("</INSTANCE>")
    return "".join(parts)


def service_selectors(client):
    items = enumerate_all(client, SERVICE_URI)
    check(len(items) == 1, "Enumerate Msvm_SecurityService returns the one service")
    p = props(items[0])
    check(p["Name"] == "vmsecuritywmi", "the service is named vmsecuritywmi")
    return {k: p[k] for k in ("CreationClassName", "Name", "SystemCreationClassName", "SystemName")}


def invoke(client, selectors, method, params):
    body = ['<p:%s_INPUT xmlns:p="%s">' % (method, SERVICE_URI)]
    for name, value in params:
        if isinstance(value, (bytes, bytearray)):
            body.extend("<p:%s>%d</p:%s>" % (name, b, name) for b in value)
        else:
            body.append("<p:%s>%s</p:%s>" % (name, escape(value), name))
    body.append("</p:%s_INPUT>" % method)
    reply = client.call(SERVICE_URI + "/" + method, SERVICE_URI, "".join(body), selectors)
    out = reply.find(".//{%s}%s_OUTPUT" % (SERVICE_URI, method))
    if out is None:
        raise Failure("%s: no %s_OUTPUT in the reply: %s" % (method, method, ET.tostring(reply)[:500]))
    return out


def return_value(out):
    return int(out.find("{%s}ReturnValue" % SERVICE_URI).text)


def job_id(out):
    job = out.find("{%s}Job" % SERVICE_URI)
    sel = job.find(".//wsman:Selector[@Name='InstanceID']", NS)
    return sel.text


def wait_job(client, jid, use_wql):
    job_uri = V2 + "/Msvm_ConcreteJob"
    for _ in range(200):
        if use_wql:
            items = enumerate_all(client, V2 + "/*", "SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = '%s'" % jid)
            check(len(items) == 1, "WQL Enumerate finds the job")
            p = props(items[0])
        else:
            reply = client.call(GET, job_uri, None, {"InstanceID": jid})
            p = props(reply.find("s:Body", NS)[0])
        if int(p["JobState"]) in (7, 8, 9, 10):
            return p
        time.sleep(0.05)
    raise Failure("job %s did not finish" % jid)


def scenario(client, vm_guid, kp, reader):
    selectors = service_selectors(client)
    items = enumerate_all(
        client, V2 + "/*",
        "SELECT * FROM Msvm_SecuritySettingData WHERE InstanceID = 'Microsoft:%s'" % vm_guid.upper(),
    )
    check(len(items) == 1, "WQL Enumerate of Msvm_SecuritySettingData finds the VM's settings")
    p = props(items[0])
    ssd = get_text_1("Msvm_SecuritySettingData", p, selectors["SystemName"])

    out = invoke(client, selectors, "GetKeyProtector", [("SecuritySettingData", ssd)])
    check(return_value(out) == 0, "GetKeyProtector returns 0")
    none = bytes(int(e.text) for e in out.findall("{%s}KeyProtector" % SERVICE_URI))
    check(none == b"\x00\x00\x00\x04", "GetKeyProtector of a VM without one returns Hyper-V's 4 bytes (got %r)" % none)

    out = invoke(client, selectors, "SetKeyProtector", [("SecuritySettingData", ssd), ("KeyProtector", kp)])
    check(return_value(out) == 4096, "SetKeyProtector starts a job (4096)")
    jid = job_id(out)
    job = wait_job(client, jid, use_wql=False)
    check(job["JobState"] == "7", "the SetKeyProtector job completes (JobState 7), polled with Get")
    job = wait_job(client, jid, use_wql=True)
    check(job["JobState"] == "7", "the job is also found completed with a WQL Enumerate")

    out = invoke(client, selectors, "GetKeyProtector", [("SecuritySettingData", ssd)])
    got = bytes(int(e.text) for e in out.findall("{%s}KeyProtector" % SERVICE_URI))
    check(got == kp, "GetKeyProtector returns the bytes that were set (%d bytes)" % len(kp))

    tpm_on = ssd.replace(
        '<PROPERTY NAME="TpmEnabled" CLASSORIGIN="Msvm_SecuritySettingData" TYPE="boolean"><VALUE>FALSE</VALUE>',
        '<PROPERTY NAME="TpmEnabled" CLASSORIGIN="Msvm_SecuritySettingData" TYPE="boolean"><VALUE>TRUE</VALUE>',
    )
    check(tpm_on != ssd, "the instance carries TpmEnabled FALSE to turn on")
    out = invoke(client, selectors, "ModifySecuritySettings", [("SecuritySettingData", tpm_on)])
    check(return_value(out) == 4096, "ModifySecuritySettings starts a job")
    check(wait_job(client, job_id(out), use_wql=False)["JobState"] == "7", "ModifySecuritySettings completes")
    items = enumerate_all(
        client, V2 + "/*",
        "SELECT * FROM Msvm_SecuritySettingData WHERE InstanceID = 'Microsoft:%s'" % vm_guid.upper(),
    )
    check(props(items[0])["TpmEnabled"] == "true", "TpmEnabled is now TRUE")

    out = invoke(client, selectors, "RestoreLastKnownGoodKeyProtector", [("SecuritySettingData", ssd)])
    check(return_value(out) == 32775, "RestoreLastKnownGoodKeyProtector without a last known good is 32775")

    if reader:
        out = invoke(reader, selectors, "SetKeyProtector", [("SecuritySettingData", ssd), ("KeyProtector", kp)])
        check(return_value(out) == 32769, "a reader's SetKeyProtector returns 32769 (access denied)")
        out = invoke(reader, selectors, "GetKeyProtector", [("SecuritySettingData", ssd)])
        check(return_value(out) == 0, "a reader may GetKeyProtector")

    reply = (reader or client).call(GET, HGS_URI, None)
    p = props(reply.find("s:Body", NS)[0])
    check(p["Mode"] == "Local" and p["IsHostGuarded"] == "false" and p["AttestationStatus"] == "NotConfigured",
          "Get MSFT_HgsClientConfiguration (root/Microsoft/Windows/Hgs) shows a local, unguarded host")


def main(argv):
    client_name, url, user, password, vm_guid, kp_file = argv[1:7]
    make = {"pypsrp": PypsrpClient, "pywinrm": PywinrmClient}[client_name]
    client = make(url, user, password)
    reader = make(url, argv[7], argv[8]) if len(argv) > 8 else None
    with open(kp_file, "rb") as f:
        kp = f.read()
    try:
        scenario(client, vm_guid, kp, reader)
    except Failure as e:
        print("FAILED -", e)
        return 1
    print("%s scenario passed" % client_name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
