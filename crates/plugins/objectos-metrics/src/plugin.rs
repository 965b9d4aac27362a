//! The kernel plugin `com.objectos.metrics`: installs the Prometheus recorder and contributes
//! the request hoop and the scrape routes at init, reads the database gauges from the data
//! engine at scrape time, and runs the exporter's upkeep while started.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use metrics_exporter_prometheus::PrometheusHandle;
use objectos_data::{DataEngine, DataHandle};
use objectos_http::{HoopContribution, RouteContribution, RouteOperation};
use objectos_kernel::{InitContext, Plugin, PluginError, StartContext, StopContext};
use objectos_spec::manifest::{ConfigProperty, PluginDependency, services};
use objectos_spec::{HealthReport, HealthStatus, PluginManifest};
use salvo::Router;

use crate::config::{Access, MetricsConfig};
use crate::http::{MetricsHoop, Scrape};
use crate::{PLUGIN_ID, collect, names, recorder};

/// The static manifest.
pub const MANIFEST: PluginManifest = PluginManifest {
    description: "Prometheus metrics: HTTP requests by route, data operations, database pool, outbox, plugin health; scraped at /metrics with a token or from allowed addresses",
    dependencies: &[PluginDependency {
        id: objectos_data::PLUGIN_ID,
        version: ">=0.1",
        optional: false,
    }],
    provides: &[services::METRICS],
    requires: &[services::DATA],
    permissions: &["data.read", "routes.mount"],
    configuration: &[
        ConfigProperty {
            key: "enabled",
            kind: "boolean",
            description: "Serve /metrics and record the built-in metrics",
            required: false,
            secret: false,
            default: Some("true"),
        },
        ConfigProperty {
            key: "token",
            kind: "string",
            description: "Bearer token a scraper sends (else read from tokenEnv)",
            required: false,
            secret: true,
            default: None,
        },
        ConfigProperty {
            key: "tokenEnv",
            kind: "string",
            description: "Environment variable holding the scrape token",
            required: false,
            secret: false,
            default: Some("\"OBJECTOS_METRICS_TOKEN\""),
        },
        ConfigProperty {
            key: "allow",
            kind: "array",
            description: "Addresses or CIDR ranges that may scrape without the token (default: loopback when no token is set)",
            required: false,
            secret: false,
            default: None,
        },
        ConfigProperty {
            key: "buckets",
            kind: "array",
            description: "Histogram bucket bounds (seconds) of every *_seconds metric",
            required: false,
            secret: false,
            default: None,
        },
        ConfigProperty {
            key: "tracing",
            kind: "object",
            description: "OpenTelemetry traces over OTLP/gRPC: enabled (false), endpoint (http:// or https://), caFile, nativeRoots, samplingRatio, serviceName, resource, timeoutSeconds",
            required: false,
            secret: false,
            default: None,
        },
    ],
    ..PluginManifest::new(PLUGIN_ID, "Metrics", env!("CARGO_PKG_VERSION"))
};

/// What the scrape handler, the service and the plugin share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) access: Access,
    handle: Option<PrometheusHandle>,
    engine: OnceLock<DataEngine>,
    /// The plugin's kernel handle, for the event bus's stats.
    kernel: OnceLock<objectos_kernel::PluginHandle>,
    started: Instant,
}

impl Shared {
    /// Reads the scrape-time gauges and renders everything in the Prometheus text format.
    pub(crate) async fn render(&self) -> String {
        let Some(handle) = &self.handle else {
            return String::new();
        };
        if let Some(engine) = self.engine.get() {
            collect::database(engine).await;
        }
        if let Some(kernel) = self.kernel.get() {
            collect::events(kernel);
        }
        metrics::gauge!(names::UPTIME).set(self.started.elapsed().as_secs_f64());
        handle.render()
    }
}

/// The `metrics` service: the same text a scrape gets (for an admin page, a CLI), without the
/// access check, which is the caller's to make.
#[derive(Debug, Clone)]
pub struct MetricsService {
    shared: Arc<Shared>,
}

impl MetricsService {
    /// Everything recorded so far, in the Prometheus text format (empty when disabled).
    pub async fn render(&self) -> String {
        self.shared.render().await
    }
}

/// The metrics plugin; `config` is overridden by the kernel configuration of
/// `com.objectos.metrics` when one is given.
#[derive(Debug, Default)]
pub struct MetricsPlugin {
    pub config: MetricsConfig,
    shared: OnceLock<Arc<Shared>>,
    upkeep: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl MetricsPlugin {
    pub fn new(config: MetricsConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }
}

/// How often the exporter's histograms are drained into their buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

#[async_trait]
impl Plugin for MetricsPlugin {
    fn manifest(&self) -> &PluginManifest {
        &MANIFEST
    }

    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        let config = cx.settings_or(&crate::CONFIG_SECTION, self.config.clone())?;
        let access = Access::resolve(&config).map_err(|m| PluginError::config(PLUGIN_ID, m))?;
        if config.tracing.enabled {
            // The server built the exporter before the plugins started and could only warn; a
            // CA file that cannot be read stops the start here, naming its key.
            config.tracing.tls_config().map_err(|e| {
                PluginError::config(
                    PLUGIN_ID,
                    match e {
                        crate::MetricsError::Config(m) => m,
                        other => other.to_string(),
                    },
                )
            })?;
        }
        let handle = if config.enabled {
            let handle = recorder::install(&config.buckets)
                .map_err(|e| PluginError::config(PLUGIN_ID, e.to_string()))?;
            metrics::gauge!(names::BUILD_INFO, "version" => cx.kernel().version.clone()).set(1.0);
            Some(handle)
        } else {
            None
        };
        let shared = Arc::new(Shared {
            access,
            handle,
            engine: OnceLock::new(),
            kernel: OnceLock::new(),
            started: Instant::now(),
        });
        cx.register(
            services::METRICS,
            Arc::new(MetricsService {
                shared: shared.clone(),
            }),
        )?;
        if config.enabled {
            // First of the contributed hoops, so the time spent in the others (the session
            // look-up included) is part of the request's latency.
            cx.contribute(HoopContribution::new(i32::MIN / 2, MetricsHoop::new()))?;
            let root = shared.clone();
            cx.contribute(RouteContribution::new("/metrics", move || {
                Router::new().get(Scrape(root.clone()))
            }))?;
            // The path the ObjectStack reference server serves them at. Public for the auth
            // plugin (a scraper holds no session): the scrape handler checks the metrics token
            // or address itself.
            let api = shared.clone();
            cx.contribute(
                RouteContribution::new("metrics", move || {
                    Router::with_path("prometheus").get(Scrape(api.clone()))
                })
                .service(services::METRICS)
                .operations(vec![
                    RouteOperation::get(
                        "prometheus",
                        "The metrics in the Prometheus text format (metrics token or an address in metrics.allow)",
                    )
                    .public(),
                ]),
            )?;
        }
        let _ = self.shared.set(shared);
        Ok(())
    }

    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        let shared = self
            .shared
            .get()
            .ok_or_else(|| PluginError::msg("start called before init"))?
            .clone();
        if let Some(engine) = cx.get_named::<DataHandle>(services::DATA)?.engine() {
            let _ = shared.engine.set(engine.clone());
        }
        let _ = shared.kernel.set(cx.handle());
        if let Some(handle) = shared.handle.clone() {
            if !shared.access.has_token() {
                tracing::info!(
                    "No metrics token configured; /metrics answers only the addresses in metrics.allow (loopback by default)."
                );
            }
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(UPKEEP_EVERY);
                loop {
                    tick.tick().await;
                    handle.run_upkeep();
                }
            });
            if let Ok(mut slot) = self.upkeep.lock() {
                *slot = Some(task);
            }
        }
        Ok(())
    }

    async fn health(&self) -> HealthReport {
        if self.shared.get().is_some() {
            HealthReport::healthy()
        } else {
            HealthReport::with_status(HealthStatus::Unknown, "not initialised")
        }
    }

    async fn destroy(&self, _cx: &StopContext) -> Result<(), PluginError> {
        if let Ok(mut slot) = self.upkeep.lock()
            && let Some(task) = slot.take()
        {
            task.abort();
        }
        Ok(())
    }
}
