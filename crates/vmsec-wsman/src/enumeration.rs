//! Open enumeration contexts: where each Enumerate has got to, between its Pulls.
//!
//! A context belongs to the user who opened it, expires after a configurable idle time,
//! and the registry holds a bounded number of them taking a bounded amount of memory, so
//! neither forgotten nor hostile enumerations can grow memory without limit. Each user
//! may hold only a share of both bounds: one user who opens enumerations and never pulls
//! them is refused alone, and never takes the registry from the others. A context
//! holds its provider's [`Enumeration`] (a position, or the instances when they were read at
//! once) and the instances read but not yet sent.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use vmsec_cim::Instance;

use crate::provider::{Enumeration, ProviderError};
use crate::wire::envelope::EnumerationMode;
use crate::wire::fault::{Fault, FaultKind};
use crate::wire::wql::Filter;

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
    /// What every instance sent must match, whatever the source returns.
    filter: Filter,
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
            filter: Filter::all(),
        }
    }

    /// The context, returning only the instances that match `filter`: the engine is
    /// authoritative for the filter, the provider's own filtering only saves work.
    pub fn with_filter(mut self, filter: Filter) -> Context {
        self.filter = filter;
        self
    }

    /// Reads from the source, `n` at a time, until an instance matches or the source ends.
    fn refill(&mut self, n: usize) -> Result<(), ProviderError> {
        while self.pending.is_empty() {
            let read = self.source.next(n)?;
            if read.is_empty() {
                break;
            }
            let filter = &self.filter;
            self.pending
                .extend(read.into_iter().filter(|i| filter.matches(i)));
        }
        Ok(())
    }

    /// The next instance, reading up to `wanted` more from the source when none is pending;
    /// `None` at the end.
    pub fn next(&mut self, wanted: usize) -> Result<Option<Instance>, ProviderError> {
        self.refill(wanted.max(1))?;
        Ok(self.pending.pop_front())
    }

    /// Puts back an instance [`Context::next`] returned, to be the next again.
    pub fn put_back(&mut self, instance: Instance) {
        self.pending.push_front(instance);
    }

    /// Whether every instance was returned. A source cannot tell without reading, so this
    /// reads one ahead when none is pending.
    pub fn is_done(&mut self) -> Result<bool, ProviderError> {
        self.refill(1)?;
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

/// What the stored contexts of one user, or of all, hold.
#[derive(Clone, Copy, Debug, Default)]
struct Held {
    contexts: usize,
    bytes: usize,
}

/// The registry of open contexts.
#[derive(Debug)]
pub struct Registry {
    contexts: HashMap<String, Entry>,
    expiry: Duration,
    capacity: usize,
    max_bytes: usize,
    per_user_capacity: usize,
    per_user_bytes: usize,
    /// The sum of the stored contexts' `bytes`.
    held: usize,
    /// What each owner's stored contexts hold; owners with none have no entry.
    by_owner: HashMap<String, Held>,
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
    /// `capacity` of them, whose instances take at most `max_bytes` together; one user may
    /// hold all of that until [`Registry::per_user`] says otherwise.
    pub fn new(expiry: Duration, capacity: usize, max_bytes: usize) -> Registry {
        Registry {
            contexts: HashMap::new(),
            expiry,
            capacity,
            max_bytes,
            per_user_capacity: capacity,
            per_user_bytes: max_bytes,
            held: 0,
            by_owner: HashMap::new(),
        }
    }

    /// Limits one user's share: at most `capacity` open contexts holding `max_bytes`.
    pub fn per_user(mut self, capacity: usize, max_bytes: usize) -> Registry {
        self.per_user_capacity = capacity;
        self.per_user_bytes = max_bytes;
        self
    }

    /// About how much memory the stored contexts take.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    fn insert(&mut self, id: String, context: Context, deadline: Instant, bytes: usize) {
        let mine = self.by_owner.entry(context.owner.clone()).or_default();
        mine.contexts += 1;
        mine.bytes += bytes;
        self.held += bytes;
        let entry = Entry {
            context,
            deadline,
            bytes,
        };
        if let Some(old) = self.contexts.insert(id, entry) {
            self.forget(&old);
        }
    }

    fn remove(&mut self, id: &str) -> Option<Entry> {
        let e = self.contexts.remove(id)?;
        self.forget(&e);
        Some(e)
    }

    /// Takes a removed entry off the counts.
    fn forget(&mut self, e: &Entry) {
        self.held -= e.bytes;
        if let Some(mine) = self.by_owner.get_mut(&e.context.owner) {
            mine.contexts -= 1;
            mine.bytes -= e.bytes;
            if mine.contexts == 0 {
                self.by_owner.remove(&e.context.owner);
            }
        }
    }

    fn owner_holds(&self, owner: &str) -> Held {
        self.by_owner.get(owner).copied().unwrap_or_default()
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
        self.held = 0;
        self.by_owner.clear();
        for e in self.contexts.values() {
            self.held += e.bytes;
            let mine = self.by_owner.entry(e.context.owner.clone()).or_default();
            mine.contexts += 1;
            mine.bytes += e.bytes;
        }
    }

    /// Stores `context` under a fresh id; `wsman:QuotaLimit` when its owner already holds
    /// their share, when full of live contexts, or when it does not fit in the memory left.
    pub fn open(&mut self, context: Context, now: Instant) -> Result<String, Fault> {
        let bytes = context.heap_bytes();
        let fits = |r: &Registry| {
            let mine = r.owner_holds(&context.owner);
            r.contexts.len() < r.capacity
                && r.held.saturating_add(bytes) <= r.max_bytes
                && mine.contexts < r.per_user_capacity
                && mine.bytes.saturating_add(bytes) <= r.per_user_bytes
        };
        if !fits(self) {
            self.purge(now);
        }
        const MIB: usize = 1024 * 1024;
        let mine = self.owner_holds(&context.owner);
        if mine.contexts >= self.per_user_capacity {
            return Err(Fault::new(
                FaultKind::QuotaLimit,
                format!(
                    "you have {} enumerations open, the most one user may have; pull them to \
                     the end or release them",
                    mine.contexts
                ),
            ));
        }
        if mine.bytes.saturating_add(bytes) > self.per_user_bytes {
            return Err(Fault::new(
                FaultKind::QuotaLimit,
                format!(
                    "your open enumerations hold {} MiB, and this one (about {} MiB) does not \
                     fit in the {} MiB one user may hold: pull or release them, or filter (WQL)",
                    mine.bytes.div_ceil(MIB),
                    bytes.div_ceil(MIB),
                    self.per_user_bytes / MIB,
                ),
            ));
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
        if self.held.saturating_add(bytes) > self.max_bytes {
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
    fn a_user_at_their_share_is_refused_alone_and_others_still_open_contexts() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(300), 8, usize::MAX).per_user(3, usize::MAX);
        for _ in 0..3 {
            r.open(ctx("reader", 1), t0).unwrap();
        }
        let refused = r.open(ctx("reader", 1), t0).unwrap_err();
        assert_eq!(refused.kind, FaultKind::QuotaLimit);
        assert!(
            refused.reason.contains("the most one user may have"),
            "{}",
            refused.reason
        );
        for _ in 0..3 {
            r.open(ctx("admin", 1), t0).unwrap();
        }
        // Releasing one of the reader's contexts gives the reader room again.
        let mut r = Registry::new(Duration::from_secs(300), 8, usize::MAX).per_user(1, usize::MAX);
        let id = r.open(ctx("reader", 1), t0).unwrap();
        assert!(r.open(ctx("reader", 1), t0).is_err());
        r.release(&id, "reader", t0).unwrap();
        assert!(r.open(ctx("reader", 1), t0).is_ok());
    }

    #[test]
    fn a_users_memory_share_is_theirs_alone() {
        let t0 = Instant::now();
        let kp = Instance::new("Msvm_TPMSettingData").with(
            "KeyProtector",
            vmsec_cim::CimType::UInt8,
            vmsec_cim::Value::from_bytes(&[7; 10_000]),
        );
        let big = |owner: &str| listed(owner, vec![kp.clone(); 4]);
        let mut r = Registry::new(Duration::from_secs(300), 100, 200_000).per_user(100, 50_000);
        r.open(big("reader"), t0).unwrap();
        let refused = r.open(big("reader"), t0).unwrap_err();
        assert!(
            refused.reason.contains("one user may hold"),
            "{}",
            refused.reason
        );
        r.open(big("admin"), t0).unwrap();
    }

    #[test]
    fn expired_contexts_no_longer_count_against_their_owner() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(60), 8, usize::MAX).per_user(1, usize::MAX);
        r.open(ctx("reader", 1), t0).unwrap();
        assert!(r.open(ctx("reader", 1), t0).is_err());
        assert!(
            r.open(ctx("reader", 1), t0 + Duration::from_secs(61))
                .is_ok()
        );
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
