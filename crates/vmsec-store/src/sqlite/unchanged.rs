//! Point reads answered from memory while the database has not changed.
//!
//! A small Get confirms its caller and reads one VM in a read transaction whose locks (a
//! read mark in the WAL index, `fcntl` on the database file, SQLite's process-wide VFS
//! mutex, for which the two runtime workers queued on a futex) cost more than its two point
//! reads: 12% of the server's CPU under 16 connections (perf, issue 17, sixth step). What
//! they are for is to learn whether anything committed since the last read, and SQLite
//! answers that for its own page cache from the WAL-index header: the first 96 bytes of
//! `DB-shm`, two copies of one header, which every commit by any connection of any process
//! rewrites (its change counter, frame count and checksums) before the commit returns. The format is SQLite's
//! documented WAL-mode file format (<https://sqlite.org/walformat.html>, "The WAL-Index
//! Header"); this reads it with one `pread` and no lock.
//!
//! A cached answer is given only while the header is, byte for byte, the one read *before*
//! the store read that produced it: a commit between that header and that read leaves a
//! newer header, so the answer is read again. The store stays authoritative; this only lets
//! an unchanged file go unread. A header being written (its two copies differ) or not yet
//! initialized answers "changed", as does a file that cannot be read.
//!
//! This relies on the file staying in WAL mode, which every open of the store sets: a file
//! taken out of WAL mode by another tool while `vmsec serve` runs would no longer move the
//! header. Nothing of vmsec does that.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use uuid::Uuid;

use crate::{User, VmSummary};

/// The WAL-index header's two copies, 48 bytes each. A writer writes the second, then the
/// first; a reader that finds them equal has read one whole header.
const HEADER: usize = 48;
/// `isInit` within a copy: zero until the header has been built.
const IS_INIT: usize = 12;
/// `iVersion`: the WAL-index format this was written against.
const VERSION: u32 = 3_007_000;
/// Entries of each kind kept for one header: an authenticated caller who asks for many VMs
/// that do not exist fills the cache, then reads go to the store.
const MAX_ENTRIES: usize = 4096;

pub(super) struct ReadCache {
    /// `DB-shm`; `None` when it could not be opened, and then every read goes to the store.
    /// SQLite removes the file only when the last connection to the database closes, and
    /// the store keeps its checkpointer's open for as long as it lives.
    shm: Option<File>,
    cached: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    /// The header every entry was read after.
    header: Option<[u8; HEADER]>,
    users: HashMap<String, Option<User>>,
    summaries: HashMap<Uuid, Option<VmSummary>>,
}

impl ReadCache {
    /// A cache for the database at `db`, whose WAL index (`db` + `-shm`) exists while a
    /// connection to it is open in WAL mode: opened then.
    pub(super) fn open(db: &Path) -> ReadCache {
        let mut shm = db.as_os_str().to_owned();
        shm.push("-shm");
        ReadCache {
            shm: File::open(shm).ok(),
            cached: Mutex::new(Cached::default()),
        }
    }

    /// The WAL-index header as of now, `None` when it is being written, not initialized, of
    /// another format, or cannot be read.
    fn header(&self) -> Option<[u8; HEADER]> {
        let mut copies = [[0u8; HEADER]; 2];
        self.shm
            .as_ref()?
            .read_exact_at(copies.as_flattened_mut(), 0)
            .ok()?;
        let [first, second] = copies;
        let version = u32::from_ne_bytes([first[0], first[1], first[2], first[3]]);
        (first == second && first[IS_INIT] != 0 && version == VERSION).then_some(first)
    }

    /// The user `name` and the summary of VM `id`, from memory while the database is
    /// unchanged since they were read, otherwise by `read` (which is then remembered).
    pub(super) fn user_and_vm_summary<E>(
        &self,
        name: &str,
        id: Uuid,
        read: impl FnOnce() -> Result<(Option<User>, Option<VmSummary>), E>,
    ) -> Result<(Option<User>, Option<VmSummary>), E> {
        let Some(before) = self.header() else {
            return read();
        };
        {
            let c = self.lock();
            if c.header == Some(before)
                && let (Some(user), Some(vm)) = (c.users.get(name), c.summaries.get(&id))
            {
                return Ok((user.clone(), vm.clone()));
            }
        }
        // Read with no lock of ours held; what it read is as new as `before`, or newer.
        let (user, vm) = read()?;
        let mut c = self.lock();
        if c.header != Some(before) {
            c.users.clear();
            c.summaries.clear();
            c.header = Some(before);
        }
        if c.users.len() < MAX_ENTRIES && !c.users.contains_key(name) {
            c.users.insert(name.to_owned(), user.clone());
        }
        if c.summaries.len() < MAX_ENTRIES {
            c.summaries.insert(id, vm.clone());
        }
        Ok((user, vm))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteStore;
    use crate::{Role, Store, Vm};
    use std::cell::Cell;

    fn user(name: &str, hash: &str) -> User {
        User {
            name: name.into(),
            role: Role::Admin,
            password_hash: hash.into(),
            created: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// A store with user "alice" and one VM, and a cache of its file.
    fn setup() -> (tempfile::TempDir, SqliteStore, ReadCache, Uuid) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = SqliteStore::open(&path, "host").unwrap();
        store.add_user(&user("alice", "h1")).unwrap();
        let id = Uuid::new_v4();
        store
            .add_vm(&Vm {
                id,
                name: "vm".into(),
                created: time::OffsetDateTime::UNIX_EPOCH,
            })
            .unwrap();
        (dir, store, ReadCache::open(&path), id)
    }

    /// Reads through `cache`, counting the store reads in `reads`.
    fn read(
        cache: &ReadCache,
        store: &SqliteStore,
        name: &str,
        id: Uuid,
        reads: &Cell<usize>,
    ) -> (Option<User>, Option<VmSummary>) {
        cache
            .user_and_vm_summary(name, id, || {
                reads.set(reads.get() + 1);
                Ok::<_, crate::StoreError>((store.user(name)?, store.vm_summary(id)?))
            })
            .unwrap()
    }

    #[test]
    fn an_unchanged_file_is_read_once() {
        let (_dir, store, cache, id) = setup();
        let reads = Cell::new(0);
        let first = read(&cache, &store, "alice", id, &reads);
        let second = read(&cache, &store, "alice", id, &reads);
        assert_eq!(reads.get(), 1);
        assert_eq!(first, second);
        assert_eq!(second.0.unwrap().password_hash, "h1");
        assert_eq!(second.1.unwrap().vm.id, id);
    }

    #[test]
    fn a_commit_on_another_connection_is_seen_by_the_next_read() {
        let (dir, store, cache, id) = setup();
        let reads = Cell::new(0);
        read(&cache, &store, "alice", id, &reads);
        // Another open of the same file, as the CLI beside `vmsec serve` is.
        let other = SqliteStore::open(dir.path().join("store.db"), "host").unwrap();
        other.update_user(&user("alice", "h2")).unwrap();
        let (u, _) = read(&cache, &store, "alice", id, &reads);
        assert_eq!(reads.get(), 2);
        assert_eq!(u.unwrap().password_hash, "h2");
    }

    #[test]
    fn any_commit_clears_what_was_read_before_it() {
        let (_dir, store, cache, id) = setup();
        let reads = Cell::new(0);
        read(&cache, &store, "alice", id, &reads);
        // A commit that touches neither the user nor the VM.
        store.add_user(&user("bob", "h3")).unwrap();
        read(&cache, &store, "alice", id, &reads);
        assert_eq!(reads.get(), 2);
        store.remove_vm(id).unwrap();
        let (_, vm) = read(&cache, &store, "alice", id, &reads);
        assert_eq!((reads.get(), vm), (3, None));
    }

    #[test]
    fn what_is_absent_is_remembered_as_absent() {
        let (_dir, store, cache, _) = setup();
        let reads = Cell::new(0);
        let unknown = Uuid::new_v4();
        assert_eq!(
            read(&cache, &store, "mallory", unknown, &reads),
            (None, None)
        );
        assert_eq!(
            read(&cache, &store, "mallory", unknown, &reads),
            (None, None)
        );
        assert_eq!(reads.get(), 1);
        store.add_user(&user("mallory", "h4")).unwrap();
        let (u, _) = read(&cache, &store, "mallory", unknown, &reads);
        assert_eq!(u.unwrap().name, "mallory");
    }

    #[test]
    fn a_store_opened_on_a_new_file_reads_its_wal_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("new.db"), "host").unwrap();
        assert!(store.reads.header().is_some());
    }

    #[test]
    fn a_file_without_a_wal_index_is_always_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ReadCache::open(&dir.path().join("none.db"));
        let calls = Cell::new(0);
        for _ in 0..2 {
            cache
                .user_and_vm_summary("alice", Uuid::nil(), || {
                    calls.set(calls.get() + 1);
                    Ok::<_, ()>((None, None))
                })
                .unwrap();
        }
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn a_header_being_written_counts_as_changed() {
        let (dir, store, cache, id) = setup();
        let reads = Cell::new(0);
        read(&cache, &store, "alice", id, &reads);
        // Copy one of the header differs from copy two, as between a writer's two copies.
        let shm = std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .open(dir.path().join("store.db-shm"))
            .unwrap();
        let mut byte = [0u8; 1];
        shm.read_exact_at(&mut byte, 8).unwrap();
        shm.write_all_at(&[byte[0] ^ 0xff], 8).unwrap();
        assert_eq!(cache.header(), None);
        read(&cache, &store, "alice", id, &reads);
        assert_eq!(reads.get(), 2);
        shm.write_all_at(&byte, 8).unwrap();
    }
}
