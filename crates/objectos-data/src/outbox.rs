//! The transactional outbox: `record.*` rows written in the same transaction as the change, and a
//! dispatcher that publishes them after commit (at least once) and marks them dispatched.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use objectos_spec::{Event, EventMetadata, EventPriority};
use sea_orm::{ConnectionTrait, Value};
use serde_json::{Value as Json, json};

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
}

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

/// Records one outbox row for the change being made in `tx`: into the operation's buffer when
/// it runs through [`buffered`], else as an INSERT in `tx` at once.
pub(crate) async fn write<C: ConnectionTrait>(
    tx: &C,
    dialect: Dialect,
    cx: &OpContext,
    event_name: &str,
    object: &str,
    record_id: &str,
    mut payload: Json,
) -> Result<()> {
    if let Json::Object(m) = &mut payload {
        m.insert("object".into(), json!(object));
        m.insert("recordId".into(), json!(record_id));
        m.insert("userId".into(), json!(cx.principal.user_id()));
        m.insert("tenantId".into(), json!(cx.tenant));
    }
    let mut row = Some(Row {
        event_id: new_id(),
        event_name: event_name.to_owned(),
        object: object.to_owned(),
        record_id: record_id.to_owned(),
        payload: payload.to_string(),
        user_id: cx.principal.user_id().map(str::to_owned),
        tenant_id: cx.tenant.clone(),
        created_at: format_ts(now()),
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

/// Rows per INSERT statement (8 bound values each, far below either database's limit).
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
        sql.push("INSERT INTO \"_objectos_outbox\" (\"event_id\", \"event_name\", \"object\", \"record_id\", \"payload\", \"user_id\", \"tenant_id\", \"created_at\") VALUES ");
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

pub(crate) async fn pending<C: ConnectionTrait>(
    conn: &C,
    dialect: Dialect,
    limit: u64,
) -> Result<Vec<Pending>> {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT \"id\", \"event_id\", \"event_name\", \"payload\", \"user_id\", \"tenant_id\", \"created_at\" FROM \"_objectos_outbox\" WHERE \"dispatched_at\" IS NULL ORDER BY \"id\"")
        .limit(limit);
    let rows = db::query(conn, sql).await?;
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
                    correlation_id: None,
                    priority: EventPriority::Normal,
                },
            },
        });
    }
    Ok(out)
}

/// Marks delivered rows with one `UPDATE ... WHERE id IN (...)`.
///
/// The id list is padded to a power of two by repeating the last id, so at most nine statement
/// texts exist (1 to 256 placeholders) and each stays in the prepared-statement cache instead
/// of one text per batch size.
pub(crate) async fn mark_dispatched<C: ConnectionTrait>(
    conn: &C,
    dialect: Dialect,
    ids: &[i64],
) -> Result<()> {
    let Some(&last) = ids.last() else {
        return Ok(());
    };
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE \"_objectos_outbox\" SET \"dispatched_at\" = ")
        .param(Value::from(format_ts(now())))
        .push(" WHERE \"id\" IN (");
    for i in 0..ids.len().next_power_of_two() {
        if i > 0 {
            sql.push(", ");
        }
        sql.param(Value::BigInt(Some(ids.get(i).copied().unwrap_or(last))));
    }
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
/// nodes or left over after a crash are picked up).
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
