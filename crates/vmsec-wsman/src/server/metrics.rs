//! Request counters and a latency histogram, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets. A Get or a GetKeyProtector is
/// answered in 50-150 us, so the first buckets are below a millisecond: with 1 ms first,
/// the histogram put nearly every request in one bucket.
const BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(&'static str, &'static str), u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
    auth_failures: u64,
    rate_limited: u64,
    connections_refused: u64,
    bodies_refused: u64,
}

/// Counters shared by every connection.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Counters stay meaningful after a panic elsewhere; keep serving them.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one request (`operation`, `outcome` are fixed label values) and its latency.
    pub fn record(&self, operation: &'static str, outcome: &'static str, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut m = self.lock();
        *m.requests.entry((operation, outcome)).or_insert(0) += 1;
        let bucket = BUCKETS.iter().position(|b| secs <= *b);
        if let Some(slot) = bucket.and_then(|i| m.buckets.get_mut(i)) {
            *slot += 1;
        }
        m.count += 1;
        m.sum += secs;
    }

    /// Counts a rejected login.
    pub fn auth_failure(&self) {
        self.lock().auth_failures += 1;
    }

    /// Counts a request refused by the login rate limiter.
    pub fn rate_limited(&self) {
        self.lock().rate_limited += 1;
    }

    /// Counts a connection closed on accept by a connection limit.
    pub fn connection_refused(&self) {
        self.lock().connections_refused += 1;
    }

    /// Counts a body refused (503) because request bodies held their most memory.
    pub fn body_refused(&self) {
        self.lock().bodies_refused += 1;
    }

    /// Renders every metric, then `gauges` (name, help, value), then `extra` verbatim.
    pub fn render(&self, gauges: &[(&str, &str, u64)], extra: &str) -> String {
        let m = self.lock();
        let mut out = String::with_capacity(2048 + extra.len());
        out.push_str(
            "# HELP vmsec_wsman_requests_total WS-Management requests by operation and outcome.\n",
        );
        out.push_str("# TYPE vmsec_wsman_requests_total counter\n");
        for ((op, outcome), n) in &m.requests {
            let _ = writeln!(
                out,
                "vmsec_wsman_requests_total{{operation=\"{op}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP vmsec_wsman_request_duration_seconds Time from full request body to reply.\n",
        );
        out.push_str("# TYPE vmsec_wsman_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(m.buckets.iter()) {
            cumulative += n;
            let _ = writeln!(
                out,
                "vmsec_wsman_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "vmsec_wsman_request_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            m.count
        );
        let _ = writeln!(out, "vmsec_wsman_request_duration_seconds_sum {}", m.sum);
        let _ = writeln!(
            out,
            "vmsec_wsman_request_duration_seconds_count {}",
            m.count
        );
        let counters = [
            (
                "vmsec_wsman_auth_failures_total",
                "Rejected HTTP Basic logins.",
                m.auth_failures,
            ),
            (
                "vmsec_wsman_rate_limited_total",
                "Requests refused (429) after too many failed logins.",
                m.rate_limited,
            ),
            (
                "vmsec_wsman_connections_refused_total",
                "Connections closed on accept by the global or per-source connection limit.",
                m.connections_refused,
            ),
            (
                "vmsec_wsman_bodies_refused_total",
                "Request bodies refused (503) with the body memory budget spent.",
                m.bodies_refused,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out.push_str(extra);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_operation_and_outcome_with_a_cumulative_histogram() {
        let m = Metrics::default();
        m.record("get", "ok", Duration::from_micros(80));
        m.record("get", "ok", Duration::from_millis(2));
        m.record("get", "ok", Duration::from_millis(30));
        m.record("invoke", "InvalidSelectors", Duration::from_secs(60));
        m.auth_failure();
        let text = m.render(
            &[("vmsec_wsman_open_enumerations", "Open contexts.", 3)],
            "extra_metric 1\n",
        );
        assert!(
            text.contains("vmsec_wsman_requests_total{operation=\"get\",outcome=\"ok\"} 3\n"),
            "{text}"
        );
        assert!(text.contains(
            "vmsec_wsman_requests_total{operation=\"invoke\",outcome=\"InvalidSelectors\"} 1\n"
        ));
        assert!(text.contains("vmsec_wsman_request_duration_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("vmsec_wsman_request_duration_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("vmsec_wsman_request_duration_seconds_bucket{le=\"0.0025\"} 2\n"));
        assert!(text.contains("vmsec_wsman_request_duration_seconds_bucket{le=\"0.05\"} 3\n"));
        assert!(text.contains("vmsec_wsman_request_duration_seconds_bucket{le=\"10\"} 3\n"));
        assert!(text.contains("vmsec_wsman_request_duration_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(text.contains("vmsec_wsman_auth_failures_total 1\n"));
        assert!(text.contains("vmsec_wsman_open_enumerations 3\n"));
        assert!(text.ends_with("extra_metric 1\n"));
    }
}
