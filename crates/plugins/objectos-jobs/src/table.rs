//! The job table and every statement on it, through `objectos_data::store` on SQLite and
//! PostgreSQL. The table is the `sys_job_run` object's own table (so admins read runs under
//! `/api/v1/data/sys_job_run`); the plugin writes it directly, never through the engine's
//! record path, because a claim or a batched completion is one statement for many rows.
//!
//! The statements are split by who asks: `transport.rs` (claims, the relay's outbox marks,
//! outcomes, lease renewal and the other maintenance), `admin.rs` (get, list, counts, cancel,
//! requeue) and `lease.rs` (the scheduler's lease and ticks); this file holds the row types,
//! the enqueue inserts and what they share (column lists, decoding, the PostgreSQL lock order,
//! running a statement).
//!
//! Times the queue compares are epoch milliseconds in `BIGINT` columns, so the same SQL works
//! on both databases. States: `scheduled` (waits for `run_at_ms`) -> `pending` (due) ->
//! `running` (claimed: `worker` holds a lease until `lease_until_ms`) -> `completed`,
//! `cancelled`, `dead` (attempts used up, or a fatal failure: the dead-letter store), or back
//! to `scheduled` for a retry.

mod admin;
mod lease;
mod transport;

use chrono::{DateTime, Utc};
use objectos_data::store::{FromColumn, Row, Sql, SqlValue, Store};
use objectos_data::{DataEngine, Dialect};
use objectos_kernel::contracts::{Enqueued, JobError, JobId, JobInfo, JobStatus, RetryPolicy};

use crate::error::{JobsError, Result};

/// The job table (the `sys_job_run` object's).
pub const JOB_TABLE: &str = "sys_job_run";
/// Idempotency keys of jobs that are not finished: `(scope, key)` -> `job_id`, the scope being
/// the job's organization ([`key_scope`]).
pub const KEY_TABLE: &str = "_objectos_jobs_scoped_key";
/// Leases (the scheduler's leader lease): `name` -> `holder` until `until_ms`.
pub const LEASE_TABLE: &str = "_objectos_jobs_lease";
/// Schedule ticks already enqueued: `(schedule, tick_ms)`, so a tick runs once per cluster.
pub const TICK_TABLE: &str = "_objectos_jobs_tick";

/// The columns read back for a [`JobInfo`], in order.
const INFO_COLUMNS: &str = "\"id\", \"handler\", \"queue\", \"status\", \"priority\", \"payload\", \"attempts\", \"max_attempts\", \"error\", \"idempotency_key\", \"schedule\", \"cancel_requested\", \"created_ms\", \"run_at_ms\", \"started_ms\", \"finished_ms\", \"worker\", \"organization_id\"";

/// The columns a claim returns, in order (see [`Claimed::from_row`]).
const CLAIM_COLUMNS: &str = "\"id\", \"handler\", \"queue\", \"payload\", \"attempts\", \"max_attempts\", \"retry_policy\", \"timeout_ms\", \"idempotency_key\", \"schedule\", \"traceparent\"";

/// The scope of an idempotency key: the job's organization, `""` for a system job (an
/// organization id is never empty, so the two cannot meet).
pub fn key_scope(organization_id: Option<&str>) -> &str {
    organization_id.unwrap_or("")
}

/// Epoch milliseconds now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A new job's row.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: JobId,
    pub handler: String,
    pub queue: String,
    pub priority: i32,
    pub payload: String,
    pub retry: RetryPolicy,
    pub timeout_ms: i64,
    pub idempotency_key: Option<String>,
    pub schedule: Option<String>,
    pub run_at_ms: i64,
    /// The enqueuing request's trace context, continued by the attempt's span.
    pub traceparent: Option<String>,
    /// The organization the job works for (`None`: a system job).
    pub organization_id: Option<String>,
}

impl NewJob {
    /// `scheduled` when due later than `now`, else `pending`.
    fn status(&self, now: i64) -> JobStatus {
        if self.run_at_ms > now {
            JobStatus::Scheduled
        } else {
            JobStatus::Pending
        }
    }
}

/// A job a worker claimed: everything needed to run it and record the outcome.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: JobId,
    pub handler: String,
    pub queue: String,
    pub payload: String,
    /// This attempt's number (1-based).
    pub attempt: u32,
    pub max_attempts: u32,
    pub retry: RetryPolicy,
    pub timeout_ms: i64,
    pub idempotency_key: Option<String>,
    pub schedule: Option<String>,
    /// The enqueuer's trace context (W3C `traceparent`), when tracing was on.
    pub traceparent: Option<String>,
}

/// One row's columns, each read error naming the row's id: a row that does not decode is
/// [`JobsError::Corrupt`], which lists skip and report instead of failing the whole page.
struct Cols<'a> {
    row: &'a Row,
    id: String,
}

impl<'a> Cols<'a> {
    /// Reads the id (column 0); without it the row cannot even be named.
    fn new(row: &'a Row, what: &'static str) -> Result<Self> {
        let id = row.get(0).map_err(|e| JobsError::db(what, e))?;
        Ok(Self { row, id })
    }

    fn get<T: FromColumn>(&self, idx: usize) -> Result<T> {
        self.row.get(idx).map_err(|e| JobsError::Corrupt {
            id: self.id.clone(),
            message: e.to_string(),
        })
    }

    /// A whole-number column that may be null, as `u32` (0 when null or out of range).
    fn count(&self, idx: usize) -> Result<u32> {
        Ok(u32::try_from(self.get::<Option<i64>>(idx)?.unwrap_or(0)).unwrap_or(0))
    }
}

impl Claimed {
    fn from_row(row: &Row) -> Result<Self> {
        let c = Cols::new(row, "read claim")?;
        let policy: Option<String> = c.get(6)?;
        let retry = policy
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default();
        Ok(Self {
            handler: c.get(1)?,
            queue: c.get(2)?,
            payload: c
                .get::<Option<String>>(3)?
                .unwrap_or_else(|| "null".to_owned()),
            attempt: c.count(4)?.max(1),
            max_attempts: c.count(5)?.max(1),
            retry,
            timeout_ms: c.get::<Option<i64>>(7)?.unwrap_or(0),
            idempotency_key: c.get(8)?,
            schedule: c.get(9)?,
            traceparent: c.get(10)?,
            id: c.id,
        })
    }
}

fn info_from_row(row: &Row) -> Result<JobInfo> {
    let c = Cols::new(row, "read job")?;
    let status: String = c.get(3)?;
    let payload: Option<String> = c.get(5)?;
    Ok(JobInfo {
        handler: c.get(1)?,
        queue: c.get(2)?,
        status: JobStatus::parse(&status).ok_or_else(|| JobsError::Corrupt {
            id: c.id.clone(),
            message: format!("unknown status `{status}`"),
        })?,
        priority: i32::try_from(c.get::<i64>(4)?).unwrap_or(0),
        payload: payload
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(serde_json::Value::Null),
        attempts: c.count(6)?,
        max_attempts: c.count(7)?,
        error: c.get(8)?,
        idempotency_key: c.get(9)?,
        schedule: c.get(10)?,
        cancel_requested: c.get::<Option<bool>>(11)?.unwrap_or(false),
        created_at: ts(c.get::<Option<i64>>(12)?.unwrap_or(0)),
        run_at: ts(c.get::<Option<i64>>(13)?.unwrap_or(0)),
        started_at: c.get::<Option<i64>>(14)?.map(ts),
        finished_at: c.get::<Option<i64>>(15)?.map(ts),
        worker: c.get(16)?,
        organization_id: c.get(17)?,
        id: c.id,
    })
}

/// Decodes rows, skipping (and logging) the ones that do not decode; returns the good ones and
/// the ids of the skipped ones.
fn decode_all<T>(rows: &[Row], decode: fn(&Row) -> Result<T>) -> Result<(Vec<T>, Vec<JobId>)> {
    let mut good = Vec::with_capacity(rows.len());
    let mut bad = Vec::new();
    for row in rows {
        match decode(row) {
            Ok(v) => good.push(v),
            Err(JobsError::Corrupt { id, message }) => {
                tracing::warn!(job = %id, %message, "jobs: a job row does not decode; skipped");
                bad.push(id);
            }
            Err(other) => return Err(other),
        }
    }
    Ok((good, bad))
}

/// On PostgreSQL, a statement that changes several rows takes their locks in id order (or skips
/// rows locked by others), so two of them never wait on each other in a cycle: completions,
/// lease renewals, relay marks and reclaims of one node run concurrently, and without a fixed
/// order PostgreSQL aborts one of them as a deadlock. `cond` selects the rows; on SQLite (one
/// writer) it is used as it is.
fn rows_where(d: Dialect, cond: &str, skip_locked: bool) -> String {
    format!("{}{cond}{}", lock_open(d), lock_close(d, skip_locked))
}

/// The text before a [`rows_where`] condition, for statements built with binds.
fn lock_open(d: Dialect) -> String {
    match d {
        Dialect::Sqlite => "(".to_owned(),
        Dialect::Postgres => picked_open(d),
    }
}

/// The text after a [`rows_where`] condition.
fn lock_close(d: Dialect, skip_locked: bool) -> String {
    match (d, skip_locked) {
        (Dialect::Sqlite, _) => ")".to_owned(),
        (Dialect::Postgres, false) => format!(" ORDER BY \"id\" FOR UPDATE{}", picked_close(d)),
        (Dialect::Postgres, true) => {
            format!(" ORDER BY \"id\" FOR UPDATE SKIP LOCKED{}", picked_close(d))
        }
    }
}

/// Opens "the rows whose id a subquery on the job table picks" (the subquery's `WHERE`
/// follows), in the form each database plans well. On PostgreSQL it is
/// `"id" = ANY(ARRAY(SELECT "id" ..))`: the subquery runs once and its ids are looked up by
/// primary key. `"id" IN (SELECT ..)` was planned as a hash join over a scan of the whole
/// table (measured: 5 ms of 50,000 rows per statement), and the table keeps every finished
/// run for `keepFinishedDays`.
fn picked_open(d: Dialect) -> String {
    match d {
        Dialect::Sqlite => format!("\"id\" IN (SELECT \"id\" FROM \"{JOB_TABLE}\" WHERE "),
        Dialect::Postgres => {
            format!("\"id\" = ANY(ARRAY(SELECT \"id\" FROM \"{JOB_TABLE}\" WHERE ")
        }
    }
}

/// Closes [`picked_open`].
fn picked_close(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => ")",
        Dialect::Postgres => "))",
    }
}

fn sql(dialect: Dialect, text: &str, values: Vec<SqlValue>) -> Result<Sql> {
    Sql::with(dialect, text, values).map_err(|e| JobsError::db("build statement", e))
}

fn wire_ts(ms: i64) -> String {
    ts(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Rows in a `VALUES` list per insert statement (19 values each, under PostgreSQL's 65535
/// parameters and SQLite's 32766).
const INSERT_CHUNK: usize = 500;

/// Statements on the job tables of one engine.
#[derive(Debug, Clone)]
pub struct JobTable {
    engine: DataEngine,
}

impl JobTable {
    pub fn new(engine: DataEngine) -> Self {
        Self { engine }
    }

    pub fn engine(&self) -> &DataEngine {
        &self.engine
    }

    pub fn dialect(&self) -> Dialect {
        self.engine.dialect()
    }

    // ------------------------------------------------------------------ enqueue

    /// Inserts `job` through `store` (a pool, or the caller's transaction). With an
    /// idempotency key held by an unfinished job of the same organization, nothing is written
    /// and that job's id is returned.
    pub async fn insert(&self, store: &dyn Store, job: &NewJob) -> Result<Enqueued> {
        if let Some(key) = &job.idempotency_key {
            let scope = key_scope(job.organization_id.as_deref());
            // Twice at most: a key row left behind by a job that finished without removing
            // it (a crash between its two statements) is removed and the insert tried again.
            for _ in 0..2 {
                let d = store.dialect();
                let inserted = store
                    .execute(sql(
                        d,
                        &format!(
                            "INSERT INTO \"{KEY_TABLE}\" (\"scope\", \"key\", \"job_id\", \"created_ms\") VALUES (?, ?, ?, ?) ON CONFLICT (\"scope\", \"key\") DO NOTHING"
                        ),
                        vec![
                            scope.into(),
                            key.into(),
                            (&job.id).into(),
                            now_ms().into(),
                        ],
                    )?)
                    .await
                    .map_err(|e| JobsError::db("insert idempotency key", e))?;
                if inserted == 1 {
                    break;
                }
                let existing = store
                    .fetch_optional(sql(
                        d,
                        &format!(
                            "SELECT k.\"job_id\", j.\"status\" FROM \"{KEY_TABLE}\" k LEFT JOIN \"{JOB_TABLE}\" j ON j.\"id\" = k.\"job_id\" WHERE k.\"scope\" = ? AND k.\"key\" = ?"
                        ),
                        vec![scope.into(), key.into()],
                    )?)
                    .await
                    .map_err(|e| JobsError::db("read idempotency key", e))?;
                if let Some(row) = existing {
                    let id: String = row.get(0).map_err(|e| JobsError::db("read key", e))?;
                    let status: Option<String> =
                        row.get(1).map_err(|e| JobsError::db("read key", e))?;
                    let live = status
                        .as_deref()
                        .and_then(JobStatus::parse)
                        .is_some_and(|s| !s.is_final());
                    if live {
                        return Ok(Enqueued { id, created: false });
                    }
                    store
                        .execute(sql(
                            d,
                            &format!(
                                "DELETE FROM \"{KEY_TABLE}\" WHERE \"scope\" = ? AND \"key\" = ? AND \"job_id\" = ?"
                            ),
                            vec![scope.into(), key.into(), id.into()],
                        )?)
                        .await
                        .map_err(|e| JobsError::db("remove stale idempotency key", e))?;
                }
            }
        }
        self.insert_rows(store, std::slice::from_ref(job)).await?;
        Ok(Enqueued {
            id: job.id.clone(),
            created: true,
        })
    }

    /// Inserts jobs without idempotency keys, many per statement.
    pub async fn insert_rows(&self, store: &dyn Store, jobs: &[NewJob]) -> Result<()> {
        let d = store.dialect();
        let now = now_ms();
        let now_text = wire_ts(now);
        for chunk in jobs.chunks(INSERT_CHUNK) {
            let mut q = Sql::new(d);
            q.push(&format!(
                "INSERT INTO \"{JOB_TABLE}\" (\"id\", \"created_at\", \"updated_at\", \"created_ms\", \"handler\", \"queue\", \"status\", \"priority\", \"priority_rank\", \"payload\", \"attempts\", \"max_attempts\", \"retry_policy\", \"timeout_ms\", \"idempotency_key\", \"schedule\", \"cancel_requested\", \"run_at_ms\", \"traceparent\", \"organization_id\") VALUES "
            ));
            for (i, job) in chunk.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                let policy = serde_json::to_string(&job.retry)
                    .map_err(|e| JobsError::db("encode retry policy", e))?;
                q.push("(").bind(&job.id).push(", ");
                push_ts(&mut q, &now_text);
                q.push(", ");
                push_ts(&mut q, &now_text);
                q.push(", ")
                    .bind(now)
                    .push(", ")
                    .bind(&job.handler)
                    .push(", ")
                    .bind(&job.queue)
                    .push(", ")
                    .bind(job.status(now).as_str())
                    .push(", ")
                    .bind(i64::from(job.priority))
                    .push(", ")
                    .bind(-i64::from(job.priority))
                    .push(", ")
                    .bind(&job.payload)
                    .push(", 0, ")
                    .bind(i64::from(job.retry.max_attempts.max(1)))
                    .push(", ")
                    .bind(policy)
                    .push(", ")
                    .bind(job.timeout_ms)
                    .push(", ")
                    .bind(&job.idempotency_key)
                    .push(", ")
                    .bind(&job.schedule)
                    .push(", ")
                    .bind(false)
                    .push(", ")
                    .bind(job.run_at_ms)
                    .push(", ")
                    .bind(&job.traceparent)
                    .push(", ")
                    .bind(&job.organization_id)
                    .push(")");
            }
            store
                .execute(q)
                .await
                .map_err(|e| JobsError::db("insert jobs", e))?;
            let mut per_queue: std::collections::BTreeMap<&str, usize> = Default::default();
            for job in chunk {
                *per_queue.entry(job.queue.as_str()).or_default() += 1;
            }
            for (queue, n) in per_queue {
                crate::metrics::enqueued(queue, n);
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ statements

    /// A statement with `?` placeholders in this table's dialect.
    fn stmt(&self, text: &str, values: Vec<SqlValue>) -> Result<Sql> {
        sql(self.dialect(), text, values)
    }

    /// Runs a change on the writer; the rows changed. `what` names it in the error.
    async fn change(&self, what: &'static str, q: Sql) -> Result<u64> {
        self.engine
            .writer()
            .execute(q)
            .await
            .map_err(|e| JobsError::db(what, e))
    }

    /// Runs a change with `RETURNING` on the writer.
    async fn change_returning(&self, what: &'static str, q: Sql) -> Result<Vec<Row>> {
        self.engine
            .writer()
            .fetch_all(q)
            .await
            .map_err(|e| JobsError::db(what, e))
    }

    /// Reads rows through the pool.
    async fn read(&self, what: &'static str, q: Sql) -> Result<Vec<Row>> {
        self.engine
            .pool()
            .fetch_all(q)
            .await
            .map_err(|e| JobsError::db(what, e))
    }

    /// Reads at most one row through the pool.
    async fn read_one(&self, what: &'static str, q: Sql) -> Result<Option<Row>> {
        self.engine
            .pool()
            .fetch_optional(q)
            .await
            .map_err(|e| JobsError::db(what, e))
    }
}

/// Column `idx` of `row`; `what` names the statement in the error.
fn col<T: FromColumn>(row: &Row, idx: usize, what: &'static str) -> Result<T> {
    row.get(idx).map_err(|e| JobsError::db(what, e))
}

fn distinct_queues(rows: &[Row]) -> Vec<String> {
    let mut queues: Vec<String> = rows
        .iter()
        .filter_map(|r| r.get::<String>(0).ok())
        .collect();
    queues.sort();
    queues.dedup();
    queues
}

fn push_ts(q: &mut Sql, text: &str) {
    match q.dialect() {
        Dialect::Postgres => {
            q.push("CAST(").bind(text).push(" AS TIMESTAMPTZ)");
        }
        Dialect::Sqlite => {
            q.bind(text);
        }
    }
}

/// The state a job must leave for `op`, as the error the contract names.
pub fn invalid_state(info: &JobInfo, message: &str) -> JobError {
    JobError::InvalidState {
        id: info.id.clone(),
        status: info.status,
        message: message.to_owned(),
    }
}
