//! The bounded queue behind one asynchronous subscription: many publishers, one consumer task.
//!
//! It replaces a Tokio `mpsc` channel because the hand-off between publisher and subscriber
//! dominated asynchronous throughput. The queue is a `VecDeque` behind a `parking_lot` mutex that
//! each side takes once per push or per batch; the consumer spins briefly before it parks, and
//! publishers only wake it when it has actually parked (a flag they read without the lock), so a
//! steady stream of events costs no scheduler wake-up at all. Publishers that find the queue full
//! park on their own `Notify`, which the consumer only touches when someone is waiting.
//!
//! Correctness of both "park unless there is work" checks rests on the mutex: the parking side
//! raises its flag before it takes the lock to look at the queue, and the other side reads the flag
//! after it released the lock, so one of the two always sees the other.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use objectos_spec::Event;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// How many times an idle consumer re-checks the queue before it parks.
///
/// Parking costs a futex wake-up per event when publishers are only slightly slower than the
/// handler; a few microseconds of spinning bridge the gap between two consecutive events.
const SPIN_ROUNDS: u32 = 64;

/// Why an event could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The queue holds `capacity` events (counting reservations).
    Full,
    /// The subscription is gone: unsubscribed, or its task ended.
    Closed,
}

#[derive(Debug)]
struct State {
    items: VecDeque<Arc<Event>>,
    /// Slots promised to [`Permit`]s that have not sent yet.
    reserved: usize,
    /// The sender was dropped: the consumer drains what is left, then stops.
    closed: bool,
    /// The consumer is gone: nothing will ever be taken again.
    receiver_gone: bool,
}

impl State {
    fn room(&self, capacity: usize) -> usize {
        capacity.saturating_sub(self.items.len() + self.reserved)
    }

    fn refuses(&self) -> bool {
        self.closed || self.receiver_gone
    }
}

struct Queue {
    state: Mutex<State>,
    capacity: usize,
    /// A lock-free hint of `state.items.len()`, only used by the spinning consumer.
    len: AtomicUsize,
    consumer_parked: AtomicBool,
    data: Notify,
    producers_parked: AtomicBool,
    space: Notify,
}

impl Queue {
    /// Wakes the consumer if it parked; called after the lock was released.
    #[inline]
    fn wake_consumer(&self) {
        if self.consumer_parked.load(Ordering::SeqCst)
            && self.consumer_parked.swap(false, Ordering::SeqCst)
        {
            self.data.notify_one();
        }
    }

    /// Wakes every publisher waiting for room; called after the lock was released.
    #[inline]
    fn wake_producers(&self) {
        if self.producers_parked.load(Ordering::SeqCst)
            && self.producers_parked.swap(false, Ordering::SeqCst)
        {
            self.space.notify_waiters();
        }
    }

    /// Runs `attempt` under the lock until it yields a value, parking while it returns `None`.
    async fn wait_for<T>(
        &self,
        mut attempt: impl FnMut(&mut State) -> Result<Option<T>, PushError>,
    ) -> Result<T, PushError> {
        loop {
            if let Some(v) = attempt(&mut self.state.lock())? {
                return Ok(v);
            }
            let notified = self.space.notified();
            tokio::pin!(notified);
            // Registered before the flag goes up, so a consumer that sees the flag wakes us.
            notified.as_mut().enable();
            self.producers_parked.store(true, Ordering::SeqCst);
            if let Some(v) = attempt(&mut self.state.lock())? {
                return Ok(v);
            }
            notified.await;
        }
    }
}

/// Creates a queue holding at most `capacity` events (at least 1).
pub(crate) fn bounded(capacity: usize) -> (Sender, Receiver) {
    let capacity = capacity.max(1);
    let queue = Arc::new(Queue {
        state: Mutex::new(State {
            // Grows on demand: most subscriptions never see `capacity` events at once.
            items: VecDeque::new(),
            reserved: 0,
            closed: false,
            receiver_gone: false,
        }),
        capacity,
        len: AtomicUsize::new(0),
        consumer_parked: AtomicBool::new(false),
        data: Notify::new(),
        producers_parked: AtomicBool::new(false),
        space: Notify::new(),
    });
    (
        Sender {
            queue: queue.clone(),
        },
        Receiver { queue },
    )
}

/// The publishing side; dropping it lets the consumer drain and stop.
pub(crate) struct Sender {
    queue: Arc<Queue>,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &self.queue.capacity)
            .finish()
    }
}

impl Sender {
    /// Events queued and not yet taken (for [`crate::EventBus::stats`]).
    pub(crate) fn len(&self) -> usize {
        self.queue.state.lock().items.len()
    }

    /// Queues one event without waiting.
    pub(crate) fn try_push(&self, event: &Arc<Event>) -> Result<(), PushError> {
        {
            let mut st = self.queue.state.lock();
            if st.refuses() {
                return Err(PushError::Closed);
            }
            if st.room(self.queue.capacity) == 0 {
                return Err(PushError::Full);
            }
            st.items.push_back(event.clone());
            self.queue.len.store(st.items.len(), Ordering::Relaxed);
        }
        self.queue.wake_consumer();
        Ok(())
    }

    /// Queues as many of `events` as fit, in order, under one lock and with at most one wake-up.
    ///
    /// Returns how many were queued (possibly 0 when the queue is full).
    pub(crate) fn try_push_many(&self, events: &[Arc<Event>]) -> Result<usize, PushError> {
        let n = {
            let mut st = self.queue.state.lock();
            if st.refuses() {
                return Err(PushError::Closed);
            }
            let n = st.room(self.queue.capacity).min(events.len());
            st.items.extend(events[..n].iter().cloned());
            self.queue.len.store(st.items.len(), Ordering::Relaxed);
            n
        };
        if n > 0 {
            self.queue.wake_consumer();
        }
        Ok(n)
    }

    /// Queues one event, waiting while the queue is full.
    pub(crate) async fn push(&self, event: &Arc<Event>) -> Result<(), PushError> {
        match self.try_push(event) {
            Err(PushError::Full) => {}
            done => return done,
        }
        let capacity = self.queue.capacity;
        self.queue
            .wait_for(|st| {
                if st.refuses() {
                    return Err(PushError::Closed);
                }
                if st.room(capacity) == 0 {
                    return Ok(None);
                }
                st.items.push_back(event.clone());
                self.queue.len.store(st.items.len(), Ordering::Relaxed);
                Ok(Some(()))
            })
            .await?;
        self.queue.wake_consumer();
        Ok(())
    }

    /// Queues every event in order, waiting for room as needed; each chunk that fits is queued
    /// under one lock with at most one wake-up. Returns how many were queued: all of them unless
    /// the subscription went away meanwhile.
    pub(crate) async fn push_all(&self, events: &[Arc<Event>]) -> usize {
        let capacity = self.queue.capacity;
        let mut done = 0;
        while done < events.len() {
            let pending = &events[done..];
            let queued = self
                .queue
                .wait_for(|st| {
                    if st.refuses() {
                        return Err(PushError::Closed);
                    }
                    let n = st.room(capacity).min(pending.len());
                    if n == 0 {
                        return Ok(None);
                    }
                    st.items.extend(pending[..n].iter().cloned());
                    self.queue.len.store(st.items.len(), Ordering::Relaxed);
                    Ok(Some(n))
                })
                .await;
            match queued {
                Ok(n) => {
                    self.queue.wake_consumer();
                    done += n;
                }
                Err(_) => break,
            }
        }
        done
    }

    /// Reserves one slot without waiting; the slot is given back if the permit is dropped unsent.
    pub(crate) fn try_reserve(&self) -> Result<Permit<'_>, PushError> {
        let mut st = self.queue.state.lock();
        if st.refuses() {
            return Err(PushError::Closed);
        }
        if st.room(self.queue.capacity) == 0 {
            return Err(PushError::Full);
        }
        st.reserved += 1;
        Ok(Permit {
            queue: &self.queue,
            used: false,
        })
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.queue.state.lock().closed = true;
        // Unconditionally: a consumer between its flag and its `await` still finds the permit.
        self.queue.data.notify_one();
    }
}

/// One reserved slot of a queue.
pub(crate) struct Permit<'a> {
    queue: &'a Queue,
    used: bool,
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").field("used", &self.used).finish()
    }
}

impl Permit<'_> {
    /// Queues the event in the reserved slot.
    pub(crate) fn send(mut self, event: Arc<Event>) {
        self.used = true;
        {
            let mut st = self.queue.state.lock();
            st.reserved -= 1;
            // A consumer that went away in the meantime will never read it; dropping is right.
            if !st.receiver_gone {
                st.items.push_back(event);
                self.queue.len.store(st.items.len(), Ordering::Relaxed);
            }
        }
        self.queue.wake_consumer();
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.used {
            self.queue.state.lock().reserved -= 1;
            self.queue.wake_producers();
        }
    }
}

/// The consuming side, owned by the subscription's task.
pub(crate) struct Receiver {
    queue: Arc<Queue>,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("capacity", &self.queue.capacity)
            .finish()
    }
}

/// What the consumer found under the lock.
enum Taken {
    Some(usize),
    Empty,
    Finished,
}

impl Receiver {
    fn take(&self, buf: &mut Vec<Arc<Event>>, limit: usize) -> Taken {
        let taken = {
            let mut st = self.queue.state.lock();
            if st.items.is_empty() {
                return if st.closed {
                    Taken::Finished
                } else {
                    Taken::Empty
                };
            }
            let n = st.items.len().min(limit);
            buf.extend(st.items.drain(..n));
            self.queue.len.store(st.items.len(), Ordering::Relaxed);
            n
        };
        self.queue.wake_producers();
        Taken::Some(taken)
    }

    /// Appends up to `limit` events to `buf`, waiting for at least one; returns 0 once the sender
    /// is gone and the queue is drained.
    pub(crate) async fn recv_many(&mut self, buf: &mut Vec<Arc<Event>>, limit: usize) -> usize {
        let limit = limit.max(1);
        // Lets other tasks on this worker run now and then, as Tokio's own channels do.
        tokio::task::coop::consume_budget().await;
        loop {
            match self.take(buf, limit) {
                Taken::Some(n) => return n,
                Taken::Finished => return 0,
                Taken::Empty => {}
            }
            let mut spins = 0;
            while spins < SPIN_ROUNDS && self.queue.len.load(Ordering::Relaxed) == 0 {
                std::hint::spin_loop();
                spins += 1;
            }
            if spins < SPIN_ROUNDS {
                continue;
            }
            let notified = self.queue.data.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.queue.consumer_parked.store(true, Ordering::SeqCst);
            match self.take(buf, limit) {
                Taken::Some(n) => {
                    self.queue.consumer_parked.store(false, Ordering::SeqCst);
                    return n;
                }
                Taken::Finished => return 0,
                Taken::Empty => {}
            }
            notified.await;
            self.queue.consumer_parked.store(false, Ordering::SeqCst);
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let leftover = {
            let mut st = self.queue.state.lock();
            st.receiver_gone = true;
            self.queue.len.store(0, Ordering::Relaxed);
            std::mem::take(&mut st.items)
        };
        // Dropped outside the lock: dropping an event may run arbitrary destructors.
        drop(leftover);
        self.queue.space.notify_waiters();
    }
}
