//! The kernel plugin: id `com.objectos.data`, provides the `data` and `metadata` services, emits `data.<object>.<verb>`.
//!
//! Design: `init` (no I/O allowed) registers a [`DataHandle`] under `data` and a [`MetadataHandle`]
//! under `metadata`; both are empty cells that `start` fills once the database is open and the
//! metadata loaded. Consumers look the handle up at their own `start` (which runs after ours,
//! since they depend on us) and call [`DataHandle::engine`].

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use objectos_kernel::{InitContext, Plugin, PluginError, PluginHandle, StartContext, StopContext};
use objectos_spec::event::data as record_events;
use objectos_spec::manifest::services;
use objectos_spec::{Event, HealthReport, PluginManifest};

use crate::engine::{DataConfig, DataEngine};
use crate::meta::MetadataSnapshot;
use crate::outbox::{DispatcherHandle, EventSink};

/// The plugin id.
pub const PLUGIN_ID: &str = "com.objectos.data";

/// The static manifest of the data plugin.
pub const MANIFEST: PluginManifest = PluginManifest {
    description: "ObjectQL data engine: metadata registry, schema sync, queries and records over SQLite or PostgreSQL",
    provides: &[services::DATA, services::METADATA],
    permissions: &["data.read", "data.write", "events.publish"],
    // `data.<object>.<verb>` for every object, which the metadata decides at start.
    emits: &[record_events::ALL],
    ..PluginManifest::new(PLUGIN_ID, "Data Engine", env!("CARGO_PKG_VERSION"))
};

/// An interceptor another plugin hands to the engine: contribute it at `init`
/// (`cx.contribute(InterceptorContribution(Arc::new(MyHook)))`) and the data plugin installs every
/// contribution before the engine becomes reachable, so no request is ever served without it.
#[derive(Clone)]
pub struct InterceptorContribution(pub Arc<dyn crate::hooks::Interceptor>);

impl std::fmt::Debug for InterceptorContribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("InterceptorContribution")
            .field(&self.0.name())
            .finish()
    }
}

/// The `data` service: the engine, available once the plugin has started.
#[derive(Debug, Default)]
pub struct DataHandle {
    cell: OnceLock<DataEngine>,
}

impl DataHandle {
    /// The engine, or `None` before the data plugin's `start` has run.
    pub fn engine(&self) -> Option<&DataEngine> {
        self.cell.get()
    }
}

/// The `metadata` service: the current metadata snapshot.
#[derive(Debug, Default)]
pub struct MetadataHandle {
    data: Arc<DataHandle>,
}

impl MetadataHandle {
    /// The current snapshot, or `None` before the data plugin has started.
    pub fn snapshot(&self) -> Option<Arc<MetadataSnapshot>> {
        self.data.engine().map(DataEngine::metadata)
    }
}

/// The data plugin; its public fields are its settings.
#[derive(Debug)]
pub struct DataPlugin {
    pub config: DataConfig,
    /// Records per bulk request, the writer hold bound and write rates (`data:` in
    /// `objectos.yml`).
    pub limits: crate::engine::WriteLimits,
    handle: Arc<DataHandle>,
    dispatcher: tokio::sync::Mutex<Option<DispatcherHandle>>,
}

impl DataPlugin {
    pub fn new(config: DataConfig) -> Self {
        Self {
            config,
            limits: crate::engine::WriteLimits::default(),
            handle: Arc::new(DataHandle::default()),
            dispatcher: tokio::sync::Mutex::new(None),
        }
    }

    /// The handle registered as service `data` (useful when wiring without a kernel).
    pub fn handle(&self) -> Arc<DataHandle> {
        self.handle.clone()
    }
}

impl Default for DataPlugin {
    fn default() -> Self {
        Self::new(DataConfig::default())
    }
}

struct KernelSink(PluginHandle);

#[async_trait]
impl EventSink for KernelSink {
    async fn publish(&self, event: Event) -> std::result::Result<(), String> {
        self.0
            .publish(event)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn publish_many(&self, events: Vec<Event>) -> std::result::Result<(), (usize, String)> {
        let events: Vec<Arc<Event>> = events.into_iter().map(Arc::new).collect();
        // The bus checks every name before queueing anything, so a failure delivered nothing.
        self.0
            .publish_many(&events)
            .await
            .map(|_| ())
            .map_err(|e| (0, e.to_string()))
    }
}

#[async_trait]
impl Plugin for DataPlugin {
    fn manifest(&self) -> &PluginManifest {
        &MANIFEST
    }

    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        cx.register::<DataHandle>(services::DATA, self.handle.clone())?;
        cx.register::<MetadataHandle>(
            services::METADATA,
            Arc::new(MetadataHandle {
                data: self.handle.clone(),
            }),
        )?;
        Ok(())
    }

    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        let engine = DataEngine::open(self.config.clone())
            .await
            .map_err(|e| PluginError::config(PLUGIN_ID, e))?;
        engine.set_write_limits(self.limits.clone());
        for c in cx.contributions::<InterceptorContribution>()? {
            tracing::info!(plugin = %c.plugin, interceptor = c.value.0.name(), "Installing data interceptor.");
            engine.add_interceptor(c.value.0.clone());
        }
        let dispatcher = engine.start_dispatcher(Arc::new(KernelSink(cx.handle())));
        *self.dispatcher.lock().await = Some(dispatcher);
        let _ = self.handle.cell.set(engine);
        Ok(())
    }

    async fn health(&self) -> HealthReport {
        HealthReport::healthy()
    }

    async fn destroy(&self, _cx: &StopContext) -> Result<(), PluginError> {
        if let Some(d) = self.dispatcher.lock().await.take() {
            d.stop().await;
        }
        Ok(())
    }
}
