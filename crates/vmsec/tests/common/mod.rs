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
