//! The CLI end to end: the built binary on a fresh data directory.

use std::io::Write;
use std::process::{Command, Output, Stdio};

struct Cli {
    data: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        Cli {
            data: tempfile::tempdir().unwrap(),
        }
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vmsec"))
            .arg("--data")
            .arg(self.data.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, b"")
    }

    /// Runs a command that must succeed and returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "vmsec {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Runs a command that must fail with exit code 1 and returns its standard error.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "vmsec {args:?} should fail with 1"
        );
        String::from_utf8(out.stderr).unwrap()
    }
}

const KP: &str =
    "<Protector xmlns=\"http://schemas.microsoft.com/kps/2014/07\"><Wrappings/></Protector>";

#[test]
fn version_and_help_succeed_and_usage_errors_exit_2() {
    let c = Cli::new();
    assert!(c.ok(&["--version"]).starts_with("vmsec "));
    assert!(c.ok(&["--help"]).contains("vm"));
    assert_eq!(c.run(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(
        c.run(&["vm", "security", "set", "x", "--tpm", "maybe"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn a_walk_through_of_users_vms_settings_and_key_protectors() {
    let c = Cli::new();
    let out = c.run_with_stdin(
        &[
            "user",
            "add",
            "alice",
            "--role",
            "operator",
            "--password-stdin",
        ],
        b"s3cret-passw0rd\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        c.json(&["user", "list"]),
        serde_json::json!([{ "name": "alice", "role": "operator", "created": c.json(&["user", "list"])[0]["created"] }])
    );

    let vm = c.json(&[
        "vm",
        "add",
        "web1",
        "--id",
        "b5314955-3924-42ba-abf9-793993d340a0",
    ]);
    assert_eq!(vm["id"], "b5314955-3924-42ba-abf9-793993d340a0");
    assert_eq!(c.json(&["vm", "list"])[0]["name"], "web1");

    let err = c.fails(&["vm", "security", "set", "web1", "--tpm", "on"]);
    assert!(
        err.contains("no key protector") && err.contains("return code 5"),
        "{err}"
    );

    let kp_file = c.data.path().join("kp.xml");
    std::fs::write(&kp_file, KP).unwrap();
    c.ok(&["vm", "kp", "set", "web1", kp_file.to_str().unwrap()]);
    // By GUID as well as by name.
    assert_eq!(
        c.ok(&["vm", "kp", "get", "B5314955-3924-42BA-ABF9-793993D340A0"]),
        KP
    );
    let out_file = c.data.path().join("out.xml");
    c.ok(&[
        "vm",
        "kp",
        "get",
        "web1",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), KP);

    c.ok(&[
        "vm",
        "security",
        "set",
        "web1",
        "--tpm",
        "on",
        "--encrypt-state",
        "on",
    ]);
    let settings = c.json(&["vm", "security", "get", "web1"]);
    assert_eq!(settings["TpmEnabled"], true);
    assert_eq!(settings["EncryptStateAndVmMigrationTraffic"], true);
    assert_eq!(settings["ShieldingRequested"], false);

    let show = c.json(&["vm", "show", "web1"]);
    assert_eq!(
        show["instance_id"],
        "Microsoft:B5314955-3924-42BA-ABF9-793993D340A0"
    );
    assert_eq!(show["key_protector"]["bytes"], KP.len());
    assert_eq!(show["last_known_good"]["present"], false);

    let err = c.fails(&["vm", "kp", "restore", "web1"]);
    assert!(
        err.contains("no last known good") && err.contains("32775"),
        "{err}"
    );

    let jobs = c.json(&["job", "list"]);
    assert!(jobs.as_array().unwrap().iter().all(|j| j["job_state"] == 7));
}

#[test]
fn a_bad_key_protector_fails_with_the_jobs_description() {
    let c = Cli::new();
    c.ok(&["vm", "add", "a"]);
    let f = c.data.path().join("bad.xml");
    std::fs::write(&f, "<NotAProtector/>").unwrap();
    let err = c.fails(&["vm", "kp", "set", "a", f.to_str().unwrap()]);
    assert!(
        err.contains("root element") && err.contains("32773"),
        "{err}"
    );
    let err = c.fails(&["vm", "kp", "set", "a", "/no/such/file"]);
    assert!(err.contains("/no/such/file"), "{err}");
}

#[test]
fn removing_a_vm_with_a_key_protector_needs_force() {
    let c = Cli::new();
    c.ok(&["vm", "add", "a"]);
    let out = c.run_with_stdin(&["vm", "kp", "set", "a", "-"], KP.as_bytes());
    assert!(out.status.success());
    let err = c.fails(&["vm", "remove", "a"]);
    assert!(err.contains("--force"), "{err}");
    c.ok(&["vm", "remove", "a", "--force"]);
    assert_eq!(c.json(&["vm", "list"]), serde_json::json!([]));
}

#[test]
fn errors_name_the_problem() {
    let c = Cli::new();
    assert!(c.fails(&["vm", "show", "ghost"]).contains("ghost"));
    c.ok(&["vm", "add", "a"]);
    assert!(c.fails(&["vm", "add", "a"]).contains("already exists"));
    assert!(
        c.fails(&["vm", "security", "set", "a"])
            .contains("nothing to set")
    );
    let out = c.run_with_stdin(&["user", "add", "bob", "--password-stdin"], b"short\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("password"));
    assert!(c.fails(&["user", "remove", "nobody"]).contains("nobody"));
}

#[test]
fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("fresh");
    let out = Command::new(env!("CARGO_BIN_EXE_vmsec"))
        .arg("--data")
        .arg(&data)
        .args(["vm", "list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let db = std::fs::metadata(data.join("vmsec.db"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(db, 0o600);
}
