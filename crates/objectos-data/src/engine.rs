//! The data engine: open, metadata, migrations, and every record operation (find, get, create,
//! update, delete, batch), each in a transaction with interceptors and outbox rows.
//!
//! This file holds the engine's state (`DataEngine`, `Inner`), opening and migrating, the
//! configuration and result types, and the helpers every operation shares (statement paths,
//! tenant and id filters, row decoding). The operations live in submodules, one per seam: reads
//! in `read.rs`, expand and roll-ups in `expand.rs`, aggregates in `aggregate.rs`, single-record
//! writes in `write.rs`, bulk writes in `batch.rs`, the interceptor runner in `runner.rs`, the
//! outbox dispatcher in `dispatch.rs` and the WAL checkpointer in `checkpoint.rs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use objectos_spec::object::ObjectSchema;
use objectos_spec::query::{Condition, Filter, FilterValue, Operator};
use sea_orm::{DatabaseConnection, DatabaseTransaction, Value};
use serde_json::Value as Json;

use crate::Record;
use crate::context::OpContext;
use crate::db::{self, Dialect, Sql};
use crate::error::{DataError, Result};
use crate::hooks::Interceptor;
use crate::meta::{self, MetadataSnapshot, ObjectPlan};
use crate::schema::{self, MigrationPlan, MigrationReport, MigrationStep};
use crate::sqlgen::invalid;
use crate::value::{from_row, parse_datetime};

mod group;

// The statement paths of a write operation's transaction, for `hooks::WriteTx`.
pub(crate) use group::{
    execute as group_execute, execute_unprepared as group_execute_unprepared,
    query_all as group_query_all, query_one as group_query_one,
};
mod aggregate;
mod batch;
mod checkpoint;
mod dispatch;
mod expand;
mod fair;
mod follow_up;
mod limits;
mod read;
mod refs;
mod runner;
mod select;
mod transaction;
mod unique;
mod write;

pub use batch::{
    BatchItem, BatchItemError, BatchItemResult, BatchOperation, BatchOptions, BatchRequest,
    BatchResult,
};
pub use follow_up::FollowUp;
pub use group::OwnTransaction;
pub use limits::WriteLimits;
pub use transaction::{
    CROSS_BATCH_MAX_OPERATIONS, CrossBatchFailure, CrossBatchItemResult, CrossBatchOperation,
    CrossBatchOptions, CrossBatchRequest, CrossBatchResult,
};

/// Engine configuration (from objectos.yml / env / flags, assembled by the server).
#[derive(Debug, Clone)]
pub struct DataConfig {
    /// `sqlite://./objectos.db?mode=rwc`, `sqlite::memory:` or `postgres://...`.
    pub database_url: String,
    /// Folders searched recursively for `*.object.yml|yaml|json`.
    pub metadata_dirs: Vec<PathBuf>,
    /// Also load the embedded system objects of `presets/base/objects`.
    pub include_base: bool,
    /// Size of the read pool. A SQLite file also gets one dedicated writer connection on top
    /// (SQLite admits one writer at a time; engine writes queue for it in order).
    pub max_connections: u32,
    /// Run the additive schema sync at open.
    pub auto_migrate: bool,
    /// What plugins own: private tables and objects shipped in their crates (the data plugin
    /// fills it from the `PluginSchema` contributions).
    pub owned: Vec<crate::owned::PluginSchema>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            database_url: "sqlite://./objectos.db?mode=rwc".to_owned(),
            metadata_dirs: Vec::new(),
            include_base: true,
            max_connections: 8,
            auto_migrate: true,
            owned: Vec::new(),
        }
    }
}

/// A page of records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindResult {
    pub records: Vec<Record>,
    /// The true number of matching records (or of aggregated rows).
    pub total: Option<u64>,
    /// Set when the query asked for cursor paging and more records follow.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// Connections of the read pool (see [`DataEngine::pool_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections checked out by a query or transaction.
    pub in_use: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// The pool's maximum size.
    pub max: u32,
}

struct Inner {
    /// Reads outside write transactions (and the pool handed to plugins).
    db: DatabaseConnection,
    /// Write transactions: a single connection on a SQLite file (see `db::Pools`), else `db`.
    write: DatabaseConnection,
    dialect: Dialect,
    dirs: Vec<PathBuf>,
    include_base: bool,
    extra: Vec<ObjectSchema>,
    /// Plugins' tables and objects (see [`DataConfig::owned`]).
    owned: Vec<crate::owned::PluginSchema>,
    snapshot: ArcSwap<MetadataSnapshot>,
    interceptors: ArcSwap<Vec<Arc<dyn Interceptor>>>,
    /// SQLite allows one writer: writes queue here instead of failing with SQLITE_BUSY.
    write_lock: Arc<fair::FairLock>,
    /// Records per bulk request, the writer hold bound and write rates.
    limits: ArcSwap<limits::WriteLimits>,
    rate: limits::RateLimiter,
    /// Callers queued for (or about to take) `write_lock`: a finishing write leaves its
    /// transaction open for them (group commit) only when somebody is queued.
    write_queue: std::sync::atomic::AtomicUsize,
    /// The group transaction left open for the next queued writer (see `engine/group.rs`).
    parked: std::sync::Mutex<Option<group::Group>>,
    /// A write failed on a full disk: the checkpointer truncates the WAL before anything else.
    storage_full: std::sync::atomic::AtomicBool,
    /// Group commit is on (a SQLite file; not PostgreSQL, not an in-memory database whose
    /// single connection reads share).
    group_commit: bool,
    write_commits: AtomicU64,
    outbox_notify: Arc<tokio::sync::Notify>,
    statements: AtomicU64,
}

/// The engine handle; cheap to clone.
#[derive(Clone)]
pub struct DataEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DataEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataEngine")
            .field("dialect", &self.inner.dialect)
            .finish_non_exhaustive()
    }
}

/// A connection to run statements on: the pool, or an operation's transaction.
#[derive(Clone, Copy)]
enum Conn<'a> {
    Pool(&'a DatabaseConnection),
    Tx(&'a DatabaseTransaction),
}

impl<'a> Conn<'a> {
    fn tx(self) -> Option<&'a DatabaseTransaction> {
        match self {
            Self::Tx(t) => Some(t),
            Self::Pool(_) => None,
        }
    }
}

/// What every step of one operation on one object shares: where its statements run, who asks
/// (the tenant filter and the interceptors use `cx`), the metadata snapshot the operation took
/// at its start (one snapshot for the whole operation, even across a reload) and the object's
/// plan. Passed by value: four references, so a copy costs no more than the arguments it
/// replaces and nothing is allocated or cloned per request. A step on a related object (an
/// expand target, a roll-up's child) takes the same scope moved onto it with [`Scope::on`].
#[derive(Clone, Copy)]
struct Scope<'a> {
    conn: Conn<'a>,
    cx: &'a OpContext,
    snap: &'a MetadataSnapshot,
    plan: &'a ObjectPlan,
}

impl<'a> Scope<'a> {
    /// The same operation, on another object.
    fn on(self, plan: &'a ObjectPlan) -> Self {
        Self { plan, ..self }
    }
}

/// A [`Scope`] inside a write transaction: writes need the transaction itself (for the outbox
/// and the group commit's statement paths), not a connection that may be the pool, so the type
/// says which one a step gets. [`WriteScope::read`] is the same scope for a read step of the write.
#[derive(Clone, Copy)]
struct WriteScope<'a> {
    tx: &'a DatabaseTransaction,
    cx: &'a OpContext,
    snap: &'a MetadataSnapshot,
    plan: &'a ObjectPlan,
}

impl<'a> WriteScope<'a> {
    /// The read steps of this write run on its transaction (they see its uncommitted rows).
    fn read(self) -> Scope<'a> {
        Scope {
            conn: Conn::Tx(self.tx),
            cx: self.cx,
            snap: self.snap,
            plan: self.plan,
        }
    }
}

fn tenant_filter(cx: &OpContext) -> Filter {
    match &cx.tenant {
        Some(t) => Filter::eq("organization_id", t.clone()),
        None => Filter::True,
    }
}

/// Limits a cascade statement on `plan`'s table to the parent's organization (`org`; `None`
/// is the records without one). Objects without `organization_id` are not tenant-scoped.
fn same_tenant(sql: &mut Sql, plan: &ObjectPlan, org: Option<&str>) {
    if plan.column("organization_id").is_none() {
        return;
    }
    sql.push(" AND ").ident("organization_id");
    match org {
        Some(t) => {
            sql.push(" = ").param(Value::from(t.to_owned()));
        }
        None => {
            sql.push(" IS NULL");
        }
    }
}

/// Refuses a record id (from a path or a body) holding a NUL character with a 400 naming `id`:
/// no id can contain one, and PostgreSQL answers a bound text holding it with a server error.
/// The filter compiler refuses it too; this check only gives the answer its parameter.
fn check_id(object: &str, id: &str) -> Result<()> {
    if id.contains('\0') {
        return Err(invalid(
            object,
            "id",
            "invalid_character",
            "id: the record id contains a NUL character (\\u0000)".to_owned(),
        ));
    }
    Ok(())
}

fn id_filter(id: &str) -> Filter {
    Filter::Condition(Condition {
        field: "id".into(),
        op: Operator::Eq,
        value: FilterValue::Value(Json::String(id.to_owned())),
    })
}

/// The version of a record used for ETag / If-Match: `updated_at` in epoch milliseconds.
fn version_from(record: &Record) -> Option<String> {
    let ts = record.get("updated_at")?.as_str()?;
    parse_datetime(ts).map(|t| t.timestamp_millis().to_string())
}

fn normalize_if_match(v: &str) -> String {
    let v = v.trim().trim_start_matches("W/").trim_matches('"');
    if v.parse::<i64>().is_ok() {
        return v.to_owned();
    }
    parse_datetime(v)
        .map(|t| t.timestamp_millis().to_string())
        .unwrap_or_else(|| v.to_owned())
}

impl DataEngine {
    /// Connects, loads and validates metadata (all errors at once), creates internal tables and
    /// runs the additive schema sync when `auto_migrate` is set.
    pub async fn open(config: DataConfig) -> Result<DataEngine> {
        check_owned(&config.owned)?;
        let ((schemas, warnings), items) =
            load_all(&config.metadata_dirs, config.include_base, &config.owned)?;
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let sources = Sources {
            dirs: config.metadata_dirs.clone(),
            include_base: config.include_base,
            extra: Vec::new(),
            owned: config.owned.clone(),
        };
        let engine = Self::connect(
            &config.database_url,
            config.max_connections,
            sources,
            (schemas, warnings),
            items,
        )
        .await?;
        if config.auto_migrate {
            engine.migrate_if_changed().await?;
        }
        Ok(engine)
    }

    /// Opens an engine on `url` with objects given in code, and migrates; for tests and embedding.
    pub async fn open_with_objects(url: &str, objects: Vec<ObjectSchema>) -> Result<DataEngine> {
        let schemas = objects
            .iter()
            .map(|o| (format!("<memory:{}>", o.name), o.clone()))
            .collect();
        let sources = Sources {
            dirs: Vec::new(),
            include_base: false,
            extra: objects,
            owned: Vec::new(),
        };
        let engine = Self::connect(
            url,
            8,
            sources,
            (schemas, Vec::new()),
            crate::kinds::Items::new(),
        )
        .await?;
        engine.migrate_if_changed().await?;
        Ok(engine)
    }

    async fn connect(
        url: &str,
        max_connections: u32,
        sources: Sources,
        (schemas, warnings): meta::Loaded,
        items: crate::kinds::Items,
    ) -> Result<DataEngine> {
        let Sources {
            dirs,
            include_base,
            extra,
            owned,
        } = sources;
        let dialect = Dialect::from_url(url)?;
        let mut snapshot = meta::build_snapshot(dialect, schemas, warnings)?;
        snapshot.items = items;
        check_table_names(&owned, &snapshot)?;
        let (pools, dialect) = db::connect(url, max_connections).await?;
        schema::ensure_internal(&pools.write, dialect).await?;
        let manual_checkpoint = pools.manual_checkpoint;
        let engine = DataEngine {
            inner: Arc::new(Inner {
                db: pools.read,
                write: pools.write,
                dialect,
                dirs,
                include_base,
                extra,
                owned,
                snapshot: ArcSwap::from_pointee(snapshot),
                interceptors: ArcSwap::from_pointee(Vec::new()),
                write_lock: Arc::new(fair::FairLock::default()),
                limits: ArcSwap::from_pointee(limits::WriteLimits::default()),
                rate: limits::RateLimiter::default(),
                write_queue: std::sync::atomic::AtomicUsize::new(0),
                parked: std::sync::Mutex::new(None),
                storage_full: std::sync::atomic::AtomicBool::new(false),
                group_commit: manual_checkpoint,
                write_commits: AtomicU64::new(0),
                outbox_notify: Arc::new(tokio::sync::Notify::new()),
                statements: AtomicU64::new(0),
            }),
        };
        if manual_checkpoint {
            checkpoint::spawn_checkpointer(Arc::downgrade(&engine.inner));
        }
        Ok(engine)
    }

    /// Sets the write limits (records per bulk request, writer hold bound, write rates).
    pub fn set_write_limits(&self, limits: WriteLimits) {
        self.inner.limits.store(Arc::new(limits));
    }

    /// The write limits in force.
    pub fn write_limits(&self) -> Arc<WriteLimits> {
        self.inner.limits.load_full()
    }

    /// Takes `records` from the caller's write-rate buckets (see [`WriteLimits`]).
    pub(crate) fn admit_writes(&self, cx: &OpContext, records: usize) -> Result<()> {
        self.inner
            .rate
            .admit(&self.inner.limits.load(), cx, records)
    }

    /// The current metadata snapshot.
    pub fn metadata(&self) -> Arc<MetadataSnapshot> {
        self.inner.snapshot.load_full()
    }

    /// The SQL dialect in use.
    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// The underlying connection pool (for plugins that keep their own tables).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// The pool the engine writes through: on a SQLite file its single writer connection (see
    /// [`DataConfig::max_connections`]), elsewhere the same pool as [`DataEngine::connection`]. Plugins that write
    /// their own tables outside an engine transaction should use it: a write through
    /// [`DataEngine::connection`] on SQLite competes with the engine's writer for the file lock
    /// and sleeps in SQLite's busy handler (1, 2, 5, 10 ms ...) whenever a write transaction
    /// is open, while this pool queues it behind the writer in order. Keep such writes short and
    /// never hold this pool's connection across an engine call (on SQLite that would wait for itself).
    pub fn write_connection(&self) -> &DatabaseConnection {
        &self.inner.write
    }

    /// The read pool as a [`crate::store::Store`], for a plugin's own tables: reads, and writes
    /// that need no transaction on PostgreSQL. On a SQLite file prefer [`DataEngine::writer`]
    /// for writes (see [`DataEngine::write_connection`] for why).
    pub fn pool(&self) -> crate::store::Pool<'_> {
        crate::store::Pool {
            conn: &self.inner.db,
            dialect: self.inner.dialect,
        }
    }

    /// The read pool's connections right now (for metrics and health). `None` for a connection
    /// that is not a pool of this build's drivers.
    pub fn pool_stats(&self) -> Option<PoolStats> {
        let db = &self.inner.db;
        // Asked by backend first: sea-orm's pool getters panic on the other backend.
        let (size, idle, max) = match db.get_database_backend() {
            sea_orm::DbBackend::Sqlite => {
                let p = db.get_sqlite_connection_pool();
                (p.size(), p.num_idle(), p.options().get_max_connections())
            }
            sea_orm::DbBackend::Postgres => {
                let p = db.get_postgres_connection_pool();
                (p.size(), p.num_idle(), p.options().get_max_connections())
            }
            _ => return None,
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
        Some(PoolStats {
            in_use: size - idle,
            idle,
            max,
        })
    }

    /// Outbox rows not yet published (the dispatcher's backlog).
    pub async fn outbox_backlog(&self) -> Result<u64> {
        let mut sql = Sql::new(self.inner.dialect);
        sql.push("SELECT COUNT(*) FROM \"_objectos_outbox\" WHERE \"dispatched_at\" IS NULL");
        let rows = db::query(&self.inner.db, sql).await?;
        let n: i64 = rows
            .first()
            .and_then(|r| r.try_get_by_index::<i64>(0).ok())
            .unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Runs `SELECT 1` on the read pool and returns how long it took: the database check of
    /// `/health`.
    pub async fn ping(&self) -> Result<std::time::Duration> {
        let started = std::time::Instant::now();
        let mut sql = Sql::new(self.inner.dialect);
        sql.push("SELECT 1");
        db::query(&self.inner.db, sql).await?;
        Ok(started.elapsed())
    }

    /// The pool the engine writes through as a [`crate::store::Store`]: single statements on a
    /// plugin's own tables queue behind the engine's writes instead of racing them for SQLite's
    /// write lock. Statements that must commit together belong in
    /// [`DataEngine::begin_own_transaction`].
    pub fn writer(&self) -> crate::store::Pool<'_> {
        crate::store::Pool {
            conn: &self.inner.write,
            dialect: self.inner.dialect,
        }
    }

    /// A read-only transaction that sees one state of the database throughout (repeatable read
    /// on PostgreSQL), for reads that must agree with each other.
    pub async fn begin_read_snapshot(&self) -> Result<crate::store::ReadSnapshot> {
        use sea_orm::{AccessMode, IsolationLevel, TransactionTrait};
        let (isolation, access) = match self.inner.dialect {
            Dialect::Postgres => (
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            ),
            // SQLite has one isolation level (a read transaction is a snapshot in WAL mode);
            // sea-orm warns when asked for another.
            Dialect::Sqlite => (None, None),
        };
        let tx = self
            .inner
            .db
            .begin_with_config(isolation, access)
            .await
            .map_err(db::map_db_err)?;
        Ok(crate::store::ReadSnapshot {
            tx,
            dialect: self.inner.dialect,
        })
    }

    /// The plugins' schemas the engine was opened with.
    pub fn owned(&self) -> &[crate::owned::PluginSchema] {
        &self.inner.owned
    }

    /// How many statements record operations have run so far (lets tests prove batching).
    pub fn statement_count(&self) -> u64 {
        self.inner.statements.load(Ordering::Relaxed)
    }

    /// Re-reads the metadata folders, validates everything and swaps the snapshot in atomically.
    /// On error the old snapshot stays.
    pub async fn reload(&self) -> Result<()> {
        let snap = self.load_snapshot()?;
        self.inner.snapshot.store(Arc::new(snap));
        Ok(())
    }

    /// [`DataEngine::reload`] with the additive schema sync of the new metadata applied before
    /// the swap (new tables, columns and indexes; nothing dropped), so no request ever sees an
    /// object whose table does not exist yet. On any error (a file, a migration step) the old
    /// snapshot stays and nothing of the migration is kept (it runs in one transaction).
    pub async fn reload_and_migrate(&self) -> Result<MigrationReport> {
        let snap = self.load_snapshot()?;
        let _guard = self.lock_writer().await;
        let cluster = self.cluster_migration_lock().await?;
        let plan = schema::plan(
            &self.inner.write,
            self.inner.dialect,
            &snap,
            &self.inner.owned,
        )
        .await?;
        let report = if plan.is_empty() && plan.changed_objects.is_empty() {
            MigrationReport::default()
        } else {
            schema::apply(
                &self.inner.write,
                self.inner.dialect,
                &snap,
                &self.inner.owned,
                &plan,
                &|_| {},
            )
            .await?
        };
        release_migration_lock(cluster).await;
        self.inner.snapshot.store(Arc::new(snap));
        Ok(report)
    }

    /// Loads and checks a new snapshot from the engine's sources without installing it.
    fn load_snapshot(&self) -> Result<MetadataSnapshot> {
        let ((mut schemas, warnings), items) =
            load_all(&self.inner.dirs, self.inner.include_base, &self.inner.owned)?;
        schemas.extend(
            self.inner
                .extra
                .iter()
                .map(|o| (format!("<memory:{}>", o.name), o.clone())),
        );
        let mut snap = meta::build_snapshot(self.inner.dialect, schemas, warnings)?;
        snap.items = items;
        check_table_names(&self.inner.owned, &snap)?;
        Ok(snap)
    }

    /// The additive migration plan for the current metadata.
    pub async fn plan_migration(&self) -> Result<MigrationPlan> {
        schema::plan(
            &self.inner.db,
            self.inner.dialect,
            &self.metadata(),
            &self.inner.owned,
        )
        .await
    }

    /// Plans and applies the additive migration, calling `progress` before each step.
    pub async fn migrate(
        &self,
        progress: &(dyn Fn(&MigrationStep) + Send + Sync),
    ) -> Result<MigrationReport> {
        let _guard = self.lock_writer().await;
        let cluster = self.cluster_migration_lock().await?;
        let snap = self.metadata();
        let plan = schema::plan(
            &self.inner.write,
            self.inner.dialect,
            &snap,
            &self.inner.owned,
        )
        .await?;
        let report = schema::apply(
            &self.inner.write,
            self.inner.dialect,
            &snap,
            &self.inner.owned,
            &plan,
            progress,
        )
        .await;
        release_migration_lock(cluster).await;
        report
    }

    /// On PostgreSQL, a transaction holding the cluster-wide migration lock: nodes starting
    /// together plan and apply one after the other, each planning after the previous one
    /// committed (so the later ones find nothing left to create). It holds one pooled
    /// connection while planning and applying use others, so a pool of one connection goes
    /// without it (a single-connection node is not one of several starting at once).
    async fn cluster_migration_lock(&self) -> Result<Option<sea_orm::DatabaseTransaction>> {
        if self.inner.dialect != Dialect::Postgres || self.pool_stats().is_none_or(|p| p.max < 2) {
            return Ok(None);
        }
        let tx = sea_orm::TransactionTrait::begin(&self.inner.write)
            .await
            .map_err(db::map_db_err)?;
        schema::lock_migrations(&tx, self.inner.dialect).await?;
        Ok(Some(tx))
    }

    /// Start-up sync: when the database records exactly the current metadata's hashes under the
    /// current DDL rules (a restart without metadata changes), there is nothing to add and the
    /// per-table introspection is skipped; otherwise [`DataEngine::migrate`].
    async fn migrate_if_changed(&self) -> Result<()> {
        let current = {
            let _guard = self.lock_writer().await;
            schema::is_current(
                &self.inner.write,
                self.inner.dialect,
                &self.metadata(),
                &self.inner.owned,
            )
            .await?
        };
        if !current {
            self.migrate(&|_| {}).await?;
        }
        Ok(())
    }

    /// Adds an interceptor; interceptors run sorted by `order()` (then by registration).
    pub fn add_interceptor(&self, i: Arc<dyn Interceptor>) {
        self.inner.interceptors.rcu(|cur| {
            let mut v: Vec<Arc<dyn Interceptor>> = cur.as_ref().clone();
            v.push(i.clone());
            v.sort_by_key(|x| x.order());
            v
        });
    }

    /// The ETag / If-Match value of a record (its `updated_at` in epoch milliseconds).
    pub fn version_of(record: &Record) -> Option<String> {
        version_from(record)
    }

    async fn q(&self, conn: Conn<'_>, sql: Sql) -> Result<Vec<sea_orm::QueryResult>> {
        self.inner.statements.fetch_add(1, Ordering::Relaxed);
        let span = crate::observe::statement_span(&sql);
        let run = async {
            match conn {
                Conn::Pool(c) => db::query(c, sql).await,
                Conn::Tx(t) => group::query_all(t, sql.statement())
                    .await
                    .map_err(db::map_db_err),
            }
        };
        tracing::Instrument::instrument(run, span).await
    }

    async fn x(&self, conn: Conn<'_>, sql: Sql) -> Result<u64> {
        self.inner.statements.fetch_add(1, Ordering::Relaxed);
        let span = crate::observe::statement_span(&sql);
        let run = async {
            match conn {
                Conn::Pool(c) => db::exec(c, sql).await,
                Conn::Tx(t) => group::execute(t, sql.statement())
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(db::map_db_err),
            }
        };
        tracing::Instrument::instrument(run, span).await
    }
}

fn row_to_record(plan: &ObjectPlan, row: &sea_orm::QueryResult, dialect: Dialect) -> Record {
    // Sized once: a record grows to every output field, and regrowing the map's table and
    // entries three or four times per row showed up in list profiles.
    let mut rec = Record::with_capacity(plan.output_cols.len() + plan.summaries.len());
    for (name, col) in &plan.output_cols {
        let value = match col {
            Some(i) => from_row(row, *i, &plan.columns[*i], dialect),
            None => Json::Null,
        };
        rec.insert(name.clone(), value);
    }
    rec
}

/// Where the engine's metadata comes from, kept for [`DataEngine::reload`].
struct Sources {
    dirs: Vec<PathBuf>,
    include_base: bool,
    /// Objects given in code ([`DataEngine::open_with_objects`]).
    extra: Vec<ObjectSchema>,
    owned: Vec<crate::owned::PluginSchema>,
}

/// Loads the objects and every plugin metadata kind's items from the same folders, reporting
/// the problems of both at once.
fn load_all(
    dirs: &[PathBuf],
    include_base: bool,
    owned: &[crate::owned::PluginSchema],
) -> Result<(meta::Loaded, crate::kinds::Items)> {
    let kinds: Vec<crate::kinds::MetadataKind> = crate::owned::PluginSchema::all_kinds(owned)
        .cloned()
        .collect();
    let objects = meta::load_schemas(dirs, include_base, owned);
    let items = crate::kinds::load(dirs, &kinds);
    match (objects, items) {
        (Ok(loaded), Ok(items)) => Ok((loaded, items)),
        (Err(DataError::Metadata { mut diagnostics }), Err(mut more)) => {
            diagnostics.append(&mut more);
            let (errors, warnings) = diagnostics.into_iter().partition(|d| d.is_error());
            Err(meta::metadata_error(errors, warnings))
        }
        (Err(e), _) => Err(e),
        (Ok(_), Err(diagnostics)) => {
            let (errors, warnings) = diagnostics.into_iter().partition(|d| d.is_error());
            Err(meta::metadata_error(errors, warnings))
        }
    }
}

/// The internal tables of the engine, which no plugin may declare.
const INTERNAL_TABLES: [&str; 3] = [
    "_objectos_schema",
    "_objectos_outbox",
    "_objectos_autonumber",
];

/// Every problem of the plugins' table declarations at once: a malformed declaration, or a
/// table two plugins claim.
fn check_owned(owned: &[crate::owned::PluginSchema]) -> Result<()> {
    let mut problems = Vec::new();
    let mut claimed: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for schema in owned {
        for table in schema.tables() {
            for p in table.problems() {
                problems.push(format!("plugin {}: {p}", schema.plugin()));
            }
            if let Some(other) = claimed.insert(table.name(), schema.plugin()) {
                problems.push(format!(
                    "table `{}` is declared by plugin {} and by plugin {}; a table has one owner",
                    table.name(),
                    other,
                    schema.plugin()
                ));
            }
            if INTERNAL_TABLES.contains(&table.name()) {
                problems.push(format!(
                    "plugin {}: table `{}` is the engine's own",
                    schema.plugin(),
                    table.name()
                ));
            }
        }
    }
    let kinds: Vec<crate::kinds::MetadataKind> = crate::owned::PluginSchema::all_kinds(owned)
        .cloned()
        .collect();
    if let Err(DataError::Config(more)) = crate::kinds::check_kinds(&kinds) {
        problems.push(more);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DataError::Config(problems.join("; ")))
    }
}

/// A plugin table may not share its name with an object's table.
fn check_table_names(owned: &[crate::owned::PluginSchema], snap: &MetadataSnapshot) -> Result<()> {
    let mut problems = Vec::new();
    for schema in owned {
        // Storage settings apply to a table the schema sync creates: a private table of the
        // plugin, or an object's table.
        for st in schema.storage_settings() {
            for p in st.problems() {
                problems.push(format!("plugin {}: {p}", schema.plugin()));
            }
            let private = schema.tables().iter().any(|t| t.name() == st.table());
            let object = snap.objects().any(|o| {
                snap.plan(&o.name)
                    .is_ok_and(|plan| plan.table == st.table())
            });
            if !private && !object {
                problems.push(format!(
                    "plugin {}: storage settings name table `{}`, which is neither one of its tables nor an object's table",
                    schema.plugin(),
                    st.table()
                ));
            }
            // System-field indexes are the engine's on every object; only the plugin shipping
            // an object knows that nothing reads it through them.
            let shipped = || {
                schema.objects().iter().any(|(path, text)| {
                    meta::object_name(path, text).is_some_and(|name| {
                        snap.plan(&name).is_ok_and(|plan| plan.table == st.table())
                    })
                })
            };
            if !st.unindexed_system_fields().is_empty() && object && !shipped() {
                problems.push(format!(
                    "plugin {}: only the table of an object the plugin ships can go without system-field indexes, and `{}` is not one",
                    schema.plugin(),
                    st.table()
                ));
            }
            if !st.unindexed_system_fields().is_empty() && private {
                problems.push(format!(
                    "plugin {}: table `{}` is a private table, which has no system fields; its `TableDef` lists every index it has",
                    schema.plugin(),
                    st.table()
                ));
            }
        }
        for table in schema.tables() {
            for object in snap.objects() {
                if snap
                    .plan(&object.name)
                    .is_ok_and(|plan| plan.table == table.name())
                {
                    problems.push(format!(
                        "plugin {}: table `{}` is also the table of object `{}`",
                        schema.plugin(),
                        table.name(),
                        object.name
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DataError::Config(problems.join("; ")))
    }
}

/// Ends the transaction that held the migration lock (see `cluster_migration_lock`); it wrote
/// nothing, so rolling back only releases the lock, and a failure leaves the connection to the
/// pool, which drops the session and with it the lock.
async fn release_migration_lock(lock: Option<sea_orm::DatabaseTransaction>) {
    if let Some(tx) = lock {
        let _ = tx.rollback().await;
    }
}
