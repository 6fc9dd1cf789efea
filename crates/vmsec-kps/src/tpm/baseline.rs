//! A TPM baseline: what `vmsec hgs tpm-baseline` captured on a reference host, and what the
//! Attestation Service compares an attesting host's replayed PCRs with (`kps baseline add`).
//!
//! The file is JSON: `{"version": 1, "bank": "sha256", "pcrs": {"0": "<64 hex>", …},
//! "event_log_sha256": "<64 hex>"}`. A host passes a baseline when every PCR it names has its
//! value; the event log's digest is recorded and reported, not required (a log may differ in
//! events that measure nothing, EV_NO_ACTION, and still replay to the same PCRs).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::eventlog::PCR_COUNT;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    version: u32,
    bank: String,
    pcrs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event_log_sha256: Option<String>,
}

/// A parsed baseline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baseline {
    pub pcrs: BTreeMap<u32, [u8; 32]>,
    pub event_log_sha256: Option<[u8; 32]>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Baseline {
    /// Reads a baseline file; at most 24 PCRs of the SHA-256 bank.
    pub fn parse(bytes: &[u8]) -> Result<Baseline, String> {
        if bytes.len() > 16 * 1024 {
            return Err("a baseline of more than 16 KiB".into());
        }
        let doc: Doc =
            serde_json::from_slice(bytes).map_err(|e| format!("not a TPM baseline: {e}"))?;
        if doc.version != 1 || doc.bank != "sha256" {
            return Err(format!(
                "baseline version {} bank {:?}; this vmsec reads version 1, bank sha256",
                doc.version, doc.bank
            ));
        }
        if doc.pcrs.is_empty() {
            return Err("a baseline without PCRs".into());
        }
        let mut pcrs = BTreeMap::new();
        for (k, v) in &doc.pcrs {
            let i: u32 = k
                .parse()
                .ok()
                .filter(|i| *i < PCR_COUNT)
                .ok_or_else(|| format!("baseline: PCR {k:?} is not 0 to 23"))?;
            let v = unhex32(v).ok_or_else(|| format!("baseline: PCR {i} is not 64 hex digits"))?;
            pcrs.insert(i, v);
        }
        let event_log_sha256 = doc
            .event_log_sha256
            .as_deref()
            .map(|s| unhex32(s).ok_or("baseline: event_log_sha256 is not 64 hex digits"))
            .transpose()?;
        Ok(Baseline {
            pcrs,
            event_log_sha256,
        })
    }

    /// The baseline file.
    pub fn to_json(&self) -> String {
        let doc = Doc {
            version: 1,
            bank: "sha256".into(),
            pcrs: self
                .pcrs
                .iter()
                .map(|(i, v)| (i.to_string(), hex(v)))
                .collect(),
            event_log_sha256: self.event_log_sha256.map(|d| hex(&d)),
        };
        let mut text = serde_json::to_string_pretty(&doc).expect("JSON of strings");
        text.push('\n');
        text
    }

    /// The PCRs whose value in `pcrs` is not the baseline's.
    pub fn mismatches(&self, pcrs: &BTreeMap<u32, [u8; 32]>) -> Vec<u32> {
        self.pcrs
            .iter()
            .filter(|(i, v)| pcrs.get(i) != Some(v))
            .map(|(i, _)| *i)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_baseline_reads_back_and_names_the_pcrs_that_differ() {
        let b = Baseline {
            pcrs: [(0, [1; 32]), (7, [2; 32])].into_iter().collect(),
            event_log_sha256: Some([3; 32]),
        };
        let again = Baseline::parse(b.to_json().as_bytes()).unwrap();
        assert_eq!(again, b);
        let seen = [(0, [1; 32]), (7, [9; 32])].into_iter().collect();
        assert_eq!(b.mismatches(&seen), vec![7]);
        assert_eq!(b.mismatches(&BTreeMap::new()), vec![0, 7]);
    }

    #[test]
    fn bad_baselines_are_refused() {
        for text in [
            r#"{"version":2,"bank":"sha256","pcrs":{"0":"00"}}"#,
            r#"{"version":1,"bank":"sha1","pcrs":{}}"#,
            r#"{"version":1,"bank":"sha256","pcrs":{}}"#,
            r#"{"version":1,"bank":"sha256","pcrs":{"24":"0000000000000000000000000000000000000000000000000000000000000000"}}"#,
            r#"{"version":1,"bank":"sha256","pcrs":{"0":"zz00000000000000000000000000000000000000000000000000000000000000"}}"#,
            "junk",
        ] {
            assert!(Baseline::parse(text.as_bytes()).is_err(), "{text}");
        }
    }
}
