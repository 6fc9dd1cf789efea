//! Group commit: callers that each need an item made durable share one transaction.
//!
//! Every call of the service writes an audit record before it answers, and each transaction
//! costs an fsync. Under concurrent load the callers that arrive while one transaction is
//! being written queue here; a caller that finds no commit running becomes the leader and
//! writes everything queued in one transaction, then lets go, and one of those who queued
//! meanwhile leads the next. A caller returns only once its own item is committed (or its
//! batch failed), so durability per call is unchanged; only the number of commits falls.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

pub(crate) struct GroupCommit<I, R, E> {
    state: Mutex<State<I, R, E>>,
    done: Condvar,
}

struct State<I, R, E> {
    pending: Vec<(u64, I)>,
    next_ticket: u64,
    leading: bool,
    results: HashMap<u64, Result<R, E>>,
}

impl<I, R, E: Clone> GroupCommit<I, R, E> {
    pub(crate) fn new() -> Self {
        GroupCommit {
            state: Mutex::new(State {
                pending: Vec::new(),
                next_ticket: 0,
                leading: false,
                results: HashMap::new(),
            }),
            done: Condvar::new(),
        }
    }

    /// Whether no batch is being committed and none is queued (asked without waiting: a
    /// queue being looked at by another caller counts as busy).
    pub(crate) fn is_idle(&self) -> bool {
        self.state
            .try_lock()
            .is_ok_and(|st| !st.leading && st.pending.is_empty())
    }

    /// Makes `item` durable through `commit`, which gets a batch and returns one result per
    /// item in order, or one error for the whole batch.
    pub(crate) fn submit(
        &self,
        item: I,
        commit: impl Fn(Vec<I>) -> Result<Vec<R>, E>,
        lost: impl Fn() -> E,
    ) -> Result<R, E> {
        let mut st = self.lock();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.pending.push((ticket, item));
        loop {
            if let Some(result) = st.results.remove(&ticket) {
                return result;
            }
            if st.leading {
                st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Lead one batch (it holds this caller's item: items leave `pending` only with a
            // leader, who answers for them before letting go), then let go, so that under
            // steady load no caller keeps committing for others.
            st.leading = true;
            let batch = std::mem::take(&mut st.pending);
            let tickets: Vec<u64> = batch.iter().map(|(t, _)| *t).collect();
            drop(st);
            // Should `commit` panic, the guard answers the batch with an error and lets go of
            // the lead, so no waiter is left waiting forever.
            let mut guard = Abandon {
                queue: self,
                own: ticket,
                tickets: &tickets,
                lost: &lost,
                armed: true,
            };
            let outcome = commit(batch.into_iter().map(|(_, item)| item).collect());
            guard.armed = false;
            st = self.lock();
            match outcome {
                Ok(results) if results.len() == tickets.len() => {
                    for (t, r) in tickets.iter().zip(results) {
                        st.results.insert(*t, Ok(r));
                    }
                }
                Ok(_) => {
                    for t in &tickets {
                        st.results.insert(*t, Err(lost()));
                    }
                }
                Err(e) => {
                    for t in &tickets {
                        st.results.insert(*t, Err(e.clone()));
                    }
                }
            }
            st.leading = false;
            self.done.notify_all();
            if !tickets.contains(&ticket) {
                // Cannot happen (see above); answer rather than wait for nobody.
                return Err(lost());
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<I, R, E>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Abandon<'a, I, R, E: Clone, L: Fn() -> E> {
    queue: &'a GroupCommit<I, R, E>,
    own: u64,
    tickets: &'a [u64],
    lost: &'a L,
    armed: bool,
}

impl<I, R, E: Clone, L: Fn() -> E> Drop for Abandon<'_, I, R, E, L> {
    fn drop(&mut self) {
        if self.armed {
            let mut st = self.queue.lock();
            for t in self.tickets.iter().filter(|t| **t != self.own) {
                st.results.insert(*t, Err((self.lost)()));
            }
            st.leading = false;
            self.queue.done.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn concurrent_callers_each_get_their_own_result_and_share_commits() {
        let queue = Arc::new(GroupCommit::<u32, u32, String>::new());
        let commits = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..32u32)
            .map(|i| {
                let (queue, commits) = (queue.clone(), commits.clone());
                std::thread::spawn(move || {
                    queue.submit(
                        i,
                        |batch| {
                            commits.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(5));
                            Ok(batch.into_iter().map(|x| x * 10).collect())
                        },
                        || "lost".to_owned(),
                    )
                })
            })
            .collect();
        for (i, t) in threads.into_iter().enumerate() {
            assert_eq!(t.join().unwrap(), Ok(i as u32 * 10));
        }
        assert!(
            commits.load(Ordering::SeqCst) < 32,
            "some commits were shared"
        );
    }

    #[test]
    fn the_queue_is_idle_only_while_no_batch_is_being_committed() {
        let queue = GroupCommit::<u32, u32, String>::new();
        assert!(queue.is_idle());
        let during = std::cell::Cell::new(None);
        let r = queue.submit(
            1,
            |batch| {
                during.set(Some(queue.is_idle()));
                Ok(batch)
            },
            || "lost".into(),
        );
        assert_eq!((r, during.get()), (Ok(1), Some(false)));
        assert!(queue.is_idle());
    }

    #[test]
    fn a_failed_commit_fails_every_item_of_its_batch_and_the_next_call_works() {
        let queue = GroupCommit::<u32, u32, String>::new();
        let r = queue.submit(1, |_| Err("disk full".to_owned()), || "lost".into());
        assert_eq!(r, Err("disk full".to_owned()));
        let r = queue.submit(2, Ok, || "lost".into());
        assert_eq!(r, Ok(2));
    }

    #[test]
    fn a_commit_that_answers_for_fewer_items_is_an_error_not_a_wrong_result() {
        let queue = GroupCommit::<u32, u32, String>::new();
        let r = queue.submit(1, |_| Ok(vec![]), || "lost".into());
        assert_eq!(r, Err("lost".to_owned()));
    }

    #[test]
    fn a_panicking_commit_releases_the_lead() {
        let queue = Arc::new(GroupCommit::<u32, u32, String>::new());
        let q = queue.clone();
        let panicked =
            std::thread::spawn(move || q.submit(1, |_| panic!("boom"), || "lost".into())).join();
        assert!(panicked.is_err());
        assert_eq!(queue.submit(2, Ok, || "lost".into()), Ok(2));
    }
}
