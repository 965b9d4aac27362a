//! The HTTP kernel plugin: resolves the data engine, collects route and hoop contributions, serves
//! them with salvo, reports readiness after `kernel.ready`, and stops gracefully on shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use objectos_data::DataHandle;
use objectos_kernel::contracts::I18n;
use objectos_kernel::{
    InitContext, Kernel, KernelHealth, Plugin, PluginError, StartContext, StopContext, async_trait,
};
use objectos_spec::manifest::{ObjectStackManifest, capabilities, services};
use objectos_spec::{HealthReport, HealthStatus, PluginManifest};
use parking_lot::Mutex;

use crate::config::HttpConfig;
use crate::contribution::{HomeRedirect, HoopContribution, RouteContribution};
use crate::server::{self, RunningServer};
use crate::state::{ApiState, HealthProbe, ServiceEntry};

/// The plugin's manifest.
pub const MANIFEST: PluginManifest = PluginManifest {
    description: "HTTP server (salvo): discovery, /api/v1/data, /api/v1/meta, UI views, OpenAPI, health and readiness; mounts routes contributed by other plugins",
    provides: &[services::HTTP_SERVER],
    requires: &[services::DATA, services::METADATA],
    // Translated metadata labels when a plugin provides `i18n` (started before this one).
    optional_requires: &[services::I18N],
    permissions: &[
        capabilities::DATA_READ,
        capabilities::DATA_WRITE,
        capabilities::METADATA_READ,
        capabilities::EVENTS_SUBSCRIBE,
        capabilities::ROUTES_MOUNT,
        capabilities::NET_HTTP,
    ],
    subscribes: &[objectos_spec::event::names::KERNEL_READY],
    ..PluginManifest::new(
        "com.objectos.http",
        "ObjectOS HTTP server",
        env!("CARGO_PKG_VERSION"),
    )
};

/// What the host application shares with the plugin: the kernel (for health and the service
/// list), the bound address, and the manifests to list under `/api/v1/packages`.
///
/// The kernel owns the plugin, so the plugin holds the kernel weakly: no reference cycle.
#[derive(Clone, Default)]
pub struct HttpControl {
    inner: Arc<ControlInner>,
}

#[derive(Default)]
struct ControlInner {
    kernel: OnceLock<Weak<Kernel>>,
    local_addr: OnceLock<SocketAddr>,
    ready: Arc<AtomicBool>,
}

impl std::fmt::Debug for HttpControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpControl")
            .field("local_addr", &self.inner.local_addr.get())
            .field("ready", &self.inner.ready.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

impl HttpControl {
    /// Lets `/health` and discovery see the kernel. Call after building it, before `boot`.
    pub fn attach(&self, kernel: &Arc<Kernel>) {
        // A second attach keeps the first kernel; one control belongs to one kernel.
        let _ = self.inner.kernel.set(Arc::downgrade(kernel));
    }

    /// The address the server is bound to, once the plugin has started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr.get().copied()
    }

    /// True once `kernel.ready` was seen.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    fn kernel(&self) -> Option<Arc<Kernel>> {
        self.inner.kernel.get().and_then(Weak::upgrade)
    }
}

/// `/health` through the kernel.
struct KernelProbe(HttpControl);

#[async_trait]
impl HealthProbe for KernelProbe {
    async fn health(&self) -> KernelHealth {
        match self.0.kernel() {
            Some(kernel) => kernel.health().await,
            None => KernelHealth {
                status: HealthStatus::Failed,
                instance_id: String::new(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                uptime_ms: 0,
                plugins: Vec::new(),
            },
        }
    }
}

/// The HTTP server plugin. Its public fields are its settings.
#[derive(Debug, Default)]
pub struct HttpPlugin {
    pub config: HttpConfig,
    /// Manifests listed by `/api/v1/packages` (the host passes every plugin it compiled in).
    pub packages: Vec<ObjectStackManifest>,
    control: HttpControl,
    running: Mutex<Option<RunningServer>>,
}

impl HttpPlugin {
    pub fn new(config: HttpConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    pub fn with_packages(mut self, packages: Vec<ObjectStackManifest>) -> Self {
        self.packages = packages;
        self
    }

    /// The control shared with the host (attach the kernel, read the bound address).
    pub fn control(&self) -> HttpControl {
        self.control.clone()
    }
}

/// Which route each spec service is served on when its plugin contributed one.
///
/// `contributions` pairs each route contribution with the id of the plugin that made it. A
/// contribution naming a service no plugin registered (the audit plugin serves `audit-log` over
/// HTTP only) still makes that service present, provided by the contributing plugin.
fn service_entries(
    kernel: Option<&Arc<Kernel>>,
    contributions: &[(String, RouteContribution)],
) -> Vec<ServiceEntry> {
    // The advertised mount of a service: its first contribution that is not a compatibility mount.
    let route_for = |name: &str| {
        contributions
            .iter()
            .find(|(_, c)| !c.compat && c.service_name() == Some(name))
            .map(|(_, c)| c.absolute_mount())
    };
    let registered: Vec<(String, String)> = match kernel {
        Some(kernel) => kernel
            .registry()
            .services()
            .into_iter()
            .map(|info| (info.name, info.provider))
            .collect(),
        None => vec![
            (services::DATA.into(), "com.objectos.data".into()),
            (services::METADATA.into(), "com.objectos.data".into()),
        ],
    };
    let mut entries: Vec<ServiceEntry> = registered
        .into_iter()
        .map(|(name, provider)| ServiceEntry {
            route: route_for(&name),
            name,
            provider,
        })
        .collect();
    for (plugin, c) in contributions {
        let Some(name) = c.service.as_deref() else {
            continue;
        };
        if c.compat || entries.iter().any(|e| e.name == name) {
            continue;
        }
        entries.push(ServiceEntry {
            name: name.to_owned(),
            provider: plugin.clone(),
            route: Some(c.absolute_mount()),
        });
    }
    entries
}

#[async_trait]
impl Plugin for HttpPlugin {
    fn manifest(&self) -> &PluginManifest {
        &MANIFEST
    }

    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        if self.config.body_limit == 0 {
            return Err(PluginError::config(
                MANIFEST.id,
                "http.bodyLimit is 0; it must be at least 1 byte",
            ));
        }
        cx.register::<HttpControl>(services::HTTP_SERVER, Arc::new(self.control.clone()))?;
        let ready = self.control.inner.ready.clone();
        cx.subscribe_sync(objectos_spec::event::names::KERNEL_READY, move |_event| {
            ready.store(true, Ordering::Release);
            Ok(())
        })?;
        Ok(())
    }

    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        let engine = DataHandle::require_engine(cx)?;
        let contributed: Vec<(String, RouteContribution)> = cx
            .contributions::<RouteContribution>()?
            .iter()
            .map(|c| (c.plugin.clone(), c.value.clone()))
            .collect();
        let routes: Vec<RouteContribution> = contributed.iter().map(|(_, c)| c.clone()).collect();
        let hoops: Vec<HoopContribution> = cx
            .contributions::<HoopContribution>()?
            .iter()
            .map(|c| c.value.clone())
            .collect();
        let home_redirect = cx
            .contributions::<HomeRedirect>()?
            .iter()
            .find_map(|c| c.value.same_server_path().map(str::to_owned));
        let kernel = self.control.kernel();
        // Metadata labels are translated when a plugin provides `i18n` (registered at init).
        let i18n = cx.get_named::<dyn I18n>(services::I18N).ok();
        let mut builder = ApiState::builder(engine)
            .i18n(i18n)
            .home_redirect(home_redirect)
            .config(self.config.clone())
            .mode(cx.kernel().mode)
            .version(cx.kernel().version.clone())
            .packages(self.packages.clone())
            .ready_flag(self.control.inner.ready.clone())
            .probe(Arc::new(KernelProbe(self.control.clone())));
        for entry in service_entries(kernel.as_ref(), &contributed) {
            builder = builder.service(entry);
        }
        let state = builder.build();
        let service = server::build_service(state, &routes, &hoops);
        let running = server::serve(service, &self.config.listen)
            .await
            .map_err(|e| PluginError::Startup {
                plugin: MANIFEST.id.to_owned(),
                message: e.to_string(),
            })?;
        // Only the first start records the address; a plugin is started once per kernel.
        let _ = self.control.inner.local_addr.set(running.local_addr);
        *self.running.lock() = Some(running);
        Ok(())
    }

    async fn health(&self) -> HealthReport {
        if self.running.lock().is_some() {
            HealthReport::healthy()
        } else {
            HealthReport::with_status(HealthStatus::Unhealthy, "the HTTP server is not running")
        }
    }

    async fn destroy(&self, _cx: &StopContext) -> Result<(), PluginError> {
        self.control.inner.ready.store(false, Ordering::Release);
        let running = self.running.lock().take();
        if let Some(running) = running {
            tracing::info!("Stopping the HTTP server gracefully.");
            running
                .shutdown(Duration::from_secs(self.config.shutdown_grace_secs))
                .await;
        }
        Ok(())
    }
}
