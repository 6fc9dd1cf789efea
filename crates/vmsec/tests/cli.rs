//! The CLI end to end: the built binary on a fresh data directory.

mod common;

use std::process::{Command, Output};

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
        common::run_vmsec(self.data.path(), args, stdin)
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

/// A real key protector (owner + 2 guardians) that every version must keep accepting.
const KP: &str = include_str!("../../vmsec-kp/testdata/golden-kp.xml");

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

    // GetKeyProtector answers Hyper-V's 4 bytes of "none"; the CLI still says there is none.
    let none = c.run(&["vm", "kp", "get", "web1"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(none.stdout.is_empty(), "{:?}", none.stdout);
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("VM web1 has no key protector"),
        "{}",
        String::from_utf8_lossy(&none.stderr)
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
    assert!(err.contains("malformed") && err.contains("32773"), "{err}");
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
    assert!(
        c.fails(&["user", "role", "nobody", "admin"])
            .contains("nobody")
    );
    let out = c.run_with_stdin(
        &["user", "passwd", "nobody", "--password-stdin"],
        b"a long enough password\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user \"nobody\""));
}

#[test]
fn an_administrator_changes_a_users_role_and_password() {
    let c = Cli::new();
    let out = c.run_with_stdin(
        &["user", "add", "ops", "--password-stdin"],
        b"the first password\n",
    );
    assert!(out.status.success());
    let role = |c: &Cli| {
        c.json(&["user", "list"])
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == "ops")
            .unwrap()["role"]
            .clone()
    };
    assert_eq!(role(&c), "reader");
    assert_eq!(
        c.ok(&["user", "role", "ops", "operator"]).trim(),
        "user ops is now operator"
    );
    assert_eq!(role(&c), "operator");
    // Too short a new password is refused like at creation, and changes nothing.
    let out = c.run_with_stdin(&["user", "passwd", "ops", "--password-stdin"], b"short\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("password"));
    let out = c.run_with_stdin(
        &["user", "passwd", "ops", "--password-stdin"],
        b"the second password\n",
    );
    assert!(out.status.success());
    let audit = c.json(&["audit"]);
    let ops: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["operation"].as_str())
        .filter(|o| o.starts_with("SetUser"))
        .collect();
    // Newest first.
    assert_eq!(
        ops,
        [
            "SetUserPassword ops",
            "SetUserPassword ops",
            "SetUserRole ops (operator)",
        ]
    );
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

#[test]
fn guardians_and_key_protectors_from_the_command_line() {
    let c = Cli::new();
    let d = c.data.path();
    let path = |n: &str| d.join(n).to_str().unwrap().to_owned();
    let owner = c.json(&["guardian", "new", "owner"]);
    assert_eq!(owner["has_private_keys"], true);
    assert_eq!(
        owner["encryption_certificate"]["subject"],
        "CN=Shielded VM Encryption Certificate (owner)"
    );
    assert_eq!(
        owner["encryption_certificate"]["thumbprint"]
            .as_str()
            .unwrap()
            .len(),
        40
    );
    c.ok(&["guardian", "new", "host-b"]);
    let master = std::fs::metadata(d.join("master.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        master.permissions().mode() & 0o777,
        0o600,
        "master.key is created 0600"
    );

    // A guardian travels as signed metadata; its keys only when asked, 0600.
    c.ok(&[
        "guardian",
        "export",
        "host-b",
        "--out",
        &path("host-b.xml"),
        "--private",
        &path("host-b-keys"),
    ]);
    let key_mode = std::fs::metadata(d.join("host-b-keys/signing.key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    // Another host imports it: public only, unless the keys come along.
    let other = Cli::new();
    other.ok(&[
        "guardian",
        "import",
        "host-b",
        "--metadata",
        &path("host-b.xml"),
    ]);
    assert_eq!(
        other.json(&["guardian", "list"])[0]["has_private_keys"],
        false
    );
    let third = Cli::new();
    third.ok(&[
        "guardian",
        "import",
        "host-b",
        "--metadata",
        &path("host-b.xml"),
        "--private",
        &path("host-b-keys"),
    ]);
    assert_eq!(
        third.json(&["guardian", "list"])[0]["has_private_keys"],
        true
    );
    // The same certificates under a second name are refused.
    assert!(
        c.fails(&[
            "guardian",
            "import",
            "again",
            "--metadata",
            &path("host-b.xml")
        ])
        .contains("host-b")
    );

    c.ok(&["kp", "new", "--owner", "owner", "--out", &path("kp.xml")]);
    c.ok(&["kp", "verify", &path("kp.xml")]);
    c.ok(&["kp", "grant", &path("kp.xml"), "--guardian", "host-b"]);
    let show = c.json(&["kp", "show", &path("kp.xml")]);
    assert_eq!(show["verified"], true);
    assert_eq!(show["unwrapped_here"], true);
    assert_eq!(show["wrappings"].as_array().unwrap().len(), 2);
    assert_eq!(show["wrappings"][0]["is_owner"], true);
    assert_eq!(show["wrappings"][1]["local_guardian"], "host-b");
    c.ok(&["kp", "revoke", &path("kp.xml"), "--guardian", "host-b"]);
    assert_eq!(
        c.json(&["kp", "show", &path("kp.xml")])["wrappings"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A tampered file fails verification, naming why.
    let mut text = std::fs::read_to_string(d.join("kp.xml")).unwrap();
    let at = text.find("<SignatureValue>").unwrap() + 20;
    let flipped = if &text[at..at + 1] == "A" { "B" } else { "A" };
    text.replace_range(at..at + 1, flipped);
    std::fs::write(d.join("bad.xml"), text).unwrap();
    let err = c.fails(&["kp", "verify", &path("bad.xml")]);
    assert!(
        err.contains("does not verify") || err.contains("malformed") || err.contains("invalid"),
        "{err}"
    );

    // Attach to a VM; the owner cannot then be removed without --force.
    c.ok(&["vm", "add", "vm1"]);
    c.ok(&["vm", "kp", "set", "vm1", &path("kp.xml")]);
    assert!(
        c.fails(&["guardian", "remove", "owner"])
            .contains("--force")
    );
    c.ok(&["vm", "add", "vm2"]);
    c.ok(&["vm", "kp", "new-local", "vm2"]);
    c.ok(&["vm", "kp", "get", "vm2", "--out", &path("local.xml")]);
    let local = c.json(&["kp", "show", &path("local.xml")]);
    assert_eq!(local["wrappings"][0]["local_guardian"], "UntrustedGuardian");
    c.ok(&["guardian", "remove", "owner", "--force"]);
}

#[test]
fn kp_new_and_guardian_export_keep_an_existing_file_unless_forced() {
    let c = Cli::new();
    let d = c.data.path();
    let path = |n: &str| d.join(n).to_str().unwrap().to_owned();
    c.ok(&["guardian", "new", "owner"]);
    for (what, args) in [
        ("kp new", vec!["kp", "new", "--owner", "owner", "--out"]),
        (
            "guardian export",
            vec!["guardian", "export", "owner", "--out"],
        ),
    ] {
        let file = path(&format!("{}.xml", what.replace(' ', "-")));
        std::fs::write(&file, "precious").unwrap();
        let mut a = args.clone();
        a.push(&file);
        let err = c.fails(&a);
        assert!(
            err.contains(&format!("{file} exists")) && err.contains("--force"),
            "{what}: {err}"
        );
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "precious",
            "{what}"
        );
        a.push("--force");
        c.ok(&a);
        let written = std::fs::read_to_string(&file).unwrap();
        assert!(
            written.starts_with("<?xml") || written.starts_with('<'),
            "{what}: {written}"
        );
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(names.is_empty(), "{what}: {names:?}");
    }
    c.ok(&["kp", "verify", &path("kp-new.xml")]);
    // Through a symbolic link the file it names is replaced, and the link stays a link.
    std::fs::write(path("target.xml"), "precious").unwrap();
    std::os::unix::fs::symlink(path("target.xml"), path("link.xml")).unwrap();
    let new_kp = ["kp", "new", "--owner", "owner", "--out", &path("link.xml")];
    assert!(c.fails(&new_kp).contains("exists"));
    let mut forced = new_kp.to_vec();
    forced.push("--force");
    c.ok(&forced);
    assert!(
        std::fs::symlink_metadata(path("link.xml"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    c.ok(&["kp", "verify", &path("target.xml")]);
}

#[test]
fn an_out_file_that_is_not_a_regular_file_is_written_in_place_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let c = Cli::new();
    let d = c.data.path();
    c.ok(&["guardian", "new", "owner"]);
    for (what, args) in [
        ("kp new", vec!["kp", "new", "--owner", "owner", "--out"]),
        (
            "guardian export",
            vec!["guardian", "export", "owner", "--out"],
        ),
    ] {
        let fifo = d.join(format!("{}.fifo", what.replace(' ', "-")));
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Opening a FIFO blocks until its other end is opened: read it from a thread.
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        let mut a = args.clone();
        a.push(fifo.to_str().unwrap());
        // No --force: writing into a pipe replaces no file.
        c.ok(&a);
        // Checked before joining: had the FIFO been renamed over, the reader would wait on
        // the old node for ever.
        let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(kind.is_fifo(), "{what} replaced the FIFO with {kind:?}");
        let got = reader.join().unwrap();
        assert!(got.starts_with(b"<"), "{what} wrote {} bytes", got.len());
    }
}

#[test]
fn the_last_admin_is_kept_naming_the_fix() {
    let c = Cli::new();
    let add = |name: &str, role: &str| {
        let out = c.run_with_stdin(
            &["user", "add", name, "--role", role, "--password-stdin"],
            b"a long enough password\n",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    add("root", "admin");
    for args in [
        &["user", "remove", "root"][..],
        &["user", "role", "root", "operator"][..],
    ] {
        let err = c.fails(args);
        assert!(
            err.contains("last admin") && err.contains("vmsec user role NAME admin"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(c.json(&["user", "list"])[0]["role"], "admin");
    add("second", "admin");
    c.ok(&["user", "remove", "root"]);
    assert!(
        c.fails(&["user", "remove", "second"])
            .contains("last admin")
    );
}

#[test]
fn audit_shows_the_newest_first_and_filters_across_pages() {
    let c = Cli::new();
    c.ok(&["vm", "list"]);
    let vm = "b5314955-3924-42ba-abf9-793993d340a0";
    // More records than the command reads at once, written straight into the store.
    {
        let mut db = rusqlite::Connection::open(c.data.path().join("vmsec.db")).unwrap();
        let tx = db.transaction().unwrap();
        for n in 0..1300i64 {
            tx.execute(
                "INSERT INTO audit (at_us, actor, operation, vm_guid, outcome, detail) \
                 VALUES (?1, ?2, ?3, ?4, 'succeeded', '')",
                rusqlite::params![
                    1_780_000_000_000_000 + n * 1_000_000,
                    if n % 2 == 0 { "alice" } else { "bob" },
                    format!("op{n}"),
                    (n % 3 == 0).then_some(vm),
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let seqs = |args: &[&str]| -> Vec<i64> {
        let mut a = vec!["audit"];
        a.extend_from_slice(args);
        c.json(&a)
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seq"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(seqs(&[]), (1201..=1300).rev().collect::<Vec<_>>());
    // Across the pages the command reads, nothing is missed or repeated.
    assert_eq!(
        seqs(&["--limit", "1200"]),
        (101..=1300).rev().collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&["--after", "100", "--limit", "1100"]),
        (101..=1200).collect::<Vec<_>>()
    );
    // Seq s is record s - 1: alice's are the odd seqs, the VM's those with s - 1 % 3 == 0.
    let alice = seqs(&["--user", "alice", "--limit", "2000"]);
    assert_eq!(
        alice,
        (1..=1300).rev().filter(|s| s % 2 == 1).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&["--user", "bob", "--vm", vm, "--limit", "3"]),
        [1300, 1294, 1288]
    );
    // Record n was written at 1_780_000_000 + n seconds: 2026-05-28T20:26:40Z.
    assert_eq!(
        seqs(&["--since", "2026-05-28T20:48:19Z", "--limit", "2000"]),
        [1300]
    );
    assert_eq!(
        seqs(&["--since", "2026-05-28T22:48:18+02:00", "--after", "1298"]),
        [1299, 1300]
    );
}

#[test]
fn stored_names_are_escaped_for_people_and_exact_in_json() {
    let c = Cli::new();
    // A refused user name is audited with the operation; it forges a line and clears it.
    let forged = "x\n9 2030-01-01T00:00:00Z admin StopService succeeded\x1b[2K\u{9b}1m";
    let out = c.run_with_stdin(&["user", "add", forged, "--password-stdin"], b"pw\n");
    assert_eq!(out.status.code(), Some(1));
    c.ok(&["vm", "add", "left\u{202E}thgir"]);

    let audit = c.ok(&["audit"]);
    assert!(
        !audit.contains('\x1b') && !audit.contains('\u{9b}'),
        "{audit:?}"
    );
    assert!(!audit.contains('\u{202E}'), "{audit:?}");
    assert!(
        !audit
            .lines()
            .any(|l| l.contains("StopService") && !l.contains("AddUser")),
        "no line of its own: {audit}"
    );
    assert!(audit.contains(r"x\u{a}9 2030"), "{audit}");
    assert!(audit.contains(r"\u{1b}[2K\u{9b}1m"), "{audit}");
    let records = c.json(&["audit"]);
    assert_eq!(
        audit.lines().count(),
        records.as_array().unwrap().len(),
        "one line per record"
    );
    assert!(
        records
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["operation"].as_str().unwrap().contains(forged)),
        "JSON holds the exact string"
    );

    let list = c.ok(&["vm", "list"]);
    assert!(list.contains(r"left\u{202e}thgir"), "{list}");
    let show = c.ok(&["vm", "show", "left\u{202E}thgir"]);
    assert!(!show.contains('\u{202E}'), "{show}");
    assert_eq!(c.json(&["vm", "list"])[0]["name"], "left\u{202E}thgir");
}

#[test]
fn a_closed_standard_output_ends_the_command_quietly() {
    let c = Cli::new();
    c.ok(&["vm", "add", "a"]);
    c.ok(&["vm", "add", "b"]);
    for args in [&["audit"][..], &["vm", "list"], &["--json", "audit"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_vmsec"))
            .arg("--data")
            .arg(c.data.path())
            .args(args)
            .stdout(writer)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "vmsec {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_data_directory_open_to_others_is_made_private_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let c = Cli::new();
    std::fs::set_permissions(c.data.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = c.run(&["vm", "list"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mode 777") && err.contains("made it 700"),
        "{err}"
    );
    let mode = std::fs::metadata(c.data.path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    // Said once: the next command finds nothing to fix.
    assert!(c.run(&["vm", "list"]).stderr.is_empty());

    // The same rule for the secret files in it.
    let key = c.data.path().join("master.key");
    c.ok(&["guardian", "new", "g"]);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = c.run(&[
        "guardian",
        "export",
        "g",
        "--out",
        c.data.path().join("g.xml").to_str().unwrap(),
        "--private",
        c.data.path().join("keys").to_str().unwrap(),
    ]);
    assert_made_private(&out, &key, "master.key");
}

#[test]
fn a_tls_key_open_to_others_is_made_private_before_serve_uses_it() {
    use std::os::unix::fs::PermissionsExt;
    let c = Cli::new();
    let tls = c.data.path().join("tls");
    std::fs::create_dir(&tls).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(tls.join("cert.pem"), ck.cert.pem()).unwrap();
    let key = tls.join("key.pem");
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmsec"))
        .arg("--data")
        .arg(c.data.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The line of addresses comes once it listens, i.e. after the key was loaded.
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    child.kill().unwrap();
    child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(line.contains("https"), "serve did not start: {err}");
    assert_eq!(mode, 0o600, "{err}");
    assert!(
        err.contains("key.pem") && err.contains("made it 600"),
        "{err}"
    );
}

#[test]
fn guardian_private_keys_open_to_others_are_made_private_on_import() {
    use std::os::unix::fs::PermissionsExt;
    let c = Cli::new();
    let d = c.data.path();
    let path = |n: &str| d.join(n).to_str().unwrap().to_owned();
    c.ok(&["guardian", "new", "g"]);
    c.ok(&[
        "guardian",
        "export",
        "g",
        "--out",
        &path("g.xml"),
        "--private",
        &path("g-keys"),
    ]);
    let key = d.join("g-keys/signing.key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let other = Cli::new();
    let out = other.run(&[
        "guardian",
        "import",
        "g",
        "--metadata",
        &path("g.xml"),
        "--private",
        &path("g-keys"),
    ]);
    assert_made_private(&out, &key, "signing.key.pem");
}

#[test]
fn serve_prunes_the_audit_log_to_its_retention_and_says_which_records_went() {
    let c = Cli::new();
    for n in 0..5 {
        c.ok(&["vm", "add", &format!("vm-{n}")]);
    }
    let config = c.data.path().join("serve.toml");
    std::fs::write(
        &config,
        "audit_retention_records = 2\naudit_retention_days = 0\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmsec"))
        .arg("--data")
        .arg(c.data.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    // Pruning runs beside the server from its start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let records = loop {
        // From the oldest kept, in order.
        let records = c.json(&["audit", "--after", "0"]);
        let pruned = records
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["operation"] == "AuditPruned");
        if pruned || std::time::Instant::now() > deadline {
            break records;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let records = records.as_array().unwrap();
    // 5 VMs added, then serve's BootstrapAdmin: the newest 2 of 6 are kept.
    assert_eq!(records[0]["seq"], 5, "{records:?}");
    let pruned = records
        .iter()
        .find(|r| r["operation"] == "AuditPruned")
        .unwrap();
    assert_eq!(pruned["seq"], 7);
    assert_eq!(pruned["actor"], "vmsec");
    assert!(
        pruned["detail"]
            .as_str()
            .unwrap()
            .starts_with("records 1\u{2013}4 pruned"),
        "{pruned}"
    );
    // People see it too.
    assert!(c.ok(&["audit"]).contains("AuditPruned"));
}

#[test]
fn completions_and_manual_pages_come_from_the_command_definitions_and_touch_no_data() {
    let cwd = tempfile::tempdir().unwrap();
    let vmsec = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_vmsec"))
            .args(args)
            .current_dir(cwd.path())
            .env_remove("VMSEC_DATA")
            .output()
            .unwrap()
    };
    for (shell, marker) in [
        ("bash", "complete -F _vmsec"),
        ("zsh", "#compdef vmsec"),
        ("fish", "complete -c vmsec"),
    ] {
        let out = vmsec(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {script:.300}");
        assert!(
            script.contains("guardian") && script.contains("password-stdin"),
            "{shell}"
        );
    }
    let page = String::from_utf8(vmsec(&["man"]).stdout).unwrap();
    assert!(page.contains(".TH vmsec 1"), "{page:.300}");
    assert!(page.contains("guardian") && page.contains("audit"));
    let dir = cwd.path().join("man1");
    std::fs::create_dir(&dir).unwrap();
    assert!(
        vmsec(&["man", "--out", dir.to_str().unwrap()])
            .status
            .success()
    );
    for name in [
        "vmsec.1",
        "vmsec-user-add.1",
        "vmsec-tpm-start.1",
        "vmsec-vm-kp-set.1",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(text.starts_with(".ie") && text.contains(".TH"), "{name}");
    }
    assert!(
        !cwd.path().join("vmsec-data").exists(),
        "neither opened nor created a data directory"
    );
}

#[test]
fn tls_show_prints_the_certificates_sha256_fingerprint_and_needs_no_store() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let vmsec = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_vmsec"))
            .arg("--data")
            .arg(&data)
            .args(args)
            .env_remove("VMSEC_DATA")
            .output()
            .unwrap()
    };
    let missing = vmsec(&["tls", "show"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("makes one at its first start"));
    assert!(!data.exists(), "no data directory was made to look");

    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::create_dir_all(data.join("tls")).unwrap();
    std::fs::write(data.join("tls/cert.pem"), ck.cert.pem()).unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ck.cert.der());
    let want: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    let want = want.join(":");

    let human = String::from_utf8(vmsec(&["tls", "show"]).stdout).unwrap();
    assert!(human.contains(&want), "{human}");
    assert!(human.contains("localhost, 127.0.0.1"), "{human}");
    let json: serde_json::Value =
        serde_json::from_slice(&vmsec(&["--json", "tls", "show"]).stdout).unwrap();
    assert_eq!(json["sha256_fingerprint"], want.as_str());
    assert_eq!(json["names"], serde_json::json!(["localhost", "127.0.0.1"]));
    assert!(json["not_after"].as_str().unwrap().ends_with('Z'));
}

/// `out` succeeded after making `file` 0600, with a warning naming it (`name`).
fn assert_made_private(out: &std::process::Output, file: &std::path::Path, name: &str) {
    use std::os::unix::fs::PermissionsExt;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(name) && err.contains("made it 600"), "{err}");
    assert_eq!(
        std::fs::metadata(file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn vm_show_names_who_the_key_protector_grants_and_grant_and_revoke_change_it_in_one_step() {
    let c = Cli::new();
    c.ok(&["guardian", "new", "owner", "--key-size", "2048"]);
    c.ok(&["guardian", "new", "hostB", "--key-size", "2048"]);
    let kp = c.data.path().join("kp.xml");
    c.ok(&[
        "kp",
        "new",
        "--owner",
        "owner",
        "--out",
        kp.to_str().unwrap(),
    ]);
    c.ok(&["vm", "add", "web1"]);
    c.ok(&["vm", "kp", "set", "web1", kp.to_str().unwrap()]);
    let granted = |c: &Cli| -> Vec<(String, String, bool)> {
        c.json(&["vm", "show", "web1"])["key_protector"]["granted_to"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    w["role"].as_str().unwrap().to_owned(),
                    w["guardian"].as_str().unwrap_or("").to_owned(),
                    w["private_keys_here"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(granted(&c), vec![("owner".into(), "owner".into(), true)]);
    c.ok(&["vm", "grant", "web1", "--guardian", "hostB"]);
    assert_eq!(
        granted(&c),
        vec![
            ("owner".into(), "owner".into(), true),
            ("guardian".into(), "hostB".into(), true)
        ]
    );
    assert!(c.ok(&["vm", "show", "web1"]).contains("hostB"));
    let again = c.fails(&["vm", "grant", "web1", "--guardian", "hostB"]);
    assert!(again.contains("already"), "{again}");
    c.ok(&["vm", "revoke", "web1", "--guardian", "hostB"]);
    assert_eq!(granted(&c), vec![("owner".into(), "owner".into(), true)]);
    let none = c.fails(&["vm", "grant", "nosuch", "--guardian", "hostB"]);
    assert!(none.contains("nosuch"), "{none}");
}

#[test]
fn under_json_an_error_is_also_a_json_object_on_stdout_with_a_code() {
    let c = Cli::new();
    let out = c.run(&["--json", "vm", "show", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["error"]["code"], "NotFound", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("nosuch"),
        "{v}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch"));
    // Without --json, stdout stays empty.
    assert!(c.run(&["vm", "show", "nosuch"]).stdout.is_empty());
}

/// `--password-stdin` on a terminal: asked twice, nothing echoed (run under `script`, which
/// gives the command a pseudo-terminal).
#[test]
fn on_a_terminal_the_password_is_asked_twice_without_echo() {
    if which("script").is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("script (util-linux) is not installed");
        }
        return;
    }
    let c = Cli::new();
    let run = |input: &[u8]| {
        let command = format!(
            "{} --data {} user add bob --password-stdin",
            env!("CARGO_BIN_EXE_vmsec"),
            c.data.path().display()
        );
        let mut child = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        // Typed as a person would: a line at a time, once the prompt is up.
        for line in input.split_inclusive(|b| *b == b'\n') {
            std::thread::sleep(std::time::Duration::from_millis(300));
            stdin.write_all(line).unwrap();
        }
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    let out = run(b"pw-mismatch-1\npw-mismatch-2\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("differ"), "{text}");
    assert!(
        !text.contains("pw-mismatch"),
        "the password was echoed: {text}"
    );
    let out = run(b"s3cret-typed\ns3cret-typed\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Password:") && text.contains("Again:"),
        "{text}"
    );
    assert!(
        !text.contains("s3cret-typed"),
        "the password was echoed: {text}"
    );
    assert!(c.ok(&["user", "list"]).contains("bob"));
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

#[test]
fn audit_follow_prints_records_as_they_are_written() {
    use std::io::BufRead;
    let c = Cli::new();
    c.ok(&["vm", "add", "before"]);
    let mut follow = Command::new(env!("CARGO_BIN_EXE_vmsec"))
        .arg("--data")
        .arg(c.data.path())
        .args(["--json", "audit", "--follow", "--limit", "1"])
        .env_remove("VMSEC_DATA")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let first: serde_json::Value =
        serde_json::from_str(&rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap())
            .unwrap();
    // --limit 1: the newest record before following, the VM added above.
    assert!(first.to_string().contains("before"), "{first}");
    c.ok(&["vm", "add", "later"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = Vec::new();
    while std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            let v: serde_json::Value =
                serde_json::from_str(&line).expect("one JSON object per line");
            assert!(v["seq"].as_i64().unwrap() > first["seq"].as_i64().unwrap());
            seen.push(v);
            if seen.iter().any(|v| v.to_string().contains("later")) {
                break;
            }
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        seen.iter().any(|v| v.to_string().contains("later")),
        "{seen:?}"
    );
}

/// With no --data and no VMSEC_DATA, a non-root user's store is under $XDG_DATA_HOME, whatever
/// the working directory, and a new one is announced. As root the test runs the commands as
/// nobody (setpriv), so that it never touches /var/lib/vmsec.
#[test]
fn the_default_store_does_not_depend_on_the_working_directory_and_a_new_one_is_announced() {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let xdg = dir.path().join("xdg");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for d in [&a, &b] {
        std::fs::create_dir(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    let run = |cwd: &std::path::Path, args: &[&str]| {
        let mut c = if root {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                env!("CARGO_BIN_EXE_vmsec"),
            ]);
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_vmsec"))
        };
        c.args(args)
            .current_dir(cwd)
            .env_remove("VMSEC_DATA")
            .env("XDG_DATA_HOME", &xdg)
            .env("HOME", dir.path())
            .output()
            .unwrap()
    };
    let first = run(&a, &["vm", "add", "web1"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let said = String::from_utf8_lossy(&first.stderr);
    assert!(
        said.contains("created the data directory") && said.contains("xdg/vmsec"),
        "{said}"
    );
    // From another folder: the same store, and nothing announced.
    let again = run(&b, &["vm", "list"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("web1"));
    assert!(
        !String::from_utf8_lossy(&again.stderr).contains("created"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(!a.join("vmsec-data").exists() && !b.join("vmsec-data").exists());
}

/// `guardian import --pfx`: the two PKCS#12 files a Windows host exports (one with legacy
/// 3DES/SHA-1 encryption, one with AES-256/SHA-256), made by Python's `cryptography`.
#[test]
fn a_guardian_imports_from_windows_style_pkcs12_files_with_its_private_keys() {
    let Some(python) = common::python() else {
        return;
    };
    let c = Cli::new();
    let dir = c.data.path().join("pfx");
    std::fs::create_dir_all(&dir).unwrap();
    let script = r#"
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, PrivateFormat, pkcs12
from cryptography.x509.oid import NameOID
out = sys.argv[1]
def make(cn, enc):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = x509.KeyUsage(digital_signature=not enc, key_encipherment=enc, content_commitment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365)).add_extension(usage, critical=True)
        .sign(key, hashes.SHA256()))
    return key, cert
ek, ec = make("Shielded VM Encryption Certificate (hostW)", True)
sk, sc = make("Shielded VM Signing Certificate (hostW)", False)
legacy = (PrivateFormat.PKCS12.encryption_builder().kdf_rounds(2048)
    .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(hashes.SHA1()).build(b"pfx-pass"))
open(out + "/enc.pfx", "wb").write(pkcs12.serialize_key_and_certificates(b"enc", ek, ec, None, legacy))
open(out + "/sign.pfx", "wb").write(pkcs12.serialize_key_and_certificates(b"sign", sk, sc, None, BestAvailableEncryption(b"pfx-pass")))
"#;
    let made = Command::new(&python)
        .args(["-c", script, dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let enc = dir.join("enc.pfx");
    let sign = dir.join("sign.pfx");
    let args = [
        "guardian",
        "import",
        "hostW",
        "--pfx",
        enc.to_str().unwrap(),
        "--pfx",
        sign.to_str().unwrap(),
        "--password-stdin",
    ];
    let wrong = c.run_with_stdin(&args, b"not-the-password\n");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("PKCS#12"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let only_one = c.run_with_stdin(
        &args[..5]
            .iter()
            .copied()
            .chain(["--password-stdin"])
            .collect::<Vec<_>>(),
        b"pfx-pass\n",
    );
    assert!(
        String::from_utf8_lossy(&only_one.stderr).contains("no certificate with a private key"),
        "{}",
        String::from_utf8_lossy(&only_one.stderr)
    );
    let ok = c.run_with_stdin(&args, b"pfx-pass\n");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // Its keys are here: it can own a key protector and unwrap it.
    let kp = c.data.path().join("kp.xml");
    c.ok(&[
        "kp",
        "new",
        "--owner",
        "hostW",
        "--out",
        kp.to_str().unwrap(),
    ]);
    let shown = c.json(&["kp", "show", kp.to_str().unwrap()]);
    assert_eq!(shown["unwrapped_here"], true, "{shown}");
    assert!(c.ok(&["guardian", "list"]).contains("hostW"));
}

/// `--json` for scripts: times with exactly six fractional digits, paths absolute even when
/// `--data` is relative.
#[test]
fn json_times_have_a_fixed_precision_and_paths_are_absolute() {
    let c = Cli::new();
    let v = c.json(&["vm", "add", "web1"]);
    let created = v["created"].as_str().unwrap();
    let fixed = created.len() == "2026-12-01T13:20:27.765466Z".len()
        && created.ends_with('Z')
        && created.as_bytes()[19] == b'.';
    assert!(fixed, "{created}");
    let out = Command::new(env!("CARGO_BIN_EXE_vmsec"))
        .args(["--data", "rel-data", "--json", "vm", "show", "web1"])
        .current_dir(c.data.path())
        .env_remove("VMSEC_DATA")
        .output()
        .unwrap();
    // A new data directory there: the VM is not in it, but the error is JSON too.
    assert_eq!(out.status.code(), Some(1));
    let add = Command::new(env!("CARGO_BIN_EXE_vmsec"))
        .args(["--data", "rel-data", "--json", "vm", "add", "web2"])
        .current_dir(c.data.path())
        .output()
        .unwrap();
    assert!(add.status.success());
    let show = Command::new(env!("CARGO_BIN_EXE_vmsec"))
        .args(["--data", "rel-data", "--json", "vm", "show", "web2"])
        .current_dir(c.data.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let state = v["vtpm_state_dir"].as_str().unwrap();
    assert!(
        state.starts_with('/') && state.contains("rel-data"),
        "{state}"
    );
}

/// Under `--json` every command answers with JSON: a key protector read to stdout comes as
/// base64, one written to a file names the file, absolute.
#[test]
fn under_json_reading_a_key_protector_prints_json_too() {
    let c = Cli::new();
    c.ok(&["guardian", "new", "owner", "--key-size", "2048"]);
    // A relative --out, in the test's own directory.
    let made = Command::new(env!("CARGO_BIN_EXE_vmsec"))
        .arg("--data")
        .arg(c.data.path())
        .args([
            "--json",
            "kp",
            "new",
            "--owner",
            "owner",
            "--out",
            "rel-kp.xml",
        ])
        .current_dir(c.data.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    let file = v["file"].as_str().unwrap();
    assert!(file.starts_with('/') && file.ends_with("rel-kp.xml"), "{v}");
    c.ok(&["vm", "add", "web1"]);
    c.ok(&["vm", "kp", "set", "web1", file]);
    let v = c.json(&["vm", "kp", "get", "web1"]);
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, std::fs::read(file).unwrap());
    assert_eq!(v["bytes"], bytes.len());
    let out = c.data.path().join("got.xml");
    let v = c.json(&["vm", "kp", "get", "web1", "--out", out.to_str().unwrap()]);
    assert_eq!(v["file"], out.to_str().unwrap());
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
}
