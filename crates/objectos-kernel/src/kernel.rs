//! The kernel: builder, boot (resolve, init, start, `kernel.ready`), health aggregation and shutdown.
//!
//! Resolution problems are fatal and reported all at once by [`KernelBuilder::build`]. A plugin
//! whose `init` or `start` fails, panics or times out is not fatal: it is recorded in the
//! [`StartupReport`], every plugin that needs it (transitively, through non-optional dependencies
//! and required services) is skipped with an error naming it, and the rest boot normally.

use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use objectos_spec::event::names;
use objectos_spec::health::{PluginHealth, PluginStartupResult, StartupError};
use objectos_spec::{
    HealthReport, HealthStatus, KernelContext, KernelHealth, PluginManifest, RuntimeMode,
    StartupReport,
};

use crate::cluster::ClusterSettings;
use crate::context::{InitContext, PluginHandle, Shared, StartContext, StopContext};
use crate::contracts::{
    Clock, DeadLetterStore, EventTransport, MemoryDeadLetterStore, SystemClock,
    TransportContribution,
};
use crate::error::{KernelError, PluginError, panic_message};
use crate::events::{EventBus, EventBusConfig, make_event};
use crate::plugin::Plugin;
use crate::registry::ServiceRegistry;
use crate::resolve::{EdgeKind, ResolvedPlan, resolve};

/// Time limits of the lifecycle phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Per plugin `start`.
    pub start: Duration,
    /// Per plugin `destroy`.
    pub destroy: Duration,
    /// Per plugin `health` probe.
    pub health: Duration,
    /// How long shutdown waits for event subscribers to drain their queues.
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            start: Duration::from_secs(30),
            destroy: Duration::from_secs(10),
            health: Duration::from_secs(5),
            drain: Duration::from_secs(5),
        }
    }
}

/// Builds a [`Kernel`].
pub struct KernelBuilder {
    mode: RuntimeMode,
    version: String,
    cwd: Option<String>,
    plugins: Vec<Box<dyn Plugin>>,
    config: HashMap<String, serde_json::Value>,
    timeouts: Timeouts,
    clock: Arc<dyn Clock>,
    dead_letters: Option<Arc<dyn DeadLetterStore>>,
    transport: Option<Arc<dyn EventTransport>>,
    cluster: ClusterSettings,
}

impl fmt::Debug for KernelBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelBuilder")
            .field("mode", &self.mode)
            .field("version", &self.version)
            .field(
                "plugins",
                &self
                    .plugins
                    .iter()
                    .map(|p| p.manifest().id)
                    .collect::<Vec<_>>(),
            )
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl Default for KernelBuilder {
    fn default() -> Self {
        Self {
            mode: RuntimeMode::default(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            cwd: None,
            plugins: Vec::new(),
            config: HashMap::new(),
            timeouts: Timeouts::default(),
            clock: Arc::new(SystemClock),
            dead_letters: None,
            transport: None,
            cluster: ClusterSettings::default(),
        }
    }
}

impl KernelBuilder {
    /// Development, production or test.
    pub fn mode(mut self, mode: RuntimeMode) -> Self {
        self.mode = mode;
        self
    }

    /// The version reported in the kernel context (the server's version).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// The working directory reported in the kernel context (default: the process's).
    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Adds a plugin; registration order breaks ties in the start order.
    pub fn plugin(mut self, plugin: impl Plugin) -> Self {
        self.plugins.push(Box::new(plugin));
        self
    }

    /// Adds an already boxed plugin.
    pub fn boxed_plugin(mut self, plugin: Box<dyn Plugin>) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// Sets the configuration handed to plugin `id` in `init`.
    pub fn config(mut self, id: impl Into<String>, value: serde_json::Value) -> Self {
        self.config.insert(id.into(), value);
        self
    }

    /// Time limit of each plugin's `start`.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.start = timeout;
        self
    }

    /// All time limits at once.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The clock (a manual one in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The dead-letter store (default: in memory).
    pub fn dead_letters(mut self, store: Arc<dyn DeadLetterStore>) -> Self {
        self.dead_letters = Some(store);
        self
    }

    /// The cross-node event transport (default: none, single node).
    pub fn transport(mut self, transport: Arc<dyn EventTransport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// This node's id and the shared services plugins reach other nodes through
    /// (`objectos.yml`'s `cluster` section); plugins read it with `cx.cluster()`.
    pub fn cluster(mut self, cluster: ClusterSettings) -> Self {
        self.cluster = cluster;
        self
    }

    /// Resolves the plugins and builds the kernel; every resolution problem is reported at once.
    pub fn build(self) -> Result<Kernel, KernelError> {
        let manifests: Vec<&PluginManifest> = self.plugins.iter().map(|p| p.manifest()).collect();
        let plan = resolve(&manifests)?;
        let cwd = self.cwd.unwrap_or_else(|| {
            std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        });
        let kernel_cx = KernelContext {
            instance_id: uuid::Uuid::now_v7().to_string(),
            mode: self.mode,
            version: self.version,
            cwd,
            start_time: self.clock.now(),
            features: Default::default(),
        };
        let bus = EventBus::new(EventBusConfig {
            dead_letters: self
                .dead_letters
                .unwrap_or_else(|| Arc::new(MemoryDeadLetterStore::default())),
            transport: self.transport,
            clock: self.clock.clone(),
        });
        let shared = Arc::new(Shared {
            kernel: Arc::new(kernel_cx),
            registry: Arc::new(ServiceRegistry::new()),
            bus,
            clock: self.clock,
            cluster: Arc::new(self.cluster),
        });
        let handles = self
            .plugins
            .iter()
            .map(|p| PluginHandle::new(p.manifest(), shared.clone()))
            .collect();
        let outcomes = vec![Outcome::Pending; self.plugins.len()];
        Ok(Kernel {
            plugins: self.plugins,
            plan,
            handles,
            shared,
            config: self.config,
            timeouts: self.timeouts,
            phase: tokio::sync::Mutex::new(Phase::Built),
            outcomes: parking_lot::Mutex::new(outcomes),
            booted_at: parking_lot::Mutex::new(None),
            stopped: AtomicBool::new(false),
        })
    }
}

/// Where one plugin stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Pending,
    Initialised,
    Started,
    Failed(String),
    Skipped(String),
    Stopped,
}

impl Outcome {
    fn is_broken(&self) -> bool {
        matches!(self, Self::Failed(_) | Self::Skipped(_))
    }
}

enum Phase {
    Built,
    /// Every `init` ran ([`Kernel::initialise`]); no `start` yet.
    Initialised(InitState),
    Running {
        started: Vec<usize>,
    },
    Stopped,
}

/// What the `init` pass left for the `start` pass.
struct InitState {
    outcomes: Vec<Outcome>,
    durations: Vec<Duration>,
    errors: Vec<Option<PluginError>>,
    boot_start: Instant,
}

/// What shutdown did.
#[derive(Debug, Default)]
pub struct ShutdownReport {
    /// Plugins whose `destroy` ran, in the order it ran.
    pub destroyed: Vec<String>,
    /// Failures of `destroy` (errors, panics, timeouts); they do not stop the others.
    pub errors: Vec<PluginError>,
    pub duration_ms: f64,
}

/// A built kernel. Boot it with [`Kernel::boot`].
pub struct Kernel {
    plugins: Vec<Box<dyn Plugin>>,
    plan: ResolvedPlan,
    handles: Vec<PluginHandle>,
    shared: Arc<Shared>,
    config: HashMap<String, serde_json::Value>,
    timeouts: Timeouts,
    /// Serialises boot and shutdown.
    phase: tokio::sync::Mutex<Phase>,
    outcomes: parking_lot::Mutex<Vec<Outcome>>,
    booted_at: parking_lot::Mutex<Option<Instant>>,
    stopped: AtomicBool,
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel")
            .field("instance_id", &self.shared.kernel.instance_id)
            .field("order", &self.start_order())
            .finish_non_exhaustive()
    }
}

const NULL_CONFIG: serde_json::Value = serde_json::Value::Null;

impl Kernel {
    /// A builder with development mode, the crate version and default timeouts.
    pub fn builder() -> KernelBuilder {
        KernelBuilder::default()
    }

    /// Identity, mode, version, cwd and start time of this kernel.
    pub fn context(&self) -> &KernelContext {
        &self.shared.kernel
    }

    /// The service registry (frozen once boot has run every `init`).
    pub fn registry(&self) -> &Arc<ServiceRegistry> {
        &self.shared.registry
    }

    /// The event bus, without capability checks (for the host application and tests).
    pub fn bus(&self) -> &EventBus {
        &self.shared.bus
    }

    /// Plugin ids in start order.
    pub fn start_order(&self) -> Vec<&'static str> {
        self.plan
            .order
            .iter()
            .map(|&i| self.plugins[i].manifest().id)
            .collect()
    }

    fn manifest(&self, i: usize) -> &PluginManifest {
        self.plugins[i].manifest()
    }

    /// Why plugin `i` cannot run: the first hard dependency that failed or was skipped.
    fn blocked_by(&self, i: usize, outcomes: &[Outcome]) -> Option<String> {
        self.plan.edges[i].iter().filter(|e| e.is_hard()).find_map(|e| {
            let state = match &outcomes[e.on] {
                Outcome::Failed(_) => "failed",
                Outcome::Skipped(_) => "was skipped",
                _ => return None,
            };
            let dep = self.manifest(e.on).id;
            Some(match &e.kind {
                EdgeKind::Plugin { range, .. } => {
                    format!("it depends on `{dep}` {range}, which {state}; fix `{dep}` first")
                }
                EdgeKind::Service { name } => format!(
                    "it requires service `{name}` from `{dep}`, which {state}; fix `{dep}` first"
                ),
                // Not hard, so filtered out above; kept for an exhaustive match.
                EdgeKind::OptionalService { .. } => return None,
            })
        })
    }

    /// Checks required configuration properties before `init`.
    fn check_config(
        &self,
        m: &PluginManifest,
        config: &serde_json::Value,
    ) -> Result<(), PluginError> {
        let missing: Vec<String> = m
            .configuration
            .iter()
            .filter(|p| p.required && p.default.is_none() && config.get(p.key).is_none())
            .map(|p| format!("`{}` ({})", p.key, p.kind))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(PluginError::config(
                m.id,
                format!(
                    "missing required setting{} {}; set {} in the plugin's configuration",
                    if missing.len() == 1 { "" } else { "s" },
                    missing.join(", "),
                    if missing.len() == 1 { "it" } else { "them" },
                ),
            ))
        }
    }

    // One span per lifecycle step, a child of `kernel.boot`, so a trace shows which plugin a
    // slow or failed start belongs to.
    #[tracing::instrument(name = "plugin.init", level = "debug", skip_all, fields(plugin = self.manifest(i).id))]
    fn run_init(&self, i: usize) -> Result<(), PluginError> {
        let m = self.manifest(i);
        let config = self.config.get(m.id).unwrap_or(&NULL_CONFIG);
        self.check_config(m, config)?;
        let mut cx = InitContext::new(self.handles[i].clone(), config);
        let plugin = &self.plugins[i];
        std::panic::catch_unwind(AssertUnwindSafe(|| plugin.init(&mut cx))).unwrap_or_else(
            |payload| {
                Err(PluginError::Panicked {
                    context: format!("plugin `{}` init", m.id),
                    message: panic_message(payload.as_ref()),
                })
            },
        )?;
        let registered = self.shared.registry.names_of(m.id);
        let unregistered: Vec<&str> = m
            .provides
            .iter()
            .copied()
            .filter(|p| !registered.iter().any(|r| r == p))
            .collect();
        if !unregistered.is_empty() {
            return Err(PluginError::Startup {
                plugin: m.id.to_owned(),
                message: format!(
                    "its manifest `provides` {} but `init` did not register {}; call `cx.register(..)` in `init` or remove the name from `provides`",
                    unregistered
                        .iter()
                        .map(|s| format!("\"{s}\""))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if unregistered.len() == 1 {
                        "it"
                    } else {
                        "them"
                    },
                ),
            });
        }
        Ok(())
    }

    #[tracing::instrument(name = "plugin.start", level = "debug", skip_all, fields(plugin = self.manifest(i).id))]
    async fn run_start(&self, i: usize) -> Result<(), PluginError> {
        let id = self.manifest(i).id;
        let cx = StartContext::new(self.handles[i].clone());
        let fut = AssertUnwindSafe(self.plugins[i].start(&cx)).catch_unwind();
        match tokio::time::timeout(self.timeouts.start, fut).await {
            Ok(Ok(result)) => result,
            Ok(Err(payload)) => Err(PluginError::Panicked {
                context: format!("plugin `{id}` start"),
                message: panic_message(payload.as_ref()),
            }),
            Err(_) => Err(PluginError::Timeout {
                plugin: id.to_owned(),
                phase: "start",
                after: self.timeouts.start,
            }),
        }
    }

    /// Installs the event transport a plugin contributed in `init` (at most one, and none when
    /// the host gave one to the builder), so that it carries events from the first `start` on.
    fn install_transport(&self) -> Result<(), KernelError> {
        let offered = self
            .shared
            .registry
            .contributions::<TransportContribution>()?;
        let mut by: Vec<String> = Vec::with_capacity(offered.len() + 1);
        if let Some(host) = self.shared.bus.transport_name() {
            by.push(format!("the host (`KernelBuilder::transport`, `{host}`)"));
        }
        by.extend(
            offered
                .iter()
                .map(|c| format!("plugin `{}` (`{}`)", c.plugin, c.value.0.name())),
        );
        if let [first, second, ..] = by.as_slice() {
            return Err(KernelError::DuplicateTransport {
                first: first.clone(),
                second: second.clone(),
            });
        }
        if let Some(c) = offered.first() {
            self.shared.bus.install_transport(c.value.0.clone())?;
            tracing::info!(transport = c.value.0.name(), plugin = %c.plugin, "Event transport installed.");
        }
        Ok(())
    }

    /// Runs every `init`, freezes the registry, installs a contributed event transport, runs
    /// every `start`, then emits `kernel.ready`.
    ///
    /// Plugin failures are recorded in the report, not returned; the error cases are a second
    /// boot ([`KernelError::AlreadyBooted`]) and two event transports
    /// ([`KernelError::DuplicateTransport`], after every `init` and before any `start`).
    #[tracing::instrument(name = "kernel.boot", level = "debug", skip_all)]
    pub async fn boot(&self) -> Result<StartupReport, KernelError> {
        let mut phase = self.phase.lock().await;
        let state = match std::mem::replace(&mut *phase, Phase::Stopped) {
            Phase::Built => match self.init_pass().await {
                Ok(state) => state,
                Err(e) => {
                    self.stopped.store(true, Ordering::Release);
                    drop(phase);
                    self.shared.bus.close(self.timeouts.drain).await;
                    return Err(e);
                }
            },
            Phase::Initialised(state) => state,
            other => {
                *phase = other;
                return Err(KernelError::AlreadyBooted);
            }
        };
        let report = self.start_pass(&mut phase, state).await?;
        drop(phase);

        let payload = serde_json::json!({
            "instanceId": report.instance_id,
            "started": report.plugins.iter().filter(|p| p.success).map(|p| p.id.as_str()).collect::<Vec<_>>(),
            "failed": report.plugins.iter().filter(|p| !p.success).map(|p| p.id.as_str()).collect::<Vec<_>>(),
        });
        self.emit_kernel_event(names::KERNEL_READY, payload).await;
        tracing::info!(
            instance = %report.instance_id,
            started = report.plugins.iter().filter(|p| p.success).count(),
            failed = report.plugins.iter().filter(|p| !p.success).count(),
            duration_ms = report.duration_ms,
            "Kernel ready."
        );
        Ok(report)
    }

    /// Runs every `init` (no I/O: services, routes, contributions), freezes the registry and
    /// installs a contributed event transport, without starting anything: a command that needs
    /// to know what the plugins declare (`objectos migrate` reads their schema contributions
    /// from [`Kernel::registry`]) prepares the kernel and reads the registry. [`Kernel::boot`]
    /// then goes on with `start`; a kernel that is never booted needs no shutdown.
    ///
    /// Returns each plugin whose `init` failed, with its error.
    pub async fn initialise(&self) -> Result<Vec<(String, String)>, KernelError> {
        let mut phase = self.phase.lock().await;
        if !matches!(*phase, Phase::Built) {
            return Err(KernelError::AlreadyBooted);
        }
        let state = match self.init_pass().await {
            Ok(state) => state,
            Err(e) => {
                // The registry is frozen: a second init pass could register nothing.
                *phase = Phase::Stopped;
                self.stopped.store(true, Ordering::Release);
                return Err(e);
            }
        };
        let failed = self
            .plan
            .order
            .iter()
            .filter_map(|&i| {
                let e = state.errors[i].as_ref()?;
                Some((self.manifest(i).id.to_owned(), e.to_string()))
            })
            .collect();
        *phase = Phase::Initialised(state);
        Ok(failed)
    }

    async fn init_pass(&self) -> Result<InitState, KernelError> {
        let boot_start = Instant::now();
        let n = self.plugins.len();
        let mut outcomes = vec![Outcome::Pending; n];
        let mut durations = vec![Duration::ZERO; n];
        let mut errors: Vec<Option<PluginError>> = (0..n).map(|_| None).collect();
        tracing::info!(instance = %self.shared.kernel.instance_id, plugins = n, mode = self.shared.kernel.mode.as_str(), "Booting kernel.");

        for &i in &self.plan.order {
            let id = self.manifest(i).id;
            if let Some(reason) = self.blocked_by(i, &outcomes) {
                tracing::warn!(plugin = id, reason = %reason, "Plugin skipped.");
                errors[i] = Some(PluginError::Startup {
                    plugin: id.to_owned(),
                    message: format!("skipped: {reason}"),
                });
                outcomes[i] = Outcome::Skipped(reason);
                continue;
            }
            let t = Instant::now();
            let result = self.run_init(i);
            durations[i] += t.elapsed();
            match result {
                Ok(()) => outcomes[i] = Outcome::Initialised,
                Err(e) => {
                    tracing::error!(plugin = id, error = %e, "Plugin init failed.");
                    // Nothing a failed plugin registered or subscribed may stay visible.
                    self.shared.registry.remove_provider(id);
                    self.shared.bus.unsubscribe_owner(id);
                    outcomes[i] = Outcome::Failed(e.to_string());
                    errors[i] = Some(e);
                }
            }
        }

        self.shared.registry.freeze();

        if let Err(e) = self.install_transport() {
            tracing::error!(error = %e, "Kernel boot refused.");
            return Err(e);
        }
        Ok(InitState {
            outcomes,
            durations,
            errors,
            boot_start,
        })
    }

    async fn start_pass(
        &self,
        phase: &mut tokio::sync::MutexGuard<'_, Phase>,
        state: InitState,
    ) -> Result<StartupReport, KernelError> {
        let InitState {
            mut outcomes,
            mut durations,
            mut errors,
            boot_start,
        } = state;
        let n = self.plugins.len();
        let mut started = Vec::with_capacity(n);
        for &i in &self.plan.order {
            if outcomes[i] != Outcome::Initialised {
                continue;
            }
            let id = self.manifest(i).id;
            if let Some(reason) = self.blocked_by(i, &outcomes) {
                tracing::warn!(plugin = id, reason = %reason, "Plugin skipped.");
                self.shared.bus.unsubscribe_owner(id);
                errors[i] = Some(PluginError::Startup {
                    plugin: id.to_owned(),
                    message: format!("skipped: {reason}"),
                });
                outcomes[i] = Outcome::Skipped(reason);
                continue;
            }
            let t = Instant::now();
            let result = self.run_start(i).await;
            durations[i] += t.elapsed();
            match result {
                Ok(()) => {
                    tracing::info!(
                        plugin = id,
                        version = self.manifest(i).version,
                        duration_ms = durations[i].as_secs_f64() * 1e3,
                        "Plugin started."
                    );
                    outcomes[i] = Outcome::Started;
                    started.push(i);
                }
                Err(e) => {
                    tracing::error!(plugin = id, error = %e, "Plugin start failed.");
                    self.shared.bus.unsubscribe_owner(id);
                    outcomes[i] = Outcome::Failed(e.to_string());
                    errors[i] = Some(e);
                }
            }
        }

        let report = StartupReport {
            instance_id: self.shared.kernel.instance_id.clone(),
            duration_ms: boot_start.elapsed().as_secs_f64() * 1e3,
            plugins: self
                .plan
                .order
                .iter()
                .map(|&i| {
                    let m = self.manifest(i);
                    PluginStartupResult {
                        id: m.id.to_owned(),
                        version: m.version.to_owned(),
                        success: outcomes[i] == Outcome::Started,
                        duration_ms: durations[i].as_secs_f64() * 1e3,
                        skipped: matches!(outcomes[i], Outcome::Skipped(_)),
                        error: errors[i].as_ref().map(|e| startup_error(e, &outcomes[i])),
                    }
                })
                .collect(),
        };

        *self.outcomes.lock() = outcomes;
        *self.booted_at.lock() = Some(Instant::now());
        **phase = Phase::Running { started };
        Ok(report)
    }

    /// Publishes a kernel lifecycle event on both lanes; failures are logged, never fatal.
    async fn emit_kernel_event(&self, name: &str, payload: serde_json::Value) {
        let event = make_event(
            name.to_owned(),
            "kernel".to_owned(),
            payload,
            self.shared.clock.as_ref(),
        );
        for e in self.shared.bus.publish_sync(&event) {
            tracing::warn!(event = name, error = %e, "Kernel event handler failed.");
        }
        // A stuck subscriber must not stall the kernel, so the wait is bounded.
        // Lifecycle events are facts about this node: they never travel to others.
        match tokio::time::timeout(
            self.timeouts.drain,
            self.shared.bus.publish_node_local(event),
        )
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(event = name, error = %e, "Kernel event not published."),
            Err(_) => tracing::warn!(
                event = name,
                "Kernel event not published: a subscriber queue stayed full."
            ),
        }
    }

    /// The startup outcome of plugin `id` as a short status (`started`, `failed`, ...), if known.
    pub fn plugin_status(&self, id: &str) -> Option<&'static str> {
        let i = self.plugins.iter().position(|p| p.manifest().id == id)?;
        Some(match self.outcomes.lock()[i] {
            Outcome::Pending => "pending",
            Outcome::Initialised => "initialised",
            Outcome::Started => "started",
            Outcome::Failed(_) => "failed",
            Outcome::Skipped(_) => "skipped",
            Outcome::Stopped => "stopped",
        })
    }

    /// Probes every started plugin (each bounded by the health timeout) and aggregates.
    ///
    /// The kernel's status is the worst plugin status (`recovering` and `unknown` count as
    /// `degraded`; a probe that times out or panics counts as `unhealthy`), and at least
    /// `degraded` when any plugin failed or was skipped. Before boot and after shutdown it is `failed`.
    pub async fn health(&self) -> KernelHealth {
        let outcomes = self.outcomes.lock().clone();
        let booted_at = *self.booted_at.lock();
        let running = booted_at.is_some() && !self.stopped.load(Ordering::Acquire);
        let limit = self.timeouts.health;
        let probes = self.plan.order.iter().map(|&i| {
            let outcome = outcomes[i].clone();
            async move {
                let m = self.manifest(i);
                let report = match outcome {
                    Outcome::Started => {
                        let probe = AssertUnwindSafe(self.plugins[i].health()).catch_unwind();
                        match tokio::time::timeout(limit, probe).await {
                            Ok(Ok(report)) => report,
                            Ok(Err(payload)) => HealthReport::with_status(
                                HealthStatus::Unhealthy,
                                format!(
                                    "health probe panicked: {}",
                                    panic_message(payload.as_ref())
                                ),
                            ),
                            Err(_) => HealthReport::with_status(
                                HealthStatus::Unhealthy,
                                format!("health probe did not answer within {limit:?}"),
                            ),
                        }
                    }
                    Outcome::Failed(msg) => HealthReport::with_status(HealthStatus::Failed, msg),
                    Outcome::Skipped(msg) => {
                        HealthReport::with_status(HealthStatus::Failed, format!("skipped: {msg}"))
                    }
                    Outcome::Stopped => HealthReport::with_status(HealthStatus::Failed, "stopped"),
                    Outcome::Pending | Outcome::Initialised => {
                        HealthReport::with_status(HealthStatus::Unknown, "not started")
                    }
                };
                PluginHealth {
                    id: m.id.to_owned(),
                    version: m.version.to_owned(),
                    report,
                }
            }
        });
        let plugins: Vec<PluginHealth> = futures_util::future::join_all(probes).await;

        let status = if !running {
            HealthStatus::Failed
        } else {
            let mut worst = HealthStatus::Healthy;
            for (p, &i) in plugins.iter().zip(&self.plan.order) {
                let s = if outcomes[i].is_broken() {
                    HealthStatus::Degraded
                } else {
                    match p.report.status {
                        HealthStatus::Recovering | HealthStatus::Unknown => HealthStatus::Degraded,
                        other => other,
                    }
                };
                worst = worst.max(s);
            }
            worst
        };
        KernelHealth {
            status,
            instance_id: self.shared.kernel.instance_id.clone(),
            version: self.shared.kernel.version.clone(),
            uptime_ms: booted_at.map_or(0, |t| {
                u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
            }),
            plugins,
        }
    }

    /// Emits `kernel.shutdown`, runs `destroy` in reverse start order (each bounded by the destroy
    /// timeout), then closes the event bus. A second call does nothing.
    #[tracing::instrument(name = "kernel.shutdown", level = "debug", skip_all)]
    pub async fn shutdown(&self) -> ShutdownReport {
        let t0 = Instant::now();
        let mut phase = self.phase.lock().await;
        self.stopped.store(true, Ordering::Release);
        let started = match std::mem::replace(&mut *phase, Phase::Stopped) {
            Phase::Running { started } => started,
            Phase::Built | Phase::Initialised(_) => {
                self.shared.bus.close(self.timeouts.drain).await;
                return ShutdownReport::default();
            }
            Phase::Stopped => return ShutdownReport::default(),
        };
        tracing::info!(instance = %self.shared.kernel.instance_id, "Shutting down kernel.");
        let payload = serde_json::json!({ "instanceId": self.shared.kernel.instance_id });
        self.emit_kernel_event(names::KERNEL_SHUTDOWN, payload)
            .await;

        let mut report = ShutdownReport::default();
        for &i in started.iter().rev() {
            let id = self.manifest(i).id;
            let cx = StopContext::new(self.handles[i].clone());
            let fut = tracing::Instrument::instrument(
                AssertUnwindSafe(self.plugins[i].destroy(&cx)).catch_unwind(),
                tracing::debug_span!("plugin.destroy", plugin = id),
            );
            let result = match tokio::time::timeout(self.timeouts.destroy, fut).await {
                Ok(Ok(r)) => r,
                Ok(Err(payload)) => Err(PluginError::Panicked {
                    context: format!("plugin `{id}` destroy"),
                    message: panic_message(payload.as_ref()),
                }),
                Err(_) => Err(PluginError::Timeout {
                    plugin: id.to_owned(),
                    phase: "destroy",
                    after: self.timeouts.destroy,
                }),
            };
            if let Err(e) = result {
                tracing::error!(plugin = id, error = %e, "Plugin destroy failed.");
                report.errors.push(e);
            } else {
                tracing::info!(plugin = id, "Plugin destroyed.");
            }
            report.destroyed.push(id.to_owned());
            self.outcomes.lock()[i] = Outcome::Stopped;
        }
        self.shared.bus.close(self.timeouts.drain).await;
        report.duration_ms = t0.elapsed().as_secs_f64() * 1e3;
        tracing::info!(
            duration_ms = report.duration_ms,
            errors = report.errors.len(),
            "Kernel stopped."
        );
        report
    }

    /// Waits for SIGINT or SIGTERM (Ctrl-C elsewhere), then shuts down.
    pub async fn run_until_signal(&self) -> Result<ShutdownReport, KernelError> {
        wait_for_signal().await?;
        tracing::info!("Shutdown signal received.");
        Ok(self.shutdown().await)
    }

    /// Waits for `stop` to complete, then shuts down; for embedding and tests.
    pub async fn run_until(&self, stop: impl std::future::Future<Output = ()>) -> ShutdownReport {
        stop.await;
        self.shutdown().await
    }
}

async fn wait_for_signal() -> Result<(), KernelError> {
    let failed = |e: std::io::Error| KernelError::Signal {
        message: e.to_string(),
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(failed)?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(failed),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(failed)
    }
}

/// The spec's error detail for a failed or skipped plugin.
fn startup_error(e: &PluginError, outcome: &Outcome) -> StartupError {
    if matches!(outcome, Outcome::Skipped(_)) {
        return StartupError {
            name: "Skipped".to_owned(),
            message: e.to_string(),
            code: "dependency_failed".to_owned(),
        };
    }
    let name = match e {
        PluginError::Config { .. } | PluginError::Settings { .. } => "ConfigError",
        PluginError::Capability { .. } => "CapabilityError",
        PluginError::Service { .. } => "ServiceError",
        PluginError::Event { .. } => "EventError",
        PluginError::Startup { .. } => "StartupError",
        PluginError::Timeout { .. } => "TimeoutError",
        PluginError::Panicked { .. } => "Panic",
        _ => "Error",
    };
    StartupError {
        name: name.to_owned(),
        message: e.to_string(),
        code: e.code().to_owned(),
    }
}
