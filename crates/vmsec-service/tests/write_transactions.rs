//! What the service does inside a store write transaction: only bounded work. Parsing and
//! verifying a key protector happen before the transaction opens, so a hostile one cannot
//! hold the writer every other request waits for.

mod support;

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;
use vmsec_service::{MasterKey, Service};
use vmsec_store::sqlite::SqliteStore;
use vmsec_store::*;

use support::{admin, kp};

thread_local! {
    /// Whether this thread is inside [`Recording::update_vm_security`], i.e. inside (or
    /// about to open) the store's write transaction.
    static IN_WRITE: Cell<bool> = const { Cell::new(false) };
}

/// Every "key protector verified" event of this test binary, with whether it happened
/// inside a write transaction.
static VERIFIED: Mutex<Vec<bool>> = Mutex::new(Vec::new());

/// Records verification events; the service emits one when `key_protector::check` succeeds.
struct Events;

impl tracing::Subscriber for Events {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() == "vmsec_service::key_protector" {
            VERIFIED.lock().unwrap().push(IN_WRITE.with(|w| w.get()));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn install_events() {
    // Several tests share the binary; the first one installs it.
    let _ = tracing::subscriber::set_global_default(Events);
}

/// The SQLite store, counting the write transactions of `update_vm_security` and marking
/// the thread while one is open.
struct Recording {
    inner: SqliteStore,
    updates: AtomicUsize,
}

impl Store for Recording {
    fn host(&self) -> Result<HostIdentity, StoreError> {
        self.inner.host()
    }
    fn add_user(&self, user: &User) -> Result<(), StoreError> {
        self.inner.add_user(user)
    }
    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.inner.user(name)
    }
    fn users(&self) -> Result<Vec<User>, StoreError> {
        self.inner.users()
    }
    fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        self.inner.remove_user(name)
    }
    fn update_user(&self, user: &User) -> Result<bool, StoreError> {
        self.inner.update_user(user)
    }
    fn add_vm_with_security(&self, vm: &Vm, security: &VmSecurity) -> Result<(), StoreError> {
        self.inner.add_vm_with_security(vm, security)
    }
    fn vm(&self, id: Uuid) -> Result<Option<Vm>, StoreError> {
        self.inner.vm(id)
    }
    fn vm_by_name(&self, name: &str) -> Result<Option<Vm>, StoreError> {
        self.inner.vm_by_name(name)
    }
    fn vms(&self) -> Result<Vec<Vm>, StoreError> {
        self.inner.vms()
    }
    fn vms_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Vm>, StoreError> {
        self.inner.vms_after(after, limit)
    }
    fn remove_vm(&self, id: Uuid) -> Result<bool, StoreError> {
        self.inner.remove_vm(id)
    }
    fn vm_security(&self, id: Uuid) -> Result<VmSecurity, StoreError> {
        self.inner.vm_security(id)
    }
    fn vm_with_security(&self, id: Uuid) -> Result<Option<(Vm, VmSecurity)>, StoreError> {
        self.inner.vm_with_security(id)
    }
    fn vms_with_security_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Vm, VmSecurity)>, StoreError> {
        self.inner.vms_with_security_after(after, limit)
    }
    fn vm_summary(&self, id: Uuid) -> Result<Option<VmSummary>, StoreError> {
        self.inner.vm_summary(id)
    }
    fn vm_summaries_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<VmSummary>, StoreError> {
        self.inner.vm_summaries_after(after, limit)
    }
    fn update_vm_security(
        &self,
        id: Uuid,
        actor: &str,
        change: &mut dyn FnMut(&mut VmSecurity) -> Result<(), Rejection>,
        finish: Option<JobDone<'_>>,
    ) -> Result<VmSecurity, UpdateError> {
        self.updates.fetch_add(1, Ordering::SeqCst);
        IN_WRITE.with(|w| w.set(true));
        let out = self.inner.update_vm_security(id, actor, change, finish);
        IN_WRITE.with(|w| w.set(false));
        out
    }
    fn update_vm_security_fenced(
        &self,
        id: Uuid,
        actor: &str,
        lease: &VmLease,
        change: &mut dyn FnMut(&mut VmSecurity) -> Result<(), Rejection>,
    ) -> Result<VmSecurity, UpdateError> {
        self.updates.fetch_add(1, Ordering::SeqCst);
        IN_WRITE.with(|w| w.set(true));
        let out = self
            .inner
            .update_vm_security_fenced(id, actor, lease, change);
        IN_WRITE.with(|w| w.set(false));
        out
    }
    fn hosts(&self) -> Result<Vec<HostRecord>, StoreError> {
        self.inner.hosts()
    }
    fn touch_host(&self) -> Result<(), StoreError> {
        self.inner.touch_host()
    }
    fn acquire_vm_lease(&self, vm: Uuid, ttl: std::time::Duration) -> Result<VmLease, StoreError> {
        self.inner.acquire_vm_lease(vm, ttl)
    }
    fn renew_vm_lease(&self, l: &VmLease, ttl: std::time::Duration) -> Result<VmLease, StoreError> {
        self.inner.renew_vm_lease(l, ttl)
    }
    fn release_vm_lease(&self, vm: Uuid, token: Option<i64>) -> Result<bool, StoreError> {
        self.inner.release_vm_lease(vm, token)
    }
    fn vm_lease(&self, vm: Uuid) -> Result<Option<LeaseInfo>, StoreError> {
        self.inner.vm_lease(vm)
    }
    fn kp_history(&self, id: Uuid) -> Result<Vec<KpHistoryEntry>, StoreError> {
        self.inner.kp_history(id)
    }
    fn insert_job(&self, job: &Job) -> Result<(), StoreError> {
        self.inner.insert_job(job)
    }
    fn update_job(&self, job: &Job) -> Result<(), StoreError> {
        self.inner.update_job(job)
    }
    fn job(&self, instance_id: &str) -> Result<Option<Job>, StoreError> {
        self.inner.job(instance_id)
    }
    fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.inner.jobs()
    }
    fn jobs_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Job>, StoreError> {
        self.inner.jobs_after(after, limit)
    }
    fn unfinished_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.inner.unfinished_jobs()
    }
    fn remove_expired_jobs(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        self.inner.remove_expired_jobs(now)
    }
    fn add_guardian(&self, guardian: &GuardianRecord) -> Result<(), StoreError> {
        self.inner.add_guardian(guardian)
    }
    fn guardian(&self, name: &str) -> Result<Option<GuardianRecord>, StoreError> {
        self.inner.guardian(name)
    }
    fn guardians(&self) -> Result<Vec<GuardianRecord>, StoreError> {
        self.inner.guardians()
    }
    fn remove_guardian(&self, name: &str) -> Result<bool, StoreError> {
        self.inner.remove_guardian(name)
    }
    fn key_protectors(&self) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError> {
        self.inner.key_protectors()
    }
    fn append_audit(&self, record: &AuditRecord) -> Result<i64, StoreError> {
        self.inner.append_audit(record)
    }
    fn audit(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit(after, limit)
    }
    fn audit_query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit_query(query)
    }
    fn prune_audit(
        &self,
        retention: &AuditRetention,
        now: OffsetDateTime,
        batch: usize,
        actor: &str,
    ) -> Result<Vec<AuditPruned>, StoreError> {
        self.inner.prune_audit(retention, now, batch, actor)
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<Recording>,
    service: Service,
}

fn rig() -> Rig {
    install_events();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Recording {
        inner: SqliteStore::open(dir.path().join("vmsec.db"), "testhost").unwrap(),
        updates: AtomicUsize::new(0),
    });
    let service =
        Service::open(store.clone(), MasterKey::at(dir.path().join("master.key"))).unwrap();
    Rig {
        _dir: dir,
        store,
        service,
    }
}

fn set_kp(r: &Rig, vm: &Vm, kp: Vec<u8>) -> Job {
    let started = r
        .service
        .set_key_protector(&admin(), vm.id.into(), kp)
        .unwrap();
    r.service
        .wait_job(&admin(), &started.instance_id, Duration::from_secs(30))
        .unwrap()
}

#[test]
fn an_invalid_key_protector_fails_its_job_without_opening_a_write_transaction() {
    let r = rig();
    let vm = r.service.add_vm(&admin(), "a", None).unwrap();
    // Well-formed XML that fails late: a KP whose signature does not verify costs the parse
    // and the cryptography, which is what a hostile client would make the writer wait for.
    let golden = String::from_utf8(kp(1)).unwrap();
    let at = golden.find("<SigningCertificate>").unwrap() + "<SigningCertificate>".len() + 40;
    let mut forged = golden.into_bytes();
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    for bad in [b"<Protector xmlns=\"urn:wrong\"/>".to_vec(), forged] {
        let job = set_kp(&r, &vm, bad);
        assert_eq!(job.state, JobState::Exception);
        assert_eq!(job.error_code, 32773, "{}", job.error_description);
        assert!(
            job.error_description
                .starts_with("the key protector is malformed")
                || job
                    .error_description
                    .starts_with("the key protector does not verify"),
            "the same error text as before: {}",
            job.error_description
        );
    }
    assert_eq!(
        r.store.updates.load(Ordering::SeqCst),
        0,
        "a key protector that fails its check never reaches the store's write transaction"
    );
    let failed: Vec<_> = r
        .store
        .audit(0, 100)
        .unwrap()
        .into_iter()
        .filter(|a| a.operation == "SetKeyProtector" && a.outcome == AuditOutcome::Failed)
        .collect();
    assert_eq!(failed.len(), 2, "each failed job is still audited");
}

#[test]
fn a_valid_key_protector_is_verified_before_the_write_transaction() {
    let r = rig();
    let vm = r.service.add_vm(&admin(), "b", None).unwrap();
    let job = set_kp(&r, &vm, kp(2));
    assert_eq!(job.state, JobState::Completed, "{}", job.error_description);
    assert_eq!(r.store.updates.load(Ordering::SeqCst), 1);
    assert_eq!(
        r.store.vm_security(vm.id).unwrap().key_protector,
        Some(kp(2))
    );
    let events = VERIFIED.lock().unwrap().clone();
    assert!(!events.is_empty(), "the verification was seen");
    assert!(
        events.iter().all(|inside| !inside),
        "a key protector was verified inside a write transaction: {events:?}"
    );
}
