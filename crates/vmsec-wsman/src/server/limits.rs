//! What bounds one client's share of the server: connections per source address, memory
//! held by request bodies per user, and how often a refusal is logged.
//!
//! Each bound has a global part and a per-source or per-user part, so that one client at
//! its limit is refused alone while the others go on. They are plain counters behind a
//! mutex, taken once per connection or per body frame, never while parsing or hashing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The key a source is counted under: IPv4 addresses as they are, IPv6 by /64 (the usual
/// allocation to one host, so one host cannot take a limit per address it owns).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// Why a connection was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionRefused {
    /// The server holds its most connections.
    Global,
    /// This source holds its most connections.
    PerSource,
}

#[derive(Debug, Default)]
struct SlotCounts {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// Open connections, in all and per source.
#[derive(Debug)]
pub struct ConnectionSlots {
    max: usize,
    per_source: usize,
    counts: Mutex<SlotCounts>,
}

/// One open connection's place; freed on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    slots: Arc<ConnectionSlots>,
    source: IpAddr,
}

impl ConnectionSlots {
    pub fn new(max: usize, per_source: usize) -> Arc<ConnectionSlots> {
        Arc::new(ConnectionSlots {
            max,
            per_source,
            counts: Mutex::default(),
        })
    }

    /// A place for a connection from `peer`, if both limits allow one.
    pub fn take(self: &Arc<Self>, peer: IpAddr) -> Result<ConnectionSlot, ConnectionRefused> {
        let source = source_key(peer);
        let mut c = lock(&self.counts);
        if c.total >= self.max {
            return Err(ConnectionRefused::Global);
        }
        let mine = c.by_source.entry(source).or_insert(0);
        if *mine >= self.per_source {
            return Err(ConnectionRefused::PerSource);
        }
        *mine += 1;
        c.total += 1;
        Ok(ConnectionSlot {
            slots: self.clone(),
            source,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        lock(&self.counts).total
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut c = lock(&self.slots.counts);
        c.total -= 1;
        if let Some(n) = c.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                c.by_source.remove(&self.source);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_user: HashMap<String, usize>,
}

/// Memory held by request bodies being read or handled, in all and per user.
#[derive(Debug)]
pub(crate) struct BodyBudget {
    max: usize,
    per_user: usize,
    held: Mutex<Held>,
}

/// The bytes one body holds of the budget; given back on drop, once the request is answered.
#[derive(Debug)]
pub(crate) struct BodyReservation {
    budget: Arc<BodyBudget>,
    user: String,
    bytes: usize,
}

impl BodyBudget {
    pub(crate) fn new(max: usize, per_user: usize) -> Arc<BodyBudget> {
        Arc::new(BodyBudget {
            max,
            per_user,
            held: Mutex::default(),
        })
    }

    /// An empty reservation for a body of `user`'s, to grow as it arrives.
    pub(crate) fn reservation(self: &Arc<Self>, user: &str) -> BodyReservation {
        BodyReservation {
            budget: self.clone(),
            user: user.to_owned(),
            bytes: 0,
        }
    }

    /// Bytes held now, by every user.
    pub(crate) fn held(&self) -> usize {
        lock(&self.held).total
    }
}

impl BodyReservation {
    /// Adds `n` bytes; `false` (and nothing added) past the global or the user's budget.
    pub(crate) fn grow(&mut self, n: usize) -> bool {
        let budget = &self.budget;
        let mut h = lock(&budget.held);
        let mine = h.by_user.get(&self.user).copied().unwrap_or(0);
        if h.total.saturating_add(n) > budget.max || mine.saturating_add(n) > budget.per_user {
            return false;
        }
        h.total += n;
        *h.by_user.entry(self.user.clone()).or_insert(0) += n;
        self.bytes += n;
        true
    }
}

impl Drop for BodyReservation {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        let mut h = lock(&self.budget.held);
        h.total -= self.bytes;
        if let Some(n) = h.by_user.get_mut(&self.user) {
            *n -= self.bytes;
            if *n == 0 {
                h.by_user.remove(&self.user);
            }
        }
    }
}

/// Says when a refusal may be logged: the first at once, then at most one summary line per
/// interval with the count of those not logged. A flood of refusals is then a few lines,
/// not one per attempt (which would let a client fill the disk or drown real warnings).
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    state: Mutex<ThrottleState>,
}

#[derive(Debug, Default)]
struct ThrottleState {
    last: Option<Instant>,
    unlogged: u64,
}

impl LogThrottle {
    pub fn new(interval: Duration) -> LogThrottle {
        LogThrottle {
            interval,
            state: Mutex::default(),
        }
    }

    /// Counts one event at `now`; `Some(n)` when a line is due now, for the `n` events
    /// since the last line (this one included).
    pub fn hit(&self, now: Instant) -> Option<u64> {
        let mut s = lock(&self.state);
        s.unlogged += 1;
        let due = s
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= self.interval);
        due.then(|| {
            s.last = Some(now);
            std::mem::take(&mut s.unlogged)
        })
    }

    /// The events not yet logged, if the interval since the last line has passed: for a
    /// timer, so the last ones of a burst are told too.
    pub fn flush(&self, now: Instant) -> Option<u64> {
        let mut s = lock(&self.state);
        let due = s
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= self.interval);
        (due && s.unlogged > 0).then(|| {
            s.last = Some(now);
            std::mem::take(&mut s.unlogged)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_at_its_limit_is_refused_alone() {
        let slots = ConnectionSlots::new(10, 2);
        let a1 = slots.take(ip("192.0.2.1")).unwrap();
        let _a2 = slots.take(ip("192.0.2.1")).unwrap();
        assert_eq!(
            slots.take(ip("192.0.2.1")).unwrap_err(),
            ConnectionRefused::PerSource
        );
        let _b = slots.take(ip("192.0.2.2")).unwrap();
        drop(a1);
        assert!(
            slots.take(ip("192.0.2.1")).is_ok(),
            "a closed connection frees its place"
        );
    }

    #[test]
    fn the_global_limit_holds_over_all_sources() {
        let slots = ConnectionSlots::new(3, 2);
        let held: Vec<_> = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
            .iter()
            .map(|a| slots.take(ip(a)).unwrap())
            .collect();
        assert_eq!(
            slots.take(ip("192.0.2.4")).unwrap_err(),
            ConnectionRefused::Global
        );
        drop(held);
        assert_eq!(slots.open(), 0);
    }

    #[test]
    fn ipv6_sources_are_counted_by_their_64_prefix() {
        let slots = ConnectionSlots::new(10, 1);
        let _a = slots.take(ip("2001:db8::1")).unwrap();
        assert!(slots.take(ip("2001:db8::2")).is_err(), "same /64");
        assert!(slots.take(ip("2001:db8:0:1::1")).is_ok(), "another /64");
        let _v4 = slots.take(ip("192.0.2.9")).unwrap();
        assert!(
            slots.take(ip("::ffff:192.0.2.9")).is_err(),
            "a mapped IPv4 address is that address"
        );
    }

    #[test]
    fn bodies_hold_a_bounded_amount_of_memory_in_all_and_per_user() {
        let budget = BodyBudget::new(100, 60);
        let mut a = budget.reservation("alice");
        assert!(a.grow(50));
        assert!(!a.grow(20), "past alice's share");
        let mut b = budget.reservation("bob");
        assert!(b.grow(50));
        let mut c = budget.reservation("carol");
        assert!(!c.grow(1), "past the whole budget");
        assert_eq!(budget.held(), 100);
        drop(a);
        assert!(c.grow(50), "an answered request gives its bytes back");
        drop((b, c));
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn a_flood_of_refusals_is_logged_once_per_interval() {
        let t = LogThrottle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.hit(t0), Some(1), "the first is logged at once");
        for i in 1..1000 {
            assert_eq!(t.hit(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(t.flush(t0 + Duration::from_secs(5)), None, "not yet due");
        assert_eq!(
            t.hit(t0 + Duration::from_secs(10)),
            Some(1000),
            "one line for the 999 held back and this one"
        );
        t.hit(t0 + Duration::from_secs(11));
        assert_eq!(t.flush(t0 + Duration::from_secs(20)), Some(1));
        assert_eq!(t.flush(t0 + Duration::from_secs(40)), None, "nothing left");
    }
}
