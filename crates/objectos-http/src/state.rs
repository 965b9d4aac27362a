//! Shared state every handler reads from the depot: the engine, the server's identity, the
//! services present, the plugin manifests, and the kernel's health and readiness probes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use objectos_data::DataEngine;
use objectos_kernel::contracts::I18n;
use objectos_spec::manifest::ObjectStackManifest;
use objectos_spec::{KernelHealth, RuntimeMode};
use salvo::prelude::Depot;

use crate::config::HttpConfig;
use crate::error::HttpError;

/// What `/health` asks: the kernel's aggregated health.
#[async_trait::async_trait]
pub trait HealthProbe: Send + Sync + 'static {
    async fn health(&self) -> KernelHealth;
}

/// A service slot as discovery reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Spec service name (`data`, `auth`, `cache`...).
    pub name: String,
    /// Id of the plugin providing it.
    pub provider: String,
    /// HTTP route serving it, when it has one.
    pub route: Option<String>,
}

/// The state shared by all handlers (cheap to clone).
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    engine: DataEngine,
    config: HttpConfig,
    mode: RuntimeMode,
    version: String,
    services: Vec<ServiceEntry>,
    packages: Vec<ObjectStackManifest>,
    probe: Option<Arc<dyn HealthProbe>>,
    ready: Arc<AtomicBool>,
    home_redirect: Option<String>,
    i18n: Option<Arc<dyn I18n>>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("mode", &self.inner.mode)
            .field("version", &self.inner.version)
            .field("services", &self.inner.services)
            .finish_non_exhaustive()
    }
}

/// Builder for [`ApiState`]; the plugin fills it from the kernel, tests fill it by hand.
#[derive(Debug)]
pub struct ApiStateBuilder {
    engine: DataEngine,
    config: HttpConfig,
    mode: RuntimeMode,
    version: String,
    services: Vec<ServiceEntry>,
    packages: Vec<ObjectStackManifest>,
    probe: Option<Arc<dyn HealthProbe>>,
    ready: Arc<AtomicBool>,
    home_redirect: Option<String>,
    i18n: Option<Arc<dyn I18n>>,
}

impl std::fmt::Debug for dyn HealthProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HealthProbe")
    }
}

impl ApiStateBuilder {
    pub fn config(mut self, config: HttpConfig) -> Self {
        self.config = config;
        self
    }

    pub fn mode(mut self, mode: RuntimeMode) -> Self {
        self.mode = mode;
        self
    }

    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    pub fn service(mut self, entry: ServiceEntry) -> Self {
        self.services.push(entry);
        self
    }

    pub fn packages(mut self, packages: Vec<ObjectStackManifest>) -> Self {
        self.packages = packages;
        self
    }

    pub fn probe(mut self, probe: Arc<dyn HealthProbe>) -> Self {
        self.probe = Some(probe);
        self
    }

    /// Shares a readiness flag (set by the plugin once the kernel has started every plugin).
    pub fn ready_flag(mut self, ready: Arc<AtomicBool>) -> Self {
        self.ready = ready;
        self
    }

    /// Makes `GET /` redirect to `location` (a same-server path) instead of the links page.
    pub fn home_redirect(mut self, location: Option<String>) -> Self {
        self.home_redirect = location;
        self
    }

    /// Translates metadata labels through `i18n` (the service a plugin registered as `i18n`).
    pub fn i18n(mut self, i18n: Option<Arc<dyn I18n>>) -> Self {
        self.i18n = i18n;
        self
    }

    pub fn build(self) -> ApiState {
        ApiState {
            inner: Arc::new(Inner {
                engine: self.engine,
                config: self.config,
                mode: self.mode,
                version: self.version,
                services: self.services,
                packages: self.packages,
                probe: self.probe,
                ready: self.ready,
                home_redirect: self.home_redirect,
                i18n: self.i18n,
            }),
        }
    }
}

impl ApiState {
    /// Starts a builder with the data and metadata services present (the engine provides both).
    pub fn builder(engine: DataEngine) -> ApiStateBuilder {
        ApiStateBuilder {
            engine,
            config: HttpConfig::default(),
            mode: RuntimeMode::Development,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            services: Vec::new(),
            packages: Vec::new(),
            probe: None,
            ready: Arc::new(AtomicBool::new(true)),
            home_redirect: None,
            i18n: None,
        }
    }

    /// Where `GET /` redirects, when a plugin contributed a [`crate::HomeRedirect`].
    pub fn home_redirect(&self) -> Option<&str> {
        self.inner.home_redirect.as_deref()
    }

    /// The translation service, when a plugin provides `i18n`.
    pub fn i18n(&self) -> Option<&Arc<dyn I18n>> {
        self.inner.i18n.as_ref()
    }

    pub fn engine(&self) -> &DataEngine {
        &self.inner.engine
    }

    pub fn config(&self) -> &HttpConfig {
        &self.inner.config
    }

    pub fn mode(&self) -> RuntimeMode {
        self.inner.mode
    }

    pub fn version(&self) -> &str {
        &self.inner.version
    }

    pub fn services(&self) -> &[ServiceEntry] {
        &self.inner.services
    }

    /// The entry for a service name, if a plugin provides it.
    pub fn service(&self, name: &str) -> Option<&ServiceEntry> {
        self.inner.services.iter().find(|s| s.name == name)
    }

    pub fn packages(&self) -> &[ObjectStackManifest] {
        &self.inner.packages
    }

    pub fn probe(&self) -> Option<&Arc<dyn HealthProbe>> {
        self.inner.probe.as_ref()
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Reads the state injected at the root router.
    pub fn from_depot(depot: &Depot) -> Result<&ApiState, HttpError> {
        depot.get_typed::<ApiState>().map_err(|_| {
            HttpError::Internal(
                "ApiState is not in the depot; mount routes under the root router".into(),
            )
        })
    }
}
