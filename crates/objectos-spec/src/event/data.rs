//! Record-change events: what the data engine's outbox publishes after a create, update or
//! delete commits, named `data.<object>.<verb>` so a subscriber selects by object
//! (`data.account.*`), by verb (`data.*.updated`) or both (`data.*.*`, [`ALL`]).
//!
//! Object names are identifiers (`[a-z_][a-z0-9_]*`, `object::is_valid_name`), which are always
//! valid event-name segments, so every object's names are well formed without escaping. Who
//! made the change and why (request, correlation and causation ids) travel in the envelope's
//! `EventMetadata`; the payload repeats the actor, tenant and request id for consumers that only
//! look at payloads.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A record as the engine returns it: field name to value, system fields first.
pub type Record = serde_json::Map<String, serde_json::Value>;

/// First segment of every record event.
pub const PREFIX: &str = "data";

/// Pattern matching every record event (the data plugin's `emits`).
pub const ALL: &str = "data.*.*";

/// Pattern matching every record event of `object`, e.g. `data.account.*`.
pub fn object_pattern(object: &str) -> String {
    format!("{PREFIX}.{object}.*")
}

/// Pattern matching one verb for every object, e.g. `data.*.updated`.
pub fn verb_pattern(verb: RecordVerb) -> String {
    format!("{PREFIX}.*.{}", verb.as_str())
}

/// What happened to the record: the last segment of the event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordVerb {
    Created,
    Updated,
    Deleted,
}

impl RecordVerb {
    pub const ALL: [RecordVerb; 3] = [Self::Created, Self::Updated, Self::Deleted];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => CREATED,
            Self::Updated => UPDATED,
            Self::Deleted => DELETED,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The verb segments.
pub const CREATED: &str = "created";
pub const UPDATED: &str = "updated";
pub const DELETED: &str = "deleted";

/// The event name of `verb` on `object`: `data.<object>.<verb>`.
pub fn event_name(object: &str, verb: RecordVerb) -> String {
    let verb = verb.as_str();
    let mut s = String::with_capacity(PREFIX.len() + object.len() + verb.len() + 2);
    s.push_str(PREFIX);
    s.push('.');
    s.push_str(object);
    s.push('.');
    s.push_str(verb);
    s
}

/// Splits a record event's name into its object and verb; `None` for any other name.
pub fn parse_name(name: &str) -> Option<(&str, RecordVerb)> {
    let rest = name.strip_prefix(PREFIX)?.strip_prefix('.')?;
    let (object, verb) = rest.split_once('.')?;
    if object.is_empty() || object.contains('.') {
        return None;
    }
    Some((object, RecordVerb::parse(verb)?))
}

/// What every record event says about its record and its cause (flattened into the payload, so
/// the JSON keys are `object`, `recordId`, `userId`, `tenantId`, `requestId`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordRef {
    pub object: String,
    pub record_id: String,
    /// The acting user (`None` for system and anonymous work).
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
}

/// Payload of `data.<object>.created`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordCreated {
    #[serde(flatten)]
    pub about: RecordRef,
    /// The record as written (after every after-hook).
    pub record: Record,
}

/// Payload of `data.<object>.updated`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordUpdated {
    #[serde(flatten)]
    pub about: RecordRef,
    /// The record after the update.
    pub record: Record,
    /// The record before it.
    pub previous: Record,
    /// Names of the fields whose value changed, in the record's field order; `updated_at` and
    /// `updated_by`, which every update sets, are left out, so an update that changed nothing
    /// else has none (a subscriber reacting to its own writes can tell).
    #[serde(default)]
    pub changed_fields: Vec<String>,
}

/// Payload of `data.<object>.deleted`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordDeleted {
    #[serde(flatten)]
    pub about: RecordRef,
    /// The record as it was.
    pub previous: Record,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::validate_event_name;

    #[test]
    fn names_are_built_and_parsed_back() {
        let n = event_name("sales_order", RecordVerb::Updated);
        assert_eq!(n, "data.sales_order.updated");
        assert_eq!(validate_event_name(&n, false), Ok(()));
        assert_eq!(parse_name(&n), Some(("sales_order", RecordVerb::Updated)));
        assert_eq!(parse_name("data.a.b.created"), None);
        assert_eq!(parse_name("data.account.renamed"), None);
        assert_eq!(parse_name("auth.login"), None);
        assert_eq!(object_pattern("account"), "data.account.*");
        assert_eq!(verb_pattern(RecordVerb::Deleted), "data.*.deleted");
        assert_eq!(validate_event_name(ALL, true), Ok(()));
    }

    #[test]
    fn payloads_keep_their_json_names() {
        let p = RecordUpdated {
            about: RecordRef {
                object: "account".into(),
                record_id: "r1".into(),
                ..RecordRef::default()
            },
            changed_fields: vec!["name".into()],
            ..RecordUpdated::default()
        };
        let v = serde_json::to_value(&p).unwrap_or_default();
        for key in [
            "object",
            "recordId",
            "userId",
            "tenantId",
            "requestId",
            "record",
            "previous",
            "changedFields",
        ] {
            assert!(v.get(key).is_some(), "{key} in {v}");
        }
    }
}
