//! Open enumeration contexts: where each Enumerate has got to, between its Pulls.
//!
//! A context belongs to the user who opened it, expires after a configurable idle time,
//! and the registry holds a bounded number of them taking a bounded amount of memory, so
//! neither forgotten nor hostile enumerations can grow memory without limit. A context
//! holds its provider's [`Enumeration`] (a position, or the instances when they were read at
//! once) and the instances read but not yet sent.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use vmsec_cim::Instance;

use crate::envelope::EnumerationMode;
use crate::fault::{Fault, FaultKind};
use crate::provider::{Enumeration, ProviderError};

/// An open enumeration, taken out of the registry while a Pull is served.
pub struct Context {
    /// Who opened it.
    pub owner: String,
    /// What items carry.
    pub mode: EnumerationMode,
    /// Instances read from `source` and not yet sent (one that did not fit the last reply,
    /// the one read ahead to learn whether any are left).
    pending: VecDeque<Instance>,
    /// The rest.
    source: Box<dyn Enumeration>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("owner", &self.owner)
            .field("mode", &self.mode)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context that has read nothing yet.
    pub fn new(owner: String, mode: EnumerationMode, source: Box<dyn Enumeration>) -> Context {
        Context {
            owner,
            mode,
            pending: VecDeque::new(),
            source,
        }
    }

    /// The next instance, reading up to `wanted` more from the source when none is pending;
    /// `None` at the end.
    pub fn next(&mut self, wanted: usize) -> Result<Option<Instance>, ProviderError> {
        if self.pending.is_empty() {
            self.pending.extend(self.source.next(wanted.max(1))?);
        }
        Ok(self.pending.pop_front())
    }

    /// Puts back an instance [`Context::next`] returned, to be the next again.
    pub fn put_back(&mut self, instance: Instance) {
        self.pending.push_front(instance);
    }

    /// Whether every instance was returned. A source cannot tell without reading, so this
    /// reads one ahead when none is pending.
    pub fn is_done(&mut self) -> Result<bool, ProviderError> {
        if self.pending.is_empty() {
            self.pending.extend(self.source.next(1)?);
        }
        Ok(self.pending.is_empty())
    }

    /// About how much memory it takes.
    pub fn heap_bytes(&self) -> usize {
        self.pending.iter().map(Instance::heap_bytes).sum::<usize>() + self.source.heap_bytes()
    }
}

/// An open context with its deadline and its size as counted when stored.
#[derive(Debug)]
struct Entry {
    context: Context,
    deadline: Instant,
    bytes: usize,
}

/// The registry of open contexts.
#[derive(Debug)]
pub struct Registry {
    contexts: HashMap<String, Entry>,
    expiry: Duration,
    capacity: usize,
    max_bytes: usize,
    /// The sum of the stored contexts' `bytes`.
    held: usize,
}

fn invalid(id: &str) -> Fault {
    let shown: String = id.chars().take(60).collect();
    Fault::new(
        FaultKind::InvalidEnumerationContext,
        format!("the enumeration context \"{shown}\" is unknown, expired or already finished"),
    )
}

impl Registry {
    /// A registry whose contexts expire `expiry` after their last use, holding at most
    /// `capacity` of them, whose instances take at most `max_bytes` together.
    pub fn new(expiry: Duration, capacity: usize, max_bytes: usize) -> Registry {
        Registry {
            contexts: HashMap::new(),
            expiry,
            capacity,
            max_bytes,
            held: 0,
        }
    }

    /// About how much memory the stored contexts take.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    fn insert(&mut self, id: String, context: Context, deadline: Instant, bytes: usize) {
        self.held += bytes;
        if let Some(old) = self.contexts.insert(
            id,
            Entry {
                context,
                deadline,
                bytes,
            },
        ) {
            self.held -= old.bytes;
        }
    }

    fn remove(&mut self, id: &str) -> Option<Entry> {
        let e = self.contexts.remove(id)?;
        self.held -= e.bytes;
        Some(e)
    }

    /// Number of open contexts (expired ones included until the next purge).
    pub fn len(&self) -> usize {
        self.contexts.len()
    }

    /// Whether no context is open.
    pub fn is_empty(&self) -> bool {
        self.contexts.is_empty()
    }

    fn purge(&mut self, now: Instant) {
        self.contexts.retain(|_, e| e.deadline > now);
        self.held = self.contexts.values().map(|e| e.bytes).sum();
    }

    /// Stores `context` under a fresh id; `wsman:QuotaLimit` when full of live contexts or
    /// when it does not fit in the memory left.
    pub fn open(&mut self, context: Context, now: Instant) -> Result<String, Fault> {
        let bytes = context.heap_bytes();
        let fits = |r: &Registry| {
            r.contexts.len() < r.capacity && r.held.saturating_add(bytes) <= r.max_bytes
        };
        if !fits(self) {
            self.purge(now);
        }
        if self.contexts.len() >= self.capacity {
            return Err(Fault::new(
                FaultKind::QuotaLimit,
                format!(
                    "{} enumerations are open; pull them to the end or release them",
                    self.capacity
                ),
            ));
        }
        if !fits(self) {
            const MIB: usize = 1024 * 1024;
            return Err(Fault::new(
                FaultKind::QuotaLimit,
                format!(
                    "the rest of this enumeration (about {} MiB) does not fit in the {} MiB the \
                     server keeps for open enumerations ({} MiB in use): filter it (WQL), get \
                     instances one by one, or pull or release open enumerations",
                    bytes.div_ceil(MIB),
                    self.max_bytes / MIB,
                    self.held.div_ceil(MIB),
                ),
            ));
        }
        let id = format!(
            "uuid:{}",
            uuid::Uuid::new_v4().hyphenated().to_string().to_uppercase()
        );
        self.insert(id.clone(), context, now + self.expiry, bytes);
        Ok(id)
    }

    /// Puts a partly pulled context back under its id, renewing its expiry. It is kept even
    /// past the budget: the budget decides which enumerations start, and a started one may
    /// hold a page more than when it started (what its source reads at a time).
    pub fn restore(&mut self, id: String, context: Context, now: Instant) {
        let bytes = context.heap_bytes();
        self.insert(id, context, now + self.expiry, bytes);
    }

    /// Takes the context `id` out for a Pull. Unknown, expired and other users' contexts
    /// are all `wsen:InvalidEnumerationContext`, so ids leak nothing.
    pub fn take(&mut self, id: &str, owner: &str, now: Instant) -> Result<Context, Fault> {
        match self.remove(id) {
            Some(e) if e.deadline > now && e.context.owner == owner => Ok(e.context),
            Some(e) if e.deadline > now => {
                self.insert(id.to_owned(), e.context, e.deadline, e.bytes);
                Err(invalid(id))
            }
            _ => Err(invalid(id)),
        }
    }

    /// Ends the enumeration `id`.
    pub fn release(&mut self, id: &str, owner: &str, now: Instant) -> Result<(), Fault> {
        self.take(id, owner, now).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Listed;

    fn listed(owner: &str, items: Vec<Instance>) -> Context {
        Context::new(
            owner.into(),
            EnumerationMode::Objects,
            Box::new(Listed::new(items)),
        )
    }

    fn ctx(owner: &str, n: usize) -> Context {
        listed(owner, vec![Instance::new("Msvm_ComputerSystem"); n])
    }

    #[test]
    fn a_context_is_taken_by_its_owner_and_restored_for_the_next_pull() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(60), 4, usize::MAX);
        let id = r.open(ctx("alice", 3), t0).unwrap();
        let mut c = r.take(&id, "alice", t0).unwrap();
        assert!(c.next(1).unwrap().is_some());
        assert!(
            r.take(&id, "alice", t0).is_err(),
            "a taken context is not there twice"
        );
        r.restore(id.clone(), c, t0);
        assert!(r.take(&id, "alice", t0).is_ok());
    }

    #[test]
    fn another_users_pull_fails_and_leaves_the_context_open() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(60), 4, usize::MAX);
        let id = r.open(ctx("alice", 1), t0).unwrap();
        assert_eq!(
            r.take(&id, "mallory", t0).unwrap_err().kind,
            FaultKind::InvalidEnumerationContext
        );
        assert!(r.take(&id, "alice", t0).is_ok());
    }

    #[test]
    fn contexts_expire() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(60), 4, usize::MAX);
        let id = r.open(ctx("alice", 1), t0).unwrap();
        let late = t0 + Duration::from_secs(61);
        assert_eq!(
            r.take(&id, "alice", late).unwrap_err().kind,
            FaultKind::InvalidEnumerationContext
        );
    }

    #[test]
    fn the_registry_is_bounded_but_expired_contexts_make_room() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(60), 2, usize::MAX);
        r.open(ctx("a", 1), t0).unwrap();
        r.open(ctx("a", 1), t0).unwrap();
        assert_eq!(
            r.open(ctx("a", 1), t0).unwrap_err().kind,
            FaultKind::QuotaLimit
        );
        assert!(r.open(ctx("a", 1), t0 + Duration::from_secs(61)).is_ok());
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn release_ends_the_context() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(60), 2, usize::MAX);
        let id = r.open(ctx("a", 1), t0).unwrap();
        r.release(&id, "a", t0).unwrap();
        assert!(r.release(&id, "a", t0).is_err());
        assert!(r.is_empty());
    }

    #[test]
    fn the_registry_holds_a_bounded_amount_of_memory() {
        let t0 = Instant::now();
        let big = |n: usize| {
            let kp = Instance::new("Msvm_TPMSettingData").with(
                "KeyProtector",
                vmsec_cim::CimType::UInt8,
                vmsec_cim::Value::from_bytes(&[7; 10_000]),
            );
            listed("a", vec![kp; n])
        };
        assert!(big(1).heap_bytes() > 10_000);
        let mut r = Registry::new(Duration::from_secs(60), 100, 100_000);
        let id = r.open(big(6), t0).unwrap();
        let refused = r.open(big(6), t0).unwrap_err();
        assert_eq!(refused.kind, FaultKind::QuotaLimit);
        assert!(
            refused.reason.contains("does not fit"),
            "{}",
            refused.reason
        );
        // Pulling shrinks what is held; releasing frees it.
        let mut c = r.take(&id, "a", t0).unwrap();
        assert_eq!(r.held_bytes(), 0, "a context out for a Pull is not counted");
        for _ in 0..4 {
            c.next(1).unwrap().unwrap();
        }
        r.restore(id.clone(), c, t0);
        assert!(r.held_bytes() < 30_000);
        let second = r.open(big(6), t0).unwrap();
        r.release(&id, "a", t0).unwrap();
        r.release(&second, "a", t0).unwrap();
        assert_eq!(r.held_bytes(), 0);
        // Expired contexts make room.
        r.open(big(9), t0).unwrap();
        assert!(r.open(big(9), t0).is_err());
        assert!(r.open(big(9), t0 + Duration::from_secs(61)).is_ok());
    }
}
