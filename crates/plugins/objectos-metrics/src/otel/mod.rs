//! OpenTelemetry traces over OTLP/gRPC (`metrics.tracing` in `objectos.yml`, off by default).
//!
//! The server builds the layer ([`layer_beside_logs`]) into its `tracing` subscriber at start, before any plugin
//! runs, so the spans the crates already open (`http.request`, `data.*`, `db.statement`,
//! `permissions.*`, `plugin.*`, `kernel.boot`) become OpenTelemetry spans with their
//! parent-child structure. The layer sees only spans of ObjectOS crates (`objectos*` targets,
//! debug level and up), so the dependencies' own spans (hyper, sqlx, tonic) are not exported,
//! and the debug spans cost nothing while tracing is off. It also installs the kernel's
//! [`TraceBridge`], through which crates without OpenTelemetry continue a client's
//! `traceparent` and read the current context.
//!
//! Sampling is decided once per trace (`sample.rs`): for a request by the HTTP hoop before the
//! request span exists, for other roots by the SDK's sampler. One gate in front of the
//! OpenTelemetry layer decides for the whole subscriber: below an untraced or unsampled span it
//! keeps every further span from the trace layer, and from being created at all when the logs
//! do not want it (a data operation, a statement or a permission decision of an unsampled
//! request is then a disabled span: a level check and a thread-local read), and it knows an
//! untraced request span by its id, without a registry lookup on each poll of the request.
//!
//! The collector may be reached over TLS (`tls.rs`: `https://` endpoints, a private CA, a client
//! certificate for mutual TLS).
//!
//! Export runs on the SDK's batch thread: a collector that is down or slow never holds up a
//! request. Failed batches are dropped, counted in `objectos_tracing_spans_dropped_total` and
//! reported by a warning at most once a minute.

mod sample;
mod tls;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use objectos_kernel::trace::{TraceBridge, TraceHeaders};
use objectos_spec::settings::SettingsProblem;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, TraceContextExt, TraceFlags, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    IdGenerator as _, RandomIdGenerator, Sampler, SamplingDecision, SdkTracerProvider,
    ShouldSample as _, SpanData, SpanExporter,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::registry::LookupSpan;

use crate::error::{MetricsError, Result};
use sample::RequestsDrawn;
pub use tls::{CA_FILE_ENV, CERT_FILE_ENV, KEY_FILE_ENV};

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
    /// The collector's OTLP/gRPC endpoint: `http://host:4317` (plaintext, for a collector on
    /// the same host or network) or `https://host:4317` (TLS, the server's certificate checked
    /// against the roots below).
    pub endpoint: String,
    /// A PEM file of CA certificates trusted for an `https://` endpoint, besides the built-in
    /// roots: a collector with a certificate from a private CA. Read at start; when unset, the
    /// `OBJECTOS_TRACING_CA_FILE` environment variable is read instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// A PEM file with the client certificate (chain) shown to a collector that requires
    /// mutual TLS; goes with `keyFile`. When unset, the `OBJECTOS_TRACING_CERT_FILE`
    /// environment variable is read instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// The PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1); goes
    /// with `certFile`. When unset, the `OBJECTOS_TRACING_KEY_FILE` environment variable is
    /// read instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// Also trust the operating system's certificate store for an `https://` endpoint (by
    /// default only the Mozilla roots compiled in, and `caFile`).
    pub native_roots: bool,
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
            ca_file: None,
            cert_file: None,
            key_file: None,
            native_roots: false,
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
        let host = self
            .endpoint
            .strip_prefix("http://")
            .or_else(|| self.endpoint.strip_prefix("https://"));
        if host.is_none_or(str::is_empty) {
            out.push(SettingsProblem::at(
                "tracing.endpoint",
                "must be an OTLP/gRPC address such as http://127.0.0.1:4317 or https://collector:4317",
            ));
        }
        for (key, value) in [
            ("tracing.caFile", &self.ca_file),
            ("tracing.certFile", &self.cert_file),
            ("tracing.keyFile", &self.key_file),
        ] {
            let Some(path) = value else { continue };
            if path.trim().is_empty() {
                out.push(SettingsProblem::at(key, "must not be empty"));
            } else if !self.tls() {
                out.push(SettingsProblem::at(
                    key,
                    "is only used with an https:// endpoint",
                ));
            }
        }
        // A certificate without its key (or the reverse) is refused at start by `tls_config`,
        // since the environment may supply the other half.
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

/// The OpenTelemetry layer for a subscriber built on the `tracing-subscriber` registry, and the
/// handle that flushes it. Must be called inside a Tokio runtime (the gRPC channel runs on it).
/// Installs the kernel's trace bridge as a side effect.
///
/// For a subscriber that also writes log lines, [`layer_beside_logs`] with the log filter's
/// level is cheaper: this one cannot know what the logs want, so spans of unsampled traces are
/// kept from the trace layer but still created for the others.
pub fn layer<S>(
    config: &TracingConfig,
    version: &str,
) -> Result<(Box<dyn Layer<S> + Send + Sync>, Tracing)>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    layer_beside_logs(config, version, LevelFilter::TRACE)
}

/// [`layer`], next to log layers whose most verbose level is `logs` (the log filter's
/// `max_level_hint`): an ObjectOS span more verbose than that (the debug spans of data
/// operations, statements, permission decisions, at the default `info`) is then not created at
/// all when its trace is not sampled, instead of being created for nobody. Add it outside the
/// log layers, as the server does (`logs.and_then(traces)`, or `.with(logs).with(traces)`), so
/// the callsites neither wants stay disabled for good; in a `Vec` beside them it decides the
/// same, but is asked about each of those callsites every time it is reached.
pub fn layer_beside_logs<S>(
    config: &TracingConfig,
    version: &str,
    logs: LevelFilter,
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
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(config.endpoint.clone())
        .with_timeout(Duration::from_secs(config.timeout_seconds));
    if let Some(tls) = config.tls_config()? {
        exporter = exporter.with_tls_config(tls);
    }
    let exporter = exporter
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
        .with_sampler(RequestsDrawn::new(config.sampling_ratio))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("objectos");
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(false);
    let gated = sample::gated(otel, logs);
    objectos_kernel::trace::install(Box::new(OtelBridge {
        ratio: config.sampling_ratio,
    }));
    Ok((Box::new(gated), Tracing { provider }))
}

/// The kernel's bridge, on the W3C propagator and the layer's span contexts.
struct OtelBridge {
    /// `samplingRatio`, drawn for a request that starts a new trace.
    pub(super) ratio: f64,
}

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

    fn sample_new_request(&self) -> bool {
        if self.ratio <= 0.0 {
            return false;
        }
        if self.ratio >= 1.0 {
            return true;
        }
        // The SDK's own rule on a fresh trace id, so a request is recorded exactly as often as
        // any other new trace.
        let id = RandomIdGenerator::default().new_trace_id();
        Sampler::TraceIdRatioBased(self.ratio)
            .should_sample(None, id, "http.request", &SpanKind::Server, &[], &[])
            .decision
            == SamplingDecision::RecordAndSample
    }

    fn trace_id_of(&self, span: &tracing::Span) -> Option<String> {
        if span.is_disabled() {
            return None;
        }
        let cx = span.context();
        let own = cx.span();
        let sc = own.span_context();
        sc.is_valid().then(|| sc.trace_id().to_string())
    }

    fn headers_of(&self, span: &tracing::Span) -> Option<TraceHeaders> {
        if span.is_disabled() {
            return None;
        }
        let cx = span.context();
        let own = cx.span();
        if own.span_context().is_valid() {
            return Some(headers(own.span_context()));
        }
        // A span the layer does not see (one in a trace that is not sampled, which the filter
        // turned away): the trace it runs in is the active context's, so a job or an event it
        // starts carries that trace and its "not sampled" decision on.
        opentelemetry::Context::map_current(|current| {
            let active = current.span();
            let sc = active.span_context();
            sc.is_valid().then(|| headers(sc))
        })
    }
}

/// W3C headers of a span context, as the propagator writes them (version 00, only the sampled
/// flag), without its map of strings: this runs once per request to put the trace id in the
/// log lines.
fn headers(sc: &opentelemetry::trace::SpanContext) -> TraceHeaders {
    let flags = sc.trace_flags() & TraceFlags::SAMPLED;
    let state = sc.trace_state().header();
    TraceHeaders {
        traceparent: format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            flags.to_u8()
        ),
        tracestate: (!state.is_empty()).then_some(state),
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
            endpoint: "ftp://collector:4317".into(),
            sampling_ratio: 1.5,
            timeout_seconds: 0,
            ..TracingConfig::default()
        };
        let p: Vec<String> = c.problems().into_iter().map(|p| format!("{p:?}")).collect();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("endpoint"), "{p:?}");
        let c = TracingConfig {
            endpoint: "http://collector:4317".into(),
            ca_file: Some("ca.pem".into()),
            ..TracingConfig::default()
        };
        let p: Vec<String> = c.problems().into_iter().map(|p| format!("{p:?}")).collect();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("caFile") && p[0].contains("https"), "{p:?}");
        let c = TracingConfig {
            endpoint: "https://collector:4317".into(),
            ..TracingConfig::default()
        };
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn headers_are_what_the_propagator_writes() {
        use opentelemetry::trace::{SpanContext, SpanId, TraceId, TraceState};
        for (flags, state) in [
            (TraceFlags::SAMPLED, TraceState::NONE),
            (
                TraceFlags::default(),
                TraceState::from_key_value([("vendor", "x1")]).unwrap(),
            ),
        ] {
            let sc = SpanContext::new(
                TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
                SpanId::from_hex("00f067aa0ba902b7").unwrap(),
                flags,
                true,
                state,
            );
            let cx = opentelemetry::Context::new().with_remote_span_context(sc.clone());
            let mut carrier: HashMap<String, String> = HashMap::new();
            TraceContextPropagator::new().inject_context(&cx, &mut carrier);
            let ours = headers(&sc);
            assert_eq!(Some(&ours.traceparent), carrier.get("traceparent"));
            assert_eq!(
                ours.tracestate,
                carrier.get("tracestate").filter(|s| !s.is_empty()).cloned()
            );
        }
    }
}
