//! The job-queue contract (services `job` and `queue`): plugins register handlers by name and
//! enqueue work for them; a jobs plugin stores, schedules, retries and runs it.
//!
//! Delivery is at least once: a handler may run again for a job whose earlier run already did
//! its work (a worker that died before recording the result, a lease that expired), so
//! handlers must be idempotent. Enqueueing inside a caller's database transaction (the job
//! exists if and only if the record change commits) needs that transaction, which only the
//! data crate can name; it is `objectos_data::TransactionalJobQueue`, not part of this contract.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A job's id (sortable text, 20 characters).
pub type JobId = String;

/// The queue a job goes to when the request names none.
pub const DEFAULT_QUEUE: &str = "default";

/// How a failed job is retried: attempt `n` (1-based) that fails retryably waits
/// `min(backoff * multiplier^(n-1), max_delay)`, with jitter a random share of up to half of it
/// taken off, before attempt `n + 1`; after `max_attempts` attempts the job is dead-lettered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Delay before the second attempt.
    #[serde(with = "duration_ms")]
    pub backoff: Duration,
    /// Factor the delay grows by per attempt.
    pub multiplier: f64,
    /// Upper bound of one delay.
    #[serde(with = "duration_ms")]
    pub max_delay: Duration,
    /// Spreads retries of jobs that failed together.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Duration::from_secs(1),
            multiplier: 2.0,
            max_delay: Duration::from_secs(3600),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt `attempt` (1-based) before the next one, without jitter.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let factor = self.multiplier.max(1.0).powi(exp);
        let ms = (self.backoff.as_millis() as f64 * factor).min(self.max_delay.as_millis() as f64);
        if ms.is_finite() && ms > 0.0 {
            Duration::from_millis(ms as u64)
        } else {
            Duration::ZERO
        }
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// What to run, and how.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnqueueRequest {
    /// The registered handler's name (`audit.retention`).
    pub handler: String,
    /// Handed to the handler as it is.
    pub payload: serde_json::Value,
    /// The queue (its workers and concurrency limit); [`DEFAULT_QUEUE`] when `None`.
    pub queue: Option<String>,
    /// Higher runs first among jobs that are due.
    pub priority: i32,
    /// Not before this time (`None`: now).
    pub run_at: Option<DateTime<Utc>>,
    /// Not before this long from now (added to `run_at` when both are given).
    pub delay: Option<Duration>,
    /// A second enqueue with the same key while the first job is pending or running is a
    /// no-op that returns the first job's id.
    pub idempotency_key: Option<String>,
    /// `None`: the backend's default policy.
    pub retry: Option<RetryPolicy>,
    /// One attempt's time limit (`None`: the backend's default).
    pub timeout: Option<Duration>,
    /// The organization (tenant) the job works for, stored on its row: that organization's
    /// administrators see and manage it over `/api/v1/jobs` and `/api/v1/data/sys_job_run`.
    /// `None`: a system job (housekeeping, schedules), for platform administrators only. A
    /// plugin enqueuing for a tenant's record or request passes the tenant.
    pub organization_id: Option<String>,
}

impl EnqueueRequest {
    /// A request for `handler` with `payload` and every other setting at its default.
    pub fn new(handler: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            handler: handler.into(),
            payload,
            ..Self::default()
        }
    }
}

/// The answer to an enqueue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Enqueued {
    pub id: JobId,
    /// False when an existing job with the same idempotency key was returned instead.
    pub created: bool,
}

/// A job's state. `Scheduled` waits for its time (a delay or a retry's backoff), `Pending` is
/// due, `Dead` failed for good and waits in the dead-letter store for a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Scheduled,
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        Self::Scheduled,
        Self::Pending,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
        Self::Dead,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Dead => "dead",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Nothing more happens to the job by itself.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Cancelled | Self::Dead
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    pub id: JobId,
    pub handler: String,
    pub queue: String,
    pub status: JobStatus,
    pub priority: i32,
    pub payload: serde_json::Value,
    /// Attempts started so far.
    pub attempts: u32,
    pub max_attempts: u32,
    /// The last failure's message.
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    /// The job definition (`*.job.yml`) a scheduled run came from.
    pub schedule: Option<String>,
    pub cancel_requested: bool,
    pub created_at: DateTime<Utc>,
    /// When it is (or was) due.
    pub run_at: DateTime<Utc>,
    /// When the last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The node running it, while it runs.
    pub worker: Option<String>,
    /// The organization it works for (`None`: a system job).
    pub organization_id: Option<String>,
}

/// Which jobs [`JobQueue::list`] returns, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub queue: Option<String>,
    pub handler: Option<String>,
    /// Only the jobs of this organization (`None`: every job, with or without one).
    pub organization_id: Option<String>,
    /// At most this many (`0`: the backend's default page size).
    pub limit: u32,
    pub offset: u32,
}

/// A page of jobs and how many match the filter in all.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobPage {
    pub items: Vec<JobInfo>,
    pub total: u64,
}

/// Why a queue operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// No plugin registered a handler of that name.
    #[error("no job handler `{0}` is registered")]
    UnknownHandler(String),
    /// A handler of that name is registered already.
    #[error("job handler `{0}` is registered twice")]
    DuplicateHandler(String),
    #[error("job `{0}` not found")]
    NotFound(JobId),
    /// The operation does not apply to the job's current status (retrying a running job,
    /// cancelling a finished one).
    #[error("job `{id}` is {status}: {message}")]
    InvalidState {
        id: JobId,
        status: JobStatus,
        message: String,
    },
    /// The request itself is malformed; the message names the field.
    #[error("invalid job request: {0}")]
    Invalid(String),
    /// The handler refused the payload ([`JobHandler::validate`]); nothing was enqueued.
    #[error("invalid payload for job handler `{handler}`: {message}")]
    InvalidPayload { handler: String, message: String },
    /// The queue is not running yet (its plugin has not started).
    #[error("the job queue is not available: {0}")]
    Unavailable(String),
    /// The store or transport failed.
    #[error("job queue backend: {0}")]
    Backend(String),
}

/// A handler's failure: retried (per the job's policy) when `retryable`, else dead-lettered at
/// once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JobFailure {
    pub retryable: bool,
    pub message: String,
}

impl JobFailure {
    /// A failure worth another attempt (a timeout, an unreachable service).
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            message: message.into(),
        }
    }

    /// A failure another attempt would repeat (a malformed payload).
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
        }
    }
}

/// Set when the job is cancelled or its attempt times out; a long handler checks it (or awaits
/// [`CancelFlag::cancelled`]) and stops early. A handler that ignores it is dropped at its next
/// `.await` after the timeout anyway.
#[derive(Clone, Default)]
pub struct CancelFlag(Arc<CancelInner>);

#[derive(Default)]
struct CancelInner {
    set: AtomicBool,
    notify: tokio::sync::Notify,
}

impl fmt::Debug for CancelFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CancelFlag")
            .field(&self.is_cancelled())
            .finish()
    }
}

impl CancelFlag {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag and wakes every waiter.
    pub fn cancel(&self) {
        self.0.set.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.set.load(Ordering::SeqCst)
    }

    /// Returns once the flag is set.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// What a handler gets for one attempt.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub id: JobId,
    pub handler: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub payload: serde_json::Value,
    pub cancel: CancelFlag,
    /// When the attempt's time limit runs out.
    pub deadline: Option<Instant>,
    /// The job definition a scheduled run came from, and the tick it runs for.
    pub schedule: Option<String>,
}

/// The work behind a handler name. Runs at least once per job (see the module docs).
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn run(&self, cx: JobContext) -> Result<(), JobFailure>;

    /// Checks a payload before it is enqueued (or a schedule's payload at start), so a
    /// malformed one is refused to the caller with [`JobError::InvalidPayload`] instead of
    /// failing later in a worker; the message names the field. Accepts anything by default.
    fn validate(&self, payload: &serde_json::Value) -> Result<(), String> {
        let _ = payload;
        Ok(())
    }
}

/// A handler from an async closure.
pub fn handler_fn<F, Fut>(f: F) -> Arc<dyn JobHandler>
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), JobFailure>> + Send + 'static,
{
    struct FnHandler<F>(F);

    #[async_trait]
    impl<F, Fut> JobHandler for FnHandler<F>
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), JobFailure>> + Send + 'static,
    {
        async fn run(&self, cx: JobContext) -> Result<(), JobFailure> {
            (self.0)(cx).await
        }
    }

    Arc::new(FnHandler(f))
}

/// A schedule a plugin installs for its own handler (an operator's schedules are `*.job.yml`
/// files): one run per tick, once across the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltinSchedule {
    /// Unique among schedules (`audit.retention`).
    pub name: String,
    pub handler: String,
    /// How often it runs.
    pub every: Duration,
    pub payload: serde_json::Value,
}

/// A plugin's periodic housekeeping as [`run_every`] set it up. Stopping or dropping it stops
/// the local timer when that is what runs the work (a schedule on the job queue lives as long
/// as the queue).
#[derive(Debug, Default)]
pub struct Periodic {
    timer: Option<tokio::task::JoinHandle<()>>,
}

impl Periodic {
    /// True when the work runs on a timer on this node rather than as a scheduled job.
    pub fn on_local_timer(&self) -> bool {
        self.timer.is_some()
    }

    /// Stops the local timer, if any.
    pub fn stop(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
    }
}

impl Drop for Periodic {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `work` every `every` under `name` (`audit.retention`): with a job queue, as a handler
/// of that name on a built-in schedule, so it runs once per tick across the cluster with the
/// queue's retries; without one, or when the queue refuses the schedule (the name is taken),
/// on a timer on this node, where a failure is logged and waits for the next tick. Call it
/// from the plugin's `start` (handlers register then). Needs a Tokio runtime.
pub fn run_every<F, Fut>(
    queue: Option<&Arc<dyn JobQueue>>,
    name: &str,
    every: Duration,
    work: F,
) -> Periodic
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), JobFailure>> + Send + 'static,
{
    let work = Arc::new(work);
    if let Some(queue) = queue {
        let job_work = Arc::clone(&work);
        let installed = queue
            .register_handler(name, handler_fn(move |_cx| (job_work)()))
            .and_then(|()| {
                queue.schedule(BuiltinSchedule {
                    name: name.to_owned(),
                    handler: name.to_owned(),
                    every,
                    payload: serde_json::Value::Null,
                })
            });
        match installed {
            Ok(()) => return Periodic::default(),
            Err(error) => tracing::warn!(
                schedule = name,
                %error,
                "Could not schedule this work as a job; running it on a timer on this node."
            ),
        }
    }
    let name = name.to_owned();
    let timer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(failure) = (work)().await {
                tracing::warn!(schedule = %name, error = %failure.message, "Periodic work failed; trying again at the next tick.");
            }
        }
    });
    Periodic { timer: Some(timer) }
}

/// The job queue. Handlers are registered at the owning plugin's `start` (the registry is
/// frozen after `init`), before the plugin enqueues anything for them.
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Registers `handler` under `name`; a name is registered once.
    fn register_handler(&self, name: &str, handler: Arc<dyn JobHandler>) -> Result<(), JobError>;

    /// Every registered handler name.
    fn handlers(&self) -> Vec<String>;

    /// Installs a recurring run of a registered handler.
    fn schedule(&self, schedule: BuiltinSchedule) -> Result<(), JobError>;

    /// Stores a job (or, for a repeated idempotency key, returns the first one's id).
    async fn enqueue(&self, request: EnqueueRequest) -> Result<Enqueued, JobError>;

    async fn get(&self, id: &str) -> Result<Option<JobInfo>, JobError>;

    /// Cancels a scheduled, pending or running job (a running handler sees its
    /// [`CancelFlag`]); a finished job is an [`JobError::InvalidState`].
    async fn cancel(&self, id: &str) -> Result<JobInfo, JobError>;

    /// Runs a failed, dead or cancelled job again with fresh attempts; a scheduled, pending,
    /// running or completed one is an [`JobError::InvalidState`].
    async fn retry(&self, id: &str) -> Result<JobInfo, JobError>;

    async fn list(&self, filter: JobFilter) -> Result<JobPage, JobError>;

    /// The dead-letter store: jobs whose attempts are used up or that failed fatally.
    async fn dead_letters(&self, limit: u32, offset: u32) -> Result<JobPage, JobError> {
        self.list(JobFilter {
            status: Some(JobStatus::Dead),
            limit,
            offset,
            ..JobFilter::default()
        })
        .await
    }

    /// Runs a dead job again; any other status is an [`JobError::InvalidState`].
    async fn replay(&self, id: &str) -> Result<JobInfo, JobError>;

    /// Counts per status, for health and dashboards.
    async fn counts(&self) -> Result<BTreeMap<String, u64>, JobError>;
}
