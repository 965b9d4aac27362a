//! The `events:` section of `objectos.yml` ([`CONFIG_SECTION`]): where and how much of the event
//! stream lives in Redis. The Redis URL itself is the core `cluster.redisUrl`
//! (`OBJECTOS_REDIS_URL`), shared with the cache.

use objectos_spec::settings::{ConfigSection, PluginSettings, SettingsProblem};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `events:` section of `objectos.yml`, typed as [`EventsSettings`].
pub const CONFIG_SECTION: ConfigSection =
    ConfigSection::of::<EventsSettings>("events", crate::plugin::PLUGIN_ID);

/// Settings of the Redis event transport (camelCase keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct EventsSettings {
    /// The Redis stream every node appends to and reads from. Nodes of one deployment share
    /// it; two deployments on one Redis need two names.
    pub stream: String,
    /// About how many events the stream keeps (`XADD MAXLEN ~`): a node that is cut off from
    /// Redis longer than it takes the cluster to publish this many events misses the oldest
    /// of them (it logs how many it may have missed).
    pub max_len: u64,
    /// Events waiting for Redis on this node (while it is unreachable); past this, new events
    /// still reach local subscribers but are not carried to other nodes (counted as dropped).
    pub buffer: usize,
    /// How long one read waits for new events on the server, in milliseconds.
    pub block_ms: u64,
    /// Longest pause between two reconnect attempts, in milliseconds.
    pub max_backoff_ms: u64,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self {
            stream: "objectos:events".to_owned(),
            max_len: 100_000,
            buffer: 10_000,
            block_ms: 5_000,
            max_backoff_ms: 5_000,
        }
    }
}

impl PluginSettings for EventsSettings {
    fn problems(&self) -> Vec<SettingsProblem> {
        let mut out = Vec::new();
        if self.stream.trim().is_empty() {
            out.push(SettingsProblem::at("stream", "must not be empty"));
        }
        if self.max_len == 0 {
            out.push(SettingsProblem::at("maxLen", "must be at least 1"));
        }
        if self.buffer == 0 {
            out.push(SettingsProblem::at("buffer", "must be at least 1"));
        }
        if self.block_ms == 0 {
            out.push(SettingsProblem::at("blockMs", "must be at least 1"));
        }
        if self.max_backoff_ms == 0 {
            out.push(SettingsProblem::at("maxBackoffMs", "must be at least 1"));
        }
        out
    }
}
