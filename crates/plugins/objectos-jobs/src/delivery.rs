//! The delivery seam: how committed jobs reach a worker.
//!
//! The job table is always the record of truth: a job exists when its row commits (in the
//! enqueuer's transaction or its own), and its state changes only through the table
//! (`JobTable::claim`/`claim_ids` to start, [`Core::run_claimed`] to record the outcome).
//! A [`Delivery`] only decides how a worker learns which row to claim:
//!
//! - [`Embedded`] (backend `embedded`): per queue, a loop claims batches of due rows from the
//!   table (`FOR UPDATE SKIP LOCKED` on PostgreSQL), woken at once by enqueues on this node
//!   and by polling for other nodes' enqueues.
//! - The RabbitMQ delivery (backend `rabbitmq`, `crate::amqp`): the table acts as the outbox.
//!   A relay takes committed pending rows (`JobTable::take_unrelayed`, which holds them against
//!   other nodes' relays), publishes them with publisher confirms and marks them
//!   (`JobTable::mark_relayed`); consumers claim the ids delivered together in one statement
//!   (`JobTable::claim_ids`: an id it does not return is a duplicate, acknowledged and
//!   dropped, or not due yet), run each through [`Core::run_claimed_recorded`] and acknowledge
//!   it once its outcome is written. A crash between commit and publish loses nothing: the
//!   row's hold expires and it is published on a later pass.
//!
//! What every delivery gets for free from the plugin's maintenance loop (`maintain`): lease
//! renewal of this node's running jobs, re-delivery of jobs whose worker's lease expired
//! (their `relayed_ms` is cleared so a relay publishes them again), promotion of scheduled
//! jobs that became due, cross-node cancel requests, pruning.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::core::Core;
use crate::error::Result;

/// How committed jobs reach this node's workers.
#[async_trait]
pub trait Delivery: Send + Sync + std::fmt::Debug + 'static {
    /// `embedded`, `rabbitmq`: shown in health and logs.
    fn name(&self) -> &'static str;

    /// Starts the delivery's tasks for `queues` (the configured queues plus the default);
    /// jobs of another queue are started too once a job of it is enqueued on this node
    /// ([`Delivery::wake`]). Must return promptly (spawn, don't await long work).
    async fn start(&self, core: Arc<Core>, queues: Vec<String>) -> Result<()>;

    /// Jobs of `queue` became pending (committed) on this node, or came due.
    fn wake(&self, queue: &str);

    /// Stops the tasks; jobs already running finish or come back after their lease.
    async fn stop(&self);

    /// `None` when healthy, else what is wrong (shown by `/health` as degraded).
    fn problem(&self) -> Option<String> {
        None
    }

    /// Facts about the delivery for `/health` (`details.transport`): for RabbitMQ the
    /// connection's state, last error, attempts and counters, the URL's password masked.
    fn details(&self) -> Option<serde_json::Value> {
        None
    }
}

/// The embedded delivery: workers claim from the table.
#[derive(Debug, Default)]
pub struct Embedded {
    state: Mutex<EmbeddedState>,
}

#[derive(Debug, Default)]
struct EmbeddedState {
    core: Option<Arc<Core>>,
    queues: HashMap<String, Arc<Notify>>,
    tasks: Vec<JoinHandle<()>>,
    stop: Option<watch::Sender<bool>>,
}

impl Embedded {
    pub fn new() -> Self {
        Self::default()
    }

    fn spawn_queue(state: &mut EmbeddedState, core: Arc<Core>, queue: String) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        let stop = match &state.stop {
            Some(s) => s.subscribe(),
            None => watch::channel(true).1,
        };
        state.queues.insert(queue.clone(), notify.clone());
        let task = tokio::spawn(queue_loop(core, queue, notify.clone(), stop));
        state.tasks.push(task);
        notify
    }
}

#[async_trait]
impl Delivery for Embedded {
    fn name(&self) -> &'static str {
        "embedded"
    }

    async fn start(&self, core: Arc<Core>, queues: Vec<String>) -> Result<()> {
        let mut state = self.state.lock();
        let (tx, _) = watch::channel(false);
        state.stop = Some(tx);
        state.core = Some(core.clone());
        for q in queues {
            if !state.queues.contains_key(&q) {
                Self::spawn_queue(&mut state, core.clone(), q);
            }
        }
        Ok(())
    }

    fn wake(&self, queue: &str) {
        let mut state = self.state.lock();
        if let Some(n) = state.queues.get(queue) {
            n.notify_one();
            return;
        }
        // A queue first seen now gets its workers on this node.
        if let Some(core) = state.core.clone() {
            let n = Self::spawn_queue(&mut state, core, queue.to_owned());
            n.notify_one();
        }
    }

    async fn stop(&self) {
        let tasks = {
            let mut state = self.state.lock();
            if let Some(stop) = state.stop.take() {
                let _ = stop.send(true);
            }
            state.core = None;
            state.queues.clear();
            std::mem::take(&mut state.tasks)
        };
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    }
}

/// One queue's claim loop. The queue's `workers` handler slots (the core's) bound the jobs
/// running at once; the loop claims ahead of them, so the next claim statement is on its way
/// while the last one's jobs run and a freed slot never waits for a claim round trip. It holds
/// at most `workers` plus one claim of jobs (claimed, not finished: the ones beyond the slots
/// wait for one under their lease, and a cancel reaches them there), claims at most
/// `min(batch_size, workers)` at a time, and claims once half a claim of room is free. It sleeps
/// until woken or the poll interval passes when the queue ran dry.
async fn queue_loop(
    core: Arc<Core>,
    queue: String,
    notify: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let workers = usize::try_from(core.settings.workers_of(&queue))
        .unwrap_or(16)
        .max(1);
    let batch = usize::try_from(core.settings.batch_size)
        .unwrap_or(256)
        .max(1);
    let claim_size = batch.min(workers);
    let room = Arc::new(Semaphore::new(workers + claim_size));
    let threshold = u32::try_from(claim_size.div_ceil(2)).unwrap_or(1);
    let poll = core.settings.poll_interval();
    loop {
        if *stop.borrow() {
            break;
        }
        let mut held = tokio::select! {
            p = room.clone().acquire_many_owned(threshold) => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        while held.num_permits() < claim_size {
            match room.clone().try_acquire_owned() {
                Ok(p) => held.merge(p),
                Err(_) => break,
            }
        }
        let want = held.num_permits();
        let claimed = match core
            .table
            .claim(
                &queue,
                u32::try_from(want).unwrap_or(1),
                &core.worker,
                core.lease_until(),
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(queue = %queue, error = %e, "Claiming jobs failed; retrying after the poll interval.");
                drop(held);
                tokio::select! {
                    () = tokio::time::sleep(poll) => {},
                    _ = stop.changed() => break,
                }
                continue;
            }
        };
        let ran_dry = claimed.len() < want;
        for job in claimed {
            let Some(one) = held.split(1) else { break };
            let core = core.clone();
            tokio::spawn(async move {
                core.run_claimed(job).await;
                drop(one);
            });
        }
        drop(held);
        if ran_dry {
            tokio::select! {
                () = notify.notified() => {},
                () = tokio::time::sleep(poll) => {},
                _ = stop.changed() => break,
            }
        }
    }
}
