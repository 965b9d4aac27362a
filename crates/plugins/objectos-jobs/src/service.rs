//! [`JobsService`]: the object registered as `job` (`dyn JobQueue`) and `queue`
//! (`dyn TransactionalJobQueue`): handler registry, enqueue (also inside a caller's
//! transaction), the admin operations, and the link to the running delivery.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use objectos_data::TransactionalJobQueue;
use objectos_data::store::Store;
use objectos_kernel::contracts::{
    BuiltinSchedule, DEFAULT_QUEUE, EnqueueRequest, Enqueued, JobError, JobFilter, JobHandler,
    JobInfo, JobPage, JobQueue, JobStatus,
};
use parking_lot::{Mutex, RwLock};

use crate::config::JobsSettings;
use crate::core::Core;
use crate::delivery::Delivery;
use crate::table::{NewJob, invalid_state, now_ms};

/// A new job id: a UUID v7 without dashes (32 hex digits, ascending with time).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// What exists once the plugin has started.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) core: Arc<Core>,
    pub(crate) delivery: Arc<dyn Delivery>,
}

/// The job queue of one node.
pub struct JobsService {
    settings: JobsSettings,
    pub(crate) handlers: Arc<RwLock<HashMap<String, Arc<dyn JobHandler>>>>,
    builtin: Mutex<Vec<BuiltinSchedule>>,
    pub(crate) running: OnceLock<Running>,
    /// Problems found after start (unknown handlers of schedules), for health.
    pub(crate) problems: Mutex<Vec<String>>,
}

impl std::fmt::Debug for JobsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobsService")
            .field("handlers", &self.handlers.read().keys().collect::<Vec<_>>())
            .field("started", &self.running.get().is_some())
            .finish_non_exhaustive()
    }
}

fn valid_queue(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl JobsService {
    pub fn new(settings: JobsSettings) -> Self {
        Self {
            settings,
            handlers: Arc::new(RwLock::new(HashMap::new())),
            builtin: Mutex::new(Vec::new()),
            running: OnceLock::new(),
            problems: Mutex::new(Vec::new()),
        }
    }

    pub fn settings(&self) -> &JobsSettings {
        &self.settings
    }

    pub(crate) fn core(&self) -> Result<&Arc<Core>, JobError> {
        self.running
            .get()
            .map(|r| &r.core)
            .ok_or_else(|| JobError::Unavailable("com.objectos.jobs has not started".into()))
    }

    pub(crate) fn builtin_schedules(&self) -> Vec<BuiltinSchedule> {
        self.builtin.lock().clone()
    }

    pub(crate) fn handlers_set(&self) -> BTreeSet<String> {
        self.handlers.read().keys().cloned().collect()
    }

    /// The delivery's name (`embedded`, `rabbitmq`) once started.
    pub fn backend(&self) -> Option<&'static str> {
        self.running.get().map(|r| r.delivery.name())
    }

    /// Checks every schedule's handler against the registered ones, and its payload against
    /// its handler (at `kernel.ready`, when every plugin has registered its handlers); the
    /// problems are logged with the file and kept for health. Returns them.
    pub fn check_schedules(&self) -> Vec<String> {
        let Some(r) = self.running.get() else {
            return Vec::new();
        };
        let plans = crate::schedule::planned(self, &r.core);
        let mut lines = crate::schedule::unknown_handlers(&plans, &self.handlers_set());
        lines.extend(crate::schedule::invalid_payloads(
            &plans,
            &self.handlers.read(),
        ));
        for line in &lines {
            tracing::error!(problem = %line, "Job schedule refers to an unknown handler; it will not run.");
        }
        *self.problems.lock() = lines.clone();
        lines
    }

    /// Jobs running on this node.
    pub fn running_here(&self) -> usize {
        self.running.get().map_or(0, |r| r.core.running())
    }

    /// Wakes `queue`'s workers on this node.
    pub fn wake_queue(&self, queue: &str) {
        if let Some(r) = self.running.get() {
            r.delivery.wake(queue);
        }
    }

    fn new_job(&self, request: EnqueueRequest) -> Result<NewJob, JobError> {
        if request.handler.trim().is_empty() {
            return Err(JobError::Invalid("`handler` must not be empty".into()));
        }
        let handler = self.handlers.read().get(&request.handler).cloned();
        let Some(handler) = handler else {
            return Err(JobError::UnknownHandler(request.handler));
        };
        if let Err(message) = handler.validate(&request.payload) {
            return Err(JobError::InvalidPayload {
                handler: request.handler,
                message,
            });
        }
        let queue = request.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_owned());
        if !valid_queue(&queue) {
            return Err(JobError::Invalid(format!(
                "queue `{queue}`: expected 1-64 letters, digits, `_`, `-` or `.`"
            )));
        }
        if let Some(k) = &request.idempotency_key
            && (k.is_empty() || k.len() > 255)
        {
            return Err(JobError::Invalid(
                "`idempotency_key` must be 1-255 characters".into(),
            ));
        }
        if let Some(o) = &request.organization_id
            && (o.is_empty() || o.len() > 255 || o.chars().any(char::is_control))
        {
            return Err(JobError::Invalid(
                "`organization_id` must be 1-255 characters without control characters".into(),
            ));
        }
        let retry = request
            .retry
            .unwrap_or_else(|| self.settings.retry.policy());
        if retry.max_attempts == 0 {
            return Err(JobError::Invalid(
                "`retry.max_attempts` must be at least 1".into(),
            ));
        }
        let payload = serde_json::to_string(&request.payload)
            .map_err(|e| JobError::Invalid(format!("payload: {e}")))?;
        let mut run_at = request.run_at.map_or_else(now_ms, |t| t.timestamp_millis());
        if let Some(d) = request.delay {
            run_at = run_at.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2));
        }
        let timeout_ms = request.timeout.map_or(0, |t| {
            i64::try_from(t.as_millis()).unwrap_or(i64::MAX).max(1)
        });
        Ok(NewJob {
            id: new_id(),
            handler: request.handler,
            queue,
            priority: request.priority,
            payload,
            retry,
            timeout_ms,
            idempotency_key: request.idempotency_key,
            schedule: None,
            run_at_ms: run_at,
            // The request (or job) enqueuing this one: its attempts join that trace.
            traceparent: objectos_kernel::trace::current().map(|h| h.traceparent),
            organization_id: request.organization_id,
        })
    }

    /// Enqueues many jobs without idempotency keys in few statements (bulk producers, the
    /// benchmark). Every request is checked first; nothing is written when one is invalid.
    pub async fn enqueue_many(
        &self,
        requests: Vec<EnqueueRequest>,
    ) -> Result<Vec<String>, JobError> {
        let core = self.core()?.clone();
        let mut jobs = Vec::with_capacity(requests.len());
        for r in requests {
            if r.idempotency_key.is_some() {
                return Err(JobError::Invalid(
                    "enqueue_many takes no idempotency keys; use enqueue".into(),
                ));
            }
            jobs.push(self.new_job(r)?);
        }
        core.table
            .insert_rows(&core.table.engine().writer(), &jobs)
            .await
            .map_err(JobError::from)?;
        let queues: BTreeSet<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
        for q in queues {
            self.wake_queue(q);
        }
        Ok(jobs.into_iter().map(|j| j.id).collect())
    }

    async fn info(&self, id: &str) -> Result<JobInfo, JobError> {
        self.core()?
            .table
            .get(id)
            .await?
            .ok_or_else(|| JobError::NotFound(id.to_owned()))
    }
}

#[async_trait]
impl JobQueue for JobsService {
    fn register_handler(&self, name: &str, handler: Arc<dyn JobHandler>) -> Result<(), JobError> {
        if name.trim().is_empty() {
            return Err(JobError::Invalid("a handler name must not be empty".into()));
        }
        let mut handlers = self.handlers.write();
        if handlers.contains_key(name) {
            return Err(JobError::DuplicateHandler(name.to_owned()));
        }
        handlers.insert(name.to_owned(), handler);
        Ok(())
    }

    fn handlers(&self) -> Vec<String> {
        self.handlers_set().into_iter().collect()
    }

    fn schedule(&self, schedule: BuiltinSchedule) -> Result<(), JobError> {
        if schedule.every < Duration::from_secs(1) {
            return Err(JobError::Invalid(format!(
                "schedule `{}`: `every` must be at least one second",
                schedule.name
            )));
        }
        let mut builtin = self.builtin.lock();
        if builtin.iter().any(|b| b.name == schedule.name) {
            return Err(JobError::Invalid(format!(
                "schedule `{}` is installed twice",
                schedule.name
            )));
        }
        builtin.push(schedule);
        Ok(())
    }

    async fn enqueue(&self, request: EnqueueRequest) -> Result<Enqueued, JobError> {
        let core = self.core()?.clone();
        let job = self.new_job(request)?;
        let out = core
            .table
            .insert(&core.table.engine().writer(), &job)
            .await?;
        if out.created && job.run_at_ms <= now_ms() {
            self.wake_queue(&job.queue);
        }
        Ok(out)
    }

    async fn get(&self, id: &str) -> Result<Option<JobInfo>, JobError> {
        Ok(self.core()?.table.get(id).await?)
    }

    async fn cancel(&self, id: &str) -> Result<JobInfo, JobError> {
        let core = self.core()?.clone();
        if core.table.cancel_waiting(id).await? {
            return self.info(id).await;
        }
        if core.table.request_cancel(id).await? {
            // Here it stops at once; on another node at its next heartbeat.
            core.cancel_local(id);
            return self.info(id).await;
        }
        let info = self.info(id).await?;
        if info.status == JobStatus::Running || !info.status.is_final() {
            // It changed state between the statements; the caller may try again.
            return Err(invalid_state(
                &info,
                "its state changed meanwhile; try again",
            ));
        }
        Err(invalid_state(&info, "a finished job cannot be cancelled"))
    }

    async fn retry(&self, id: &str) -> Result<JobInfo, JobError> {
        let core = self.core()?.clone();
        let from = [JobStatus::Failed, JobStatus::Dead, JobStatus::Cancelled];
        if core.table.requeue(id, &from).await? {
            let info = self.info(id).await?;
            self.wake_queue(&info.queue);
            return Ok(info);
        }
        let info = self.info(id).await?;
        Err(invalid_state(
            &info,
            "only a failed, dead or cancelled job can be retried",
        ))
    }

    async fn list(&self, filter: JobFilter) -> Result<JobPage, JobError> {
        Ok(self.core()?.table.list(&filter).await?)
    }

    async fn replay(&self, id: &str) -> Result<JobInfo, JobError> {
        let core = self.core()?.clone();
        if core.table.requeue(id, &[JobStatus::Dead]).await? {
            let info = self.info(id).await?;
            self.wake_queue(&info.queue);
            return Ok(info);
        }
        let info = self.info(id).await?;
        Err(invalid_state(&info, "only a dead job can be replayed"))
    }

    async fn counts(&self) -> Result<BTreeMap<String, u64>, JobError> {
        Ok(self.core()?.table.counts().await?)
    }
}

#[async_trait]
impl TransactionalJobQueue for JobsService {
    async fn enqueue_in(
        &self,
        tx: &dyn Store,
        request: EnqueueRequest,
    ) -> Result<Enqueued, JobError> {
        let core = self.core()?.clone();
        let job = self.new_job(request)?;
        Ok(core.table.insert(tx, &job).await?)
    }

    fn wake(&self, queue: &str) {
        self.wake_queue(queue);
    }
}
