//! The event envelope (spec `kernel/events`): what travels on the EventBus, the outbox and cross-node transports.

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

/// Who, where and when of an event.
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
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

/// Well-known event names.
pub mod names {
    pub const KERNEL_READY: &str = "kernel.ready";
    pub const KERNEL_SHUTDOWN: &str = "kernel.shutdown";
    pub const RECORD_CREATED: &str = "record.created";
    pub const RECORD_UPDATED: &str = "record.updated";
    pub const RECORD_DELETED: &str = "record.deleted";
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
