//! The kernel plugin `com.objectos.storage`.
//!
//! `init` reads the settings, makes the URL signer, registers the [`StorageService`] as the
//! `file-storage` service (`dyn BlobStore`), and contributes the schema, the routes and the
//! interceptor that checks file ids written into records ([`FileFieldGuard`]). `start`
//! opens the backend, takes the data engine and, when present, the permissions plugin's
//! `Authorizer`, and starts the cleanup of expired uploads: a job on the job queue when the
//! jobs plugin runs, else a timer task of its own.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use objectos_data::{DataHandle, InterceptorContribution};
use objectos_kernel::contracts::{
    Authorizer, BlobStore, JobFailure, JobQueue, Periodic, run_every,
};
use objectos_kernel::{InitContext, Plugin, PluginError, StartContext, StopContext, async_trait};
use objectos_spec::PluginManifest;
use objectos_spec::manifest::services;

use crate::config::{BackendKind, StorageSettings};
use crate::guard::FileFieldGuard;
use crate::local::LocalBlobStore;
use crate::service::{Started, StorageService};
use crate::sign::Signer;
use crate::{CONFIG_SECTION, MANIFEST, PLUGIN_ID, SERVICE, routes, schema};

/// The job handler that removes expired upload sessions.
pub const CLEANUP_HANDLER: &str = "storage.cleanup";

/// The plugin; its public field is its settings (used when the kernel has no configuration).
#[derive(Debug, Default)]
pub struct StoragePlugin {
    pub settings: StorageSettings,
    /// The data folder: where the files go when `local.root` is not set
    /// ([`StorageSettings::local`], [`crate::config::LocalSettings::root_in`]).
    data_dir: Option<PathBuf>,
    service: Arc<OnceLock<Arc<StorageService>>>,
    cleanup: Mutex<Periodic>,
}

impl StoragePlugin {
    pub fn new(settings: StorageSettings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    /// Sets the data folder (the server passes the SQLite database file's folder), under which
    /// the files go (`<data dir>/files`) unless `storage.local.root` names a folder.
    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The service, once `init` ran (tests and hosts reach sessions and cleanup through it).
    pub fn service_cell(&self) -> Arc<OnceLock<Arc<StorageService>>> {
        self.service.clone()
    }
}

/// The signing key: the setting, else the variable it names, else a random key for this
/// process (signed URLs then do not survive a restart and differ between nodes).
fn signer(settings: &StorageSettings) -> Result<Signer, PluginError> {
    let from_env = std::env::var(settings.signing_key_env.trim())
        .ok()
        .filter(|v| !v.trim().is_empty());
    let key: Vec<u8> = match (&settings.signing_key, from_env) {
        (Some(k), _) => k.expose().as_bytes().to_vec(),
        (None, Some(v)) => v.into_bytes(),
        (None, None) => {
            tracing::warn!(
                plugin = PLUGIN_ID,
                variable = %settings.signing_key_env,
                "No storage signing key is configured; signed URLs use a random key and stop working after a restart."
            );
            let mut k = [0u8; 32];
            getrandom::fill(&mut k).map_err(|e| PluginError::config(PLUGIN_ID, e.to_string()))?;
            k.to_vec()
        }
    };
    Signer::new(&key).ok_or_else(|| PluginError::config(PLUGIN_ID, "the signing key is not usable"))
}

/// The configured backend, and the same store as a [`LocalBlobStore`] when it is one.
async fn open_backend(
    settings: &StorageSettings,
) -> Result<(Arc<dyn BlobStore>, Option<Arc<LocalBlobStore>>), PluginError> {
    let startup = |message: String| PluginError::Startup {
        plugin: PLUGIN_ID.to_owned(),
        message,
    };
    match settings.backend {
        BackendKind::Local => {
            let root = settings.local.root_in(None);
            let store = LocalBlobStore::open(&root)
                .await
                .map_err(|e| startup(e.to_string()))?;
            tracing::info!(plugin = PLUGIN_ID, root = %root.display(), "Files are stored in a local folder.");
            let store = Arc::new(store);
            Ok((store.clone(), Some(store)))
        }
        BackendKind::S3 => crate::s3::open(&settings.s3)
            .map(|s3| (s3, None))
            .map_err(|e| startup(e.to_string())),
    }
}

#[async_trait]
impl Plugin for StoragePlugin {
    fn manifest(&self) -> &PluginManifest {
        &MANIFEST
    }

    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        let mut settings = cx.settings_or(&CONFIG_SECTION, self.settings.clone())?;
        // Resolved once here, so the service, its log line and its backend agree on the folder.
        settings.local.root = Some(settings.local.root_in(self.data_dir.as_deref()));
        let signer = signer(&settings)?;
        let service = Arc::new(StorageService::new(settings, signer));
        cx.register::<dyn BlobStore>(SERVICE, service.clone())?;
        cx.contribute(schema())?;
        cx.contribute(routes::contribution(service.clone()))?;
        // Installed by the data plugin before any request: no record write escapes it.
        cx.contribute(InterceptorContribution(Arc::new(FileFieldGuard::new(
            Arc::downgrade(&service),
        ))))?;
        let _ = self.service.set(service);
        Ok(())
    }

    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        let service = self
            .service
            .get()
            .ok_or_else(|| PluginError::msg("start called before init"))?
            .clone();
        let engine = DataHandle::require_engine(cx)?;
        let (blobs, local) = open_backend(service.settings()).await?;
        let authorizer = cx.get_named::<dyn Authorizer>(services::PERMISSIONS).ok();
        if authorizer.is_none() {
            tracing::info!(
                plugin = PLUGIN_ID,
                "No permissions plugin: files attached to records are readable by every member of their organization."
            );
        }
        service.set_started(Started {
            engine,
            blobs,
            local,
            authorizer,
        });
        let every = Duration::from_secs(service.settings().cleanup_interval_seconds);
        let queue = cx.get_named::<dyn JobQueue>(services::JOB).ok();
        let s = service.clone();
        let periodic = run_every(queue.as_ref(), CLEANUP_HANDLER, every, move || {
            let s = s.clone();
            async move {
                match s.cleanup_expired().await {
                    Ok(0) => Ok(()),
                    Ok(n) => {
                        tracing::info!(
                            plugin = PLUGIN_ID,
                            sessions = n,
                            "Expired uploads removed."
                        );
                        Ok(())
                    }
                    Err(e) => Err(JobFailure::retry(e.to_string())),
                }
            }
        });
        if let Ok(mut slot) = self.cleanup.lock() {
            *slot = periodic;
        }
        tracing::info!(plugin = PLUGIN_ID, backend = %service.backend(), "Plugin started.");
        Ok(())
    }

    async fn destroy(&self, _cx: &StopContext) -> Result<(), PluginError> {
        if let Ok(mut slot) = self.cleanup.lock() {
            slot.stop();
        }
        Ok(())
    }
}
