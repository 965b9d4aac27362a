//! The RabbitMQ backend as the plugin's [`Delivery`] (`jobs.backend: rabbitmq`): its settings
//! (`jobs.rabbitmq`, the URL from `cluster.amqpUrl`), and the job table seen through
//! [`JobRows`]: the relay takes rows with `JobTable::take_unrelayed`, consumers claim a batch
//! of deliveries with `JobTable::claim_ids` and run each through
//! [`Core::run_claimed_recorded`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use objectos_kernel::ClusterSettings;
use objectos_kernel::contracts::JobStatus;
use objectos_spec::settings::{Secret, SettingsProblem};
use parking_lot::Mutex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::topology::Topology;
use super::{
    AmqpBackend, AmqpQueue, AmqpSettings, AmqpState, AmqpStatus, DEFAULT_MAX_PRIORITY,
    DEFAULT_PREFIX, Delivered, JobRows, JobRun, Outcome, Outgoing,
};
use crate::core::{self, Core};
use crate::delivery::Delivery;
use crate::error::{JobsError, Result};
use crate::table::Claimed;

/// How long a relay's in-flight mark keeps other relays off a row it is publishing; a relay
/// that dies mid-publish delays its rows by at most this.
const RELAY_HOLD_MS: i64 = 15_000;

/// The default prefetch per handler slot (`prefetch: 0`): a delivery waits for its claim, its
/// handler and its batched completion write before it is acknowledged, so a node needs several
/// per running handler to keep the handlers busy meanwhile.
const PREFETCH_PER_WORKER: u32 = 8;

/// How long stop waits for jobs running on this node before leaving them to redelivery.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// `jobs.rabbitmq` in `objectos.yml`: the broker side of `backend: rabbitmq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RabbitmqSettings {
    /// Prefix of every exchange and queue name (`[a-z0-9._-]`, at most 64 characters); nodes
    /// of one deployment share it, two deployments on one broker must not.
    pub prefix: String,
    /// Unacknowledged deliveries per queue on this node (0: 8 × the queue's `workers`): the
    /// jobs running, being claimed or waiting for their outcome's write. How many run at once
    /// is `workers`; the rest keep the claims and completion writes batched. Lower it for long
    /// jobs, so deliveries do not wait on a busy node while another is idle.
    pub prefetch: u16,
    /// The work queues' `x-max-priority`; job priorities are clamped to 0..=this. Changing it
    /// needs the work queues deleted first (RabbitMQ refuses other arguments on a queue).
    pub max_priority: u8,
    /// Rows the relay publishes per round.
    pub relay_batch: u32,
}

impl Default for RabbitmqSettings {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            prefetch: 0,
            max_priority: DEFAULT_MAX_PRIORITY,
            relay_batch: 500,
        }
    }
}

impl RabbitmqSettings {
    /// What is wrong, with paths under `rabbitmq.`.
    pub fn problems(&self) -> Vec<SettingsProblem> {
        let mut out = Vec::new();
        if let Err(error) = Topology::new(&self.prefix, 1) {
            out.push(SettingsProblem::at("rabbitmq.prefix", error.to_string()));
        }
        if self.max_priority == 0 {
            out.push(SettingsProblem::at(
                "rabbitmq.maxPriority",
                "must be from 1 to 255 (RabbitMQ advises at most 10)",
            ));
        }
        if self.relay_batch == 0 || self.relay_batch > 10_000 {
            out.push(SettingsProblem::at(
                "rabbitmq.relayBatch",
                "must be from 1 to 10000",
            ));
        }
        out
    }
}

/// The RabbitMQ delivery of one node.
#[derive(Debug)]
pub struct RabbitmqDelivery {
    url: Secret,
    node: String,
    settings: RabbitmqSettings,
    /// The plugin's settings (each queue's `workers`), known from start.
    jobs: Mutex<Option<crate::config::JobsSettings>>,
    backend: Mutex<Option<AmqpBackend>>,
}

impl RabbitmqDelivery {
    /// Fails when no broker URL is configured.
    pub fn new(cluster: &ClusterSettings, settings: &RabbitmqSettings) -> Result<Self> {
        let Some(url) = cluster.amqp_url.clone() else {
            return Err(JobsError::Config(
                "jobs.backend is `rabbitmq` but no broker URL is configured: set cluster.amqpUrl in objectos.yml or OBJECTOS_AMQP_URL".to_owned(),
            ));
        };
        Ok(Self {
            url,
            node: cluster.node_id.clone(),
            settings: settings.clone(),
            jobs: Mutex::new(None),
            backend: Mutex::new(None),
        })
    }

    /// The connection's state and counters (`None` before start).
    pub fn status(&self) -> Option<AmqpStatus> {
        self.backend.lock().as_ref().map(AmqpBackend::status)
    }

    fn queue(&self, jobs: &crate::config::JobsSettings, name: String) -> AmqpQueue {
        let prefetch = if self.settings.prefetch > 0 {
            self.settings.prefetch
        } else {
            let wanted = jobs.workers_of(&name).saturating_mul(PREFETCH_PER_WORKER);
            u16::try_from(wanted).unwrap_or(u16::MAX)
        };
        AmqpQueue { name, prefetch }
    }
}

#[async_trait]
impl Delivery for RabbitmqDelivery {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    async fn start(&self, core: Arc<Core>, queues: Vec<String>) -> Result<()> {
        let mut settings = AmqpSettings::new(self.url.clone(), Vec::<String>::new());
        settings.queues = queues
            .into_iter()
            .map(|name| self.queue(core.settings(), name))
            .collect();
        settings.claim_batch = usize::try_from(core.settings().batch_size).unwrap_or(256);
        *self.jobs.lock() = Some(core.settings().clone());
        settings.prefix = self.settings.prefix.clone();
        settings.max_priority = self.settings.max_priority;
        settings.relay_batch = usize::try_from(self.settings.relay_batch).unwrap_or(500);
        settings.relay_interval = core.settings().poll_interval();
        settings.connection_name = format!("objectos {}", self.node);
        let backend = AmqpBackend::new(settings, Arc::new(CoreRows { core }))?;
        backend.start();
        *self.backend.lock() = Some(backend);
        Ok(())
    }

    fn wake(&self, queue: &str) {
        let backend = self.backend.lock().clone();
        let Some(backend) = backend else {
            return;
        };
        if !backend.consumes(queue) {
            // A queue first seen now gets consumers on this node, like the embedded workers.
            let jobs = self.jobs.lock().clone().unwrap_or_default();
            let added = backend.consume(self.queue(&jobs, queue.to_owned()));
            if let Err(error) = added {
                tracing::warn!(queue, %error, "jobs: queue not consumed from RabbitMQ");
            }
        }
        backend.wake();
    }

    async fn stop(&self) {
        let backend = self.backend.lock().take();
        if let Some(backend) = backend {
            backend.stop(STOP_GRACE).await;
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        self.status()
            .and_then(|status| serde_json::to_value(status).ok())
    }

    fn problem(&self) -> Option<String> {
        let status = self.status()?;
        match status.state {
            AmqpState::Connected | AmqpState::Stopped => None,
            AmqpState::Connecting => Some(format!("connecting to RabbitMQ at {}", status.url)),
            AmqpState::Reconnecting => Some(format!(
                "RabbitMQ at {} unreachable ({} attempts; jobs wait in the table): {}",
                status.url,
                status.attempts,
                status.last_error.as_deref().unwrap_or("unknown error")
            )),
        }
    }
}

/// The plugin's job table and runner seen by the RabbitMQ backend.
#[derive(Debug)]
struct CoreRows {
    core: Arc<Core>,
}

#[async_trait]
impl JobRows for CoreRows {
    async fn unpublished(&self, limit: usize) -> Result<Vec<Outgoing>> {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let rows = self
            .core
            .table()
            .take_unrelayed(limit, RELAY_HOLD_MS)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, queue, priority)| Outgoing {
                id,
                queue,
                priority,
            })
            .collect())
    }

    async fn mark_published(&self, ids: &[String]) -> Result<()> {
        self.core.table().mark_relayed(ids).await
    }

    async fn release_unpublished(&self, ids: &[String]) -> Result<()> {
        self.core.table().release_relayed(ids).await
    }

    async fn take(&self, jobs: Vec<Delivered>) -> Result<Vec<JobRun>> {
        let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        let claimed = self
            .core
            .table()
            .claim_ids(&ids, self.core.worker(), self.core.lease_until())
            .await?;
        let mut claimed: HashMap<String, Claimed> =
            claimed.into_iter().map(|c| (c.id.clone(), c)).collect();
        Ok(jobs
            .into_iter()
            .map(|job| {
                let rows = CoreRows {
                    core: Arc::clone(&self.core),
                };
                let run: JobRun = match claimed.remove(&job.id) {
                    Some(claimed) => Box::pin(async move { rows.run(&job, claimed).await }),
                    None => Box::pin(async move { rows.unclaimable(&job).await }),
                };
                run
            })
            .collect())
    }
}

impl CoreRows {
    /// Runs a claimed job; returns once its outcome is in the table.
    async fn run(&self, job: &Delivered, claimed: Claimed) -> Result<Outcome> {
        Ok(match self.core.run_claimed_recorded(claimed).await {
            // The row says `completed` now. `Lost`: the row is no longer this worker's, or its
            // outcome could not be written; either way the lease brings it back if it needs
            // another run, not this message.
            core::Outcome::Completed | core::Outcome::Lost => Outcome::Done,
            core::Outcome::Failed(JobStatus::Dead) => Outcome::DeadLetter,
            core::Outcome::Failed(JobStatus::Scheduled) => self.unclaimable(job).await?,
            core::Outcome::Failed(_) => Outcome::Done,
        })
    }

    /// The delivery could not claim the row: a retry or delayed job not due yet goes through a
    /// delay tier; so does a redelivered message whose row another worker still leases (that
    /// worker's connection died with the message unacknowledged: it may be dead too, and once
    /// its lease runs out the claim takes the row over). Anything else (finished, cancelled,
    /// gone, or a duplicate publish of a running job) is dropped.
    async fn unclaimable(&self, job: &Delivered) -> Result<Outcome> {
        let Some(info) = self.core.table().get(&job.id).await? else {
            return Ok(Outcome::Done);
        };
        let due_in = (info.run_at - Utc::now()).to_std().unwrap_or_default();
        Ok(match info.status {
            JobStatus::Scheduled | JobStatus::Pending if !due_in.is_zero() => {
                Outcome::RetryAfter(due_in)
            }
            JobStatus::Running
                if job.redelivered && info.worker.as_deref() != Some(self.core.worker()) =>
            {
                Outcome::RetryAfter(self.core.settings().lease())
            }
            // Due, yet not claimable a moment ago: another consumer claimed it in between.
            _ => Outcome::Done,
        })
    }
}
