//! `kps serve`'s `/metrics`: requests by endpoint and outcome, and their latency, in the
//! Prometheus text format.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Requests by endpoint and outcome, and their latency.
#[derive(Default)]
pub(super) struct Metrics {
    counts: Mutex<BTreeMap<(&'static str, String), u64>>,
    latency: Mutex<BTreeMap<&'static str, [u64; BUCKETS.len() + 1]>>,
    latency_sum: Mutex<BTreeMap<&'static str, f64>>,
}

const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

impl Metrics {
    pub(super) fn record(&self, endpoint: &'static str, outcome: &str, elapsed: Duration) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((endpoint, outcome.to_owned()))
            .or_default() += 1;
        let secs = elapsed.as_secs_f64();
        let mut lat = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let row = lat.entry(endpoint).or_default();
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        row[i] += 1;
        *self
            .latency_sum
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(endpoint)
            .or_default() += secs;
    }

    pub(super) fn render(&self) -> String {
        let mut out = String::from(
            "# HELP vmsec_kps_requests_total Attestations and key releases by endpoint and outcome (the spec's error name, or ok).\n# TYPE vmsec_kps_requests_total counter\n",
        );
        for ((e, o), n) in self.counts.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            out.push_str(&format!(
                "vmsec_kps_requests_total{{endpoint=\"{e}\",outcome=\"{o}\"}} {n}\n"
            ));
        }
        out.push_str("# HELP vmsec_kps_request_duration_seconds Time from full request body to reply.\n# TYPE vmsec_kps_request_duration_seconds histogram\n");
        let sums = self
            .latency_sum
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (e, row) in self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let mut cumulative = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cumulative += row[i];
                out.push_str(&format!("vmsec_kps_request_duration_seconds_bucket{{endpoint=\"{e}\",le=\"{b}\"}} {cumulative}\n"));
            }
            cumulative += row[BUCKETS.len()];
            out.push_str(&format!("vmsec_kps_request_duration_seconds_bucket{{endpoint=\"{e}\",le=\"+Inf\"}} {cumulative}\n"));
            out.push_str(&format!(
                "vmsec_kps_request_duration_seconds_sum{{endpoint=\"{e}\"}} {}\n",
                sums.get(e).unwrap_or(&0.0)
            ));
            out.push_str(&format!(
                "vmsec_kps_request_duration_seconds_count{{endpoint=\"{e}\"}} {cumulative}\n"
            ));
        }
        out
    }
}
