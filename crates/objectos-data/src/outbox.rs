//! The transactional outbox: `data.<object>.<verb>` rows written in the same transaction as the
//! change (payloads `objectos_spec::event::data::Record{Created,Updated,Deleted}`), and a
//! dispatcher that publishes them after commit (at least once) and marks them dispatched. On
//! PostgreSQL, which several servers may share, a dispatcher pass claims its rows first (a lease
//! per row, see [`claim`]), so each event is published by one node and a record's events in order.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use objectos_spec::event::data::{self as events, RecordVerb};
use objectos_spec::{Event, EventMetadata, EventPriority};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait, Value};
use serde_json::Value as Json;

use crate::context::OpContext;
use crate::db::{self, Dialect, Sql};
use crate::error::{DataError, Result};
use crate::util::{format_ts, new_id, now};

/// Where dispatched outbox events go (the kernel EventBus in production, a collector in tests).
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Publishes one event; an error leaves the row pending so it is retried.
    async fn publish(&self, event: Event) -> std::result::Result<(), String>;

    /// Publishes a batch in order. `Err((n, reason))` says the first `n` events were published
    /// and the rest were not; those stay pending and are retried. The default publishes one by
    /// one; a sink with a batch API (the kernel bus' `publish_many`) should override it.
    async fn publish_many(&self, events: Vec<Event>) -> std::result::Result<(), (usize, String)> {
        for (n, event) in events.into_iter().enumerate() {
            self.publish(event).await.map_err(|e| (n, e))?;
        }
        Ok(())
    }
}

/// One outbox row to write.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    event_id: String,
    event_name: String,
    object: String,
    record_id: String,
    payload: String,
    user_id: Option<String>,
    tenant_id: Option<String>,
    created_at: String,
    request_id: Option<String>,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    /// The W3C trace context of the span that wrote the row (the data operation's), when
    /// tracing is on, so subscribers continue the request's trace.
    traceparent: Option<String>,
    tracestate: Option<String>,
}

/// The envelope columns added after the first release, on both databases: what the dispatcher
/// puts into the event's metadata besides the actor and tenant (the ids: DDL version 5; the W3C
/// trace context: version 6). Created with the table, or added to an older one by the migration
/// plan; rows written before read as NULL.
pub(crate) const TRACE_COLUMNS: [(&str, &str); 5] = [
    ("request_id", "TEXT"),
    ("correlation_id", "TEXT"),
    ("causation_id", "TEXT"),
    ("traceparent", "TEXT"),
    ("tracestate", "TEXT"),
];

tokio::task_local! {
    /// The outbox rows of the write operation running in this task, when it runs through
    /// [`buffered`]: they are written together just before its transaction commits.
    static BUFFER: RefCell<Vec<Row>>;
}

/// Runs one write operation (`f`) collecting the outbox rows it produces instead of inserting
/// them one statement each; returns its outcome and those rows, in order. The caller writes
/// them with [`insert_rows`] in the same transaction before COMMIT (a failed operation's rows
/// are simply dropped). Under group commit the rows of every member go out in one statement.
pub(crate) async fn buffered<F: Future>(f: F) -> (F::Output, Vec<Row>) {
    BUFFER
        .scope(RefCell::new(Vec::new()), async move {
            let out = f.await;
            let rows = BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()));
            (out, rows)
        })
        .await
}

/// The payload of one record event, typed (`objectos_spec::event::data`).
pub(crate) enum Payload {
    Created(events::RecordCreated),
    Updated(events::RecordUpdated),
    Deleted(events::RecordDeleted),
}

impl Payload {
    fn verb(&self) -> RecordVerb {
        match self {
            Self::Created(_) => RecordVerb::Created,
            Self::Updated(_) => RecordVerb::Updated,
            Self::Deleted(_) => RecordVerb::Deleted,
        }
    }

    fn to_json(&self) -> serde_json::Result<String> {
        match self {
            Self::Created(p) => serde_json::to_string(p),
            Self::Updated(p) => serde_json::to_string(p),
            Self::Deleted(p) => serde_json::to_string(p),
        }
    }
}

/// Records one outbox row for the change being made in `tx`: into the operation's buffer when
/// it runs through [`buffered`], else as an INSERT in `tx` at once. The row carries the
/// context's request, correlation and causation ids for the event's metadata.
pub(crate) async fn write<C: ConnectionTrait>(
    tx: &C,
    dialect: Dialect,
    cx: &OpContext,
    object: &str,
    record_id: &str,
    payload: Payload,
) -> Result<()> {
    let text = payload
        .to_json()
        .map_err(|e| DataError::Internal(format!("cannot encode an outbox payload: {e}")))?;
    // The current span is the data operation's (a child of the request's or of the event
    // handler's span); one atomic load and nothing else while tracing is off.
    let trace = objectos_kernel::trace::current();
    let (traceparent, tracestate) = match trace {
        Some(h) => (Some(h.traceparent), h.tracestate),
        None => (None, None),
    };
    let mut row = Some(Row {
        event_id: new_id(),
        event_name: events::event_name(object, payload.verb()),
        object: object.to_owned(),
        record_id: record_id.to_owned(),
        payload: text,
        user_id: cx.principal.user_id().map(str::to_owned),
        tenant_id: cx.tenant.clone(),
        created_at: format_ts(now()),
        request_id: cx.request_id.clone(),
        correlation_id: cx.correlation_id.clone(),
        causation_id: cx.causation_id.clone(),
        traceparent,
        tracestate,
    });
    // Outside a buffered operation the closure never runs and the row stays here.
    let _ = BUFFER.try_with(|b| {
        if let Some(r) = row.take() {
            b.borrow_mut().push(r);
        }
    });
    match row {
        Some(row) => insert_rows(tx, dialect, vec![row]).await,
        None => Ok(()),
    }
}

/// Rows per INSERT statement (13 bound values each, far below either database's limit).
const INSERT_CHUNK: usize = 128;

/// Inserts outbox rows with multi-row INSERTs, in order.
pub(crate) async fn insert_rows<C: ConnectionTrait>(
    tx: &C,
    dialect: Dialect,
    rows: Vec<Row>,
) -> Result<()> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut sql = Sql::new(dialect);
        sql.push("INSERT INTO \"_objectos_outbox\" (\"event_id\", \"event_name\", \"object\", \"record_id\", \"payload\", \"user_id\", \"tenant_id\", \"created_at\", \"request_id\", \"correlation_id\", \"causation_id\", \"traceparent\", \"tracestate\") VALUES ");
        for (i, r) in rows.by_ref().take(INSERT_CHUNK).enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .param(Value::from(r.event_id))
                .push(", ")
                .param(Value::from(r.event_name))
                .push(", ")
                .param(Value::from(r.object))
                .push(", ")
                .param(Value::from(r.record_id))
                .push(", ")
                .param(Value::from(r.payload))
                .push(", ")
                .param(Value::String(r.user_id))
                .push(", ")
                .param(Value::String(r.tenant_id))
                .push(", ")
                .param(Value::from(r.created_at))
                .push(", ")
                .param(Value::String(r.request_id))
                .push(", ")
                .param(Value::String(r.correlation_id))
                .push(", ")
                .param(Value::String(r.causation_id))
                .push(", ")
                .param(Value::String(r.traceparent))
                .push(", ")
                .param(Value::String(r.tracestate))
                .push(")");
        }
        db::exec(tx, sql).await?;
    }
    Ok(())
}

/// A pending outbox row.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) id: i64,
    pub(crate) event: Event,
}

/// Reads up to `limit` undelivered rows, oldest first, without claiming them: the SQLite path,
/// where one process owns the file and its single dispatcher is the only reader.
pub(crate) async fn pending<C: ConnectionTrait>(
    conn: &C,
    dialect: Dialect,
    limit: u64,
) -> Result<Vec<Pending>> {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT \"id\", \"event_id\", \"event_name\", \"payload\", \"user_id\", \"tenant_id\", \"created_at\", \"request_id\", \"correlation_id\", \"causation_id\", \"traceparent\", \"tracestate\" FROM \"_objectos_outbox\" WHERE \"dispatched_at\" IS NULL ORDER BY \"id\"")
        .limit(limit);
    parse_pending(db::query(conn, sql).await?)
}

/// Turns rows of (id, event_id, event_name, payload, user_id, tenant_id, created_at, request_id,
/// correlation_id, causation_id, traceparent, tracestate) into events.
fn parse_pending(rows: Vec<sea_orm::QueryResult>) -> Result<Vec<Pending>> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let get = |i: usize| r.try_get_by_index::<Option<String>>(i).ok().flatten();
        let id: i64 = r
            .try_get_by_index(0)
            .map_err(|e| DataError::Database(e.to_string()))?;
        let payload = get(3)
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or(Json::Null);
        let timestamp = get(6)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(chrono::Utc::now);
        out.push(Pending {
            id,
            event: Event {
                id: get(1).unwrap_or_default(),
                name: get(2).unwrap_or_default(),
                payload,
                metadata: EventMetadata {
                    source: crate::plugin::PLUGIN_ID.to_owned(),
                    timestamp,
                    user_id: get(4),
                    tenant_id: get(5),
                    request_id: get(7),
                    correlation_id: get(8),
                    causation_id: get(9),
                    traceparent: get(10),
                    tracestate: get(11),
                    priority: EventPriority::Normal,
                },
            },
        });
    }
    Ok(out)
}

// ------------------------------------------------------------------ claims (PostgreSQL)
//
// Several `objectos serve` processes may share one PostgreSQL database, each running a
// dispatcher. A pass therefore first claims its rows: it stamps them with a claim token and a
// lease (`claimed_by`, `claimed_until`), publishes them, and marks them dispatched. Other passes
// skip rows under a live lease, so in the normal case every row is published by one node; rows
// of a node that died come back when its lease runs out (at least once). SQLite keeps the plain
// read above: one process owns the file, so there is nobody to share with and the claim's extra
// write transaction would only compete with the writers for the single write lock.

/// The claim columns, only on PostgreSQL: created with the table, or added to an older table by
/// the migration plan (`schema::plan`). `claimed_until` is a real timestamp, compared with the
/// database's clock only, so nodes whose clocks disagree still agree on when a lease ends.
pub(crate) const CLAIM_COLUMNS: [(&str, &str); 2] =
    [("claimed_by", "TEXT"), ("claimed_until", "TIMESTAMPTZ")];

/// The PostgreSQL index the claim's per-record ordering check probes: the undelivered rows of
/// one record, by id. Partial, so delivered rows (kept for an hour) cost it nothing, and without
/// the claim columns, so stamping a claim stays a HOT update.
pub(crate) const RECORD_INDEX: &str = "ix__objectos_outbox_record";

/// The statement creating [`RECORD_INDEX`] (part of the migration plan on PostgreSQL).
pub(crate) fn record_index_sql() -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS \"{RECORD_INDEX}\" ON \"_objectos_outbox\" (\"object\", \"record_id\", \"id\") WHERE \"dispatched_at\" IS NULL"
    )
}

/// How long a claim holds. A pass publishes at most [`BATCH`] events to the in-process bus and
/// marks them within milliseconds; the lease only matters when a node dies (or stalls) holding
/// rows, which other nodes then take over after this long.
pub(crate) const LEASE: Duration = Duration::from_secs(30);

/// First key of the transaction-scoped advisory lock serialising claims (the second is the
/// schema's hash, so databases holding several ObjectOS schemas do not wait on each other). The
/// two-key form lives apart from the one-key locks of the uniqueness checks.
const CLAIM_LOCK: i32 = 0x6f62_7801;

/// Rows claimed by one pass, in id order, and the token they were claimed under.
#[derive(Debug)]
pub(crate) struct Claim {
    pub(crate) token: String,
    pub(crate) rows: Vec<Pending>,
}

/// Claims up to `limit` undelivered rows for this node (PostgreSQL).
///
/// A row is claimable when no live lease holds it and no earlier undelivered row of the same
/// record (object and record id) is under a live lease: a node never publishes a record's later
/// event while another pass still holds an earlier one. That check reads other claims, so
/// claims are serialised by an advisory lock taken in a statement of its own (the UPDATE's
/// snapshot then includes every claim committed before it); `SKIP LOCKED` passes over rows a
/// concurrent mark is writing instead of waiting for it. The lock is held for one UPDATE.
pub(crate) async fn claim(conn: &DatabaseConnection, limit: u64) -> Result<Claim> {
    let dialect = Dialect::Postgres;
    let token = format!("{}:{}", std::process::id(), new_id());
    let tx = conn.begin().await.map_err(db::map_db_err)?;
    let mut lock = Sql::new(dialect);
    lock.push("SELECT pg_advisory_xact_lock(")
        .param(Value::Int(Some(CLAIM_LOCK)))
        .push(", hashtext(COALESCE(current_schema()::text, '')))");
    db::exec(&tx, lock).await?;
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE \"_objectos_outbox\" SET \"claimed_by\" = ")
        .param(Value::from(token.clone()))
        .push(&format!(
            ", \"claimed_until\" = statement_timestamp() + interval '{} milliseconds'",
            LEASE.as_millis()
        ))
        .push(" WHERE \"id\" IN (SELECT c.\"id\" FROM \"_objectos_outbox\" AS c WHERE c.\"dispatched_at\" IS NULL AND (c.\"claimed_until\" IS NULL OR c.\"claimed_until\" < statement_timestamp()) AND NOT EXISTS (SELECT 1 FROM \"_objectos_outbox\" AS e WHERE e.\"object\" = c.\"object\" AND e.\"record_id\" = c.\"record_id\" AND e.\"id\" < c.\"id\" AND e.\"dispatched_at\" IS NULL AND e.\"claimed_until\" >= statement_timestamp()) ORDER BY c.\"id\"")
        .limit(limit)
        .push(" FOR UPDATE OF c SKIP LOCKED) RETURNING \"id\", \"event_id\", \"event_name\", \"payload\", \"user_id\", \"tenant_id\", \"created_at\", \"request_id\", \"correlation_id\", \"causation_id\", \"traceparent\", \"tracestate\"");
    let rows = db::query(&tx, sql).await?;
    tx.commit().await.map_err(db::map_db_err)?;
    let mut rows = parse_pending(rows)?;
    // RETURNING follows no particular order; publishing does.
    rows.sort_by_key(|p| p.id);
    Ok(Claim { token, rows })
}

/// Gives up the claim on rows that were not published (the sink failed), so the next pass, on
/// any node, takes them at once and in order. Rows whose claim passed to another node after the
/// lease ran out are left to it.
pub(crate) async fn release(conn: &DatabaseConnection, token: &str, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new(Dialect::Postgres);
    sql.push("UPDATE \"_objectos_outbox\" SET \"claimed_by\" = NULL, \"claimed_until\" = NULL WHERE \"claimed_by\" = ")
        .param(Value::from(token.to_owned()))
        .push(" AND \"id\" IN (");
    push_ids(&mut sql, ids);
    sql.push(")");
    db::exec(conn, sql).await?;
    Ok(())
}

/// Appends `ids` as placeholders, padded to a power of two by repeating the last id, so at most
/// nine statement texts exist (1 to 256 placeholders) and each stays in the prepared-statement
/// cache instead of one text per batch size.
fn push_ids(sql: &mut Sql, ids: &[i64]) {
    let last = ids.last().copied().unwrap_or_default();
    for i in 0..ids.len().next_power_of_two() {
        if i > 0 {
            sql.push(", ");
        }
        sql.param(Value::BigInt(Some(ids.get(i).copied().unwrap_or(last))));
    }
}

/// The tracing target of [`trace_published`]: `RUST_LOG=objectos_data::outbox=trace` (or the
/// same in `OBJECTOS_LOG`) logs every event a node published, with its claim.
pub(crate) const TRACE_TARGET: &str = "objectos_data::outbox";

/// True when published events are to be logged one by one (see [`TRACE_TARGET`]); checked
/// before collecting what the log lines need, so a pass with tracing off copies nothing.
pub(crate) fn tracing_published() -> bool {
    tracing::enabled!(target: TRACE_TARGET, tracing::Level::TRACE)
}

/// What one published event's log line says.
#[derive(Debug)]
pub(crate) struct Published {
    outbox_id: i64,
    event_id: String,
    name: String,
    object: String,
    record_id: String,
}

impl Published {
    pub(crate) fn of(p: &Pending) -> Self {
        let field = |k: &str| {
            p.event
                .payload
                .get(k)
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            outbox_id: p.id,
            event_id: p.event.id.clone(),
            name: p.event.name.clone(),
            object: field("object"),
            record_id: field("recordId"),
        }
    }
}

/// Logs the events a pass published (the ones handed to the sink without error), at TRACE.
pub(crate) fn trace_published(published: &[Published], claim: Option<&str>) {
    for p in published {
        tracing::trace!(
            target: TRACE_TARGET,
            outbox_id = p.outbox_id,
            event_id = %p.event_id,
            event = %p.name,
            object = %p.object,
            record_id = %p.record_id,
            claim = claim.unwrap_or("-"),
            "Outbox event published."
        );
    }
}

/// Marks delivered rows with one `UPDATE ... WHERE id IN (...)` (the same statement on both
/// databases: a row published under an expired lease that another node took over meanwhile is
/// marked all the same; both published it, which at-least-once allows).
pub(crate) async fn mark_dispatched<C: ConnectionTrait>(
    conn: &C,
    dialect: Dialect,
    ids: &[i64],
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE \"_objectos_outbox\" SET \"dispatched_at\" = ")
        .param(Value::from(format_ts(now())))
        .push(" WHERE \"id\" IN (");
    push_ids(&mut sql, ids);
    sql.push(")");
    db::exec(conn, sql).await?;
    Ok(())
}

/// Handle of a running dispatcher task; dropping it does not stop the task, [`DispatcherHandle::stop`] does.
#[derive(Debug)]
pub struct DispatcherHandle {
    pub(crate) stop: Arc<tokio::sync::Notify>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl DispatcherHandle {
    /// Stops the dispatcher after its current pass.
    pub async fn stop(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

/// How long the dispatcher sleeps when nothing wakes it (it also polls, so rows written by other
/// nodes, left over after a crash, or held back behind another node's claim are picked up).
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How long the dispatcher waits after a commit woke it, so that the commits arriving meanwhile
/// are delivered and marked in the same pass (one read, one `publish_many`, one UPDATE) instead of
/// one write transaction per commit competing with the writers for SQLite's single write lock.
pub(crate) const COALESCE: Duration = Duration::from_millis(10);

/// Rows read, published and marked per dispatcher step.
pub(crate) const BATCH: u64 = 256;

/// Delivered rows deleted per prune statement; the write lock is released between chunks so a
/// large backlog never stalls writers for long.
pub(crate) const PRUNE_CHUNK: u64 = 1000;

/// How long delivered rows are kept (for inspection) before the dispatcher deletes them.
pub(crate) const KEEP_DISPATCHED: Duration = Duration::from_secs(3600);

/// The `dispatched_at` before which delivered rows are pruned.
pub(crate) fn prune_cutoff() -> String {
    let keep = chrono::TimeDelta::from_std(KEEP_DISPATCHED).unwrap_or(chrono::TimeDelta::hours(1));
    format_ts(now() - keep)
}

/// Deletes up to [`PRUNE_CHUNK`] rows delivered before `cutoff`; returns how many.
pub(crate) async fn prune_chunk<C: ConnectionTrait>(
    conn: &C,
    dialect: Dialect,
    cutoff: &str,
) -> Result<u64> {
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM \"_objectos_outbox\" WHERE \"id\" IN (SELECT \"id\" FROM \"_objectos_outbox\" WHERE \"dispatched_at\" IS NOT NULL AND \"dispatched_at\" < ")
        .param(Value::from(cutoff.to_owned()));
    sql.limit(PRUNE_CHUNK);
    sql.push(")");
    db::exec(conn, sql).await
}
