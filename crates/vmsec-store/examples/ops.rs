//! Latency of the store's operations one at a time, on SQLite or on PostgreSQL: what a
//! request pays the store, without the server around it.
//!
//! `cargo run --release -p vmsec-store --example ops -- (DIR | postgres://…) [N]`

use std::time::Instant;

use time::OffsetDateTime;
use uuid::Uuid;
use vmsec_store::postgres::PgStore;
use vmsec_store::sqlite::SqliteStore;
use vmsec_store::*;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let target = args.first().expect("usage: ops (DIR | postgres://…) [N]");
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let store: Box<dyn Store> = if vmsec_store::postgres::is_url(target) {
        Box::new(PgStore::open(target, "ops").unwrap())
    } else {
        std::fs::create_dir_all(target).unwrap();
        Box::new(SqliteStore::open(format!("{target}/ops.db"), "ops").unwrap())
    };
    let vm = Vm {
        id: Uuid::new_v4(),
        name: format!("ops-{}", Uuid::new_v4()),
        created: OffsetDateTime::now_utc(),
    };
    store.add_vm(&vm).unwrap();
    store
        .update_vm_security(
            vm.id,
            "ops",
            &mut |s| {
                s.key_protector = Some(vec![7; 13_887]);
                Ok(())
            },
            None,
        )
        .unwrap();
    let record = AuditRecord {
        seq: 0,
        at: OffsetDateTime::now_utc(),
        actor: "ops".into(),
        operation: "GetKeyProtector".into(),
        vm: Some(vm.id),
        outcome: AuditOutcome::Succeeded,
        detail: String::new(),
    };
    let time = |what: &str, f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        println!(
            "{what:<24} {:>8.1} µs",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    };
    time("user (absent)", &mut || drop(store.user("nobody").unwrap()));
    time("vm_with_security", &mut || {
        drop(store.vm_with_security(vm.id).unwrap())
    });
    time("vm_summary", &mut || drop(store.vm_summary(vm.id).unwrap()));
    time("append_audit", &mut || {
        store.append_audit(&record).unwrap();
    });
}
