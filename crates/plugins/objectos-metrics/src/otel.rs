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
//! Sampling is decided once per trace. For a request, the HTTP hoop asks the bridge before it
//! creates the request span ([`objectos_kernel::trace::request_trace`]): a client's well-formed
//! `traceparent` is followed (parent-based: its sampled flag decides), a new trace is drawn at
//! `samplingRatio`, and a new trace that is not recorded gets an untraced request span, which
//! this layer never sees (no OpenTelemetry span is built, no trace id recorded). Other roots
//! (a job, an event, a lifecycle step) are sampled by the SDK's sampler when they start. Below
//! an untraced or unsampled span the layer's filter keeps every further span from the trace
//! layer, and the gate the server puts in front ([`layer_beside_logs`], given the log filter's
//! level) keeps it from being created at all when the logs do not want it: a data operation, a
//! statement or a permission decision of an unsampled request is then a disabled span (a level
//! check and a thread-local read), not an OpenTelemetry span built and dropped.
//!
//! The collector may be reached over TLS (`https://` endpoint): the Mozilla roots compiled in
//! (webpki-roots), optionally the operating system's store (`nativeRoots`), and a private CA
//! from a PEM file (`caFile`, or the `OBJECTOS_TRACING_CA_FILE` environment variable). A
//! collector that requires mutual TLS gets the client certificate of `certFile` with the key
//! of `keyFile` (or `OBJECTOS_TRACING_CERT_FILE` and `OBJECTOS_TRACING_KEY_FILE`).
//!
//! Export runs on the SDK's batch thread: a collector that is down or slow never holds up a
//! request. Failed batches are dropped, counted in `objectos_tracing_spans_dropped_total` and
//! reported by a warning at most once a minute.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use objectos_kernel::trace::{self, TraceBridge, TraceHeaders};
use objectos_spec::settings::SettingsProblem;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Link, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry::{KeyValue, Value};
use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    IdGenerator as _, RandomIdGenerator, Sampler, SamplingDecision, SamplingResult,
    SdkTracerProvider, ShouldSample, SpanData, SpanExporter,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber, span};
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

/// Environment variable read for the client certificate when `certFile` is not set.
pub const CERT_FILE_ENV: &str = "OBJECTOS_TRACING_CERT_FILE";

/// Environment variable read for the client key when `keyFile` is not set.
pub const KEY_FILE_ENV: &str = "OBJECTOS_TRACING_KEY_FILE";

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

    /// Whether the endpoint is reached over TLS.
    pub fn tls(&self) -> bool {
        self.endpoint.starts_with("https://")
    }

    /// The TLS settings of an `https://` endpoint (`None` for `http://`): the built-in roots,
    /// the system's when `nativeRoots`, and the certificates of `caFile` (or of the file the
    /// `OBJECTOS_TRACING_CA_FILE` variable names); for mutual TLS, the client certificate of
    /// `certFile` with the key of `keyFile` (or `OBJECTOS_TRACING_CERT_FILE` and
    /// `OBJECTOS_TRACING_KEY_FILE`). A file that cannot be read or holds no certificate (no
    /// key), or a certificate without its key or a key without its certificate, is an error
    /// naming the key and the path, so the server does not start without the trust or the
    /// identity it was configured with.
    pub fn tls_config(&self) -> Result<Option<ClientTlsConfig>> {
        if !self.tls() {
            return Ok(None);
        }
        let mut tls = ClientTlsConfig::new().with_webpki_roots();
        if self.native_roots {
            tls = tls.with_native_roots();
        }
        if let Some(ca) = PemSource::find(&self.ca_file, "caFile", CA_FILE_ENV) {
            tls = tls.ca_certificate(Certificate::from_pem(ca.read_certificates()?));
        }
        let cert = PemSource::find(&self.cert_file, "certFile", CERT_FILE_ENV);
        let key = PemSource::find(&self.key_file, "keyFile", KEY_FILE_ENV);
        match (cert, key) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                let chain = cert.read_certificates()?;
                let key = key.read_key()?;
                tls = tls.identity(Identity::from_pem(chain, key));
            }
            (Some(cert), None) => {
                return Err(MetricsError::Config(format!(
                    "{}: {} is a client certificate without its key: set metrics.tracing.keyFile \
                     (or {KEY_FILE_ENV}) too",
                    cert.key, cert.path
                )));
            }
            (None, Some(key)) => {
                return Err(MetricsError::Config(format!(
                    "{}: {} is a client key without its certificate: set \
                     metrics.tracing.certFile (or {CERT_FILE_ENV}) too",
                    key.key, key.path
                )));
            }
        }
        Ok(Some(tls))
    }
}

/// A PEM file named by a `metrics.tracing` key or, when that is unset, by its environment
/// variable; `key` says which, for the errors.
struct PemSource {
    path: String,
    key: String,
}

impl PemSource {
    fn find(configured: &Option<String>, name: &str, env: &str) -> Option<Self> {
        if let Some(path) = configured {
            return Some(Self {
                path: path.clone(),
                key: format!("metrics.tracing.{name}"),
            });
        }
        let path = std::env::var(env).ok().filter(|v| !v.trim().is_empty())?;
        Some(Self {
            path,
            key: format!("{env} (metrics.tracing.{name})"),
        })
    }

    fn read(&self) -> Result<Vec<u8>> {
        std::fs::read(&self.path).map_err(|e| {
            MetricsError::Config(format!("{}: cannot read {}: {e}", self.key, self.path))
        })
    }

    /// The file, when it holds at least one certificate.
    fn read_certificates(&self) -> Result<Vec<u8>> {
        let pem = self.read()?;
        if count_blocks(&pem, "CERTIFICATE") == 0 {
            return Err(MetricsError::Config(format!(
                "{}: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                self.key, self.path
            )));
        }
        Ok(pem)
    }

    /// The file, when it holds a private key.
    fn read_key(&self) -> Result<Vec<u8>> {
        let pem = self.read()?;
        if count_blocks(&pem, "PRIVATE KEY") == 0 {
            return Err(MetricsError::Config(format!(
                "{}: {} holds no unencrypted PEM private key (-----BEGIN PRIVATE \
                 KEY-----, or an RSA or EC one)",
                self.key, self.path
            )));
        }
        Ok(pem)
    }
}

/// The PEM blocks of a file whose label ends in `label` (`CERTIFICATE`; `PRIVATE KEY` also
/// counts `RSA PRIVATE KEY` and `EC PRIVATE KEY`). The TLS library parses them when the
/// channel is built; this only tells an empty or wrong file apart at start.
fn count_blocks(pem: &[u8], label: &str) -> usize {
    String::from_utf8_lossy(pem)
        .split("-----BEGIN ")
        .skip(1)
        .filter_map(|rest| rest.split_once("-----").map(|(name, _)| name))
        // rustls reads no encrypted key: such a file is as good as none.
        .filter(|name| name.ends_with(label) && !name.starts_with("ENCRYPTED"))
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
        // An untraced request span (the hoop's sampler said no) is for the log lines only.
        ours && *meta.level() <= Level::DEBUG && !trace::is_untraced(meta.target())
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

thread_local! {
    /// How many untraced spans (request spans the hoop did not sample) this thread is inside:
    /// what runs below one belongs to a trace that is not recorded. The OpenTelemetry context
    /// cannot say so, since no OpenTelemetry span was built for it.
    static UNTRACED_DEPTH: Cell<u32> = const { Cell::new(0) };
}

impl SampledTraces {
    fn admits(meta: &Metadata<'_>) -> bool {
        if UNTRACED_DEPTH.with(Cell::get) > 0 {
            return false;
        }
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
///
/// It also keeps the count of untraced spans the thread is in ([`UNTRACED_DEPTH`]), since it is
/// the layer that sees every span entered and left.
struct UnsampledGate {
    logs: LevelFilter,
}

impl UnsampledGate {
    fn gates(&self, meta: &Metadata<'_>) -> bool {
        meta.is_span() && exported(meta) && *meta.level() > self.logs
    }
}

/// Whether the span `id` is an untraced request span.
fn untraced<S>(id: &span::Id, cx: &Context<'_, S>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    cx.metadata(id)
        .is_some_and(|meta| trace::is_untraced(meta.target()))
}

impl<S> Layer<S> for UnsampledGate
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
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

    fn on_enter(&self, id: &span::Id, cx: Context<'_, S>) {
        if untraced(id, &cx) {
            UNTRACED_DEPTH.with(|d| d.set(d.get().saturating_add(1)));
        }
    }

    fn on_exit(&self, id: &span::Id, cx: Context<'_, S>) {
        if untraced(id, &cx) {
            UNTRACED_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
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
        .with_sampler(RequestsDrawn::new(config.sampling_ratio))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("objectos");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(false)
        .with_filter(SampledTraces);
    let gated = UnsampledGate { logs }.and_then(layer);
    objectos_kernel::trace::install(Box::new(OtelBridge {
        ratio: config.sampling_ratio,
    }));
    Ok((Box::new(gated), Tracing { provider }))
}

/// The sampler: parent-based, new traces at the configured ratio of their trace ids, except a
/// request's root span (kind `server`, no parent), which the HTTP hoop only lets the layer see
/// once [`OtelBridge::sample_new_request`] drew it: drawing again here would record a share of
/// ratio squared.
#[derive(Debug, Clone)]
struct RequestsDrawn {
    inner: Sampler,
}

impl RequestsDrawn {
    fn new(ratio: f64) -> Self {
        Self {
            inner: Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))),
        }
    }
}

impl ShouldSample for RequestsDrawn {
    fn should_sample(
        &self,
        parent_context: Option<&opentelemetry::Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        // `has_active_span`, as `Sampler::ParentBased` tells a root from a child.
        let root = !parent_context.is_some_and(opentelemetry::Context::has_active_span);
        if root && *span_kind == SpanKind::Server {
            return SamplingResult {
                decision: SamplingDecision::RecordAndSample,
                attributes: Vec::new(),
                trace_state: TraceState::default(),
            };
        }
        self.inner
            .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}

/// The kernel's bridge, on the W3C propagator and the layer's span contexts.
struct OtelBridge {
    /// `samplingRatio`, drawn for a request that starts a new trace.
    ratio: f64,
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
    fn the_client_certificate_needs_its_key_and_both_are_read_at_start() {
        let base = TracingConfig {
            endpoint: "https://127.0.0.1:4317".into(),
            ca_file: Some(format!("{FIXTURES}/ca.pem")),
            ..TracingConfig::default()
        };
        let with = |cert: Option<&str>, key: Option<&str>| TracingConfig {
            cert_file: cert.map(|c| format!("{FIXTURES}/{c}")),
            key_file: key.map(|k| format!("{FIXTURES}/{k}")),
            ..base.clone()
        };
        let error = |c: &TracingConfig| {
            c.tls_config()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            with(Some("client.pem"), Some("client.key"))
                .tls_config()
                .unwrap()
                .is_some()
        );
        // One half only: named, with the path given.
        let e = error(&with(Some("client.pem"), None));
        assert!(
            e.contains("metrics.tracing.certFile")
                && e.contains("client.pem")
                && e.contains("keyFile"),
            "{e}"
        );
        let e = error(&with(None, Some("client.key")));
        assert!(
            e.contains("metrics.tracing.keyFile")
                && e.contains("client.key")
                && e.contains("certFile"),
            "{e}"
        );
        // Unreadable files, and files of the wrong kind.
        let e = error(&with(Some("no-such-cert.pem"), Some("client.key")));
        assert!(
            e.contains("metrics.tracing.certFile") && e.contains("no-such-cert.pem"),
            "{e}"
        );
        let e = error(&with(Some("client.pem"), Some("no-such-key.pem")));
        assert!(
            e.contains("metrics.tracing.keyFile") && e.contains("no-such-key.pem"),
            "{e}"
        );
        let e = error(&with(Some("client.key"), Some("client.key")));
        assert!(
            e.contains("metrics.tracing.certFile") && e.contains("no PEM certificate"),
            "{e}"
        );
        let e = error(&with(Some("client.pem"), Some("client.pem")));
        assert!(
            e.contains("metrics.tracing.keyFile") && e.contains("no unencrypted PEM private key"),
            "{e}"
        );
        // Only for https://, and never empty.
        let plain = TracingConfig {
            endpoint: "http://127.0.0.1:4317".into(),
            cert_file: Some("client.pem".into()),
            key_file: Some(" ".into()),
            ..TracingConfig::default()
        };
        let p: Vec<String> = plain
            .problems()
            .into_iter()
            .map(|p| format!("{p:?}"))
            .collect();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("certFile") && p[0].contains("https"), "{p:?}");
        assert!(p[1].contains("keyFile") && p[1].contains("empty"), "{p:?}");
    }

    #[test]
    fn pem_blocks_are_told_apart() {
        let pem = b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n\
            -----BEGIN EC PRIVATE KEY-----\ny\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(count_blocks(pem, "CERTIFICATE"), 1);
        assert_eq!(count_blocks(pem, "PRIVATE KEY"), 1);
        let encrypted =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nz\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert_eq!(count_blocks(encrypted, "PRIVATE KEY"), 0);
        assert_eq!(count_blocks(b"", "CERTIFICATE"), 0);
    }

    #[test]
    fn a_drawn_request_root_is_recorded_and_other_roots_follow_the_ratio() {
        let sampler = RequestsDrawn::new(0.0);
        let id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let decide = |kind: SpanKind, parent: Option<&opentelemetry::Context>| {
            sampler
                .should_sample(parent, id, "x", &kind, &[], &[])
                .decision
        };
        assert_eq!(
            decide(SpanKind::Server, None),
            SamplingDecision::RecordAndSample
        );
        assert_eq!(decide(SpanKind::Internal, None), SamplingDecision::Drop);
        // Below a parent, the parent's flag, whatever the kind.
        use opentelemetry::trace::{SpanContext, SpanId};
        let parent = |flags| {
            opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
                id,
                SpanId::from_hex("00f067aa0ba902b7").unwrap(),
                flags,
                true,
                TraceState::default(),
            ))
        };
        assert_eq!(
            decide(SpanKind::Server, Some(&parent(TraceFlags::default()))),
            SamplingDecision::Drop
        );
        assert_eq!(
            decide(SpanKind::Internal, Some(&parent(TraceFlags::SAMPLED))),
            SamplingDecision::RecordAndSample
        );
        // The hoop's draw: never at 0, always at 1.
        assert!(!OtelBridge { ratio: 0.0 }.sample_new_request());
        assert!(OtelBridge { ratio: 1.0 }.sample_new_request());
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
