//! Fills a data directory with VMs through the service, as a scale benchmark's generator:
//! each VM is added with `add_vm` and given the key protector with `SetKeyProtector` (a job
//! that parses and verifies it), exactly as a client would, only without the network.
//!
//! `cargo run --release -p vmsec-service --example fill -- DATA COUNT KP_FILE`
//!
//! With `VMSEC_STORE=postgres://…` the VMs go to that PostgreSQL store instead of DATA's
//! SQLite file (DATA still holds the master key).
//!
//! VM i is named `vm-<i>` with the GUID `00000000-0000-4000-8000-<i as 12 digits>`, so a load
//! generator can address any of them without a list. Reuses what is there: running it again
//! with a larger COUNT adds the missing VMs only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;
use vmsec_service::{Caller, MasterKey, Service};
use vmsec_store::Store;
use vmsec_store::postgres::PgStore;
use vmsec_store::sqlite::SqliteStore;

/// Jobs in flight at once: enough to keep the job workers and group commits busy.
const WINDOW: usize = 256;

fn main() {
    if let Err(e) = run() {
        eprintln!("fill: {e}");
        std::process::exit(1);
    }
}

fn vm_id(i: usize) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-4000-8000-{i:012}")).expect("a valid GUID")
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, count, kp_file] = args.as_slice() else {
        return Err("usage: fill DATA COUNT KP_FILE".into());
    };
    let count: usize = count.parse().map_err(|_| "COUNT must be a number")?;
    let kp = std::fs::read(kp_file).map_err(|e| format!("cannot read {kp_file}: {e}"))?;
    std::fs::create_dir_all(data)?;
    let data = std::path::Path::new(data);
    let store: Arc<dyn Store> = match std::env::var("VMSEC_STORE") {
        Ok(url) => Arc::new(PgStore::open(&url, "fill")?),
        Err(_) => Arc::new(SqliteStore::open(data.join("vmsec.db"), "fill")?),
    };
    let service = Service::open(store, MasterKey::at(data.join("master.key")))?;
    let who = Caller::local_admin();
    let have = service.vms(&who)?.len();
    let started = Instant::now();
    let mut in_flight = std::collections::VecDeque::new();
    for i in have..count {
        let id = vm_id(i);
        service.add_vm(&who, &format!("vm-{i}"), Some(id))?;
        in_flight.push_back(
            service
                .set_key_protector(&who, id.into(), kp.clone())?
                .instance_id,
        );
        if in_flight.len() >= WINDOW {
            finish(&service, &who, in_flight.pop_front())?;
        }
        if (i + 1) % 10_000 == 0 {
            eprintln!(
                "fill: {} VMs, {:.0}/s",
                i + 1,
                (i + 1 - have) as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    while let Some(job) = in_flight.pop_front() {
        finish(&service, &who, Some(job))?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "added {} VMs with key protectors in {secs:.1} s ({:.0}/s); {count} in the store",
        count - have,
        (count - have) as f64 / secs.max(1e-9)
    );
    service.shutdown();
    Ok(())
}

fn finish(
    service: &Service,
    who: &Caller,
    job: Option<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let Some(job) = job else { return Ok(()) };
    let done = service.wait_job(who, &job, Duration::from_secs(120))?;
    if done.error_code != 0 {
        return Err(format!("job {job} failed: {}", done.error_description).into());
    }
    Ok(())
}
