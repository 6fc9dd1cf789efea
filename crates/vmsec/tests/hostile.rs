//! The hostile-input corpus (`tests/hostile/`, described in its README) replayed against one
//! live `vmsec serve`: every file gets its documented answer, and afterwards the server still
//! answers a normal GetKeyProtector correctly and its resident memory stayed bounded.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const VM: &str = "B5314955-3924-42BA-ABF9-793993D340A0";
const VM2: &str = "C5314955-3924-42BA-ABF9-793993D340A0";
/// Memory the replay may add to the server's resident set.
const RSS_GROWTH_BOUND_KIB: u64 = 64 * 1024;
const TIMEOUT_SECS: u64 = 2;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn b64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One corpus file: its `#!` header and the request template after it.
struct Case {
    name: String,
    fields: Vec<(String, String)>,
    template: Vec<u8>,
}

impl Case {
    fn load(path: &Path) -> Case {
        let bytes = std::fs::read(path).unwrap();
        let mut fields = Vec::new();
        let mut at = 0;
        while bytes[at..].starts_with(b"#! ") {
            let end = at + bytes[at..].iter().position(|&b| b == b'\n').unwrap();
            let line = String::from_utf8(bytes[at + 3..end].to_vec()).unwrap();
            let (k, v) = line.split_once(": ").unwrap();
            fields.push((k.to_owned(), v.to_owned()));
            at = end + 1;
        }
        Case {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            fields,
            template: bytes[at..].to_vec(),
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn replace(hay: &[u8], from: &str, to: &[u8]) -> Vec<u8> {
    let from = from.as_bytes();
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// `n` nested elements, each declaring a prefix of its own.
fn ns_nest(n: usize) -> String {
    let open: String = (0..n).map(|i| format!("<a xmlns:p{i}=\"u\">")).collect();
    format!("{open}{}", "</a>".repeat(n))
}

/// Expands `{{NAME}}` and `{{NAME:args}}` generators.
fn expand(mut t: Vec<u8>, vars: &[(&str, String)], pad: usize) -> Vec<u8> {
    for (k, v) in vars {
        t = replace(&t, &format!("{{{{{k}}}}}"), v.as_bytes());
    }
    t = replace(&t, "{{PAD}}", "A".repeat(pad).as_bytes());
    let mut from = 0;
    loop {
        let text = String::from_utf8_lossy(&t).into_owned();
        let Some(start) = text[from..].find("{{").map(|i| i + from) else {
            break;
        };
        let Some(len) = text[start..].find("}}") else {
            break;
        };
        let spec = &text[start + 2..start + len];
        if spec == "CL" {
            // Filled in last, once the body is final.
            from = start + len;
            continue;
        }
        let mut parts = spec.split(':');
        let what = parts.next().unwrap();
        let generated = match what {
            "NEST" => {
                let n: usize = parts.next().unwrap().parse().unwrap();
                format!("{}{}", "<a>".repeat(n), "</a>".repeat(n))
            }
            "ATTRS" => {
                let n: usize = parts.next().unwrap().parse().unwrap();
                (0..n).map(|i| format!("a{i}=\"\" ")).collect()
            }
            "NSNEST" => ns_nest(parts.next().unwrap().parse().unwrap()),
            "NSDECLS" => {
                let n: usize = parts.next().unwrap().parse().unwrap();
                (0..n)
                    .map(|i| format!(" xmlns:n{i}=\"urn:n{i}\""))
                    .collect()
            }
            "NSELEMS" => {
                let n: usize = parts.next().unwrap().parse().unwrap();
                (0..n)
                    .map(|i| format!("<n{i}:h xmlns:n{i}=\"urn:n\"/>"))
                    .collect()
            }
            "KP" => {
                let kp = match parts.next().unwrap() {
                    "nsnest" => {
                        let n: usize = parts.next().unwrap().parse().unwrap();
                        format!(
                            "<Protector xmlns=\"http://schemas.microsoft.com/kps/2014/07\"><Wrappings>{}</Wrappings></Protector>",
                            ns_nest(n)
                        )
                        .into_bytes()
                    }
                    "bom2" => {
                        let golden = repo_root().join("crates/vmsec-kp/testdata/golden-kp.xml");
                        [
                            &b"\xEF\xBB\xBF\xEF\xBB\xBF"[..],
                            &std::fs::read(golden).unwrap(),
                        ]
                        .concat()
                    }
                    other => panic!("unknown KP kind {other}"),
                };
                kp.iter()
                    .map(|b| format!("<p:KeyProtector>{b}</p:KeyProtector>"))
                    .collect()
            }
            "HEADERS" => {
                let n: usize = parts.next().unwrap().parse().unwrap();
                (0..n)
                    .map(|i| format!("X-H{i}: v"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            "ELEMS" => {
                let name = parts.next().unwrap();
                let n: usize = parts.next().unwrap().parse().unwrap();
                format!("<p:{name}>1</p:{name}>").repeat(n)
            }
            "REPEAT" => {
                let n: usize = parts.next().unwrap().parse().unwrap();
                parts.collect::<Vec<_>>().join(":").repeat(n)
            }
            "JSONNEST" => {
                let n: usize = parts.next().unwrap().parse().unwrap();
                format!("{}{}", "[".repeat(n), "]".repeat(n))
            }
            "TUPLES" => {
                let n: usize = parts.next().unwrap().parse().unwrap();
                vec![r#"{"m_Item1":8,"m_Item2":"AQ=="}"#; n].join(",")
            }
            other => panic!("unknown generator {other}"),
        };
        t = replace(&t, &format!("{{{{{spec}}}}}"), generated.as_bytes());
    }
    // Headers end at the first empty line; they travel with CRLF.
    let split = t.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(i) => (t[..i].to_vec(), t[i + 2..].to_vec()),
        None => (t.clone(), Vec::new()),
    };
    let head = replace(&head, "{{CL}}", body.len().to_string().as_bytes());
    let mut out = replace(&head, "\n", b"\r\n");
    if split.is_some() {
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&body);
    }
    out
}

/// The status line's code and the body, or `None` when the server closed without answering.
fn read_response(stream: &mut impl Read, deadline: Duration) -> Option<(u16, String)> {
    let started = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        assert!(
            started.elapsed() < deadline,
            "no complete response within {deadline:?}"
        );
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) if buf.is_empty() => return None,
            Ok(0) | Err(_) => panic!(
                "connection closed inside the headers: {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < header_end + length && started.elapsed() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some((
        status,
        String::from_utf8_lossy(&buf[header_end..]).into_owned(),
    ))
}

struct Server {
    _dir: tempfile::TempDir,
    data: PathBuf,
    child: Child,
    http: SocketAddr,
    https: SocketAddr,
    admin: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn vmsec(data: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    common::vmsec_ok(data, args, stdin.unwrap_or("").as_bytes())
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let kp = repo_root().join("crates/vmsec-kp/testdata/golden-kp.xml");
    let kp = kp.to_str().unwrap();
    for (name, id) in [("web1", VM), ("web2", VM2)] {
        vmsec(&data, &["vm", "add", name, "--id", id], None);
        vmsec(&data, &["vm", "kp", "set", name, kp], None);
    }
    let admin_password = "admin-secret";
    vmsec(
        &data,
        &[
            "user",
            "add",
            "admin",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some(admin_password),
    );
    let add = ["user", "add", "--role", "reader", "--password-stdin"];
    vmsec(
        &data,
        &[&add[..2], &["reader"], &add[2..]].concat(),
        Some("reader-secret\n"),
    );
    // A password change: the old one must stop working.
    vmsec(
        &data,
        &[&add[..2], &["rotated"], &add[2..]].concat(),
        Some("old-secret\n"),
    );
    vmsec(
        &data,
        &["user", "passwd", "rotated", "--password-stdin"],
        Some("new-secret\n"),
    );
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        format!("header_timeout_secs = {TIMEOUT_SECS}\nbody_timeout_secs = {TIMEOUT_SECS}\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmsec"))
        .arg("--data")
        .arg(&data)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--config")
        .arg(&config)
        .env("VMSEC_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addrs: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let addr = |k: &str| addrs[k][0].as_str().unwrap().parse().unwrap();
    Server {
        http: addr("http"),
        https: addr("https"),
        admin: b64(&format!("admin:{admin_password}")),
        child,
        data,
        _dir: dir,
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

fn post(addr: SocketAddr, auth: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /wsman HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    read_response(&mut s, Duration::from_secs(20)).expect("a response")
}

/// An enumeration context the admin opened and left open.
fn admin_context(srv: &Server) -> String {
    let body = std::fs::read_to_string(repo_root().join("bench/requests/get-ssd.xml")).unwrap();
    let body = body
        .replace(
            "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get",
            "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate",
        )
        .replace("<s:Body/>", "<s:Body><n:Enumerate xmlns:n=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\"/></s:Body>")
        .replace("{{VM}}", VM);
    let (status, reply) = post(srv.http, &srv.admin, &body);
    assert_eq!(status, 200, "{reply}");
    let start = reply.find("EnumerationContext>").unwrap() + "EnumerationContext>".len();
    reply[start..start + reply[start..].find('<').unwrap()].to_owned()
}

/// A `vm export` of web2 whose key protector was replaced by a symlink to /etc/passwd, with
/// web2 removed so that the import gets as far as reading it.
fn symlinked_import_dir(srv: &Server) -> PathBuf {
    let dir = srv.data.parent().unwrap().join("evil-import");
    vmsec(
        &srv.data,
        &["vm", "export", "web2", "--out", dir.to_str().unwrap()],
        None,
    );
    vmsec(&srv.data, &["vm", "remove", "web2", "--force"], None);
    let kp = dir.join("key-protector.xml");
    std::fs::remove_file(&kp).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &kp).unwrap();
    dir
}

fn matches_status(expected: &str, got: Option<u16>) -> bool {
    expected.split('|').any(|e| match (e, got) {
        ("close", None) => true,
        (code, Some(s)) => code.parse() == Ok(s),
        _ => false,
    })
}

fn check_http(case: &Case, got: Option<(u16, String)>) -> Result<(), String> {
    if std::env::var_os("HOSTILE_SHOW").is_some() {
        let (status, body) = got.clone().unwrap_or((0, String::new()));
        let sub = body
            .split("<s:Subcode><s:Value>")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .unwrap_or("-");
        let rv = body
            .split("ReturnValue>")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .unwrap_or("-");
        let text: String = if body.starts_with('<') {
            String::new()
        } else {
            body.chars().take(80).collect()
        };
        eprintln!(
            "SHOW {} status={status} subcode={sub} rv={rv} {text}",
            case.name
        );
    }
    let expected = case.get("status").expect("status");
    let status = got.as_ref().map(|(s, _)| *s);
    if !matches_status(expected, status) {
        return Err(format!(
            "status {status:?}, expected {expected}; body: {}",
            got.map(|(_, b)| b.chars().take(600).collect::<String>())
                .unwrap_or_default()
        ));
    }
    let body = got.map(|(_, b)| b).unwrap_or_default();
    if let Some(text) = case.get("body")
        && !body.contains(text)
    {
        return Err(format!("the answer does not say {text:?}: {body}"));
    }
    if let Some(fault) = case.get("fault") {
        let subcode = body
            .split("<s:Subcode><s:Value>")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .unwrap_or("");
        if subcode.rsplit(':').next() != Some(fault) {
            return Err(format!(
                "fault subcode {subcode:?}, expected {fault}; body: {}",
                body.chars().take(600).collect::<String>()
            ));
        }
    }
    if let Some(rv) = case.get("return") {
        let want = format!("ReturnValue>{rv}</");
        if !body.contains(&want) {
            return Err(format!(
                "expected ReturnValue {rv}; body: {}",
                body.chars().take(600).collect::<String>()
            ));
        }
    }
    Ok(())
}

/// A connection to `to`, from the loopback address `from` when given (another "host").
fn connect(to: SocketAddr, from: Option<&str>) -> TcpStream {
    let Some(from) = from else {
        return TcpStream::connect(to).unwrap();
    };
    let from: std::net::IpAddr = from.parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::new(from, 0).into())
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    socket.connect(&to.into()).unwrap();
    socket.into()
}

/// The server's count of argon2 password checks, from `/metrics`.
fn password_checks(srv: &Server) -> u64 {
    let mut s = TcpStream::connect(srv.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {}\r\n\r\n",
        srv.admin
    )
    .unwrap();
    let (status, body) = read_response(&mut s, Duration::from_secs(20)).expect("metrics");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix("vmsec_password_checks_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no vmsec_password_checks_total in {body}"))
}

/// A case's request with what its header asks around it: `repeat` sends it that many times
/// before the answer checked, `idle-flood` holds that many idle connections open from
/// 127.0.0.2 while it is sent, `concurrent` sends that many copies at once and checks each,
/// `password-checks-at-most` bounds the argon2 checks the case made the server do.
fn run_http(srv: &Server, case: &Case, request: &[u8]) -> Result<(), String> {
    let count = |k: &str| case.get(k).map(|v| v.parse::<usize>().unwrap());
    let checks_before = case
        .get("password-checks-at-most")
        .map(|_| password_checks(srv));
    for _ in 1..count("repeat").unwrap_or(1) {
        let mut s = connect(srv.http, case.get("source"));
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = s.write_all(request);
        let _ = read_response(&mut s, Duration::from_secs(20));
    }
    let flood: Vec<TcpStream> = (0..count("idle-flood").unwrap_or(0))
        .map(|_| connect(srv.http, Some("127.0.0.2")))
        .collect();
    let outcome = match count("concurrent") {
        Some(n) => {
            let answers: Vec<_> = (0..n)
                .map(|_| {
                    let (addr, request) = (srv.http, request.to_vec());
                    let source = case.get("source").map(str::to_owned);
                    std::thread::spawn(move || {
                        let mut s = connect(addr, source.as_deref());
                        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                        let _ = s.write_all(&request);
                        read_response(&mut s, Duration::from_secs(30))
                    })
                })
                .collect();
            answers
                .into_iter()
                .map(|t| check_http(case, t.join().unwrap()))
                .collect::<Result<Vec<()>, String>>()
                .map(drop)
        }
        None => run_one(srv, case, request),
    };
    drop(flood);
    outcome?;
    if let (Some(before), Some(most)) = (checks_before, count("password-checks-at-most")) {
        let made = password_checks(srv) - before;
        if made as usize > most {
            return Err(format!(
                "{made} passwords were hashed, at most {most} allowed"
            ));
        }
    }
    Ok(())
}

fn run_one(srv: &Server, case: &Case, request: &[u8]) -> Result<(), String> {
    let timeout = Duration::from_secs(TIMEOUT_SECS + 10);
    match case.get("mode") {
        Some("tls") => {
            let mut s = TcpStream::connect(srv.https).unwrap();
            s.set_read_timeout(Some(timeout)).unwrap();
            let _ = s.write_all(request);
            // The answer to a non-TLS client is a TLS alert record, if anything, then the
            // close; an HTTP response would mean the port spoke plain HTTP.
            let mut seen = Vec::new();
            let started = Instant::now();
            let mut chunk = [0u8; 4096];
            loop {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&chunk[..n]),
                }
                if started.elapsed() > timeout {
                    return Err("the HTTPS port kept a non-TLS connection open".into());
                }
            }
            if seen.starts_with(b"HTTP/") {
                return Err(format!(
                    "plain HTTP from the HTTPS port: {:?}",
                    String::from_utf8_lossy(&seen)
                ));
            }
            if seen.first().is_some_and(|&b| b != 0x15) {
                return Err(format!("not a TLS alert: {seen:?}"));
            }
            check_http(case, None)
        }
        Some("trickle") => {
            let mut s = TcpStream::connect(srv.http).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let started = Instant::now();
            for byte in request {
                if s.write_all(&[*byte]).is_err() {
                    break;
                }
                let mut probe = [0u8; 1];
                match s.peek(&mut probe) {
                    Ok(_) => break, // answered or closed
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
                if started.elapsed() > timeout {
                    return Err(
                        "the server kept a trickling client beyond its header timeout".into(),
                    );
                }
            }
            s.set_read_timeout(Some(timeout)).unwrap();
            let got = read_response(&mut s, timeout);
            if started.elapsed() > Duration::from_secs(TIMEOUT_SECS + 5) {
                return Err(format!("closed only after {:?}", started.elapsed()));
            }
            check_http(case, got)
        }
        Some("stall") => {
            let mut s = connect(srv.http, case.get("source"));
            s.set_read_timeout(Some(timeout)).unwrap();
            s.write_all(request).unwrap();
            check_http(case, read_response(&mut s, timeout))
        }
        None => {
            let mut s = connect(srv.http, case.get("source"));
            s.set_read_timeout(Some(timeout)).unwrap();
            // A server may answer and close before taking all of a huge request.
            let _ = s.write_all(request);
            let got = read_response(&mut s, timeout);
            let reply = got.as_ref().map(|(_, b)| b.clone()).unwrap_or_default();
            check_http(case, got)?;
            check_job(srv, case, &reply)
        }
        Some(other) => panic!("{}: unknown mode {other}", case.name),
    }
}

/// Waits for the job the answer started to end, and checks that `vmsec job show` says `text`.
fn check_job(srv: &Server, case: &Case, reply: &str) -> Result<(), String> {
    let Some(text) = case.get("job") else {
        return Ok(());
    };
    let id = reply
        .split("Name=\"InstanceID\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .ok_or_else(|| format!("no job reference in the answer: {reply}"))?;
    let started = Instant::now();
    loop {
        let out = common::run_vmsec(&srv.data, &["job", "show", id], b"");
        let shown = String::from_utf8_lossy(&out.stdout).into_owned();
        if shown.contains(text) {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(TIMEOUT_SECS + 10) {
            return Err(format!("job {id} does not say {text:?}: {shown}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run_cli(srv: &Server, case: &Case, line: &str) -> Result<(), String> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec {} --data {} {line}",
            env!("CARGO_BIN_EXE_vmsec"),
            srv.data.display()
        ))
        .output()
        .unwrap();
    let code = out.status.code();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = case.get("exit").expect("exit");
    if !expected.split('|').any(|e| e.parse::<i32>().ok() == code) {
        return Err(format!(
            "exit {code:?}, expected {expected}; stderr: {stderr}"
        ));
    }
    if let Some(text) = case.get("stderr")
        && !stderr.contains(text)
    {
        return Err(format!("stderr lacks {text:?}: {stderr}"));
    }
    if let Some(text) = case.get("stderr-not")
        && (stderr.contains(text) || String::from_utf8_lossy(&out.stdout).contains(text))
    {
        return Err(format!("output shows {text:?}: {stderr}"));
    }
    Ok(())
}

#[test]
fn every_hostile_input_gets_its_documented_answer_and_the_server_stays_healthy() {
    let srv = start();
    let dir = repo_root().join("tests/hostile");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "http"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 60, "the corpus has {} files", paths.len());

    let vars: Vec<(&str, String)> = vec![
        ("AUTH", srv.admin.clone()),
        ("READER_AUTH", b64("reader:reader-secret")),
        ("WRONG_AUTH", b64("admin:not-the-password")),
        ("UNKNOWN_AUTH", b64("mallory:secret")),
        (
            "LONG_NAME_AUTH",
            b64(&format!("{}:a long password", "x".repeat(100_000))),
        ),
        (
            "FORGED_NAME_AUTH",
            b64("x\n2026-12-01T00:00:00Z admin StopService Succeeded\u{1b}[2K\u{1b}[1A:pw"),
        ),
        ("OLD_AUTH", b64("rotated:old-secret")),
        ("VM", VM.to_owned()),
        ("ADMIN_CONTEXT", admin_context(&srv)),
        (
            "SYMLINK_IMPORT_DIR",
            symlinked_import_dir(&srv).display().to_string(),
        ),
    ];
    // The new password works: the old one is refused because it is old, not because the
    // user is unknown.
    let ssd_get = std::fs::read_to_string(repo_root().join("bench/requests/get-ssd.xml"))
        .unwrap()
        .replace("{{VM}}", VM);
    assert_eq!(post(srv.http, &b64("rotated:new-secret"), &ssd_get).0, 200);

    let pid = srv.child.id();
    let rss_before = rss_kib(pid);
    let mut failures = Vec::new();
    for path in &paths {
        let case = Case::load(path);
        assert!(
            case.get("attack").is_some(),
            "{}: no attack line",
            case.name
        );
        if case.get("target") == Some("kps") {
            continue; // the KPS's own test below
        }
        let pad = case.get("pad").map_or(0, |p| p.parse().unwrap());
        let outcome = if case.get("mode") == Some("cli") {
            let line = expand(case.template.clone(), &vars, pad);
            run_cli(&srv, &case, String::from_utf8_lossy(&line).trim())
        } else {
            let request = expand(case.template.clone(), &vars, pad);
            run_http(&srv, &case, &request)
        };
        if let Err(e) = outcome {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files got a wrong answer:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );

    // Still healthy: a normal GetKeyProtector answers with the whole key protector.
    let getkp = std::fs::read_to_string(repo_root().join("bench/requests/getkp.xml"))
        .unwrap()
        .replace("{{VM}}", VM);
    let (status, reply) = post(srv.http, &srv.admin, &getkp);
    assert_eq!(status, 200, "{}", &reply[..reply.len().min(600)]);
    assert!(reply.contains("ReturnValue>0</"), "{}", &reply[..600]);
    let golden = std::fs::read(repo_root().join("crates/vmsec-kp/testdata/golden-kp.xml")).unwrap();
    assert_eq!(reply.matches("<p:KeyProtector>").count(), golden.len());
    let rss_after = rss_kib(pid);
    assert!(
        rss_after < rss_before + RSS_GROWTH_BOUND_KIB,
        "resident memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    eprintln!(
        "hostile corpus: {} files, resident memory {rss_before} KiB before, {rss_after} KiB after",
        paths.len()
    );
}

/// A Key Protection Service (`kps serve`, plain HTTP beside HTTPS on loopback) with the
/// hostile corpus's short timeouts.
fn start_kps() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("kps");
    vmsec(&data, &["kps", "init", "--key-size", "2048"], None);
    let config = dir.path().join("kps.toml");
    std::fs::write(
        &config,
        format!("header_timeout_secs = {TIMEOUT_SECS}\nbody_timeout_secs = {TIMEOUT_SECS}\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmsec"))
        .arg("--data")
        .arg(&data)
        .args([
            "kps",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--config")
        .arg(&config)
        .env("VMSEC_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addrs: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let addr = |k: &str| addrs[k][0].as_str().unwrap().parse().unwrap();
    let password = std::fs::read_to_string(data.join("initial-admin-password")).unwrap();
    Server {
        http: addr("http"),
        https: addr("https"),
        admin: b64(&format!("admin:{}", password.trim())),
        child,
        data,
        _dir: dir,
    }
}

/// The corpus files marked `target: kps`: what strangers may send the Key Protection Service
/// and Attestation Service gets the specs' error replies, never a 5xx, and the KPS stays up.
#[test]
fn every_hostile_input_to_the_kps_gets_the_specs_answer_and_it_stays_healthy() {
    let srv = start_kps();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo_root().join("tests/hostile"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "http"))
        .collect();
    paths.sort();
    let vars: Vec<(&str, String)> = vec![
        ("AUTH", srv.admin.clone()),
        ("WRONG_AUTH", b64("admin:not-the-password")),
    ];
    let mut failures = Vec::new();
    let mut ran = 0;
    for path in &paths {
        let case = Case::load(path);
        if case.get("target") != Some("kps") {
            continue;
        }
        ran += 1;
        let pad = case.get("pad").map_or(0, |p| p.parse().unwrap());
        let request = expand(case.template.clone(), &vars, pad);
        if let Err(e) = run_http(&srv, &case, &request) {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    assert!(ran >= 15, "only {ran} KPS cases");
    assert!(
        failures.is_empty(),
        "{} of {ran} KPS cases got a wrong answer:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Still healthy: Getinfo answers.
    let mut s = TcpStream::connect(srv.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /Attestation/Getinfo HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let (status, body) = read_response(&mut s, Duration::from_secs(10)).expect("an answer");
    assert_eq!(status, 200);
    assert!(body.contains("ServiceInfoReply"), "{body}");
}
