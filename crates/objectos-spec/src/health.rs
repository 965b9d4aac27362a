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

/// A plugin's health (spec `PluginHealthReport`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HealthReport {
    pub status: HealthStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<HealthCheck>,
}

impl HealthReport {
    pub fn healthy() -> Self {
        Self {
            status: HealthStatus::Healthy,
            message: None,
            checks: Vec::new(),
        }
    }

    pub fn with_status(status: HealthStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: Some(message.into()),
            checks: Vec::new(),
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
