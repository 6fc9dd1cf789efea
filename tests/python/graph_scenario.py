"""Hyper-V's object graph walked by real WinRM clients against `vmsec serve`.

Usage: graph_scenario.py URL USER PASSWORD VM_GUID KP_FILE

Replays, with pypsrp, the walk of Microsoft's GuardedFabricTools: the VM's Msvm_ComputerSystem
by Name, then with Get-CimAssociatedInstance (WS-CIM association filters, each Object the EPR
the previous reply gave) its Msvm_VirtualSystemSettingData, that one's Msvm_SecuritySettingData
and the computer system's Msvm_SecurityService; SetKeyProtector invoked on exactly the
selectors of the service's EPR, its job polled through the job's EPR, GetKeyProtector. Then
OpenStack os-win's LIKE query. Exits non-zero, saying which step failed, on any deviation.
"""

import sys
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import wsman_scenario as ws
from wsman_scenario import NS, V2, WQL, check, props

ASSOC = "http://schemas.dmtf.org/wbem/wsman/1/cimbinding/associationFilter"
BINDING = "http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd"


def enumerate_items(client, resource_uri, filter_xml):
    """Enumerate with EnumerateObjectAndEPR, as the CIM cmdlets do, pulled to the end:
    [(instance element, EPR element)]."""
    body = (
        '<n:Enumerate xmlns:n="%s" xmlns:w="%s"><w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements>'
        "<w:EnumerationMode>EnumerateObjectAndEPR</w:EnumerationMode>%s</n:Enumerate>"
        % (NS["wsen"], NS["wsman"], filter_xml)
    )
    items = []
    for item in ws_items(client, resource_uri, body):
        epr = item.find("wsa:EndpointReference", NS)
        instance = [c for c in item if c is not epr][0]
        items.append((instance, epr))
    return items


def ws_items(client, resource_uri, body):
    reply = client.call(ws.ENUMERATE, resource_uri, body)
    resp = reply.find(".//wsen:EnumerateResponse", NS)
    out = []
    while True:
        got = resp.find("wsman:Items", NS)
        if got is None:
            got = resp.find("wsen:Items", NS)
        if got is not None:
            out.extend(list(got))
        if resp.find("wsman:EndOfSequence", NS) is not None or resp.find("wsen:EndOfSequence", NS) is not None:
            return out
        ctx = resp.find("wsen:EnumerationContext", NS).text
        pull = '<n:Pull xmlns:n="%s"><n:EnumerationContext>%s</n:EnumerationContext></n:Pull>' % (NS["wsen"], ctx)
        resp = client.call(ws.PULL, resource_uri, pull).find(".//wsen:PullResponse", NS)


def class_of(instance):
    return instance.tag.split("}")[1]


def epr_selectors(epr):
    return {s.get("Name"): s.text for s in epr.iter("{%s}Selector" % NS["wsman"])}


def associated(client, epr, result_class, assoc_class=None, kind="AssociatedInstances"):
    """Get-CimAssociatedInstance: the association filter with the instance's own EPR."""
    parts = ['<b:Object>%s</b:Object>' % "".join(ET.tostring(c, encoding="unicode") for c in epr)]
    if assoc_class:
        parts.append("<b:AssociationClassName>%s</b:AssociationClassName>" % assoc_class)
    if result_class:
        parts.append("<b:ResultClassName>%s</b:ResultClassName>" % result_class)
    flt = '<w:Filter Dialect="%s"><b:%s xmlns:b="%s">%s</b:%s></w:Filter>' % (
        ASSOC, kind, BINDING, "".join(parts), kind)
    return enumerate_items(client, V2 + "/*", flt)


def scenario(client, vm, kp):
    cs = enumerate_items(
        client, V2 + "/Msvm_ComputerSystem",
        '<w:Filter Dialect="%s">%s</w:Filter>' % (WQL, escape("SELECT * FROM Msvm_ComputerSystem WHERE Name = '%s'" % vm)),
    )
    check(len(cs) == 1, "Get-CimInstance Msvm_ComputerSystem -Filter \"Name = '<VMId>'\" finds the VM")
    cs_inst, cs_epr = cs[0]
    check(props(cs_inst)["Description"] == "Microsoft Virtual Machine", "the computer system is a virtual machine")

    vssd = associated(client, cs_epr, "Msvm_VirtualSystemSettingData")
    check(len(vssd) == 1 and class_of(vssd[0][0]) == "Msvm_VirtualSystemSettingData",
          "the computer system's associated Msvm_VirtualSystemSettingData is found")
    p = props(vssd[0][0])
    check(p["InstanceID"] == "Microsoft:" + vm.upper() and p["VirtualSystemType"] == "Microsoft:Hyper-V:System:Realized",
          "the VSSD is the VM's realized settings (%s)" % p["InstanceID"])
    check(p["ConfigurationID"] == vm.upper(), "the VSSD's ConfigurationID is the VM's GUID")

    ssd = associated(client, vssd[0][1], "Msvm_SecuritySettingData")
    check(len(ssd) == 1 and class_of(ssd[0][0]) == "Msvm_SecuritySettingData",
          "the VSSD's associated Msvm_SecuritySettingData is found")

    links = associated(client, vssd[0][1], "Msvm_SettingsDefineState", kind="AssociationInstances")
    check(len(links) == 1 and class_of(links[0][0]) == "Msvm_SettingsDefineState",
          "the VSSD's Msvm_SettingsDefineState association instance is found")
    managed = links[0][0].find("{%s/Msvm_SettingsDefineState}ManagedElement" % V2)
    check(epr_selectors(managed).get("Name") == vm.upper(), "the association references the VM's computer system")

    svc = associated(client, cs_epr, "Msvm_SecurityService")
    check(len(svc) == 1 and class_of(svc[0][0]) == "Msvm_SecurityService",
          "the computer system's associated Msvm_SecurityService is found")
    selectors = epr_selectors(svc[0][1])
    check(selectors.get("Name") == "vmsecuritywmi" and "__cimnamespace" in selectors,
          "the service's EPR carries its keys and __cimnamespace")

    text = ws.get_text_1("Msvm_SecuritySettingData", props(ssd[0][0]), selectors["SystemName"])
    out = ws.invoke(client, selectors, "SetKeyProtector", [("SecuritySettingData", text), ("KeyProtector", kp)])
    check(ws.return_value(out) == 4096, "SetKeyProtector on the EPR's exact selectors starts a job")
    job_epr = out.find("{%s}Job" % ws.SERVICE_URI)
    job_selectors = epr_selectors(job_epr)
    for _ in range(200):
        reply = client.call(ws.GET, V2 + "/Msvm_ConcreteJob", None, job_selectors)
        job = props(reply.find("s:Body", NS)[0])
        if int(job["JobState"]) in (7, 8, 9, 10):
            break
    check(job["JobState"] == "7", "the job, got through its EPR's selectors, completes")
    out = ws.invoke(client, selectors, "GetKeyProtector", [("SecuritySettingData", text)])
    got = bytes(int(e.text) for e in out.findall("{%s}KeyProtector" % ws.SERVICE_URI))
    check(ws.return_value(out) == 0 and got == kp, "GetKeyProtector returns the key protector set (%d bytes)" % len(kp))

    like = ws.enumerate_all(
        client, V2 + "/*",
        "SELECT * FROM Msvm_SecuritySettingData WHERE InstanceID LIKE 'Microsoft:%s%%'" % vm.upper(),
    )
    check(len(like) == 1 and props(like[0])["InstanceID"] == "Microsoft:" + vm.upper(),
          "os-win's InstanceID LIKE 'Microsoft:<id>%' query finds the VM's settings")
    everyone = ws.enumerate_all(client, V2 + "/*", "SELECT * FROM Msvm_SecuritySettingData WHERE InstanceID LIKE 'microsoft:%'")
    check(len(everyone) >= 2, "a LIKE prefix matches every VM's settings, ignoring case (%d)" % len(everyone))


def main(argv):
    url, user, password, vm, kp_file = argv[1:6]
    client = ws.PypsrpClient(url, user, password)
    with open(kp_file, "rb") as f:
        kp = f.read()
    try:
        scenario(client, vm, kp)
    except ws.Failure as e:
        print("FAILED -", e)
        return 1
    print("graph scenario passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
