//! Whole flows against the real swtpm and tpm2-tools.
//!
//! Without swtpm these tests print "skipped" and pass, unless CI=true, where
//! a missing swtpm is a failure. Each test uses its own temporary directory
//! and port, and a guard stops its swtpm even when an assertion fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use tempfile::TempDir;
use vmsec_tpm::{
    Endpoint, StateKey, Status, StopOutcome, TpmError, VtpmPaths, manufacture, start, status, stop,
};

const NV_INDEX: &str = "0x1500016";
const SECRET: &[u8] = b"vmsec-nv-canary-7f3a91c2";

/// Whether swtpm and tpm2-tools are installed; fails under CI=true if not.
fn tools_available(test: &str) -> bool {
    let missing: Vec<&str> = ["swtpm", "swtpm_setup", "swtpm_localca", "tpm2_nvread"]
        .into_iter()
        .filter(|tool| !on_path(tool))
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{test}: {missing:?} not installed but CI=true; install: apt-get install -y swtpm swtpm-tools tpm2-tools"
        );
    }
    eprintln!("{test}: skipped, {missing:?} not installed");
    false
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// A port P with P and P + 1 free on loopback right now.
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = probe.local_addr().expect("addr").port();
        if port < u16::MAX - 1 && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two adjacent free ports found");
}

/// One VM's vTPM in a temporary directory; stops its swtpm when dropped.
struct Vm {
    dir: TempDir,
    paths: VtpmPaths,
}

impl Vm {
    fn new() -> Vm {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = VtpmPaths::under(&dir.path().join("vm"));
        Vm { dir, paths }
    }

    fn ca_dir(&self) -> PathBuf {
        self.dir.path().join("ca")
    }

    fn manufacture(&self, dek: &StateKey) {
        let done = manufacture(&self.paths, &self.ca_dir(), dek).expect("manufacture");
        eprintln!("timing: manufacture {:?}", done.elapsed);
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Err(e) = stop(&self.paths) {
            eprintln!("cleanup: stopping swtpm failed: {e}");
        }
    }
}

/// Runs a tpm2-tools command against `endpoint`, bounded by `timeout(1)`.
fn tpm2(endpoint: &Endpoint, tool: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new("timeout")
        .arg("30")
        .arg(tool)
        .args(["-T", &endpoint.tcti()])
        .args(args)
        .output()
        .expect("run tpm2 tool");
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn write_nv(endpoint: &Endpoint, scratch: &Path) {
    let value = scratch.join("value.bin");
    std::fs::write(&value, SECRET).expect("write value");
    tpm2(
        endpoint,
        "tpm2_nvdefine",
        &[
            NV_INDEX,
            "-C",
            "o",
            "-s",
            "32",
            "-a",
            "ownerread|ownerwrite",
        ],
    );
    tpm2(
        endpoint,
        "tpm2_nvwrite",
        &[NV_INDEX, "-C", "o", "-i", value.to_str().expect("utf-8")],
    );
}

fn read_nv(endpoint: &Endpoint) -> Vec<u8> {
    let len = SECRET.len().to_string();
    tpm2(endpoint, "tpm2_nvread", &[NV_INDEX, "-C", "o", "-s", &len])
}

/// Whether `pid` is a live process (zombies awaiting their reaper are not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
    })
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("read state dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            std::fs::read(p).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

#[test]
fn nv_value_survives_restart_with_the_same_state_key_and_is_never_stored_in_clear() {
    if !tools_available("nv_value_survives_restart") {
        return;
    }
    let vm = Vm::new();
    let dek = StateKey::generate().expect("dek");
    vm.manufacture(&dek);
    let endpoint = Endpoint::Tcp {
        port: free_port_pair(),
    };

    let running = start(&vm.paths, &endpoint, &dek).expect("first start");
    eprintln!("timing: start {:?}", running.startup);
    assert_eq!(
        status(&vm.paths).expect("status"),
        Status::Running {
            pid: running.pid,
            endpoint: Some(endpoint.clone())
        }
    );
    write_nv(&endpoint, vm.dir.path());

    let t = Instant::now();
    assert_eq!(stop(&vm.paths).expect("stop"), StopOutcome::Graceful);
    eprintln!("timing: stop {:?}", t.elapsed());
    assert_eq!(
        status(&vm.paths).expect("status"),
        Status::Stopped {
            stale_pid_file: false
        }
    );
    assert!(
        files_containing(&vm.paths.state_dir, SECRET).is_empty(),
        "NV value found in clear in the state directory"
    );
    assert!(
        files_containing(&vm.paths.state_dir, b"swtpm").is_empty(),
        "EK certificate text found in clear: state not encrypted"
    );

    let again = start(&vm.paths, &endpoint, &dek).expect("second start");
    eprintln!("timing: restart {:?}", again.startup);
    assert_eq!(read_nv(&endpoint), SECRET);
    assert_eq!(stop(&vm.paths).expect("stop"), StopOutcome::Graceful);
}

#[test]
fn the_local_ca_lives_in_the_given_directory_and_manufacture_never_overwrites() {
    if !tools_available("local_ca") {
        return;
    }
    let vm = Vm::new();
    let dek = StateKey::generate().expect("dek");
    vm.manufacture(&dek);
    for file in ["issuercert.pem", "signkey.pem", "swtpm_setup.conf"] {
        assert!(
            vm.ca_dir().join(file).is_file(),
            "{file} missing from CA dir"
        );
    }
    let again = manufacture(&vm.paths, &vm.ca_dir(), &dek);
    assert!(
        matches!(again, Err(TpmError::AlreadyManufactured(_))),
        "{again:?}"
    );
}

#[test]
fn starting_with_a_wrong_state_key_fails_clearly_and_leaves_nothing_running() {
    if !tools_available("wrong_state_key") {
        return;
    }
    let vm = Vm::new();
    vm.manufacture(&StateKey::generate().expect("dek"));
    let endpoint = Endpoint::Tcp {
        port: free_port_pair(),
    };
    let wrong = StateKey::generate().expect("dek");
    let err = start(&vm.paths, &endpoint, &wrong).expect_err("wrong key must fail");
    assert!(matches!(err, TpmError::WrongStateKey { .. }), "{err}");
    assert!(
        err.to_string().contains("could not decrypt"),
        "message: {err}"
    );
    assert!(matches!(
        status(&vm.paths).expect("status"),
        Status::Stopped { .. }
    ));
}

#[test]
fn unix_socket_endpoint_serves_tpm2_tools_and_refuses_a_second_start() {
    if !tools_available("unix_socket_endpoint") {
        return;
    }
    let vm = Vm::new();
    let dek = StateKey::generate().expect("dek");
    vm.manufacture(&dek);
    let endpoint = Endpoint::Unix {
        path: vm.dir.path().join("tpm.sock"),
    };
    let running = start(&vm.paths, &endpoint, &dek).expect("start");
    assert!(vm.dir.path().join("tpm.sock.ctrl").exists());

    let random = tpm2(&endpoint, "tpm2_getrandom", &["8"]);
    assert_eq!(random.len(), 8);
    write_nv(&endpoint, vm.dir.path());
    assert_eq!(read_nv(&endpoint), SECRET);

    let second = start(&vm.paths, &endpoint, &dek);
    assert!(
        matches!(second, Err(TpmError::AlreadyRunning { pid, .. }) if pid == running.pid),
        "{second:?}"
    );
    assert_eq!(stop(&vm.paths).expect("stop"), StopOutcome::Graceful);
    assert!(!vm.dir.path().join("tpm.sock").exists());
    assert_eq!(stop(&vm.paths).expect("stop"), StopOutcome::NotRunning);
}

#[test]
fn a_killed_swtpm_leaves_a_stale_pid_that_start_recovers_from() {
    if !tools_available("killed_swtpm") {
        return;
    }
    let vm = Vm::new();
    let dek = StateKey::generate().expect("dek");
    vm.manufacture(&dek);
    let endpoint = Endpoint::Unix {
        path: vm.dir.path().join("tpm.sock"),
    };
    let running = start(&vm.paths, &endpoint, &dek).expect("start");
    let killed = Command::new("kill")
        .args(["-s", "KILL", &running.pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while alive(running.pid) && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        status(&vm.paths).expect("status"),
        Status::Stopped {
            stale_pid_file: true
        }
    );

    let restarted = start(&vm.paths, &endpoint, &dek).expect("start after kill");
    assert_ne!(restarted.pid, running.pid);
    assert_eq!(tpm2(&endpoint, "tpm2_getrandom", &["4"]).len(), 4);
    assert_eq!(stop(&vm.paths).expect("stop"), StopOutcome::Graceful);
}

#[test]
fn stop_falls_back_to_sigterm_when_the_control_channel_is_gone() {
    if !tools_available("sigterm_fallback") {
        return;
    }
    let vm = Vm::new();
    let dek = StateKey::generate().expect("dek");
    vm.manufacture(&dek);
    let endpoint = Endpoint::Unix {
        path: vm.dir.path().join("tpm.sock"),
    };
    let running = start(&vm.paths, &endpoint, &dek).expect("start");
    // Unlinking the control socket makes the graceful shutdown unreachable
    // while swtpm itself keeps running.
    std::fs::remove_file(vm.dir.path().join("tpm.sock.ctrl")).expect("unlink ctrl");
    assert_eq!(stop(&vm.paths).expect("stop"), StopOutcome::Terminated);
    assert!(!alive(running.pid), "swtpm {} still running", running.pid);
    assert_eq!(
        status(&vm.paths).expect("status"),
        Status::Stopped {
            stale_pid_file: false
        }
    );
}

#[test]
fn a_busy_port_fails_to_start_with_swtpm_s_own_message() {
    if !tools_available("busy_port") {
        return;
    }
    let vm = Vm::new();
    let dek = StateKey::generate().expect("dek");
    vm.manufacture(&dek);
    let port = free_port_pair();
    let _occupant = TcpListener::bind(("127.0.0.1", port)).expect("occupy port");
    let err = start(&vm.paths, &Endpoint::Tcp { port }, &dek).expect_err("port is busy");
    eprintln!("busy port error: {err}");
    match &err {
        TpmError::StartFailed { log, .. } => assert!(!log.is_empty(), "no swtpm log quoted"),
        other => panic!("expected StartFailed, got {other}"),
    }
    assert!(matches!(
        status(&vm.paths).expect("status"),
        Status::Stopped { .. }
    ));
}
