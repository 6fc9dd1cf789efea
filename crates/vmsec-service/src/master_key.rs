//! The host master key: 32 random bytes in `DATA/master.key` (mode 0600, created on first
//! use) that seal the guardians' private keys at rest with AES-256-GCM.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::ServiceError;

/// Sealed blobs start with this, so a future format can be told apart.
const MAGIC: &[u8; 8] = b"VMSECMK1";

/// The master key, loaded from its file the first time it is needed.
pub struct MasterKey {
    path: PathBuf,
    key: OnceLock<Zeroizing<[u8; 32]>>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn internal(what: impl fmt::Display) -> ServiceError {
    ServiceError::Internal(what.to_string())
}

impl MasterKey {
    pub fn at(path: impl Into<PathBuf>) -> MasterKey {
        MasterKey {
            path: path.into(),
            key: OnceLock::new(),
        }
    }

    fn key(&self) -> Result<&Zeroizing<[u8; 32]>, ServiceError> {
        if let Some(k) = self.key.get() {
            return Ok(k);
        }
        let k = load_or_create(&self.path)?;
        Ok(self.key.get_or_init(|| k))
    }

    fn aead(&self) -> Result<LessSafeKey, ServiceError> {
        let unbound =
            UnboundKey::new(&AES_256_GCM, self.key()?.as_ref()).map_err(|_| internal("AES key"))?;
        Ok(LessSafeKey::new(unbound))
    }

    /// Encrypts `plaintext`, bound to `context` (authenticated, not encrypted).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, ServiceError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| internal(format!("no randomness: {e}")))?;
        // Wiped on drop: it holds the plaintext until sealing has overwritten it.
        let mut buf = Zeroizing::new(plaintext.to_vec());
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut *buf,
            )
            .map_err(|_| internal("sealing failed"))?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + buf.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts what [`seal`](Self::seal) made with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, ServiceError> {
        let body = sealed
            .strip_prefix(MAGIC.as_slice())
            .filter(|b| b.len() >= NONCE_LEN)
            .ok_or_else(|| internal("a sealed secret in the store is not in vmsec's format"))?;
        let (nonce, ct) = body.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| internal("nonce"))?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let len = self
            .aead()?
            .open_in_place(nonce, Aad::from(context), buf.as_mut_slice())
            .map_err(|_| {
                internal(format!(
                    "a sealed secret cannot be opened with {}: wrong master key or damaged data",
                    self.path.display()
                ))
            })?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// Reads the key file, or creates it when there is none. A key file that others may read is
/// refused rather than used.
fn load_or_create(path: &Path) -> Result<Zeroizing<[u8; 32]>, ServiceError> {
    match std::fs::File::open(path) {
        Ok(f) => read_key(path, f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => Err(internal(format!("cannot read {}: {e}", path.display()))),
    }
}

fn read_key(path: &Path, mut f: std::fs::File) -> Result<Zeroizing<[u8; 32]>, ServiceError> {
    // The rule of every secret file (README, "Files"): no access for group or others; a
    // wider mode is narrowed, with a warning, before the key is read.
    let mode = f.metadata().map_err(internal)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| {
                internal(format!(
                    "{} is open to other users (mode {mode:o}) and cannot be made private: {e}; \
                     run chmod 600 {}",
                    path.display(),
                    path.display()
                ))
            })?;
        tracing::warn!(
            "the host master key {} was open to other users (mode {mode:o}); made it 600. \
             If others could read it, treat the secrets it seals as exposed",
            path.display()
        );
    }
    let mut key = Zeroizing::new([0u8; 32]);
    let mut extra = [0u8; 1];
    f.read_exact(key.as_mut_slice())
        .map_err(|e| internal(format!("{}: {e} (expected 32 bytes)", path.display())))?;
    if f.read(&mut extra).map_err(internal)? != 0 {
        return Err(internal(format!(
            "{} is longer than 32 bytes",
            path.display()
        )));
    }
    Ok(key)
}

/// Creates the key file whole or not at all, and agrees with any concurrent creator: the
/// key is written and synced under a temporary name (0600 from the first byte), then linked
/// to the final name, which fails if another process or thread got there first; the loser
/// then uses the winner's key. Sealing with a key that another first start overwrote would
/// lose every secret sealed under it.
fn create(path: &Path) -> Result<Zeroizing<[u8; 32]>, ServiceError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(key.as_mut_slice()).map_err(|e| internal(format!("no randomness: {e}")))?;
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| internal(format!("no randomness: {e}")))?;
    let tmp = dir.join(format!(
        ".master.key.{}.{:016x}.tmp",
        std::process::id(),
        u64::from_ne_bytes(nonce)
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(key.as_slice()).and_then(|_| f.sync_all()))
        .map_err(|e| internal(format!("cannot write {}: {e}", tmp.display())));
    let linked = written.and_then(|()| match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(internal(format!("cannot create {}: {e}", path.display()))),
    });
    let _ = std::fs::remove_file(&tmp);
    let won = linked?;
    // The new name is durable only once its directory is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| internal(format!("cannot sync {}: {e}", dir.display())))?;
    if won {
        tracing::info!("created the host master key {}", path.display());
        Ok(key)
    } else {
        let f = std::fs::File::open(path)
            .map_err(|e| internal(format!("cannot read {}: {e}", path.display())))?;
        read_key(path, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_created_0600_on_first_use_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("master.key");
        let mk = MasterKey::at(&p);
        assert!(!p.exists(), "not created before it is needed");
        let sealed = mk.seal(b"secret", b"ctx").unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = MasterKey::at(&p);
        assert_eq!(again.open(&sealed, b"ctx").unwrap().as_slice(), b"secret");
    }

    #[test]
    fn opening_fails_with_another_context_key_or_a_flipped_byte() {
        let dir = tempfile::tempdir().unwrap();
        let mk = MasterKey::at(dir.path().join("a.key"));
        let sealed = mk.seal(b"secret", b"ctx").unwrap();
        assert!(mk.open(&sealed, b"other").is_err());
        let other = MasterKey::at(dir.path().join("b.key"));
        assert!(other.open(&sealed, b"ctx").is_err());
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(mk.open(&bad, b"ctx").is_err());
        assert!(!format!("{mk:?}").contains("key: "), "Debug shows no key");
    }

    #[test]
    fn a_key_file_readable_by_others_is_made_private_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("master.key");
        std::fs::write(&p, [7u8; 32]).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(*load_or_create(&p).unwrap(), [7u8; 32]);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn concurrent_first_uses_agree_on_one_key_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("master.key");
        let start = std::sync::Barrier::new(8);
        let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        *load_or_create(&p).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let on_disk: [u8; 32] = std::fs::read(&p).unwrap().try_into().unwrap();
        assert!(
            keys.iter().all(|k| *k == on_disk),
            "every first use has the stored key"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["master.key"]);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
