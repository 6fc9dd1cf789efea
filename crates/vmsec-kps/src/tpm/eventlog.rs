//! The TCG PC Client crypto-agile event log (TCG PC Client Platform Firmware Profile, §10):
//! what Linux exposes as `/sys/kernel/security/tpm0/binary_bios_measurements`. Parsed as
//! hostile input (every length checked, counts and sizes capped) and replayed in the SHA-256
//! bank: the PCR values the log claims, which a quote must then confirm.
//!
//! Layout: one `TCG_PCR_EVENT` (SHA-1 format) of type EV_NO_ACTION whose data is the
//! `TCG_EfiSpecIDEvent` ("Spec ID Event03", the banks and their digest sizes), then
//! `TCG_PCR_EVENT2`s: pcrIndex u32, eventType u32, TPML_DIGEST_VALUES (count u32, then per
//! bank an algorithm u16 and its digest), eventSize u32, event data. Little-endian, as the
//! firmware writes it.

use std::collections::BTreeMap;

use super::wire::ALG_SHA256;

pub const EV_NO_ACTION: u32 = 0x0000_0003;
/// Most events a log may hold; a real boot has a few hundred.
pub const MAX_EVENTS: usize = 16_384;
/// Largest event data; firmware events are at most a few kilobytes (EFI variables).
pub const MAX_EVENT_DATA: usize = 1024 * 1024;
/// The most banks the Spec ID event may declare.
const MAX_BANKS: u32 = 8;
/// PCRs 0..=23.
pub const PCR_COUNT: u32 = 24;

/// A bounded little-endian reader.
struct Le<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Le<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.bytes.len() - self.at {
            return Err(format!(
                "event log truncated at byte {}: {n} bytes wanted, {} left",
                self.at,
                self.bytes.len() - self.at
            ));
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
}

/// One measured event: its PCR, type and SHA-256 digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub pcr: u32,
    pub event_type: u32,
    pub sha256: [u8; 32],
    pub data: Vec<u8>,
}

/// A parsed log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLog {
    pub events: Vec<Event>,
    /// The locality of the StartupLocality event, if any (PCR 0 starts at it).
    pub startup_locality: Option<u8>,
}

const SPEC_ID: &[u8; 16] = b"Spec ID Event03\0";
const STARTUP_LOCALITY: &[u8; 16] = b"StartupLocality\0";

impl EventLog {
    pub fn parse(bytes: &[u8]) -> Result<EventLog, String> {
        let mut r = Le { bytes, at: 0 };
        // The header event, in the SHA-1 format.
        let pcr = r.u32()?;
        let ty = r.u32()?;
        r.take(20)?;
        let size = r.u32()? as usize;
        if pcr != 0 || ty != EV_NO_ACTION || size > 4096 {
            return Err("event log: the first event is not the Spec ID event".into());
        }
        let spec = r.take(size)?;
        let mut s = Le { bytes: spec, at: 0 };
        if s.take(16)? != SPEC_ID {
            return Err("event log: not crypto-agile (no \"Spec ID Event03\")".into());
        }
        s.take(4 + 4)?; // platformClass, versions, errata, uintnSize
        let banks = s.u32()?;
        if banks == 0 || banks > MAX_BANKS {
            return Err(format!("event log: {banks} banks declared"));
        }
        let mut sizes = BTreeMap::new();
        for _ in 0..banks {
            let alg = s.u16()?;
            let len = s.u16()?;
            if len == 0 || len > 64 {
                return Err(format!(
                    "event log: a digest of {len} bytes for algorithm {alg:#06x}"
                ));
            }
            sizes.insert(alg, usize::from(len));
        }
        if sizes.get(&ALG_SHA256) != Some(&32) {
            return Err("event log: no SHA-256 bank".into());
        }
        let mut events = Vec::new();
        let mut startup_locality = None;
        while r.at < bytes.len() {
            if events.len() == MAX_EVENTS {
                return Err(format!("event log: more than {MAX_EVENTS} events"));
            }
            let pcr = r.u32()?;
            let event_type = r.u32()?;
            let count = r.u32()?;
            if count == 0 || count > banks {
                return Err(format!("event log: an event with {count} digests"));
            }
            let mut sha256 = None;
            for _ in 0..count {
                let alg = r.u16()?;
                let len = *sizes.get(&alg).ok_or_else(|| {
                    format!("event log: a digest of undeclared algorithm {alg:#06x}")
                })?;
                let d = r.take(len)?;
                if alg == ALG_SHA256 {
                    sha256 = Some(<[u8; 32]>::try_from(d).expect("32 bytes"));
                }
            }
            let size = r.u32()? as usize;
            if size > MAX_EVENT_DATA {
                return Err(format!("event log: an event of {size} bytes"));
            }
            let data = r.take(size)?.to_vec();
            if event_type == EV_NO_ACTION {
                if pcr == 0 && data.len() == 17 && data.starts_with(STARTUP_LOCALITY) {
                    startup_locality = Some(data[16]);
                }
                continue;
            }
            if pcr >= PCR_COUNT {
                return Err(format!("event log: an event for PCR {pcr}"));
            }
            let sha256 = sha256.ok_or("event log: an event without a SHA-256 digest")?;
            events.push(Event {
                pcr,
                event_type,
                sha256,
                data,
            });
        }
        Ok(EventLog {
            events,
            startup_locality,
        })
    }

    /// The SHA-256 PCR values the log claims: every PCR starts at zero (PCR 0 at the startup
    /// locality), each event extends its PCR.
    pub fn replay(&self) -> BTreeMap<u32, [u8; 32]> {
        let mut pcrs: BTreeMap<u32, [u8; 32]> = (0..PCR_COUNT).map(|i| (i, [0u8; 32])).collect();
        if let Some(l) = self.startup_locality {
            pcrs.insert(0, {
                let mut v = [0u8; 32];
                v[31] = l;
                v
            });
        }
        for e in &self.events {
            let old = pcrs[&e.pcr];
            let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
            ctx.update(&old);
            ctx.update(&e.sha256);
            pcrs.insert(e.pcr, ctx.finish().as_ref().try_into().expect("32 bytes"));
        }
        pcrs
    }
}

/// Writes a crypto-agile log with a SHA-256 bank only: what tests and `hgs tpm-baseline`'s
/// documentation use to make a log whose events are extended into a TPM by hand.
pub fn write(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut spec = SPEC_ID.to_vec();
    spec.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 2]); // client, 2.0, errata 0, uintn 8 bytes
    spec.extend_from_slice(&1u32.to_le_bytes());
    spec.extend_from_slice(&ALG_SHA256.to_le_bytes());
    spec.extend_from_slice(&32u16.to_le_bytes());
    spec.push(0); // vendorInfoSize
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&EV_NO_ACTION.to_le_bytes());
    out.extend_from_slice(&[0; 20]);
    out.extend_from_slice(&(spec.len() as u32).to_le_bytes());
    out.extend_from_slice(&spec);
    for e in events {
        out.extend_from_slice(&e.pcr.to_le_bytes());
        out.extend_from_slice(&e.event_type.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&ALG_SHA256.to_le_bytes());
        out.extend_from_slice(&e.sha256);
        out.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&e.data);
    }
    out
}

/// An event measuring `data` (its SHA-256) into `pcr`, of type EV_IPL (0x0d).
pub fn event(pcr: u32, data: &[u8]) -> Event {
    Event {
        pcr,
        event_type: 0x0d,
        sha256: aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
            .as_ref()
            .try_into()
            .expect("32 bytes"),
        data: data.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_log_reads_back_and_replays_as_extends_do() {
        let events = vec![
            event(0, b"firmware"),
            event(4, b"bootloader"),
            event(0, b"more"),
        ];
        let log = EventLog::parse(&write(&events)).unwrap();
        assert_eq!(log.events, events);
        let pcrs = log.replay();
        let extend = |old: [u8; 32], d: &[u8; 32]| -> [u8; 32] {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &[&old[..], &d[..]].concat())
                .as_ref()
                .try_into()
                .unwrap()
        };
        let p0 = extend(extend([0; 32], &events[0].sha256), &events[2].sha256);
        assert_eq!(pcrs[&0], p0);
        assert_eq!(pcrs[&4], extend([0; 32], &events[1].sha256));
        assert_eq!(pcrs[&7], [0; 32]);
    }

    #[test]
    fn every_truncation_of_a_log_is_refused_or_shorter_never_a_panic() {
        let bytes = write(&[event(0, b"a"), event(1, b"bb")]);
        for n in 0..bytes.len() {
            if let Ok(log) = EventLog::parse(&bytes[..n]) {
                assert!(log.events.len() < 2, "{n}");
            }
        }
    }

    #[test]
    fn a_log_without_the_spec_id_or_with_a_bad_pcr_is_refused() {
        let mut bytes = write(&[event(30, b"a")]);
        assert!(EventLog::parse(&bytes).unwrap_err().contains("PCR 30"));
        bytes[32] = b'X';
        assert!(
            EventLog::parse(&bytes)
                .unwrap_err()
                .contains("crypto-agile")
        );
        assert!(EventLog::parse(b"").is_err());
    }
}
