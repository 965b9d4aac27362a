//! What the notification plugin owns in the data engine (docs/specs/plugin.md 6.5): the
//! `sys_email`, `sys_notification`, `sys_webhook_delivery`, `sys_notification_delivery` and
//! `sys_notification_preference` objects, the `template` and `webhook` metadata kinds, and
//! three private tables: the pending contents of messages (bodies may carry secrets, so they
//! are not record fields and are removed once delivered), the idempotency keys, and the
//! generated unsubscribe key.

use objectos_data::{ColumnType, PluginSchema, TableDef};

/// Outgoing emails, one record per message.
pub const EMAIL_OBJECT: &str = "sys_email";

/// The in-app inbox, one record per recipient.
pub const INBOX_OBJECT: &str = "sys_notification";

/// Outgoing webhook calls.
pub const WEBHOOK_OBJECT: &str = "sys_webhook_delivery";

/// SMS and push deliveries.
pub const DELIVERY_OBJECT: &str = "sys_notification_delivery";

/// Channel and topic preferences.
pub const PREFERENCE_OBJECT: &str = crate::prefs::OBJECT;

/// Every object the plugin owns: their record events never trigger declared webhooks.
pub const OWN_OBJECTS: [&str; 5] = [
    EMAIL_OBJECT,
    INBOX_OBJECT,
    WEBHOOK_OBJECT,
    DELIVERY_OBJECT,
    PREFERENCE_OBJECT,
];

/// Keys the plugin keeps (the unsubscribe key when none is configured), by name.
pub const SECRETS_TABLE: &str = "_objectos_notification_secret";

/// The contents of undelivered messages (JSON), by message id.
pub const PENDING_TABLE: &str = "_objectos_notification_pending";

/// Idempotency keys: `(scope, key)` to the first message's id.
pub const KEYS_TABLE: &str = "_objectos_notification_key";

/// Everything the plugin owns, contributed at `init`.
pub fn schema() -> PluginSchema {
    use ColumnType::{BigInt, Text};
    let pending = TableDef::new(PENDING_TABLE)
        .required("id", Text)
        .required("channel", Text)
        .column("tenant_id", Text)
        .required("content", Text)
        .required("created_at", BigInt)
        .primary_key(&["id"]);
    let keys = TableDef::new(KEYS_TABLE)
        .required("scope", Text)
        .required("key", Text)
        .required("message_id", Text)
        .required("created_at", BigInt)
        .primary_key(&["scope", "key"]);
    let secrets = TableDef::new(SECRETS_TABLE)
        .required("name", Text)
        .required("value", Text)
        .required("created_at", BigInt)
        .primary_key(&["name"]);
    PluginSchema::new()
        .object(
            "objects/sys_email.object.yml",
            include_str!("../objects/sys_email.object.yml"),
        )
        .object(
            "objects/sys_notification.object.yml",
            include_str!("../objects/sys_notification.object.yml"),
        )
        .object(
            "objects/sys_webhook_delivery.object.yml",
            include_str!("../objects/sys_webhook_delivery.object.yml"),
        )
        .object(
            "objects/sys_notification_delivery.object.yml",
            include_str!("../objects/sys_notification_delivery.object.yml"),
        )
        .object(
            "objects/sys_notification_preference.object.yml",
            include_str!("../objects/sys_notification_preference.object.yml"),
        )
        .kind(crate::template::kind())
        .kind(crate::hooks::kind())
        .table(pending)
        .table(keys)
        .table(secrets)
}
