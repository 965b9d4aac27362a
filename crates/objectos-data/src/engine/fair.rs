//! The writer lock of a SQLite file, handed on round-robin between organizations.
//!
//! A plain FIFO lock serves requests in arrival order, so an organization that keeps many
//! writes queued gets the writer that many times for every one write of a quiet organization
//! behind it. Here each organization (and internal work, as one more queue) waits in a queue of
//! its own, and the lock goes to the first waiter of each queue in turn: with two organizations
//! queued, a quiet one waits for at most one write of the busy one. Within an organization the
//! order stays FIFO. Uncontended, taking the lock is one short `std` mutex section.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// The lock; cheap to share through its `Arc`.
#[derive(Debug, Default)]
pub(crate) struct FairLock {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    held: bool,
    /// Queues with waiters, in turn order: the front queue's first waiter is next.
    queues: VecDeque<(String, VecDeque<oneshot::Sender<()>>)>,
}

/// Holding the writer; dropping it hands the writer to the next waiter in turn.
#[derive(Debug)]
pub(crate) struct WriterGuard {
    lock: Arc<FairLock>,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.lock.release();
    }
}

/// A waiter that was handed the writer but gave up before it noticed (its request was
/// cancelled) must pass the writer on, or nobody would ever get it again.
struct Waiting {
    lock: Arc<FairLock>,
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            // After `close` no grant can arrive any more; one that arrived before is ours.
            rx.close();
            if rx.try_recv().is_ok() {
                self.lock.release();
            }
        }
    }
}

impl FairLock {
    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the queues themselves stay consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the writer in `queue`'s turn (the organization, or "" for internal work).
    pub(crate) async fn acquire(self: &Arc<Self>, queue: Option<&str>) -> WriterGuard {
        let rx = {
            let mut st = self.state();
            if !st.held && st.queues.is_empty() {
                st.held = true;
                return WriterGuard { lock: self.clone() };
            }
            let key = queue.unwrap_or_default();
            let (tx, rx) = oneshot::channel();
            match st.queues.iter_mut().find(|(k, _)| k == key) {
                Some((_, q)) => q.push_back(tx),
                None => st.queues.push_back((key.to_owned(), VecDeque::from([tx]))),
            }
            rx
        };
        let mut waiting = Waiting {
            lock: self.clone(),
            rx: Some(rx),
        };
        if let Some(rx) = waiting.rx.as_mut() {
            // The sender only goes away unsent when the lock itself is dropped, which cannot
            // happen while `self` is borrowed here; either way the writer is then free.
            let _ = rx.await;
        }
        waiting.rx = None;
        WriterGuard { lock: self.clone() }
    }

    /// Hands the writer to the next waiter in turn, or marks it free.
    fn release(&self) {
        let mut st = self.state();
        while let Some((key, mut q)) = st.queues.pop_front() {
            let next = q.pop_front();
            if !q.is_empty() {
                // The queue goes to the back: every other organization waiting goes first.
                st.queues.push_back((key, q));
            }
            if let Some(tx) = next
                && tx.send(()).is_ok()
            {
                return;
            }
            // That waiter was cancelled: try the next one.
        }
        st.held = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_alternate_between_queues_and_stay_fifo_within_one() {
        let lock = Arc::new(FairLock::default());
        let first = lock.acquire(Some("busy")).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, q) in ["busy", "busy", "busy", "quiet", "busy", "quiet"]
            .into_iter()
            .enumerate()
        {
            let lock = lock.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let _g = lock.acquire(Some(q)).await;
                order.lock().unwrap().push(format!("{q}{i}"));
            }));
            // Queue them in this order.
            tokio::task::yield_now().await;
        }
        tokio::task::yield_now().await;
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            ["busy0", "quiet3", "busy1", "quiet5", "busy2", "busy4"]
        );
    }

    #[tokio::test]
    async fn a_cancelled_waiter_passes_the_writer_on() {
        let lock = Arc::new(FairLock::default());
        let held = lock.acquire(None).await;
        let l2 = lock.clone();
        let cancelled = tokio::spawn(async move {
            let _g = l2.acquire(Some("a")).await;
        });
        tokio::task::yield_now().await;
        let l3 = lock.clone();
        let later = tokio::spawn(async move {
            let _g = l3.acquire(Some("b")).await;
        });
        tokio::task::yield_now().await;
        cancelled.abort();
        let _ = cancelled.await;
        drop(held);
        later.await.unwrap();
        // And the lock is free again.
        drop(lock.acquire(None).await);
    }
}
