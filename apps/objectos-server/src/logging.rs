//! Structured logs through tracing-subscriber: text or JSON on stderr, filtered by `RUST_LOG`
//! (when set) or the configured level (`log.level` / `OBJECTOS_LOG`), and, with the metrics
//! plugin compiled in and `metrics.tracing.enabled`, OpenTelemetry traces over OTLP.
//!
//! The level filter applies to the log lines only: the trace layer has its own (ObjectOS spans
//! at debug and up), so `info` logs and full traces go together.

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogFormat, ServerConfig};

/// What must outlive the server for its telemetry: the trace exporter, flushed at the end.
#[derive(Debug, Default)]
pub struct LogGuard {
    #[cfg(feature = "plugin-metrics")]
    tracing: Option<objectos_metrics::Tracing>,
}

impl LogGuard {
    /// Exports the spans still queued and stops the exporter (bounded by its timeout).
    pub async fn shutdown(self) {
        #[cfg(feature = "plugin-metrics")]
        if let Some(t) = self.tracing {
            // The SDK's shutdown blocks until the export thread is done.
            let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
        }
    }
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the global subscriber; a second call (tests running commands in-process) is a no-op.
/// Call it inside the Tokio runtime: the trace exporter's channel runs on it.
pub fn init(config: &ServerConfig) -> LogGuard {
    if tracing::dispatcher::has_been_set() {
        // The first configuration wins; a second exporter would never get a span.
        return LogGuard::default();
    }
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(&config.log_level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    if !traces_wanted(config) {
        // Tracing off (the default): one global filter in front of the log layer, the cheapest
        // subscriber tracing-subscriber builds (a callsite the filter rejects is never asked
        // again, a span it lets through meets one layer). The per-layer filter below is needed
        // only beside the trace layer; with nothing beside it, it cost a plain GET about 2,000
        // instructions (#11's callgrind: registry lookups, layer enter/exit, `is_enabled`).
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
        // An already installed subscriber is fine: the first configuration wins.
        let _ = match config.log_format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
        };
        return LogGuard::default();
    }
    // The most verbose level a log line may have: below it, the trace layer alone decides
    // whether an ObjectOS span is created (not at all in a trace that is not sampled).
    #[cfg(feature = "plugin-metrics")]
    let log_level = filter
        .max_level_hint()
        .unwrap_or(tracing_subscriber::filter::LevelFilter::TRACE);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let fmt: BoxedLayer = match config.log_format {
        LogFormat::Text => fmt.with_filter(filter).boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).with_filter(filter).boxed(),
    };
    #[allow(unused_mut)]
    let mut layers: BoxedLayer = fmt;
    #[allow(unused_mut)]
    let mut guard = LogGuard::default();
    #[cfg(feature = "plugin-metrics")]
    let mut failed: Option<String> = None;
    #[cfg(feature = "plugin-metrics")]
    if let Some(tracing_config) = trace_settings(config) {
        match objectos_metrics::otel::layer_beside_logs::<Registry>(
            &tracing_config,
            env!("CARGO_PKG_VERSION"),
            log_level,
        ) {
            Ok((traces, tracing)) => {
                // Outside the log layer (not beside it in a `Vec`), so the trace layer's gate
                // can keep a callsite neither wants disabled for good.
                layers = layers.and_then(traces).boxed();
                guard.tracing = Some(tracing);
            }
            Err(e) => failed = Some(e.to_string()),
        }
    }
    // An already installed subscriber is fine: the first configuration wins.
    let _ = tracing_subscriber::registry().with(layers).try_init();
    #[cfg(feature = "plugin-metrics")]
    if let Some(e) = failed {
        tracing::warn!(error = %e, "Tracing is enabled but could not start; no traces are exported.");
    } else if guard.tracing.is_some() {
        tracing::info!("Exporting OpenTelemetry traces (metrics.tracing).");
    }
    guard
}

/// Whether traces are to be exported (`metrics.tracing.enabled`, with the metrics plugin built in).
fn traces_wanted(config: &ServerConfig) -> bool {
    #[cfg(feature = "plugin-metrics")]
    return trace_settings(config).is_some();
    #[cfg(not(feature = "plugin-metrics"))]
    {
        let _ = config;
        false
    }
}

/// `metrics.tracing` when enabled (the section was checked when the file was read).
#[cfg(feature = "plugin-metrics")]
fn trace_settings(config: &ServerConfig) -> Option<objectos_metrics::TracingConfig> {
    let section = config.plugins.get("metrics")?;
    let metrics: objectos_metrics::MetricsConfig = serde_json::from_value(section.clone()).ok()?;
    metrics.tracing.enabled.then_some(metrics.tracing)
}
