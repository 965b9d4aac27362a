//! The event envelope (spec `kernel/events`): what travels on the EventBus, the outbox and cross-node transports.
//!
//! The payloads of the events first-party plugins emit, with their names, live in the
//! submodules (`data`, `metadata`, `auth`, `authz`), so a subscriber depends on this crate only, never on
//! the emitting plugin (plugin spec 5.2).

pub mod auth;
pub mod authz;
pub mod data;
pub mod metadata;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Delivery priority of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventPriority {
    Critical,
    High,
    #[default]
    Normal,
    Low,
    Background,
}

/// Who, where and when of an event, and what led to it.
///
/// `correlation_id` and `causation_id` let a subscriber (automation) stop loops and let the audit
/// trail show why something happened: the correlation id is the originating request's and is
/// kept through every follow-up write a subscriber makes in reaction; the causation id is the id
/// of the event that directly led to this one (`None` for a change a request made itself). Every
/// field added after the first release is optional with a default, so envelopes stored before
/// (outbox rows, dead letters) still read.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventMetadata {
    /// Plugin id or subsystem that produced the event.
    pub source: String,
    pub timestamp: chrono::DateTime<chrono::Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Id of the request whose handling published the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Id of the originating request, kept through every follow-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Id of the event that led to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// W3C Trace Context (`00-<trace id>-<span id>-<flags>`) of the span that caused the event
    /// (the request, data operation or job), when tracing was on: a subscriber continues the
    /// trace from it, and outbound calls it makes (webhooks) send it on as their `traceparent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The W3C `tracestate` that goes with `traceparent`, when not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    #[serde(default)]
    pub priority: EventPriority,
}

/// One event: a dotted lowercase name, a JSON payload and metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    pub id: String,
    pub name: String,
    pub payload: serde_json::Value,
    pub metadata: EventMetadata,
}

impl Event {
    /// The W3C `traceparent` of the work that caused this event, if it was traced: what a
    /// subscriber continues and an outbound request (a webhook) sends as its header.
    pub fn traceparent(&self) -> Option<&str> {
        self.metadata.traceparent.as_deref()
    }

    /// The W3C `tracestate` sent along with [`Event::traceparent`], if any.
    pub fn tracestate(&self) -> Option<&str> {
        self.metadata.tracestate.as_deref()
    }
}

/// Well-known event names of the kernel itself (the plugins' are in `data`, `auth`, `authz`).
pub mod names {
    pub const KERNEL_READY: &str = "kernel.ready";
    pub const KERNEL_SHUTDOWN: &str = "kernel.shutdown";
}

/// Checks an event name or pattern: dot-separated lowercase segments of `[a-z0-9_-]`, where a pattern may use `*` (one segment) or a trailing `**` (the rest).
pub fn validate_event_name(name: &str, allow_wildcards: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("event name is empty".into());
    }
    let segments: Vec<&str> = name.split('.').collect();
    for (i, seg) in segments.iter().enumerate() {
        if seg.is_empty() {
            return Err(format!("event name `{name}` has an empty segment"));
        }
        if allow_wildcards && (*seg == "*" || (*seg == "**" && i + 1 == segments.len())) {
            continue;
        }
        if !seg
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err(format!(
                "event name `{name}`: segment `{seg}` must be lowercase letters, digits, `_` or `-`{}",
                if allow_wildcards {
                    ", `*`, or a final `**`"
                } else {
                    ""
                }
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Envelopes stored before the request and causation ids existed still read, and the new
    /// fields stay out of the JSON when unset.
    #[test]
    fn metadata_without_trace_ids_reads_and_unset_ids_are_omitted() {
        let old = serde_json::json!({
            "source": "com.objectos.data",
            "timestamp": "2026-01-01T00:00:00Z",
            "userId": "u1",
        });
        let m: EventMetadata = serde_json::from_value(old).unwrap_or_default();
        assert_eq!(m.user_id.as_deref(), Some("u1"));
        assert_eq!(
            (m.request_id, m.correlation_id, m.causation_id),
            (None, None, None)
        );
        let m = EventMetadata {
            causation_id: Some("e1".into()),
            ..EventMetadata::default()
        };
        let v = serde_json::to_value(&m).unwrap_or_default();
        assert_eq!(v["causationId"], "e1");
        assert!(v.get("requestId").is_none() && v.get("correlationId").is_none());
        assert!(v.get("traceparent").is_none() && v.get("tracestate").is_none());
    }

    #[test]
    fn trace_context_travels_in_the_metadata() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let e = Event {
            id: "e1".into(),
            name: "data.contact.created".into(),
            payload: serde_json::Value::Null,
            metadata: EventMetadata {
                traceparent: Some(tp.into()),
                ..EventMetadata::default()
            },
        };
        let v = serde_json::to_value(&e).unwrap_or_default();
        assert_eq!(v["metadata"]["traceparent"], tp);
        let back: Event = serde_json::from_value(v).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(back.traceparent(), Some(tp));
        assert_eq!(back.tracestate(), None);
    }
}
