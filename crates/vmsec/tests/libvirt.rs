//! The vTPM under libvirt (issue 16): `vmsec libvirt-hook` installed as a QEMU hook starts
//! the VM's vTPM at `prepare` and hands its socket to the domain's static DAC user; a TCG
//! domain (the QEMU test's kernel and initramfs) writes NV on its first boot, `virsh start`
//! again rolls the key protector and reads it back, and `virsh destroy` leaves the vTPM
//! stopped. Needs root and a running libvirtd (scripts/setup starts one); with CI=true their
//! absence fails the test.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{run_vmsec, tools_present, vmsec_ok};

const VALUE: &str = "vmsec-qemu-guest-nv-0123456789AB";
const HOOK: &str = "/etc/libvirt/hooks/qemu.d/vmsec-test";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn virsh(args: &[&str]) -> std::process::Output {
    Command::new("virsh")
        .args(["-c", "qemu:///system"])
        .args(args)
        .output()
        .expect("virsh")
}

fn virsh_ok(args: &[&str]) -> String {
    let out = virsh(args);
    assert!(
        out.status.success(),
        "virsh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ready() -> Option<PathBuf> {
    let kernel = std::env::var_os("VMSEC_GUEST_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/guest/vmlinuz"));
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    let libvirt = virsh(&["version"]).status.success();
    let problem = match (root, libvirt, kernel.is_file()) {
        (false, _, _) => "root (libvirt's system instance)",
        (_, false, _) => "a running libvirtd (scripts/setup starts one)",
        (_, _, false) => "the guest kernel (scripts/setup fetches it)",
        _ => return Some(kernel),
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("the libvirt test needs {problem}");
    }
    eprintln!("skipped: the libvirt test needs {problem}");
    None
}

/// Removes the test's hook and domain, and makes libvirtd forget the hook.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = virsh(&["destroy", &self.0]);
        let _ = virsh(&["undefine", &self.0]);
        let _ = std::fs::remove_file(HOOK);
        reload_hooks();
    }
}

fn reload_hooks() {
    if let Ok(pid) = std::fs::read_to_string("/run/libvirtd.pid") {
        let _ = Command::new("kill").args(["-HUP", pid.trim()]).status();
    } else {
        let _ = Command::new("pkill")
            .args(["-HUP", "-x", "libvirtd"])
            .status();
    }
    std::thread::sleep(Duration::from_millis(500));
}

fn wait_shut_off(domain: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if virsh_ok(&["domstate", domain]).trim() == "shut off" {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{domain} did not shut off");
}

#[test]
fn a_libvirt_domain_runs_on_the_vtpm_the_hook_starts_and_keeps_its_nv_data() {
    if !tools_present() {
        return;
    }
    let Some(kernel) = ready() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // QEMU runs as another user: what it reads must be readable, and no more.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let guest = dir.join("guest");
    std::fs::create_dir(&guest).unwrap();
    std::fs::copy(&kernel, guest.join("vmlinuz")).unwrap();
    let built = Command::new(repo_root().join("tests/qemu/build-initramfs"))
        .arg(guest.join("initrd.gz"))
        .status()
        .unwrap();
    assert!(built.success());
    for f in ["vmlinuz", "initrd.gz"] {
        std::fs::set_permissions(guest.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    let data = dir.join("data");
    let kp = dir.join("kp.xml");
    common::vm_with_local_kp(&data, &kp, "lvguest");
    let shown: serde_json::Value =
        serde_json::from_slice(&vmsec_ok(&data, &["--json", "vm", "show", "lvguest"], b"").stdout)
            .unwrap();
    let uuid = shown["vm"]["id"].as_str().unwrap().to_owned();
    let domain = format!("vmsec-test-{}", &uuid[..8]);
    let _cleanup = Cleanup(domain.clone());

    let log = dir.join("hook.log");
    std::fs::create_dir_all(Path::new(HOOK).parent().unwrap()).unwrap();
    std::fs::write(
        HOOK,
        format!(
            "#!/bin/sh\nexec {} --data {} libvirt-hook \"$@\" >>{} 2>&1\n",
            env!("CARGO_BIN_EXE_vmsec"),
            data.display(),
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(HOOK, std::fs::Permissions::from_mode(0o755)).unwrap();
    reload_hooks();

    let uid_gid = std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("libvirt-qemu:"))
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            format!("+{}:+{}", f[2], f[3])
        })
        .expect("the libvirt-qemu user");
    let console = dir.join("console.log");
    let socket = dir.join("run/swtpm.sock.ctrl");
    let xml = format!(
        "<domain type='qemu'><name>{domain}</name><uuid>{uuid}</uuid><memory unit='MiB'>256</memory>\
         <os><type arch='x86_64' machine='q35'>hvm</type><kernel>{k}</kernel><initrd>{i}</initrd>\
         <cmdline>console=ttyS0 quiet panic=-1 vmsec_mode=auto</cmdline></os><features><acpi/></features>\
         <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>\
         <seclabel type='static' model='dac' relabel='no'><label>{uid_gid}</label></seclabel>\
         <devices><serial type='file'><source path='{c}'/><target port='0'/></serial>\
         <tpm model='tpm-crb'><backend type='external'><source type='unix' mode='connect' path='{s}'/></backend></tpm>\
         </devices></domain>",
        k = guest.join("vmlinuz").display(),
        i = guest.join("initrd.gz").display(),
        c = console.display(),
        s = socket.display(),
    );
    let xml_file = dir.join("domain.xml");
    std::fs::write(&xml_file, xml).unwrap();
    virsh_ok(&["define", xml_file.to_str().unwrap()]);

    let hook_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let boot = || {
        let out = virsh(&["start", &domain]);
        assert!(
            out.status.success(),
            "virsh start: {}\nhook: {}",
            String::from_utf8_lossy(&out.stderr),
            hook_log()
        );
        wait_shut_off(&domain);
        std::fs::read_to_string(&console).unwrap_or_default()
    };
    let first = boot();
    assert!(
        first.contains("VMSEC_GUEST TPM_VERSION=2"),
        "{first}\nhook: {}",
        hook_log()
    );
    assert!(first.contains("VMSEC_GUEST NV_WRITTEN"), "{first}");
    let kp_first = run_vmsec(&data, &["vm", "kp", "get", "lvguest"], b"").stdout;

    let second = boot();
    assert!(
        second.contains(&format!("VMSEC_GUEST NV_READ={VALUE}")),
        "{second}"
    );
    assert!(!second.contains("NV_WRITTEN"), "{second}");
    assert_ne!(
        run_vmsec(&data, &["vm", "kp", "get", "lvguest"], b"").stdout,
        kp_first,
        "the second start rolled the KP"
    );

    // Destroyed while running: the release hook leaves the vTPM stopped.
    virsh_ok(&["start", &domain]);
    virsh_ok(&["destroy", &domain]);
    std::thread::sleep(Duration::from_millis(500));
    let status: serde_json::Value = serde_json::from_slice(
        &vmsec_ok(&data, &["--json", "tpm", "status", "lvguest"], b"").stdout,
    )
    .unwrap();
    assert_eq!(
        status[0]["status"]["state"],
        "stopped",
        "{status}\nhook: {}",
        hook_log()
    );
}
