//! Rate limiting of password checks per source address.
//!
//! Each source has a token bucket. A login that needs its password checked takes a token
//! *before* the hash runs, and gets it back only if the password was right: however many
//! wrong passwords a source sends at once, at most `burst` of them are hashed, and an empty
//! bucket refuses further attempts with HTTP 429 and `Retry-After` without hashing (so
//! guessing costs the attacker time, not the server argon2 work). 429 is chosen over a
//! delayed 401 because a delay would hold a connection and a thread per guess. IPv6
//! sources are grouped by /64, the usual allocation to one host.
//!
//! A check is a [`LoginCheck`], ended when dropped. The limiter counts each source's checks
//! under way and wakes [`LoginLimiter::check_ended`] as each ends, so that a login finding
//! the bucket empty while some are can wait for them: a client opening many sessions at once
//! sends the same credentials on each, and the first verified lets the others in from
//! memory without a hash.
//!
//! The table is bounded. When it is full, buckets that have refilled are dropped (they hold
//! nothing a new bucket would not); if none has, the bucket closest to full is evicted. A
//! source is therefore always limited: at worst an evicted source starts again with a full
//! burst, which is what a new address would give it anyway.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::limits::source_key;

/// Limits of the login rate limiter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoginRateLimit {
    /// Password checks a source may start in a burst (failures keep them spent).
    pub burst: u32,
    /// Checks a source regains per minute.
    pub per_minute: u32,
    /// Most sources tracked at once.
    pub max_sources: usize,
}

impl Default for LoginRateLimit {
    fn default() -> Self {
        LoginRateLimit {
            burst: 10,
            per_minute: 6,
            max_sources: 65_536,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    /// Checks begun and not yet ended.
    checking: u32,
}

/// Per-source buckets.
#[derive(Debug)]
pub struct LoginLimiter {
    limits: LoginRateLimit,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    ended: tokio::sync::Notify,
}

/// A password check [`LoginLimiter::begin`] allowed. Dropped, it ends: as a failure, its
/// token spent, unless [`LoginCheck::succeeded`] said otherwise. A check whose caller goes
/// away before it ends (a client gone mid-hash) ends so too, and its source is never left
/// looking busy.
#[derive(Debug)]
pub struct LoginCheck<'a> {
    limiter: &'a LoginLimiter,
    ip: IpAddr,
    succeeded: Option<Instant>,
}

impl LoginCheck<'_> {
    /// The password was right: the check's token is given back.
    pub fn succeeded(mut self, now: Instant) {
        self.succeeded = Some(now);
    }
}

impl Drop for LoginCheck<'_> {
    fn drop(&mut self) {
        self.limiter.end(self.ip, self.succeeded);
    }
}

impl LoginLimiter {
    /// A limiter with `limits`.
    pub fn new(limits: LoginRateLimit) -> LoginLimiter {
        LoginLimiter {
            limits,
            buckets: Mutex::new(HashMap::new()),
            ended: tokio::sync::Notify::new(),
        }
    }

    fn per_sec(&self) -> f64 {
        f64::from(self.limits.per_minute) / 60.0
    }

    /// The bucket's tokens at `now`, refilled since its last update.
    fn tokens_at(&self, b: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
        (b.tokens + elapsed * self.per_sec()).min(f64::from(self.limits.burst))
    }

    /// Takes a token of `ip` for a password check about to run; `Err(retry_after)` if it has
    /// none left, and then the password must not be checked.
    pub fn begin(&self, ip: IpAddr, now: Instant) -> Result<LoginCheck<'_>, Duration> {
        let key = source_key(ip);
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(&key) && map.len() >= self.limits.max_sources {
            self.make_room(&mut map, now);
        }
        let burst = f64::from(self.limits.burst);
        let b = map.entry(key).or_insert(Bucket {
            tokens: burst,
            updated: now,
            checking: 0,
        });
        b.tokens = self.tokens_at(b, now);
        b.updated = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.checking += 1;
            return Ok(LoginCheck {
                limiter: self,
                ip,
                succeeded: None,
            });
        }
        let per_sec = f64::from(self.limits.per_minute.max(1)) / 60.0;
        let wait = ((1.0 - b.tokens) / per_sec).ceil().max(1.0);
        Err(Duration::from_secs_f64(wait))
    }

    /// Ends a check: its token given back if it succeeded (at `succeeded`); then whoever
    /// waits on [`LoginLimiter::check_ended`] looks again.
    fn end(&self, ip: IpAddr, succeeded: Option<Instant>) {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = map.get_mut(&source_key(ip)) {
            if let Some(now) = succeeded {
                b.tokens = (self.tokens_at(b, now) + 1.0).min(f64::from(self.limits.burst));
                b.updated = now;
            }
            b.checking = b.checking.saturating_sub(1);
        }
        drop(map);
        self.ended.notify_waiters();
    }

    /// Completes when a check ends. Made before [`LoginLimiter::begin`] is asked, it misses
    /// no check that ends after.
    pub fn check_ended(&self) -> tokio::sync::futures::Notified<'_> {
        self.ended.notified()
    }

    /// Whether checks of `ip`'s source are under way.
    pub fn checking(&self, ip: IpAddr) -> bool {
        let map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&source_key(ip)).is_some_and(|b| b.checking > 0)
    }

    /// Frees one place at least in a full table.
    fn make_room(&self, map: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        let burst = f64::from(self.limits.burst);
        map.retain(|_, b| b.checking > 0 || self.tokens_at(b, now) < burst);
        if map.len() < self.limits.max_sources {
            return;
        }
        let fullest = map
            .iter()
            .map(|(k, b)| (*k, self.tokens_at(b, now)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(k, _)| k);
        if let Some(k) = fullest {
            map.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32, per_minute: u32, max_sources: usize) -> LoginLimiter {
        LoginLimiter::new(LoginRateLimit {
            burst,
            per_minute,
            max_sources,
        })
    }

    #[test]
    fn a_source_is_refused_after_its_burst_of_failures_and_recovers_with_time() {
        let l = limiter(3, 60, 16);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.begin(ip, t0).is_ok());
        }
        let retry = l.begin(ip, t0).unwrap_err();
        assert_eq!(retry, Duration::from_secs(1));
        assert!(l.begin(ip, t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn attempts_under_way_spend_their_tokens_before_any_password_is_checked() {
        // 200 attempts begun at once, none finished yet: only the burst may go on to hash.
        let l = limiter(10, 6, 16);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        let started = (0..200).filter(|_| l.begin(ip, t0).is_ok()).count();
        assert_eq!(started, 10);
    }

    #[test]
    fn right_passwords_give_their_token_back() {
        let l = limiter(2, 1, 16);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..10 {
            l.begin(ip, t0).unwrap().succeeded(t0);
        }
        assert!(l.begin(ip, t0).is_ok());
    }

    #[test]
    fn a_source_is_checking_from_its_begin_until_its_check_is_dropped() {
        let l = limiter(3, 1, 16);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert!(!l.checking(ip));
        let (a, b) = (l.begin(ip, t0).unwrap(), l.begin(ip, t0).unwrap());
        assert!(l.checking(ip));
        a.succeeded(t0);
        assert!(l.checking(ip), "one of the two is still under way");
        drop(b);
        assert!(!l.checking(ip));
        assert!(!l.checking("192.0.2.2".parse().unwrap()));
    }

    #[test]
    fn other_sources_are_not_affected() {
        let l = limiter(1, 1, 16);
        let t0 = Instant::now();
        l.begin("192.0.2.1".parse().unwrap(), t0).unwrap();
        assert!(l.begin("192.0.2.1".parse().unwrap(), t0).is_err());
        assert!(l.begin("192.0.2.2".parse().unwrap(), t0).is_ok());
    }

    #[test]
    fn ipv6_sources_in_one_slash_64_share_a_bucket() {
        let l = limiter(1, 1, 16);
        let t0 = Instant::now();
        l.begin("2001:db8::1".parse().unwrap(), t0).unwrap();
        assert!(l.begin("2001:db8::ffff:1".parse().unwrap(), t0).is_err());
        assert!(l.begin("2001:db8:0:1::1".parse().unwrap(), t0).is_ok());
    }

    #[test]
    fn a_full_table_still_limits_every_source() {
        let l = limiter(1, 1, 4);
        let t0 = Instant::now();
        for i in 1..=200u8 {
            let ip = IpAddr::from([192, 0, 2, i]);
            assert!(l.begin(ip, t0).is_ok(), "a new source has its burst");
            assert!(
                l.begin(ip, t0).is_err(),
                "and is limited past it, even with the table full"
            );
        }
        assert_eq!(l.buckets.lock().unwrap().len(), 4);
    }

    #[test]
    fn a_full_table_drops_refilled_buckets_before_limited_ones() {
        let l = limiter(1, 60, 2);
        let t0 = Instant::now();
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            "192.0.2.3".parse().unwrap(),
        );
        l.begin(a, t0).unwrap();
        let t1 = t0 + Duration::from_secs(2);
        l.begin(b, t1).unwrap();
        // a has refilled by t1, b has not: c takes a's place and b stays limited.
        l.begin(c, t1).unwrap();
        assert!(l.begin(b, t1).is_err());
    }
}
