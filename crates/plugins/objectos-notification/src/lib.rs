//! ObjectOS notification plugin (`com.objectos.notification`, service `notification`): email over
//! SMTP through `lettre`, SMS and push through HTTP provider adapters, an in-app inbox per user,
//! and signed webhooks (called directly or declared as `*.webhook.yml` for record events), each
//! message a `sys_email` / `sys_notification_delivery` / `sys_webhook_delivery` record with its
//! status, subject to the recipients' channel and topic preferences unless essential, delivered through the job queue
//! when the jobs plugin runs (retries with backoff, dead letters) and by a task of its own
//! otherwise. Templates (`*.template.yml`, handlebars, per locale, strict) are a metadata kind.
//!
//! Modules: settings ([`config`]), what the plugin owns ([`schema`]), templates
//! ([`template`]), the SMTP transport ([`smtp`]), SMS and push providers ([`provider`]),
//! preferences and unsubscribe links ([`prefs`]), webhooks ([`webhook`], declared ones in
//! [`hooks`]), the service
//! implementing the kernel's `Notifier` and `Mailer` ([`service`]), the routes ([`routes`]) and
//! the kernel plugin ([`plugin`]).

pub mod config;
pub mod error;
pub mod hooks;
pub mod plugin;
pub mod prefs;
pub mod provider;
pub mod routes;
pub mod schema;
pub mod service;
pub mod smtp;
pub mod template;
pub mod webhook;

use objectos_spec::PluginManifest;
use objectos_spec::manifest::{ConfigProperty, PluginDependency, capabilities, services};
use objectos_spec::settings::ConfigSection;

pub use config::NotificationSettings;
pub use error::NotificationError;
pub use plugin::NotificationPlugin;
pub use service::NotificationService;

/// The plugin id.
pub const PLUGIN_ID: &str = "com.objectos.notification";

/// The plugin's human-readable name.
pub const NAME: &str = "Notifications";

/// The service the plugin provides: the [`NotificationService`], registered as
/// `dyn objectos_kernel::contracts::Notifier` (which is also the `Mailer`).
pub const SERVICE: &str = services::NOTIFICATION;

/// The `notifications:` section of `objectos.yml`.
pub const CONFIG_SECTION: ConfigSection =
    ConfigSection::of::<NotificationSettings>("notifications", PLUGIN_ID);

/// The manifest.
pub const MANIFEST: PluginManifest = PluginManifest {
    description: "Email over SMTP, an in-app inbox per user and signed webhooks, from handlebars templates per locale, delivered with retries through the job queue",
    dependencies: &[PluginDependency {
        id: objectos_data::PLUGIN_ID,
        version: ">=0.1",
        optional: false,
    }],
    provides: &[SERVICE],
    requires: &[services::DATA],
    // Deliveries run as jobs (retries with backoff, dead letters) when the job queue is present.
    // The transactional side of the queue (`queue`): a message's job commits with it.
    optional_requires: &[services::QUEUE],
    permissions: &[
        capabilities::DATA_READ,
        capabilities::DATA_WRITE,
        capabilities::ROUTES_MOUNT,
        capabilities::NET_HTTP,
        capabilities::EVENTS_SUBSCRIBE,
    ],
    // Record events, matched against the declared webhooks (`*.webhook.yml`).
    subscribes: &[hooks::SUBSCRIPTION],
    objects: &["objects/*.object.yml"],
    configuration: &[
        ConfigProperty {
            key: "email.transport",
            kind: "string",
            description: "smtp, or log (default: mails are stored and logged, not sent)",
            required: false,
            secret: false,
            default: Some("\"log\""),
        },
        ConfigProperty {
            key: "email.smtp.password",
            kind: "string",
            description: "SMTP password (or email.smtp.passwordEnv)",
            required: false,
            secret: true,
            default: None,
        },
        ConfigProperty {
            key: "unsubscribe.secret",
            kind: "string",
            description: "HMAC-SHA256 key of unsubscribe links (default: a generated key kept in the database)",
            required: false,
            secret: true,
            default: None,
        },
        ConfigProperty {
            key: "sms.secret",
            kind: "string",
            description: "The SMS provider's credential, `{{secret}}` in its templates (or sms.secretEnv)",
            required: false,
            secret: true,
            default: None,
        },
        ConfigProperty {
            key: "push.secret",
            kind: "string",
            description: "The push provider's credential, `{{secret}}` in its templates (or push.secretEnv)",
            required: false,
            secret: true,
            default: None,
        },
        ConfigProperty {
            key: "webhook.secret",
            kind: "string",
            description: "HMAC-SHA256 key of webhook signatures",
            required: false,
            secret: true,
            default: None,
        },
    ],
    ..PluginManifest::new(PLUGIN_ID, NAME, env!("CARGO_PKG_VERSION"))
};
