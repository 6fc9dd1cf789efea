//! Password hashing with argon2id, on threads of its own.

use std::cell::RefCell;
use std::sync::mpsc::{Receiver, Sender, channel, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use zeroize::Zeroizing;

use crate::ServiceError;

type Work = Box<dyn FnOnce() + Send>;

/// Threads that run argon2, at most one per core (hashing is all CPU).
fn hashers() -> &'static Mutex<Sender<Work>> {
    static HASHERS: OnceLock<Mutex<Sender<Work>>> = OnceLock::new();
    HASHERS.get_or_init(|| {
        let (tx, rx) = channel::<Work>();
        let rx = Arc::new(Mutex::new(rx));
        let n = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        for i in 0..n {
            let rx: Arc<Mutex<Receiver<Work>>> = rx.clone();
            // Without its thread a hash is still computed, on the caller's (see `on_hasher`).
            let _ = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match next {
                            Ok(work) => work(),
                            Err(_) => return,
                        }
                    }
                });
        }
        Mutex::new(tx)
    })
}

/// Runs `f` on a hashing thread and waits for it. An argon2 hash takes 19 MiB; allocated
/// and freed on whatever thread a request came on, glibc kept up to that much per request
/// thread. Each hashing thread keeps its one buffer ([`with_memory`]). `None` if `f` panicked.
fn on_hasher<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (done, result) = sync_channel(1);
    let work: Work = Box::new(move || {
        let _ = done.send(f());
    });
    let sent = hashers()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(work);
    match sent {
        Ok(()) => result.recv().ok(),
        // No hashing thread could be started: hash here.
        Err(std::sync::mpsc::SendError(work)) => {
            work();
            result.recv().ok()
        }
    }
}

/// Passwords shorter than this are refused.
pub const MIN_PASSWORD_LEN: usize = 8;
/// And longer than this (argon2 hashes any length, but a megabyte "password" is an attack).
pub const MAX_PASSWORD_LEN: usize = 1024;

pub(crate) fn hash(password: &str) -> Result<String, ServiceError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN || password.len() > MAX_PASSWORD_LEN {
        return Err(ServiceError::InvalidParameter(format!(
            "a password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters long"
        )));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| ServiceError::Internal(format!("no randomness: {e}")))?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| ServiceError::Internal(format!("salt: {e}")))?;
    let password = Zeroizing::new(password.to_owned());
    on_hasher(move || {
        let params = Params::default();
        let hash = argon2_output(
            password.as_bytes(),
            Algorithm::Argon2id,
            Version::V0x13,
            params.clone(),
            salt.as_salt(),
            Params::DEFAULT_OUTPUT_LEN,
        )
        .ok_or_else(|| ServiceError::Internal("hashing failed".into()))?;
        let params = ParamsString::try_from(&params)
            .map_err(|e| ServiceError::Internal(format!("hashing: {e}")))?;
        Ok(PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params,
            salt: Some(salt.as_salt()),
            hash: Some(hash),
        }
        .to_string())
    })
    .unwrap_or_else(|| Err(ServiceError::Internal("hashing failed".into())))
}

pub(crate) fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_LEN {
        return false;
    }
    let (password, phc) = (Zeroizing::new(password.to_owned()), phc.to_owned());
    on_hasher(move || {
        let Ok(h) = PasswordHash::new(&phc) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (h.salt, &h.hash) else {
            return false;
        };
        let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(h.algorithm), Params::try_from(&h))
        else {
            return false;
        };
        let version = match h.version.map(Version::try_from).transpose() {
            Ok(v) => v.unwrap_or_default(),
            Err(_) => return false,
        };
        // `Output`'s equality is constant-time.
        argon2_output(
            password.as_bytes(),
            algorithm,
            version,
            params,
            salt,
            expected.len(),
        )
        .is_some_and(|computed| computed == *expected)
    })
    .unwrap_or(false)
}

/// The hash of a random password nobody was told, made with the parameters [`hash`] gives
/// every stored password. A login as a user that does not exist is checked against it, so
/// it costs the same argon2 work as a wrong password of a real user, and the time of the
/// answer does not tell which user names exist.
const NOBODY: &str = "$argon2id$v=19$m=19456,t=2,p=1$1GLSnnvn21DiCZ5sOuT+6g$oT/Xp0ubMp9k+4nw9skue9u88azglzD7lGYT1ghCWHQ";

/// Checks `password` against [`NOBODY`]: the work of [`verify`], for a user that does not
/// exist. Always false.
pub(crate) fn verify_nobody(password: &str) -> bool {
    let _ = verify(password, NOBODY);
    false
}

/// Most memory a stored hash may ask for; ours ask for 19 MiB.
const MAX_HASH_MEMORY_KIB: u32 = 256 * 1024;

/// Argon2 of `password` in this thread's reused buffer; `None` if the parameters are refused.
fn argon2_output(
    password: &[u8],
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Salt<'_>,
    len: usize,
) -> Option<Output> {
    if params.m_cost() > MAX_HASH_MEMORY_KIB {
        return None;
    }
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes).ok()?;
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    with_memory(blocks, |memory| {
        Output::init_with(len, |out| {
            argon2
                .hash_password_into_with_memory(password, salt, out, &mut *memory)
                .map_err(|_| argon2::password_hash::Error::Crypto)
        })
        .ok()
    })
}

/// Lends `f` `blocks` blocks of this thread's argon2 buffer, then wipes them: they held
/// values derived from a password.
fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    thread_local! {
        static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
    }
    MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() < blocks {
            m.resize(blocks, Block::default());
        }
        let memory = &mut m[..blocks];
        let out = f(memory);
        memory.fill(Block::default());
        out
    })
}

/// A random password of 24 characters from an alphabet without look-alikes (~140 bits).
pub fn generate() -> Result<String, ServiceError> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::with_capacity(24);
    while out.len() < 24 {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b)
            .map_err(|e| ServiceError::Internal(format!("no randomness: {e}")))?;
        // Rejection sampling keeps the choice uniform.
        let limit = 256 - 256 % ALPHABET.len();
        for x in b {
            if (x as usize) < limit && out.len() < 24 {
                out.push(ALPHABET[x as usize % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterz", &h));
        assert!(!verify("correct horse battery", "not a phc string"));
    }

    #[test]
    fn hashes_agree_with_the_argon2_crates_own_hashing_and_verification() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        // What earlier versions stored (the crate's hash_password) still verifies…
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let theirs = Argon2::default()
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        assert!(verify("correct horse battery", &theirs));
        assert!(!verify("correct horse batterz", &theirs));
        // …and what we store now verifies with the crate.
        let ours = hash("correct horse battery").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        // Other parameters (argon2i, less memory) are read from the stored hash.
        let other = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(8 * 1024, 3, 1, Some(24)).unwrap(),
        )
        .hash_password(b"correct horse battery", &salt)
        .unwrap()
        .to_string();
        assert!(verify("correct horse battery", &other));
        assert!(!verify("correct horse batterz", &other));
    }

    #[test]
    fn a_stored_hash_asking_for_too_much_memory_is_refused_without_hashing() {
        let greedy = "$argon2id$v=19$m=4194304,t=1,p=1$c2l4dGVlbiBieXRlIHNsdA$\
                      AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(!verify("correct horse battery", greedy));
    }

    #[test]
    fn the_hash_for_unknown_users_costs_what_a_stored_hash_costs() {
        let nobody = PasswordHash::new(NOBODY).unwrap();
        let stored = hash("correct horse battery").unwrap();
        let stored = PasswordHash::new(&stored).unwrap();
        assert_eq!(nobody.algorithm, stored.algorithm);
        assert_eq!(nobody.version, stored.version);
        assert_eq!(Params::try_from(&nobody), Params::try_from(&stored));
        assert_eq!(nobody.hash.map(|h| h.len()), stored.hash.map(|h| h.len()));
        assert!(!verify_nobody("correct horse battery"));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(matches!(
            hash("short"),
            Err(ServiceError::InvalidParameter(_))
        ));
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
    }
}
