//! Configuration of the audit plugin (`retentionDays`, `redactFields`, prune interval): the
//! `audit:` section of `objectos.yml` ([`CONFIG_SECTION`]).

use objectos_spec::settings::{ConfigSection, PluginSettings};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `audit:` section of `objectos.yml`, typed as [`AuditConfig`].
pub const CONFIG_SECTION: ConfigSection =
    ConfigSection::of::<AuditConfig>("audit", crate::plugin::PLUGIN_ID);

/// Field names redacted by default; a field whose lower-cased name contains one of them is redacted.
pub const DEFAULT_REDACT_FIELDS: &[&str] = &[
    "password",
    "passwd",
    "token",
    "secret",
    "api_key",
    "apikey",
    "totp",
    "otp_secret",
    "private_key",
    "credential",
];

/// Settings, deserialised from the kernel configuration of `com.objectos.audit` (camelCase keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Rows older than this many days are pruned; 0 keeps everything.
    pub retention_days: u32,
    /// Field-name fragments whose values never appear in diffs or payloads (case-insensitive).
    pub redact_fields: Vec<String>,
    /// How often the retention task runs, in seconds.
    pub prune_interval_secs: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            retention_days: 180,
            redact_fields: DEFAULT_REDACT_FIELDS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            prune_interval_secs: 3600,
        }
    }
}

/// Every value of the right type is usable (a prune interval of 0 runs every second).
impl PluginSettings for AuditConfig {}
