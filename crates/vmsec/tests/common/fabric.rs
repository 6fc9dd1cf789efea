//! The guarded fabric's test fixtures: data directories with the `vmsec` commands run in
//! them, a `vmsec kps serve` process, hosts in HGS mode and an owner's key protector.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const NV_INDEX: &str = "0x1500017";
pub const VALUE: &[u8; 32] = b"vmsec-fabric-secret-0123456789AB";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A data directory and the `vmsec` commands run in it.
pub struct Dir {
    pub data: PathBuf,
    pub _tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        let tmp = tempfile::tempdir().expect("temporary directory");
        Dir {
            data: tmp.path().join("data"),
            _tmp: tmp,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self._tmp.path().join(name)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vmsec"))
            .arg("--data")
            .arg(&self.data)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running vmsec")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "vmsec {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).expect("JSON output")
    }

    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "vmsec {args:?} should fail; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).expect("UTF-8")
    }
}

/// `vmsec kps serve` on port 0; killed on drop.
pub struct KpsProcess {
    pub child: Child,
    pub url: String,
}

impl KpsProcess {
    pub fn start(kps: &Dir) -> KpsProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vmsec"))
            .arg("--data")
            .arg(&kps.data)
            .args(["kps", "serve", "--listen", "127.0.0.1:0"])
            .env("VMSEC_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting kps serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the listen line");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let addr = v["https"][0].as_str().expect("an address").to_owned();
        let port = addr.rsplit(':').next().expect("port");
        KpsProcess {
            child,
            url: format!("https://localhost:{port}"),
        }
    }

    pub fn attestation(&self) -> String {
        format!("{}/Attestation", self.url)
    }

    pub fn key_protection(&self) -> String {
        format!("{}/KeyProtection", self.url)
    }

    /// SIGKILL, as a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for KpsProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fabric: the KPS's directory, initialized, and its TLS certificate (the hosts' `--ca`).
pub fn new_kps() -> (Dir, PathBuf) {
    let kps = Dir::new();
    kps.ok(&["kps", "init", "--key-size", "2048"]);
    let ca = kps.data.join("tls/cert.pem");
    (kps, ca)
}

/// A host with a host key, registered at `kps` as `name` when asked, in HGS mode.
pub fn hgs_host(kps: &Dir, server: &KpsProcess, ca: &Path, name: &str, register: bool) -> Dir {
    let host = Dir::new();
    let pem = host.ok(&["hgs", "host-key", "new"]);
    assert!(
        pem.starts_with("-----BEGIN PUBLIC KEY-----\n")
            && pem.ends_with("-----END PUBLIC KEY-----\n"),
        "{pem}"
    );
    let file = host.path("host-key.pem");
    std::fs::write(&file, pem).unwrap();
    if register {
        kps.ok(&["kps", "host", "add", name, "--host-key", s(&file)]);
    }
    host.ok(&[
        "hgs",
        "set",
        "--attestation-url",
        &server.attestation(),
        "--key-protection-url",
        &server.key_protection(),
        "--ca",
        s(ca),
    ]);
    host
}

/// The owner: its own directory, the fabric guardian imported from the KPS, and a key
/// protector granting only the fabric.
pub fn owner_kp(server: &KpsProcess, ca: &Path) -> (Dir, PathBuf) {
    let owner = Dir::new();
    owner.ok(&[
        "guardian",
        "import",
        "fabric",
        "--url",
        &server.key_protection(),
        "--ca",
        s(ca),
    ]);
    owner.ok(&["guardian", "new", "owner", "--key-size", "2048"]);
    let kp = owner.path("kp.xml");
    owner.ok(&[
        "kp",
        "new",
        "--owner",
        "owner",
        "--guardian",
        "fabric",
        "--out",
        s(&kp),
    ]);
    (owner, kp)
}

pub fn add_vm(host: &Dir, kp: &Path) {
    host.ok(&["vm", "add", "vm1"]);
    host.ok(&["vm", "kp", "set", "vm1", s(kp)]);
    host.ok(&["vm", "security", "set", "vm1", "--tpm", "on"]);
}

pub fn kp_of(host: &Dir) -> Vec<u8> {
    host.run(&["vm", "kp", "get", "vm1"]).stdout
}

pub fn tpm2(tcti: &str, tool: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool)
        .env("TPM2TOOLS_TCTI", tcti)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect(tool);
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Defines the test's NV index in the running vTPM and writes [`VALUE`] to it, as a guest would.
pub fn write_nv(host: &Dir, started: &serde_json::Value) {
    let tcti = started["tcti"].as_str().unwrap();
    let value = host.path("value.bin");
    std::fs::write(&value, VALUE).unwrap();
    tpm2(
        tcti,
        "tpm2_nvdefine",
        &[
            NV_INDEX,
            "-C",
            "o",
            "-s",
            "32",
            "-a",
            "ownerread|ownerwrite|authread|authwrite",
        ],
    );
    tpm2(
        tcti,
        "tpm2_nvwrite",
        &[NV_INDEX, "-C", "o", "-i", s(&value)],
    );
}

pub fn start(host: &Dir) -> serde_json::Value {
    host.json(&["tpm", "start", "vm1", "--socket", s(&host.path("vm1.sock"))])
}

pub fn stop(host: &Dir) {
    host.ok(&["tpm", "stop", "vm1"]);
}

pub fn contains_file(dir: &Path, needle: &[u8]) -> bool {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                pending.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                return true;
            }
        }
    }
    false
}
