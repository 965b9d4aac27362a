//! The `cache:` section of `objectos.yml` ([`CONFIG_SECTION`]): which backend, the Redis URL
//! when it is not the cluster's, the deployment prefix, the staleness bound and the sizes.

use objectos_spec::settings::{ConfigSection, PluginSettings, Secret, SettingsProblem};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `cache:` section of `objectos.yml`, typed as [`CacheConfig`].
pub const CONFIG_SECTION: ConfigSection =
    ConfigSection::of::<CacheConfig>("cache", crate::plugin::PLUGIN_ID);

/// Which store the cache runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// Redis when a Redis URL is configured (`cache.redisUrl` or the cluster's
    /// `cluster.redisUrl` / `OBJECTOS_REDIS_URL`), in process otherwise.
    #[default]
    Auto,
    /// In process only (moka); invalidations reach this node only.
    Memory,
    /// Redis with an in-process first level; a Redis URL is required.
    Redis,
}

/// Settings, deserialised from the kernel configuration of `com.objectos.cache` (camelCase).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct CacheConfig {
    /// `auto` (default), `memory` or `redis`.
    pub backend: BackendChoice,
    /// `redis://` or `rediss://` URL; when absent the cluster's Redis URL is used.
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key and of the invalidation channel; nodes of one deployment share
    /// it, two deployments on one Redis must not. Letters, digits, `.`, `_` and `-`.
    pub prefix: String,
    /// Milliseconds: while this node cannot hear invalidations from other nodes (Redis
    /// unreachable), local entries older than this are treated as misses, so nothing revoked on
    /// another node is used longer than this after the revocation. 100 to 60000.
    pub staleness_ms: u64,
    /// Most entries kept in process (per node).
    pub max_entries: u64,
    /// Time to live, in seconds, of a value set without one.
    pub default_ttl_secs: u64,
    /// Milliseconds one Redis command (or connection attempt) may take before it counts as a
    /// failure.
    pub redis_timeout_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Auto,
            redis_url: None,
            prefix: "objectos".to_owned(),
            staleness_ms: 1000,
            max_entries: 100_000,
            default_ttl_secs: 300,
            redis_timeout_ms: 500,
        }
    }
}

/// Letters, digits, `.`, `_` and `-`: names that need no quoting in a Redis key pattern.
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl PluginSettings for CacheConfig {
    fn problems(&self) -> Vec<SettingsProblem> {
        let mut out = Vec::new();
        if !is_plain_name(&self.prefix) {
            out.push(SettingsProblem::at(
                "prefix",
                "must be 1 to 128 letters, digits, `.`, `_` or `-`",
            ));
        }
        if !(100..=60_000).contains(&self.staleness_ms) {
            out.push(SettingsProblem::at(
                "stalenessMs",
                "must be between 100 and 60000 (milliseconds)",
            ));
        }
        if self.max_entries == 0 {
            out.push(SettingsProblem::at("maxEntries", "must be at least 1"));
        }
        if self.default_ttl_secs == 0 {
            out.push(SettingsProblem::at("defaultTtlSecs", "must be at least 1"));
        }
        if !(10..=60_000).contains(&self.redis_timeout_ms) {
            out.push(SettingsProblem::at(
                "redisTimeoutMs",
                "must be between 10 and 60000 (milliseconds)",
            ));
        }
        if let Some(url) = &self.redis_url
            && !(url.expose().starts_with("redis://") || url.expose().starts_with("rediss://"))
        {
            out.push(SettingsProblem::at(
                "redisUrl",
                "must start with redis:// or rediss://",
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(CacheConfig::default().problems().is_empty());
        let bad = CacheConfig {
            prefix: "a b".into(),
            staleness_ms: 5,
            redis_url: Some(Secret::new("http://x")),
            ..CacheConfig::default()
        };
        let paths: Vec<_> = bad.problems().into_iter().map(|p| p.path).collect();
        let expected: Vec<_> = ["prefix", "stalenessMs", "redisUrl"]
            .into_iter()
            .map(objectos_spec::settings::parse_path)
            .collect();
        assert_eq!(paths, expected);
    }
}
