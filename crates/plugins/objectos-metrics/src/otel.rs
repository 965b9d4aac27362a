//! OpenTelemetry traces over OTLP/gRPC (`metrics.tracing` in `objectos.yml`, off by default).
//!
//! The server builds the [`layer`] into its `tracing` subscriber at start, before any plugin
//! runs, so the spans the crates already open (`http.request`, `data.*`, `db.statement`,
//! `plugin.*`, `kernel.boot`) become OpenTelemetry spans with their parent-child structure. The
//! layer sees only spans of ObjectOS crates (`objectos*` targets, debug level and up), so the
//! dependencies' own spans (hyper, sqlx, tonic) are not exported, and the debug spans cost
//! nothing while tracing is off. It also installs the kernel's [`TraceBridge`], through which
//! crates without OpenTelemetry continue a client's `traceparent` and read the current context.
//!
//! Export runs on the SDK's batch thread: a collector that is down or slow never holds up a
//! request. Failed batches are dropped, counted in `objectos_tracing_spans_dropped_total` and
//! reported by a warning at most once a minute.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use objectos_kernel::trace::{TraceBridge, TraceHeaders};
use objectos_spec::settings::SettingsProblem;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracing::{Level, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use crate::error::{MetricsError, Result};

/// Counter: spans the collector did not take (unreachable, refused, timed out).
pub const SPANS_DROPPED: &str = crate::names::TRACING_SPANS_DROPPED;

/// Default OTLP/gRPC endpoint: a collector next to the server.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4317";

/// How often, at most, a failing export is reported.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// `metrics.tracing`: OpenTelemetry traces (camelCase keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TracingConfig {
    /// Export traces. Off by default.
    pub enabled: bool,
    /// The collector's OTLP/gRPC endpoint (`http://host:4317`; plaintext, so a collector on the
    /// same host or network: TLS is not compiled in).
    pub endpoint: String,
    /// Share of new traces recorded, 0.0 to 1.0. A request that arrives with a `traceparent`
    /// follows the caller's sampling decision instead.
    pub sampling_ratio: f64,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// Further resource attributes (`deployment.environment: prod`, `service.namespace: crm`).
    pub resource: BTreeMap<String, String>,
    /// Seconds one export may take before its spans are dropped.
    pub timeout_seconds: u64,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            sampling_ratio: 1.0,
            service_name: "objectos".to_owned(),
            resource: BTreeMap::new(),
            timeout_seconds: 10,
        }
    }
}

impl TracingConfig {
    /// What is wrong with the settings, paths relative to `tracing`.
    pub fn problems(&self) -> Vec<SettingsProblem> {
        let mut out = Vec::new();
        if !self.endpoint.starts_with("http://") || self.endpoint.len() <= "http://".len() {
            out.push(SettingsProblem::at(
                "tracing.endpoint",
                "must be an http:// OTLP/gRPC address such as http://127.0.0.1:4317 (TLS is not supported; export to a local collector)",
            ));
        }
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            out.push(SettingsProblem::at(
                "tracing.samplingRatio",
                "must be between 0.0 and 1.0",
            ));
        }
        if self.service_name.trim().is_empty() {
            out.push(SettingsProblem::at(
                "tracing.serviceName",
                "must not be empty",
            ));
        }
        if self.resource.keys().any(|k| k.trim().is_empty()) {
            out.push(SettingsProblem::at(
                "tracing.resource",
                "attribute names must not be empty",
            ));
        }
        if self.timeout_seconds == 0 {
            out.push(SettingsProblem::at(
                "tracing.timeoutSeconds",
                "must be at least 1",
            ));
        }
        out
    }
}

/// The running tracer: flush it before the process exits, or the last spans are lost.
#[derive(Debug, Clone)]
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// Exports what is queued now (blocks until the collector answered or the timeout).
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::debug!(error = %e, "Trace flush failed.");
        }
    }

    /// Exports what is queued and stops the export thread (blocking).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!(error = %e, "Trace export shutdown failed.");
        }
    }
}

/// Whether the layer exports this callsite: ObjectOS spans at debug and up, and warnings and
/// errors inside them as span events.
fn exported(meta: &tracing::Metadata<'_>) -> bool {
    let ours = meta.target().starts_with("objectos");
    if meta.is_span() {
        ours && *meta.level() <= Level::DEBUG
    } else {
        ours && *meta.level() <= Level::WARN
    }
}

/// The OpenTelemetry layer for a subscriber built on the `tracing-subscriber` registry, and the
/// handle that flushes it. Must be called inside a Tokio runtime (the gRPC channel runs on it).
/// Installs the kernel's trace bridge as a side effect.
pub fn layer<S>(
    config: &TracingConfig,
    version: &str,
) -> Result<(Box<dyn Layer<S> + Send + Sync>, Tracing)>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    if let Some(p) = config.problems().first() {
        return Err(MetricsError::Config(format!(
            "{}: {}",
            objectos_spec::settings::format_path("metrics", &p.path),
            p.message
        )));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(config.endpoint.clone())
        .with_timeout(Duration::from_secs(config.timeout_seconds))
        .build()
        .map_err(|e| MetricsError::Tracing(e.to_string()))?;
    let mut attributes = vec![KeyValue::new("service.version", version.to_owned())];
    attributes.extend(
        config
            .resource
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), Value::from(v.clone()))),
    );
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attributes(attributes)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(WarnOnFailure::new(exporter))
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sampling_ratio,
        ))))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("objectos");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(false)
        .with_filter(tracing_subscriber::filter::filter_fn(exported));
    objectos_kernel::trace::install(Box::new(OtelBridge));
    Ok((Box::new(layer), Tracing { provider }))
}

/// The kernel's bridge, on the W3C propagator and the layer's span contexts.
struct OtelBridge;

impl TraceBridge for OtelBridge {
    fn continue_remote(
        &self,
        span: &tracing::Span,
        traceparent: &str,
        tracestate: Option<&str>,
    ) -> bool {
        let mut carrier = HashMap::with_capacity(2);
        carrier.insert("traceparent".to_owned(), traceparent.to_owned());
        if let Some(ts) = tracestate {
            carrier.insert("tracestate".to_owned(), ts.to_owned());
        }
        let cx = TraceContextPropagator::new().extract(&carrier);
        // A context the propagator could not read has no valid span: the span keeps its own
        // new trace.
        cx.span().span_context().is_valid() && span.set_parent(cx).is_ok()
    }

    fn headers_of(&self, span: &tracing::Span) -> Option<TraceHeaders> {
        if span.is_disabled() {
            return None;
        }
        let cx = span.context();
        if !cx.span().span_context().is_valid() {
            return None;
        }
        let mut carrier: HashMap<String, String> = HashMap::with_capacity(2);
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        Some(TraceHeaders {
            traceparent: carrier.remove("traceparent")?,
            tracestate: carrier.remove("tracestate").filter(|s| !s.is_empty()),
        })
    }
}

/// The exporter, counting and reporting (rate-limited) the batches the collector did not take.
#[derive(Debug)]
struct WarnOnFailure<E> {
    inner: E,
    dropped: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
}

impl<E> WarnOnFailure<E> {
    fn new(inner: E) -> Self {
        Self {
            inner,
            dropped: AtomicU64::new(0),
            last_warning: Mutex::new(None),
        }
    }

    fn failed(&self, spans: usize, error: &dyn std::fmt::Display) {
        metrics::counter!(SPANS_DROPPED).increment(spans as u64);
        let dropped = self.dropped.fetch_add(spans as u64, Ordering::Relaxed) + spans as u64;
        let Ok(mut last) = self.last_warning.lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        self.dropped.store(0, Ordering::Relaxed);
        tracing::warn!(
            dropped,
            error = %error,
            "Trace export failed; spans dropped (reported at most once a minute). Requests are not affected."
        );
    }
}

impl<E: SpanExporter> SpanExporter for WarnOnFailure<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        let result = self.inner.export(batch).await;
        if let Err(e) = &result {
            self.failed(n, e);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_off_and_valid() {
        let c = TracingConfig::default();
        assert!(!c.enabled);
        assert!(c.problems().is_empty());
    }

    /// An exporter whose collector is never there.
    #[derive(Debug)]
    struct Down;

    impl SpanExporter for Down {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                "connection refused".into(),
            ))
        }
    }

    #[tokio::test]
    async fn failed_exports_warn_once_then_count_quietly() {
        let e = WarnOnFailure::new(Down);
        assert!(e.export(Vec::new()).await.is_err());
        let first = *e.last_warning.lock().unwrap();
        assert!(first.is_some(), "the first failure warns");
        assert_eq!(e.dropped.load(Ordering::Relaxed), 0, "reported, so reset");
        e.failed(3, &"refused");
        e.failed(4, &"refused");
        // Within the minute: no second warning, the drops add up for the next one.
        assert_eq!(*e.last_warning.lock().unwrap(), first);
        assert_eq!(e.dropped.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn problems_name_their_key() {
        let c = TracingConfig {
            endpoint: "https://collector:4317".into(),
            sampling_ratio: 1.5,
            timeout_seconds: 0,
            ..TracingConfig::default()
        };
        let p: Vec<String> = c.problems().into_iter().map(|p| format!("{p:?}")).collect();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("endpoint"), "{p:?}");
    }
}
