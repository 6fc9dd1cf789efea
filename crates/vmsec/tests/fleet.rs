//! Several hosts on one PostgreSQL store, end to end with the built binary: three `vmsec
//! serve` processes racing SetKeyProtector on one VM, and the vTPM lease that lets one host
//! at a time run a VM's vTPM (refused naming the holder, taken after a stop or a crash, and
//! a host that lost its lease stopping its swtpm).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vmsec_store::Store;
use vmsec_store::conformance::pg::TestDb;
use vmsec_store::postgres::PgStore;

const SERVICE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_SecurityService";
const JOB: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_ConcreteJob";

/// One host: its own data directory and name, the shared store.
struct Host {
    data: PathBuf,
    name: String,
    url: String,
    lease_secs: &'static str,
}

impl Host {
    fn new(root: &Path, name: &str, db: &TestDb) -> Host {
        Host {
            data: root.join(name),
            name: name.into(),
            url: db.url.clone(),
            lease_secs: "30",
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vmsec"));
        c.arg("--data")
            .arg(&self.data)
            .env("VMSEC_STORE", &self.url)
            .env("VMSEC_HOST_NAME", &self.name)
            .env("VMSEC_LEASE_SECS", self.lease_secs)
            .env_remove("VMSEC_DATA")
            .env_remove("VMSEC_LOG");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn serve(&self) -> common::Served {
        common::Served::spawn(self.command(), &self.data)
    }
}

fn post(addr: SocketAddr, password: &str, body: &str) -> String {
    use base64::Engine;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}"));
    write!(
        s,
        "POST /wsman HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/soap+xml;charset=UTF-8\r\n\
         Authorization: Basic {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    if let Err(e) = s.read_to_end(&mut out) {
        panic!("{e}: {}", String::from_utf8_lossy(&out));
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn envelope(action: &str, uri: &str, selectors: &str, body: &str) -> String {
    format!(
        r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header><a:To>http://localhost/wsman</a:To><w:ResourceURI>{uri}</w:ResourceURI><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><a:Action>{action}</a:Action><w:MaxEnvelopeSize>4096000</w:MaxEnvelopeSize><a:MessageID>uuid:{}</a:MessageID>{selectors}</s:Header><s:Body>{body}</s:Body></s:Envelope>"#,
        uuid::Uuid::new_v4()
    )
}

/// SetKeyProtector of `kp` on `vm` through the server at `addr`, waited for; the job's state.
fn set_key_protector(addr: SocketAddr, password: &str, vm: uuid::Uuid, kp: &[u8]) -> u32 {
    let ssd = format!(
        "&lt;INSTANCE CLASSNAME=\"Msvm_SecuritySettingData\"&gt;&lt;PROPERTY NAME=\"InstanceID\" \
         TYPE=\"string\"&gt;&lt;VALUE&gt;Microsoft:{vm}&lt;/VALUE&gt;&lt;/PROPERTY&gt;&lt;/INSTANCE&gt;"
    );
    let bytes: String = kp
        .iter()
        .map(|b| format!("<p:KeyProtector>{b}</p:KeyProtector>"))
        .collect();
    let body = format!(
        r#"<p:SetKeyProtector_INPUT xmlns:p="{SERVICE}"><p:SecuritySettingData>{ssd}</p:SecuritySettingData>{bytes}</p:SetKeyProtector_INPUT>"#
    );
    let reply = post(
        addr,
        password,
        &envelope(&format!("{SERVICE}/SetKeyProtector"), SERVICE, "", &body),
    );
    assert!(
        reply.contains("<p:ReturnValue>4096</p:ReturnValue>"),
        "{reply}"
    );
    let job = reply
        .split(r#"Name="InstanceID">"#)
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .to_owned();
    let get = envelope(
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get",
        JOB,
        &format!(
            r#"<w:SelectorSet><w:Selector Name="InstanceID">{job}</w:Selector></w:SelectorSet>"#
        ),
        "",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = post(addr, password, &get);
        let state: u32 = reply
            .split("<p:JobState>")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{reply}"));
        if state >= 7 || Instant::now() > deadline {
            return state;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn three_servers_racing_set_key_protector_on_one_vm_leave_one_current_kp_and_a_complete_history() {
    let Some(db) = TestDb::create() else { return };
    let root = tempfile::tempdir().unwrap();
    let hosts: Vec<Host> = (1..=3)
        .map(|i| Host::new(root.path(), &format!("host-{i}"), &db))
        .collect();
    hosts[0].ok(&["guardian", "new", "owner", "--key-size", "2048"]);
    let kps: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let f = root.path().join(format!("kp{i}.xml"));
            hosts[0].ok(&[
                "kp",
                "new",
                "--owner",
                "owner",
                "--out",
                f.to_str().unwrap(),
            ]);
            std::fs::read(f).unwrap()
        })
        .collect();
    hosts[0].ok(&["vm", "add", "web1"]);
    // The first server creates the fleet's admin; the others find it.
    let mut servers = vec![hosts[0].serve()];
    let password = std::fs::read_to_string(hosts[0].data.join("initial-admin-password"))
        .unwrap()
        .trim()
        .to_owned();
    servers.push(hosts[1].serve());
    servers.push(hosts[2].serve());
    assert!(!hosts[1].data.join("initial-admin-password").exists());

    let store = PgStore::open(&db.url, "observer").unwrap();
    let vm = store.vm_by_name("web1").unwrap().unwrap().id;
    let threads: Vec<_> = servers
        .iter()
        .zip(kps.clone())
        .map(|(server, kp)| {
            let (addr, password) = (server.http, password.clone());
            std::thread::spawn(move || set_key_protector(addr, &password, vm, &kp))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 7, "every job completed");
    }
    let current = store.vm_security(vm).unwrap().key_protector.unwrap();
    let history: Vec<Vec<u8>> = store
        .kp_history(vm)
        .unwrap()
        .into_iter()
        .map(|h| h.key_protector)
        .collect();
    let mut all = history.clone();
    all.push(current);
    all.sort();
    let mut expected = kps;
    expected.sort();
    assert_eq!(
        all, expected,
        "one current, the two others in history, none lost or doubled"
    );
    let audited = store
        .audit(0, 10_000)
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.operation == "SetKeyProtector" && r.outcome == vmsec_store::AuditOutcome::Succeeded
        })
        .count();
    assert_eq!(audited, 3);
    let names = hosts[0].ok(&["hosts"]);
    for h in &hosts {
        assert!(names.contains(&h.name), "{names}");
    }
    drop(servers);
}

/// Two hosts that can both unwrap web1's key protector, its vTPM state on storage they share.
fn two_hosts_for_one_vtpm(root: &Path, db: &TestDb) -> (Host, Host, String) {
    let mut a = Host::new(root, "host-a", db);
    let mut b = Host::new(root, "host-b", db);
    a.lease_secs = "3";
    b.lease_secs = "3";
    let kp = root.join("kp.xml");
    let kp = kp.to_str().unwrap();
    a.ok(&["guardian", "new", "owner-a", "--key-size", "2048"]);
    b.ok(&["guardian", "new", "owner-b", "--key-size", "2048"]);
    a.ok(&[
        "kp",
        "new",
        "--owner",
        "owner-a",
        "--guardian",
        "owner-b",
        "--out",
        kp,
    ]);
    a.ok(&["vm", "add", "web1"]);
    a.ok(&["vm", "kp", "set", "web1", kp]);
    a.ok(&["vm", "security", "set", "web1", "--tpm", "on"]);
    let state = root.join("shared-state").to_str().unwrap().to_owned();
    (a, b, state)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_vtpm_runs_on_one_host_at_a_time_and_moves_after_a_stop_or_a_crash() {
    if !common::tools_present() {
        return;
    }
    let Some(db) = TestDb::create() else { return };
    let root = tempfile::tempdir().unwrap();
    let (a, b, state) = two_hosts_for_one_vtpm(root.path(), &db);
    a.ok(&["tpm", "start", "web1", "--state", &state]);
    let refused = b.run(&["tpm", "start", "web1", "--state", &state]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("runs on host host-a"),
        "{}",
        stderr(&refused)
    );
    assert!(
        b.ok(&["tpm", "status", "web1"])
            .contains("running on host host-a")
    );
    // Held past its lease time: the keeper renews it.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !b.run(&["tpm", "start", "web1", "--state", &state])
            .status
            .success()
    );

    a.ok(&["tpm", "stop", "web1"]);
    let started = b.ok(&["--json", "tpm", "start", "web1", "--state", &state]);
    let started: serde_json::Value = serde_json::from_str(&started).unwrap();
    // Host B crashes: its swtpm and its lease keeper are killed. Until the lease runs out A
    // is refused; then A takes the VM.
    let status: serde_json::Value =
        serde_json::from_str(&b.ok(&["--json", "tpm", "status", "web1"])).unwrap();
    assert_eq!(status[0]["status"]["state"], "running", "{status}");
    let _ = Command::new("pkill")
        .args([
            "-KILL",
            "-f",
            &format!("{} tpm keep-lease", b.data.display()),
        ])
        .status();
    let _ = Command::new("kill")
        .args(["-KILL", &started["pid"].to_string()])
        .status();
    let refused = a.run(&["tpm", "start", "web1", "--state", &state]);
    assert!(
        stderr(&refused).contains("runs on host host-b"),
        "{}",
        stderr(&refused)
    );
    std::thread::sleep(Duration::from_secs(4));
    a.ok(&["tpm", "start", "web1", "--state", &state]);
    a.ok(&["tpm", "stop", "web1"]);
}

#[test]
fn a_host_that_lost_its_lease_stops_its_swtpm() {
    if !common::tools_present() {
        return;
    }
    let Some(db) = TestDb::create() else { return };
    let root = tempfile::tempdir().unwrap();
    let (a, _b, state) = two_hosts_for_one_vtpm(root.path(), &db);
    a.ok(&["tpm", "start", "web1", "--state", &state]);
    // Another host takes the lease from under it (as a split brain would): A's next renewal
    // fails, and A stops its swtpm.
    db.execute(
        "UPDATE vm_leases SET token = token + 1000000, \
         host_guid = (SELECT guid FROM hosts WHERE name = 'host-b')",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: serde_json::Value =
            serde_json::from_str(&a.ok(&["--json", "tpm", "status", "web1"])).unwrap();
        if status[0]["status"]["state"] == "stopped" {
            break;
        }
        assert!(Instant::now() < deadline, "the vTPM still runs: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let audit = a.ok(&["audit", "--vm", "web1"]);
    assert!(audit.contains("TpmLeaseLost"), "{audit}");
}

#[test]
fn a_password_changed_on_one_host_refuses_the_old_one_on_another_at_the_next_request() {
    let Some(db) = TestDb::create() else { return };
    let root = tempfile::tempdir().unwrap();
    let a = Host::new(root.path(), "host-a", &db);
    let b = Host::new(root.path(), "host-b", &db);
    let server = a.serve();
    let addr = server.http;
    let password = std::fs::read_to_string(a.data.join("initial-admin-password"))
        .unwrap()
        .trim()
        .to_owned();
    let get = envelope(
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get",
        SERVICE,
        "",
        "",
    );
    // Twice: the second is answered from host A's verified-credentials cache.
    for _ in 0..2 {
        assert!(post(addr, &password, &get).starts_with("HTTP/1.1 200"));
    }
    let mut passwd = b
        .command()
        .args(["user", "passwd", "admin", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    passwd
        .stdin
        .take()
        .unwrap()
        .write_all(b"changed on host b\n")
        .unwrap();
    assert!(passwd.wait().unwrap().success());
    assert!(post(addr, &password, &get).starts_with("HTTP/1.1 401"));
    assert!(post(addr, "changed on host b", &get).starts_with("HTTP/1.1 200"));
    drop(server);
}

#[test]
fn an_unreachable_store_stops_the_command_naming_the_url_without_its_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vmsec"))
        .arg("--data")
        .arg(root.path().join("d"))
        .args(["vm", "list"])
        .env(
            "VMSEC_STORE",
            format!("postgres://vmsec:pw-secret@127.0.0.1:{port}/fleet"),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("postgres://vmsec@127.0.0.1:{port}/fleet")),
        "{err}"
    );
    assert!(!err.contains("pw-secret"), "{err}");
}

/// A cluster of this test's own, which it may stop and start (the shared test cluster is
/// everyone's): `scripts/pg` in a temporary directory.
struct OwnCluster {
    dir: PathBuf,
    url: String,
}

impl OwnCluster {
    fn start(root: &Path) -> OwnCluster {
        let dir = root.join("own-pg");
        let out = Command::new(Self::script())
            .arg("start")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        OwnCluster {
            url: String::from_utf8(out.stdout).unwrap().trim().to_owned(),
            dir,
        }
    }

    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg")
    }

    /// Stops the server at once (no shutdown checkpoint), as a crash would.
    fn stop_now(&self) {
        let pid = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).unwrap();
        let pid = pid.lines().next().unwrap().trim().to_owned();
        assert!(
            Command::new("kill")
                .args(["-QUIT", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Path::new(&format!("/proc/{pid}")).exists() {
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn restart(&self) {
        let out = Command::new(Self::script())
            .arg("restart")
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

#[test]
fn a_server_whose_database_goes_away_answers_503_not_401_and_reconnects_when_it_is_back() {
    // Only where the test cluster runs (then PostgreSQL's server is installed).
    let Some(_shared) = TestDb::create() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    // The cluster's unprivileged owner (when the tests run as root) must reach its directory.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let pg = OwnCluster::start(root.path());
    let a = Host {
        data: root.path().join("a"),
        name: "host-a".into(),
        url: pg.url.clone(),
        lease_secs: "30",
    };
    a.ok(&["vm", "add", "web1"]);
    let server = a.serve();
    let addr = server.http;
    let password = std::fs::read_to_string(a.data.join("initial-admin-password"))
        .unwrap()
        .trim()
        .to_owned();
    let get = envelope(
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get",
        SERVICE,
        "",
        "",
    );
    assert!(post(addr, &password, &get).starts_with("HTTP/1.1 200"));
    pg.stop_now();
    let down = post(addr, &password, &get);
    assert!(down.starts_with("HTTP/1.1 503"), "{down}");
    assert!(
        down.to_ascii_lowercase().contains("retry-after: 5"),
        "{down}"
    );
    pg.restart();
    // The pool drops what the restart closed and connects anew, by itself.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let back = post(addr, &password, &get);
        if back.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "{back}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(server);
}
