//! The queue's shared state on one node ([`Core`]): the handlers, the job table, the jobs
//! running here with their cancel flags, and [`Core::run_claimed`], which runs one claimed job
//! (timeout, cancellation, panic capture) and records its outcome. Every delivery (the
//! embedded workers, a transport's consumers) hands claimed jobs to it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use objectos_kernel::contracts::{CancelFlag, JobContext, JobFailure, JobHandler, JobStatus};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::config::JobsSettings;
use crate::table::{Claimed, JobTable, now_ms};

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// Written as a retry, a dead letter or a cancellation.
    Failed(JobStatus),
    /// The worker no longer held the job (its lease expired and another took it).
    Lost,
}

/// A finished job waiting for the batched completion write.
#[derive(Debug)]
pub(crate) struct Completion {
    pub(crate) id: String,
    pub(crate) keyed: bool,
    /// Told once the write committed (true) or finally failed (false): a transport
    /// acknowledges its message only after the row says `completed`.
    pub(crate) written: Option<oneshot::Sender<bool>>,
}

/// How often a failed completion write is tried again before the jobs are left to their
/// leases (and run again): a deadlock or a dropped connection clears within these tries.
const COMPLETE_TRIES: u32 = 5;
/// The pause before the first retry of a completion write; doubled for each further one.
const COMPLETE_RETRY: Duration = Duration::from_millis(50);

/// One node's queue state.
pub struct Core {
    pub(crate) settings: JobsSettings,
    pub(crate) table: JobTable,
    /// This node's worker identity: the cluster node id plus a per-start suffix, so a
    /// restarted node never mistakes its predecessor's leases for its own.
    pub(crate) worker: String,
    pub(crate) handlers: Arc<RwLock<HashMap<String, Arc<dyn JobHandler>>>>,
    running: Mutex<HashMap<String, CancelFlag>>,
    /// Per queue, the handlers a transport may run at once (`workers`): a transport holds
    /// more claimed deliveries than that (its prefetch), and a slot covers the handler only,
    /// not the wait for the completion write, so the writes of many jobs share a statement.
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    completions: mpsc::UnboundedSender<Completion>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("worker", &self.worker)
            .field("running", &self.running.lock().len())
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A core and the receiving end of its completion channel (drained by
    /// [`Core::complete_loop`]).
    pub(crate) fn new(
        settings: JobsSettings,
        table: JobTable,
        node: &str,
        handlers: Arc<RwLock<HashMap<String, Arc<dyn JobHandler>>>>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Completion>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let core = Arc::new(Self {
            settings,
            table,
            worker: format!("{node}/{}", &suffix[..8]),
            handlers,
            running: Mutex::new(HashMap::new()),
            slots: Mutex::new(HashMap::new()),
            completions: tx,
        });
        (core, rx)
    }

    pub fn table(&self) -> &JobTable {
        &self.table
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    pub fn settings(&self) -> &JobsSettings {
        &self.settings
    }

    /// Epoch ms a lease taken now runs until.
    pub fn lease_until(&self) -> i64 {
        now_ms() + i64::try_from(self.settings.lease_ms).unwrap_or(i64::MAX / 2)
    }

    /// Jobs running on this node now.
    pub fn running(&self) -> usize {
        self.running.lock().len()
    }

    /// Sets the cancel flag of `id` if it runs here; true when it did.
    pub(crate) fn cancel_local(&self, id: &str) -> bool {
        match self.running.lock().get(id) {
            Some(flag) => {
                flag.cancel();
                true
            }
            None => false,
        }
    }

    /// Runs one claimed job and records the outcome: the handler waits for one of the queue's
    /// `workers` slots, held until it returns; a completion goes to the batched writer (the row
    /// stays `running`, under its lease, until that write), a failure is written at once.
    pub async fn run_claimed(&self, job: Claimed) -> Outcome {
        self.run_in_slot(job, false).await
    }

    /// Puts `id` in the running map with a fresh cancel flag, from the moment it is claimed:
    /// a cancel (local, or forwarded by the heartbeat) reaches it from then on, also while it
    /// waits for a handler slot.
    fn track(&self, id: &str) -> CancelFlag {
        let cancel = CancelFlag::new();
        self.running.lock().insert(id.to_owned(), cancel.clone());
        cancel
    }

    /// [`Core::run_claimed`], returning only once the outcome is in the table: what a
    /// transport needs before it acknowledges the message (a completion the batch writer could
    /// not record is [`Outcome::Lost`], so the message is not acknowledged as done). The
    /// handler waits for one of the queue's `workers` slots, held until it returns.
    pub async fn run_claimed_recorded(&self, job: Claimed) -> Outcome {
        self.run_in_slot(job, true).await
    }

    /// Tracks `job`, waits for a handler slot of its queue and runs it; with `wait_for_write`,
    /// returns only once the outcome is in the table.
    async fn run_in_slot(&self, job: Claimed, wait_for_write: bool) -> Outcome {
        let cancel = self.track(&job.id);
        let slots = self.queue_slots(&job.queue);
        // A cancel while it waits for a slot ends the wait: the job is recorded as cancelled
        // without running, instead of holding its claim until a slot frees up. The semaphore
        // is never closed; without a permit the job still runs (unbounded).
        let permit = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            p = slots.acquire_owned() => p.ok(),
        };
        self.run_claimed_with(job, cancel, wait_for_write, permit)
            .await
    }

    /// The handler slots of `queue` (its `workers`), created on first use.
    fn queue_slots(&self, queue: &str) -> Arc<Semaphore> {
        let mut slots = self.slots.lock();
        if let Some(s) = slots.get(queue) {
            return Arc::clone(s);
        }
        let workers = usize::try_from(self.settings.workers_of(queue))
            .unwrap_or(16)
            .max(1);
        let s = Arc::new(Semaphore::new(workers));
        slots.insert(queue.to_owned(), Arc::clone(&s));
        s
    }

    /// Runs `job`, already in the running map under `cancel` ([`Core::track`]); a job
    /// cancelled before this point is recorded as cancelled without running its handler.
    async fn run_claimed_with(
        &self,
        job: Claimed,
        cancel: CancelFlag,
        wait_for_write: bool,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Outcome {
        let handler = self.handlers.read().get(&job.handler).cloned();
        let timeout_ms = if job.timeout_ms > 0 {
            u64::try_from(job.timeout_ms).unwrap_or(u64::MAX)
        } else {
            self.settings.default_timeout_ms
        };
        let timeout = Duration::from_millis(timeout_ms.max(1));
        let mut timed_out = false;
        let began = Instant::now();
        let result = match handler {
            _ if cancel.is_cancelled() => Err(JobFailure::fatal("cancelled")),
            None => Err(JobFailure::retry(format!(
                "no handler `{}` is registered on node {}",
                job.handler, self.worker
            ))),
            Some(handler) => {
                crate::metrics::started(&job.handler);
                let payload = serde_json::from_str(&job.payload).unwrap_or(serde_json::Value::Null);
                let cx = JobContext {
                    id: job.id.clone(),
                    handler: job.handler.clone(),
                    attempt: job.attempt,
                    payload,
                    cancel: cancel.clone(),
                    deadline: Instant::now().checked_add(timeout),
                    schedule: job.schedule.clone(),
                };
                // One span per attempt (debug: exported only with metrics.tracing on), a child
                // of the enqueuing request's span when the row carries its `traceparent`
                // (docs/observability.md, "Trace context"), else the root of a trace.
                let span = tracing::debug_span!(
                    "job.run",
                    handler = %job.handler,
                    attempt = job.attempt,
                    trace_id = tracing::field::Empty,
                );
                objectos_kernel::trace::continue_remote(&span, job.traceparent.as_deref(), None);
                let run = tracing::Instrument::instrument(
                    std::panic::AssertUnwindSafe(handler.run(cx)).catch_unwind(),
                    span,
                );
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => Err(JobFailure::fatal("cancelled")),
                    r = tokio::time::timeout(timeout, run) => match r {
                        Ok(Ok(r)) => r,
                        Ok(Err(_)) => Err(JobFailure::retry("the handler panicked")),
                        Err(_) => {
                            timed_out = true;
                            cancel.cancel();
                            Err(JobFailure::retry(format!("timed out after {timeout_ms} ms")))
                        }
                    },
                }
            }
        };
        // A cancel requested while the handler ran wins over its result: a handler that saw
        // the flag and returned early did not finish its work.
        let cancelled = cancel.is_cancelled() && !timed_out;
        let result = if cancelled {
            Err(JobFailure::fatal("cancelled"))
        } else {
            result
        };
        self.running.lock().remove(&job.id);
        // The handler is done: the next job may start while this one's outcome is written.
        drop(slot);
        let elapsed = began.elapsed();
        match result {
            Ok(()) => {
                let keyed = job.idempotency_key.is_some();
                let (tx, rx) = if wait_for_write {
                    let (tx, rx) = oneshot::channel();
                    (Some(tx), Some(rx))
                } else {
                    (None, None)
                };
                let sent = self.completions.send(Completion {
                    id: job.id.clone(),
                    keyed,
                    written: tx,
                });
                let recorded = match (sent, rx) {
                    (Ok(()), Some(rx)) => rx.await.unwrap_or(false),
                    (Ok(()), None) => true,
                    // The completion writer is gone (shutting down): write this one directly.
                    (Err(_), _) => match self
                        .table
                        .complete(&self.worker, &[(job.id.clone(), keyed)])
                        .await
                    {
                        Ok(_) => true,
                        Err(e) => {
                            tracing::warn!(job = %job.id, error = %e, "Could not record a completed job; it runs again after its lease.");
                            false
                        }
                    },
                };
                if recorded {
                    crate::metrics::finished(&job.handler, elapsed, true, false);
                    Outcome::Completed
                } else {
                    Outcome::Lost
                }
            }
            Err(failure) => {
                let outcome = self.record_failure(&job, &failure, cancelled).await;
                if let Outcome::Failed(status) = &outcome {
                    crate::metrics::finished(
                        &job.handler,
                        elapsed,
                        false,
                        *status == JobStatus::Dead,
                    );
                }
                outcome
            }
        }
    }

    async fn record_failure(
        &self,
        job: &Claimed,
        failure: &JobFailure,
        cancelled: bool,
    ) -> Outcome {
        let retry_in = (failure.retryable && !cancelled && job.attempt < job.max_attempts)
            .then(|| backoff_ms(job));
        match self
            .table
            .fail(&self.worker, job, &failure.message, retry_in, cancelled)
            .await
        {
            Ok(Some(status)) => {
                if status == JobStatus::Dead {
                    tracing::warn!(job = %job.id, handler = %job.handler, attempts = job.attempt, error = %failure.message, "Job dead-lettered.");
                } else {
                    tracing::debug!(job = %job.id, handler = %job.handler, attempt = job.attempt, error = %failure.message, status = %status, "Job attempt failed.");
                }
                Outcome::Failed(status)
            }
            Ok(None) => Outcome::Lost,
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "Could not record a failed job attempt; it comes back after its lease.");
                Outcome::Lost
            }
        }
    }

    /// Writes completions in batches: what arrived while the last write ran goes in the next
    /// statement, so the write rate adapts to the completion rate. Ends when every sender
    /// (the core) is gone.
    pub(crate) async fn complete_loop(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<Completion>,
    ) {
        let max = usize::try_from(self.settings.batch_size)
            .unwrap_or(256)
            .max(1);
        let mut batch: Vec<(String, bool)> = Vec::with_capacity(max);
        let mut waiters: Vec<oneshot::Sender<bool>> = Vec::new();
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(c) = next.take() {
                batch.push((c.id, c.keyed));
                waiters.extend(c.written);
                if batch.len() < max {
                    next = rx.try_recv().ok();
                }
            }
            let written = self.complete_with_retries(&batch).await;
            for w in waiters.drain(..) {
                let _ = w.send(written);
            }
            batch.clear();
        }
    }

    /// Writes one batch of completions, trying again with a growing pause when the database
    /// refuses (PostgreSQL can abort a statement as a deadlock victim or lose a connection);
    /// false once every try failed, when the jobs run again after their leases.
    async fn complete_with_retries(&self, batch: &[(String, bool)]) -> bool {
        let mut pause = COMPLETE_RETRY;
        for attempt in 1..=COMPLETE_TRIES {
            match self.table.complete(&self.worker, batch).await {
                Ok(_) => return true,
                Err(e) if attempt < COMPLETE_TRIES => {
                    tracing::debug!(jobs = batch.len(), attempt, error = %e, "Recording completed jobs failed; trying again.");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => {
                    tracing::warn!(jobs = batch.len(), error = %e, "Could not record completed jobs; they run again after their leases.");
                }
            }
        }
        false
    }
}

/// The delay before the next attempt of `job`, with the policy's jitter.
pub(crate) fn backoff_ms(job: &Claimed) -> i64 {
    let base = job.retry.delay_after(job.attempt);
    let ms = i64::try_from(base.as_millis()).unwrap_or(i64::MAX / 2);
    if job.retry.jitter && ms > 1 {
        // Up to half of the delay taken off, so jobs that failed together spread out.
        let r = uuid::Uuid::new_v4().as_u128() as u64;
        let span = u64::try_from(ms / 2).unwrap_or(0).max(1);
        ms - i64::try_from(r % span).unwrap_or(0)
    } else {
        ms
    }
}
