//! The kernel plugin `com.objectos.audit`: contributes the audit interceptor, the routes and the
//! client hoop at init, subscribes to `auth.**`, `authz.**` and `security.**`, creates its tables
//! and starts the retention task at start.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use objectos_data::{DataEngine, DataHandle, Dialect, InterceptorContribution};
use objectos_http::{HoopContribution, RouteContribution};
use objectos_kernel::{InitContext, Plugin, PluginError, StartContext, StopContext};
use objectos_spec::manifest::{ConfigProperty, PluginDependency, services};
use objectos_spec::{Event, PluginManifest};
use sea_orm::{AccessMode, Database, DatabaseConnection, IsolationLevel, TransactionTrait};

use crate::config::AuditConfig;
use crate::error::{AuditError, Result};
use crate::event::{AuditEvent, format_ts};
use crate::recorder::{AuditInterceptor, dialect_of, event_from_bus};
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
    schema_ready: Arc<AtomicBool>,
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
    pruner: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl AuditPlugin {
    pub fn new(config: AuditConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }
}

/// Runs one retention pass: deletes what is older than `retention_days` and moves the anchors.
pub async fn prune_once(engine: &DataEngine, retention_days: u32) -> Result<PruneReport> {
    let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(retention_days));
    store::prune(engine.connection(), engine.dialect(), &format_ts(cutoff)).await
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
            schema_ready: Arc::new(AtomicBool::new(false)),
        });
        cx.contribute(InterceptorContribution(Arc::new(AuditInterceptor::new(
            redactor,
            shared.schema_ready.clone(),
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
            cx.subscribe(pattern, move |event: Arc<Event>| {
                let s = s.clone();
                async move {
                    s.record_bus_event(&event)
                        .await
                        .map(|_| ())
                        .map_err(|e| PluginError::msg(e.to_string()))
                }
            })?;
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
        let engine = cx
            .get_named::<DataHandle>(services::DATA)?
            .engine()
            .cloned()
            .ok_or_else(|| PluginError::msg(AuditError::EngineUnavailable.to_string()))?;
        store::ensure_schema(engine.connection(), engine.dialect())
            .await
            .map_err(|e| PluginError::msg(e.to_string()))?;
        shared.schema_ready.store(true, Ordering::Release);
        let _ = shared.engine.set(engine.clone());
        if shared.config.retention_days > 0 {
            let days = shared.config.retention_days;
            let every = Duration::from_secs(shared.config.prune_interval_secs.max(1));
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    match prune_once(&engine, days).await {
                        Ok(r) if r.events + r.history > 0 => {
                            tracing::info!(
                                events = r.events,
                                history = r.history,
                                "Pruned audit rows past retention."
                            )
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "Audit retention pass failed; retrying next interval.")
                        }
                    }
                }
            });
            if let Ok(mut slot) = self.pruner.lock() {
                *slot = Some(task);
            }
        }
        Ok(())
    }

    async fn destroy(&self, _cx: &StopContext) -> std::result::Result<(), PluginError> {
        if let Ok(mut slot) = self.pruner.lock()
            && let Some(task) = slot.take()
        {
            task.abort();
        }
        Ok(())
    }
}

/// Direct access to the audit tables without a kernel (CLI, tests).
#[derive(Debug, Clone)]
pub struct AuditStore {
    conn: DatabaseConnection,
    dialect: Dialect,
}

impl AuditStore {
    /// Connects to `database_url` (the server's database) and makes sure the tables exist.
    pub async fn connect(database_url: &str) -> Result<Self> {
        let conn = Database::connect(database_url)
            .await
            .map_err(|e| AuditError::db("connect", e))?;
        let dialect = dialect_of(sea_orm::ConnectionTrait::get_database_backend(&conn));
        store::ensure_schema(&conn, dialect).await?;
        Ok(Self { conn, dialect })
    }

    /// Uses an open engine's connection.
    pub fn from_engine(engine: &DataEngine) -> Self {
        Self {
            conn: engine.connection().clone(),
            dialect: engine.dialect(),
        }
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Verifies every chain, or one tenant's (`""` = events without a tenant).
    ///
    /// The heads and the rows are read from one snapshot (a read-only REPEATABLE READ transaction
    /// on PostgreSQL, a read transaction on SQLite's WAL), so appends committing while the walk
    /// runs are not mistaken for rows missing behind the head.
    pub async fn verify(&self, tenant: Option<&str>) -> Result<VerifyReport> {
        let (isolation, access) = match self.dialect {
            Dialect::Postgres => (
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            ),
            // SQLite has one isolation level; sea-orm warns when asked for another.
            Dialect::Sqlite => (None, None),
        };
        let tx = self
            .conn
            .begin_with_config(isolation, access)
            .await
            .map_err(|e| AuditError::db("begin verify snapshot", e))?;
        let report = store::verify(&tx, self.dialect, tenant).await?;
        // Read-only: rolling back releases the snapshot without writing anything.
        tx.rollback()
            .await
            .map_err(|e| AuditError::db("end verify snapshot", e))?;
        Ok(report)
    }

    /// Every event matching `filter`, newest first.
    pub async fn export(&self, filter: &EventFilter) -> Result<Vec<AuditEvent>> {
        store::export_all(&self.conn, self.dialect, filter).await
    }

    /// One page of events.
    pub async fn events(&self, filter: &EventFilter) -> Result<store::EventPage> {
        store::query_events(&self.conn, self.dialect, filter).await
    }

    /// Deletes what is older than `cutoff` (RFC 3339), keeping chains verifiable.
    pub async fn prune_before(&self, cutoff: &str) -> Result<PruneReport> {
        store::prune(&self.conn, self.dialect, cutoff).await
    }

    /// Appends an event in its own transaction.
    pub async fn append(&self, ev: AuditEvent) -> Result<AuditEvent> {
        store::append_standalone(&self.conn, self.dialect, ev).await
    }
}
