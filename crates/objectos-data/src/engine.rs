//! The data engine: open, metadata, migrations, and every record operation (find, get, create,
//! update, delete, batch), each in a transaction with interceptors and outbox rows.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use indexmap::IndexMap;
use objectos_spec::object::{ObjectSchema, Storage, SummaryFunction};
use objectos_spec::query::{
    AggregateFunction, Condition, Filter, FilterValue, Operator, QueryAst, SearchQuery,
};
use sea_orm::{DatabaseConnection, DatabaseTransaction, Value};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::Record;
use crate::checks;
use crate::context::OpContext;
use crate::db::{self, Dialect, Sql};
use crate::error::{DataError, FieldError, Result};
use crate::hooks::{HookContext, Interceptor, Operation, WriteTx};
use crate::meta::{self, MetadataSnapshot, ObjectPlan};
use crate::outbox::{self, DispatcherHandle, EventSink};
use crate::schema::{self, MigrationPlan, MigrationReport, MigrationStep};
use crate::sqlgen::{self, DEFAULT_LIMIT, FilterCompiler, MAX_LIMIT, SortKey, invalid};
use crate::util::{format_ts, new_id, now};
use crate::validate::WriteKind;
use crate::value::{from_row, parse_datetime, read_number, to_db};

mod group;

// The statement paths of a write operation's transaction, for `hooks::WriteTx`.
pub(crate) use group::{
    execute as group_execute, execute_unprepared as group_execute_unprepared,
    query_all as group_query_all, query_one as group_query_one,
};
mod fair;
mod limits;
mod refs;
mod select;
mod transaction;
mod unique;

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
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            database_url: "sqlite://./objectos.db?mode=rwc".to_owned(),
            metadata_dirs: Vec::new(),
            include_base: true,
            max_connections: 8,
            auto_migrate: true,
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

/// What a batch does with each item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BatchOperation {
    Create,
    Update,
    Upsert,
    Delete,
}

/// One item of a batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BatchItem {
    pub id: Option<String>,
    pub data: Record,
    pub external_id: Option<String>,
}

/// Options of a batch; `atomic` defaults to true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BatchOptions {
    pub atomic: bool,
    pub return_records: bool,
    pub continue_on_error: bool,
    pub validate_only: bool,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            atomic: true,
            return_records: true,
            continue_on_error: false,
            validate_only: false,
        }
    }
}

/// A batch request (spec `BatchUpdateRequest` shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRequest {
    pub operation: BatchOperation,
    #[serde(default)]
    pub records: Vec<BatchItem>,
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default)]
    pub options: BatchOptions,
}

/// The outcome of one batch item.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemResult {
    pub id: Option<String>,
    pub success: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<BatchItemError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Record>,
}

/// Why a batch item failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchItemError {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

impl From<&DataError> for BatchItemError {
    fn from(e: &DataError) -> Self {
        Self {
            code: e.code().to_owned(),
            message: e.public_message(),
            fields: e.field_errors().to_vec(),
        }
    }
}

/// The outcome of a batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResult {
    pub success: bool,
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub results: Vec<BatchItemResult>,
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

impl Conn<'_> {
    fn tx(&self) -> Option<&DatabaseTransaction> {
        match self {
            Self::Tx(t) => Some(t),
            Self::Pool(_) => None,
        }
    }
}

fn tenant_filter(cx: &OpContext) -> Filter {
    match &cx.tenant {
        Some(t) => Filter::eq("organization_id", t.clone()),
        None => Filter::True,
    }
}

/// Limits a cascade statement on `plan`'s table to the parent's organization (`scope`; `None`
/// is the records without one). Objects without `organization_id` are not tenant-scoped.
fn same_tenant(sql: &mut Sql, plan: &ObjectPlan, scope: Option<&str>) {
    if plan.column("organization_id").is_none() {
        return;
    }
    sql.push(" AND ").ident("organization_id");
    match scope {
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
        let (schemas, warnings) = meta::load_schemas(&config.metadata_dirs, config.include_base)?;
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let engine = Self::connect(
            &config.database_url,
            config.max_connections,
            config.metadata_dirs.clone(),
            config.include_base,
            Vec::new(),
            schemas,
            warnings,
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
        let engine = Self::connect(url, 8, Vec::new(), false, objects, schemas, Vec::new()).await?;
        engine.migrate_if_changed().await?;
        Ok(engine)
    }

    async fn connect(
        url: &str,
        max_connections: u32,
        dirs: Vec<PathBuf>,
        include_base: bool,
        extra: Vec<ObjectSchema>,
        schemas: Vec<(String, ObjectSchema)>,
        warnings: Vec<objectos_spec::Diagnostic>,
    ) -> Result<DataEngine> {
        let dialect = Dialect::from_url(url)?;
        let snapshot = meta::build_snapshot(dialect, schemas, warnings)?;
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
            spawn_checkpointer(Arc::downgrade(&engine.inner));
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

    /// How many statements record operations have run so far (lets tests prove batching).
    pub fn statement_count(&self) -> u64 {
        self.inner.statements.load(Ordering::Relaxed)
    }

    /// Re-reads the metadata folders, validates everything and swaps the snapshot in atomically.
    /// On error the old snapshot stays.
    pub async fn reload(&self) -> Result<()> {
        let (mut schemas, warnings) =
            meta::load_schemas(&self.inner.dirs, self.inner.include_base)?;
        schemas.extend(
            self.inner
                .extra
                .iter()
                .map(|o| (format!("<memory:{}>", o.name), o.clone())),
        );
        let snap = meta::build_snapshot(self.inner.dialect, schemas, warnings)?;
        self.inner.snapshot.store(Arc::new(snap));
        Ok(())
    }

    /// The additive migration plan for the current metadata.
    pub async fn plan_migration(&self) -> Result<MigrationPlan> {
        schema::plan(&self.inner.db, self.inner.dialect, &self.metadata()).await
    }

    /// Plans and applies the additive migration, calling `progress` before each step.
    pub async fn migrate(
        &self,
        progress: &(dyn Fn(&MigrationStep) + Send + Sync),
    ) -> Result<MigrationReport> {
        let _guard = self.lock_writer().await;
        let snap = self.metadata();
        let plan = schema::plan(&self.inner.write, self.inner.dialect, &snap).await?;
        schema::apply(
            &self.inner.write,
            self.inner.dialect,
            &snap,
            &plan,
            progress,
        )
        .await
    }

    /// Start-up sync: when the database records exactly the current metadata's hashes under the
    /// current DDL rules (a restart without metadata changes), there is nothing to add and the
    /// per-table introspection is skipped; otherwise [`DataEngine::migrate`].
    async fn migrate_if_changed(&self) -> Result<()> {
        let current = {
            let _guard = self.lock_writer().await;
            schema::is_current(&self.inner.write, self.inner.dialect, &self.metadata()).await?
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

    fn hooks(&self, object: &str, op: Operation) -> Vec<Arc<dyn Interceptor>> {
        let all = self.inner.interceptors.load();
        if all.is_empty() {
            return Vec::new();
        }
        all.iter()
            .filter(|i| i.applies_to(object, op))
            .cloned()
            .collect()
    }

    async fn q(&self, conn: Conn<'_>, sql: Sql) -> Result<Vec<sea_orm::QueryResult>> {
        self.inner.statements.fetch_add(1, Ordering::Relaxed);
        match conn {
            Conn::Pool(c) => db::query(c, sql).await,
            Conn::Tx(t) => group::query_all(t, sql.statement())
                .await
                .map_err(db::map_db_err),
        }
    }

    async fn x(&self, conn: Conn<'_>, sql: Sql) -> Result<u64> {
        self.inner.statements.fetch_add(1, Ordering::Relaxed);
        match conn {
            Conn::Pool(c) => db::exec(c, sql).await,
            Conn::Tx(t) => group::execute(t, sql.statement())
                .await
                .map(|r| r.rows_affected())
                .map_err(db::map_db_err),
        }
    }

    /// The before-hooks of an operation that selects records: they may narrow `query` (RLS).
    async fn before_query(
        &self,
        hooks: &[Arc<dyn Interceptor>],
        cx: &OpContext,
        schema: &ObjectSchema,
        op: Operation,
        tx: Option<&DatabaseTransaction>,
        query: &mut QueryAst,
    ) -> Result<()> {
        self.run_hooks(
            hooks,
            true,
            cx,
            schema,
            op,
            tx,
            HookData {
                query: Some(query),
                ..HookData::default()
            },
        )
        .await
    }

    /// The after-hooks of an operation that returns a page of records (FLS strips fields there).
    async fn after_records(
        &self,
        hooks: &[Arc<dyn Interceptor>],
        cx: &OpContext,
        schema: &ObjectSchema,
        op: Operation,
        tx: Option<&DatabaseTransaction>,
        records: &mut Vec<Record>,
    ) -> Result<()> {
        self.run_hooks(
            hooks,
            false,
            cx,
            schema,
            op,
            tx,
            HookData {
                records: Some(records),
                ..HookData::default()
            },
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_hooks(
        &self,
        hooks: &[Arc<dyn Interceptor>],
        before: bool,
        cx: &OpContext,
        schema: &ObjectSchema,
        op: Operation,
        tx: Option<&DatabaseTransaction>,
        data: HookData<'_>,
    ) -> Result<()> {
        if hooks.is_empty() {
            return Ok(());
        }
        let HookData {
            mut query,
            mut input,
            previous,
            mut result,
            mut records,
        } = data;
        for h in hooks {
            let mut hc = HookContext {
                cx,
                object: schema,
                operation: op,
                query: query.as_deref_mut(),
                input: input.as_deref_mut(),
                previous,
                result: result.as_deref_mut(),
                records: records.as_deref_mut(),
                tx,
            };
            if before {
                h.before(&mut hc).await?
            } else {
                h.after(&mut hc).await?
            }
        }
        Ok(())
    }

    // ----------------------------------------------------------------- reads

    /// Finds records (or aggregated rows when the query has aggregations or groupBy).
    pub async fn find(&self, cx: &OpContext, object: &str, query: QueryAst) -> Result<FindResult> {
        let snap = self.metadata();
        let plan = snap.plan(object)?.clone();
        let op = if query.aggregations.is_empty() && query.group_by.is_empty() {
            Operation::Find
        } else {
            Operation::Aggregate
        };
        // Reads run on the pool, hooks included (see HookContext::tx).
        self.find_in(Conn::Pool(&self.inner.db), cx, &snap, &plan, query, op)
            .await
    }

    /// The number of records matching `filter`.
    pub async fn count(&self, cx: &OpContext, object: &str, filter: Filter) -> Result<u64> {
        let snap = self.metadata();
        let plan = snap.plan(object)?.clone();
        let mut query = QueryAst {
            filter,
            ..QueryAst::default()
        };
        let hooks = self.hooks(object, Operation::Count);
        let conn = Conn::Pool(&self.inner.db);
        self.before_query(&hooks, cx, &plan.schema, Operation::Count, None, &mut query)
            .await?;
        self.count_in(conn, cx, &snap, &plan, &query.filter).await
    }

    /// One record by id, with `select` and `expand` from `query` (RecordNotFound otherwise).
    pub async fn get(
        &self,
        cx: &OpContext,
        object: &str,
        id: &str,
        query: QueryAst,
    ) -> Result<Record> {
        let snap = self.metadata();
        let plan = snap.plan(object)?.clone();
        check_id(object, id)?;
        let mut query = QueryAst {
            filter: id_filter(id),
            fields: query.fields,
            expand: query.expand,
            ..QueryAst::default()
        };
        let hooks = self.hooks(object, Operation::Get);
        let conn = Conn::Pool(&self.inner.db);
        self.before_query(&hooks, cx, &plan.schema, Operation::Get, None, &mut query)
            .await?;
        let mut rec = self.get_in(conn, cx, &snap, &plan, id, &query).await?;
        self.run_hooks(
            &hooks,
            false,
            cx,
            &plan.schema,
            Operation::Get,
            None,
            HookData {
                result: Some(&mut rec),
                ..HookData::default()
            },
        )
        .await?;
        Ok(rec)
    }

    async fn get_in(
        &self,
        conn: Conn<'_>,
        cx: &OpContext,
        snap: &MetadataSnapshot,
        plan: &ObjectPlan,
        id: &str,
        query: &QueryAst,
    ) -> Result<Record> {
        // Lowering a selection rewrites the query; without one (the usual get) nothing is copied.
        let lowered;
        let query = if query.fields.is_empty() {
            select::check_expand_keys(plan, query)?;
            query
        } else {
            let mut q = query.clone();
            select::lower_selection(snap, plan, &mut q, 0, "")?;
            lowered = q;
            &lowered
        };
        let mut records = self
            .select(
                conn,
                cx,
                snap,
                plan,
                &query.filter,
                &[],
                Some(1),
                None,
                None,
                "filter",
            )
            .await?;
        let Some(_) = records.first() else {
            return Err(DataError::RecordNotFound {
                object: plan.name.clone(),
                id: id.to_owned(),
            });
        };
        self.decorate(conn, cx, snap, plan, &mut records, query, 1)
            .await?;
        Ok(records.swap_remove(0))
    }

    async fn count_in(
        &self,
        conn: Conn<'_>,
        cx: &OpContext,
        snap: &MetadataSnapshot,
        plan: &ObjectPlan,
        filter: &Filter,
    ) -> Result<u64> {
        let mut sql = Sql::new(self.inner.dialect);
        sql.push("SELECT COUNT(*) FROM ")
            .ident(&plan.table)
            .push(" WHERE ");
        let fc = FilterCompiler {
            snap,
            dialect: self.inner.dialect,
            param: "filter",
        };
        fc.compile(
            plan,
            &plan.table,
            &tenant_filter(cx).and(filter.clone()),
            &mut sql,
            0,
        )?;
        let rows = self.q(conn, sql).await?;
        Ok(rows
            .first()
            .and_then(|r| read_number(r, 0).as_u64())
            .unwrap_or(0))
    }

    #[allow(clippy::too_many_arguments)]
    async fn select(
        &self,
        conn: Conn<'_>,
        cx: &OpContext,
        snap: &MetadataSnapshot,
        plan: &ObjectPlan,
        filter: &Filter,
        keys: &[SortKey],
        limit: Option<u64>,
        offset: Option<u64>,
        keyset: Option<&[Json]>,
        param: &str,
    ) -> Result<Vec<Record>> {
        let page = SelectPage {
            keys,
            limit,
            offset,
            keyset,
            total: false,
        };
        Ok(self
            .select_page(conn, cx, snap, plan, filter, page, param)
            .await?
            .0)
    }

    /// A page of records; with `page.total`, also the number of records matching `filter`
    /// (without the keyset), counted by a subquery of the same statement, so a list costs one
    /// round trip to the database instead of two. `None` when the page came back empty (the
    /// count rides on the rows).
    #[allow(clippy::too_many_arguments)]
    async fn select_page(
        &self,
        conn: Conn<'_>,
        cx: &OpContext,
        snap: &MetadataSnapshot,
        plan: &ObjectPlan,
        filter: &Filter,
        page: SelectPage<'_>,
        param: &str,
    ) -> Result<(Vec<Record>, Option<u64>)> {
        let SelectPage {
            keys,
            limit,
            offset,
            keyset,
            total,
        } = page;
        let dialect = self.inner.dialect;
        let mut sql = Sql::new(dialect);
        let fc = FilterCompiler {
            snap,
            dialect,
            param,
        };
        let full = tenant_filter(cx).and(filter.clone());
        if total {
            sql.push(&plan.select_cols)
                .push(", (SELECT COUNT(*) FROM ")
                .ident(&plan.table)
                .push(" WHERE ");
            fc.compile(plan, &plan.table, &full, &mut sql, 0)?;
            sql.push(") FROM ").ident(&plan.table);
        } else {
            sql.push(&plan.select_all);
        }
        sql.push(" WHERE ");
        fc.compile(plan, &plan.table, &full, &mut sql, 0)?;
        if let Some(values) = keyset {
            sql.push(" AND ");
            sqlgen::keyset_condition(plan, &mut sql, &plan.table, keys, values)?;
        }
        if !keys.is_empty() {
            sqlgen::order_by(&mut sql, &plan.table, keys);
        }
        if let Some(l) = limit {
            sql.limit(l);
        }
        if let Some(o) = offset.filter(|o| *o > 0) {
            if limit.is_none() {
                sql.push(" LIMIT -1");
            }
            sql.push(" OFFSET ")
                .param(Value::BigInt(Some(o.min(i64::MAX as u64) as i64)));
        }
        let rows = self.q(conn, sql).await?;
        let count = if total {
            rows.first()
                .and_then(|r| read_number(r, plan.columns.len()).as_u64())
        } else {
            None
        };
        Ok((
            rows.iter()
                .map(|r| row_to_record(plan, r, dialect))
                .collect(),
            count,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    async fn find_in(
        &self,
        conn: Conn<'_>,
        cx: &OpContext,
        snap: &MetadataSnapshot,
        plan: &ObjectPlan,
        mut query: QueryAst,
        op: Operation,
    ) -> Result<FindResult> {
        let hooks = self.hooks(&plan.name, op);
        self.before_query(&hooks, cx, &plan.schema, op, conn.tx(), &mut query)
            .await?;
        if op == Operation::Aggregate {
            let mut result = self.aggregate_in(conn, cx, snap, plan, &query).await?;
            self.after_records(&hooks, cx, &plan.schema, op, conn.tx(), &mut result.records)
                .await?;
            return Ok(result);
        }
        select::lower_selection(snap, plan, &mut query, 0, "")?;
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if limit > MAX_LIMIT {
            return Err(invalid(
                &plan.name,
                "limit",
                "invalid_paging",
                format!("limit: {limit} is larger than the maximum page size {MAX_LIMIT}"),
            ));
        }
        let mut filter = query.filter.clone();
        if let Some(s) = &query.search {
            filter = filter.and(search_filter(plan, s)?);
        }
        if query.distinct && !query.fields.is_empty() {
            let page = self
                .distinct_page(conn, cx, snap, plan, &query, &filter, limit)
                .await?;
            let mut records = page.records;
            self.decorate(conn, cx, snap, plan, &mut records, &query, 1)
                .await?;
            self.after_records(&hooks, cx, &plan.schema, op, conn.tx(), &mut records)
                .await?;
            return Ok(FindResult {
                records,
                total: Some(page.total),
                next_cursor: None,
                has_more: page.has_more,
            });
        }
        let keys = sqlgen::sort_keys(plan, &query.order_by)?;
        let keyset = match &query.cursor {
            Some(objectos_spec::query::Cursor::Token(t)) if t.is_empty() => None,
            Some(c) => Some(sqlgen::decode_cursor(plan, &keys, c)?),
            None => None,
        };
        let offset = if query.cursor.is_some() {
            None
        } else {
            query.offset
        };
        let (mut records, counted) = self
            .select_page(
                conn,
                cx,
                snap,
                plan,
                &filter,
                SelectPage {
                    keys: &keys,
                    limit: Some(limit + 1),
                    offset,
                    keyset: keyset.as_deref(),
                    total: true,
                },
                "filter",
            )
            .await?;
        let has_more = records.len() as u64 > limit;
        records.truncate(limit as usize);
        let total = match counted {
            Some(n) => n,
            None if keyset.is_none() && offset.unwrap_or(0) == 0 => 0,
            // An empty page past the end (or after a cursor): count on its own.
            None => self.count_in(conn, cx, snap, plan, &filter).await?,
        };
        let next_cursor = match (&query.cursor, has_more, records.last()) {
            (Some(_), true, Some(last)) => Some(sqlgen::encode_cursor(&keys, last)),
            _ => None,
        };
        self.decorate(conn, cx, snap, plan, &mut records, &query, 1)
            .await?;
        self.after_records(&hooks, cx, &plan.schema, op, conn.tx(), &mut records)
            .await?;
        Ok(FindResult {
            records,
            total: Some(total),
            next_cursor,
            has_more,
        })
    }

    /// Summaries, formulas, expand and projection, for a page of records of `plan`.
    #[allow(clippy::too_many_arguments)]
    fn decorate<'a>(
        &'a self,
        conn: Conn<'a>,
        cx: &'a OpContext,
        snap: &'a MetadataSnapshot,
        plan: &'a ObjectPlan,
        records: &'a mut [Record],
        query: &'a QueryAst,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            if records.is_empty() {
                return Ok(());
            }
            let wanted = |f: &str| {
                query.fields.is_empty()
                    || query
                        .fields
                        .iter()
                        .any(|s| sqlgen::canonical(s.name()) == f)
            };
            self.load_summaries(conn, cx, snap, plan, records, &wanted)
                .await?;
            for r in records.iter_mut() {
                checks::compute_formulas(plan, r);
            }
            self.expand(conn, cx, snap, plan, records, &query.expand, depth)
                .await?;
            if !query.fields.is_empty() {
                for r in records.iter_mut() {
                    *r = select::project(&query.fields, std::mem::take(r));
                }
            }
            Ok(())
        })
    }

    /// Roll-ups of a page of records, one grouped aggregate query per summary field.
    ///
    /// A summary shows what the reader could aggregate themselves: the child object's read
    /// interceptors run for `cx` on the query `<function>(<field>) GROUP BY <reference>` as an
    /// `Aggregate` (so the permissions plugin checks read access to the child object and to both
    /// fields, and ANDs in its sharing and row-level filter), and the tenant is ANDed in like any
    /// read. A summary the reader may not compute at all (an interceptor refused with
    /// `PERMISSION_DENIED`) is `null`: it reveals nothing, not even whether children exist.
    /// `scope: all` (an explicit per-field opt-in) skips the interceptors: every child in the
    /// organization counts.
    #[allow(clippy::too_many_arguments)]
    async fn load_summaries(
        &self,
        conn: Conn<'_>,
        cx: &OpContext,
        snap: &MetadataSnapshot,
        plan: &ObjectPlan,
        records: &mut [Record],
        wanted: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<()> {
        let dialect = self.inner.dialect;
        for s in plan.summaries.iter().filter(|s| wanted(&s.field)) {
            let ids: Vec<String> = records
                .iter()
                .filter_map(|r| r.get("id").and_then(Json::as_str).map(str::to_owned))
                .collect();
            if ids.is_empty() {
                continue;
            }
            let cplan = snap.plan(&s.child_object)?;
            let mut visible = QueryAst::default();
            if !s.all_children {
                let hooks = self.hooks(&cplan.name, Operation::Aggregate);
                if !hooks.is_empty() {
                    visible.group_by = vec![s.fk_column.clone()];
                    visible.aggregations = vec![objectos_spec::query::Aggregation {
                        function: match s.function {
                            SummaryFunction::Count => AggregateFunction::Count,
                            SummaryFunction::Sum => AggregateFunction::Sum,
                            SummaryFunction::Min => AggregateFunction::Min,
                            SummaryFunction::Max => AggregateFunction::Max,
                            SummaryFunction::Avg => AggregateFunction::Avg,
                        },
                        field: s.child_column.clone(),
                        alias: s.field.clone(),
                        distinct: false,
                        filter: None,
                    }];
                    let narrowed = self
                        .before_query(
                            &hooks,
                            cx,
                            &cplan.schema,
                            Operation::Aggregate,
                            conn.tx(),
                            &mut visible,
                        )
                        .await;
                    match narrowed {
                        Ok(()) => {}
                        Err(DataError::Forbidden { .. }) => {
                            for r in records.iter_mut() {
                                r.insert(s.field.clone(), Json::Null);
                            }
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            let mut sql = Sql::new(dialect);
            sql.push("SELECT ").ident(&s.fk_column).push(", ");
            let func = match s.function {
                SummaryFunction::Count => "COUNT(",
                SummaryFunction::Sum => "SUM(",
                SummaryFunction::Min => "MIN(",
                SummaryFunction::Max => "MAX(",
                SummaryFunction::Avg => "AVG(",
            };
            let cast = dialect == Dialect::Postgres && s.function != SummaryFunction::Count;
            if cast {
                sql.push("CAST(");
            }
            sql.push(func);
            match &s.child_column {
                Some(c) => sql.ident(c),
                None => sql.push("*"),
            };
            sql.push(")");
            if cast {
                sql.push(" AS DOUBLE PRECISION)");
            }
            sql.push(" FROM ")
                .ident(&s.child_table)
                .push(" WHERE ")
                .ident(&s.fk_column)
                .push(" IN (");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.param(Value::from(id.clone()));
            }
            sql.push(") AND ");
            // The tenant and the interceptors' row filter, compiled (bound values only) like the
            // WHERE of a read of the child object.
            let fc = FilterCompiler {
                snap,
                dialect,
                param: "filter",
            };
            fc.compile(
                cplan,
                &cplan.table,
                &tenant_filter(cx).and(visible.filter),
                &mut sql,
                0,
            )?;
            sql.push(" GROUP BY ").ident(&s.fk_column);
            let rows = self.q(conn, sql).await?;
            let mut by_id: HashMap<String, Json> = HashMap::with_capacity(rows.len());
            for r in &rows {
                if let Ok(Some(k)) = r.try_get_by_index::<Option<String>>(0) {
                    by_id.insert(k, read_number(r, 1));
                }
            }
            let empty = match s.function {
                SummaryFunction::Count | SummaryFunction::Sum => json!(0),
                _ => Json::Null,
            };
            for r in records.iter_mut() {
                let v = r
                    .get("id")
                    .and_then(Json::as_str)
                    .and_then(|id| by_id.get(id).cloned())
                    .unwrap_or_else(|| empty.clone());
                r.insert(s.field.clone(), v);
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn expand(
        &self,
        conn: Conn<'_>,
        cx: &OpContext,
        snap: &MetadataSnapshot,
        plan: &ObjectPlan,
        records: &mut [Record],
        expand: &IndexMap<String, QueryAst>,
        depth: usize,
    ) -> Result<()> {
        if expand.is_empty() {
            return Ok(());
        }
        if depth > objectos_spec::query::MAX_EXPAND_DEPTH {
            return Err(invalid(
                &plan.name,
                "expand",
                "invalid_expand",
                format!(
                    "expand: nesting is deeper than {} levels",
                    objectos_spec::query::MAX_EXPAND_DEPTH
                ),
            ));
        }
        for (field_name, sub) in expand {
            let name = sqlgen::canonical(field_name);
            let field = plan.field(name).ok_or_else(|| {
                invalid(
                    &plan.name,
                    "expand",
                    "unknown_field",
                    format!(
                        "expand: field '{name}' does not exist on object '{}'",
                        plan.name
                    ),
                )
            })?;
            let target = field.reference_target(&plan.name).ok_or_else(|| {
                invalid(
                    &plan.name,
                    "expand",
                    "invalid_expand",
                    format!(
                        "expand: field '{name}' of object '{}' is not a lookup",
                        plan.name
                    ),
                )
            })?;
            let Ok(tplan) = snap.plan(target) else {
                // A reference to an object that is not installed (e.g. `user` without the auth preset): leave ids.
                continue;
            };
            let mut ids: Vec<String> = Vec::new();
            let mut seen = HashSet::new();
            for r in records.iter() {
                match r.get(name) {
                    Some(Json::String(s)) if seen.insert(s.clone()) => ids.push(s.clone()),
                    Some(Json::Array(a)) => {
                        for s in a.iter().filter_map(Json::as_str) {
                            if seen.insert(s.to_owned()) {
                                ids.push(s.to_owned());
                            }
                        }
                    }
                    _ => {}
                }
            }
            if ids.is_empty() {
                continue;
            }
            let mut subq = sub.clone();
            let hooks = self.hooks(&tplan.name, Operation::Find);
            self.before_query(
                &hooks,
                cx,
                &tplan.schema,
                Operation::Find,
                conn.tx(),
                &mut subq,
            )
            .await?;
            select::lower_selection(snap, tplan, &mut subq, depth, "").map_err(|e| match e {
                DataError::InvalidQuery {
                    object,
                    code,
                    message,
                    ..
                } => DataError::InvalidQuery {
                    object,
                    param: "expand".into(),
                    code,
                    message: format!("expand.{name}: {message}"),
                },
                other => other,
            })?;
            let in_ids = Filter::Condition(Condition {
                field: "id".into(),
                op: Operator::In,
                value: FilterValue::Value(Json::Array(ids.into_iter().map(Json::String).collect())),
            });
            let mut related = self
                .select(
                    conn,
                    cx,
                    snap,
                    tplan,
                    &in_ids.and(subq.filter.clone()),
                    &[],
                    None,
                    None,
                    None,
                    "expand",
                )
                .await?;
            // Only the selected fields (roll-ups cost a query each), plus `id` to match on;
            // the final projection below drops it again when it was not selected.
            let mut fields = subq.fields.clone();
            if !fields.is_empty() && !fields.iter().any(|f| sqlgen::canonical(f.name()) == "id") {
                fields.push(objectos_spec::query::FieldSelection::Field("id".into()));
            }
            self.decorate(
                conn,
                cx,
                snap,
                tplan,
                &mut related,
                &QueryAst {
                    fields,
                    expand: subq.expand.clone(),
                    ..QueryAst::default()
                },
                depth + 1,
            )
            .await?;
            let by_id: HashMap<String, Record> = related
                .into_iter()
                .filter_map(|r| {
                    let id = r.get("id")?.as_str()?.to_owned();
                    let projected = if subq.fields.is_empty() {
                        r
                    } else {
                        select::project(&subq.fields, r)
                    };
                    Some((id, projected))
                })
                .collect();
            for r in records.iter_mut() {
                let Some(v) = r.get_mut(name) else { continue };
                match v {
                    Json::String(s) => {
                        if let Some(x) = by_id.get(s.as_str()) {
                            *v = Json::Object(x.clone());
                        }
                    }
                    Json::Array(a) => {
                        for item in a.iter_mut() {
                            if let Some(x) = item.as_str().and_then(|s| by_id.get(s)) {
                                *item = Json::Object(x.clone());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    async fn aggregate_in(
        &self,
        conn: Conn<'_>,
        cx: &OpContext,
        snap: &MetadataSnapshot,
        plan: &ObjectPlan,
        query: &QueryAst,
    ) -> Result<FindResult> {
        let dialect = self.inner.dialect;
        let fc = FilterCompiler {
            snap,
            dialect,
            param: "filter",
        };
        let afc = FilterCompiler {
            snap,
            dialect,
            param: "aggregations",
        };
        let t = plan.table.as_str();
        let mut group_cols = Vec::new();
        for g in &query.group_by {
            group_cols.push(sqlgen::column(plan, g, "groupBy")?.clone());
        }
        let mut sql = Sql::new(dialect);
        sql.push("SELECT ");
        let mut outs = Vec::new();
        let mut aliases: HashMap<String, usize> = HashMap::new();
        for (i, a) in query.aggregations.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            let out = sqlgen::aggregate_expr(&afc, plan, t, a, &mut sql)?;
            sql.push(" AS ").ident(&format!("a{i}"));
            aliases.insert(a.alias.clone(), i);
            outs.push(out);
        }
        for (i, g) in group_cols.iter().enumerate() {
            if i > 0 || !outs.is_empty() {
                sql.push(", ");
            }
            sql.push(&meta::column_expr(dialect, t, g));
        }
        if outs.is_empty() && group_cols.is_empty() {
            sql.push("COUNT(*)");
        }
        sql.push(" FROM ").ident(t).push(" WHERE ");
        fc.compile(
            plan,
            t,
            &tenant_filter(cx).and(query.filter.clone()),
            &mut sql,
            0,
        )?;
        if !group_cols.is_empty() {
            sql.push(" GROUP BY ");
            for (i, g) in group_cols.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.qualified(t, &g.name);
            }
        }
        if !query.having.is_true() {
            sql.push(" HAVING ");
            self.having(plan, t, &query.having, query, &group_cols, &mut sql)?;
        }
        if !query.order_by.is_empty() {
            sql.push(" ORDER BY ");
            for (i, s) in query.order_by.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                if let Some(ai) = aliases.get(&s.field) {
                    sql.ident(&format!("a{ai}"));
                } else if let Some(g) = group_cols
                    .iter()
                    .find(|g| g.name == sqlgen::canonical(&s.field))
                {
                    sql.qualified(t, &g.name);
                } else {
                    return Err(invalid(
                        &plan.name,
                        "sort",
                        "unknown_field",
                        format!(
                            "sort: '{}' is neither a groupBy field nor an aggregation alias",
                            s.field
                        ),
                    ));
                }
                sql.push(if s.order == objectos_spec::query::SortOrder::Desc {
                    " DESC"
                } else {
                    " ASC"
                });
            }
        }
        let limit = query.limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
        sql.limit(limit + 1);
        if let Some(o) = query.offset.filter(|o| *o > 0) {
            sql.push(" OFFSET ").param(Value::BigInt(Some(o as i64)));
        }
        let rows = self.q(conn, sql).await?;
        let mut records = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut rec = Record::new();
            for (i, o) in outs.iter().enumerate() {
                let v = match (o.function, &o.column) {
                    (
                        objectos_spec::query::AggregateFunction::Min
                        | objectos_spec::query::AggregateFunction::Max,
                        Some(c),
                    ) => {
                        let mut c = c.clone();
                        c.numeric = None;
                        if c.storage == Storage::Decimal || c.storage == Storage::Integer {
                            read_number(r, i)
                        } else {
                            from_row(r, i, &c, dialect)
                        }
                    }
                    (objectos_spec::query::AggregateFunction::ArrayAgg, _) => {
                        let s = r.try_get_by_index::<Option<String>>(i).ok().flatten();
                        s.and_then(|s| serde_json::from_str(&s).ok())
                            .unwrap_or(Json::Null)
                    }
                    (objectos_spec::query::AggregateFunction::StringAgg, _) => r
                        .try_get_by_index::<Option<String>>(i)
                        .ok()
                        .flatten()
                        .map(Json::String)
                        .unwrap_or(Json::Null),
                    _ => read_number(r, i),
                };
                rec.insert(o.alias.clone(), v);
            }
            for (j, g) in group_cols.iter().enumerate() {
                rec.insert(g.name.clone(), from_row(r, outs.len() + j, g, dialect));
            }
            records.push(rec);
        }
        let has_more = records.len() as u64 > limit;
        records.truncate(limit as usize);
        let total = records.len() as u64;
        Ok(FindResult {
            records,
            total: Some(total),
            next_cursor: None,
            has_more,
        })
    }

    fn having(
        &self,
        plan: &ObjectPlan,
        t: &str,
        f: &Filter,
        query: &QueryAst,
        groups: &[crate::meta::Column],
        sql: &mut Sql,
    ) -> Result<()> {
        match f {
            Filter::True => {
                sql.push("1=1");
            }
            Filter::And(items) | Filter::Or(items) => {
                sql.push("(");
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        sql.push(if matches!(f, Filter::And(_)) {
                            " AND "
                        } else {
                            " OR "
                        });
                    }
                    self.having(plan, t, it, query, groups, sql)?;
                }
                sql.push(")");
            }
            Filter::Not(inner) => {
                sql.push("NOT (");
                self.having(plan, t, inner, query, groups, sql)?;
                sql.push(")");
            }
            Filter::Condition(c) => {
                let fc = FilterCompiler {
                    snap: &self.metadata(),
                    dialect: sql.dialect,
                    param: "having",
                };
                if let Some(a) = query.aggregations.iter().find(|a| a.alias == c.field) {
                    let mut expr = Sql::new(sql.dialect);
                    sqlgen::aggregate_expr(&fc, plan, t, a, &mut expr)?;
                    let op = match c.op {
                        Operator::Eq => " = ",
                        Operator::Ne => " <> ",
                        Operator::Gt => " > ",
                        Operator::Gte => " >= ",
                        Operator::Lt => " < ",
                        Operator::Lte => " <= ",
                        other => {
                            return Err(invalid(
                                &plan.name,
                                "having",
                                "invalid_operator",
                                format!(
                                    "having: operator {} is not supported on aggregates",
                                    other.as_str()
                                ),
                            ));
                        }
                    };
                    let v = c.value.as_value().and_then(Json::as_f64).ok_or_else(|| {
                        invalid(
                            &plan.name,
                            "having",
                            "invalid_value",
                            format!("having: '{}' must be compared with a number", c.field),
                        )
                    })?;
                    sql.append(expr);
                    sql.push(op).param(Value::Double(Some(v)));
                } else if groups.iter().any(|g| g.name == sqlgen::canonical(&c.field)) {
                    fc.compile(plan, t, f, sql, 0)?;
                } else {
                    return Err(invalid(
                        &plan.name,
                        "having",
                        "unknown_field",
                        format!(
                            "having: '{}' is neither a groupBy field nor an aggregation alias",
                            c.field
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    // ----------------------------------------------------------------- writes

    /// Creates one record; returns it as stored (with computed fields).
    pub async fn create(&self, cx: &OpContext, object: &str, data: Record) -> Result<Record> {
        let snap = self.metadata();
        let plan = snap.plan(object)?.clone();
        self.admit_writes(cx, 1)?;
        let unit = self.begin_write(cx).await?;
        let tx = unit.tx();
        let r = unit.run(self.create_in(tx, cx, &snap, &plan, data)).await;
        unit.finish(r).await
    }

    /// Creates several records atomically: all or none.
    pub async fn create_many(
        &self,
        cx: &OpContext,
        object: &str,
        data: Vec<Record>,
    ) -> Result<Vec<Record>> {
        let snap = self.metadata();
        let plan = snap.plan(object)?.clone();
        limits::check_batch_size(&self.inner.limits.load(), object, data.len())?;
        self.admit_writes(cx, data.len())?;
        let unit = self.begin_write(cx).await?;
        let tx = unit.tx();
        let r = unit
            .run(async {
                let mut out = Vec::with_capacity(data.len());
                for d in data {
                    out.push(self.create_in(tx, cx, &snap, &plan, d).await?);
                }
                Ok(out)
            })
            .await;
        unit.finish(r).await
    }

    /// Updates one record; `if_match` (an ETag from [`DataEngine::version_of`]) guards against lost updates.
    pub async fn update(
        &self,
        cx: &OpContext,
        object: &str,
        id: &str,
        patch: Record,
        if_match: Option<&str>,
    ) -> Result<Record> {
        let snap = self.metadata();
        let plan = snap.plan(object)?.clone();
        check_id(object, id)?;
        self.admit_writes(cx, 1)?;
        let unit = self.begin_write(cx).await?;
        let tx = unit.tx();
        let r = unit
            .run(self.update_in(tx, cx, &snap, &plan, id, patch, if_match))
            .await;
        unit.finish(r).await
    }

    /// Deletes one record, applying `deleteBehavior` to records that reference it.
    pub async fn delete(&self, cx: &OpContext, object: &str, id: &str) -> Result<()> {
        let snap = self.metadata();
        let plan = snap.plan(object)?.clone();
        check_id(object, id)?;
        self.admit_writes(cx, 1)?;
        let unit = self.begin_write(cx).await?;
        let tx = unit.tx();
        let r = unit
            .run(self.delete_in(tx, cx, &snap, &plan, id, 0))
            .await
            .map(|_| ());
        unit.finish(r).await
    }

    /// Runs a batch: atomic (one transaction, all or nothing) unless `continueOnError`, which
    /// gives each item its own transaction and per-item results.
    pub async fn batch(
        &self,
        cx: &OpContext,
        object: &str,
        req: BatchRequest,
    ) -> Result<BatchResult> {
        let snap = self.metadata();
        let plan = snap.plan(object)?.clone();
        let mut items: Vec<BatchItem> = req.records;
        if req.operation == BatchOperation::Delete {
            items.extend(req.ids.into_iter().map(|id| BatchItem {
                id: Some(id),
                ..BatchItem::default()
            }));
        }
        let total = items.len();
        limits::check_batch_size(&self.inner.limits.load(), object, total)?;
        let opts = req.options;
        if !opts.validate_only {
            self.admit_writes(cx, total)?;
        }
        let mut results = Vec::with_capacity(total);
        if opts.atomic && !opts.continue_on_error {
            let unit = self.begin_write(cx).await?;
            let tx = unit.tx();
            let mut failed = false;
            for item in items {
                if failed {
                    results.push(BatchItemResult {
                        id: item.id,
                        success: false,
                        errors: vec![BatchItemError {
                            code: "NOT_APPLIED".into(),
                            message: "Not applied: an earlier item of this atomic batch failed"
                                .into(),
                            fields: Vec::new(),
                        }],
                        data: None,
                    });
                    continue;
                }
                let id = item.id.clone();
                match unit
                    .run(self.batch_item(tx, cx, &snap, &plan, req.operation, item))
                    .await
                {
                    Ok(rec) => results.push(ok_item(id, rec, opts.return_records)),
                    Err(e) => {
                        failed = true;
                        results.push(BatchItemResult {
                            id,
                            success: false,
                            errors: vec![(&e).into()],
                            data: None,
                        });
                    }
                }
            }
            if failed || opts.validate_only {
                unit.discard().await;
                if failed {
                    for r in &mut results {
                        if r.success {
                            r.success = false;
                            r.data = None;
                            r.errors.push(BatchItemError {
                                code: "ROLLED_BACK".into(),
                                message: "Rolled back: another item of this atomic batch failed"
                                    .into(),
                                fields: Vec::new(),
                            });
                        }
                    }
                }
            } else {
                unit.finish(Ok(())).await?;
            }
        } else {
            for item in items {
                let id = item.id.clone();
                let unit = self.begin_write(cx).await?;
                let r = unit
                    .run(self.batch_item(unit.tx(), cx, &snap, &plan, req.operation, item))
                    .await;
                let r = if opts.validate_only {
                    unit.discard().await;
                    r
                } else {
                    unit.finish(r).await
                };
                let stop = r.is_err() && !opts.continue_on_error;
                results.push(match r {
                    Ok(rec) => ok_item(id, rec, opts.return_records),
                    Err(e) => BatchItemResult {
                        id,
                        success: false,
                        errors: vec![(&e).into()],
                        data: None,
                    },
                });
                if stop {
                    break;
                }
            }
        }
        let succeeded = results.iter().filter(|r| r.success).count();
        let failed = total - succeeded;
        Ok(BatchResult {
            success: failed == 0,
            total,
            succeeded,
            failed,
            results,
        })
    }

    /// Updates several records (`records[].id` + `data`), as a batch.
    pub async fn update_many(
        &self,
        cx: &OpContext,
        object: &str,
        mut req: BatchRequest,
    ) -> Result<BatchResult> {
        req.operation = BatchOperation::Update;
        self.batch(cx, object, req).await
    }

    /// Deletes several records (`ids`, or `records[].id`), as a batch.
    pub async fn delete_many(
        &self,
        cx: &OpContext,
        object: &str,
        mut req: BatchRequest,
    ) -> Result<BatchResult> {
        req.operation = BatchOperation::Delete;
        self.batch(cx, object, req).await
    }

    async fn batch_item(
        &self,
        tx: &DatabaseTransaction,
        cx: &OpContext,
        snap: &MetadataSnapshot,
        plan: &ObjectPlan,
        op: BatchOperation,
        item: BatchItem,
    ) -> Result<Record> {
        let need_id = |id: Option<String>| {
            id.ok_or_else(|| DataError::InvalidBody {
                object: plan.name.clone(),
                message: "Each batch item needs an 'id' for this operation".into(),
            })
        };
        match op {
            BatchOperation::Create => self.create_in(tx, cx, snap, plan, item.data).await,
            BatchOperation::Update => {
                self.update_in(tx, cx, snap, plan, &need_id(item.id)?, item.data, None)
                    .await
            }
            BatchOperation::Delete => {
                self.delete_in(tx, cx, snap, plan, &need_id(item.id)?, 0)
                    .await
            }
            BatchOperation::Upsert => {
                let existing = match (&item.id, &item.external_id) {
                    (Some(id), _) => Some(id.clone()),
                    (None, Some(ext)) => {
                        let field = plan.schema.fields.values().find(|f| f.external_id).ok_or_else(|| DataError::InvalidBody {
                            object: plan.name.clone(),
                            message: format!("Object '{}' has no externalId field, so externalId cannot be used", plan.name),
                        })?;
                        let found = self
                            .select(
                                Conn::Tx(tx),
                                cx,
                                snap,
                                plan,
                                &Filter::eq(field.name.clone(), ext.clone()),
                                &[],
                                Some(1),
                                None,
                                None,
                                "filter",
                            )
                            .await?;
                        found
                            .first()
                            .and_then(|r| r.get("id"))
                            .and_then(Json::as_str)
                            .map(str::to_owned)
                    }
                    _ => None,
                };
                let exists = match &existing {
                    Some(id) => !self
                        .select(
                            Conn::Tx(tx),
                            cx,
                            snap,
                            plan,
                            &id_filter(id),
                            &[],
                            Some(1),
                            None,
                            None,
                            "filter",
                        )
                        .await?
                        .is_empty(),
                    None => false,
                };
                match existing {
                    Some(id) if exists => {
                        self.update_in(tx, cx, snap, plan, &id, item.data, None)
                            .await
                    }
                    _ => {
                        let mut data = item.data;
                        if let (Some(ext), Some(f)) = (
                            &item.external_id,
                            plan.schema.fields.values().find(|f| f.external_id),
                        ) {
                            data.entry(f.name.clone())
                                .or_insert(Json::String(ext.clone()));
                        }
                        self.create_in(tx, cx, snap, plan, data).await
                    }
                }
            }
        }
    }

    /// Removes what clients may not write: system fields and computed fields are dropped silently
    /// (clients echo records back); unknown fields and values holding a NUL character are refused.
    fn sanitize(&self, plan: &ObjectPlan, data: Record) -> Result<Record> {
        let mut out = Record::new();
        let mut refused = Vec::new();
        for (k, v) in data {
            if k == "_id" || meta::SYSTEM_FIELD_ORDER.contains(&k.as_str()) {
                continue;
            }
            match plan.field(&k) {
                Some(f)
                    if f.storage().is_none()
                        || f.kind == objectos_spec::object::FieldType::Autonumber => {}
                // Refused here, before the before-hooks, which may already query with the
                // input (the permissions plugin checks lookup ids): NUL would reach SQL there.
                Some(f) if crate::validate::has_nul(&v) => {
                    refused.push(crate::validate::nul_error(
                        &k,
                        &crate::validate::field_label(f),
                    ));
                }
                Some(_) => {
                    out.insert(k, v);
                }
                None => refused.push(FieldError::new(
                    &k,
                    "unknown_field",
                    format!("Field '{k}' does not exist on object '{}'", plan.name),
                )),
            }
        }
        if !refused.is_empty() {
            return Err(DataError::Validation {
                object: plan.name.clone(),
                message: refused[0].message.clone(),
                fields: refused,
            });
        }
        Ok(out)
    }

    /// Converts and checks the values to write; type problems become field errors.
    fn to_values(&self, plan: &ObjectPlan, input: &Record) -> Result<Vec<(String, Value)>> {
        let mut out = Vec::with_capacity(input.len());
        let mut errors = Vec::new();
        for (k, v) in input {
            let Some(c) = plan.column(k) else { continue };
            match to_db(c.storage, self.inner.dialect, v) {
                Ok(val) => out.push((k.clone(), val)),
                Err(reason) => {
                    let label = plan
                        .field(k)
                        .map(|f| f.display_label().to_owned())
                        .unwrap_or_else(|| k.clone());
                    errors.push(
                        FieldError::new(k, "invalid_type", format!("{label}: {reason}"))
                            .with_label(label),
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(DataError::Validation {
                object: plan.name.clone(),
                message: errors[0].message.clone(),
                fields: errors,
            })
        }
    }

    async fn next_autonumber(
        &self,
        tx: &DatabaseTransaction,
        object: &str,
        field: &str,
    ) -> Result<i64> {
        let mut sql = Sql::new(self.inner.dialect);
        sql.push("INSERT INTO \"_objectos_autonumber\" (\"object\", \"field\", \"value\") VALUES (")
            .param(Value::from(object.to_owned()))
            .push(", ")
            .param(Value::from(field.to_owned()))
            .push(", 1) ON CONFLICT (\"object\", \"field\") DO UPDATE SET \"value\" = \"_objectos_autonumber\".\"value\" + 1 RETURNING \"value\"");
        let rows = self.q(Conn::Tx(tx), sql).await?;
        rows.first()
            .and_then(|r| r.try_get_by_index::<i64>(0).ok())
            .ok_or_else(|| {
                DataError::Internal(format!(
                    "autonumber counter for {object}.{field} returned nothing"
                ))
            })
    }

    /// A unique violation of the INSERT/UPDATE itself (a race past the pre-check) becomes the
    /// pre-check's 409, naming the index's fields.
    fn map_dup(&self, plan: &ObjectPlan, e: DataError) -> DataError {
        match e {
            DataError::Duplicate { message, .. } => unique::duplicate_from_db(plan, &message),
            other => other,
        }
    }

    async fn create_in(
        &self,
        tx: &DatabaseTransaction,
        cx: &OpContext,
        snap: &MetadataSnapshot,
        plan: &ObjectPlan,
        data: Record,
    ) -> Result<Record> {
        let mut input = self.sanitize(plan, data)?;
        let hooks = self.hooks(&plan.name, Operation::Create);
        self.run_hooks(
            &hooks,
            true,
            cx,
            &plan.schema,
            Operation::Create,
            Some(tx),
            HookData {
                input: Some(&mut input),
                ..HookData::default()
            },
        )
        .await?;
        checks::coerce(plan, &mut input)?;
        checks::apply_defaults(plan, &mut input);
        checks::validate(plan, WriteKind::Insert, &input, None)?;
        let mut values = self.to_values(plan, &input)?;
        self.check_unique(tx, cx, plan, WriteKind::Insert, &input, &input, None)
            .await?;
        for (field, format) in &plan.autonumbers {
            let n = self.next_autonumber(tx, &plan.name, field).await?;
            values.push((
                field.clone(),
                Value::from(checks::format_autonumber(format.as_deref(), n)),
            ));
        }
        let id = new_id();
        let ts = now();
        let user = cx.principal.user_id().map(str::to_owned);
        let dialect = self.inner.dialect;
        let ts_val = to_db(Storage::DateTime, dialect, &Json::String(format_ts(ts)))
            .map_err(DataError::Internal)?;
        let mut sys: Vec<(String, Value)> = vec![
            ("id".into(), Value::from(id.clone())),
            ("created_at".into(), ts_val.clone()),
            ("updated_at".into(), ts_val),
            ("organization_id".into(), Value::String(cx.tenant.clone())),
            ("created_by".into(), Value::String(user.clone())),
            ("updated_by".into(), Value::String(user.clone())),
            ("owner_id".into(), Value::String(user)),
        ];
        sys.retain(|(k, _)| plan.column(k).is_some());
        sys.extend(values);
        let mut sql = Sql::new(dialect);
        sql.push("INSERT INTO ").ident(&plan.table).push(" (");
        for (i, (k, _)) in sys.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.ident(k);
        }
        sql.push(") VALUES (");
        for (i, (_, v)) in sys.into_iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.param(v);
        }
        sql.push(")").push(&plan.returning);
        let rows = self
            .q(Conn::Tx(tx), sql)
            .await
            .map_err(|e| self.map_dup(plan, e))?;
        let mut rec = self
            .written_record(tx, cx, snap, plan, &id, &rows, true)
            .await?;
        self.run_hooks(
            &hooks,
            false,
            cx,
            &plan.schema,
            Operation::Create,
            Some(tx),
            HookData {
                input: Some(&mut input),
                result: Some(&mut rec),
                ..HookData::default()
            },
        )
        .await?;
        outbox::write(
            tx,
            dialect,
            cx,
            objectos_spec::event::names::RECORD_CREATED,
            &plan.name,
            &id,
            json!({ "record": rec }),
        )
        .await?;
        Ok(rec)
    }

    /// The record an INSERT or UPDATE ... RETURNING handed back, completed like a read: a `fresh`
    /// record (just inserted) has no children yet, so its roll-ups are known without querying;
    /// an updated one gets roll-ups and formulas as a get would.
    #[allow(clippy::too_many_arguments)]
    async fn written_record(
        &self,
        tx: &DatabaseTransaction,
        cx: &OpContext,
        snap: &MetadataSnapshot,
        plan: &ObjectPlan,
        id: &str,
        rows: &[sea_orm::QueryResult],
        fresh: bool,
    ) -> Result<Record> {
        let Some(row) = rows.first() else {
            return Err(DataError::RecordNotFound {
                object: plan.name.clone(),
                id: id.to_owned(),
            });
        };
        let mut rec = row_to_record(plan, row, self.inner.dialect);
        if fresh {
            for s in &plan.summaries {
                let empty = match s.function {
                    SummaryFunction::Count | SummaryFunction::Sum => json!(0),
                    _ => Json::Null,
                };
                rec.insert(s.field.clone(), empty);
            }
            checks::compute_formulas(plan, &mut rec);
        } else {
            self.decorate(
                Conn::Tx(tx),
                cx,
                snap,
                plan,
                std::slice::from_mut(&mut rec),
                &QueryAst::default(),
                1,
            )
            .await?;
        }
        Ok(rec)
    }

    /// Loads the record an update/delete works on (locked on PostgreSQL), honouring the tenant.
    async fn load_previous(
        &self,
        tx: &DatabaseTransaction,
        cx: &OpContext,
        snap: &MetadataSnapshot,
        plan: &ObjectPlan,
        id: &str,
    ) -> Result<Record> {
        let dialect = self.inner.dialect;
        let mut sql = Sql::new(dialect);
        sql.push(&plan.select_all).push(" WHERE ");
        let fc = FilterCompiler {
            snap,
            dialect,
            param: "filter",
        };
        fc.compile(
            plan,
            &plan.table,
            &tenant_filter(cx).and(id_filter(id)),
            &mut sql,
            0,
        )?;
        if dialect == Dialect::Postgres {
            sql.push(" FOR UPDATE");
        }
        let rows = self.q(Conn::Tx(tx), sql).await?;
        let row = rows.first().ok_or_else(|| DataError::RecordNotFound {
            object: plan.name.clone(),
            id: id.to_owned(),
        })?;
        let mut rec = row_to_record(plan, row, dialect);
        self.decorate(
            Conn::Tx(tx),
            cx,
            snap,
            plan,
            std::slice::from_mut(&mut rec),
            &QueryAst::default(),
            1,
        )
        .await?;
        Ok(rec)
    }

    /// After before-hooks narrowed `query`, checks the record still matches it.
    async fn still_visible(
        &self,
        tx: &DatabaseTransaction,
        cx: &OpContext,
        snap: &MetadataSnapshot,
        plan: &ObjectPlan,
        id: &str,
        query: &QueryAst,
    ) -> Result<()> {
        if query.filter == id_filter(id) {
            return Ok(());
        }
        let found = self
            .select(
                Conn::Tx(tx),
                cx,
                snap,
                plan,
                &id_filter(id).and(query.filter.clone()),
                &[],
                Some(1),
                None,
                None,
                "filter",
            )
            .await?;
        if found.is_empty() {
            return Err(DataError::RecordNotFound {
                object: plan.name.clone(),
                id: id.to_owned(),
            });
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn update_in(
        &self,
        tx: &DatabaseTransaction,
        cx: &OpContext,
        snap: &MetadataSnapshot,
        plan: &ObjectPlan,
        id: &str,
        patch: Record,
        if_match: Option<&str>,
    ) -> Result<Record> {
        let previous = self.load_previous(tx, cx, snap, plan, id).await?;
        let current = version_from(&previous).unwrap_or_default();
        if let Some(expected) = if_match {
            let expected = normalize_if_match(expected);
            if expected != "*" && expected != current {
                return Err(DataError::ConcurrentModification {
                    object: plan.name.clone(),
                    id: id.to_owned(),
                    expected,
                    found: current,
                });
            }
        }
        let mut input = self.sanitize(plan, patch)?;
        let hooks = self.hooks(&plan.name, Operation::Update);
        let mut query = QueryAst {
            filter: id_filter(id),
            ..QueryAst::default()
        };
        self.run_hooks(
            &hooks,
            true,
            cx,
            &plan.schema,
            Operation::Update,
            Some(tx),
            HookData {
                query: Some(&mut query),
                input: Some(&mut input),
                previous: Some(&previous),
                ..HookData::default()
            },
        )
        .await?;
        checks::coerce(plan, &mut input)?;
        self.still_visible(tx, cx, snap, plan, id, &query).await?;
        let mut merged = previous.clone();
        for (k, v) in &input {
            merged.insert(k.clone(), v.clone());
        }
        checks::validate(plan, WriteKind::Update, &input, Some(&previous))?;
        let values = self.to_values(plan, &input)?;
        self.check_unique(tx, cx, plan, WriteKind::Update, &merged, &input, Some(id))
            .await?;
        let dialect = self.inner.dialect;
        // The version is updated_at in milliseconds: make sure it moves even within one millisecond.
        let prev_ts = previous
            .get("updated_at")
            .and_then(Json::as_str)
            .and_then(parse_datetime);
        let mut ts = now();
        if let Some(p) = prev_ts
            && ts <= p
        {
            ts = p + chrono::TimeDelta::milliseconds(1);
        }
        let ts_val = to_db(Storage::DateTime, dialect, &Json::String(format_ts(ts)))
            .map_err(DataError::Internal)?;
        let mut sql = Sql::new(dialect);
        sql.push("UPDATE ")
            .ident(&plan.table)
            .push(" SET ")
            .ident("updated_at")
            .push(" = ")
            .param(ts_val);
        sql.push(", ")
            .ident("updated_by")
            .push(" = ")
            .param(Value::String(cx.principal.user_id().map(str::to_owned)));
        for (k, v) in values {
            sql.push(", ").ident(&k).push(" = ").param(v);
        }
        sql.push(" WHERE ")
            .ident("id")
            .push(" = ")
            .param(Value::from(id.to_owned()))
            .push(&plan.returning);
        let rows = self
            .q(Conn::Tx(tx), sql)
            .await
            .map_err(|e| self.map_dup(plan, e))?;
        let mut rec = self
            .written_record(tx, cx, snap, plan, id, &rows, false)
            .await?;
        self.run_hooks(
            &hooks,
            false,
            cx,
            &plan.schema,
            Operation::Update,
            Some(tx),
            HookData {
                input: Some(&mut input),
                previous: Some(&previous),
                result: Some(&mut rec),
                ..HookData::default()
            },
        )
        .await?;
        let mut changes = Record::new();
        for (k, v) in &rec {
            if k != "updated_at" && k != "updated_by" && previous.get(k) != Some(v) {
                changes.insert(k.clone(), v.clone());
            }
        }
        outbox::write(
            tx,
            dialect,
            cx,
            objectos_spec::event::names::RECORD_UPDATED,
            &plan.name,
            id,
            json!({ "record": rec, "previous": previous, "changes": changes }),
        )
        .await?;
        Ok(rec)
    }

    fn delete_in<'a>(
        &'a self,
        tx: &'a DatabaseTransaction,
        cx: &'a OpContext,
        snap: &'a MetadataSnapshot,
        plan: &'a ObjectPlan,
        id: &'a str,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Record>> + Send + 'a>> {
        Box::pin(async move {
            if depth > 16 {
                return Err(DataError::DeleteRestricted {
                    object: plan.name.clone(),
                    message: format!(
                        "Cascade from {} {id} is deeper than 16 levels; delete the children first",
                        plan.name
                    ),
                });
            }
            let previous = self.load_previous(tx, cx, snap, plan, id).await?;
            let hooks = self.hooks(&plan.name, Operation::Delete);
            let mut query = QueryAst {
                filter: id_filter(id),
                ..QueryAst::default()
            };
            self.run_hooks(
                &hooks,
                true,
                cx,
                &plan.schema,
                Operation::Delete,
                Some(tx),
                HookData {
                    query: Some(&mut query),
                    previous: Some(&previous),
                    ..HookData::default()
                },
            )
            .await?;
            self.still_visible(tx, cx, snap, plan, id, &query).await?;
            let dialect = self.inner.dialect;
            // deleteBehavior applies within the parent's organization only: the caller's tenant,
            // or the record's own for work without one. Another organization's records that
            // hold this id are neither counted, nulled nor deleted: they are not the caller's
            // to see or change (and counting them would reveal them).
            let scope: Option<String> = cx.tenant.clone().or_else(|| {
                previous
                    .get("organization_id")
                    .and_then(Json::as_str)
                    .map(str::to_owned)
            });
            // Refuse first, so nothing is half done when a restrict applies.
            for child in plan.children.iter().filter(|c| {
                c.behavior == objectos_spec::object::DeleteBehavior::Restrict && !c.multiple
            }) {
                let mut sql = Sql::new(dialect);
                sql.push("SELECT COUNT(*) FROM ")
                    .ident(&child.table)
                    .push(" WHERE ")
                    .ident(&child.column)
                    .push(" = ")
                    .param(Value::from(id.to_owned()));
                same_tenant(&mut sql, snap.plan(&child.object)?, scope.as_deref());
                self.refuse_if_referenced(tx, plan, id, child, sql).await?;
            }
            self.refuse_multi_refs(tx, snap, plan, id, scope.as_deref())
                .await?;
            for child in plan.children.iter().filter(|c| !c.multiple) {
                match child.behavior {
                    objectos_spec::object::DeleteBehavior::Restrict => {}
                    objectos_spec::object::DeleteBehavior::Cascade => {
                        let mut sql = Sql::new(dialect);
                        sql.push("SELECT ")
                            .ident("id")
                            .push(" FROM ")
                            .ident(&child.table)
                            .push(" WHERE ")
                            .ident(&child.column)
                            .push(" = ")
                            .param(Value::from(id.to_owned()));
                        let cplan = snap.plan(&child.object)?;
                        same_tenant(&mut sql, cplan, scope.as_deref());
                        self.cascade_to(
                            tx,
                            cx,
                            snap,
                            plan,
                            id,
                            scope.as_deref(),
                            child,
                            cplan,
                            sql,
                            depth,
                        )
                        .await?;
                    }
                    objectos_spec::object::DeleteBehavior::SetNull => {
                        let ts = to_db(Storage::DateTime, dialect, &Json::String(format_ts(now())))
                            .map_err(DataError::Internal)?;
                        let mut sql = Sql::new(dialect);
                        sql.push("UPDATE ")
                            .ident(&child.table)
                            .push(" SET ")
                            .ident(&child.column)
                            .push(" = NULL, ")
                            .ident("updated_at")
                            .push(" = ")
                            .param(ts);
                        sql.push(" WHERE ")
                            .ident(&child.column)
                            .push(" = ")
                            .param(Value::from(id.to_owned()));
                        same_tenant(&mut sql, snap.plan(&child.object)?, scope.as_deref());
                        self.x(Conn::Tx(tx), sql).await?;
                    }
                }
            }
            self.apply_multi_refs(tx, cx, snap, plan, id, scope.as_deref(), depth)
                .await?;
            let mut sql = Sql::new(dialect);
            sql.push("DELETE FROM ")
                .ident(&plan.table)
                .push(" WHERE ")
                .ident("id")
                .push(" = ")
                .param(Value::from(id.to_owned()));
            self.x(Conn::Tx(tx), sql).await?;
            self.run_hooks(
                &hooks,
                false,
                cx,
                &plan.schema,
                Operation::Delete,
                Some(tx),
                HookData {
                    previous: Some(&previous),
                    ..HookData::default()
                },
            )
            .await?;
            outbox::write(
                tx,
                dialect,
                cx,
                objectos_spec::event::names::RECORD_DELETED,
                &plan.name,
                id,
                json!({ "previous": previous }),
            )
            .await?;
            Ok(previous)
        })
    }

    /// Counts the records of `object` matching `filter` (within `cx`'s tenant) through `tx`, the
    /// transaction of a write in progress, without running hooks. For interceptors that check
    /// facts inside the write they guard: they see its uncommitted rows, and never wait for a
    /// second connection (an in-memory SQLite database has only one).
    pub async fn count_within(
        &self,
        tx: WriteTx<'_>,
        cx: &OpContext,
        object: &str,
        filter: &Filter,
    ) -> Result<u64> {
        let snap = self.metadata();
        let plan = snap.plan(object)?;
        self.count_in(Conn::Tx(tx.transaction()), cx, &snap, plan, filter)
            .await
    }

    // ----------------------------------------------------------------- outbox

    /// Publishes every pending outbox row to `sink` once, oldest first, marking delivered rows.
    /// Returns how many were delivered; stops at the first failure (the rest stay pending).
    ///
    /// Rows go in batches of up to 256: one read, one `publish_many`, one UPDATE marking the
    /// delivered prefix. A crash between publishing and marking delivers those rows again on the
    /// next pass (at least once; consumers de-duplicate on the event id).
    ///
    /// On PostgreSQL, where several servers may share the database, the read is a claim
    /// (`outbox::claim`): rows another node holds under a live lease are left to it, and so is
    /// every later row of the same record, so in the normal case each row is published by one
    /// node and a record's events in order; rows a failed publish did not deliver are released
    /// for the next pass. On SQLite (one process per file) the read claims nothing.
    pub async fn dispatch_pending(&self, sink: &dyn EventSink) -> Result<usize> {
        let dialect = self.inner.dialect;
        let mut delivered = 0;
        loop {
            let (batch, claim) = match dialect {
                Dialect::Sqlite => (
                    outbox::pending(&self.inner.db, dialect, outbox::BATCH).await?,
                    None,
                ),
                Dialect::Postgres => {
                    let c = outbox::claim(&self.inner.write, outbox::BATCH).await?;
                    (c.rows, Some(c.token))
                }
            };
            if batch.is_empty() {
                return Ok(delivered);
            }
            let full = batch.len() as u64 == outbox::BATCH;
            let traced: Vec<outbox::Published> = if outbox::tracing_published() {
                batch.iter().map(outbox::Published::of).collect()
            } else {
                Vec::new()
            };
            let (ids, events): (Vec<i64>, Vec<_>) =
                batch.into_iter().map(|p| (p.id, p.event)).unzip();
            let (done, failed) = match sink.publish_many(events).await {
                Ok(()) => (ids.len(), false),
                Err((n, e)) => {
                    tracing::warn!(outbox_id = ids.get(n).copied().unwrap_or_default(), error = %e, "Outbox event could not be published; it stays pending and is retried.");
                    (n.min(ids.len()), true)
                }
            };
            outbox::trace_published(traced.get(..done).unwrap_or_default(), claim.as_deref());
            {
                let _g = if dialect == Dialect::Sqlite {
                    Some(self.lock_writer().await)
                } else {
                    None
                };
                outbox::mark_dispatched(&self.inner.write, dialect, &ids[..done]).await?;
            }
            if let Some(token) = &claim
                && done < ids.len()
            {
                outbox::release(&self.inner.write, token, &ids[done..]).await?;
            }
            delivered += done;
            if failed || !full {
                return Ok(delivered);
            }
        }
    }

    /// Deletes delivered rows older than an hour, a chunk at a time, taking the write lock per chunk.
    async fn prune_outbox(&self) -> Result<u64> {
        let dialect = self.inner.dialect;
        let cutoff = outbox::prune_cutoff();
        let mut total = 0;
        loop {
            let n = {
                let _g = if dialect == Dialect::Sqlite {
                    Some(self.lock_writer().await)
                } else {
                    None
                };
                outbox::prune_chunk(&self.inner.write, dialect, &cutoff).await?
            };
            total += n;
            if n < outbox::PRUNE_CHUNK {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Spawns the dispatcher: it delivers leftovers at once, then shortly after commits (several
    /// commits per pass when they come quickly) and on a poll, until stopped.
    pub fn start_dispatcher(&self, sink: Arc<dyn EventSink>) -> DispatcherHandle {
        let stop = Arc::new(tokio::sync::Notify::new());
        let engine = self.clone();
        let stop2 = stop.clone();
        let task = tokio::spawn(async move {
            let mut failures = RepeatedWarning::new("Outbox dispatch pass failed; retrying.");
            let mut last_prune = std::time::Instant::now();
            loop {
                if last_prune.elapsed() > std::time::Duration::from_secs(60) {
                    last_prune = std::time::Instant::now();
                    if let Err(e) = engine.prune_outbox().await {
                        tracing::warn!(error = %e, "Pruning delivered outbox rows failed.");
                    }
                }
                if let Err(e) = engine.dispatch_pending(sink.as_ref()).await {
                    failures.warn(&e.to_string());
                }
                tokio::select! {
                    _ = stop2.notified() => break,
                    _ = engine.inner.outbox_notify.notified() => {
                        tokio::select! {
                            _ = stop2.notified() => break,
                            _ = tokio::time::sleep(outbox::COALESCE) => {}
                        }
                    }
                    _ = tokio::time::sleep(outbox::POLL_INTERVAL) => {}
                }
            }
        });
        DispatcherHandle { stop, task }
    }
}

/// Checkpoints the WAL of a SQLite file every [`db::CHECKPOINT_INTERVAL`] for as long as the
/// engine lives (the connections run with `wal_autocheckpoint=0`; see [`db::checkpoint`]), and
/// keeps the WAL from growing without bound (see [`db::WAL_RESTART_FRAMES`]).
fn spawn_checkpointer(inner: std::sync::Weak<Inner>) {
    tokio::spawn(async move {
        let mut failures = RepeatedWarning::new("WAL checkpoint failed; retrying.");
        let mut tick = tokio::time::interval(db::CHECKPOINT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let engine = DataEngine { inner };
            if engine.inner.storage_full.load(Ordering::Acquire) {
                engine.reclaim_wal(&mut failures).await;
                continue;
            }
            let result = match db::checkpoint(&engine.inner.db).await {
                Ok(frames) if frames >= db::WAL_RESTART_FRAMES => {
                    // The bulk is copied; with the writer held (a group left open is committed
                    // first) nothing new arrives, so this one copies the last few frames and
                    // the next write transaction starts the WAL over.
                    let writer = engine.lock_writer().await;
                    let r = db::checkpoint(&engine.inner.db).await;
                    drop(writer);
                    r
                }
                other => other,
            };
            match result {
                Ok(_) => {}
                // The pool was closed (shutdown, or a test closing it): nothing left to do.
                Err(sea_orm::DbErr::ConnectionAcquire(
                    sea_orm::ConnAcquireErr::ConnectionClosed,
                )) => {
                    return;
                }
                Err(e) => failures.warn(&e.to_string()),
            }
        }
    });
}

/// A warning that repeats while a condition lasts (a full disk fails every checkpoint, five
/// times a second, and every outbox pass): logged the first time, then at most once per
/// [`REPEAT_WARNING`] with the number of repeats in between.
struct RepeatedWarning {
    message: &'static str,
    last: Option<std::time::Instant>,
    suppressed: u64,
}

const REPEAT_WARNING: std::time::Duration = std::time::Duration::from_secs(30);

impl RepeatedWarning {
    fn new(message: &'static str) -> Self {
        Self {
            message,
            last: None,
            suppressed: 0,
        }
    }

    fn warn(&mut self, error: &str) {
        match self.last {
            Some(t) if t.elapsed() < REPEAT_WARNING => self.suppressed += 1,
            _ => {
                tracing::warn!(error, repeats = self.suppressed, "{}", self.message);
                self.last = Some(std::time::Instant::now());
                self.suppressed = 0;
            }
        }
    }
}

impl DataEngine {
    /// After a write failed on a full disk: with the writer held, copies the WAL into the
    /// database and truncates it (`wal_checkpoint(TRUNCATE)`), so the space the WAL took comes
    /// back and writes succeed again as soon as the disk has room, without a restart. Under
    /// steady writes the WAL otherwise only starts over past [`db::WAL_RESTART_FRAMES`], which a
    /// nearly full disk may never hold.
    async fn reclaim_wal(&self, failures: &mut RepeatedWarning) {
        let writer = self.lock_writer().await;
        let r = db::checkpoint_truncate(&self.inner.db).await;
        drop(writer);
        match r {
            Ok(true) => {
                self.inner.storage_full.store(false, Ordering::Release);
                tracing::info!("The WAL was truncated after the disk was full; writes can go on.");
            }
            // Readers still use the WAL: try again on the next tick.
            Ok(false) => {}
            Err(e) => failures.warn(&e.to_string()),
        }
    }
}

fn ok_item(id: Option<String>, rec: Record, return_records: bool) -> BatchItemResult {
    let id = rec
        .get("id")
        .and_then(Json::as_str)
        .map(str::to_owned)
        .or(id);
    BatchItemResult {
        id,
        success: true,
        errors: Vec::new(),
        data: return_records.then_some(rec),
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

/// A search becomes `contains` on the searched fields, ORed.
fn search_filter(plan: &ObjectPlan, s: &SearchQuery) -> Result<Filter> {
    if s.query.trim().is_empty() {
        return Ok(Filter::True);
    }
    // Named as the search text here; the filter compiler would refuse it too, but as a filter.
    if s.query.contains('\0') {
        return Err(invalid(
            &plan.name,
            "search",
            "invalid_character",
            "search: the search text contains a NUL character (\\u0000)".to_owned(),
        ));
    }
    let mut fields: Vec<String> = s.fields.clone();
    if fields.is_empty() {
        fields = plan
            .schema
            .fields
            .values()
            .filter(|f| f.searchable && plan.column(&f.name).is_some())
            .map(|f| f.name.clone())
            .collect();
    }
    if fields.is_empty()
        && let Some(d) = plan.schema.display_name_field()
    {
        fields.push(d.to_owned());
    }
    for f in &fields {
        sqlgen::column(plan, f, "search")?;
    }
    let conds: Vec<Filter> = fields
        .into_iter()
        .map(|f| {
            Filter::Condition(Condition {
                field: f,
                op: Operator::Contains,
                value: FilterValue::Value(Json::String(s.query.clone())),
            })
        })
        .collect();
    Ok(match conds.len() {
        0 => Filter::True,
        1 => conds.into_iter().next().unwrap_or_default(),
        _ => Filter::Or(conds),
    })
}

/// Paging of one `select_page` call.
#[derive(Clone, Copy)]
struct SelectPage<'a> {
    keys: &'a [SortKey],
    limit: Option<u64>,
    offset: Option<u64>,
    keyset: Option<&'a [Json]>,
    /// Also count every record matching the filter (without the keyset).
    total: bool,
}

/// What one hook call exposes besides its context; each part is present only for the operations
/// that have it (a query for reads, input for writes, the previous record for update and delete...).
#[derive(Default)]
struct HookData<'a> {
    query: Option<&'a mut QueryAst>,
    input: Option<&'a mut Record>,
    previous: Option<&'a Record>,
    result: Option<&'a mut Record>,
    records: Option<&'a mut Vec<Record>>,
}
