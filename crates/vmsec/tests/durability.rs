//! Killing the process in the middle of writes loses nothing that was committed and leaves
//! nothing half-written.

use std::process::{Command, Stdio};
use std::time::Duration;

use rusqlite::Connection;

fn vmsec(data: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vmsec"));
    c.arg("--data")
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

#[test]
fn sigkill_during_set_key_protector_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(
        vmsec(&data)
            .args(["vm", "add", "victim"])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        vmsec(&data)
            .args(["guardian", "new", "owner"])
            .status()
            .unwrap()
            .success()
    );
    // Real key protectors, each with its own transport key.
    let kps: Vec<String> = (0..24)
        .map(|n| {
            let f = dir.path().join(format!("kp{n}.xml"));
            let ok = vmsec(&data)
                .args(["kp", "new", "--owner", "owner", "--out"])
                .arg(&f)
                .status()
                .unwrap();
            assert!(ok.success());
            std::fs::read_to_string(&f).unwrap()
        })
        .collect();
    for (n, _) in kps.iter().enumerate() {
        let f = dir.path().join(format!("kp{n}.xml"));
        let mut child = vmsec(&data)
            .args(["vm", "kp", "set", "victim"])
            .arg(&f)
            .spawn()
            .unwrap();
        // Kill at a different moment each time: before, during and after the transaction.
        std::thread::sleep(Duration::from_millis((n as u64 * 5) % 40));
        let _ = child.kill();
        let _ = child.wait();
    }

    let conn = Connection::open(data.join("vmsec.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let current: Option<Vec<u8>> = conn
        .query_row(
            "SELECT key_protector FROM vms WHERE name = 'victim'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if let Some(c) = current {
        assert!(
            kps.iter().any(|k| k.as_bytes() == c.as_slice()),
            "the current KP is one that was written, whole"
        );
    }
    let mut st = conn
        .prepare("SELECT key_protector FROM kp_history")
        .unwrap();
    for h in st.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap() {
        let h = h.unwrap();
        assert!(
            kps.iter().any(|k| k.as_bytes() == h.as_slice()),
            "history holds only whole KPs"
        );
    }
    drop(st);
    drop(conn);

    // The next process recovers the jobs the killed ones left running.
    assert!(
        vmsec(&data)
            .args(["job", "list"])
            .status()
            .unwrap()
            .success()
    );
    let conn = Connection::open(data.join("vmsec.db")).unwrap();
    let running: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM jobs WHERE job_state IN (2, 4)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(running, 0, "no job is left running after recovery");
    let completed_without_change: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM jobs j WHERE job_state = 7 AND NOT EXISTS \
             (SELECT 1 FROM vms WHERE key_protector IS NOT NULL) ",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        completed_without_change, 0,
        "a completed job's change is stored"
    );
}
