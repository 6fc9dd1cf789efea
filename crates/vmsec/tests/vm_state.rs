//! What a VM's `Msvm_ComputerSystem` says of its state: vmsec runs vTPMs, not VMs, so a VM
//! counts as running exactly while its vTPM (a real swtpm) runs, read over WS-Man from a
//! `vmsec serve` that shares the CLI's data directory.

mod common;

use common::{Served, tools_present, vmsec_ok};

const V2: &str = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2";

/// EnabledState and ProcessID of the VM `guid`'s computer system, as a Get returns them.
fn state(served: &Served, guid: &str) -> (String, Option<String>) {
    let (status, body) = served.post(&format!(
        r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header><a:To>http://localhost/wsman</a:To><w:ResourceURI>{V2}/Msvm_ComputerSystem</w:ResourceURI><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/Get</a:Action><a:MessageID>uuid:0A1B2C3D-0000-0000-0000-000000000001</a:MessageID><w:SelectorSet><w:Selector Name="CreationClassName">Msvm_ComputerSystem</w:Selector><w:Selector Name="Name">{guid}</w:Selector></w:SelectorSet></s:Header><s:Body/></s:Envelope>"#
    ));
    assert_eq!(status, 200, "{body}");
    let doc = roxmltree::Document::parse(&body).unwrap();
    let prop = |name: &str| {
        doc.descendants()
            .find(|n| n.tag_name().name() == name)
            .unwrap_or_else(|| panic!("no {name}: {body}"))
            .text()
            .map(str::to_owned)
    };
    (prop("EnabledState").unwrap(), prop("ProcessID"))
}

#[test]
fn a_vms_computer_system_runs_with_the_swtpm_pid_exactly_while_its_vtpm_runs() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let cli = |args: &[&str]| String::from_utf8(vmsec_ok(data, args, b"").stdout).unwrap();
    let kp = data.join("kp.xml");
    let kp = kp.to_str().unwrap();
    cli(&["guardian", "new", "owner"]);
    cli(&["kp", "new", "--owner", "owner", "--out", kp]);
    cli(&["vm", "add", "vm1"]);
    cli(&["vm", "kp", "set", "vm1", kp]);
    cli(&["vm", "security", "set", "vm1", "--tpm", "on"]);
    let shown: serde_json::Value =
        serde_json::from_str(&cli(&["--json", "vm", "show", "vm1"])).unwrap();
    let guid = shown["vm"]["id"].as_str().unwrap().to_uppercase();
    let served = Served::start(data);
    assert_eq!(
        state(&served, &guid),
        ("3".to_owned(), None),
        "off before its vTPM starts"
    );

    let socket = data.join("vm1.sock");
    let started: serde_json::Value = serde_json::from_str(&cli(&[
        "--json",
        "tpm",
        "start",
        "vm1",
        "--socket",
        socket.to_str().unwrap(),
    ]))
    .unwrap();
    let running = state(&served, &guid);
    // Stopped before asserting, so that a failure leaves no swtpm behind.
    cli(&["tpm", "stop", "vm1"]);
    assert_eq!(
        running,
        ("2".to_owned(), Some(started["pid"].to_string())),
        "running, with swtpm's pid"
    );
    assert_eq!(
        state(&served, &guid),
        ("3".to_owned(), None),
        "off once its vTPM stops"
    );
}
