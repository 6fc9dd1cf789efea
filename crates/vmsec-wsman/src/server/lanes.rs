//! The threads that serve connections: one runtime of one worker per core (a lane), each
//! connection served on one lane from its TLS handshake to its close, as nginx's workers
//! keep theirs.
//!
//! On one runtime with a worker per core, a connection moved between the workers at every
//! request: the worker parked in the I/O driver takes the next event while the one that
//! answered the last request parks, and each wake-up also woke the other worker to look
//! for work (~3 thread wake-ups per GetKeyProtector at one connection; nginx ~1). Every
//! wake-up is a chance to wait for a core another process holds. A new connection goes to
//! the lane with the fewest open, so that load spreads without moving connections.
//!
//! A lane is a multi-threaded runtime of one worker, not a current-thread one, so that a
//! store that blocks on the network (PostgreSQL) can still hand the lane's other
//! connections to a new worker while it waits (`block_in_place`).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Runtime};

pub(super) struct Lanes {
    lanes: Vec<Lane>,
}

struct Lane {
    /// Always `Some` but in `drop`.
    runtime: Option<Runtime>,
    /// Connections being served on this lane.
    open: Arc<AtomicUsize>,
}

impl Lanes {
    /// Starts `n` lanes (at least one).
    pub(super) fn start(n: usize) -> io::Result<Lanes> {
        let lanes = (0..n.max(1))
            .map(|i| {
                let runtime = Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name(format!("wsman-lane-{i}"))
                    .enable_all()
                    .build()?;
                Ok(Lane {
                    runtime: Some(runtime),
                    open: Arc::new(AtomicUsize::new(0)),
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Lanes { lanes })
    }

    /// Runs `serve` (one connection) on the lane that has the fewest open.
    pub(super) fn spawn(&self, serve: impl Future<Output = ()> + Send + 'static) {
        let Some((lane, runtime)) = self
            .lanes
            .iter()
            .filter_map(|l| Some((l, l.runtime.as_ref()?)))
            .min_by_key(|(l, _)| l.open.load(Ordering::Relaxed))
        else {
            return;
        };
        lane.open.fetch_add(1, Ordering::Relaxed);
        let open = Counted(lane.open.clone());
        runtime.spawn(async move {
            let _open = open;
            serve.await
        });
    }
}

/// One open connection of a lane's count, until dropped (also when its task is cancelled).
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Lanes {
    /// Stops every lane: connections still open are closed, as the end of the process would
    /// close them. Not waited for: this may run on another runtime, which must not block.
    fn drop(&mut self) {
        for lane in &mut self.lanes {
            if let Some(r) = lane.runtime.take() {
                r.shutdown_background();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_connection_goes_to_the_lane_with_the_fewest_open_and_leaves_its_count_when_done() {
        let lanes = Lanes::start(2).unwrap();
        let (release, held) = tokio::sync::watch::channel(false);
        let hold = |mut held: tokio::sync::watch::Receiver<bool>| async move {
            let _ = held.wait_for(|r| *r).await;
        };
        let open = |lanes: &Lanes| {
            lanes
                .lanes
                .iter()
                .map(|l| l.open.load(Ordering::Relaxed))
                .collect::<Vec<_>>()
        };
        for _ in 0..3 {
            lanes.spawn(hold(held.clone()));
        }
        assert_eq!(open(&lanes), [2, 1]);
        release.send(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while open(&lanes) != [0, 0] {
            assert!(std::time::Instant::now() < deadline, "{:?}", open(&lanes));
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn connections_are_served_on_the_lanes_threads() {
        let lanes = Lanes::start(2).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..4 {
            let tx = tx.clone();
            lanes.spawn(async move {
                tx.send(std::thread::current().name().map(str::to_owned))
                    .unwrap();
            });
        }
        let mut names: Vec<_> = (0..4).map(|_| rx.recv().unwrap().unwrap()).collect();
        names.sort();
        names.dedup();
        assert!(
            names.iter().all(|n| n.starts_with("wsman-lane-")),
            "{names:?}"
        );
        assert!(names.len() <= 2, "{names:?}");
    }
}
