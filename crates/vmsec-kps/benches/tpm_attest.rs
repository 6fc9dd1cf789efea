//! TPM-mode attestation with real TPMs (a swtpm per host): the latency of both round trips
//! and attestations per second at 1 and 16 concurrent hosts, with the cost of the TPM's own
//! operations (ActivateCredential, Certify, Quote, loading the AK and IDK) and of the
//! service's verification measured beside them. Sans-IO: no HTTP, no store.
//!
//!   cargo bench -p vmsec-kps --bench tpm_attest [-- ROUNDS]
//!
//! Prints one table; BENCHMARKS.md ("TPM-mode attestation") has the figures.

use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant};

use aws_lc_rs::rsa::KeySize as RsaSize;
use time::{Duration, OffsetDateTime};
use vmsec_kps::fabric::{RegisteredHost, Registry};
use vmsec_kps::msgs::tpm::parse_challenge;
use vmsec_kps::tpm::client::{self, AttestingTpm};
use vmsec_kps::tpm::eventlog;
use vmsec_kps::tpm::service::TpmOutcome;
use vmsec_kps::tpm::wire::RsaPublic;
use vmsec_kps::tpm::{Baseline, TpmAttestation, TpmHost};
use vmsec_kps::{CertifiedKey, key_hash};
use vmsec_tpm::host::{HostTpm, KeyBlob, KeyHandle, SwtpmHost};
use zeroize::Zeroizing;

struct Fabric {
    hosts: Vec<TpmHost>,
    baseline: Baseline,
}

impl Registry for Fabric {
    fn host_by_key(&self, k: &str) -> Result<Option<RegisteredHost>, String> {
        Ok(self
            .hosts
            .iter()
            .find(|h| h.host.key_hash == k)
            .map(|h| h.host.clone()))
    }
    fn deny_before(&self) -> Result<Option<OffsetDateTime>, String> {
        Ok(None)
    }
    fn tpm_host_by_ek(&self, k: &str) -> Result<Option<TpmHost>, String> {
        Ok(self.hosts.iter().find(|h| h.host.key_hash == k).cloned())
    }
    fn tpm_baselines(&self) -> Result<Vec<(String, Baseline)>, String> {
        Ok(vec![("golden".into(), self.baseline.clone())])
    }
}

/// Fields drop in order: the TPM connection, swtpm (stopped through its pid file), the
/// directory.
struct Host {
    tpm: HostTpm,
    _swtpm: SwtpmHost,
    _dir: tempfile::TempDir,
    ak: KeyBlob,
    idk: KeyBlob,
    log: Vec<u8>,
}

/// The TPM's time, added up over one exchange.
#[derive(Default, Clone, Copy)]
struct Spent {
    tpm: StdDuration,
    service: StdDuration,
    total: StdDuration,
}

struct Timed<'a> {
    tpm: &'a mut HostTpm,
    ak: KeyHandle,
    idk: KeyHandle,
    spent: &'a mut StdDuration,
}

impl Timed<'_> {
    fn time<T>(&mut self, f: impl FnOnce(&mut HostTpm, KeyHandle, KeyHandle) -> T) -> T {
        let t = Instant::now();
        let out = f(self.tpm, self.ak, self.idk);
        *self.spent += t.elapsed();
        out
    }
}

impl AttestingTpm for Timed<'_> {
    fn activate_credential(&mut self, b: &[u8], s: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
        self.time(|t, ak, _| t.activate_credential(ak, b, s).map_err(|e| e.to_string()))
    }
    fn certify_idk(&mut self, n: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
        self.time(|t, ak, idk| {
            t.certify(idk, ak, n)
                .map(|s| (s.attest, s.signature))
                .map_err(|e| e.to_string())
        })
    }
    fn quote(&mut self, n: &[u8], p: &[u32]) -> Result<(Vec<u8>, Vec<u8>), String> {
        self.time(|t, ak, _| {
            t.quote(ak, n, p)
                .map(|s| (s.attest, s.signature))
                .map_err(|e| e.to_string())
        })
    }
}

fn attest(service: &TpmAttestation, signer: &CertifiedKey, fabric: &Fabric, h: &mut Host) -> Spent {
    let mut spent = Spent::default();
    let start = Instant::now();
    let t = Instant::now();
    let ek = h.tpm.ek_public().unwrap();
    let cert = h.tpm.ek_certificate();
    spent.tpm += t.elapsed();
    let body = client::begin_body(cert, ek, h.ak.public.clone()).unwrap();
    let now = OffsetDateTime::now_utc();
    let t = Instant::now();
    let reply = match service
        .attest(signer, Duration::hours(8), &body, now, "h", fabric)
        .unwrap()
    {
        TpmOutcome::Challenge { reply, .. } => reply,
        _ => unreachable!(),
    };
    spent.service += t.elapsed();
    let challenge = parse_challenge(&reply).unwrap();
    let t = Instant::now();
    let ak = h.tpm.load(&h.ak).unwrap();
    let idk = h.tpm.load(&h.idk).unwrap();
    spent.tpm += t.elapsed();
    let mut tpm_ops = StdDuration::ZERO;
    let body = {
        let mut timed = Timed {
            tpm: &mut h.tpm,
            ak,
            idk,
            spent: &mut tpm_ops,
        };
        client::finish_body(&mut timed, &challenge, h.idk.public.clone(), h.log.clone()).unwrap()
    };
    h.tpm.unload(ak);
    h.tpm.unload(idk);
    spent.tpm += tpm_ops;
    let t = Instant::now();
    match service
        .attest(signer, Duration::hours(8), &body, now, "h", fabric)
        .unwrap()
    {
        TpmOutcome::Issued(_) => {}
        _ => unreachable!(),
    }
    spent.service += t.elapsed();
    spent.total = start.elapsed();
    spent
}

fn median(mut v: Vec<StdDuration>) -> StdDuration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: StdDuration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10);
    // Every swtpm first: a swtpm started while a TPM connection is open inherits it.
    let mut hosts: Vec<(tempfile::TempDir, SwtpmHost)> = (0..16)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let s = SwtpmHost::start(&dir.path().join("tpm")).unwrap();
            (dir, s)
        })
        .collect();
    let events = [
        eventlog::event(0, b"firmware"),
        eventlog::event(4, b"bootloader"),
    ];
    let log = eventlog::write(&events);
    let mut fabric_hosts = Vec::new();
    let mut ready = Vec::new();
    let mut baseline = None;
    for (i, (dir, swtpm)) in hosts.drain(..).enumerate() {
        let mut tpm = HostTpm::open(&swtpm.tcti()).unwrap();
        for e in &events {
            tpm.extend_pcr(e.pcr, &e.sha256).unwrap();
        }
        let spki = RsaPublic::parse(&tpm.ek_public().unwrap())
            .unwrap()
            .spki()
            .unwrap();
        fabric_hosts.push(TpmHost {
            host: RegisteredHost {
                name: format!("h{i}"),
                key_hash: key_hash(&spki),
                host_key: spki,
            },
            ek_certificate: None,
        });
        if baseline.is_none() {
            baseline = Some(Baseline {
                pcrs: tpm.read_pcrs(&[0, 4, 7]).unwrap().into_iter().collect(),
                event_log_sha256: None,
            });
        }
        let ak = tpm.create_ak().unwrap();
        let idk = tpm.create_idk().unwrap();
        ready.push(Host {
            _dir: dir,
            _swtpm: swtpm,
            tpm,
            ak,
            idk,
            log: log.clone(),
        });
    }
    let fabric = Fabric {
        hosts: fabric_hosts,
        baseline: baseline.unwrap(),
    };
    let service = TpmAttestation::new(Vec::new());
    let signer = CertifiedKey::generate("signer", RsaSize::Rsa2048, true).unwrap();

    // One host, `rounds` attestations in a row.
    let mut one: Vec<Spent> = Vec::new();
    for _ in 0..rounds {
        one.push(attest(&service, &signer, &fabric, &mut ready[0]));
    }
    // Raw TPM operations once more each, alone.
    let h = &mut ready[0];
    let t = Instant::now();
    let ak = h.tpm.load(&h.ak).unwrap();
    let load = t.elapsed();
    let t = Instant::now();
    let s = h.tpm.quote(ak, &[7; 32], &[0, 4, 7]).unwrap();
    let quote = t.elapsed();
    let idk = h.tpm.load(&h.idk).unwrap();
    let t = Instant::now();
    h.tpm.certify(idk, ak, &[7; 32]).unwrap();
    let certify = t.elapsed();
    let ct = vmsec_kps::transport::encrypt(
        &RsaPublic::parse(&h.idk.public).unwrap().spki().unwrap(),
        vmsec_kps::Version::V2,
        &vmsec_kps::transport::TransportKeys {
            ingress: vmsec_kp::TransportKey::from_bytes([1; 32]),
            egress: vmsec_kp::TransportKey::from_bytes([2; 32]),
        },
    )
    .unwrap();
    let t = Instant::now();
    h.tpm.rsa_oaep_decrypt(idk, &ct.transfer_key).unwrap();
    let decrypt = t.elapsed();
    h.tpm.unload(ak);
    h.tpm.unload(idk);
    drop(s);

    // 16 hosts at once, each `rounds` attestations.
    let done = Mutex::new(Vec::new());
    let t = Instant::now();
    std::thread::scope(|scope| {
        for h in ready.iter_mut() {
            let (service, signer, fabric, done) = (&service, &signer, &fabric, &done);
            scope.spawn(move || {
                for _ in 0..rounds {
                    let s = attest(service, signer, fabric, h);
                    done.lock().unwrap().push(s);
                }
            });
        }
    });
    let wall16 = t.elapsed();
    let sixteen = done.into_inner().unwrap();

    let one_total: StdDuration = one.iter().map(|s| s.total).sum();
    println!("TPM-mode attestation, swtpm per host, {rounds} rounds per host");
    println!(
        "| hosts | attestation median (ms) | of it TPM (ms) | of it service (ms) | attestations/s |"
    );
    println!("|---|---|---|---|---|");
    for (n, v, wall) in [(1, &one, one_total), (16, &sixteen, wall16)] {
        println!(
            "| {n} | {:.1} | {:.1} | {:.1} | {:.1} |",
            ms(median(v.iter().map(|s| s.total).collect())),
            ms(median(v.iter().map(|s| s.tpm).collect())),
            ms(median(v.iter().map(|s| s.service).collect())),
            v.len() as f64 / wall.as_secs_f64()
        );
    }
    println!(
        "TPM operations alone (ms): load AK {:.1}, quote {:.1}, certify {:.1}, RSA_Decrypt {:.1}",
        ms(load),
        ms(quote),
        ms(certify),
        ms(decrypt)
    );
}
