//! The XML of large `uint8[]` values written before, looked up by the values themselves.
//!
//! A key protector of 13,887 bytes is ~490 KB of XML, one element per byte, and every
//! GetKeyProtector of a VM writes the same bytes until the protector changes: writing them
//! was a fifth of the server's CPU at 16 connections. The cache is keyed by the bytes the
//! provider returned (compared in full, not by a hash), so the provider stays authoritative
//! and nothing needs invalidating when another process or host changes a protector: changed
//! bytes simply miss. A reply shares the XML kept here ([`Parts`](crate::wire::reply::Parts)):
//! it is not copied per reply.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;

use crate::wire::wscim;

/// Values shorter than this are written each time: their XML costs less than a lookup.
const MIN_BYTES: usize = 1024;

/// Most entries kept; a lookup compares lengths of all of them, bytes only of those of the
/// same length, so it stays cheap beside writing ~35 bytes of XML per byte.
const MAX_ENTRIES: usize = 64;

/// One value's XML.
struct Written {
    name: String,
    bytes: Box<[u8]>,
    xml: Bytes,
}

/// Recently written `uint8[]` values, most recent last, their XML within a memory budget.
pub struct ByteArrays {
    budget: usize,
    entries: Mutex<Entries>,
}

struct Entries {
    list: VecDeque<Written>,
    /// Bytes of XML and values the list holds.
    held: usize,
}

impl ByteArrays {
    /// A cache holding at most `budget` bytes of XML and values (0: nothing is kept).
    pub const fn new(budget: usize) -> Self {
        ByteArrays {
            budget,
            entries: Mutex::new(Entries {
                list: VecDeque::new(),
                held: 0,
            }),
        }
    }

    /// The XML of `bytes` as property `name` (checked by the caller): written before, or
    /// written now and kept if it fits a quarter of the budget.
    pub fn xml(&self, name: &str, bytes: &[u8]) -> Bytes {
        if bytes.len() < MIN_BYTES || self.budget == 0 {
            return write(name, bytes);
        }
        if let Some(xml) = self.lookup(name, bytes) {
            return xml;
        }
        let xml = write(name, bytes);
        let size = xml.len() + bytes.len();
        if size <= self.budget / 4 {
            let mut e = self.lock();
            // Another thread may have written the same value meanwhile.
            if !e.list.iter().any(|w| same(w, name, bytes)) {
                while e.held + size > self.budget || e.list.len() >= MAX_ENTRIES {
                    let Some(old) = e.list.pop_front() else { break };
                    e.held -= old.xml.len() + old.bytes.len();
                }
                e.held += size;
                e.list.push_back(Written {
                    name: name.to_owned(),
                    bytes: bytes.into(),
                    xml: xml.clone(),
                });
            }
        }
        xml
    }

    fn lookup(&self, name: &str, bytes: &[u8]) -> Option<Bytes> {
        let mut e = self.lock();
        let i = e.list.iter().position(|w| same(w, name, bytes))?;
        // Most recently used last, so eviction takes the least recently used.
        let w = e.list.remove(i)?;
        let xml = w.xml.clone();
        e.list.push_back(w);
        Some(xml)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // Every mutation keeps `held` and `list` consistent before it can panic.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries kept, for tests.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().list.len()
    }
}

fn same(w: &Written, name: &str, bytes: &[u8]) -> bool {
    w.bytes.len() == bytes.len() && w.name == name && *w.bytes == *bytes
}

fn write(name: &str, bytes: &[u8]) -> Bytes {
    let mut out = String::with_capacity(wscim::estimate_bytes(name, bytes));
    wscim::write_bytes(&mut out, name, bytes);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(name: &str, bytes: &[u8]) -> String {
        let mut out = String::new();
        wscim::write_bytes(&mut out, name, bytes);
        out
    }

    #[test]
    fn a_value_written_before_is_the_same_xml_and_a_changed_one_is_written_anew() {
        let cache = ByteArrays::new(1 << 20);
        let mut kp = vec![7u8; 4000];
        let first = cache.xml("KeyProtector", &kp);
        assert_eq!(first, written("KeyProtector", &kp));
        // Shared, not copied.
        assert_eq!(first.as_ptr(), cache.xml("KeyProtector", &kp).as_ptr());
        // The same length and one byte different, as a rolled protector may be.
        kp[3999] = 8;
        let changed = cache.xml("KeyProtector", &kp);
        assert_eq!(changed, written("KeyProtector", &kp));
        // Under another name the same bytes are other XML.
        assert_eq!(cache.xml("Policy", &kp), written("Policy", &kp));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn the_budget_evicts_the_least_recently_used_and_small_or_huge_values_are_not_kept() {
        // Each value of ~2,000 zeros is ~70 KB of XML and value: four fit in 300 KB, not five.
        let cache = ByteArrays::new(300_000);
        let values: Vec<Vec<u8>> = (0..5).map(|i| vec![0u8; 2000 + i]).collect();
        for v in &values[..4] {
            cache.xml("KeyProtector", v);
        }
        cache.xml("KeyProtector", &values[0]); // used again: values[1] is now the oldest
        cache.xml("KeyProtector", &values[4]);
        let kept = |v: &[u8]| cache.lock().list.iter().any(|w| same(w, "KeyProtector", v));
        assert!(!kept(&values[1]));
        assert!([0, 2, 3, 4].iter().all(|&i| kept(&values[i])));
        assert!(cache.lock().held <= 300_000);
        cache.xml("KeyProtector", &[1u8; 100]);
        cache.xml("KeyProtector", &[1u8; 10_000]); // over a quarter of the budget
        assert!(!kept(&[1u8; 100]) && !kept(&[1u8; 10_000]));
    }
}
