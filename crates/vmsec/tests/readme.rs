//! The README's command sections, run as written and in order on one data directory (issue
//! 16): the walk-through, then the vTPM section. Each line must succeed, except those whose
//! comment begins "fails" or "refused", which must exit with 1. The guarded-fabric
//! section runs a server on a fixed port, so the fabric tests (fabric.rs) cover it instead.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::tools_present;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The lines of the first ```sh block after `heading`.
fn sh_block(readme: &str, heading: &str) -> Vec<String> {
    let section = &readme[readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"))..];
    let start = section.find("```sh\n").expect("an sh block") + 6;
    let end = start + section[start..].find("```").expect("its end");
    section[start..end].lines().map(str::to_owned).collect()
}

#[test]
fn the_walk_through_and_the_vtpm_section_run_in_order_as_written() {
    if !tools_present() {
        return;
    }
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The walk-through names files of the repository by their relative paths.
    std::os::unix::fs::symlink(repo_root().join("crates"), dir.path().join("crates")).unwrap();
    let mut lines = sh_block(&readme, "## A walk-through");
    lines.extend(sh_block(&readme, "## Protect a QEMU VM's vTPM"));
    let mut ran = 0;
    for line in &lines {
        let (command, comment) = line.split_once(" # ").unwrap_or((line, ""));
        let command = command.trim();
        // The README's definition of `vmsec`; here it is the built binary.
        if command.is_empty() || command.starts_with("vmsec()") {
            continue;
        }
        let comment = comment.trim();
        let expect_failure = comment.starts_with("fails") || comment.starts_with("refused");
        let script = format!(
            "vmsec() {{ {:?} \"$@\"; }}\n{command}",
            env!("CARGO_BIN_EXE_vmsec")
        );
        let out = Command::new("bash")
            .args(["-c", &script])
            .current_dir(dir.path())
            // The README's commands use the default data directory; here, the test's own.
            .env("VMSEC_DATA", dir.path().join("vmsec-data"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let code = out.status.code();
        if expect_failure {
            assert_eq!(
                code,
                Some(1),
                "{command}: should fail\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        } else {
            assert_eq!(
                code,
                Some(0),
                "{command}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ran += 1;
    }
    assert!(ran >= 15, "only {ran} commands found");
    let _ = Command::new(env!("CARGO_BIN_EXE_vmsec"))
        .args([
            "--data",
            dir.path().join("vmsec-data").to_str().unwrap(),
            "tpm",
            "stop",
            "web1",
        ])
        .output();
}
