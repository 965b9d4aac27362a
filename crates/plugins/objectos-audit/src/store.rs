//! Storage: the audit tables (portable DDL for SQLite and PostgreSQL), chained appends,
//! filtered queries, chain verification, retention pruning and field history.
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

use objectos_data::Dialect;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement, TransactionTrait, Value,
};
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

/// A SQL text with bound values, placeholders in the dialect's style.
pub(crate) struct Q {
    dialect: Dialect,
    text: String,
    values: Vec<Value>,
}

impl Q {
    pub(crate) fn new(dialect: Dialect, text: &str) -> Self {
        Self {
            dialect,
            text: text.to_owned(),
            values: Vec::new(),
        }
    }

    pub(crate) fn sql(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    pub(crate) fn bind(&mut self, v: impl Into<Value>) -> &mut Self {
        self.values.push(v.into());
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            Dialect::Postgres => {
                let n = self.values.len();
                self.text.push_str(&format!("${n}"));
            }
        }
        self
    }

    fn statement(self) -> Statement {
        let backend = match self.dialect {
            Dialect::Sqlite => DbBackend::Sqlite,
            Dialect::Postgres => DbBackend::Postgres,
        };
        Statement::from_sql_and_values(backend, self.text, self.values)
    }

    pub(crate) async fn exec<C: ConnectionTrait>(self, conn: &C, what: &str) -> Result<u64> {
        conn.execute_raw(self.statement())
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| AuditError::db(what, e))
    }

    pub(crate) async fn rows<C: ConnectionTrait>(
        self,
        conn: &C,
        what: &str,
    ) -> Result<Vec<QueryResult>> {
        conn.query_all_raw(self.statement())
            .await
            .map_err(|e| AuditError::db(what, e))
    }
}

fn opt(v: &Option<String>) -> Value {
    Value::String(v.clone())
}

/// Creates the tables and indexes when missing (idempotent).
pub async fn ensure_schema<C: ConnectionTrait>(conn: &C, dialect: Dialect) -> Result<()> {
    let stmts = [
        format!(
            "CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, seq BIGINT NOT NULL, \
             event_type TEXT NOT NULL, severity TEXT NOT NULL, occurred_at TEXT NOT NULL, actor_type TEXT NOT NULL, \
             actor_id TEXT, actor_reason TEXT, ip TEXT, user_agent TEXT, object TEXT, record_id TEXT, operation TEXT, \
             changes TEXT NOT NULL, result TEXT NOT NULL, request_id TEXT, description TEXT, details TEXT NOT NULL, \
             prev_hash TEXT NOT NULL, hash TEXT NOT NULL, UNIQUE (tenant_id, seq))"
        ),
        // Every audited write pays for each index here, inside the write's transaction, so the
        // set is kept to what the reads need: the primary key (UUIDv7 ids, so it is also the
        // time index: `from`/`to` become id bounds), the chain (tenant, seq), the actor's and
        // the record's trails. Event types are few and filtered on the id-ordered scan.
        format!("CREATE INDEX IF NOT EXISTS ix_audit_actor ON {EVENTS_TABLE} (actor_id, id)"),
        format!(
            "CREATE INDEX IF NOT EXISTS ix_audit_target ON {EVENTS_TABLE} (object, record_id, id)"
        ),
        // Indexes of earlier versions that the id order replaced.
        "DROP INDEX IF EXISTS ix_audit_event_type".to_owned(),
        "DROP INDEX IF EXISTS ix_audit_time".to_owned(),
        "DROP INDEX IF EXISTS ix_audit_tenant_time".to_owned(),
        format!(
            "CREATE TABLE IF NOT EXISTS {HEAD_TABLE} (tenant_id TEXT PRIMARY KEY, last_seq BIGINT NOT NULL, \
             last_hash TEXT NOT NULL, anchor_seq BIGINT NOT NULL, anchor_hash TEXT NOT NULL, pruned_at TEXT)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, object TEXT NOT NULL, \
             record_id TEXT NOT NULL, field TEXT NOT NULL, old_value TEXT, new_value TEXT, actor_type TEXT NOT NULL, \
             actor_id TEXT, changed_at TEXT NOT NULL, event_id TEXT NOT NULL)"
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS ix_field_history_record ON {HISTORY_TABLE} (object, record_id, changed_at)"
        ),
        format!("CREATE INDEX IF NOT EXISTS ix_field_history_time ON {HISTORY_TABLE} (changed_at)"),
    ];
    for s in stmts {
        Q::new(dialect, &s)
            .exec(conn, "create audit tables")
            .await?;
    }
    Ok(())
}

/// Appends `ev` to its tenant's chain through `conn` (a transaction: the caller commits).
/// Fills `seq`, `prev_hash` and `hash` and returns the stored event.
pub async fn append<C: ConnectionTrait>(
    conn: &C,
    dialect: Dialect,
    mut ev: AuditEvent,
) -> Result<AuditEvent> {
    let tenant = ev.tenant_id.clone().unwrap_or_default();
    // One statement creates the head on first use, locks it (the no-op DO UPDATE takes the row
    // lock on PostgreSQL, as FOR UPDATE would; on SQLite the write transaction already holds
    // the database's write lock) and returns it: a round trip fewer than insert + select.
    let mut q = Q::new(
        dialect,
        &format!(
            "INSERT INTO {HEAD_TABLE} (tenant_id, last_seq, last_hash, anchor_seq, anchor_hash) VALUES ("
        ),
    );
    q.bind(tenant.clone())
        .sql(", 0, ")
        .bind(GENESIS_HASH)
        .sql(", 0, ")
        .bind(GENESIS_HASH)
        .sql(&format!(
            ") ON CONFLICT (tenant_id) DO UPDATE SET last_seq = {HEAD_TABLE}.last_seq RETURNING last_seq, last_hash"
        ));
    let rows = q.rows(conn, "lock chain head").await?;
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
    insert_event(conn, dialect, &ev, &tenant).await?;
    let mut q = Q::new(dialect, &format!("UPDATE {HEAD_TABLE} SET last_seq = "));
    q.bind(ev.seq)
        .sql(", last_hash = ")
        .bind(ev.hash.clone())
        .sql(" WHERE tenant_id = ")
        .bind(tenant);
    q.exec(conn, "advance chain head").await?;
    Ok(ev)
}

/// Appends in a transaction of its own (bus events, which have no data transaction).
pub async fn append_standalone(
    conn: &DatabaseConnection,
    dialect: Dialect,
    ev: AuditEvent,
) -> Result<AuditEvent> {
    let tx = conn
        .begin()
        .await
        .map_err(|e| AuditError::db("begin audit transaction", e))?;
    let ev = append(&tx, dialect, ev).await?;
    tx.commit()
        .await
        .map_err(|e| AuditError::db("commit audit transaction", e))?;
    Ok(ev)
}

/// Appends in a write transaction of its own on the engine's writer ([`DataEngine::begin_own_transaction`]):
/// it queues with the engine's writes instead of racing them for SQLite's file lock, and a full
/// disk leaves the connection reopened instead of out of step with its transaction.
pub async fn append_own(engine: &objectos_data::DataEngine, ev: AuditEvent) -> Result<AuditEvent> {
    let tx = engine
        .begin_own_transaction()
        .await
        .map_err(|e| AuditError::db("begin audit transaction", e))?;
    let ev = append(&tx, engine.dialect(), ev).await?;
    tx.commit()
        .await
        .map_err(|e| AuditError::db("commit audit transaction", e))?;
    Ok(ev)
}

/// The values of `EVENT_COLUMNS` for `ev`, in order.
fn event_values(ev: &AuditEvent, tenant: &str) -> Vec<Value> {
    let changes = serde_json::to_string(&ev.changes).unwrap_or_else(|_| "[]".into());
    let details = serde_json::to_string(&ev.details).unwrap_or_else(|_| "null".into());
    vec![
        ev.id.clone().into(),
        tenant.to_owned().into(),
        ev.seq.into(),
        ev.event_type.clone().into(),
        ev.severity.clone().into(),
        ev.timestamp.clone().into(),
        ev.actor.kind.clone().into(),
        opt(&ev.actor.id),
        opt(&ev.actor.reason),
        opt(&ev.actor.ip_address),
        opt(&ev.actor.user_agent),
        opt(&ev.object),
        opt(&ev.record_id),
        opt(&ev.operation),
        changes.into(),
        ev.result.clone().into(),
        opt(&ev.request_id),
        opt(&ev.description),
        details.into(),
        ev.prev_hash.clone().into(),
        ev.hash.clone().into(),
    ]
}

async fn insert_event<C: ConnectionTrait>(
    conn: &C,
    dialect: Dialect,
    ev: &AuditEvent,
    tenant: &str,
) -> Result<()> {
    let mut q = Q::new(
        dialect,
        &format!("INSERT INTO {EVENTS_TABLE} ({EVENT_COLUMNS}) VALUES ("),
    );
    for (i, v) in event_values(ev, tenant).into_iter().enumerate() {
        if i > 0 {
            q.sql(", ");
        }
        q.bind(v);
    }
    q.sql(")");
    q.exec(conn, "insert audit event").await?;
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

/// [`append`] through `cache`: one statement when the cached head is current, else the locking
/// path (which refreshes the cache).
pub async fn append_cached<C: ConnectionTrait>(
    conn: &C,
    dialect: Dialect,
    mut ev: AuditEvent,
    cache: &HeadCache,
) -> Result<AuditEvent> {
    let tenant = ev.tenant_id.clone().unwrap_or_default();
    if let Some((seq, hash)) = cache.get(&tenant) {
        ev.seq = seq + 1;
        ev.prev_hash = hash.clone();
        ev.hash = ev.compute_hash();
        let mut q = match dialect {
            // Two statements in one round trip: the INSERT runs only if the UPDATE changed a row
            // (`changes()` is the row count of the statement just before it).
            Dialect::Sqlite => Q::new(dialect, &format!("UPDATE {HEAD_TABLE} SET last_seq = ")),
            // One statement: the INSERT selects from the UPDATE's result.
            Dialect::Postgres => Q::new(
                dialect,
                &format!("WITH h AS (UPDATE {HEAD_TABLE} SET last_seq = "),
            ),
        };
        q.bind(ev.seq)
            .sql(", last_hash = ")
            .bind(ev.hash.clone())
            .sql(" WHERE tenant_id = ")
            .bind(tenant.clone())
            .sql(" AND last_seq = ")
            .bind(seq)
            .sql(" AND last_hash = ")
            .bind(hash);
        match dialect {
            Dialect::Sqlite => q.sql(&format!(
                "; INSERT INTO {EVENTS_TABLE} ({EVENT_COLUMNS}) SELECT "
            )),
            Dialect::Postgres => q.sql(&format!(
                " RETURNING 1) INSERT INTO {EVENTS_TABLE} ({EVENT_COLUMNS}) SELECT "
            )),
        };
        for (i, v) in event_values(&ev, &tenant).into_iter().enumerate() {
            if i > 0 {
                q.sql(", ");
            }
            q.bind(v);
        }
        let written = match dialect {
            Dialect::Sqlite => 2,
            Dialect::Postgres => 1,
        };
        match dialect {
            Dialect::Sqlite => q.sql(" WHERE changes() = 1"),
            Dialect::Postgres => q.sql(" WHERE EXISTS (SELECT 1 FROM h)"),
        };
        if q.exec(conn, "append audit event").await? == written {
            cache
                .hits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            cache.put(tenant, ev.seq, ev.hash.clone());
            return Ok(ev);
        }
    }
    let ev = append(conn, dialect, ev).await?;
    cache.put(tenant, ev.seq, ev.hash.clone());
    Ok(ev)
}

fn get_i64(r: &QueryResult, i: usize, id: &str, col: &str) -> Result<i64> {
    r.try_get_by_index::<i64>(i)
        .map_err(|e| AuditError::Corrupt {
            id: id.to_owned(),
            column: col.to_owned(),
            message: e.to_string(),
        })
}

fn get_str(r: &QueryResult, i: usize, id: &str, col: &str) -> Result<String> {
    r.try_get_by_index::<String>(i)
        .map_err(|e| AuditError::Corrupt {
            id: id.to_owned(),
            column: col.to_owned(),
            message: e.to_string(),
        })
}

fn get_opt(r: &QueryResult, i: usize) -> Option<String> {
    r.try_get_by_index::<Option<String>>(i).ok().flatten()
}

/// Reads a row selected with `EVENT_COLUMNS` back into an event.
fn row_to_event(r: &QueryResult) -> Result<AuditEvent> {
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

fn push_filters(q: &mut Q, f: &EventFilter, with_cursor: bool) {
    q.sql(" WHERE 1 = 1");
    if let Some(v) = &f.event_type {
        // A trailing `*` selects a family (`auth.*`).
        if let Some(prefix) = v.strip_suffix('*') {
            q.sql(" AND event_type LIKE ").bind(format!("{prefix}%"));
        } else {
            q.sql(" AND event_type = ").bind(v.clone());
        }
    }
    if let Some(v) = &f.actor {
        q.sql(" AND actor_id = ").bind(v.clone());
    }
    if let Some(v) = &f.object {
        q.sql(" AND object = ").bind(v.clone());
    }
    if let Some(v) = &f.record_id {
        q.sql(" AND record_id = ").bind(v.clone());
    }
    // The exact bound is on `occurred_at`; the id bound (a little wider) lets the primary key
    // narrow the scan.
    if let Some(v) = &f.from {
        if let Some(id) = id_bound(v, -ID_BOUND_SLACK_MS) {
            q.sql(" AND id >= ").bind(id);
        }
        q.sql(" AND occurred_at >= ").bind(v.clone());
    }
    if let Some(v) = &f.to {
        if let Some(id) = id_bound(v, ID_BOUND_SLACK_MS) {
            q.sql(" AND id < ").bind(id);
        }
        q.sql(" AND occurred_at < ").bind(v.clone());
    }
    if let Some(v) = &f.tenant {
        q.sql(" AND tenant_id = ").bind(v.clone());
    }
    // An empty cursor asks for the first page of cursor paging.
    if with_cursor && let Some(c) = f.cursor.as_ref().filter(|c| !c.is_empty()) {
        q.sql(" AND id < ").bind(c.clone());
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
pub async fn query_events<C: ConnectionTrait>(
    conn: &C,
    dialect: Dialect,
    f: &EventFilter,
) -> Result<EventPage> {
    let mut count = Q::new(dialect, &format!("SELECT COUNT(*) FROM {EVENTS_TABLE}"));
    push_filters(&mut count, f, false);
    let total = count
        .rows(conn, "count audit events")
        .await?
        .first()
        .map(|r| get_i64(r, 0, "count", "count"))
        .transpose()?
        .unwrap_or(0);
    let mut q = Q::new(
        dialect,
        &format!("SELECT {EVENT_COLUMNS} FROM {EVENTS_TABLE}"),
    );
    push_filters(&mut q, f, true);
    // One extra row tells whether another page follows.
    q.sql(" ORDER BY id DESC LIMIT ").bind((f.limit + 1) as i64);
    if f.cursor.is_none() && f.offset > 0 {
        q.sql(" OFFSET ").bind(f.offset as i64);
    }
    let rows = q.rows(conn, "query audit events").await?;
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
pub async fn verify<C: ConnectionTrait>(
    conn: &C,
    dialect: Dialect,
    tenant: Option<&str>,
) -> Result<VerifyReport> {
    let mut q = Q::new(
        dialect,
        &format!(
            "SELECT tenant_id, last_seq, last_hash, anchor_seq, anchor_hash FROM {HEAD_TABLE}"
        ),
    );
    if let Some(t) = tenant {
        q.sql(" WHERE tenant_id = ").bind(t.to_owned());
    }
    q.sql(" ORDER BY tenant_id");
    let heads = q.rows(conn, "read chain heads").await?;
    let mut report = VerifyReport {
        tenants: heads.len(),
        events: 0,
        broken: Vec::new(),
    };
    // Rows of a tenant without a head were inserted behind the chain's back.
    let mut q = Q::new(
        dialect,
        &format!(
            "SELECT e.tenant_id, MIN(e.seq) FROM {EVENTS_TABLE} e LEFT JOIN {HEAD_TABLE} h ON h.tenant_id = e.tenant_id WHERE h.tenant_id IS NULL"
        ),
    );
    if let Some(t) = tenant {
        q.sql(" AND e.tenant_id = ").bind(t.to_owned());
    }
    q.sql(" GROUP BY e.tenant_id");
    for r in q.rows(conn, "find headless events").await? {
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
            let mut q = Q::new(
                dialect,
                &format!("SELECT {EVENT_COLUMNS} FROM {EVENTS_TABLE} WHERE tenant_id = "),
            );
            q.bind(t.clone())
                .sql(" AND seq >= ")
                .bind(expected_seq)
                .sql(" ORDER BY seq LIMIT 500");
            let rows = q.rows(conn, "read chain").await?;
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
pub async fn prune(
    conn: &DatabaseConnection,
    dialect: Dialect,
    cutoff: &str,
) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    let tenants = Q::new(dialect, &format!("SELECT tenant_id FROM {HEAD_TABLE}"))
        .rows(conn, "list chains")
        .await?;
    for r in tenants {
        let t = get_str(&r, 0, "head", "tenant_id")?;
        let tx = conn
            .begin()
            .await
            .map_err(|e| AuditError::db("begin prune", e))?;
        // Touching the head first serialises with appends (write lock / row lock).
        let mut q = Q::new(
            dialect,
            &format!("UPDATE {HEAD_TABLE} SET pruned_at = pruned_at WHERE tenant_id = "),
        );
        q.bind(t.clone());
        q.exec(&tx, "lock chain head").await?;
        let mut q = Q::new(
            dialect,
            &format!("SELECT MAX(seq) FROM {EVENTS_TABLE} WHERE tenant_id = "),
        );
        q.bind(t.clone());
        // The id bound keeps the scan to the old events (the primary key is time ordered).
        if let Some(id) = id_bound(cutoff, ID_BOUND_SLACK_MS) {
            q.sql(" AND id < ").bind(id);
        }
        q.sql(" AND occurred_at < ").bind(cutoff.to_owned());
        let max: Option<i64> = q
            .rows(&tx, "find prunable events")
            .await?
            .first()
            .and_then(|r| r.try_get_by_index::<Option<i64>>(0).ok().flatten());
        if let Some(max) = max {
            let mut q = Q::new(
                dialect,
                &format!("SELECT hash FROM {EVENTS_TABLE} WHERE tenant_id = "),
            );
            q.bind(t.clone()).sql(" AND seq = ").bind(max);
            let anchor = q
                .rows(&tx, "read new anchor")
                .await?
                .first()
                .map(|r| get_str(r, 0, &t, "hash"))
                .transpose()?;
            if let Some(anchor) = anchor {
                let mut q = Q::new(
                    dialect,
                    &format!("DELETE FROM {EVENTS_TABLE} WHERE tenant_id = "),
                );
                q.bind(t.clone()).sql(" AND seq <= ").bind(max);
                report.events += q.exec(&tx, "delete old events").await?;
                let mut q = Q::new(dialect, &format!("UPDATE {HEAD_TABLE} SET anchor_seq = "));
                q.bind(max)
                    .sql(", anchor_hash = ")
                    .bind(anchor)
                    .sql(", pruned_at = ")
                    .bind(crate::event::now_rfc3339())
                    .sql(" WHERE tenant_id = ")
                    .bind(t.clone());
                q.exec(&tx, "move chain anchor").await?;
            }
        }
        tx.commit()
            .await
            .map_err(|e| AuditError::db("commit prune", e))?;
    }
    let mut q = Q::new(
        dialect,
        &format!("DELETE FROM {HISTORY_TABLE} WHERE changed_at < "),
    );
    q.bind(cutoff.to_owned());
    report.history = q.exec(conn, "delete old field history").await?;
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
pub(crate) async fn insert_history<C: ConnectionTrait>(
    conn: &C,
    dialect: Dialect,
    ev: &AuditEvent,
) -> Result<()> {
    let (Some(object), Some(record_id)) = (&ev.object, &ev.record_id) else {
        return Ok(());
    };
    for c in &ev.changes {
        let mut q = Q::new(
            dialect,
            &format!(
                "INSERT INTO {HISTORY_TABLE} (id, tenant_id, object, record_id, field, old_value, new_value, actor_type, actor_id, changed_at, event_id) VALUES ("
            ),
        );
        let vals: Vec<Value> = vec![
            uuid::Uuid::now_v7().to_string().into(),
            ev.tenant_id.clone().unwrap_or_default().into(),
            object.clone().into(),
            record_id.clone().into(),
            c.field.clone().into(),
            c.old_value.to_string().into(),
            c.new_value.to_string().into(),
            ev.actor.kind.clone().into(),
            opt(&ev.actor.id),
            ev.timestamp.clone().into(),
            ev.id.clone().into(),
        ];
        for (i, v) in vals.into_iter().enumerate() {
            if i > 0 {
                q.sql(", ");
            }
            q.bind(v);
        }
        q.sql(")");
        q.exec(conn, "insert field history").await?;
    }
    Ok(())
}

/// Field history of one record, newest first.
pub async fn query_history<C: ConnectionTrait>(
    conn: &C,
    dialect: Dialect,
    object: &str,
    record_id: &str,
    tenant: Option<&str>,
    limit: u64,
    offset: u64,
) -> Result<Vec<FieldHistory>> {
    let mut q = Q::new(
        dialect,
        &format!(
            "SELECT id, tenant_id, object, record_id, field, old_value, new_value, actor_type, actor_id, changed_at, event_id FROM {HISTORY_TABLE} WHERE object = "
        ),
    );
    q.bind(object.to_owned())
        .sql(" AND record_id = ")
        .bind(record_id.to_owned());
    if let Some(t) = tenant {
        q.sql(" AND tenant_id = ").bind(t.to_owned());
    }
    q.sql(" ORDER BY id DESC LIMIT ")
        .bind(limit as i64)
        .sql(" OFFSET ")
        .bind(offset as i64);
    let rows = q.rows(conn, "query field history").await?;
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
pub async fn export_all<C: ConnectionTrait>(
    conn: &C,
    dialect: Dialect,
    f: &EventFilter,
) -> Result<Vec<AuditEvent>> {
    let mut f = f.clone();
    f.limit = 1000;
    f.offset = 0;
    f.cursor = None;
    let mut out = Vec::new();
    loop {
        let page = query_events(conn, dialect, &f).await?;
        let last = page.events.last().map(|e| e.id.clone());
        out.extend(page.events);
        match (page.has_more, last) {
            (true, Some(id)) => f.cursor = Some(id),
            _ => break,
        }
    }
    Ok(out)
}
