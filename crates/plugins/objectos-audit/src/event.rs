//! The audit event (protocol section 7 `AuditEvent`, plus chain fields) and its hash.
//!
//! The hash of an event is `SHA-256(prev_hash || canonical JSON)`, hex encoded, where the canonical
//! JSON is the event's camelCase JSON without `hash` and `prevHash`, keys sorted at every level,
//! no whitespace. Every stored column is part of it, so editing any column breaks the chain.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first event of a tenant's chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    /// `user`, `system`, `service` or `anonymous`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    /// Why a system principal acted.
    pub reason: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

/// One changed field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub field: String,
    pub old_value: Value,
    pub new_value: Value,
}

/// One audit row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// UUID v7 (time ordered); paging cursors are ids.
    pub id: String,
    pub tenant_id: Option<String>,
    /// Position in the tenant's chain, from 1.
    pub seq: i64,
    /// `data.create`, `data.update`, `data.delete`, `auth.login`, `authz.role_assigned`, ...
    pub event_type: String,
    /// `info`, `warning`.
    pub severity: String,
    /// RFC 3339 UTC with milliseconds.
    pub timestamp: String,
    pub actor: Actor,
    pub object: Option<String>,
    pub record_id: Option<String>,
    /// `create`, `update`, `delete` for data events.
    pub operation: Option<String>,
    pub changes: Vec<Change>,
    /// `success` or `failure`.
    pub result: String,
    pub request_id: Option<String>,
    pub description: Option<String>,
    /// The (redacted) payload of a bus event; `null` for data events.
    pub details: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEvent {
    /// A new, not yet chained event of `event_type` stamped now.
    pub fn new(event_type: impl Into<String>, actor: Actor) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: None,
            seq: 0,
            event_type: event_type.into(),
            severity: "info".into(),
            timestamp: now_rfc3339(),
            actor,
            object: None,
            record_id: None,
            operation: None,
            changes: Vec::new(),
            result: "success".into(),
            request_id: None,
            description: None,
            details: Value::Null,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// The canonical JSON text the hash covers.
    pub fn canonical_json(&self) -> String {
        // Only JSON text is ever written, so the bytes are UTF-8.
        String::from_utf8_lossy(&self.canonical_bytes()).into_owned()
    }

    fn canonical_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.remove("hash");
            m.remove("prevHash");
        }
        let mut out = Vec::with_capacity(1024);
        write_canonical(&v, &mut out);
        out
    }

    /// `SHA-256(prev_hash || canonical JSON)` in lower-case hex.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(self.canonical_bytes());
        hex::encode(h.finalize())
    }
}

/// Now as stored: RFC 3339 UTC with milliseconds (sortable as text).
pub fn now_rfc3339() -> String {
    format_ts(chrono::Utc::now())
}

pub(crate) fn format_ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Writes `v` with object keys sorted at every level and no whitespace. Runs for every audited
/// write inside its transaction, so it writes straight into one buffer.
fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_unstable();
            out.push(b'{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(*k, out);
                out.push(b':');
                if let Some(x) = m.get(*k) {
                    write_canonical(x, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out);
            }
            out.push(b']');
        }
        other => write_scalar(other, out),
    }
}

/// serde_json's own text for a string (escaped) or a scalar; writing into a Vec cannot fail.
fn write_scalar<T: Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(&mut *out, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_drops_hashes() {
        let mut e = AuditEvent::new("auth.login", Actor::default());
        e.details = serde_json::json!({"b": 1, "a": {"d": [1, {"z": 0, "y": null}], "c": "x"}});
        e.hash = "h".into();
        e.prev_hash = "p".into();
        let c = e.canonical_json();
        assert!(
            c.contains(r#""details":{"a":{"c":"x","d":[1,{"y":null,"z":0}]},"b":1}"#),
            "{c}"
        );
        assert!(!c.contains("prevHash") && !c.contains("\"hash\""), "{c}");
        let h1 = e.compute_hash();
        e.prev_hash = "q".into();
        assert_ne!(h1, e.compute_hash());
    }
}
