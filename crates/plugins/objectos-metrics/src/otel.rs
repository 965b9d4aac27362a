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
//! Sampling is decided once per trace, when its root span (a request, a job, a lifecycle step)
//! starts. Below a root that was not sampled the layer's filter keeps every further span from
//! the trace layer, and the gate the server puts in front ([`layer_beside_logs`], given the log
//! filter's level) keeps it from being created at all when the logs do not want it: a data
//! operation, a statement or a permission decision of an unsampled request is then a disabled
//! span (a level check and a thread-local read), not an OpenTelemetry span built and dropped.
//!
//! The collector may be reached over TLS (`https://` endpoint): the Mozilla roots compiled in
//! (webpki-roots), optionally the operating system's store (`nativeRoots`), and a private CA
//! from a PEM file (`caFile`, or the `OBJECTOS_TRACING_CA_FILE` environment variable).
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
use opentelemetry::trace::{TraceContextExt, TraceFlags, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig};
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

use crate::error::{MetricsError, Result};

/// Counter: spans the collector did not take (unreachable, refused, timed out).
pub const SPANS_DROPPED: &str = crate::names::TRACING_SPANS_DROPPED;

/// Default OTLP/gRPC endpoint: a collector next to the server.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4317";

/// Environment variable read for the CA file when `caFile` is not set.
pub const CA_FILE_ENV: &str = "OBJECTOS_TRACING_CA_FILE";

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
        if let Some(path) = &self.ca_file {
            if path.trim().is_empty() {
                out.push(SettingsProblem::at("tracing.caFile", "must not be empty"));
            } else if !self.tls() {
                out.push(SettingsProblem::at(
                    "tracing.caFile",
                    "is only used with an https:// endpoint",
                ));
            }
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

    /// Whether the endpoint is reached over TLS.
    pub fn tls(&self) -> bool {
        self.endpoint.starts_with("https://")
    }

    /// The TLS settings of an `https://` endpoint (`None` for `http://`): the built-in roots,
    /// the system's when `nativeRoots`, and the certificates of `caFile` (or of the file the
    /// `OBJECTOS_TRACING_CA_FILE` variable names). A file that cannot be read or holds no
    /// certificate is an error naming its key, so the server does not start without the
    /// trust it was configured with.
    pub fn tls_config(&self) -> Result<Option<ClientTlsConfig>> {
        if !self.tls() {
            return Ok(None);
        }
        let mut tls = ClientTlsConfig::new().with_webpki_roots();
        if self.native_roots {
            tls = tls.with_native_roots();
        }
        let from_env = || {
            std::env::var(CA_FILE_ENV)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| (v, format!("{CA_FILE_ENV} (metrics.tracing.caFile)")))
        };
        let source = self
            .ca_file
            .clone()
            .map(|p| (p, "metrics.tracing.caFile".to_owned()))
            .or_else(from_env);
        if let Some((path, key)) = source {
            let pem = std::fs::read(&path)
                .map_err(|e| MetricsError::Config(format!("{key}: cannot read {path}: {e}")))?;
            if count_certificates(&pem) == 0 {
                return Err(MetricsError::Config(format!(
                    "{key}: {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                )));
            }
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        Ok(Some(tls))
    }
}

/// The `CERTIFICATE` blocks of a PEM file (the TLS library parses them when the channel is
/// built; this only tells an empty or wrong file apart at start).
fn count_certificates(pem: &[u8]) -> usize {
    String::from_utf8_lossy(pem)
        .matches("-----BEGIN CERTIFICATE-----")
        .count()
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
fn exported(meta: &Metadata<'_>) -> bool {
    let ours = meta.target().starts_with("objectos");
    if meta.is_span() {
        ours && *meta.level() <= Level::DEBUG
    } else {
        ours && *meta.level() <= Level::WARN
    }
}

/// The layer's filter: [`exported`] callsites, and of those only what belongs to a trace that
/// may be recorded.
///
/// The layer activates a span's OpenTelemetry context while the span is entered, so the current
/// context is the nearest ancestor the layer sees, which is the parent it would give a new span.
/// No valid context: the new span is a root, and the sampler decides when it starts. A sampled
/// one: the new span joins it. An unsampled one: the new span would be built only to be
/// dropped (the sampler follows the parent), so it is turned away here, and with the log
/// filter below debug no layer wants it: `tracing` then never creates it, nor formats its
/// fields. Events (warnings inside spans) follow the same rule.
///
/// A span made with an explicit parent (`parent: ...`) is judged by the current context too;
/// the ObjectOS crates create their spans in the context of their parent.
struct SampledTraces;

impl SampledTraces {
    fn admits(meta: &Metadata<'_>) -> bool {
        opentelemetry::Context::map_current(|cx| {
            let span = cx.span();
            let current = span.span_context();
            if meta.is_span() {
                !current.is_valid() || current.is_sampled()
            } else {
                current.is_valid() && current.is_sampled()
            }
        })
    }
}

impl<S> Filter<S> for SampledTraces {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        exported(meta) && Self::admits(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // `sometimes`: the answer depends on the trace the span would join.
        if exported(meta) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }
}

/// The same judgement for the whole subscriber. A per-layer filter only keeps a span from its
/// own layer: `tracing-subscriber` still creates a span every per-layer filter refused (its
/// registry entry, and the enter, exit and close of it on every poll). This layer's `enabled`
/// is global, so an ObjectOS span of an unsampled trace that the log lines do not want either
/// (more verbose than `logs`, the log filter's most verbose level) is never created.
struct UnsampledGate {
    logs: LevelFilter,
}

impl UnsampledGate {
    fn gates(&self, meta: &Metadata<'_>) -> bool {
        meta.is_span() && exported(meta) && *meta.level() > self.logs
    }
}

impl<S: Subscriber> Layer<S> for UnsampledGate {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.gates(meta) {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _cx: Context<'_, S>) -> bool {
        !self.gates(meta) || SampledTraces::admits(meta)
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
/// all when its trace is not sampled, instead of being created for nobody.
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
        .with_filter(SampledTraces);
    let gated = UnsampledGate { logs }.and_then(layer);
    objectos_kernel::trace::install(Box::new(OtelBridge));
    Ok((Box::new(gated), Tracing { provider }))
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

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

    #[test]
    fn the_ca_file_is_read_at_start_and_named_when_wrong() {
        let plain = TracingConfig::default();
        assert!(plain.tls_config().unwrap().is_none(), "http:// has no TLS");
        let mut c = TracingConfig {
            endpoint: "https://127.0.0.1:4317".into(),
            ca_file: Some(format!("{FIXTURES}/ca.pem")),
            ..TracingConfig::default()
        };
        assert!(c.tls_config().unwrap().is_some());
        c.ca_file = Some(format!("{FIXTURES}/no-such-file.pem"));
        let e = c.tls_config().unwrap_err().to_string();
        assert!(
            e.contains("metrics.tracing.caFile") && e.contains("no-such-file.pem"),
            "{e}"
        );
        // A key is not a certificate.
        c.ca_file = Some(format!("{FIXTURES}/server.key"));
        let e = c.tls_config().unwrap_err().to_string();
        assert!(
            e.contains("metrics.tracing.caFile") && e.contains("no PEM certificate"),
            "{e}"
        );
        // The layer refuses to start with it, naming the key.
        let e = layer::<tracing_subscriber::Registry>(&c, "test")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("metrics.tracing.caFile"), "{e}");
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

    /// Whether a debug span opened inside a new root span exists, with the layer at `ratio`.
    fn child_exists(ratio: f64) -> (bool, bool) {
        use tracing_subscriber::layer::SubscriberExt as _;
        let config = TracingConfig {
            enabled: true,
            // Nothing listens on the discard port: the spans of the sampled run are dropped.
            endpoint: "http://127.0.0.1:9".into(),
            sampling_ratio: ratio,
            timeout_seconds: 1,
            ..TracingConfig::default()
        };
        // As the server builds it: log lines at info (into a sink) and the trace layer.
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .with_filter(LevelFilter::INFO)
            .boxed();
        let (traces, tracing) =
            layer_beside_logs::<tracing_subscriber::Registry>(&config, "test", LevelFilter::INFO)
                .unwrap();
        let subscriber = tracing_subscriber::registry().with(vec![logs, traces]);
        let seen = tracing::subscriber::with_default(subscriber, || {
            let root = tracing::info_span!("test.root");
            let _in_root = root.enter();
            let child = tracing::debug_span!("test.child");
            let grandchild = child.in_scope(|| tracing::debug_span!("test.grandchild"));
            (!child.is_disabled(), !grandchild.is_disabled())
        });
        drop(tracing);
        seen
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn spans_below_an_unsampled_root_are_never_created() {
        assert_eq!(child_exists(1.0), (true, true), "sampled: the whole tree");
        assert_eq!(
            child_exists(0.0),
            (false, false),
            "not sampled: the root alone"
        );
    }
}
