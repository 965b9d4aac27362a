//! The crate's error type.

/// What can go wrong in the metrics plugin.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The settings are inconsistent (a bad allow-list entry, bucket bounds).
    #[error("invalid metrics configuration: {0}")]
    Config(String),
    /// The Prometheus recorder could not be built or installed.
    #[error("cannot install the Prometheus recorder: {0}")]
    Recorder(String),
    /// The OpenTelemetry exporter could not be built (`metrics.tracing`).
    #[error("cannot start trace export: {0}")]
    Tracing(String),
}

/// Result alias of this crate.
pub type Result<T, E = MetricsError> = std::result::Result<T, E>;
