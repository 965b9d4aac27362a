//! Health and startup report types (spec `kernel/plugin-lifecycle-advanced`, `startup-orchestrator`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Health of one plugin or of the whole kernel, ordered from best to worst for aggregation.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Recovering,
    Unknown,
    Degraded,
    Unhealthy,
    Failed,
}

impl HealthStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Recovering => "recovering",
            Self::Unknown => "unknown",
            Self::Degraded => "degraded",
            Self::Unhealthy => "unhealthy",
            Self::Failed => "failed",
        }
    }
}

/// Outcome of one named check inside a health report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Passed,
    Failed,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HealthCheck {
    pub name: String,
    pub status: CheckStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Keys of [`HealthReport::details`] that discovery and `/health` read generically.
pub mod detail {
    /// What the plugin's facility runs on: `memory`, `database`, `redis`, `rabbitmq`, ...
    pub const BACKEND: &str = "backend";
    /// How that backend is doing, in a word: `embedded`, `connected`, `reconnecting`, ...
    pub const STATE: &str = "state";
    /// The facilities the backend carries (JSON array of names). Without it: every spec service
    /// the plugin provides. The event bus, which is no spec service, is [`EVENTS`].
    pub const SERVES: &str = "serves";
    /// The name in [`SERVES`] for the cross-node event bus.
    pub const EVENTS: &str = "events";
    /// The backing services the plugin checked for this report: a JSON array of
    /// [`super::BackendCheck`] (`name`, `state`, `latencyMs`, `lastCheck`, `required`,
    /// `message`). `/ready` answers 503 while a `required` one is `down`.
    pub const BACKENDS: &str = "backends";
}

/// How a backing service answered its last check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendState {
    /// Answered in time.
    Up,
    /// Answered, but slowly or partly (a replica missing, a queue backed up).
    Degraded,
    /// Did not answer, or refused.
    Down,
}

/// One backing service (database, Redis, RabbitMQ, SMTP, S3) as a plugin checked it, reported
/// in `details.backends` of its health report ([`HealthReport::backend_check`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendCheck {
    /// `database`, `redis`, `rabbitmq`, `smtp`, `s3`, ...: the kind of service, never its URL.
    pub name: String,
    pub state: BackendState,
    /// How long the check took (`None` when it could not be timed, e.g. no connection at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// When the check ran (RFC 3339).
    pub last_check: chrono::DateTime<chrono::Utc>,
    /// Whether the server cannot serve without it: `/ready` is false while a required backend
    /// is down.
    #[serde(default)]
    pub required: bool,
    /// What went wrong, without secrets (no URL with a password, no credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A plugin's health (spec `PluginHealthReport`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HealthReport {
    pub status: HealthStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<HealthCheck>,
    /// Facts about the plugin's state (an ObjectOS extension). A plugin with a pluggable backend
    /// sets [`detail::BACKEND`] and [`detail::STATE`] (see [`HealthReport::backend`]); discovery
    /// copies both onto the services the plugin provides. Never a secret.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl HealthReport {
    pub fn healthy() -> Self {
        Self {
            status: HealthStatus::Healthy,
            message: None,
            checks: Vec::new(),
            details: serde_json::Map::new(),
        }
    }

    pub fn with_status(status: HealthStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: Some(message.into()),
            checks: Vec::new(),
            details: serde_json::Map::new(),
        }
    }

    /// Records which backend the plugin runs on and its state (`details.backend`, `details.state`).
    pub fn backend(mut self, backend: &str, state: &str) -> Self {
        self.details
            .insert(detail::BACKEND.into(), backend.to_owned().into());
        self.details
            .insert(detail::STATE.into(), state.to_owned().into());
        self
    }

    /// Adds one more fact to `details`.
    pub fn detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// `details.backend` and `details.state`, when the plugin reports them.
    pub fn backend_state(&self) -> Option<(&str, &str)> {
        let backend = self.details.get(detail::BACKEND)?.as_str()?;
        let state = self.details.get(detail::STATE)?.as_str()?;
        Some((backend, state))
    }

    /// Appends one backing-service check to `details.backends`. A `down` required backend makes
    /// the report at least `unhealthy`.
    pub fn backend_check(mut self, check: BackendCheck) -> Self {
        if check.required && check.state == BackendState::Down {
            self.status = self.status.max(HealthStatus::Unhealthy);
        }
        let value = serde_json::to_value(&check).unwrap_or(serde_json::Value::Null);
        match self
            .details
            .entry(detail::BACKENDS)
            .or_insert_with(|| serde_json::Value::Array(Vec::new()))
        {
            serde_json::Value::Array(items) => items.push(value),
            other => *other = serde_json::Value::Array(vec![value]),
        }
        self
    }

    /// The checks in `details.backends` (entries of another shape are skipped).
    pub fn backend_checks(&self) -> Vec<BackendCheck> {
        self.details
            .get(detail::BACKENDS)
            .and_then(|v| v.as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| serde_json::from_value(i.clone()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first required backend that is down, if any: what keeps `/ready` at 503.
    pub fn required_backend_down(&self) -> Option<BackendCheck> {
        self.backend_checks()
            .into_iter()
            .find(|c| c.required && c.state == BackendState::Down)
    }

    /// Whether the reported backend carries `facility` (a spec service name or
    /// [`detail::EVENTS`]); `provides` are the plugin's spec services, used when it names none.
    pub fn serves(&self, facility: &str, provides: &[&str]) -> bool {
        match self.details.get(detail::SERVES).and_then(|v| v.as_array()) {
            Some(names) => names.iter().any(|n| n.as_str() == Some(facility)),
            None => provides.contains(&facility),
        }
    }
}

/// Health of one plugin inside the kernel's aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PluginHealth {
    pub id: String,
    pub version: String,
    #[serde(flatten)]
    pub report: HealthReport,
}

/// The kernel's aggregated health: the worst plugin status wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KernelHealth {
    pub status: HealthStatus,
    pub instance_id: String,
    pub version: String,
    pub uptime_ms: u64,
    pub plugins: Vec<PluginHealth>,
}

/// Error detail of a failed start (spec `PluginStartupResult.error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StartupError {
    pub name: String,
    pub message: String,
    pub code: String,
}

/// What happened to one plugin during boot (spec `PluginStartupResult`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginStartupResult {
    pub id: String,
    pub version: String,
    pub success: bool,
    /// Milliseconds spent in `init` + `start`.
    pub duration_ms: f64,
    /// True when the plugin was not started because something it requires failed.
    #[serde(default)]
    pub skipped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StartupError>,
}

/// The kernel's startup report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartupReport {
    pub instance_id: String,
    pub duration_ms: f64,
    /// Plugins in start order.
    pub plugins: Vec<PluginStartupResult>,
}

impl StartupReport {
    /// True when every plugin started.
    pub fn all_started(&self) -> bool {
        self.plugins.iter().all(|p| p.success)
    }
}
