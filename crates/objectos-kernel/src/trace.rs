//! W3C Trace Context for crates that know no OpenTelemetry: the HTTP plugin continues a
//! client's `traceparent`, the data engine and the jobs plugin carry the current context as a
//! string (event metadata, a job header), a worker continues it.
//!
//! The tracing backend (the metrics plugin's OpenTelemetry layer, `metrics.tracing`) installs a
//! [`TraceBridge`] once per process, as the `tracing` subscriber itself is once per process.
//! Without one, every function here is a cheap no-op, so callers need no configuration checks.

use std::sync::OnceLock;

/// The W3C Trace Context of a span, as carried in headers and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeaders {
    /// `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`.
    pub traceparent: String,
    /// The vendor part, passed on as received; `None` when empty.
    pub tracestate: Option<String>,
}

impl TraceHeaders {
    /// The trace id (32 lowercase hex digits) of a well-formed `traceparent`.
    pub fn trace_id(&self) -> Option<&str> {
        parse_traceparent(&self.traceparent).map(|p| p.trace_id)
    }
}

/// What the tracing backend does for the crates above.
pub trait TraceBridge: Send + Sync + 'static {
    /// Makes `span` (created, not yet entered) a child of the remote context, when
    /// `traceparent` is well formed; returns whether it did. A malformed one is ignored and the
    /// span starts a new trace.
    fn continue_remote(
        &self,
        span: &tracing::Span,
        traceparent: &str,
        tracestate: Option<&str>,
    ) -> bool;

    /// The context of `span`, for a child started elsewhere (another task, node or process).
    fn headers_of(&self, span: &tracing::Span) -> Option<TraceHeaders>;

    /// The trace id (32 lowercase hex digits) of `span`, for its log lines. The default reads
    /// it out of [`TraceBridge::headers_of`]; a backend can skip formatting the whole header.
    fn trace_id_of(&self, span: &tracing::Span) -> Option<String> {
        self.headers_of(span)
            .and_then(|h| h.trace_id().map(str::to_owned))
    }

    /// Whether a new trace (no usable remote parent) that a request starts is recorded. Asked
    /// by the HTTP hoop before it creates the request span, so an unsampled request's span is
    /// made [untraced](UNTRACED_TARGET) and the backend builds nothing for it; the backend
    /// must then record the request span it does see (a root of kind `server`) without asking
    /// its sampler again. The default records every one.
    fn sample_new_request(&self) -> bool {
        true
    }
}

/// The target suffix of a span the tracing backend must never turn into a trace span: the
/// HTTP hoop makes its request span with the target `objectos_http::hoops::untraced` when
/// the request's trace is not recorded (the log lines still see it, the target staying under
/// `objectos_http`), and the backend then also keeps every span below it out of the trace.
pub const UNTRACED_TARGET: &str = "::untraced";

/// Whether a span's target marks it [untraced](UNTRACED_TARGET).
pub fn is_untraced(target: &str) -> bool {
    target.ends_with(UNTRACED_TARGET)
}

/// How a request is traced, decided before its span is created ([`request_trace`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestTrace<'a> {
    /// No tracing backend.
    Off,
    /// A new trace that is not recorded: the span is made untraced, no trace id is recorded
    /// (it would correlate nothing), and events or jobs of the request carry no context.
    Untraced,
    /// A new trace that is recorded: the span is a root.
    Root,
    /// The client's well-formed `traceparent`: the span is its child, recorded or not as the
    /// parent's sampled flag says, and the parent's trace id goes into the log lines.
    Remote(&'a str),
}

/// The [`RequestTrace`] of a request that sent `traceparent` (a malformed one is ignored: a
/// new trace, sampled by the backend's ratio).
pub fn request_trace(traceparent: Option<&str>) -> RequestTrace<'_> {
    let Some(bridge) = BRIDGE.get() else {
        return RequestTrace::Off;
    };
    match traceparent.filter(|tp| parse_traceparent(tp).is_some()) {
        Some(tp) => RequestTrace::Remote(tp),
        None if bridge.sample_new_request() => RequestTrace::Root,
        None => RequestTrace::Untraced,
    }
}

/// Joins the request span `span` (made as `trace` says) to its trace and records its
/// `trace_id` field: a remote parent's id as the client sent it, a recorded root's own.
pub fn start_request(span: &tracing::Span, trace: RequestTrace<'_>, tracestate: Option<&str>) {
    let Some(bridge) = BRIDGE.get() else {
        return;
    };
    match trace {
        RequestTrace::Off | RequestTrace::Untraced => {}
        RequestTrace::Root => record_trace_id(span),
        RequestTrace::Remote(tp) => {
            bridge.continue_remote(span, tp, tracestate);
            if let Some(p) = parse_traceparent(tp) {
                span.record("trace_id", p.trace_id);
            }
        }
    }
}

static BRIDGE: OnceLock<Box<dyn TraceBridge>> = OnceLock::new();

/// Installs the process's bridge; `false` when one was installed before (the first stays).
pub fn install(bridge: Box<dyn TraceBridge>) -> bool {
    BRIDGE.set(bridge).is_ok()
}

/// Whether a tracing backend is installed.
pub fn enabled() -> bool {
    BRIDGE.get().is_some()
}

/// Continues the remote trace `traceparent` in `span` (see [`TraceBridge::continue_remote`]),
/// then records the span's trace id in its `trace_id` field (when it declares one), so log
/// lines written inside it carry the trace id. Returns whether the remote parent was taken.
pub fn continue_remote(
    span: &tracing::Span,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) -> bool {
    let Some(bridge) = BRIDGE.get() else {
        return false;
    };
    let continued = traceparent
        .filter(|tp| parse_traceparent(tp).is_some())
        .is_some_and(|tp| bridge.continue_remote(span, tp, tracestate));
    record_trace_id(span);
    continued
}

/// Records `span`'s trace id in its `trace_id` field, if it has one and a backend is installed.
pub fn record_trace_id(span: &tracing::Span) {
    if let Some(id) = BRIDGE.get().and_then(|b| b.trace_id_of(span)) {
        span.record("trace_id", id.as_str());
    }
}

/// The context of `span`, when a backend is installed and the span is enabled.
pub fn headers_of(span: &tracing::Span) -> Option<TraceHeaders> {
    BRIDGE.get()?.headers_of(span)
}

/// The context of the current span: what an event, a job or an outbound request carries.
pub fn current() -> Option<TraceHeaders> {
    headers_of(&tracing::Span::current())
}

/// The parts of a well-formed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traceparent<'a> {
    pub trace_id: &'a str,
    pub parent_id: &'a str,
    pub sampled: bool,
}

/// Parses a W3C `traceparent` (version 00, or a later version read as 00 as the spec asks);
/// `None` for anything malformed, including the all-zero ids the spec forbids.
pub fn parse_traceparent(value: &str) -> Option<Traceparent<'_>> {
    let value = value.trim();
    let mut parts = value.split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !hex(version, 2) || version == "ff" || !hex(trace_id, 32) || !hex(parent_id, 16) {
        return None;
    }
    if !hex(flags, 2) || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if trace_id.bytes().all(|b| b == b'0') || parent_id.bytes().all(|b| b == b'0') {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(Traceparent {
        trace_id,
        parent_id,
        sampled: flags & 1 == 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parses_and_rejects() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let p = parse_traceparent(ok).unwrap();
        assert_eq!(p.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.parent_id, "00f067aa0ba902b7");
        assert!(p.sampled);
        for bad in [
            "",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        // A later version may append fields.
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x")
                .is_some()
        );
    }

    #[test]
    fn without_a_bridge_nothing_happens() {
        let span = tracing::info_span!("t", trace_id = tracing::field::Empty);
        assert!(!continue_remote(
            &span,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            None
        ));
        assert!(current().is_none());
        assert_eq!(
            request_trace(Some(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            )),
            RequestTrace::Off
        );
    }

    #[test]
    fn the_untraced_target_is_a_suffix() {
        assert!(is_untraced("objectos_http::hoops::untraced"));
        assert!(!is_untraced("objectos_http::hoops"));
        assert!(!is_untraced("objectos_http::untraced_requests"));
    }
}
