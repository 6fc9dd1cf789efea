//! Keeping the WAL bounded: frames are copied into the database by a background thread, and
//! the commit that takes the WAL past a limit starts it over.

use std::ffi::c_int;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::Connection;

use super::values::map_err;
use crate::StoreError;

/// How often the checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// WAL pages (4 KiB each) past which a commit starts the WAL file over: 64 MiB.
const WAL_RESET_PAGES: c_int = 16 * 1024;

/// Puts the file in WAL mode.
pub(super) fn enable(conn: &Connection) -> Result<(), StoreError> {
    // WAL is a property of the file: set once; it persists.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(map_err)
}

/// Sets up checkpointing on a new connection.
pub(super) fn configure(conn: &Connection) -> Result<(), StoreError> {
    // Frames are copied on the checkpointer thread, not inside whichever commit crossed
    // SQLite's 4 MiB threshold: that commit's caller waited for the copy and its fsyncs
    // (1% of GetKeyProtector calls, at several times the median latency). The pragma
    // replaces the WAL hook, so ours goes in after it.
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(map_err)?;
    conn.wal_hook(Some(restart_full_wal));
    Ok(())
}

/// The WAL hook of every connection: a commit that leaves more than [`WAL_RESET_PAGES`] in
/// the WAL checkpoints with RESTART before its caller goes on.
///
/// Copying frames (the [`Checkpointer`]) does not bound the WAL file: SQLite writes the file
/// from its start again only when a writer finds every frame copied and no reader in the
/// WAL, which under steady reads and writes may never happen (a fill of 100,000 VMs left a
/// 10 GB WAL, and the next start spent 3.5 s reading it). RESTART waits, under the busy
/// timeout, for readers to move off the WAL, so the next write starts at the beginning of
/// the file (which keeps its size: TRUNCATE would shrink it, and cost SetKeyProtector jobs
/// ~10% at 16 clients to grow it again). Doing it here, in the commit that crossed the
/// limit, bounds the file at the limit plus one transaction whatever the write rate, in
/// this process and in any other (the CLI): an earlier version had the checkpointer do it
/// every 500 ms, and a fast disk outran it by 140 MiB. It runs once per 64 MiB written, and
/// the checkpointer has copied all but the last half second of frames by then.
///
/// The commit has happened when the hook runs: a busy checkpoint (a reader stayed past the
/// busy timeout) is left for the next commit, never reported as the write's failure.
fn restart_full_wal(wal: &rusqlite::hooks::Wal, pages: c_int) -> rusqlite::Result<()> {
    if pages > WAL_RESET_PAGES {
        let _turn = CHECKPOINTS.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = wal.checkpoint_v2(rusqlite::hooks::CheckpointMode::RESTART) {
            tracing::debug!("WAL of {pages} pages not started over yet: {e}");
        }
    }
    Ok(())
}

/// Checkpoints of this process take turns here. SQLite answers a checkpoint that finds
/// another one running with SQLITE_BUSY at once, without the busy handler, so a RESTART
/// meeting the checkpointer's copy would fail and leave the WAL to grow until a later
/// commit; waiting here for the copy to end lets it succeed. (One lock for every store in
/// the process: checkpoints of different files wait for each other, which costs only tests
/// that open many stores.)
static CHECKPOINTS: Mutex<()> = Mutex::new(());

/// The thread that copies WAL frames into the database in the background, off the request
/// path: every [`CHECKPOINT_EVERY`], as much as it can without waiting (PASSIVE).
///
/// Dropping it stops the thread and waits for it, so that its connection closes before the
/// process can exit: the last connection to close checkpoints and removes the WAL.
pub(super) struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    pub(super) fn start(conn: Connection) -> Result<Checkpointer, StoreError> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    let _turn = CHECKPOINTS.lock().unwrap_or_else(|p| p.into_inner());
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!("WAL checkpoint failed: {e}");
                    }
                }
            })
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the WAL checkpointer: {e}"))
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
