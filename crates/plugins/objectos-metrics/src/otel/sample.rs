//! What reaches the OpenTelemetry layer: sampling decided once per trace, a per-layer filter on
//! the layer, and a gate in front of it that decides for the whole subscriber.
//!
//! For a request, the HTTP hoop asks the bridge before it creates the request span
//! ([`objectos_kernel::trace::request_trace`]): a client's well-formed `traceparent` is followed
//! (parent-based: its sampled flag decides), a new trace is drawn at `samplingRatio`, and a new
//! trace that is not recorded gets an untraced request span, which the OpenTelemetry layer never
//! sees (no OpenTelemetry span is built, no trace id recorded). Other roots (a job, an event, a
//! lifecycle step) are sampled by the SDK's sampler ([`RequestsDrawn`]) when they start.
//!
//! Below an untraced or unsampled span, [`SampledTraces`] (the layer's filter) keeps every
//! further span from the trace layer, and [`UnsampledGate`] (a plain layer outside it, whose
//! `enabled` is the subscriber's) keeps it from being created at all when the logs do not want
//! it either: a data operation, a statement or a permission decision of an unsampled request is
//! then a disabled span (a level check and a thread-local read), not an OpenTelemetry span built
//! and dropped. The gate knows the untraced request spans by their ids, so entering and leaving
//! one on every poll of its request costs it an atomic load, not a registry lookup.
//!
//! The trace layer keeps `tracing-subscriber`'s per-layer filter (one registry lookup per enter,
//! exit and close of any span, the untraced request span included) rather than sitting inside
//! the gate, which could skip those: the bridge reaches the layer's span contexts by
//! downcasting the subscriber, and a wrapper would have to forward that with `unsafe` code,
//! which this workspace forbids.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use objectos_kernel::trace;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, TraceState};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber, span};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

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

/// Whether the callsite is the hoop's untraced request span.
fn untraced_span(meta: &Metadata<'_>) -> bool {
    meta.is_span() && trace::is_untraced(meta.target())
}

thread_local! {
    /// How many untraced spans (request spans the hoop did not sample) this thread is inside:
    /// what runs below one belongs to a trace that is not recorded. The OpenTelemetry context
    /// cannot say so, since no OpenTelemetry span was built for it.
    static UNTRACED_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether a new span or event of an [`exported`] callsite belongs to a trace that may be
/// recorded.
///
/// The OpenTelemetry layer activates a span's context while the span is entered, so the current
/// context is the nearest ancestor the layer sees, which is the parent it would give a new span.
/// No valid context: the new span is a root, and the sampler decides when it starts. A sampled
/// one: the new span joins it. An unsampled one: the new span would be built only to be dropped
/// (the sampler follows the parent), so it is turned away, and with the log filter below debug
/// no layer wants it: `tracing` then never creates it, nor formats its fields. Events
/// (warnings inside spans) follow the same rule, but need a sampled span to land in.
///
/// A span made with an explicit parent (`parent: ...`) is judged by the current context too;
/// the ObjectOS crates create their spans in the context of their parent.
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

/// The trace layer `otel` with its filter, behind the gate: what [`layer_beside_logs`] builds.
/// `logs` is the most verbose level a log line may have (the log filter's `max_level_hint`).
///
/// [`layer_beside_logs`]: super::layer_beside_logs
pub(super) fn gated<S, L>(otel: L, logs: LevelFilter) -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S> + Send + Sync,
{
    // The gate outside, so its `enabled` is asked first and a refused span goes no further.
    otel.with_filter(SampledTraces)
        .and_then(UnsampledGate::new(logs, SLOT_BITS))
}

/// The trace layer's filter: [`exported`] callsites, and of those only what [`admits`] lets
/// through.
pub(super) struct SampledTraces;

impl<S> Filter<S> for SampledTraces {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        exported(meta) && admits(meta)
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
/// is global, so an exported span of a trace that is not recorded and that the log lines do not
/// want either (more verbose than `logs`) is never created; any other callsite more verbose than
/// `logs` is never enabled, since neither the traces nor the logs want it; the rest is left to
/// the log filter. Add it outside the log layers (`logs.and_then(traces)`): in a `Vec` beside
/// them it still decides the same, but `tracing-subscriber` then asks it about every callsite
/// the log filter refuses, every time.
///
/// It also keeps the count of untraced spans the thread is in ([`UNTRACED_DEPTH`]), since it is
/// the layer that sees every span entered and left.
pub(super) struct UnsampledGate {
    logs: LevelFilter,
    untraced: UntracedSpans,
}

impl UnsampledGate {
    fn new(logs: LevelFilter, slot_bits: u32) -> Self {
        Self {
            logs,
            untraced: UntracedSpans::new(slot_bits),
        }
    }

    /// Whether the callsite is decided per span: exported, and more verbose than the logs.
    fn gates(&self, meta: &Metadata<'_>) -> bool {
        // The level first: it settles most callsites without a look at the target.
        *meta.level() > self.logs && exported(meta)
    }

    /// Whether a callsite that is not gated is enabled: what is exported, the untraced request
    /// span (its depth is counted even when no log line wants it), and what the logs may want.
    fn wanted(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= self.logs || exported(meta) || untraced_span(meta)
    }
}

impl<S> Layer<S> for UnsampledGate
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.gates(meta) {
            Interest::sometimes()
        } else if self.wanted(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _cx: Context<'_, S>) -> bool {
        if self.gates(meta) {
            admits(meta)
        } else {
            self.wanted(meta)
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.logs.max(LevelFilter::DEBUG))
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, _cx: Context<'_, S>) {
        if untraced_span(attrs.metadata()) {
            self.untraced.insert(id);
        }
    }

    fn on_enter(&self, id: &span::Id, cx: Context<'_, S>) {
        if self.untraced.contains(id, &cx) {
            UNTRACED_DEPTH.with(|d| d.set(d.get().saturating_add(1)));
        }
    }

    fn on_exit(&self, id: &span::Id, cx: Context<'_, S>) {
        if self.untraced.contains(id, &cx) {
            UNTRACED_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }

    fn on_close(&self, id: span::Id, cx: Context<'_, S>) {
        self.untraced.remove(&id, &cx);
    }
}

/// The table of untraced request spans alive has `1 << SLOT_BITS` slots.
const SLOT_BITS: u32 = 10;

/// The untraced request spans alive, by id: a span's id is set in its slot when it is created
/// and cleared when it closes, so a slot never holds the id of a closed span (the registry reuses
/// ids only after a close). Requests in flight are about one per connection; a span whose slot is
/// taken is counted in `overflow` and, while there are any, a span found in no slot is looked up
/// in the registry for its target.
struct UntracedSpans {
    slots: Box<[AtomicU64]>,
    bits: u32,
    overflow: AtomicUsize,
}

impl UntracedSpans {
    /// `1 << bits` slots, `bits` from 1 to 16.
    fn new(bits: u32) -> Self {
        let bits = bits.clamp(1, 16);
        Self {
            slots: (0..1usize << bits).map(|_| AtomicU64::new(0)).collect(),
            bits,
            overflow: AtomicUsize::new(0),
        }
    }

    fn slot(&self, id: &span::Id) -> Option<&AtomicU64> {
        // Fibonacci hashing: the registry's ids are slab keys whose high bits vary the least.
        let hash = id.into_u64().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - self.bits);
        self.slots.get(usize::try_from(hash).ok()?)
    }

    fn insert(&self, id: &span::Id) {
        let kept = self.slot(id).is_some_and(|slot| {
            slot.compare_exchange(0, id.into_u64(), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        });
        if !kept {
            self.overflow.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn contains<S>(&self, id: &span::Id, cx: &Context<'_, S>) -> bool
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        self.slot(id)
            .is_some_and(|slot| slot.load(Ordering::Acquire) == id.into_u64())
            || (self.overflow.load(Ordering::Acquire) > 0 && looked_up_untraced(id, cx))
    }

    /// Forgets a closing span, if it is one.
    fn remove<S>(&self, id: &span::Id, cx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let raw = id.into_u64();
        let freed = self.slot(id).is_some_and(|slot| {
            slot.compare_exchange(raw, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        });
        if !freed && self.overflow.load(Ordering::Acquire) > 0 && looked_up_untraced(id, cx) {
            self.overflow.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Whether the span `id` is an untraced request span, by its metadata in the registry.
fn looked_up_untraced<S>(id: &span::Id, cx: &Context<'_, S>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    cx.metadata(id).is_some_and(untraced_span)
}

/// The sampler: parent-based, new traces at the configured ratio of their trace ids, except a
/// request's root span (kind `server`, no parent), which the HTTP hoop only lets the layer see
/// once [`super::OtelBridge`] drew it (`sample_new_request`): drawing again here would record a
/// share of ratio squared.
#[derive(Debug, Clone)]
pub(super) struct RequestsDrawn {
    inner: Sampler,
}

impl RequestsDrawn {
    pub(super) fn new(ratio: f64) -> Self {
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags};
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::otel::{OtelBridge, TracingConfig, layer_beside_logs};
    use objectos_kernel::trace::TraceBridge as _;

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

    fn config(ratio: f64) -> TracingConfig {
        TracingConfig {
            enabled: true,
            // Nothing listens on the discard port: the spans of a sampled run are dropped.
            endpoint: "http://127.0.0.1:9".into(),
            sampling_ratio: ratio,
            timeout_seconds: 1,
            ..TracingConfig::default()
        }
    }

    /// Whether a debug span opened inside a new root span exists, with the layer at `ratio`.
    fn child_exists(ratio: f64) -> (bool, bool) {
        // As the server builds it: log lines at info (into a sink) and the trace layer outside.
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .with_filter(LevelFilter::INFO)
            .boxed();
        let (traces, tracing) = layer_beside_logs::<tracing_subscriber::Registry>(
            &config(ratio),
            "test",
            LevelFilter::INFO,
        )
        .unwrap();
        let subscriber = tracing_subscriber::registry().with(logs.and_then(traces));
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

    /// A stand-in for the OpenTelemetry layer: what it was given.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Seen {
        fn on_new_span(&self, attrs: &span::Attributes<'_>, _id: &span::Id, _cx: Context<'_, S>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("new {}", attrs.metadata().name()));
        }

        fn on_enter(&self, id: &span::Id, cx: Context<'_, S>) {
            let name = cx.metadata(id).map_or("?", |m| m.name());
            self.0.lock().unwrap().push(format!("enter {name}"));
        }
    }

    /// Opens `others` untraced request spans, then one more, enters it and opens a debug span
    /// inside; then a debug span outside any request. The gate has `1 << bits` slots, so with
    /// more spans than slots the registry lookup is what finds them. Returns whether the inner
    /// and the outer debug span exist, and what the wrapped layer saw.
    fn untraced_request(bits: u32, others: usize) -> (bool, bool, Vec<String>) {
        let seen = Seen::default();
        let gate = seen
            .clone()
            .with_filter(SampledTraces)
            .and_then(UnsampledGate::new(LevelFilter::INFO, bits));
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .with_filter(LevelFilter::INFO);
        let subscriber = tracing_subscriber::registry().with(logs).with(gate);
        let (inner, outer) = tracing::subscriber::with_default(subscriber, || {
            let open =
                || tracing::info_span!(target: "objectos_http::hoops::untraced", "http.request");
            let mut result = (true, true);
            // Twice: the second round reuses the ids (and slots) the first one closed.
            for _ in 0..2 {
                let alive: Vec<tracing::Span> = (0..others).map(|_| open()).collect();
                let request = open();
                let inner = request.in_scope(|| tracing::debug_span!("test.inner"));
                drop(alive);
                drop(request);
                let outer = tracing::debug_span!("test.outer");
                result = (!inner.is_disabled(), !outer.is_disabled());
            }
            result
        });
        let seen = seen.0.lock().unwrap().clone();
        (inner, outer, seen)
    }

    #[test]
    fn an_untraced_request_reaches_no_trace_layer_and_makes_no_span_below_it() {
        for (bits, others) in [(10, 0), (10, 20), (1, 6)] {
            let (inner, outer, seen) = untraced_request(bits, others);
            assert!(!inner, "{bits}/{others}: a span below an untraced request");
            assert!(outer, "{bits}/{others}: a new root after the request");
            assert_eq!(
                seen,
                ["new test.outer", "new test.outer"],
                "{bits}/{others}: the trace layer saw the untraced spans"
            );
        }
    }
}
