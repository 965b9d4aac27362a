//! The `jobs:` section of `objectos.yml` ([`CONFIG_SECTION`]): backend, workers per queue,
//! leases, polling, default retry policy and timeout, retention of finished runs, and the hosts
//! the built-in `http.request` handler may call (`jobs.http`).

use std::collections::BTreeMap;
use std::time::Duration;

use objectos_kernel::contracts::RetryPolicy;
use objectos_spec::settings::{ConfigSection, PluginSettings, SettingsProblem};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `jobs:` section of `objectos.yml`, typed as [`JobsSettings`].
pub const CONFIG_SECTION: ConfigSection =
    ConfigSection::of::<JobsSettings>("jobs", crate::PLUGIN_ID);

/// How jobs travel from the table to a worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Workers claim jobs from the table in the application database (SQLite or PostgreSQL).
    #[default]
    Embedded,
    /// The table is the outbox; committed jobs are relayed to RabbitMQ (`cluster.amqpUrl`) and
    /// consumed from there.
    Rabbitmq,
}

/// One queue's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct QueueSettings {
    /// Jobs of this queue running at once on this node.
    pub workers: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self { workers: 16 }
    }
}

/// The default retry policy, in the spec's `retryPolicy` shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RetrySettings {
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub backoff_ms: u64,
    pub backoff_multiplier: f64,
    pub max_retry_delay_ms: u64,
    pub jitter: bool,
}

impl Default for RetrySettings {
    fn default() -> Self {
        let p = RetryPolicy::default();
        Self {
            max_retries: p.max_attempts.saturating_sub(1),
            backoff_ms: millis(p.backoff),
            backoff_multiplier: p.multiplier,
            max_retry_delay_ms: millis(p.max_delay),
            jitter: p.jitter,
        }
    }
}

impl RetrySettings {
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_retries.saturating_add(1),
            backoff: Duration::from_millis(self.backoff_ms),
            multiplier: self.backoff_multiplier,
            max_delay: Duration::from_millis(self.max_retry_delay_ms),
            jitter: self.jitter,
        }
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Settings of `com.objectos.jobs` (camelCase keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct JobsSettings {
    /// `embedded` (default) or `rabbitmq`.
    pub backend: Backend,
    /// Workers of a queue not listed under `queues`.
    pub workers: u32,
    /// Per-queue settings, by queue name.
    pub queues: BTreeMap<String, QueueSettings>,
    /// How long a claimed job stays with its worker without a heartbeat; a crashed worker's
    /// jobs come back after this.
    pub lease_ms: u64,
    /// How often workers look for jobs other nodes enqueued (jobs enqueued on this node wake
    /// them at once), and how often delayed jobs become due.
    pub poll_interval_ms: u64,
    /// Jobs claimed (and completions written) per statement.
    pub batch_size: u32,
    /// One attempt's time limit when the job names none.
    pub default_timeout_ms: u64,
    /// The retry policy when the job names none.
    pub retry: RetrySettings,
    /// Days completed and cancelled runs are kept (0 keeps them).
    pub keep_finished_days: u32,
    /// Whether this node runs `*.job.yml` schedules (one node at a time does, by lease).
    pub scheduler: bool,
    /// The broker side of `backend: rabbitmq` (the URL is `cluster.amqpUrl`).
    pub rabbitmq: crate::amqp::RabbitmqSettings,
    /// What the built-in `http.request` handler may call.
    pub http: crate::http::HttpSettings,
}

impl Default for JobsSettings {
    fn default() -> Self {
        Self {
            backend: Backend::Embedded,
            workers: 16,
            queues: BTreeMap::new(),
            lease_ms: 30_000,
            poll_interval_ms: 500,
            batch_size: 256,
            default_timeout_ms: 300_000,
            retry: RetrySettings::default(),
            keep_finished_days: 7,
            scheduler: true,
            rabbitmq: crate::amqp::RabbitmqSettings::default(),
            http: crate::http::HttpSettings::default(),
        }
    }
}

impl JobsSettings {
    /// Workers of `queue`.
    pub fn workers_of(&self, queue: &str) -> u32 {
        self.queues
            .get(queue)
            .map_or(self.workers, |q| q.workers)
            .max(1)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(1))
    }
}

impl PluginSettings for JobsSettings {
    fn problems(&self) -> Vec<SettingsProblem> {
        let mut out = Vec::new();
        if self.workers == 0 {
            out.push(SettingsProblem::at("workers", "must be at least 1"));
        }
        for (name, q) in &self.queues {
            if q.workers == 0 {
                out.push(SettingsProblem::at(
                    &format!("queues.{name}.workers"),
                    "must be at least 1",
                ));
            }
        }
        if self.lease_ms < 1_000 {
            out.push(SettingsProblem::at("leaseMs", "must be at least 1000"));
        }
        if self.poll_interval_ms == 0 {
            out.push(SettingsProblem::at("pollIntervalMs", "must be at least 1"));
        }
        if self.batch_size == 0 || self.batch_size > 1_000 {
            out.push(SettingsProblem::at("batchSize", "must be from 1 to 1000"));
        }
        if self.default_timeout_ms == 0 {
            out.push(SettingsProblem::at(
                "defaultTimeoutMs",
                "must be at least 1",
            ));
        }
        if !(self.retry.backoff_multiplier >= 1.0 && self.retry.backoff_multiplier.is_finite()) {
            out.push(SettingsProblem::at(
                "retry.backoffMultiplier",
                "must be a number of at least 1",
            ));
        }
        out.extend(self.rabbitmq.problems());
        for (path, message) in self.http.problems() {
            out.push(SettingsProblem::at(&path, &message));
        }
        out
    }
}
