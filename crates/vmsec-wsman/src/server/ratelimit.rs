//! Rate limiting of failed logins per source address.
//!
//! Each source has a token bucket; a failed login spends a token and an empty bucket
//! refuses further attempts with HTTP 429 and `Retry-After`, without checking the
//! password (so guessing costs the attacker time, not the server argon2 work). 429 is
//! chosen over a delayed 401 because a delay would hold a connection and a thread per
//! guess. IPv6 sources are grouped by /64, the usual allocation to one host. The table
//! is bounded: when full, the buckets that have refilled are dropped, and if none has,
//! the new source shares no state (it is not limited) rather than evicting a limited one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits of the failed-login rate limiter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoginRateLimit {
    /// Failed logins a source may make in a burst.
    pub burst: u32,
    /// Failed logins a source regains per minute.
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
}

/// Per-source buckets.
#[derive(Debug)]
pub struct LoginLimiter {
    limits: LoginRateLimit,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

impl LoginLimiter {
    /// A limiter with `limits`.
    pub fn new(limits: LoginRateLimit) -> LoginLimiter {
        LoginLimiter {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let per_sec = f64::from(self.limits.per_minute) / 60.0;
        let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_sec).min(f64::from(self.limits.burst));
        b.updated = now;
    }

    /// `Err(retry_after)` if `ip` has no failed logins left.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Some(b) = map.get_mut(&source_key(ip)) else {
            return Ok(());
        };
        self.refill(b, now);
        if b.tokens >= 1.0 {
            return Ok(());
        }
        let per_sec = f64::from(self.limits.per_minute.max(1)) / 60.0;
        let wait = ((1.0 - b.tokens) / per_sec).ceil().max(1.0);
        Err(Duration::from_secs_f64(wait))
    }

    /// Spends a token of `ip` for a failed login.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let key = source_key(ip);
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(&key) && map.len() >= self.limits.max_sources {
            let burst = f64::from(self.limits.burst);
            let per_sec = f64::from(self.limits.per_minute) / 60.0;
            map.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * per_sec < burst
            });
            if map.len() >= self.limits.max_sources {
                return;
            }
        }
        let b = map.entry(key).or_insert(Bucket {
            tokens: f64::from(self.limits.burst),
            updated: now,
        });
        self.refill(b, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
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
            assert!(l.check(ip, t0).is_ok());
            l.failed(ip, t0);
        }
        let retry = l.check(ip, t0).unwrap_err();
        assert_eq!(retry, Duration::from_secs(1));
        assert!(l.check(ip, t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn other_sources_are_not_affected() {
        let l = limiter(1, 1, 16);
        let t0 = Instant::now();
        l.failed("192.0.2.1".parse().unwrap(), t0);
        assert!(l.check("192.0.2.1".parse().unwrap(), t0).is_err());
        assert!(l.check("192.0.2.2".parse().unwrap(), t0).is_ok());
    }

    #[test]
    fn ipv6_sources_in_one_slash_64_share_a_bucket() {
        let l = limiter(1, 1, 16);
        let t0 = Instant::now();
        l.failed("2001:db8::1".parse().unwrap(), t0);
        assert!(l.check("2001:db8::ffff:1".parse().unwrap(), t0).is_err());
        assert!(l.check("2001:db8:0:1::1".parse().unwrap(), t0).is_ok());
    }

    #[test]
    fn the_table_is_bounded() {
        let l = limiter(1, 1, 2);
        let t0 = Instant::now();
        for i in 1..=5u8 {
            l.failed(IpAddr::from([192, 0, 2, i]), t0);
        }
        assert_eq!(l.buckets.lock().unwrap().len(), 2);
        assert!(
            l.check(IpAddr::from([192, 0, 2, 1]), t0).is_err(),
            "limited sources are kept"
        );
    }
}
