//! The kernel plugin `com.objectos.notification`.
//!
//! `init` reads the settings, registers the [`NotificationService`] as the `notification`
//! service (`dyn Notifier`, which the auth plugin also takes as its `Mailer`), and contributes
//! the schema (objects, private tables, the `template` kind) and the routes. `start` takes the
//! data engine and, when present, the jobs plugin's queue (`queue`, enqueueing inside the
//! message's transaction; registering the delivery handler), builds the
//! mail transport, and queues again what a previous run left undelivered.

use std::sync::{Arc, OnceLock};

use objectos_data::{DataHandle, TransactionalJobQueue};
use objectos_kernel::contracts::Notifier;
use objectos_kernel::{InitContext, Plugin, PluginError, StartContext, async_trait};
use objectos_spec::PluginManifest;
use objectos_spec::manifest::services;

use crate::config::NotificationSettings;
use crate::service::NotificationService;
use crate::{CONFIG_SECTION, MANIFEST, PLUGIN_ID, SERVICE, routes, schema};

/// The plugin; its public field is its settings (used when the kernel has no configuration).
#[derive(Debug, Default)]
pub struct NotificationPlugin {
    pub settings: NotificationSettings,
    service: Arc<OnceLock<NotificationService>>,
}

impl NotificationPlugin {
    pub fn new(settings: NotificationSettings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    /// The service, once `init` ran (tests and hosts reach it through this).
    pub fn service_cell(&self) -> Arc<OnceLock<NotificationService>> {
        self.service.clone()
    }
}

#[async_trait]
impl Plugin for NotificationPlugin {
    fn manifest(&self) -> &PluginManifest {
        &MANIFEST
    }

    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        let settings = cx.settings_or(&CONFIG_SECTION, self.settings.clone())?;
        let service = NotificationService::new(settings);
        cx.register::<dyn Notifier>(SERVICE, Arc::new(service.clone()))?;
        cx.contribute(schema::schema())?;
        cx.contribute(routes::contribution(service.clone()))?;
        cx.contribute(routes::email_contribution(service.clone()))?;
        let hooks = service.clone();
        cx.subscribe(
            crate::hooks::SUBSCRIPTION,
            move |event: Arc<objectos_spec::Event>| {
                let hooks = hooks.clone();
                async move {
                    hooks.on_record_event(&event).await;
                    Ok(())
                }
            },
        )?;
        let _ = self.service.set(service);
        Ok(())
    }

    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        let service = self
            .service
            .get()
            .ok_or_else(|| PluginError::msg("start called before init"))?
            .clone();
        let engine = cx
            .get_named::<DataHandle>(services::DATA)?
            .engine()
            .cloned()
            .ok_or_else(|| {
                PluginError::msg("the data engine is not open; the data plugin must start first")
            })?;
        // The jobs plugin's queue as the transactional enqueue: a message's job commits with
        // the message.
        let queue = cx
            .get_named::<dyn TransactionalJobQueue>(services::QUEUE)
            .ok();
        service
            .start(engine, queue)
            .map_err(|e| PluginError::Startup {
                plugin: PLUGIN_ID.to_owned(),
                message: e.to_string(),
            })?;
        service
            .load_unsubscribe_key()
            .await
            .map_err(|e| PluginError::Startup {
                plugin: PLUGIN_ID.to_owned(),
                message: e.to_string(),
            })?;
        match service.resume_pending().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                plugin = PLUGIN_ID,
                messages = n,
                "Undelivered messages queued again."
            ),
            Err(e) => {
                tracing::warn!(plugin = PLUGIN_ID, error = %e, "Could not queue the undelivered messages again.")
            }
        }
        tracing::info!(
            plugin = PLUGIN_ID,
            transport = service.transport(),
            jobs = service.uses_job_queue(),
            "Plugin started."
        );
        Ok(())
    }
}
