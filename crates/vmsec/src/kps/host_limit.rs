//! The per-host rate limit of `kps serve`: a token bucket per host key, asked once the host
//! is known and before any private-key operation.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Token buckets per host key: the limit that matters for a service whose clients are hosts.
pub(super) struct HostLimiter {
    pub(super) per_minute: u32,
    pub(super) buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Most host keys tracked; past it, idle full buckets are dropped first.
const MAX_TRACKED_HOSTS: usize = 65_536;

impl HostLimiter {
    pub(super) fn admit(&self, key: &str, now: Instant) -> Result<(), u64> {
        let burst = f64::from(self.per_minute.max(1));
        let per_sec = burst / 60.0;
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(key) && map.len() >= MAX_TRACKED_HOSTS {
            map.retain(|_, (t, at)| {
                *t + now.saturating_duration_since(*at).as_secs_f64() * per_sec < burst
            });
            if map.len() >= MAX_TRACKED_HOSTS {
                return Err(60);
            }
        }
        let (tokens, at) = map.entry(key.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * per_sec).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / per_sec).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_host_gets_its_burst_then_waits() {
        let l = HostLimiter {
            per_minute: 3,
            buckets: Mutex::default(),
        };
        let t = Instant::now();
        for _ in 0..3 {
            l.admit("h", t).unwrap();
        }
        assert_eq!(l.admit("h", t), Err(20));
        l.admit("other", t).unwrap();
        l.admit("h", t + Duration::from_secs(21)).unwrap();
    }
}
