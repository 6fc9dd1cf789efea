//! The vTPM end to end (issue 6): the built binary starts real swtpm daemons under key
//! protectors, and tpm2-tools reads back what a guest would have stored.
//!
//! Every vTPM listens on a unix socket inside its test's temporary directory, so tests run in
//! parallel without competing for ports, and a [`Running`] guard stops swtpm even when an
//! assertion fails.

mod common;

use common::tools_present;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The NV index the tests write, in the owner's range.
const NV_INDEX: &str = "0x1500016";
/// A persistent handle for the primary key the tests make.
const PERSISTENT_HANDLE: &str = "0x81000005";
/// What the tests write to NV: distinctive, so a plaintext copy on disk would be found.
const VALUE: &[u8; 32] = b"vmsec-vtpm-secret-0123456789ABCD";

/// One host: a data directory of its own.
struct Host {
    data: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        Host {
            data: tempfile::tempdir().expect("temporary data directory"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.data.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vmsec"))
            .arg("--data")
            .arg(self.data.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running vmsec")
    }

    /// Runs a command that must succeed and returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "vmsec {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).expect("JSON output")
    }

    /// Runs a command that must fail with exit code 1 and returns its standard error.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "vmsec {args:?} should fail with 1; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).expect("UTF-8 error")
    }

    /// A VM with TPM on and a key protector owned by `owner`, a guardian made here.
    fn vm_with_tpm(&self, vm: &str, owner: &str) {
        self.ok(&["guardian", "new", owner]);
        let kp = self.path(&format!("{vm}-kp.xml"));
        self.ok(&["kp", "new", "--owner", owner, "--out", s(&kp)]);
        self.ok(&["vm", "add", vm]);
        self.ok(&["vm", "kp", "set", vm, s(&kp)]);
        self.ok(&["vm", "security", "set", vm, "--tpm", "on"]);
    }

    fn socket(&self, vm: &str) -> PathBuf {
        self.path(&format!("{vm}.sock"))
    }

    /// `tpm start` on this VM's socket; the guard stops swtpm when dropped.
    fn start<'h>(&'h self, vm: &str) -> Running<'h> {
        let started = self.json(&["tpm", "start", vm, "--socket", s(&self.socket(vm))]);
        Running::new(self, vm, started)
    }

    fn vm_id(&self, vm: &str) -> String {
        self.json(&["vm", "show", vm])["vm"]["id"]
            .as_str()
            .expect("VM id")
            .to_owned()
    }

    fn vtpm_dir(&self, vm: &str) -> PathBuf {
        self.path("vtpm").join(self.vm_id(vm))
    }

    fn kp_bytes(&self, vm: &str) -> Vec<u8> {
        self.run(&["vm", "kp", "get", vm]).stdout
    }
}

/// A running vTPM; dropping it runs `tpm stop`, so no test leaves a swtpm behind.
struct Running<'h> {
    host: &'h Host,
    vm: String,
    started: serde_json::Value,
}

impl<'h> Running<'h> {
    fn new(host: &'h Host, vm: &str, started: serde_json::Value) -> Running<'h> {
        Running {
            host,
            vm: vm.to_owned(),
            started,
        }
    }

    fn tcti(&self) -> String {
        self.started["tcti"].as_str().expect("tcti").to_owned()
    }

    fn tpm2(&self, tool: &str, args: &[&str]) -> Output {
        Command::new(tool)
            .env("TPM2TOOLS_TCTI", self.tcti())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {tool}: {e}"))
    }

    fn tpm2_ok(&self, tool: &str, args: &[&str]) -> Vec<u8> {
        let out = self.tpm2(tool, args);
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Defines the NV index and writes [`VALUE`] to it, as a guest would.
    fn write_value(&self, dir: &Path) {
        let file = dir.join("value.bin");
        std::fs::write(&file, VALUE).expect("writing the value file");
        self.tpm2_ok(
            "tpm2_nvdefine",
            &[
                NV_INDEX,
                "-C",
                "o",
                "-s",
                "32",
                "-a",
                "ownerread|ownerwrite|policywrite|authwrite|authread",
            ],
        );
        self.tpm2_ok("tpm2_nvwrite", &[NV_INDEX, "-C", "o", "-i", s(&file)]);
    }

    fn read_value(&self) -> Vec<u8> {
        self.tpm2_ok("tpm2_nvread", &[NV_INDEX, "-C", "o", "-s", "32"])
    }

    fn stop(self) {
        // Drop does the work; consuming self makes the stop point explicit in the tests.
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let out = self.host.run(&["tpm", "stop", &self.vm]);
        if !out.status.success() && !std::thread::panicking() {
            panic!(
                "tpm stop {} failed: {}",
                self.vm,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temporary path")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).expect("reading a directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.is_file() {
                found.push(path);
            }
        }
    }
    found
}

/// A VM whose vTPM has been manufactured and holds [`VALUE`] at [`NV_INDEX`], stopped.
fn vm_holding_value(host: &Host, vm: &str, owner: &str) {
    host.vm_with_tpm(vm, owner);
    let tpm = host.start(vm);
    assert_eq!(tpm.started["manufactured"], true);
    tpm.write_value(host.data.path());
    tpm.stop();
}

#[test]
fn a_restart_rolls_the_key_protector_and_keeps_nv_data_and_persistent_keys() {
    if !tools_present() {
        return;
    }
    let host = Host::new();
    host.vm_with_tpm("vm1", "owner");
    let tpm = host.start("vm1");
    tpm.write_value(host.data.path());
    let ctx = host.path("primary.ctx");
    tpm.tpm2_ok("tpm2_createprimary", &["-C", "o", "-c", s(&ctx), "-Q"]);
    tpm.tpm2_ok(
        "tpm2_evictcontrol",
        &["-C", "o", "-c", s(&ctx), PERSISTENT_HANDLE],
    );
    tpm.stop();
    let before = host.kp_bytes("vm1");

    let tpm = host.start("vm1");
    assert_eq!(tpm.started["manufactured"], false);
    let after = host.kp_bytes("vm1");
    assert_ne!(before, after, "a start must roll the key protector");
    assert_eq!(
        host.json(&["vm", "show", "vm1"])["last_known_good_is_current"],
        true
    );
    assert_eq!(tpm.read_value(), VALUE);
    let handles =
        String::from_utf8_lossy(&tpm.tpm2_ok("tpm2_getcap", &["handles-persistent"])).into_owned();
    assert!(handles.contains(PERSISTENT_HANDLE), "{handles}");
    tpm.stop();
}

#[test]
fn a_running_serve_starts_the_vtpm_the_cli_asks_for_and_without_one_the_cli_starts_it() {
    if !tools_present() {
        return;
    }
    let host = Host::new();
    host.vm_with_tpm("vm1", "owner");
    let served = common::Served::start(host.data.path());
    let tpm = host.start("vm1");
    assert_eq!(tpm.started["via"], "serve", "{}", tpm.started);
    tpm.write_value(host.data.path());
    // A refusal reaches the CLI as its own would: the message, exit code 1.
    let refused = host.fails(&["tpm", "start", "no-such-vm"]);
    assert!(refused.contains("no-such-vm"), "{refused}");
    tpm.stop();
    let audited = host.json(&["audit", "--limit", "1000"]);
    let starts: Vec<_> = audited
        .as_array()
        .expect("audit records")
        .iter()
        .filter(|r| r["operation"] == "TpmStart" && r["outcome"] == "succeeded")
        .collect();
    assert_eq!(starts.len(), 1, "{audited}");
    assert!(
        starts[0]["actor"].as_str().unwrap().starts_with("local:"),
        "the server acts as the local administrator: {}",
        starts[0]
    );
    // A CLI that acts as another host is not the server's to serve.
    let as_other = Command::new(env!("CARGO_BIN_EXE_vmsec"))
        .arg("--data")
        .arg(host.data.path())
        .args(["--json", "tpm", "start", "vm1", "--socket"])
        .arg(host.socket("vm1"))
        .env("VMSEC_HOST_NAME", "another-host")
        .output()
        .unwrap();
    assert!(as_other.status.success(), "{as_other:?}");
    let tpm = Running::new(
        &host,
        "vm1",
        serde_json::from_slice(&as_other.stdout).unwrap(),
    );
    assert_eq!(tpm.started["via"], "cli", "{}", tpm.started);
    tpm.stop();
    // A server killed leaves its socket behind; nobody answers it, so the CLI starts alone.
    drop(served);
    let tpm = host.start("vm1");
    assert_eq!(tpm.started["via"], "cli", "{}", tpm.started);
    assert_eq!(tpm.read_value(), VALUE);
    tpm.stop();
}

#[test]
fn the_state_on_disk_holds_no_plaintext_and_swtpm_refuses_a_wrong_state_key() {
    if !tools_present() {
        return;
    }
    let host = Host::new();
    vm_holding_value(&host, "vm1", "owner");
    let dir = host.vtpm_dir("vm1");
    let state = dir.join("state");
    let files = files_under(&dir);
    assert!(
        files.iter().any(|f| f.starts_with(&state)),
        "no state files in {}",
        state.display()
    );
    for f in &files {
        let bytes = std::fs::read(f).expect("reading a vTPM file");
        assert!(
            !contains(&bytes, VALUE),
            "{} holds the plaintext",
            f.display()
        );
    }

    let scratch = tempfile::tempdir().expect("temporary directory");
    let paths = vmsec_tpm::VtpmPaths {
        state_dir: state.clone(),
        log_file: scratch.path().join("swtpm.log"),
        pid_file: scratch.path().join("swtpm.pid"),
    };
    let endpoint = vmsec_tpm::Endpoint::Unix {
        path: scratch.path().join("direct.sock"),
    };
    let wrong = vmsec_tpm::StateKey::generate().expect("a random key");
    match vmsec_tpm::start(&paths, &endpoint, &wrong) {
        Err(vmsec_tpm::TpmError::WrongStateKey { .. }) => {}
        Err(e) => panic!("a wrong state key should be reported as such, got: {e}"),
        Ok(running) => {
            let _ = vmsec_tpm::stop(&paths);
            panic!("swtpm started with a wrong state key (pid {})", running.pid);
        }
    }

    // The refusal did not damage the state: the right key still opens it.
    let tpm = host.start("vm1");
    assert_eq!(tpm.read_value(), VALUE);
}

#[test]
fn start_refusals_name_the_command_that_fixes_them() {
    if !tools_present() {
        return;
    }
    let host = Host::new();
    host.ok(&["vm", "add", "vm1"]);
    // No key protector: that comes first, since the TPM cannot be turned on without one.
    let err = host.fails(&["tpm", "start", "vm1", "--socket", s(&host.socket("vm1"))]);
    assert!(err.contains("vm kp set"), "{err}");

    host.ok(&["guardian", "new", "owner"]);
    let kp = host.path("kp.xml");
    host.ok(&["kp", "new", "--owner", "owner", "--out", s(&kp)]);
    host.ok(&["vm", "kp", "set", "vm1", s(&kp)]);
    let err = host.fails(&["tpm", "start", "vm1", "--socket", s(&host.socket("vm1"))]);
    assert!(err.contains("--tpm on"), "{err}");
    assert_eq!(
        host.json(&["tpm", "status", "vm1"])[0]["status"]["state"],
        "stopped"
    );

    // An import that breaks the rules (TPM on without a key protector) is refused.
    host.ok(&["vm", "security", "set", "vm1", "--tpm", "on"]);
    let out = host.path("export");
    host.ok(&["vm", "export", "vm1", "--out", s(&out)]);
    std::fs::remove_file(out.join("key-protector.xml")).expect("removing the KP");
    let other = Host::new();
    let err = other.fails(&["vm", "import", s(&out)]);
    assert!(err.contains("no key protector"), "{err}");
}

#[test]
fn a_key_protector_this_host_cannot_unwrap_changes_nothing_until_restored() {
    if !tools_present() {
        return;
    }
    let host = Host::new();
    vm_holding_value(&host, "vm1", "owner");

    // A KP owned by a guardian whose private keys live only in another data directory.
    let elsewhere = Host::new();
    elsewhere.ok(&["guardian", "new", "foreign"]);
    let foreign_kp = elsewhere.path("foreign-kp.xml");
    elsewhere.ok(&["kp", "new", "--owner", "foreign", "--out", s(&foreign_kp)]);
    let metadata = elsewhere.path("foreign.xml");
    elsewhere.ok(&["guardian", "export", "foreign", "--out", s(&metadata)]);
    host.ok(&["guardian", "import", "foreign", "--metadata", s(&metadata)]);
    host.ok(&["vm", "kp", "set", "vm1", s(&foreign_kp)]);

    let kp_before = host.kp_bytes("vm1");
    let show_before = host.json(&["vm", "show", "vm1"]);
    let err = host.fails(&["tpm", "start", "vm1", "--socket", s(&host.socket("vm1"))]);
    assert!(err.contains("could not be unwrapped on this host"), "{err}");
    // It names who the protector grants and whose keys this host holds.
    assert!(err.contains("it grants foreign"), "{err}");
    assert!(err.contains("this host holds the keys of owner"), "{err}");
    assert!(err.contains("vm kp restore"), "{err}");
    assert_eq!(host.kp_bytes("vm1"), kp_before);
    assert_eq!(
        kp_before,
        std::fs::read(&foreign_kp).expect("reading the KP")
    );
    assert_eq!(host.json(&["vm", "show", "vm1"]), show_before);
    assert_eq!(
        host.json(&["tpm", "status", "vm1"])[0]["status"]["state"],
        "stopped"
    );

    host.ok(&["vm", "kp", "restore", "vm1"]);
    let tpm = host.start("vm1");
    assert_eq!(tpm.read_value(), VALUE);
}

/// The check chosen for "the old owner no longer unlocks it": once the old owner's guardian is
/// gone from this host, the KP saved before the switch cannot start the vTPM, while the new
/// owner's (last known good) KP still does. Whether an old KP of a still-present owner starts
/// it is not a security property: start reseals from the last known good, which the host
/// can unwrap either way.
#[test]
fn switching_to_a_new_local_owner_keeps_the_data_and_the_old_owner_stops_unlocking_it() {
    if !tools_present() {
        return;
    }
    let host = Host::new();
    vm_holding_value(&host, "vm1", "owner1");
    let old_kp = host.path("old-kp.xml");
    host.ok(&["vm", "kp", "get", "vm1", "--out", s(&old_kp)]);

    host.ok(&["guardian", "new", "owner2"]);
    let new_kp = host.path("owner2-kp.xml");
    host.ok(&["kp", "new", "--owner", "owner2", "--out", s(&new_kp)]);
    host.ok(&["vm", "kp", "set", "vm1", s(&new_kp)]);
    let tpm = host.start("vm1");
    assert_eq!(tpm.read_value(), VALUE);
    tpm.stop();
    assert_eq!(
        host.json(&["vm", "show", "vm1"])["last_known_good_is_current"],
        true
    );

    host.ok(&["guardian", "remove", "owner1", "--force"]);
    host.ok(&["vm", "kp", "set", "vm1", s(&old_kp)]);
    let err = host.fails(&["tpm", "start", "vm1", "--socket", s(&host.socket("vm1"))]);
    assert!(err.contains("could not be unwrapped on this host"), "{err}");

    host.ok(&["vm", "kp", "restore", "vm1"]);
    let tpm = host.start("vm1");
    assert_eq!(tpm.read_value(), VALUE);
}

#[test]
fn after_swtpm_is_killed_the_next_start_works_and_the_data_is_intact() {
    if !tools_present() {
        return;
    }
    let host = Host::new();
    host.vm_with_tpm("vm1", "owner");
    let tpm = host.start("vm1");
    // Written in the session that gets killed: NV writes must reach the disk at once.
    tpm.write_value(host.data.path());
    let status = host.json(&["tpm", "status", "vm1"]);
    assert_eq!(status[0]["status"]["state"], "running");
    let pid = status[0]["status"]["pid"]
        .as_u64()
        .expect("pid of a running vTPM")
        .to_string();
    assert_eq!(tpm.started["pid"].to_string(), pid);
    let killed = Command::new("kill")
        .args(["-9", &pid])
        .status()
        .expect("running kill");
    assert!(killed.success());
    // Drop runs `tpm stop` on a dead swtpm: it must clear the stale pid file, not fail.
    tpm.stop();

    let tpm = host.start("vm1");
    assert_eq!(tpm.read_value(), VALUE);
}

#[test]
fn killing_vmsec_during_a_start_leaves_a_store_that_starts_again_with_the_data() {
    if !tools_present() {
        return;
    }
    let host = Host::new();
    vm_holding_value(&host, "vm1", "owner");
    let socket = host.socket("vm1");
    for delay_ms in [0u64, 50, 150, 300, 500, 800, 1200, 2000] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vmsec"))
            .arg("--data")
            .arg(host.data.path())
            .args(["tpm", "start", "vm1", "--socket", s(&socket)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning vmsec");
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SIGKILL; the start may already have finished, which is one of the cases too.
        let _ = child.kill();
        let _ = child.wait();
        // An orphan swtpm (killed after it started, before the commit) is cleared here.
        host.ok(&["tpm", "stop", "vm1"]);

        let tpm = host.start("vm1");
        assert_eq!(tpm.read_value(), VALUE, "after a kill at {delay_ms} ms");
        tpm.stop();
        let kp = host.path("current.xml");
        host.ok(&["vm", "kp", "get", "vm1", "--out", s(&kp)]);
        host.ok(&["kp", "verify", s(&kp)]);
        assert_eq!(
            host.json(&["vm", "show", "vm1"])["last_known_good_is_current"],
            true,
            "after a kill at {delay_ms} ms"
        );
    }
}

/// Moves vm1 from `a` to `b` (both data directories) and returns the export directory.
fn export_import(a: &Host, b: &Host, name: &str) -> PathBuf {
    let out = a.path(name);
    a.ok(&["vm", "export", "vm1", "--out", s(&out)]);
    b.ok(&["vm", "import", s(&out)]);
    out
}

/// The move of the README: host B's guardian is granted in the VM's KP on host A, and A
/// starts the vTPM once so that the granted KP becomes the last known good, under which the
/// exported state key is sealed.
#[test]
fn a_vm_moves_to_another_host_once_that_host_is_granted() {
    if !tools_present() {
        return;
    }
    let a = Host::new();
    vm_holding_value(&a, "vm1", "ownerA");
    let b = Host::new();
    b.ok(&["guardian", "new", "hostB"]);
    let host_b = b.path("hostB.xml");
    b.ok(&["guardian", "export", "hostB", "--out", s(&host_b)]);

    export_import(&a, &b, "export1");
    let err = b.fails(&["tpm", "start", "vm1", "--socket", s(&b.socket("vm1"))]);
    assert!(err.contains("could not be unwrapped on this host"), "{err}");

    a.ok(&["guardian", "import", "hostB", "--metadata", s(&host_b)]);
    let kp = a.path("granted.xml");
    a.ok(&["vm", "kp", "get", "vm1", "--out", s(&kp)]);
    a.ok(&["kp", "grant", s(&kp), "--guardian", "hostB"]);
    a.ok(&["vm", "kp", "set", "vm1", s(&kp)]);
    a.start("vm1").stop();

    // B forgets the first import; `vm remove` takes its vTPM directory along.
    let vtpm_b = b.vtpm_dir("vm1");
    b.ok(&["vm", "remove", "vm1", "--force"]);
    assert!(
        !vtpm_b.exists(),
        "vm remove removes the VM's vTPM directory"
    );
    export_import(&a, &b, "export2");
    let tpm = b.start("vm1");
    assert_eq!(tpm.started["manufactured"], false);
    assert_eq!(tpm.read_value(), VALUE);
}

/// The move as issue 6 describes it: grant, SetKeyProtector and export without a start on A.
/// B cannot unwrap the last known good (A's KP without B), but granting kept the transport
/// key, so the state key unseals with the current KP's TK.
#[test]
fn a_vm_granted_to_another_host_starts_there_without_a_start_on_the_old_host() {
    if !tools_present() {
        return;
    }
    let a = Host::new();
    vm_holding_value(&a, "vm1", "ownerA");
    let b = Host::new();
    b.ok(&["guardian", "new", "hostB"]);
    let host_b = b.path("hostB.xml");
    b.ok(&["guardian", "export", "hostB", "--out", s(&host_b)]);
    a.ok(&["guardian", "import", "hostB", "--metadata", s(&host_b)]);
    let kp = a.path("granted.xml");
    a.ok(&["vm", "kp", "get", "vm1", "--out", s(&kp)]);
    a.ok(&["kp", "grant", s(&kp), "--guardian", "hostB"]);
    a.ok(&["vm", "kp", "set", "vm1", s(&kp)]);
    export_import(&a, &b, "export");
    let tpm = b.start("vm1");
    assert_eq!(tpm.read_value(), VALUE);
}

#[test]
fn the_tpm_cannot_be_turned_off_under_a_running_vtpm() {
    if !tools_present() {
        return;
    }
    let host = Host::new();
    host.vm_with_tpm("vm1", "owner");
    let tpm = host.start("vm1");
    let err = host.fails(&["vm", "security", "set", "vm1", "--tpm", "off"]);
    assert!(
        err.contains("is running") && err.contains("tpm stop"),
        "{err}"
    );
    assert_eq!(
        host.json(&["vm", "show", "vm1"])["settings"]["TpmEnabled"],
        true
    );
    tpm.stop();
    host.ok(&["vm", "security", "set", "vm1", "--tpm", "off"]);
    assert_eq!(
        host.json(&["vm", "show", "vm1"])["settings"]["TpmEnabled"],
        false
    );
}

#[test]
fn a_start_that_would_silently_manufacture_a_new_vtpm_is_refused_unless_reset() {
    if !tools_present() {
        return;
    }
    let host = Host::new();
    vm_holding_value(&host, "vm1", "owner");
    let kp_before = host.kp_bytes("vm1");
    // An empty --state directory: the old state is elsewhere.
    let empty = host.path("empty-state");
    std::fs::create_dir(&empty).unwrap();
    let err = host.fails(&[
        "tpm",
        "start",
        "vm1",
        "--socket",
        s(&host.socket("vm1")),
        "--state",
        s(&empty),
    ]);
    assert!(
        err.contains("was started before")
            && err.contains("empty-state")
            && err.contains("--reset"),
        "{err}"
    );
    assert_eq!(
        host.kp_bytes("vm1"),
        kp_before,
        "a refused start changes nothing"
    );
    // Back at its own state, the vTPM still holds the value.
    let default_state = host.vtpm_dir("vm1").join("state");
    let tpm = host.json(&[
        "tpm",
        "start",
        "vm1",
        "--socket",
        s(&host.socket("vm1")),
        "--state",
        s(&default_state),
    ]);
    let tpm = Running::new(&host, "vm1", tpm);
    assert_eq!(tpm.read_value(), VALUE);
    tpm.stop();
    // A deleted state file is refused too; --reset manufactures a new vTPM on purpose.
    std::fs::remove_file(default_state.join("tpm2-00.permall")).unwrap();
    let err = host.fails(&["tpm", "start", "vm1", "--socket", s(&host.socket("vm1"))]);
    assert!(err.contains("was started before"), "{err}");
    let started = host.json(&[
        "tpm",
        "start",
        "vm1",
        "--socket",
        s(&host.socket("vm1")),
        "--reset",
    ]);
    assert_eq!(started["manufactured"], true);
    Running::new(&host, "vm1", started).stop();
}

#[test]
fn a_vm_exported_with_move_no_longer_starts_on_the_source_host() {
    if !tools_present() {
        return;
    }
    let host = Host::new();
    vm_holding_value(&host, "vm1", "owner");
    let out = host.path("export");
    host.ok(&["vm", "export", "vm1", "--out", s(&out), "--move"]);
    let kp = host.kp_bytes("vm1");
    let err = host.fails(&["tpm", "start", "vm1", "--socket", s(&host.socket("vm1"))]);
    assert!(
        err.contains("moved to another host") && err.contains("export"),
        "{err}"
    );
    assert_eq!(host.kp_bytes("vm1"), kp, "a refused start changes nothing");
    // The moved VM's registration can be dropped here as the message says.
    host.ok(&["vm", "remove", "vm1", "--force"]);
}
