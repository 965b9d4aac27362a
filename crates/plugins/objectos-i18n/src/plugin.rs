//! The kernel plugin `com.objectos.i18n`: declares the translation kinds at init (loaded and
//! swapped with the objects), registers the `I18n` contract as service `i18n` and mounts the
//! client's routes; compiles the translations at start and again on `metadata.reloaded`.

use std::sync::Arc;

use async_trait::async_trait;
use objectos_data::{DataHandle, PluginSchema};
use objectos_http::RouteContribution;
use objectos_kernel::contracts::I18n;
use objectos_kernel::{InitContext, Plugin, PluginError, StartContext};
use objectos_spec::manifest::{ConfigProperty, PluginDependency, capabilities, services};
use objectos_spec::{Event, HealthReport, PluginManifest};

use crate::bundle::metadata_kinds;
use crate::config::I18nSettings;
use crate::routes;
use crate::service::I18nService;

/// The plugin id.
pub const PLUGIN_ID: &str = "com.objectos.i18n";

/// A change to a user record may change its `locale` setting.
const USER_CHANGES: &[&str] = &["data.user.updated", "data.user.deleted"];

/// The static manifest.
pub const MANIFEST: PluginManifest = PluginManifest {
    description: "Translations: TranslationBundle (*.translation.yml) and Fluent (*.ftl) files as metadata, locale negotiation, translated metadata labels, the client's i18n routes",
    provides: &[services::I18N],
    requires: &[services::DATA, services::METADATA],
    dependencies: &[PluginDependency {
        id: objectos_data::PLUGIN_ID,
        version: "*",
        optional: false,
    }],
    permissions: &[
        capabilities::DATA_READ,
        capabilities::METADATA_READ,
        capabilities::EVENTS_SUBSCRIBE,
        capabilities::ROUTES_MOUNT,
    ],
    subscribes: &[
        objectos_spec::event::metadata::RELOADED,
        "data.user.updated",
        "data.user.deleted",
    ],
    configuration: &[
        ConfigProperty {
            key: "defaultLocale",
            kind: "string",
            description: "Locale of requests that ask for none the server serves",
            required: false,
            secret: false,
            default: Some("\"en\""),
        },
        ConfigProperty {
            key: "supportedLocales",
            kind: "array",
            description: "Locales served; empty: the default and every translated locale",
            required: false,
            secret: false,
            default: Some("[]"),
        },
        ConfigProperty {
            key: "fallbackLocale",
            kind: "string",
            description: "Tried after the request's locales, before the default",
            required: false,
            secret: false,
            default: None,
        },
    ],
    ..PluginManifest::new(PLUGIN_ID, "Translations", env!("CARGO_PKG_VERSION"))
};

/// The i18n plugin. Its public field is its settings.
#[derive(Debug)]
pub struct I18nPlugin {
    pub settings: I18nSettings,
    service: Arc<I18nService>,
}

impl I18nPlugin {
    /// A plugin with `settings`; a settings tag that is not a locale is an error.
    pub fn new(settings: I18nSettings) -> Result<Self, crate::error::I18nError> {
        let service = Arc::new(I18nService::new(&settings)?);
        Ok(Self { settings, service })
    }

    /// The service (registered as `i18n`).
    pub fn service(&self) -> Arc<I18nService> {
        self.service.clone()
    }
}

/// The kinds this plugin contributes, as a `PluginSchema` (also read by `objectos validate`).
pub fn schema() -> PluginSchema {
    metadata_kinds()
        .into_iter()
        .fold(PluginSchema::new(), PluginSchema::kind)
}

#[async_trait]
impl Plugin for I18nPlugin {
    fn manifest(&self) -> &PluginManifest {
        &MANIFEST
    }

    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        cx.contribute(schema())?;
        cx.register::<dyn I18n>(services::I18N, self.service.clone())?;
        let s = self.service.clone();
        cx.contribute(
            RouteContribution::new("i18n", move || routes::router(s.clone()))
                .service(services::I18N)
                .operations(routes::operations()),
        )?;
        let s = self.service.clone();
        cx.subscribe(
            objectos_spec::event::metadata::RELOADED,
            move |_event: Arc<Event>| {
                let s = s.clone();
                async move {
                    match s.reload() {
                        Ok(()) => tracing::info!("Translations rebuilt from the reloaded metadata."),
                        Err(e) => tracing::error!(error = %e, "The reloaded translations do not compile; the previous ones stay."),
                    }
                    Ok(())
                }
            },
        )?;
        for topic in USER_CHANGES {
            let s = self.service.clone();
            cx.subscribe(topic, move |event: Arc<Event>| {
                let s = s.clone();
                async move {
                    let id = event
                        .payload
                        .get("recordId")
                        .or_else(|| event.payload.get("id"))
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned);
                    // Without an id, forget everyone rather than serve a stale setting.
                    s.forget_user(id.as_deref());
                    Ok(())
                }
            })?;
        }
        Ok(())
    }

    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        let engine = DataHandle::require_engine(cx)?;
        self.service
            .attach(engine)
            .map_err(|e| PluginError::config(PLUGIN_ID, e.to_string()))?;
        Ok(())
    }

    async fn health(&self) -> HealthReport {
        HealthReport::healthy()
    }
}
