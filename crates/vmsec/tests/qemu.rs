//! A real guest (issue 16): QEMU with TCG boots Debian's cloud kernel and a busybox initramfs
//! (tests/qemu/build-initramfs) with exactly the vTPM arguments `vmsec tpm start` prints. The
//! guest sees a TPM 2.0 and writes an NV index with tpm2-tools; QEMU's exit shuts swtpm down,
//! which `tpm status` reports; a second start rolls the key protector, and a second boot reads
//! the value back. Nothing readable of it is left on disk.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{run_vmsec, tools_present, vmsec_ok};

const VALUE: &str = "vmsec-qemu-guest-nv-0123456789AB";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// QEMU, the guest kernel (scripts/setup fetches it) and the initramfs's tools, or a skip
/// (a failure with CI=true).
fn guest_kernel() -> Option<PathBuf> {
    let kernel = std::env::var_os("VMSEC_GUEST_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/guest/vmlinuz"));
    let have = |t: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
    };
    let missing: Vec<String> = ["qemu-system-x86_64", "busybox", "cpio"]
        .into_iter()
        .filter(|t| !have(t))
        .map(str::to_owned)
        .chain((!kernel.is_file()).then(|| kernel.display().to_string()))
        .collect();
    if missing.is_empty() {
        return Some(kernel);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("the QEMU guest test needs {missing:?}: run scripts/setup");
    }
    eprintln!("skipped: {missing:?} missing (run scripts/setup)");
    None
}

fn json(data: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_slice(&vmsec_ok(data, &a, b"").stdout).expect("JSON output")
}

/// Boots the guest once against the vTPM `started` describes; returns its serial console.
fn boot(kernel: &Path, initrd: &Path, started: &serde_json::Value, mode: &str) -> String {
    let args: Vec<&str> = started["qemu_args"]
        .as_array()
        .expect("qemu_args (a unix socket start)")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "q35",
            "-accel",
            "tcg",
            "-m",
            "256",
            "-nographic",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            &format!("console=ttyS0 quiet panic=-1 vmsec_mode={mode}"),
        ])
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting qemu-system-x86_64");
    // A guest that hangs is killed: the test must end.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let console = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        console.contains("VMSEC_GUEST DONE"),
        "the guest did not finish:\n{console}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    console
}

#[test]
fn a_qemu_guest_keeps_its_tpm_nv_data_across_a_restart_that_rolls_the_key_protector() {
    if !tools_present() {
        return;
    }
    let Some(kernel) = guest_kernel() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let initrd = tmp.path().join("initrd.gz");
    let built = Command::new(repo_root().join("tests/qemu/build-initramfs"))
        .arg(&initrd)
        .status()
        .unwrap();
    assert!(built.success(), "building the initramfs");

    let kp = tmp.path().join("kp.xml");
    common::vm_with_local_kp(&data, &kp, "guest");

    let started = json(&data, &["tpm", "start", "guest"]);
    let console = boot(&kernel, &initrd, &started, "write");
    assert!(console.contains("VMSEC_GUEST TPM_VERSION=2"), "{console}");
    assert!(console.contains("VMSEC_GUEST NV_WRITTEN"), "{console}");
    // QEMU's exit told swtpm to shut down: the status says so, and a new start is needed.
    let status = json(&data, &["tpm", "status", "guest"]);
    assert_eq!(status[0]["status"]["state"], "stopped", "{status}");
    let kp_after_first = run_vmsec(&data, &["vm", "kp", "get", "guest"], b"").stdout;

    let started = json(&data, &["tpm", "start", "guest"]);
    assert_eq!(started["manufactured"], false);
    let kp_after_second = run_vmsec(&data, &["vm", "kp", "get", "guest"], b"").stdout;
    assert_ne!(
        kp_after_first, kp_after_second,
        "the second start rolled the key protector"
    );
    let console = boot(&kernel, &initrd, &started, "read");
    assert!(
        console.contains(&format!("VMSEC_GUEST NV_READ={VALUE}")),
        "{console}"
    );

    // Nothing of the value is readable in the data directory.
    let mut pending = vec![data.clone()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                pending.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                assert!(
                    !bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()),
                    "{} holds the NV value in the clear",
                    p.display()
                );
            }
        }
    }
    let _ = run_vmsec(&data, &["tpm", "stop", "guest"], b"");
}
