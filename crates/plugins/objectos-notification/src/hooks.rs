//! Declared webhooks: the `webhook` metadata kind (`*.webhook.yml`), each a URL called with a
//! signed POST for every record event its `events` patterns select (the bus's wildcards:
//! `data.account.*`, `data.*.created`, `data.**`).
//!
//! The plugin subscribes to every record event once; each event is matched against the
//! declarations of the current metadata (so `serve --watch` changes apply at once) and queues
//! one delivery per matching active webhook, through the same jobs, retries and dead letters
//! as mail, recorded in `sys_webhook_delivery`. Events about the plugin's own objects never
//! match: a delivery record's own events would otherwise call the webhook again, forever.

use objectos_data::{MetadataKind, MetadataSnapshot};
use objectos_kernel::events::EventPattern;
use objectos_spec::Event;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The kind's name (`/api/v1/meta/webhook`).
pub const KIND: &str = "webhook";

/// Files `*.webhook.yml|yaml|json`.
pub const SUFFIX: &str = "webhook";

/// The pattern the plugin subscribes to.
pub const SUBSCRIPTION: &str = "data.*.*";

/// One declared webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub url: String,
    /// Event patterns (`data.account.*`).
    pub events: Vec<String>,
    /// The variable holding this webhook's HMAC key (default: `notifications.webhook.secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// The kind, contributed in the plugin's schema.
pub fn kind() -> MetadataKind {
    MetadataKind::typed::<WebhookDef>(KIND, SUFFIX, |w| w.name.clone(), validate)
}

/// Every problem of a webhook file as `(yaml path, message)`.
pub fn validate(w: &WebhookDef) -> Vec<(String, String)> {
    let mut out = Vec::new();
    crate::template::check_name(&mut out, "webhook", &w.name);
    match reqwest013::Url::parse(&w.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        Ok(_) => out.push(("url".to_owned(), "expected an http or https URL".to_owned())),
        Err(e) => out.push(("url".to_owned(), format!("`{}` is not a URL ({e})", w.url))),
    }
    if w.events.is_empty() {
        out.push((
            "events".to_owned(),
            "a webhook needs at least one event pattern (`data.account.*`)".to_owned(),
        ));
    }
    for (i, p) in w.events.iter().enumerate() {
        if let Err(e) = EventPattern::parse(p) {
            out.push((format!("events.{i}"), e.to_string()));
        }
    }
    if let Some(v) = &w.secret_env
        && (v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        out.push((
            "secretEnv".to_owned(),
            format!("`{v}` is not an environment variable name"),
        ));
    }
    out
}

/// The active webhooks of `snapshot` whose patterns match `event_name`.
pub fn matching(snapshot: &MetadataSnapshot, event_name: &str) -> Vec<WebhookDef> {
    snapshot
        .items(KIND)
        .iter()
        .filter_map(|item| serde_json::from_value::<WebhookDef>(item.value.clone()).ok())
        .filter(|w| {
            w.active
                && w.events.iter().any(|p| {
                    EventPattern::parse(p).is_ok_and(|pattern| pattern.matches(event_name))
                })
        })
        .collect()
}

/// The object of a record event (`data.<object>.<verb>`).
pub fn object_of(event_name: &str) -> Option<&str> {
    let mut parts = event_name.split('.');
    (parts.next()? == "data").then_some(())?;
    parts.next()
}

/// The body POSTed for `event`.
pub fn body_of(event: &Event) -> Value {
    json!({
        "id": event.id,
        "event": event.name,
        "occurredAt": event.metadata.timestamp.to_rfc3339(),
        "organizationId": event.metadata.tenant_id,
        "userId": event.metadata.user_id,
        "data": event.payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_urls_patterns_and_names() {
        let w: WebhookDef = serde_json::from_value(json!({
            "name": "bad name", "url": "ftp://x", "events": ["data.Account.*"], "secretEnv": "A-B"
        }))
        .unwrap();
        let paths: Vec<String> = validate(&w).into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, vec!["name", "url", "events.0", "secretEnv"]);
        assert_eq!(object_of("data.account.created"), Some("account"));
        assert_eq!(object_of("auth.user.created"), None);
    }
}
