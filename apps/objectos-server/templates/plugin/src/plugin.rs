//! The kernel plugin `com.objectos.{{kebab}}` (spec 1 and 3) and its service.
//!
//! `init` (no I/O, no lookups: spec 3.1 and 3.2) reads the settings, registers the
//! [`{{Pascal}}Service`] under its name, contributes the schema and the routes, and subscribes
//! to record creations. `start` looks the data engine up and hands it to the service.

use std::sync::{Arc, OnceLock};

use objectos_data::{DataEngine, DataHandle};
use objectos_kernel::{InitContext, Plugin, PluginError, StartContext, async_trait};
use objectos_spec::{Event, PluginManifest};
use serde::Serialize;

use crate::config::{{Pascal}}Settings;
use crate::schema::KIND;
use crate::{CONFIG_SECTION, MANIFEST, PLUGIN_ID, SERVICE, event, routes, schema};

/// The plugin. Its public field is its settings (spec 1.1): used when the kernel has no
/// configuration for the plugin (tests, embedding); the server hands it the `{{camel}}:` section
/// of `objectos.yml` instead.
#[derive(Debug, Default)]
pub struct {{Pascal}}Plugin {
    pub settings: {{Pascal}}Settings,
    service: OnceLock<Arc<{{Pascal}}Service>>,
}

impl {{Pascal}}Plugin {
    pub fn new(settings: {{Pascal}}Settings) -> Self {
        Self {
            settings,
            service: OnceLock::new(),
        }
    }
}

/// The `{{kebab}}` service: what the plugin offers in process, to its routes and (through the
/// registry) to the host. A contract trait in `objectos_kernel::contracts` replaces the concrete
/// type once another crate needs it (spec 6.1).
#[derive(Debug)]
pub struct {{Pascal}}Service {
    settings: {{Pascal}}Settings,
    /// Set at start; the routes answer 503 before.
    engine: OnceLock<DataEngine>,
}

/// One answer of `GET /api/v1/{{kebab}}/items`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct {{Pascal}}Items {
    /// At most `maxItems` of the loaded definitions, in file order.
    pub items: Vec<serde_json::Value>,
    /// How many are loaded.
    pub total: usize,
}

impl {{Pascal}}Service {
    fn new(settings: {{Pascal}}Settings) -> Self {
        Self {
            settings,
            engine: OnceLock::new(),
        }
    }

    /// The effective settings.
    pub fn settings(&self) -> &{{Pascal}}Settings {
        &self.settings
    }

    /// The loaded `*.{{snake}}.yml` definitions, read from the current metadata snapshot on
    /// every call: a reload shows at once, and since nothing is compiled from them there is
    /// nothing to rebuild on `metadata.reloaded` (spec 6.6). `None` before the plugin started.
    pub fn items(&self) -> Option<{{Pascal}}Items> {
        let snapshot = self.engine.get()?.metadata();
        let all = snapshot.items(KIND);
        let limit = usize::try_from(self.settings.max_items).unwrap_or(usize::MAX);
        Some({{Pascal}}Items {
            items: all.iter().take(limit).map(|i| i.value.clone()).collect(),
            total: all.len(),
        })
    }
}

#[async_trait]
impl Plugin for {{Pascal}}Plugin {
    fn manifest(&self) -> &PluginManifest {
        &MANIFEST
    }

    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        // The `{{camel}}:` section, or the struct's settings when none was given (`null`, spec
        // 7.2), checked with `problems()`: the server has checked the file's section already,
        // a host that builds the kernel itself has not.
        let settings = cx.settings_or(&CONFIG_SECTION, self.settings.clone())?;
        let service = Arc::new({{Pascal}}Service::new(settings));
        cx.register::<{{Pascal}}Service>(SERVICE, service.clone())?;
        cx.contribute(schema())?;
        cx.contribute(routes::contribution(service.clone()))?;
        let handle = cx.handle();
        cx.subscribe(event::ITEM_CREATED, move |created: Arc<Event>| {
            let handle = handle.clone();
            async move { event::on_item_created(&handle, created).await }
        })?;
        // The kernel runs `init` once per plugin; a second call keeps the first service.
        let _ = self.service.set(service);
        Ok(())
    }

    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        let service = self
            .service
            .get()
            .ok_or_else(|| PluginError::msg("start called before init"))?;
        let engine = DataHandle::require_engine(cx)?;
        let items = engine.metadata().items(KIND).len();
        let _ = service.engine.set(engine);
        tracing::info!(plugin = PLUGIN_ID, items, "Plugin started.");
        Ok(())
    }
}
