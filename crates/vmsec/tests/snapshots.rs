//! Golden output of the command line: `--help` of every command group, and the text and
//! `--json` output of the main verbs, compared with `tests/testdata/snapshots/*.txt`. Output
//! is a contract with people and scripts (cli.rs), so any change to it shows up here as a
//! diff to review.
//!
//! To update the snapshots after a deliberate change, re-bless them and review the diff:
//! ```text
//! SNAPSHOTS=overwrite cargo test -p vmsec --test snapshots
//! git diff crates/vmsec/tests/testdata/snapshots
//! ```
//! What varies between runs and machines is redacted ([`redact`]): timestamps, random GUIDs
//! (the VMs get fixed ones with `--id`), certificate thumbprints and fingerprints, sizes of
//! files holding certificates, the data directory, and the operating-system user in
//! `local:<user>`.
//!
//! A harness of our own rather than trycmd or snapbox: a snapshot is a sequence of commands
//! on one data directory, some with their own standard input (passwords), and these
//! redactions; it needs no new dependency in the shared Cargo.lock.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The VM GUIDs the snapshots fix with `--id`; every other GUID is redacted.
const VM1: &str = "11111111-2222-3333-4444-555555555555";
const VM2: &str = "66666666-7777-8888-9999-aaaaaaaaaaaa";

/// One data directory and the transcript of the commands run on it.
struct Session {
    data: tempfile::TempDir,
    transcript: String,
}

impl Session {
    fn new() -> Session {
        let data = tempfile::tempdir().unwrap();
        // Private already, so the CLI has no warning to give about the directory's mode,
        // whatever the umask of the machine.
        std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        Session {
            data,
            transcript: String::new(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.data.path().join(name).display().to_string()
    }

    /// Runs `vmsec --data DATA ARGS…` and adds the command, its output and (when not 0) its
    /// exit code to the transcript.
    fn run(&mut self, args: &[&str]) -> &mut Self {
        self.run_with_stdin(args, b"")
    }

    fn run_with_stdin(&mut self, args: &[&str], stdin: &[u8]) -> &mut Self {
        let out = common::run_vmsec(self.data.path(), args, stdin);
        let t = &mut self.transcript;
        t.push_str(&format!("$ vmsec {}\n", args.join(" ")));
        t.push_str(&String::from_utf8_lossy(&out.stdout));
        if !out.stderr.is_empty() {
            t.push_str("--- stderr\n");
            t.push_str(&String::from_utf8_lossy(&out.stderr));
        }
        if !t.ends_with('\n') {
            t.push('\n');
        }
        if out.status.code() != Some(0) {
            let code = out
                .status
                .code()
                .map_or("by a signal".into(), |c| c.to_string());
            t.push_str(&format!("--- exit {code}\n"));
        }
        t.push('\n');
        self
    }

    /// Compares the redacted transcript with `testdata/snapshots/NAME.txt`.
    fn check(&self, name: &str) {
        let text = redact(&self.transcript, self.data.path());
        check_snapshot(name, &text);
    }
}

fn snapshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/snapshots")
        .join(format!("{name}.txt"))
}

fn check_snapshot(name: &str, actual: &str) {
    let path = snapshot_path(name);
    if std::env::var("SNAPSHOTS").as_deref() == Ok("overwrite") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "no snapshot {} ({e}); make it with SNAPSHOTS=overwrite cargo test -p vmsec --test snapshots",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the output, first at line {}:\n--- expected\n{expected}\n--- actual\n{actual}\n\
             If the change is deliberate: SNAPSHOTS=overwrite cargo test -p vmsec --test snapshots",
            path.display(),
            first + 1
        );
    }
}

/// `text` with what varies between runs and machines replaced by a placeholder.
fn redact(text: &str, data: &Path) -> String {
    let text = text.replace(&data.display().to_string(), "[DATA]");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(c) = rest.chars().next() {
        let (placeholder, len) = if let Some(n) = timestamp_len(rest) {
            ("[TIME]", n)
        } else if let Some(n) = guid_len(rest) {
            let g = rest[..n].to_ascii_lowercase();
            if g == VM1 || g == VM2 {
                (&rest[..n], n)
            } else {
                ("[GUID]", n)
            }
        } else if let Some(n) = hex_len(rest, &out) {
            ("[HEX]", n)
        } else if let Some(n) = byte_count_len(rest, &out) {
            ("[N]", n)
        } else if let Some(n) = rest.strip_prefix("local:").map(user_len) {
            out.push_str("local:");
            ("[USER]", "local:".len() + n)
        } else {
            (&rest[..c.len_utf8()], c.len_utf8())
        };
        out.push_str(placeholder);
        rest = &rest[len..];
    }
    out
}

/// Digits and fixed characters: `d` stands for an ASCII digit.
fn shaped(s: &str, shape: &str) -> bool {
    s.len() >= shape.len()
        && s.bytes().zip(shape.bytes()).all(|(c, want)| match want {
            b'd' => c.is_ascii_digit(),
            b'h' => c.is_ascii_hexdigit(),
            _ => c == want,
        })
}

/// An RFC 3339 timestamp: `YYYY-MM-DDTHH:MM:SS`, fraction, `Z` or offset.
fn timestamp_len(s: &str) -> Option<usize> {
    const SHAPE: &str = "dddd-dd-ddTdd:dd:dd";
    if !shaped(s, SHAPE) {
        return None;
    }
    let mut n = SHAPE.len();
    if s[n..].starts_with('.') {
        n += 1 + s[n + 1..].bytes().take_while(u8::is_ascii_digit).count();
    }
    if s[n..].starts_with('Z') {
        n += 1;
    } else if shaped(&s[n..], "+dd:dd") || shaped(&s[n..], "-dd:dd") {
        n += 6;
    }
    Some(n)
}

fn guid_len(s: &str) -> Option<usize> {
    const SHAPE: &str = "hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh";
    shaped(s, SHAPE).then_some(SHAPE.len())
}

/// A thumbprint or fingerprint: 32 or more hex digits standing alone.
fn hex_len(s: &str, before: &str) -> Option<usize> {
    if before.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    let n = s.bytes().take_while(u8::is_ascii_hexdigit).count();
    let alone = !s[n..].starts_with(|c: char| c.is_ascii_alphanumeric());
    (n >= 32 && alone).then_some(n)
}

/// The size of something holding certificates (`9630 bytes`): their DER encoding, and so the
/// size, varies by a byte or so with the random serial numbers and signatures.
fn byte_count_len(s: &str, before: &str) -> Option<usize> {
    if before.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    (n > 0 && s[n..].starts_with(" bytes")).then_some(n)
}

fn user_len(s: &str) -> usize {
    s.find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(s.len())
}

#[test]
fn help_of_every_command_group() {
    let groups: &[&[&str]] = &[
        &[],
        &["serve"],
        &["user"],
        &["vm"],
        &["vm", "security"],
        &["vm", "kp"],
        &["vm", "policy"],
        &["guardian"],
        &["kp"],
        &["tpm"],
        &["job"],
        &["audit"],
        &["kps"],
        &["kps", "host"],
        &["kps", "guardian"],
        &["hgs"],
        &["hgs", "set"],
    ];
    for group in groups {
        let mut s = Session::new();
        let mut args = group.to_vec();
        args.push("--help");
        s.run(&args);
        let name = match group.join("-") {
            g if g.is_empty() => "help".to_string(),
            g => format!("help-{g}"),
        };
        s.check(&name);
    }
}

#[test]
fn users() {
    let mut s = Session::new();
    s.run_with_stdin(
        &[
            "user",
            "add",
            "alice",
            "--role",
            "operator",
            "--password-stdin",
        ],
        b"a long enough password\n",
    )
    .run_with_stdin(
        &["--json", "user", "add", "bob", "--password-stdin"],
        b"another long password\n",
    )
    .run(&["user", "list"])
    .run(&["--json", "user", "list"]);
    s.check("users");
}

#[test]
fn vms_and_their_security_settings() {
    let mut s = Session::new();
    s.run(&["vm", "add", "vm1", "--id", VM1])
        .run(&["--json", "vm", "add", "vm2", "--id", VM2])
        .run(&["vm", "list"])
        .run(&["--json", "vm", "list"])
        .run(&["vm", "show", "vm1"])
        .run(&["--json", "vm", "show", "vm1"])
        .run(&["vm", "security", "get", "vm1"])
        .run(&["--json", "vm", "security", "get", "vm1"])
        .run(&["vm", "security", "set", "vm1", "--shielded", "on"])
        .run(&["--json", "vm", "security", "set", "vm1", "--ksd", "on"])
        // Refused by the rules: the error names the method's return code.
        .run(&["vm", "security", "set", "vm1", "--tpm", "on"])
        .run(&["vm", "security", "set", "vm1"])
        .run(&["vm", "security", "get", "vm1"])
        // A usage error: clap's message, exit code 2.
        .run(&["vm", "add"]);
    s.check("vms");
}

#[test]
fn guardians_key_protectors_and_jobs() {
    let mut s = Session::new();
    let kp = s.path("kp.xml");
    let got = s.path("got.xml");
    s.run(&["guardian", "new", "owner"])
        .run(&["--json", "guardian", "new", "hgs"])
        .run(&["guardian", "list"])
        .run(&["--json", "guardian", "list"])
        .run(&[
            "kp",
            "new",
            "--owner",
            "owner",
            "--guardian",
            "hgs",
            "--out",
            &kp,
        ])
        .run(&["kp", "show", &kp])
        .run(&["--json", "kp", "show", &kp])
        .run(&["kp", "verify", &kp])
        .run(&["vm", "add", "vm1", "--id", VM1])
        .run(&["vm", "kp", "get", "vm1"])
        .run(&["vm", "kp", "set", "vm1", &kp])
        .run(&["vm", "kp", "get", "vm1", "--out", &got])
        .run(&["vm", "show", "vm1"])
        .run(&["job", "list"])
        .run(&["--json", "job", "list"]);
    assert_eq!(
        std::fs::read(&kp).unwrap(),
        std::fs::read(&got).unwrap(),
        "vm kp get gives back the key protector set"
    );
    s.check("guardians-kps-jobs");
}

#[test]
fn vm_kp_set_json() {
    let mut s = Session::new();
    let kp = s.path("kp.xml");
    s.run(&["guardian", "new", "owner"])
        .run(&["kp", "new", "--owner", "owner", "--out", &kp])
        .run(&["vm", "add", "vm1", "--id", VM1]);
    s.transcript.clear();
    s.run(&["--json", "vm", "kp", "set", "vm1", &kp]);
    s.check("vm-kp-set-json");
}

#[test]
fn audit_log() {
    // Only verbs that finish before they return: a job's records are written by two threads,
    // in either order.
    let mut s = Session::new();
    s.run_with_stdin(
        &["user", "add", "alice", "--password-stdin"],
        b"a long enough password\n",
    )
    .run(&["vm", "add", "vm1", "--id", VM1])
    .run(&["vm", "security", "set", "vm1", "--tpm", "on"])
    .run(&["vm", "remove", "vm1"]);
    s.transcript.clear();
    // Newest first; --after reads on from a record, oldest first.
    s.run(&["audit"])
        .run(&["--json", "audit", "--after", "2"])
        .run(&["audit", "--limit", "2"])
        .run(&["audit", "--vm", VM1, "--limit", "2"])
        .run(&["audit", "--after", "1", "--limit", "1"])
        .run(&["audit", "--since", "2000-01-01T00:00:00Z", "--limit", "1"])
        .run(&["audit", "--since", "2999-01-01T00:00:00Z"])
        .run(&["--json", "audit", "--user", "nobody"])
        .run(&["audit", "--since", "yesterday"])
        .run(&["audit", "--vm", "no-such-vm"]);
    s.check("audit");
}
