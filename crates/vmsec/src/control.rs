//! The local control socket of `vmsec serve`: `DATA/serve.sock`, through which the CLI asks a
//! running server to start a vTPM.
//!
//! A new `vmsec` process pays some 20–30 ms for aws-lc to seed its random generator from
//! CPU-jitter entropy before its first key operation; a running server has paid it once.
//! `tpm start` therefore asks the server of the same data directory when one listens, and
//! starts the vTPM itself when none does. The socket sits in the data directory, which is
//! mode 0700, and is itself 0600: whoever can connect could read the store and the master
//! key anyway, so the server acts for it as the CLI would, as the local administrator.
//!
//! One request per connection: a JSON line, at most [`MAX_REQUEST`] bytes, answered by one
//! JSON line.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::CliError;
use crate::data_dir::DataDir;

/// The socket's name in the data directory.
pub const SOCKET: &str = "serve.sock";

/// The longest request line read; a `tpm start` request is a few hundred bytes.
const MAX_REQUEST: u64 = 16 * 1024;

/// How long the server waits for a client's request line.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the CLI waits for the server's answer: a start of swtpm may take its whole
/// timeout, an HGS-mode start a round trip to the fabric on top.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// Requests served at once; more wait in the listen backlog.
const MAX_AT_ONCE: usize = 4;

/// `vmsec tpm start`'s arguments, as the CLI resolved them (paths absolute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TpmStartRequest {
    pub vm: String,
    pub state: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub tcp: Option<u16>,
    pub reset: bool,
    /// Whether the CLI prints JSON: the server renders the output the CLI prints.
    pub json: bool,
    /// [`store_identity`] of the CLI: a server of another store, or that is another host
    /// in it, declines.
    pub store: String,
}

/// The server's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Answer {
    /// Done: what the CLI prints.
    Done { stdout: String },
    /// Refused or failed, as the CLI would have reported it.
    Failed { message: String, code: String },
    /// This server is not the one to ask (another store): the CLI does it itself.
    Declined { why: String },
}

/// What a process acts on: its store (the URL, `None` for the data directory's SQLite) and
/// this host's name in it, as a fingerprint that carries no password.
pub fn store_identity(url: Option<&str>, host: &str) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(&(host.len() as u64).to_be_bytes());
    ctx.update(host.as_bytes());
    ctx.update(url.unwrap_or("").as_bytes());
    ctx.finish().as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Asks the server of `data`, if one listens, to start a vTPM. `None` when no server
/// listens or it declined: the caller starts the vTPM itself.
pub fn ask(data: &DataDir, request: &TpmStartRequest) -> Option<Result<String, CliError>> {
    let path = data.path.join(SOCKET);
    // No server (no socket, or one left by a server that is gone): not an error.
    let mut stream = UnixStream::connect(&path).ok()?;
    let mut exchange = || -> Result<Answer, String> {
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut line = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        line.push(b'\n');
        stream.write_all(&line).map_err(|e| e.to_string())?;
        let mut answer = String::new();
        BufReader::new(&stream)
            .take(MAX_REQUEST * 64)
            .read_line(&mut answer)
            .map_err(|e| e.to_string())?;
        serde_json::from_str(&answer).map_err(|e| format!("an answer that is not one: {e}"))
    };
    match exchange() {
        Ok(Answer::Done { stdout }) => Some(Ok(stdout)),
        Ok(Answer::Failed { message, code }) => Some(Err(CliError {
            message,
            code: crate::ErrorCode::named(&code),
            closed_stdout: false,
        })),
        Ok(Answer::Declined { why }) => {
            tracing::debug!("vmsec serve declined the start ({why}); starting it here");
            None
        }
        // The server took the request: starting here as well could start the vTPM twice.
        Err(e) => Some(Err(CliError::new(format!(
            "the running vmsec serve ({}) did not answer the start: {e}; see `vmsec tpm status`",
            path.display()
        )))),
    }
}

/// What the server does with a request.
pub type Handler = dyn Fn(&TpmStartRequest) -> Answer + Send + Sync;

/// The server's side: a thread accepting on `DATA/serve.sock` until stopped.
pub struct Listener {
    path: PathBuf,
    stopping: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    /// Binds `DATA/serve.sock` (replacing one left by a server that is gone) and serves it.
    /// `None` when another server of the data directory listens there already: it keeps
    /// answering the CLI.
    pub fn start(data: &Path, handler: Arc<Handler>) -> Result<Option<Listener>, CliError> {
        let path = data.join(SOCKET);
        if UnixStream::connect(&path).is_ok() {
            tracing::warn!(
                "another vmsec serve listens on {}; it starts the vTPMs the CLI asks for",
                path.display()
            );
            return Ok(None);
        }
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| CliError::new(format!("cannot listen on {}: {e}", path.display())))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| CliError::new(format!("cannot restrict {}: {e}", path.display())))?;
        let stopping = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stopping = stopping.clone();
            std::thread::Builder::new()
                .name("vmsec-control".into())
                .spawn(move || accept(listener, handler, stopping, busy))
                .map_err(|e| CliError::new(format!("cannot start the control socket: {e}")))?
        };
        Ok(Some(Listener {
            path,
            stopping,
            thread: Some(thread),
        }))
    }

    /// Stops accepting and removes the socket.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept with a connection of our own.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept(
    listener: UnixListener,
    handler: Arc<Handler>,
    stopping: Arc<AtomicBool>,
    busy: Arc<AtomicUsize>,
) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        if busy.fetch_add(1, Ordering::SeqCst) >= MAX_AT_ONCE {
            busy.fetch_sub(1, Ordering::SeqCst);
            let _ = answer(
                &stream,
                &Answer::Failed {
                    message: "vmsec serve is busy with other starts; retry".into(),
                    code: "Failed".into(),
                },
            );
            continue;
        }
        let (handler, held) = (handler.clone(), busy.clone());
        let spawned = std::thread::Builder::new()
            .name("vmsec-control-request".into())
            .spawn(move || {
                serve_one(&stream, &*handler);
                held.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            busy.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn serve_one(stream: &UnixStream, handler: &Handler) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let mut line = String::new();
    let read = BufReader::new(stream)
        .take(MAX_REQUEST)
        .read_line(&mut line);
    let reply = match read {
        Ok(_) if !line.ends_with('\n') => Answer::Failed {
            message: format!("a control request must be one line of at most {MAX_REQUEST} bytes"),
            code: "InvalidParameter".into(),
        },
        Ok(_) => match serde_json::from_str::<TpmStartRequest>(&line) {
            Ok(request) => handler(&request),
            Err(e) => Answer::Failed {
                message: format!("not a control request: {e}"),
                code: "InvalidParameter".into(),
            },
        },
        Err(e) => Answer::Failed {
            message: format!("reading the control request: {e}"),
            code: "InvalidParameter".into(),
        },
    };
    let _ = answer(stream, &reply);
    // Closing with unread input would reset the connection before the client reads the
    // answer (an over-long line): read a bounded rest first.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = std::io::copy(&mut stream.take(MAX_REQUEST), &mut std::io::sink());
}

fn answer(mut stream: &UnixStream, reply: &Answer) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> TpmStartRequest {
        TpmStartRequest {
            vm: "vm1".into(),
            state: None,
            socket: Some("/run/vm1.sock".into()),
            tcp: None,
            reset: false,
            json: true,
            store: store_identity(None, "host-a"),
        }
    }

    fn data() -> (tempfile::TempDir, DataDir) {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir {
            path: dir.path().to_owned(),
            store: None,
        };
        (dir, data)
    }

    #[test]
    fn without_a_server_the_cli_starts_the_vtpm_itself() {
        let (_dir, data) = data();
        assert!(ask(&data, &request()).is_none());
        // A socket left by a server that is gone is no server either.
        drop(UnixListener::bind(data.path.join(SOCKET)).unwrap());
        assert!(ask(&data, &request()).is_none());
    }

    #[test]
    fn a_server_answers_the_request_it_was_sent_and_its_failures_keep_their_code() {
        let (_dir, data) = data();
        let handler: Arc<Handler> = Arc::new(|r: &TpmStartRequest| {
            if r.vm == "vm1" {
                Answer::Done {
                    stdout: format!("started {} on {:?}\n", r.vm, r.socket),
                }
            } else {
                Answer::Failed {
                    message: format!("no VM named {:?}", r.vm),
                    code: "NotFound".into(),
                }
            }
        });
        let listener = Listener::start(&data.path, handler).unwrap().unwrap();
        let mode = std::fs::metadata(data.path.join(SOCKET))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            Listener::start(
                &data.path,
                Arc::new(|_: &TpmStartRequest| unreachable_answer())
            )
            .unwrap()
            .is_none(),
            "the first server of a data directory keeps its socket"
        );
        let out = ask(&data, &request()).unwrap().unwrap();
        assert_eq!(out, "started vm1 on Some(\"/run/vm1.sock\")\n");
        let other = TpmStartRequest {
            vm: "nope".into(),
            ..request()
        };
        let e = ask(&data, &other).unwrap().unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.code),
            ("no VM named \"nope\"", crate::ErrorCode::NotFound)
        );
        listener.stop();
        assert!(!data.path.join(SOCKET).exists());
        assert!(ask(&data, &request()).is_none());
    }

    #[test]
    fn a_server_of_another_store_declines_and_the_cli_goes_on_alone() {
        let (_dir, data) = data();
        let handler: Arc<Handler> = Arc::new(|_: &TpmStartRequest| Answer::Declined {
            why: "another store".into(),
        });
        let listener = Listener::start(&data.path, handler).unwrap().unwrap();
        assert!(ask(&data, &request()).is_none());
        listener.stop();
    }

    #[test]
    fn a_request_that_is_not_one_line_of_json_is_refused_without_a_call() {
        let (_dir, data) = data();
        let handler: Arc<Handler> = Arc::new(|_: &TpmStartRequest| unreachable_answer());
        let listener = Listener::start(&data.path, handler).unwrap().unwrap();
        for sent in [&b"{\"vm\": 1}\n"[..], &vec![b'x'; 20_000][..]] {
            let mut s = UnixStream::connect(data.path.join(SOCKET)).unwrap();
            s.write_all(sent).unwrap();
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut reply = String::new();
            s.read_to_string(&mut reply).unwrap();
            let answer: Answer = serde_json::from_str(&reply).unwrap();
            assert!(
                matches!(&answer, Answer::Failed { code, .. } if code == "InvalidParameter"),
                "{answer:?}"
            );
        }
        listener.stop();
    }

    fn unreachable_answer() -> Answer {
        Answer::Failed {
            message: "the handler must not be called".into(),
            code: "Failed".into(),
        }
    }

    #[test]
    fn a_store_and_host_are_named_by_a_fingerprint_without_the_password() {
        let url = "postgres://vmsec:secret@db/vmsec";
        let f = store_identity(Some(url), "host-a");
        assert_eq!(f.len(), 32);
        assert!(!f.contains("secret"));
        assert_eq!(f, store_identity(Some(url), "host-a"));
        assert_ne!(
            f,
            store_identity(Some("postgres://vmsec:other@db/vmsec"), "host-a")
        );
        assert_ne!(f, store_identity(Some(url), "host-b"));
        assert_ne!(
            store_identity(None, "host-a"),
            store_identity(None, "host-b")
        );
    }
}
