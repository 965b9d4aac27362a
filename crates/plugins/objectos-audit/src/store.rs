//! Storage: the audit tables (declared as a [`PluginSchema`] the data plugin creates and
//! migrates), chained appends, filtered queries, chain verification, retention pruning and field
//! history, all through the data crate's statement API ([`Store`]).
//!
//! Serialisation of chain appends: every append first upserts the tenant's row in
//! `_objectos_audit_head` (a write, so on SQLite it takes the single write lock before anything is
//! read) and then reads it back, `FOR UPDATE` on PostgreSQL (a row lock held until the enclosing
//! transaction ends). Two transactions appending to one tenant's chain therefore run one after
//! the other and never fork the chain; different tenants do not wait for each other on PostgreSQL.
//! The data interceptor skips the read while its [`HeadCache`] is current: it advances the head
//! with a conditional UPDATE (`WHERE last_seq = <cached> AND last_hash = <cached>`, which waits
//! for and re-checks a concurrent writer's row like the upsert does) and inserts the event only
//! if that UPDATE hit; a miss falls back to the path above.

use objectos_data::store::{Row, Sql, SqlValue, Store};
use objectos_data::{ColumnType, DataEngine, Dialect, PluginSchema, TableDef};
use serde::Serialize;
use serde_json::Value as Json;

use crate::error::{AuditError, Result};
use crate::event::{Actor, AuditEvent, Change, GENESIS_HASH};

/// The chained audit table.
pub const EVENTS_TABLE: &str = "_objectos_audit_event";
/// Per-tenant chain head and retention anchor.
pub const HEAD_TABLE: &str = "_objectos_audit_head";
/// Field history of objects with `enable.trackHistory`.
pub const HISTORY_TABLE: &str = "_objectos_field_history";

const EVENT_COLUMNS: &str = "id, tenant_id, seq, event_type, severity, occurred_at, actor_type, actor_id, actor_reason, ip, user_agent, object, record_id, operation, changes, result, request_id, description, details, prev_hash, hash";

/// The audit tables, contributed at `init`; the data plugin creates them (and adds what a later
/// version declares) before any plugin starts. Names and types are those of the DDL the plugin
/// ran itself before, so databases it created need no change.
pub fn schema() -> PluginSchema {
    use ColumnType::{BigInt, Text};
    let events = TableDef::new(EVENTS_TABLE)
        .required("id", Text)
        .required("tenant_id", Text)
        .required("seq", BigInt)
        .required("event_type", Text)
        .required("severity", Text)
        .required("occurred_at", Text)
        .required("actor_type", Text)
        .column("actor_id", Text)
        .column("actor_reason", Text)
        .column("ip", Text)
        .column("user_agent", Text)
        .column("object", Text)
        .column("record_id", Text)
        .column("operation", Text)
        .required("changes", Text)
        .required("result", Text)
        .column("request_id", Text)
        .column("description", Text)
        .required("details", Text)
        .required("prev_hash", Text)
        .required("hash", Text)
        .primary_key(&["id"])
        .unique(&["tenant_id", "seq"])
        // Every audited write pays for each index here, inside the write's transaction, so the
        // set is kept to what the reads need: the primary key (UUIDv7 ids, so it is also the
        // time index: `from`/`to` become id bounds), the chain (tenant, seq), the actor's and
        // the record's trails. Event types are few and filtered on the id-ordered scan.
        .index("ix_audit_actor", &["actor_id", "id"])
        .index("ix_audit_target", &["object", "record_id", "id"])
        // Indexes of earlier versions that the id order replaced.
        .retired_index("ix_audit_event_type")
        .retired_index("ix_audit_time")
        .retired_index("ix_audit_tenant_time");
    let head = TableDef::new(HEAD_TABLE)
        .required("tenant_id", Text)
        .required("last_seq", BigInt)
        .required("last_hash", Text)
        .required("anchor_seq", BigInt)
        .required("anchor_hash", Text)
        .column("pruned_at", Text)
        .primary_key(&["tenant_id"]);
    let history = TableDef::new(HISTORY_TABLE)
        .required("id", Text)
        .required("tenant_id", Text)
        .required("object", Text)
        .required("record_id", Text)
        .required("field", Text)
        .column("old_value", Text)
        .column("new_value", Text)
        .required("actor_type", Text)
        .column("actor_id", Text)
        .required("changed_at", Text)
        .required("event_id", Text)
        .primary_key(&["id"])
        .index(
            "ix_field_history_record",
            &["object", "record_id", "changed_at"],
        )
        .index("ix_field_history_time", &["changed_at"]);
    PluginSchema::new().table(events).table(head).table(history)
}

/// A statement starting with the fixed SQL `text`.
fn sql(dialect: Dialect, text: &str) -> Sql {
    let mut q = Sql::new(dialect);
    q.push(text);
    q
}

/// Runs `q`; an error names `what` the statement was for.
async fn exec<S: Store + ?Sized>(db: &S, q: Sql, what: &str) -> Result<u64> {
    db.execute(q).await.map_err(|e| AuditError::db(what, e))
}

/// Runs the query `q`; an error names `what` it was for.
async fn fetch<S: Store + ?Sized>(db: &S, q: Sql, what: &str) -> Result<Vec<Row>> {
    db.fetch_all(q).await.map_err(|e| AuditError::db(what, e))
}

/// Appends `ev` to its tenant's chain through `db` (a transaction: the caller commits).
/// Fills `seq`, `prev_hash` and `hash` and returns the stored event.
pub async fn append<S: Store + ?Sized>(db: &S, mut ev: AuditEvent) -> Result<AuditEvent> {
    let tenant = ev.tenant_id.clone().unwrap_or_default();
    // One statement creates the head on first use, locks it (the no-op DO UPDATE takes the row
    // lock on PostgreSQL, as FOR UPDATE would; on SQLite the write transaction already holds
    // the database's write lock) and returns it: a round trip fewer than insert + select.
    let mut q = sql(
        db.dialect(),
        &format!(
            "INSERT INTO {HEAD_TABLE} (tenant_id, last_seq, last_hash, anchor_seq, anchor_hash) VALUES ("
        ),
    );
    q.bind(tenant.clone())
        .push(", 0, ")
        .bind(GENESIS_HASH)
        .push(", 0, ")
        .bind(GENESIS_HASH)
        .push(&format!(
            ") ON CONFLICT (tenant_id) DO UPDATE SET last_seq = {HEAD_TABLE}.last_seq RETURNING last_seq, last_hash"
        ));
    let rows = fetch(db, q, "lock chain head").await?;
    let row = rows.first().ok_or_else(|| {
        AuditError::db(
            "lock chain head",
            format!("no head row for tenant `{tenant}`"),
        )
    })?;
    let last_seq: i64 = get_i64(row, 0, &tenant, "last_seq")?;
    let last_hash: String = get_str(row, 1, &tenant, "last_hash")?;
    ev.seq = last_seq + 1;
    ev.prev_hash = last_hash;
    ev.hash = ev.compute_hash();
    insert_event(db, &ev, &tenant).await?;
    let mut q = sql(
        db.dialect(),
        &format!("UPDATE {HEAD_TABLE} SET last_seq = "),
    );
    q.bind(ev.seq)
        .push(", last_hash = ")
        .bind(ev.hash.clone())
        .push(" WHERE tenant_id = ")
        .bind(tenant);
    exec(db, q, "advance chain head").await?;
    Ok(ev)
}

/// Appends in a write transaction of its own on the engine's writer
/// ([`DataEngine::begin_own_transaction`]), for events that have no data transaction (bus
/// events): it queues with the engine's writes instead of racing them for SQLite's file lock,
/// and a full disk leaves the connection reopened instead of out of step with its transaction.
pub async fn append_own(engine: &DataEngine, ev: AuditEvent) -> Result<AuditEvent> {
    let _timer = AppendTimer::start("own");
    let tx = engine
        .begin_own_transaction()
        .await
        .map_err(|e| AuditError::db("begin audit transaction", e))?;
    let ev = append(&tx, ev).await?;
    tx.commit()
        .await
        .map_err(|e| AuditError::db("commit audit transaction", e))?;
    Ok(ev)
}

/// The values of `EVENT_COLUMNS` for `ev`, in order.
fn event_values(ev: &AuditEvent, tenant: &str) -> Vec<SqlValue> {
    let changes = serde_json::to_string(&ev.changes).unwrap_or_else(|_| "[]".into());
    let details = serde_json::to_string(&ev.details).unwrap_or_else(|_| "null".into());
    vec![
        ev.id.clone().into(),
        tenant.into(),
        ev.seq.into(),
        ev.event_type.clone().into(),
        ev.severity.clone().into(),
        ev.timestamp.clone().into(),
        ev.actor.kind.clone().into(),
        (&ev.actor.id).into(),
        (&ev.actor.reason).into(),
        (&ev.actor.ip_address).into(),
        (&ev.actor.user_agent).into(),
        (&ev.object).into(),
        (&ev.record_id).into(),
        (&ev.operation).into(),
        changes.into(),
        ev.result.clone().into(),
        (&ev.request_id).into(),
        (&ev.description).into(),
        details.into(),
        ev.prev_hash.clone().into(),
        ev.hash.clone().into(),
    ]
}

async fn insert_event<S: Store + ?Sized>(db: &S, ev: &AuditEvent, tenant: &str) -> Result<()> {
    let mut q = sql(
        db.dialect(),
        &format!("INSERT INTO {EVENTS_TABLE} ({EVENT_COLUMNS}) VALUES ("),
    );
    q.bind_list(event_values(ev, tenant)).push(")");
    exec(db, q, "insert audit event").await?;
    Ok(())
}

/// The chain head (`last_seq`, `last_hash`) this process last wrote per tenant.
///
/// With it an append is one statement: advance the head only if it still is what the cache says
/// (a conditional UPDATE) and insert the event only if that UPDATE hit its row. Anything that
/// moved the head meanwhile (another process or node, a bus event appended in its own
/// transaction, a rolled-back write whose head the cache already took) makes the UPDATE miss;
/// nothing is written and the append takes the locking path, which reads the real head. The
/// cache is only ever a guess that the database confirms.
#[derive(Debug, Default)]
pub struct HeadCache {
    heads: std::sync::Mutex<std::collections::HashMap<String, (i64, String)>>,
    hits: std::sync::atomic::AtomicU64,
}

/// Tenants remembered at most; past it the cache starts over (a miss only costs the slow path).
const HEAD_CACHE_TENANTS: usize = 10_000;

impl HeadCache {
    /// Appends that took the one-statement path (tests and metrics).
    pub fn hits(&self) -> u64 {
        self.hits.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn get(&self, tenant: &str) -> Option<(i64, String)> {
        self.heads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .cloned()
    }

    fn put(&self, tenant: String, seq: i64, hash: String) {
        let mut heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        if heads.len() >= HEAD_CACHE_TENANTS && !heads.contains_key(&tenant) {
            heads.clear();
        }
        heads.insert(tenant, (seq, hash));
    }
}

/// Records `objectos_audit_append_duration_seconds{path}` when dropped, however the append
/// ends: `write` for a row appended in a data write's transaction, `own` for one in a
/// transaction of its own (bus events).
struct AppendTimer {
    path: &'static str,
    started: std::time::Instant,
}

impl AppendTimer {
    fn start(path: &'static str) -> Self {
        Self {
            path,
            started: std::time::Instant::now(),
        }
    }
}

impl Drop for AppendTimer {
    fn drop(&mut self) {
        metrics::histogram!("objectos_audit_append_duration_seconds", "path" => self.path)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// [`append`] through `cache`: one statement when the cached head is current, else the locking
/// path (which refreshes the cache).
pub async fn append_cached<S: Store + ?Sized>(
    db: &S,
    mut ev: AuditEvent,
    cache: &HeadCache,
) -> Result<AuditEvent> {
    let _timer = AppendTimer::start("write");
    let dialect = db.dialect();
    let tenant = ev.tenant_id.clone().unwrap_or_default();
    if let Some((seq, hash)) = cache.get(&tenant) {
        ev.seq = seq + 1;
        ev.prev_hash = hash.clone();
        ev.hash = ev.compute_hash();
        let mut q = match dialect {
            // Two statements in one round trip: the INSERT runs only if the UPDATE changed a row
            // (`changes()` is the row count of the statement just before it).
            Dialect::Sqlite => sql(dialect, &format!("UPDATE {HEAD_TABLE} SET last_seq = ")),
            // One statement: the INSERT selects from the UPDATE's result.
            Dialect::Postgres => sql(
                dialect,
                &format!("WITH h AS (UPDATE {HEAD_TABLE} SET last_seq = "),
            ),
        };
        q.bind(ev.seq)
            .push(", last_hash = ")
            .bind(ev.hash.clone())
            .push(" WHERE tenant_id = ")
            .bind(tenant.clone())
            .push(" AND last_seq = ")
            .bind(seq)
            .push(" AND last_hash = ")
            .bind(hash);
        match dialect {
            Dialect::Sqlite => q.push(&format!(
                "; INSERT INTO {EVENTS_TABLE} ({EVENT_COLUMNS}) SELECT "
            )),
            Dialect::Postgres => q.push(&format!(
                " RETURNING 1) INSERT INTO {EVENTS_TABLE} ({EVENT_COLUMNS}) SELECT "
            )),
        };
        q.bind_list(event_values(&ev, &tenant));
        let written = match dialect {
            Dialect::Sqlite => 2,
            Dialect::Postgres => 1,
        };
        match dialect {
            Dialect::Sqlite => q.push(" WHERE changes() = 1"),
            Dialect::Postgres => q.push(" WHERE EXISTS (SELECT 1 FROM h)"),
        };
        if exec(db, q, "append audit event").await? == written {
            cache
                .hits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            cache.put(tenant, ev.seq, ev.hash.clone());
            return Ok(ev);
        }
    }
    let ev = append(db, ev).await?;
    cache.put(tenant, ev.seq, ev.hash.clone());
    Ok(ev)
}

/// A column that must be there, as `T`; the error names the row (`id`) and the column.
fn get<T: objectos_data::store::FromColumn>(r: &Row, i: usize, id: &str, col: &str) -> Result<T> {
    r.get::<T>(i).map_err(|e| AuditError::Corrupt {
        id: id.to_owned(),
        column: col.to_owned(),
        message: e.to_string(),
    })
}

fn get_i64(r: &Row, i: usize, id: &str, col: &str) -> Result<i64> {
    get(r, i, id, col)
}

fn get_str(r: &Row, i: usize, id: &str, col: &str) -> Result<String> {
    get(r, i, id, col)
}

fn get_opt(r: &Row, i: usize) -> Option<String> {
    r.get::<Option<String>>(i).ok().flatten()
}

/// Reads a row selected with `EVENT_COLUMNS` back into an event.
fn row_to_event(r: &Row) -> Result<AuditEvent> {
    let id = get_str(r, 0, "?", "id")?;
    let json = |i: usize, col: &str| -> Result<Json> {
        let text = get_str(r, i, &id, col)?;
        serde_json::from_str(&text).map_err(|e| AuditError::Corrupt {
            id: id.clone(),
            column: col.to_owned(),
            message: e.to_string(),
        })
    };
    let changes: Vec<Change> =
        serde_json::from_value(json(14, "changes")?).map_err(|e| AuditError::Corrupt {
            id: id.clone(),
            column: "changes".into(),
            message: e.to_string(),
        })?;
    let tenant = get_str(r, 1, &id, "tenant_id")?;
    Ok(AuditEvent {
        tenant_id: (!tenant.is_empty()).then_some(tenant),
        seq: get_i64(r, 2, &id, "seq")?,
        event_type: get_str(r, 3, &id, "event_type")?,
        severity: get_str(r, 4, &id, "severity")?,
        timestamp: get_str(r, 5, &id, "occurred_at")?,
        actor: Actor {
            kind: get_str(r, 6, &id, "actor_type")?,
            id: get_opt(r, 7),
            reason: get_opt(r, 8),
            ip_address: get_opt(r, 9),
            user_agent: get_opt(r, 10),
        },
        object: get_opt(r, 11),
        record_id: get_opt(r, 12),
        operation: get_opt(r, 13),
        changes,
        result: get_str(r, 15, &id, "result")?,
        request_id: get_opt(r, 16),
        description: get_opt(r, 17),
        details: json(18, "details")?,
        prev_hash: get_str(r, 19, &id, "prev_hash")?,
        hash: get_str(r, 20, &id, "hash")?,
        id,
    })
}

/// Filters of `/api/v1/audit/events`, the trail and the export.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub event_type: Option<String>,
    pub actor: Option<String>,
    pub object: Option<String>,
    pub record_id: Option<String>,
    /// Inclusive lower bound (RFC 3339, normalised to UTC millis).
    pub from: Option<String>,
    /// Exclusive upper bound.
    pub to: Option<String>,
    /// `Some("")` selects events without a tenant.
    pub tenant: Option<String>,
    pub limit: u64,
    pub offset: u64,
    /// Id of the last event of the previous page (newest first): the page continues below it.
    pub cursor: Option<String>,
}

/// A page of events, newest first.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    pub events: Vec<AuditEvent>,
    pub total: u64,
    pub has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn push_filters(q: &mut Sql, f: &EventFilter, with_cursor: bool) {
    q.push(" WHERE 1 = 1");
    if let Some(v) = &f.event_type {
        // A trailing `*` selects a family (`auth.*`).
        if let Some(prefix) = v.strip_suffix('*') {
            q.push(" AND event_type LIKE ").bind(format!("{prefix}%"));
        } else {
            q.push(" AND event_type = ").bind(v.clone());
        }
    }
    if let Some(v) = &f.actor {
        q.push(" AND actor_id = ").bind(v.clone());
    }
    if let Some(v) = &f.object {
        q.push(" AND object = ").bind(v.clone());
    }
    if let Some(v) = &f.record_id {
        q.push(" AND record_id = ").bind(v.clone());
    }
    // The exact bound is on `occurred_at`; the id bound (a little wider) lets the primary key
    // narrow the scan.
    if let Some(v) = &f.from {
        if let Some(id) = id_bound(v, -ID_BOUND_SLACK_MS) {
            q.push(" AND id >= ").bind(id);
        }
        q.push(" AND occurred_at >= ").bind(v.clone());
    }
    if let Some(v) = &f.to {
        if let Some(id) = id_bound(v, ID_BOUND_SLACK_MS) {
            q.push(" AND id < ").bind(id);
        }
        q.push(" AND occurred_at < ").bind(v.clone());
    }
    if let Some(v) = &f.tenant {
        q.push(" AND tenant_id = ").bind(v.clone());
    }
    // An empty cursor asks for the first page of cursor paging.
    if with_cursor && let Some(c) = f.cursor.as_ref().filter(|c| !c.is_empty()) {
        q.push(" AND id < ").bind(c.clone());
    }
}

/// How far an event's id time may stray from its `occurred_at`: both are read from the clock
/// when the event is made, but UUIDv7 generation may run ahead of the clock under bursts.
const ID_BOUND_SLACK_MS: i64 = 1_000;

/// The smallest UUIDv7 text of the millisecond `time + shift_ms`: every id made at or after it
/// sorts at or above it (ids are lower-case hex, the first 48 bits the Unix time in ms).
/// `None` when `time` is not RFC 3339 or lies before 1970: the caller then filters on time alone.
fn id_bound(time: &str, shift_ms: i64) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(time).ok()?;
    let ms = u64::try_from(t.timestamp_millis().checked_add(shift_ms)?).ok()?;
    Some(format!("{:08x}-{:04x}", ms >> 16, ms & 0xffff))
}

/// Events matching `f`, newest first (by id, which is time ordered).
pub async fn query_events<S: Store + ?Sized>(db: &S, f: &EventFilter) -> Result<EventPage> {
    let dialect = db.dialect();
    let mut count = sql(dialect, &format!("SELECT COUNT(*) FROM {EVENTS_TABLE}"));
    push_filters(&mut count, f, false);
    let total = fetch(db, count, "count audit events")
        .await?
        .first()
        .map(|r| get_i64(r, 0, "count", "count"))
        .transpose()?
        .unwrap_or(0);
    let mut q = sql(
        dialect,
        &format!("SELECT {EVENT_COLUMNS} FROM {EVENTS_TABLE}"),
    );
    push_filters(&mut q, f, true);
    // One extra row tells whether another page follows.
    q.push(" ORDER BY id DESC LIMIT ")
        .bind((f.limit + 1) as i64);
    if f.cursor.is_none() && f.offset > 0 {
        q.push(" OFFSET ").bind(f.offset as i64);
    }
    let rows = fetch(db, q, "query audit events").await?;
    let mut events = rows.iter().map(row_to_event).collect::<Result<Vec<_>>>()?;
    let has_more = events.len() as u64 > f.limit;
    events.truncate(f.limit as usize);
    let next_cursor = if f.cursor.is_some() && has_more {
        events.last().map(|e| e.id.clone())
    } else {
        None
    };
    Ok(EventPage {
        events,
        total: total.max(0) as u64,
        has_more,
        next_cursor,
    })
}

/// Where verification found the chain broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokenLink {
    /// `""` for events without a tenant.
    pub tenant: String,
    /// The chain position at fault.
    pub seq: i64,
    /// The row's id, when the row exists.
    pub event_id: Option<String>,
    pub reason: String,
}

/// The result of `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub tenants: usize,
    pub events: u64,
    /// The first broken link per tenant (empty when every chain verifies).
    pub broken: Vec<BrokenLink>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.broken.is_empty()
    }
}

/// Walks every tenant's chain (or only `tenant`) from its retention anchor and reports the first
/// broken link of each: a gap in `seq`, a `prev_hash` that is not the previous row's hash, a hash
/// that does not match the row's content, or a head that does not match the last row.
pub async fn verify<S: Store + ?Sized>(db: &S, tenant: Option<&str>) -> Result<VerifyReport> {
    let dialect = db.dialect();
    let mut q = sql(
        dialect,
        &format!(
            "SELECT tenant_id, last_seq, last_hash, anchor_seq, anchor_hash FROM {HEAD_TABLE}"
        ),
    );
    if let Some(t) = tenant {
        q.push(" WHERE tenant_id = ").bind(t.to_owned());
    }
    q.push(" ORDER BY tenant_id");
    let heads = fetch(db, q, "read chain heads").await?;
    let mut report = VerifyReport {
        tenants: heads.len(),
        events: 0,
        broken: Vec::new(),
    };
    // Rows of a tenant without a head were inserted behind the chain's back.
    let mut q = sql(
        dialect,
        &format!(
            "SELECT e.tenant_id, MIN(e.seq) FROM {EVENTS_TABLE} e LEFT JOIN {HEAD_TABLE} h ON h.tenant_id = e.tenant_id WHERE h.tenant_id IS NULL"
        ),
    );
    if let Some(t) = tenant {
        q.push(" AND e.tenant_id = ").bind(t.to_owned());
    }
    q.push(" GROUP BY e.tenant_id");
    for r in fetch(db, q, "find headless events").await? {
        report.broken.push(BrokenLink {
            tenant: get_str(&r, 0, "head", "tenant_id")?,
            seq: get_i64(&r, 1, "head", "seq")?,
            event_id: None,
            reason: "events exist for a tenant that has no chain head".into(),
        });
    }
    for h in heads {
        let t = get_str(&h, 0, "head", "tenant_id")?;
        let last_seq = get_i64(&h, 1, &t, "last_seq")?;
        let last_hash = get_str(&h, 2, &t, "last_hash")?;
        let mut expected_seq = get_i64(&h, 3, &t, "anchor_seq")? + 1;
        let mut expected_prev = get_str(&h, 4, &t, "anchor_hash")?;
        let mut broken = None;
        loop {
            let mut q = sql(
                dialect,
                &format!("SELECT {EVENT_COLUMNS} FROM {EVENTS_TABLE} WHERE tenant_id = "),
            );
            q.bind(t.clone())
                .push(" AND seq >= ")
                .bind(expected_seq)
                .push(" ORDER BY seq LIMIT 500");
            let rows = fetch(db, q, "read chain").await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let ev = match row_to_event(r) {
                    Ok(ev) => ev,
                    Err(e) => {
                        broken = Some(BrokenLink {
                            tenant: t.clone(),
                            seq: expected_seq,
                            event_id: get_opt(r, 0),
                            reason: e.to_string(),
                        });
                        break;
                    }
                };
                report.events += 1;
                let reason = if ev.seq != expected_seq {
                    Some(format!(
                        "expected seq {expected_seq}, found {} (rows missing)",
                        ev.seq
                    ))
                } else if ev.prev_hash != expected_prev {
                    Some(format!(
                        "prev_hash {} does not match the previous row's hash {expected_prev}",
                        ev.prev_hash
                    ))
                } else if ev.compute_hash() != ev.hash {
                    Some("hash does not match the row's content (row modified)".to_owned())
                } else {
                    None
                };
                if let Some(reason) = reason {
                    broken = Some(BrokenLink {
                        tenant: t.clone(),
                        seq: expected_seq,
                        event_id: Some(ev.id.clone()),
                        reason,
                    });
                    break;
                }
                expected_seq += 1;
                expected_prev = ev.hash;
            }
            if broken.is_some() || rows.len() < 500 {
                break;
            }
        }
        if broken.is_none() && (expected_seq - 1 != last_seq || expected_prev != last_hash) {
            broken = Some(BrokenLink {
                tenant: t.clone(),
                seq: expected_seq,
                event_id: None,
                reason: format!(
                    "chain ends at seq {} but the head records seq {last_seq} (rows missing at the end)",
                    expected_seq - 1
                ),
            });
        }
        report.broken.extend(broken);
    }
    Ok(report)
}

/// What one retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    pub events: u64,
    pub history: u64,
}

/// Deletes events older than `cutoff` (RFC 3339) from the start of every chain and moves each
/// chain's anchor to the hash of the last deleted row, so the rest still verifies. Field history
/// older than `cutoff` is deleted too (it is not chained).
pub async fn prune(engine: &DataEngine, cutoff: &str) -> Result<PruneReport> {
    let dialect = engine.dialect();
    let mut report = PruneReport::default();
    let tenants = fetch(
        &engine.pool(),
        sql(dialect, &format!("SELECT tenant_id FROM {HEAD_TABLE}")),
        "list chains",
    )
    .await?;
    for r in tenants {
        let t = get_str(&r, 0, "head", "tenant_id")?;
        // One tenant per transaction, on the engine's writer: on SQLite it holds the write lock
        // only as long as one chain takes, between the engine's writes rather than racing them.
        let tx = engine
            .begin_own_transaction()
            .await
            .map_err(|e| AuditError::db("begin prune", e))?;
        // Touching the head first serialises with appends (write lock / row lock).
        let mut q = sql(
            dialect,
            &format!("UPDATE {HEAD_TABLE} SET pruned_at = pruned_at WHERE tenant_id = "),
        );
        q.bind(t.clone());
        exec(&tx, q, "lock chain head").await?;
        let mut q = sql(
            dialect,
            &format!("SELECT MAX(seq) FROM {EVENTS_TABLE} WHERE tenant_id = "),
        );
        q.bind(t.clone());
        // The id bound keeps the scan to the old events (the primary key is time ordered).
        if let Some(id) = id_bound(cutoff, ID_BOUND_SLACK_MS) {
            q.push(" AND id < ").bind(id);
        }
        q.push(" AND occurred_at < ").bind(cutoff);
        let max: Option<i64> = fetch(&tx, q, "find prunable events")
            .await?
            .first()
            .and_then(|r| r.get::<Option<i64>>(0).ok().flatten());
        if let Some(max) = max {
            let mut q = sql(
                dialect,
                &format!("SELECT hash FROM {EVENTS_TABLE} WHERE tenant_id = "),
            );
            q.bind(t.clone()).push(" AND seq = ").bind(max);
            let anchor = fetch(&tx, q, "read new anchor")
                .await?
                .first()
                .map(|r| get_str(r, 0, &t, "hash"))
                .transpose()?;
            if let Some(anchor) = anchor {
                let mut q = sql(
                    dialect,
                    &format!("DELETE FROM {EVENTS_TABLE} WHERE tenant_id = "),
                );
                q.bind(t.clone()).push(" AND seq <= ").bind(max);
                report.events += exec(&tx, q, "delete old events").await?;
                let mut q = sql(dialect, &format!("UPDATE {HEAD_TABLE} SET anchor_seq = "));
                q.bind(max)
                    .push(", anchor_hash = ")
                    .bind(anchor)
                    .push(", pruned_at = ")
                    .bind(crate::event::now_rfc3339())
                    .push(" WHERE tenant_id = ")
                    .bind(t.clone());
                exec(&tx, q, "move chain anchor").await?;
            }
        }
        tx.commit()
            .await
            .map_err(|e| AuditError::db("commit prune", e))?;
    }
    let mut q = sql(
        dialect,
        &format!("DELETE FROM {HISTORY_TABLE} WHERE changed_at < "),
    );
    q.bind(cutoff);
    report.history = exec(&engine.writer(), q, "delete old field history").await?;
    Ok(report)
}

/// One field-history row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldHistory {
    pub id: String,
    pub tenant_id: Option<String>,
    pub object: String,
    pub record_id: String,
    pub field: String,
    pub old_value: Json,
    pub new_value: Json,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub changed_at: String,
    pub event_id: String,
}

/// Writes the history rows of one audited update (same transaction as the change).
pub(crate) async fn insert_history<S: Store + ?Sized>(db: &S, ev: &AuditEvent) -> Result<()> {
    let (Some(object), Some(record_id)) = (&ev.object, &ev.record_id) else {
        return Ok(());
    };
    for c in &ev.changes {
        let mut q = sql(
            db.dialect(),
            &format!(
                "INSERT INTO {HISTORY_TABLE} (id, tenant_id, object, record_id, field, old_value, new_value, actor_type, actor_id, changed_at, event_id) VALUES ("
            ),
        );
        let vals: Vec<SqlValue> = vec![
            uuid::Uuid::now_v7().to_string().into(),
            ev.tenant_id.clone().unwrap_or_default().into(),
            object.clone().into(),
            record_id.clone().into(),
            c.field.clone().into(),
            c.old_value.to_string().into(),
            c.new_value.to_string().into(),
            ev.actor.kind.clone().into(),
            (&ev.actor.id).into(),
            ev.timestamp.clone().into(),
            ev.id.clone().into(),
        ];
        q.bind_list(vals).push(")");
        exec(db, q, "insert field history").await?;
    }
    Ok(())
}

/// Field history of one record, newest first.
pub async fn query_history<S: Store + ?Sized>(
    db: &S,
    object: &str,
    record_id: &str,
    tenant: Option<&str>,
    limit: u64,
    offset: u64,
) -> Result<Vec<FieldHistory>> {
    let mut q = sql(
        db.dialect(),
        &format!(
            "SELECT id, tenant_id, object, record_id, field, old_value, new_value, actor_type, actor_id, changed_at, event_id FROM {HISTORY_TABLE} WHERE object = "
        ),
    );
    q.bind(object.to_owned())
        .push(" AND record_id = ")
        .bind(record_id.to_owned());
    if let Some(t) = tenant {
        q.push(" AND tenant_id = ").bind(t.to_owned());
    }
    q.push(" ORDER BY id DESC LIMIT ")
        .bind(limit as i64)
        .push(" OFFSET ")
        .bind(offset as i64);
    let rows = fetch(db, q, "query field history").await?;
    rows.iter()
        .map(|r| {
            let id = get_str(r, 0, "?", "id")?;
            let parse = |i: usize| {
                get_opt(r, i)
                    .and_then(|s| serde_json::from_str(&s).ok())
                    .unwrap_or(Json::Null)
            };
            let tenant = get_str(r, 1, &id, "tenant_id")?;
            Ok(FieldHistory {
                tenant_id: (!tenant.is_empty()).then_some(tenant),
                object: get_str(r, 2, &id, "object")?,
                record_id: get_str(r, 3, &id, "record_id")?,
                field: get_str(r, 4, &id, "field")?,
                old_value: parse(5),
                new_value: parse(6),
                actor_type: get_str(r, 7, &id, "actor_type")?,
                actor_id: get_opt(r, 8),
                changed_at: get_str(r, 9, &id, "changed_at")?,
                event_id: get_str(r, 10, &id, "event_id")?,
                id,
            })
        })
        .collect()
}

/// CSV columns of the export.
const CSV_HEADER: &str = "id,tenantId,seq,eventType,severity,timestamp,actorType,actorId,actorReason,ipAddress,userAgent,object,recordId,operation,result,requestId,description,changes,details,prevHash,hash";

fn csv_cell(s: &str) -> String {
    // Cells starting with a formula character are prefixed so spreadsheets do not evaluate them.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Events as CSV (header + one line per event; `changes` and `details` as JSON text).
pub fn to_csv(events: &[AuditEvent]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push_str("\r\n");
    for e in events {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        let cells = [
            e.id.clone(),
            o(&e.tenant_id),
            e.seq.to_string(),
            e.event_type.clone(),
            e.severity.clone(),
            e.timestamp.clone(),
            e.actor.kind.clone(),
            o(&e.actor.id),
            o(&e.actor.reason),
            o(&e.actor.ip_address),
            o(&e.actor.user_agent),
            o(&e.object),
            o(&e.record_id),
            o(&e.operation),
            e.result.clone(),
            o(&e.request_id),
            o(&e.description),
            serde_json::to_string(&e.changes).unwrap_or_default(),
            if e.details.is_null() {
                String::new()
            } else {
                e.details.to_string()
            },
            e.prev_hash.clone(),
            e.hash.clone(),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Every event matching `f` (ignoring its paging), newest first, fetched page by page.
pub async fn export_all<S: Store + ?Sized>(db: &S, f: &EventFilter) -> Result<Vec<AuditEvent>> {
    let mut f = f.clone();
    f.limit = 1000;
    f.offset = 0;
    f.cursor = None;
    let mut out = Vec::new();
    loop {
        let page = query_events(db, &f).await?;
        let last = page.events.last().map(|e| e.id.clone());
        out.extend(page.events);
        match (page.has_more, last) {
            (true, Some(id)) => f.cursor = Some(id),
            _ => break,
        }
    }
    Ok(out)
}
