//! What the binary's integration tests share.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `vmsec --data DATA ARGS…` with `stdin` as its standard input; its output, whatever
/// its exit status. The variables vmsec reads are not passed on: a developer's own would
/// change what it logs, and show in `--help` (`[env: VMSEC_DATA=…]`, in the snapshots).
pub fn run_vmsec(data: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmsec"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("VMSEC_DATA")
        .env_remove("VMSEC_STORE")
        .env_remove("VMSEC_HOST_NAME")
        .env_remove("VMSEC_LOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// [`run_vmsec`] for a command that must succeed.
pub fn vmsec_ok(data: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let out = run_vmsec(data, args, stdin);
    assert!(
        out.status.success(),
        "vmsec {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The venv's python (set by scripts/test): the real-client and independent-checker tests
/// need it. With CI=true its absence fails the test; elsewhere the test is skipped.
pub fn python() -> Option<String> {
    match std::env::var("VMSEC_PYTHON") {
        Ok(p) if Path::new(&p).exists() => Some(p),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("VMSEC_PYTHON must name the test venv's python in CI (run scripts/test)")
        }
        _ => {
            eprintln!("skipped: VMSEC_PYTHON is not set; run scripts/test for these tests");
            None
        }
    }
}

/// Whether swtpm and tpm2-tools are on PATH; with CI=true their absence fails the test,
/// elsewhere it is skipped.
pub fn tools_present() -> bool {
    let missing: Vec<&str> = ["swtpm", "swtpm_setup", "tpm2_nvread", "tpm2_createprimary"]
        .into_iter()
        .filter(|tool| {
            !std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).any(|dir| dir.join(tool).is_file()))
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{missing:?} not on PATH: install the Debian packages swtpm, swtpm-tools and tpm2-tools"
        );
    }
    eprintln!("skipped: {missing:?} not on PATH (install swtpm, swtpm-tools, tpm2-tools)");
    false
}

/// A VM named `vm` in `data` with its TPM on and a key protector owned by a guardian "owner"
/// made there (written to `kp`): what a vTPM start needs.
pub fn vm_with_local_kp(data: &Path, kp: &Path, vm: &str) {
    let kp = kp.to_str().expect("UTF-8 path");
    vmsec_ok(
        data,
        &["guardian", "new", "owner", "--key-size", "2048"],
        b"",
    );
    vmsec_ok(data, &["kp", "new", "--owner", "owner", "--out", kp], b"");
    vmsec_ok(data, &["vm", "add", vm], b"");
    vmsec_ok(data, &["vm", "kp", "set", vm, kp], b"");
    vmsec_ok(data, &["vm", "security", "set", vm, "--tpm", "on"], b"");
}

/// `vmsec serve` on loopback over `data`, plain HTTP on a port of its choosing; killed when
/// dropped.
pub struct Served {
    pub child: std::process::Child,
    pub http: std::net::SocketAddr,
    pub password: String,
}

impl Served {
    pub fn start(data: &Path) -> Served {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vmsec"));
        cmd.arg("--data").arg(data).env_remove("VMSEC_DATA");
        Served::spawn(cmd, data)
    }

    /// `cmd` (the binary with its `--data DATA` and environment) running `serve`. The
    /// password is the admin's that this start created, empty when the store had users
    /// already (another host of a shared store made the admin).
    pub fn spawn(mut cmd: Command, data: &Path) -> Served {
        use std::io::BufRead;
        let mut child = cmd
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addrs: serde_json::Value = serde_json::from_str(&line).unwrap();
        let password = std::fs::read_to_string(data.join("initial-admin-password"))
            .map(|p| p.trim().to_owned())
            .unwrap_or_default();
        Served {
            http: addrs["http"][0].as_str().unwrap().parse().unwrap(),
            child,
            password,
        }
    }

    /// POSTs `body` to /wsman as the admin; the status and the response's body.
    pub fn post(&self, body: &str) -> (u16, String) {
        use base64::Engine;
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(self.http).unwrap();
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("admin:{}", self.password));
        let req = format!(
            "POST /wsman HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\nAuthorization: Basic {auth}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
        (status, body)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
pub mod fabric;
