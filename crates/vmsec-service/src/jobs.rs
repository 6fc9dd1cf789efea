//! The job runner: mutating methods return 4096 at once and their work runs here.
//!
//! Jobs of one VM run in submission order because every job of a VM goes to the same worker
//! (chosen by the VM's GUID); jobs of different VMs run side by side. A job's change and its
//! completion are stored in one transaction, so after a crash a job still marked running
//! changed nothing, and recovery can say so.

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use uuid::Uuid;
use vmsec_store::{Job, JobOwner, JobState, Role, Store};

use crate::{Caller, Method, ServiceError};

/// How long a finished job stays visible, as Hyper-V's default TimeBeforeRemoval.
pub const TIME_BEFORE_REMOVAL: time::Duration = time::Duration::minutes(5);

const WORKERS: usize = 4;

/// A job's work: given the job as it will be stored on success, it applies its change and
/// stores that job in the same transaction.
pub(crate) type Work = Box<dyn FnOnce(&Job) -> Result<(), ServiceError> + Send>;

struct Queued {
    job: Job,
    method: Method,
    work: Work,
}

/// Notifies waiters that some job finished.
#[derive(Default)]
struct Finished {
    generation: Mutex<u64>,
    changed: Condvar,
}

pub(crate) struct JobRunner {
    store: Arc<dyn Store>,
    senders: Mutex<Option<Vec<mpsc::Sender<Queued>>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    finished: Arc<Finished>,
}

impl JobRunner {
    pub(crate) fn start(store: Arc<dyn Store>) -> JobRunner {
        let finished = Arc::new(Finished::default());
        let mut senders = Vec::with_capacity(WORKERS);
        let mut workers = Vec::with_capacity(WORKERS);
        for i in 0..WORKERS {
            let (tx, rx) = mpsc::channel::<Queued>();
            let store = store.clone();
            let finished = finished.clone();
            let handle = std::thread::Builder::new()
                .name(format!("vmsec-job-{i}"))
                .spawn(move || {
                    for q in rx {
                        run_one(store.as_ref(), q);
                        let mut g = finished
                            .generation
                            .lock()
                            .unwrap_or_else(|p| p.into_inner());
                        *g += 1;
                        finished.changed.notify_all();
                    }
                });
            match handle {
                Ok(h) => {
                    senders.push(tx);
                    workers.push(h);
                }
                Err(e) => tracing::error!("cannot start job worker {i}: {e}"),
            }
        }
        JobRunner {
            store,
            senders: Mutex::new(Some(senders)),
            workers: Mutex::new(workers),
            finished,
        }
    }

    /// Records a new job and queues its work. Returns the job's InstanceID.
    pub(crate) fn submit(
        &self,
        method: Method,
        vm: Uuid,
        submitted_by: &str,
        owner: &JobOwner,
        work: Work,
    ) -> Result<String, ServiceError> {
        let senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        let Some(senders) = senders.as_ref().filter(|s| !s.is_empty()) else {
            return Err(ServiceError::ServiceStopped);
        };
        // Stamped under the lock, so TimeSubmitted orders jobs as the queues do.
        let job = Job {
            instance_id: Uuid::new_v4().to_string().to_uppercase(),
            method: method.name().to_owned(),
            vm: Some(vm),
            state: JobState::New,
            error_code: 0,
            error_description: String::new(),
            percent_complete: 0,
            submitted_by: submitted_by.to_owned(),
            time_submitted: OffsetDateTime::now_utc(),
            start_time: None,
            finish_time: None,
            time_before_removal: TIME_BEFORE_REMOVAL,
            owner: owner.clone(),
        };
        self.store.insert_job(&job)?;
        let id = job.instance_id.clone();
        let worker = (vm.as_u128() % senders.len() as u128) as usize;
        senders[worker]
            .send(Queued { job, method, work })
            .map_err(|_| ServiceError::Internal("the job worker has stopped".into()))?;
        Ok(id)
    }

    /// Waits until the job is finished or `timeout` passes, and returns it as stored.
    pub(crate) fn wait(&self, instance_id: &str, timeout: Duration) -> Result<Job, ServiceError> {
        let deadline = Instant::now() + timeout;
        let mut seen = *self
            .finished
            .generation
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        loop {
            let job = self
                .store
                .job(instance_id)?
                .ok_or_else(|| ServiceError::NotFound(format!("job {instance_id} not found")))?;
            if job.state.is_finished() {
                return Ok(job);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ServiceError::Timeout(format!(
                    "job {instance_id} is still {}",
                    job.state.name()
                )));
            }
            let g = self
                .finished
                .generation
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // Another process may finish the job, so wake up now and then to look.
            let wait = (deadline - now).min(Duration::from_millis(200));
            let (g, _) = self
                .finished
                .changed
                .wait_timeout_while(g, wait, |g| *g == seen)
                .unwrap_or_else(|p| p.into_inner());
            seen = *g;
        }
    }

    /// Stops taking jobs, finishes the queued ones and waits for the workers.
    pub(crate) fn shutdown(&self) {
        drop(
            self.senders
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in workers {
            let _ = w.join();
        }
    }
}

impl Drop for JobRunner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run_one(store: &dyn Store, q: Queued) {
    let Queued {
        mut job,
        method,
        work,
    } = q;
    job.state = JobState::Running;
    job.start_time = Some(OffsetDateTime::now_utc());
    if let Err(e) = store.update_job(&job) {
        tracing::error!(job = %job.instance_id, "cannot mark job running: {e}");
    }
    let mut done = job.clone();
    done.state = JobState::Completed;
    done.percent_complete = 100;
    done.finish_time = Some(OffsetDateTime::now_utc());
    // A panic in the work must not leave the job running forever nor kill the worker.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&done)))
        .unwrap_or_else(|_| Err(ServiceError::Internal("the job's work panicked".into())));
    match outcome {
        Ok(()) => {
            tracing::info!(job = %job.instance_id, method = method.name(), "job completed");
        }
        Err(e) => {
            job.state = JobState::Exception;
            job.error_code = method.return_code(&e);
            job.error_description = e.to_string();
            job.percent_complete = 100;
            job.finish_time = Some(OffsetDateTime::now_utc());
            tracing::info!(job = %job.instance_id, method = method.name(), code = job.error_code, "job failed: {e}");
            if let Err(se) = store.update_job(&job) {
                tracing::error!(job = %job.instance_id, "cannot record job failure: {se}");
            }
        }
    }
}

/// This process as a job owner.
pub(crate) fn this_process(host: Uuid) -> JobOwner {
    let pid = std::process::id();
    JobOwner {
        host,
        pid,
        start_ticks: process_start_ticks(pid).unwrap_or(0),
    }
}

/// Whether the process that owns a job on this host still runs.
pub(crate) fn is_alive(owner: &JobOwner) -> bool {
    process_start_ticks(owner.pid) == Some(owner.start_ticks)
}

/// Field 22 of `/proc/PID/stat`: the process's start time in clock ticks after boot.
fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself hold spaces and ')'.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// A host of a shared store that has not been seen for this long is taken to be gone, and
/// its unfinished jobs are recovered by the others. A live `vmsec serve` says it is alive
/// every [`HEARTBEAT_EVERY`]; a CLI process says so when it opens the store.
pub const HOST_GONE_AFTER: time::Duration = time::Duration::minutes(2);
/// How often `vmsec serve` tells a shared store that its host is alive.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Marks as failed every unfinished job whose owner is gone: a process of this host that
/// ended, or (on a shared store) a host not seen for [`HOST_GONE_AFTER`]. Jobs of live
/// hosts are never touched: only their owner can tell whether its process still runs.
pub(crate) fn recover_interrupted(store: &dyn Store, host: Uuid) -> Result<usize, ServiceError> {
    let mut recovered = 0;
    let gone_hosts: Vec<Uuid> = if store.is_shared() {
        let cutoff = OffsetDateTime::now_utc() - HOST_GONE_AFTER;
        store
            .hosts()?
            .into_iter()
            .filter(|h| h.guid != host && h.last_seen < cutoff)
            .map(|h| h.guid)
            .collect()
    } else {
        Vec::new()
    };
    for mut job in store.unfinished_jobs()? {
        let gone = if job.owner.host == host {
            !is_alive(&job.owner)
        } else {
            gone_hosts.contains(&job.owner.host)
        };
        if !gone {
            continue;
        }
        job.state = JobState::Exception;
        let method = Method::from_name(&job.method).unwrap_or(Method::SetKeyProtector);
        job.error_code = method.return_code(&ServiceError::Internal(String::new()));
        job.error_description = format!(
            "interrupted: the vmsec process that ran this job (pid {} on host {}) ended before \
             it finished; nothing of it was applied",
            job.owner.pid, job.owner.host
        );
        job.percent_complete = 100;
        job.finish_time = Some(OffsetDateTime::now_utc());
        store.update_job(&job)?;
        tracing::warn!(job = %job.instance_id, "{}", job.error_description);
        recovered += 1;
    }
    Ok(recovered)
}

/// What callers ask of jobs.
impl crate::Service {
    /// Jobs by state, for monitoring.
    pub fn job_counts(&self) -> Result<Vec<(vmsec_store::JobState, usize)>, ServiceError> {
        let mut counts = std::collections::HashMap::new();
        for j in self.store.jobs()? {
            *counts.entry(j.state).or_insert(0) += 1;
        }
        let mut out: Vec<_> = counts.into_iter().collect();
        out.sort_by_key(|(s, _)| s.code());
        Ok(out)
    }

    pub fn job(&self, who: &Caller, instance_id: &str) -> Result<Job, ServiceError> {
        who.require(Role::Reader, "reading a job")?;
        self.store
            .job(instance_id)?
            .ok_or_else(|| ServiceError::NotFound(format!("no job {instance_id}")))
    }

    pub fn jobs(&self, who: &Caller) -> Result<Vec<Job>, ServiceError> {
        who.require(Role::Reader, "listing jobs")?;
        self.store.remove_expired_jobs(OffsetDateTime::now_utc())?;
        Ok(self.store.jobs()?)
    }

    /// Waits for a job to finish (see [`Job::state`]) at most `timeout`.
    pub fn wait_job(
        &self,
        who: &Caller,
        instance_id: &str,
        timeout: Duration,
    ) -> Result<Job, ServiceError> {
        who.require(Role::Reader, "reading a job")?;
        self.runner.wait(instance_id, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = this_process(Uuid::nil());
        assert!(me.start_ticks > 0);
        assert!(is_alive(&me));
        let reused = JobOwner {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(!is_alive(&reused));
    }
}
