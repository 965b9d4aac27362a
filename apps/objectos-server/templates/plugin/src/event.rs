//! Events (spec 5): the plugin reacts to every new `{{snake}}_item` record
//! ([`ITEM_CREATED`], published by the data engine's outbox after the create commits) by
//! logging it and publishing [`ITEM_RECEIVED`] with a typed payload ([`ItemReceived`]).
//!
//! Spec 5.2 wants an emitted event's name and payload in `objectos_spec::event`, so subscribers
//! never import the emitting crate. They stay here while only this crate and its tests use them;
//! move them to `objectos_spec::event::{{snake}}` before another crate subscribes.

use std::sync::Arc;

use objectos_kernel::{PluginError, PluginHandle};
use objectos_spec::Event;
use objectos_spec::event::data::RecordCreated;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the plugin subscribes to: a `{{snake}}_item` record was created (spec 5.1 names:
/// `data.<object>.created`, payload `RecordCreated`).
pub const ITEM_CREATED: &str = "data.{{snake}}_item.created";

/// What the plugin emits: noun first, past-tense verb last (spec 5.1).
pub const ITEM_RECEIVED: &str = "{{snake}}.item.received";

/// Payload of [`ITEM_RECEIVED`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemReceived {
    /// The `{{snake}}_item` record.
    pub record_id: String,
    /// Its title.
    pub title: String,
}

/// Handles one [`ITEM_CREATED`] on the asynchronous lane: delivery is at least once, so this
/// must be idempotent (spec 5.4); it only logs and publishes, and a retry after a failed
/// publish publishes what was not published.
pub(crate) async fn on_item_created(
    handle: &PluginHandle,
    event: Arc<Event>,
) -> Result<(), PluginError> {
    let created: RecordCreated = match serde_json::from_value(event.payload.clone()) {
        Ok(created) => created,
        Err(e) => {
            // Not the data engine's payload: a retry would read the same bytes, so the event
            // is logged and dropped instead of being retried into the dead letters.
            tracing::warn!(plugin = crate::PLUGIN_ID, event = %event.name, error = %e, "Ignored a malformed record event.");
            return Ok(());
        }
    };
    let title = created
        .record
        .get("title")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    tracing::info!(
        plugin = crate::PLUGIN_ID,
        record_id = %created.about.record_id,
        title = %title,
        "{{title}} item created."
    );
    let payload = ItemReceived {
        record_id: created.about.record_id,
        title,
    };
    let payload = serde_json::to_value(&payload).map_err(PluginError::msg)?;
    let mut follow_up = handle.event(ITEM_RECEIVED, payload);
    // Spec 5.7: the follow-up keeps the originating request's correlation and names the record
    // event as its cause, so automation can stop loops and the audit trail can say why.
    follow_up.metadata.user_id = event.metadata.user_id.clone();
    follow_up.metadata.tenant_id = event.metadata.tenant_id.clone();
    follow_up.metadata.request_id = event.metadata.request_id.clone();
    follow_up.metadata.correlation_id = event
        .metadata
        .correlation_id
        .clone()
        .or_else(|| event.metadata.request_id.clone());
    follow_up.metadata.causation_id = Some(event.id.clone());
    // `try_publish`, not `publish().await`: a handler waiting for queue room on the bus that
    // feeds it can stall (spec 5.5); a full queue fails this delivery, which the bus retries.
    handle.try_publish(follow_up)?;
    Ok(())
}
