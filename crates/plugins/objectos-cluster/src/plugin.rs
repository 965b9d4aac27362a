//! The kernel plugin `com.objectos.cluster`: with a Redis URL in the cluster settings it
//! contributes the Redis event transport at init (the kernel installs it on the bus before any
//! plugin starts) and starts it at start; without one it only reports the in-process bus.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use objectos_kernel::cluster::redact_url;
use objectos_kernel::{
    InitContext, Plugin, PluginError, StartContext, StopContext, TransportContribution,
};
use objectos_spec::health::detail;
use objectos_spec::{HealthReport, PluginManifest};

use crate::config::EventsSettings;
use crate::transport::RedisTransport;

/// The plugin id.
pub const PLUGIN_ID: &str = "com.objectos.cluster";

/// How long `destroy` waits for queued events to reach Redis.
const DRAIN: Duration = Duration::from_secs(2);

/// The static manifest. It provides no spec service: the event bus is the kernel's, this
/// plugin only carries it between nodes.
pub const MANIFEST: PluginManifest = PluginManifest {
    description: "Cluster: carries the event bus across nodes over a Redis stream when cluster.redisUrl is set (at-least-once, resumes after reconnects)",
    ..PluginManifest::new(PLUGIN_ID, "Cluster", env!("CARGO_PKG_VERSION"))
};

/// The cluster plugin; `settings` is overridden by the `events:` section of `objectos.yml`.
#[derive(Debug, Default)]
pub struct ClusterPlugin {
    pub settings: EventsSettings,
    /// `Some` once init found a Redis URL (with that URL, password removed, for the log);
    /// `None` inside means single node.
    transport: OnceLock<Option<(Arc<RedisTransport>, String)>>,
}

impl ClusterPlugin {
    pub fn new(settings: EventsSettings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    /// The Redis transport, once init has built one.
    pub fn transport(&self) -> Option<&Arc<RedisTransport>> {
        self.transport
            .get()
            .and_then(Option::as_ref)
            .map(|(t, _)| t)
    }
}

#[async_trait]
impl Plugin for ClusterPlugin {
    fn manifest(&self) -> &PluginManifest {
        &MANIFEST
    }

    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        let settings = cx.settings_or(&crate::CONFIG_SECTION, self.settings.clone())?;
        let cluster = cx.cluster().clone();
        let transport = match &cluster.redis_url {
            Some(url) => {
                let t =
                    RedisTransport::new(url.expose(), &cluster.node_id, settings).map_err(|e| {
                        PluginError::msg(format!("{e} (cluster.redisUrl / OBJECTOS_REDIS_URL)"))
                    })?;
                let t = Arc::new(t);
                cx.contribute(TransportContribution(t.clone()))?;
                Some((t, redact_url(url.expose())))
            }
            None => None,
        };
        let _ = self.transport.set(transport);
        Ok(())
    }

    async fn start(&self, _cx: &StartContext) -> Result<(), PluginError> {
        // Never waits for Redis: a node whose Redis is down starts, serves locally and
        // reconnects in the background.
        if let Some(Some((t, redis))) = self.transport.get() {
            t.start();
            tracing::info!(
                node = %t.node_id(),
                redis = %redis,
                stream = %t.stream(),
                "Event bus carried across nodes over Redis."
            );
        }
        Ok(())
    }

    async fn health(&self) -> HealthReport {
        match self.transport() {
            Some(t) => t.health(),
            None => HealthReport::healthy()
                .backend("local", "in-process")
                .detail(detail::SERVES, vec![detail::EVENTS]),
        }
    }

    async fn destroy(&self, _cx: &StopContext) -> Result<(), PluginError> {
        if let Some(t) = self.transport() {
            t.stop(DRAIN).await;
        }
        Ok(())
    }
}
