//! The kernel plugin: id `com.objectos.data`, provides the `data` and `metadata` services, emits `data.<object>.<verb>`.
//!
//! Design: `init` (no I/O allowed) registers a [`DataHandle`] under `data` and a [`MetadataHandle`]
//! under `metadata`; both are empty cells that `start` fills once the database is open and the
//! metadata loaded. Consumers look the handle up at their own `start` (which runs after ours,
//! since they depend on us) and call [`DataHandle::require_engine`].

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use objectos_kernel::{
    Contribution, InitContext, Plugin, PluginError, PluginHandle, StartContext, StopContext,
};
use objectos_spec::event::data as record_events;
use objectos_spec::event::metadata::MetadataReloaded;
use objectos_spec::manifest::services;
use objectos_spec::{
    BackendCheck, BackendState, Event, HealthReport, HealthStatus, PluginManifest,
};

use crate::engine::{DataConfig, DataEngine};
use crate::meta::MetadataSnapshot;
use crate::outbox::{DispatcherHandle, EventSink};
use crate::owned::PluginSchema;

/// How long the health check's `SELECT 1` may take before the database counts as down.
const DATABASE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The plugin id.
pub const PLUGIN_ID: &str = "com.objectos.data";

/// The static manifest of the data plugin.
pub const MANIFEST: PluginManifest = PluginManifest {
    description: "ObjectQL data engine: metadata registry, schema sync, queries and records over SQLite or PostgreSQL",
    provides: &[services::DATA, services::METADATA],
    permissions: &["data.read", "data.write", "events.publish"],
    // `data.<object>.<verb>` for every object, which the metadata decides at start, and the
    // snapshot's reloads.
    emits: &[record_events::ALL, objectos_spec::event::metadata::RELOADED],
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

/// The plugins' [`PluginSchema`] contributions, each named after the plugin that contributed it
/// (what the engine creates and migrates for them). `objectos migrate` reads the same list from
/// a kernel that ran `init` only ([`objectos_kernel::Kernel::initialise`]).
pub fn owned_schemas(contributions: &[Contribution<PluginSchema>]) -> Vec<PluginSchema> {
    contributions
        .iter()
        .map(|c| c.value.clone().owned_by(c.plugin.clone()))
        .collect()
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

    /// The engine for a plugin's `start`: looks up the `data` service through the plugin's own
    /// handle and returns the open engine, or a startup error naming the plugin. Every plugin
    /// that works on records needs this, so the lookup and its error live here once.
    pub fn require_engine(cx: &PluginHandle) -> Result<DataEngine, PluginError> {
        cx.get_named::<DataHandle>(services::DATA)?
            .engine()
            .cloned()
            .ok_or_else(|| PluginError::Startup {
                plugin: cx.plugin_id().to_owned(),
                // Not open at a dependent's `start` means the kernel did not order it after the
                // data plugin, which only happens when the manifest does not require `data`.
                message: format!(
                    "the data engine is not open; list the `{}` service in the manifest's `requires` so the data plugin starts first",
                    services::DATA
                ),
            })
    }
}

/// The `metadata` service: the current metadata snapshot, and reloading it.
#[derive(Debug, Default)]
pub struct MetadataHandle {
    data: Arc<DataHandle>,
    /// The data plugin's kernel handle, to publish `metadata.reloaded` (set at start).
    events: OnceLock<PluginHandle>,
    /// One reload at a time: two overlapping reloads could install an older snapshot last.
    reloading: tokio::sync::Mutex<()>,
}

impl MetadataHandle {
    /// The current snapshot, or `None` before the data plugin has started.
    pub fn snapshot(&self) -> Option<Arc<MetadataSnapshot>> {
        self.data.engine().map(DataEngine::metadata)
    }

    /// Re-reads the metadata folders (objects and every plugin kind), applies the additive
    /// schema sync and swaps the whole snapshot in, then publishes `metadata.reloaded` so the
    /// plugins rebuild what they compile from it. On any error the running snapshot stays and
    /// the error (with every located problem) is returned; nothing is published.
    pub async fn reload(&self) -> crate::error::Result<MetadataReloaded> {
        let _one = self.reloading.lock().await;
        let engine = self.data.engine().ok_or_else(|| {
            crate::error::DataError::Unavailable("the data engine has not started".into())
        })?;
        let report = engine.reload_and_migrate().await?;
        let snap = engine.metadata();
        let payload = MetadataReloaded {
            objects: snap.objects().count(),
            items: snap
                .kinds()
                .map(|k| (k.to_owned(), snap.items(k).len()))
                .collect(),
            migration_steps: report.applied,
        };
        if let Some(events) = self.events.get() {
            let event = objectos_kernel::new_event(
                objectos_spec::event::metadata::RELOADED,
                PLUGIN_ID,
                serde_json::to_value(&payload).unwrap_or_default(),
            );
            if let Err(e) = events.publish(event).await {
                tracing::warn!(error = %e, "metadata.reloaded not published.");
            }
        }
        Ok(payload)
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
    metadata: Arc<MetadataHandle>,
    dispatcher: tokio::sync::Mutex<Option<DispatcherHandle>>,
}

impl DataPlugin {
    pub fn new(config: DataConfig) -> Self {
        let handle = Arc::new(DataHandle::default());
        Self {
            config,
            limits: crate::engine::WriteLimits::default(),
            metadata: Arc::new(MetadataHandle {
                data: handle.clone(),
                ..MetadataHandle::default()
            }),
            handle,
            dispatcher: tokio::sync::Mutex::new(None),
        }
    }

    /// The handle registered as service `metadata` (reload it after the folders changed).
    pub fn metadata(&self) -> Arc<MetadataHandle> {
        self.metadata.clone()
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
        cx.register::<MetadataHandle>(services::METADATA, self.metadata.clone())?;
        Ok(())
    }

    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        let mut config = self.config.clone();
        config
            .owned
            .extend(owned_schemas(cx.contributions::<PluginSchema>()?));
        let engine = DataEngine::open(config)
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
        let _ = self.metadata.events.set(cx.handle());
        Ok(())
    }

    /// A `SELECT 1` on the read pool, timed, reported as the `database` backend (required:
    /// nothing is served without it).
    async fn health(&self) -> HealthReport {
        let Some(engine) = self.handle.engine() else {
            return HealthReport::with_status(HealthStatus::Unknown, "the database is not open");
        };
        let checked = chrono::Utc::now();
        let (state, latency_ms, message) =
            match tokio::time::timeout(DATABASE_CHECK_TIMEOUT, engine.ping()).await {
                Ok(Ok(took)) => (BackendState::Up, Some(took.as_secs_f64() * 1000.0), None),
                // The error names what failed (a refused connection, a timeout); the URL and
                // its password are not part of it.
                Ok(Err(e)) => (
                    BackendState::Down,
                    None,
                    Some(format!("the check query failed ({})", e.code())),
                ),
                Err(_) => (
                    BackendState::Down,
                    None,
                    Some(format!("no answer within {DATABASE_CHECK_TIMEOUT:?}")),
                ),
            };
        HealthReport::healthy().backend_check(BackendCheck {
            name: "database".into(),
            state,
            latency_ms,
            last_check: checked,
            required: true,
            message,
        })
    }

    async fn destroy(&self, _cx: &StopContext) -> Result<(), PluginError> {
        if let Some(d) = self.dispatcher.lock().await.take() {
            d.stop().await;
        }
        Ok(())
    }
}
