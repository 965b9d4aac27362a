//! The kernel plugin `com.objectos.audit`: contributes the audit interceptor, the routes and the
//! client hoop at init, contributes its tables (a `PluginSchema` the data plugin creates before
//! any plugin starts), subscribes to `auth.**`, `authz.**` and `security.**`, and starts the
//! retention task at start.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use objectos_data::{DataConfig, DataEngine, DataHandle, Dialect, InterceptorContribution};
use objectos_http::{HoopContribution, RouteContribution};
use objectos_kernel::contracts::{JobFailure, JobQueue, Periodic, run_every};
use objectos_kernel::{
    InitContext, Plugin, PluginError, StartContext, StopContext, SubscribeOptions,
};
use objectos_spec::manifest::{ConfigProperty, PluginDependency, services};
use objectos_spec::{Event, PluginManifest};

use crate::config::AuditConfig;
use crate::error::{AuditError, Result};
use crate::event::{AuditEvent, format_ts};
use crate::recorder::{AuditInterceptor, event_from_bus};
use crate::redact::Redactor;
use crate::routes::{ClientHoop, router};
use crate::store::{self, EventFilter, PruneReport, VerifyReport};

/// The plugin id.
pub const PLUGIN_ID: &str = "com.objectos.audit";

/// Bus topics recorded into the audit log.
pub const SUBSCRIBED: &[&str] = &["auth.**", "authz.**", "security.**"];

/// The static manifest.
pub const MANIFEST: PluginManifest = PluginManifest {
    description: "Audit log: hash-chained events for every mutation, auth and permission change; field history; retention; export",
    dependencies: &[PluginDependency {
        id: objectos_data::PLUGIN_ID,
        version: ">=0.1",
        optional: false,
    }],
    requires: &[services::DATA],
    // The retention pass runs as a scheduled job when a job queue is present (once per cluster
    // instead of once per node), else on a timer of this plugin.
    optional_requires: &[services::JOB],
    permissions: &[
        "data.read",
        "data.write",
        "events.subscribe",
        "routes.mount",
    ],
    subscribes: SUBSCRIBED,
    configuration: &[
        ConfigProperty {
            key: "retentionDays",
            kind: "integer",
            description: "Days audit events and field history are kept (0 keeps everything)",
            required: false,
            secret: false,
            default: Some("180"),
        },
        ConfigProperty {
            key: "redactFields",
            kind: "array",
            description: "Field-name fragments whose values are never recorded (case-insensitive)",
            required: false,
            secret: false,
            default: Some(
                r#"["password","passwd","token","secret","api_key","apikey","totp","otp_secret","private_key","credential"]"#,
            ),
        },
        ConfigProperty {
            key: "pruneIntervalSecs",
            kind: "integer",
            description: "Seconds between retention passes",
            required: false,
            secret: false,
            default: Some("3600"),
        },
    ],
    ..PluginManifest::new(PLUGIN_ID, "Audit Log", env!("CARGO_PKG_VERSION"))
};

/// State shared by the interceptor, the routes, the bus handlers and the retention task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: AuditConfig,
    pub(crate) redactor: Arc<Redactor>,
    engine: OnceLock<DataEngine>,
}

impl Shared {
    pub(crate) fn engine(&self) -> Option<&DataEngine> {
        self.engine.get()
    }

    async fn record_bus_event(&self, event: &Event) -> Result<AuditEvent> {
        let engine = self.engine().ok_or(AuditError::EngineUnavailable)?;
        let ev = event_from_bus(&self.redactor, event);
        store::append_own(engine, ev).await
    }
}

/// The audit plugin; `config` is overridden by the kernel configuration of `com.objectos.audit`
/// when one is given.
#[derive(Debug, Default)]
pub struct AuditPlugin {
    pub config: AuditConfig,
    shared: OnceLock<Arc<Shared>>,
    pruner: std::sync::Mutex<Periodic>,
}

impl AuditPlugin {
    pub fn new(config: AuditConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }
}

/// The job handler (and built-in schedule) name of the retention pass.
pub const RETENTION_JOB: &str = "audit.retention";

/// Logs a retention pass's outcome; hands the error back for the job queue's retry.
fn log_prune(result: Result<PruneReport>) -> Result<()> {
    match result {
        Ok(r) => {
            if r.events + r.history > 0 {
                tracing::info!(
                    events = r.events,
                    history = r.history,
                    "Pruned audit rows past retention."
                );
            }
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "Audit retention pass failed; retrying later.");
            Err(e)
        }
    }
}

/// Runs one retention pass: deletes what is older than `retention_days` and moves the anchors.
pub async fn prune_once(engine: &DataEngine, retention_days: u32) -> Result<PruneReport> {
    let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(retention_days));
    store::prune(engine, &format_ts(cutoff)).await
}

#[async_trait]
impl Plugin for AuditPlugin {
    fn manifest(&self) -> &PluginManifest {
        &MANIFEST
    }

    fn init(&self, cx: &mut InitContext<'_>) -> std::result::Result<(), PluginError> {
        let config = if cx.config().is_null() {
            self.config.clone()
        } else {
            cx.config_as::<AuditConfig>()?
        };
        let redactor = Arc::new(Redactor::new(&config.redact_fields));
        let shared = Arc::new(Shared {
            config,
            redactor: redactor.clone(),
            engine: OnceLock::new(),
        });
        // The data plugin creates (and later migrates) the tables when it opens the engine, so
        // they exist before any write reaches the interceptor or any plugin starts.
        cx.contribute(store::schema())?;
        cx.contribute(InterceptorContribution(Arc::new(AuditInterceptor::new(
            redactor,
        ))))?;
        let routes = shared.clone();
        // The audit log has no in-process service object; naming `audit-log` here is what makes
        // discovery list it, at this mount.
        cx.contribute(
            RouteContribution::new("audit", move || router(routes.clone()))
                .service(services::AUDIT_LOG)
                .operations(crate::routes::operations()),
        )?;
        // Early, so every later hoop and handler runs inside the client scope.
        cx.contribute(HoopContribution::new(-1000, ClientHoop))?;
        for pattern in SUBSCRIBED {
            let s = shared.clone();
            // This node's events only: every node writes to the one shared trail, so an event
            // another node's transport brings here was already recorded by the node it came from.
            cx.subscribe_with(
                pattern,
                move |event: Arc<Event>| {
                    let s = s.clone();
                    async move {
                        s.record_bus_event(&event)
                            .await
                            .map(|_| ())
                            .map_err(|e| PluginError::msg(e.to_string()))
                    }
                },
                SubscribeOptions {
                    local_only: true,
                    ..SubscribeOptions::default()
                },
            )?;
        }
        let _ = self.shared.set(shared);
        Ok(())
    }

    async fn start(&self, cx: &StartContext) -> std::result::Result<(), PluginError> {
        let shared = self
            .shared
            .get()
            .ok_or_else(|| PluginError::msg("start called before init"))?
            .clone();
        let engine = DataHandle::require_engine(cx)?;
        let _ = shared.engine.set(engine.clone());
        if shared.config.retention_days > 0 {
            let days = shared.config.retention_days;
            let every = Duration::from_secs(shared.config.prune_interval_secs.max(1));
            let jobs = cx.get_named::<dyn JobQueue>(services::JOB).ok();
            let periodic = run_every(jobs.as_ref(), RETENTION_JOB, every, move || {
                let engine = engine.clone();
                async move {
                    log_prune(prune_once(&engine, days).await)
                        .map_err(|e| JobFailure::retry(e.to_string()))
                }
            });
            if let Ok(mut slot) = self.pruner.lock() {
                *slot = periodic;
            }
        }
        Ok(())
    }

    async fn destroy(&self, _cx: &StopContext) -> std::result::Result<(), PluginError> {
        if let Ok(mut slot) = self.pruner.lock() {
            slot.stop();
        }
        Ok(())
    }
}

/// Direct access to the audit tables without a kernel (CLI, tests).
#[derive(Debug, Clone)]
pub struct AuditStore {
    engine: DataEngine,
}

impl AuditStore {
    /// Opens the server's database at `database_url` with only the audit tables declared (no
    /// objects are loaded), creating or migrating them like the data plugin would.
    pub async fn connect(database_url: &str) -> Result<Self> {
        let engine = DataEngine::open(DataConfig {
            database_url: database_url.to_owned(),
            metadata_dirs: Vec::new(),
            include_base: false,
            max_connections: 2,
            auto_migrate: true,
            owned: vec![store::schema().owned_by(PLUGIN_ID)],
        })
        .await
        .map_err(|e| AuditError::db("connect", e))?;
        Ok(Self { engine })
    }

    /// Uses an open engine (one the data plugin opened with the audit tables contributed).
    pub fn from_engine(engine: &DataEngine) -> Self {
        Self {
            engine: engine.clone(),
        }
    }

    /// The engine the store reads and writes through.
    pub fn engine(&self) -> &DataEngine {
        &self.engine
    }

    pub fn dialect(&self) -> Dialect {
        self.engine.dialect()
    }

    /// Verifies every chain, or one tenant's (`""` = events without a tenant).
    ///
    /// The heads and the rows are read from one snapshot (a read-only REPEATABLE READ transaction
    /// on PostgreSQL, a read transaction on SQLite's WAL), so appends committing while the walk
    /// runs are not mistaken for rows missing behind the head.
    pub async fn verify(&self, tenant: Option<&str>) -> Result<VerifyReport> {
        let snapshot = self
            .engine
            .begin_read_snapshot()
            .await
            .map_err(|e| AuditError::db("begin verify snapshot", e))?;
        let report = store::verify(&snapshot, tenant).await;
        // Read-only: ending it releases the snapshot without writing anything, whatever the
        // walk found; the walk's own error is the one worth reporting.
        let finished = snapshot
            .finish()
            .await
            .map_err(|e| AuditError::db("end verify snapshot", e));
        let report = report?;
        finished?;
        Ok(report)
    }

    /// Every event matching `filter`, newest first.
    pub async fn export(&self, filter: &EventFilter) -> Result<Vec<AuditEvent>> {
        store::export_all(&self.engine.pool(), filter).await
    }

    /// One page of events.
    pub async fn events(&self, filter: &EventFilter) -> Result<store::EventPage> {
        store::query_events(&self.engine.pool(), filter).await
    }

    /// Deletes what is older than `cutoff` (RFC 3339), keeping chains verifiable.
    pub async fn prune_before(&self, cutoff: &str) -> Result<PruneReport> {
        store::prune(&self.engine, cutoff).await
    }

    /// Appends an event in its own transaction.
    pub async fn append(&self, ev: AuditEvent) -> Result<AuditEvent> {
        store::append_own(&self.engine, ev).await
    }
}
