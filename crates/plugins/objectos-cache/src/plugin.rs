//! The kernel plugin `com.objectos.cache`: registers [`ObjectCache`] as service `cache` (the
//! kernel's `Cache` contract) at init, in process or on Redis as configured, and starts the Redis
//! subscription at start. Its health report names the backend and its state.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use objectos_kernel::contracts::{Cache, CacheState};
use objectos_kernel::{InitContext, Plugin, PluginError, StartContext, StopContext};
use objectos_spec::health::{CheckStatus, HealthCheck};
use objectos_spec::manifest::{ConfigProperty, services};
use objectos_spec::{HealthReport, HealthStatus, PluginManifest};

use crate::config::{BackendChoice, CacheConfig};
use crate::service::ObjectCache;

/// The plugin id.
pub const PLUGIN_ID: &str = "com.objectos.cache";

/// How long `start` waits for the first heartbeat before going on degraded.
const START_WAIT: Duration = Duration::from_secs(2);

/// The static manifest.
pub const MANIFEST: PluginManifest = PluginManifest {
    description: "Cache: namespaced values with TTL and statistics, in process (moka) or on Redis with an in-process first level; invalidations reach every node",
    provides: &[services::CACHE],
    configuration: &[
        ConfigProperty {
            key: "backend",
            kind: "string",
            description: "auto (Redis when a Redis URL is configured), memory or redis",
            required: false,
            secret: false,
            default: Some("\"auto\""),
        },
        ConfigProperty {
            key: "redisUrl",
            kind: "string",
            description: "Redis URL; defaults to the cluster's (cluster.redisUrl, OBJECTOS_REDIS_URL)",
            required: false,
            secret: true,
            default: None,
        },
        ConfigProperty {
            key: "stalenessMs",
            kind: "integer",
            description: "While Redis is unreachable, local entries older than this are not used",
            required: false,
            secret: false,
            default: Some("1000"),
        },
    ],
    ..PluginManifest::new(PLUGIN_ID, "Cache", env!("CARGO_PKG_VERSION"))
};

/// The cache plugin; `config` is replaced by the kernel configuration of `com.objectos.cache`
/// when one is given.
#[derive(Debug, Default)]
pub struct CachePlugin {
    pub config: CacheConfig,
    cache: OnceLock<Arc<ObjectCache>>,
}

impl CachePlugin {
    pub fn new(config: CacheConfig) -> Self {
        Self {
            config,
            cache: OnceLock::new(),
        }
    }

    /// The service, once `init` has run.
    pub fn cache(&self) -> Option<Arc<ObjectCache>> {
        self.cache.get().cloned()
    }
}

#[async_trait]
impl Plugin for CachePlugin {
    fn manifest(&self) -> &PluginManifest {
        &MANIFEST
    }

    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        let config = cx.settings_or(&crate::CONFIG_SECTION, self.config.clone())?;
        let cluster = cx.cluster();
        let url = config
            .redis_url
            .as_ref()
            .or(cluster.redis_url.as_ref())
            .map(|s| s.expose().to_owned());
        let cache = match (config.backend, url) {
            (BackendChoice::Memory, _) | (BackendChoice::Auto, None) => {
                ObjectCache::memory(&config)
            }
            (BackendChoice::Redis | BackendChoice::Auto, Some(url)) => {
                ObjectCache::redis(&config, &url, &cluster.node_id)
                    .map_err(|e| PluginError::config(PLUGIN_ID, e.to_string()))?
            }
            (BackendChoice::Redis, None) => {
                return Err(PluginError::config(
                    PLUGIN_ID,
                    "`cache.backend` is `redis` but no Redis URL is configured: set `cache.redisUrl`, `cluster.redisUrl` or OBJECTOS_REDIS_URL",
                ));
            }
        };
        let cache = Arc::new(cache);
        cx.register::<dyn Cache>(services::CACHE, cache.clone())?;
        let _ = self.cache.set(cache);
        Ok(())
    }

    async fn start(&self, _cx: &StartContext) -> Result<(), PluginError> {
        let Some(cache) = self.cache.get() else {
            return Ok(());
        };
        cache.start();
        // A Redis that is away at start is not fatal: the node serves from its own level,
        // reports degraded and connects when Redis comes.
        if cache.wait_until_listening(START_WAIT).await {
            tracing::info!(backend = %cache.describe(), "Cache ready.");
        } else if let CacheState::Degraded { reason } = cache.state() {
            tracing::warn!(backend = %cache.describe(), %reason, "Cache started degraded.");
        }
        Ok(())
    }

    async fn health(&self) -> HealthReport {
        let Some(cache) = self.cache.get() else {
            return HealthReport::with_status(HealthStatus::Unknown, "not initialised");
        };
        let backend = HealthCheck {
            name: "backend".to_owned(),
            status: CheckStatus::Passed,
            message: Some(cache.backend().to_owned()),
        };
        // `details.backend` / `details.state` are what discovery and `/health` show per service.
        match cache.state() {
            CacheState::Healthy => {
                let state = if cache.backend() == "memory" {
                    "embedded"
                } else {
                    "connected"
                };
                let mut report = HealthReport::with_status(HealthStatus::Healthy, cache.describe())
                    .backend(cache.backend(), state);
                report.checks.push(backend);
                report
            }
            CacheState::Degraded { reason } => {
                let mut report = HealthReport::with_status(
                    HealthStatus::Degraded,
                    format!("{}: {reason}", cache.describe()),
                )
                .backend(cache.backend(), "reconnecting");
                report.checks.push(backend);
                report.checks.push(HealthCheck {
                    name: "invalidations".to_owned(),
                    status: CheckStatus::Warning,
                    message: Some(reason),
                });
                report
            }
        }
    }

    async fn destroy(&self, _cx: &StopContext) -> Result<(), PluginError> {
        if let Some(cache) = self.cache.get() {
            cache.stop();
        }
        Ok(())
    }
}
