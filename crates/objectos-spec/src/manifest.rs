//! Plugin manifests: the static, const-constructible form every plugin crate exports, and the spec's serde form.
//!
//! A plugin crate exports `pub const MANIFEST: PluginManifest` so `cargo xtask spec-audit` can check it without booting anything.
//! [`PluginManifest::to_spec`] turns it into the spec's `ObjectStackManifest` shape for the wire.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kind of package a manifest describes (spec `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PackageType {
    Plugin,
    Ui,
    Driver,
    Server,
    App,
    Theme,
    Agent,
    Objectql,
    Module,
    Gateway,
    Adapter,
}

impl PackageType {
    /// The spec spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Plugin => "plugin",
            Self::Ui => "ui",
            Self::Driver => "driver",
            Self::Server => "server",
            Self::App => "app",
            Self::Theme => "theme",
            Self::Agent => "agent",
            Self::Objectql => "objectql",
            Self::Module => "module",
            Self::Gateway => "gateway",
            Self::Adapter => "adapter",
        }
    }
}

/// A dependency on another plugin, by id and semver range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginDependency {
    /// Reverse-DNS id of the plugin depended on.
    pub id: &'static str,
    /// A semver requirement such as `^0.1` or `>=1.2, <2`.
    pub version: &'static str,
    /// An optional dependency orders start-up when present and is ignored when absent.
    pub optional: bool,
}

/// One configuration property a plugin accepts (spec `configuration.properties`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigProperty {
    pub key: &'static str,
    /// JSON type name: `string`, `number`, `integer`, `boolean`, `object`, `array`.
    pub kind: &'static str,
    pub description: &'static str,
    pub required: bool,
    /// Secret values are never logged or echoed.
    pub secret: bool,
    /// Default as JSON text, if any.
    pub default: Option<&'static str>,
}

/// The static manifest of a plugin.
///
/// Every list is a `&'static` slice so a manifest can be a `const`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginManifest {
    /// Reverse-DNS id, e.g. `com.objectos.audit`.
    pub id: &'static str,
    /// Human-readable name.
    pub name: &'static str,
    /// Semver version of the plugin.
    pub version: &'static str,
    pub description: &'static str,
    pub kind: PackageType,
    /// Plugins that must be initialised and started before this one.
    pub dependencies: &'static [PluginDependency],
    /// Service names this plugin registers (spec service names such as `data`, `cache`).
    pub provides: &'static [&'static str],
    /// Service names this plugin may look up; the kernel refuses any other lookup.
    pub requires: &'static [&'static str],
    /// Service names this plugin looks up when some plugin provides them and does without
    /// otherwise (auth uses a registered `notification` mailer, else its own). A provider that is
    /// present starts first; an absent or failed one skips nobody. Not part of the spec's
    /// `ObjectStackManifest` form, whose `requires` are all hard.
    pub optional_requires: &'static [&'static str],
    /// Service names this plugin looks up only while it serves a request (after every plugin
    /// has started), never in `init` or `start`: lookups are allowed, but the entry orders
    /// nothing, so a provider that itself depends on this plugin (jobs looking up `auth`, which
    /// starts after `notification`, which starts after `jobs`) is no cycle. An absent or failed
    /// provider skips nobody; the lookup then fails and the plugin MUST fall back. Not part of
    /// the spec's `ObjectStackManifest` form.
    pub lazy_requires: &'static [&'static str],
    /// Capabilities such as `data.read`, `events.subscribe`, `routes.mount`.
    pub permissions: &'static [&'static str],
    /// Event names (patterns allowed) this plugin may publish.
    pub emits: &'static [&'static str],
    /// Event names (patterns allowed) this plugin may subscribe to.
    pub subscribes: &'static [&'static str],
    /// Metadata globs the plugin ships (e.g. `objects/*.object.yml`).
    pub objects: &'static [&'static str],
    pub configuration: &'static [ConfigProperty],
}

impl PluginManifest {
    /// A manifest with only identity filled in; use struct update syntax for the rest.
    pub const fn new(id: &'static str, name: &'static str, version: &'static str) -> Self {
        Self {
            id,
            name,
            version,
            description: "",
            kind: PackageType::Plugin,
            dependencies: &[],
            provides: &[],
            requires: &[],
            optional_requires: &[],
            lazy_requires: &[],
            permissions: &[],
            emits: &[],
            subscribes: &[],
            objects: &[],
            configuration: &[],
        }
    }

    /// The spec's `ObjectStackManifest` form of this manifest.
    pub fn to_spec(&self) -> ObjectStackManifest {
        ObjectStackManifest {
            id: self.id.to_owned(),
            name: self.name.to_owned(),
            version: self.version.to_owned(),
            description: (!self.description.is_empty()).then(|| self.description.to_owned()),
            kind: self.kind,
            namespace: None,
            scope: None,
            permissions: self.permissions.iter().map(|s| (*s).to_owned()).collect(),
            objects: self.objects.iter().map(|s| (*s).to_owned()).collect(),
            dependencies: self
                .dependencies
                .iter()
                .map(|d| (d.id.to_owned(), d.version.to_owned()))
                .collect(),
            provides: self.provides.iter().map(|s| (*s).to_owned()).collect(),
            requires: self.requires.iter().map(|s| (*s).to_owned()).collect(),
            emits: self.emits.iter().map(|s| (*s).to_owned()).collect(),
            subscribes: self.subscribes.iter().map(|s| (*s).to_owned()).collect(),
            configuration: if self.configuration.is_empty() {
                None
            } else {
                Some(ManifestConfiguration {
                    properties: self
                        .configuration
                        .iter()
                        .map(|p| {
                            (
                                p.key.to_owned(),
                                ConfigPropertySpec {
                                    kind: p.kind.to_owned(),
                                    description: (!p.description.is_empty())
                                        .then(|| p.description.to_owned()),
                                    required: p.required,
                                    secret: p.secret,
                                    default: p.default.and_then(|d| serde_json::from_str(d).ok()),
                                    r#enum: None,
                                },
                            )
                        })
                        .collect(),
                })
            },
        }
    }
}

/// The spec's `ObjectStackManifest` (owned, serde) as read from `manifest.yml` files and served on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStackManifest {
    pub id: String,
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub kind: PackageType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `cloud`, `system` or `project`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<String>,
    #[serde(default, skip_serializing_if = "indexmap::IndexMap::is_empty")]
    pub dependencies: indexmap::IndexMap<String, String>,
    /// ObjectOS extension: service names provided.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provides: Vec<String>,
    /// ObjectOS extension: service names required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    /// ObjectOS extension: events published.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emits: Vec<String>,
    /// ObjectOS extension: events subscribed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<ManifestConfiguration>,
}

/// `configuration` block of a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ManifestConfiguration {
    #[serde(default)]
    pub properties: indexmap::IndexMap<String, ConfigPropertySpec>,
}

/// One property of a manifest's configuration schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigPropertySpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#enum: Option<Vec<serde_json::Value>>,
}

/// The spec's service names (`system/core-services`), plus the ObjectOS additions.
pub mod services {
    pub const DATA: &str = "data";
    pub const METADATA: &str = "metadata";
    pub const AUTH: &str = "auth";
    pub const CACHE: &str = "cache";
    pub const QUEUE: &str = "queue";
    pub const JOB: &str = "job";
    pub const I18N: &str = "i18n";
    pub const FILE_STORAGE: &str = "file-storage";
    pub const SEARCH: &str = "search";
    pub const REALTIME: &str = "realtime";
    pub const NOTIFICATION: &str = "notification";
    pub const WORKFLOW: &str = "workflow";
    pub const AUTOMATION: &str = "automation";
    pub const GRAPHQL: &str = "graphql";
    pub const ANALYTICS: &str = "analytics";
    pub const AI: &str = "ai";
    pub const UI: &str = "ui";
    pub const HTTP_SERVER: &str = "http.server";
    pub const AUDIT_LOG: &str = "audit-log";
    pub const PERMISSIONS: &str = "permissions";
    pub const METRICS: &str = "metrics";
    pub const TELEMETRY: &str = "telemetry";

    /// Every known service name; manifests naming anything else are flagged by the audit.
    pub const ALL: &[&str] = &[
        DATA,
        METADATA,
        AUTH,
        CACHE,
        QUEUE,
        JOB,
        I18N,
        FILE_STORAGE,
        SEARCH,
        REALTIME,
        NOTIFICATION,
        WORKFLOW,
        AUTOMATION,
        GRAPHQL,
        ANALYTICS,
        AI,
        UI,
        HTTP_SERVER,
        AUDIT_LOG,
        PERMISSIONS,
        METRICS,
        TELEMETRY,
    ];
}

/// Capabilities a manifest may declare in `permissions`.
pub mod capabilities {
    pub const DATA_READ: &str = "data.read";
    pub const DATA_WRITE: &str = "data.write";
    pub const EVENTS_PUBLISH: &str = "events.publish";
    pub const EVENTS_SUBSCRIBE: &str = "events.subscribe";
    pub const ROUTES_MOUNT: &str = "routes.mount";
    pub const NET_HTTP: &str = "net.http";
    pub const SCRIPTS_RUN: &str = "scripts.run";
    pub const METADATA_READ: &str = "metadata.read";
    pub const METADATA_WRITE: &str = "metadata.write";
    pub const FS_READ: &str = "fs.read";
    pub const FS_WRITE: &str = "fs.write";

    pub const ALL: &[&str] = &[
        DATA_READ,
        DATA_WRITE,
        EVENTS_PUBLISH,
        EVENTS_SUBSCRIBE,
        ROUTES_MOUNT,
        NET_HTTP,
        SCRIPTS_RUN,
        METADATA_READ,
        METADATA_WRITE,
        FS_READ,
        FS_WRITE,
    ];
}
