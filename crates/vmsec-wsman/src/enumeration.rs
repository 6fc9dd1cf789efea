//! Open enumeration contexts: the instances an Enumerate produced and not yet pulled.
//!
//! A context belongs to the user who opened it, expires after a configurable idle time,
//! and the registry holds a bounded number of them, so neither forgotten nor hostile
//! enumerations can grow memory without limit.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use vmsec_cim::Instance;

use crate::envelope::EnumerationMode;
use crate::fault::{Fault, FaultKind};

/// An open enumeration, taken out of the registry while a Pull is served.
#[derive(Debug)]
pub struct Context {
    /// Who opened it.
    pub owner: String,
    /// What items carry.
    pub mode: EnumerationMode,
    /// Instances not yet returned.
    pub items: VecDeque<Instance>,
}

/// The registry of open contexts.
#[derive(Debug)]
pub struct Registry {
    contexts: HashMap<String, (Context, Instant)>,
    expiry: Duration,
    capacity: usize,
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
    /// `capacity` of them.
    pub fn new(expiry: Duration, capacity: usize) -> Registry {
        Registry {
            contexts: HashMap::new(),
            expiry,
            capacity,
        }
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
        self.contexts.retain(|_, (_, deadline)| *deadline > now);
    }

    /// Stores `context` under a fresh id; `wsman:QuotaLimit` when full of live contexts.
    pub fn open(&mut self, context: Context, now: Instant) -> Result<String, Fault> {
        if self.contexts.len() >= self.capacity {
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
        let id = format!(
            "uuid:{}",
            uuid::Uuid::new_v4().hyphenated().to_string().to_uppercase()
        );
        self.contexts
            .insert(id.clone(), (context, now + self.expiry));
        Ok(id)
    }

    /// Puts a partly pulled context back under its id, renewing its expiry.
    pub fn restore(&mut self, id: String, context: Context, now: Instant) {
        self.contexts.insert(id, (context, now + self.expiry));
    }

    /// Takes the context `id` out for a Pull. Unknown, expired and other users'
    /// contexts are all `wsen:InvalidEnumerationContext`, so ids leak nothing.
    pub fn take(&mut self, id: &str, owner: &str, now: Instant) -> Result<Context, Fault> {
        match self.contexts.remove(id) {
            Some((ctx, deadline)) if deadline > now && ctx.owner == owner => Ok(ctx),
            Some((ctx, deadline)) if deadline > now => {
                self.contexts.insert(id.to_owned(), (ctx, deadline));
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

    fn ctx(owner: &str, n: usize) -> Context {
        Context {
            owner: owner.into(),
            mode: EnumerationMode::Objects,
            items: (0..n)
                .map(|_| Instance::new("Msvm_ComputerSystem"))
                .collect(),
        }
    }

    #[test]
    fn a_context_is_taken_by_its_owner_and_restored_for_the_next_pull() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(60), 4);
        let id = r.open(ctx("alice", 3), t0).unwrap();
        let c = r.take(&id, "alice", t0).unwrap();
        assert_eq!(c.items.len(), 3);
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
        let mut r = Registry::new(Duration::from_secs(60), 4);
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
        let mut r = Registry::new(Duration::from_secs(60), 4);
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
        let mut r = Registry::new(Duration::from_secs(60), 2);
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
        let mut r = Registry::new(Duration::from_secs(60), 2);
        let id = r.open(ctx("a", 1), t0).unwrap();
        r.release(&id, "a", t0).unwrap();
        assert!(r.release(&id, "a", t0).is_err());
        assert!(r.is_empty());
    }
}
