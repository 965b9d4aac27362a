//! The job table and every statement on it, through `objectos_data::store` on SQLite and
//! PostgreSQL. The table is the `sys_job_run` object's own table (so admins read runs under
//! `/api/v1/data/sys_job_run`); the plugin writes it directly, never through the engine's
//! record path, because a claim or a batched completion is one statement for many rows.
//!
//! Times the queue compares are epoch milliseconds in `BIGINT` columns, so the same SQL works
//! on both databases. States: `scheduled` (waits for `run_at_ms`) -> `pending` (due) ->
//! `running` (claimed: `worker` holds a lease until `lease_until_ms`) -> `completed`,
//! `cancelled`, `dead` (attempts used up, or a fatal failure: the dead-letter store), or back
//! to `scheduled` for a retry.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use objectos_data::store::{FromColumn, Row, Sql, SqlValue, Store};
use objectos_data::{DataEngine, Dialect};
use objectos_kernel::contracts::{
    Enqueued, JobError, JobFilter, JobId, JobInfo, JobPage, JobStatus, RetryPolicy,
};

use crate::error::{JobsError, Result};

/// The job table (the `sys_job_run` object's).
pub const JOB_TABLE: &str = "sys_job_run";
/// Idempotency keys of jobs that are not finished: `key` -> `job_id`.
pub const KEY_TABLE: &str = "_objectos_jobs_key";
/// Leases (the scheduler's leader lease): `name` -> `holder` until `until_ms`.
pub const LEASE_TABLE: &str = "_objectos_jobs_lease";
/// Schedule ticks already enqueued: `(schedule, tick_ms)`, so a tick runs once per cluster.
pub const TICK_TABLE: &str = "_objectos_jobs_tick";

/// The columns read back for a [`JobInfo`], in order.
const INFO_COLUMNS: &str = "\"id\", \"handler\", \"queue\", \"status\", \"priority\", \"payload\", \"attempts\", \"max_attempts\", \"error\", \"idempotency_key\", \"schedule\", \"cancel_requested\", \"created_ms\", \"run_at_ms\", \"started_ms\", \"finished_ms\", \"worker\"";

/// The columns a claim returns, in order (see [`Claimed::from_row`]).
const CLAIM_COLUMNS: &str = "\"id\", \"handler\", \"queue\", \"payload\", \"attempts\", \"max_attempts\", \"retry_policy\", \"timeout_ms\", \"idempotency_key\", \"schedule\", \"traceparent\"";

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
        Dialect::Postgres => {
            format!("\"id\" IN (SELECT \"id\" FROM \"{JOB_TABLE}\" WHERE ")
        }
    }
}

/// The text after a [`rows_where`] condition.
fn lock_close(d: Dialect, skip_locked: bool) -> &'static str {
    match (d, skip_locked) {
        (Dialect::Sqlite, _) => ")",
        (Dialect::Postgres, false) => " ORDER BY \"id\" FOR UPDATE)",
        (Dialect::Postgres, true) => " ORDER BY \"id\" FOR UPDATE SKIP LOCKED)",
    }
}

fn sql(dialect: Dialect, text: &str, values: Vec<SqlValue>) -> Result<Sql> {
    Sql::with(dialect, text, values).map_err(|e| JobsError::db("build statement", e))
}

fn wire_ts(ms: i64) -> String {
    ts(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Rows in a `VALUES` list per insert statement (18 values each, under PostgreSQL's 65535
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
    /// idempotency key held by an unfinished job, nothing is written and that job's id is
    /// returned.
    pub async fn insert(&self, store: &dyn Store, job: &NewJob) -> Result<Enqueued> {
        if let Some(key) = &job.idempotency_key {
            // Twice at most: a key row left behind by a job that finished without removing
            // it (a crash between its two statements) is removed and the insert tried again.
            for _ in 0..2 {
                let d = store.dialect();
                let inserted = store
                    .execute(sql(
                        d,
                        &format!(
                            "INSERT INTO \"{KEY_TABLE}\" (\"key\", \"job_id\", \"created_ms\") VALUES (?, ?, ?) ON CONFLICT (\"key\") DO NOTHING"
                        ),
                        vec![key.into(), (&job.id).into(), now_ms().into()],
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
                            "SELECT k.\"job_id\", j.\"status\" FROM \"{KEY_TABLE}\" k LEFT JOIN \"{JOB_TABLE}\" j ON j.\"id\" = k.\"job_id\" WHERE k.\"key\" = ?"
                        ),
                        vec![key.into()],
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
                                "DELETE FROM \"{KEY_TABLE}\" WHERE \"key\" = ? AND \"job_id\" = ?"
                            ),
                            vec![key.into(), id.into()],
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
                "INSERT INTO \"{JOB_TABLE}\" (\"id\", \"created_at\", \"updated_at\", \"created_ms\", \"handler\", \"queue\", \"status\", \"priority\", \"priority_rank\", \"payload\", \"attempts\", \"max_attempts\", \"retry_policy\", \"timeout_ms\", \"idempotency_key\", \"schedule\", \"cancel_requested\", \"run_at_ms\", \"traceparent\") VALUES "
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
                    .push(")");
            }
            store
                .execute(q)
                .await
                .map_err(|e| JobsError::db("insert jobs", e))?;
        }
        Ok(())
    }

    // ------------------------------------------------------------------ claims

    /// Claims up to `limit` due jobs of `queue` for `worker` until `lease_until`, highest
    /// priority first, then oldest: one statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
    /// nodes claim disjoint rows without waiting on each other; on SQLite the single writer
    /// serialises claims).
    pub async fn claim(
        &self,
        queue: &str,
        limit: u32,
        worker: &str,
        lease_until: i64,
    ) -> Result<Vec<Claimed>> {
        let d = self.dialect();
        let lock = match d {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let now = now_ms();
        let q = sql(
            d,
            &format!(
                "UPDATE \"{JOB_TABLE}\" SET \"status\" = 'running', \"attempts\" = \"attempts\" + 1, \"worker\" = ?, \"lease_until_ms\" = ?, \"started_ms\" = ?, \"finished_ms\" = NULL WHERE \"id\" IN (SELECT \"id\" FROM \"{JOB_TABLE}\" WHERE \"queue\" = ? AND \"status\" = 'pending' ORDER BY \"priority_rank\", \"run_at_ms\" LIMIT ?{lock}) RETURNING {CLAIM_COLUMNS}"
            ),
            vec![
                worker.into(),
                lease_until.into(),
                now.into(),
                queue.into(),
                i64::from(limit).into(),
            ],
        )?;
        let rows = self
            .engine
            .writer()
            .fetch_all(q)
            .await
            .map_err(|e| JobsError::db("claim jobs", e))?;
        let (claimed, corrupt) = decode_all(&rows, Claimed::from_row)?;
        self.bury_corrupt(&corrupt, worker).await;
        Ok(claimed)
    }

    /// Dead-letters claimed rows that do not decode: they can never run, and left `running`
    /// they would come back after every lease.
    async fn bury_corrupt(&self, ids: &[JobId], worker: &str) {
        if ids.is_empty() {
            return;
        }
        let mut q = Sql::new(self.dialect());
        q.push(&format!(
            "UPDATE \"{JOB_TABLE}\" SET \"status\" = 'dead', \"error\" = 'the job row does not decode', \"finished_ms\" = "
        ))
        .bind(now_ms())
        .push(", \"lease_until_ms\" = NULL WHERE \"worker\" = ")
        .bind(worker)
        .push(" AND \"id\" IN (")
        .bind_list(ids.iter())
        .push(")");
        if let Err(error) = self.engine.writer().execute(q).await {
            tracing::warn!(%error, "jobs: could not dead-letter undecodable job rows");
        }
    }

    /// Claims, in one statement, the jobs among `ids` that are due (`pending`, or `scheduled`
    /// and past their time), or whose worker stopped renewing its lease (attempts and no
    /// cancel left): what a transport's consumer does with the ids delivered together. An id
    /// missing from the answer is another worker's or finished (a duplicate delivery, to be
    /// acknowledged and dropped) or not due yet.
    pub async fn claim_ids(
        &self,
        ids: &[&str],
        worker: &str,
        lease_until: i64,
    ) -> Result<Vec<Claimed>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let d = self.dialect();
        let now = now_ms();
        let mut q = Sql::new(d);
        q.push(&format!(
            "UPDATE \"{JOB_TABLE}\" SET \"status\" = 'running', \"attempts\" = \"attempts\" + 1, \"worker\" = "
        ))
        .bind(worker)
        .push(", \"lease_until_ms\" = ")
        .bind(lease_until)
        .push(", \"started_ms\" = ")
        .bind(now)
        .push(", \"finished_ms\" = NULL WHERE ")
        // Not SKIP LOCKED: a row locked now is being marked relayed, and must be waited for,
        // not taken for someone else's.
        .push(&lock_open(d))
        .push("\"id\" IN (")
        .bind_list(ids.iter().copied())
        .push(") AND (\"status\" = 'pending' OR (\"status\" = 'scheduled' AND \"run_at_ms\" <= ")
        .bind(now)
        .push(") OR (\"status\" = 'running' AND \"lease_until_ms\" < ")
        .bind(now)
        .push(" AND \"attempts\" < \"max_attempts\" AND \"cancel_requested\" = ")
        .bind(false)
        .push("))")
        .push(lock_close(d, false))
        .push(&format!(" RETURNING {CLAIM_COLUMNS}"));
        let rows = self
            .engine
            .writer()
            .fetch_all(q)
            .await
            .map_err(|e| JobsError::db("claim delivered jobs", e))?;
        let (claimed, corrupt) = decode_all(&rows, Claimed::from_row)?;
        self.bury_corrupt(&corrupt, worker).await;
        Ok(claimed)
    }

    /// Takes up to `limit` pending jobs no transport has accepted, oldest first, for this
    /// relay: each is marked in flight (`relayed_ms` = minus the epoch ms the mark holds
    /// until) so the relays of other nodes skip it while this one publishes. A relay that dies
    /// before [`JobTable::mark_relayed`] leaves marks that expire after `hold_ms`, and the rows
    /// go out again from any relay.
    pub async fn take_unrelayed(
        &self,
        limit: u32,
        hold_ms: i64,
    ) -> Result<Vec<(JobId, String, i32)>> {
        let d = self.dialect();
        let now = now_ms();
        let lock = match d {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let rows = self
            .engine
            .writer()
            .fetch_all(sql(
                d,
                &format!(
                    "UPDATE \"{JOB_TABLE}\" SET \"relayed_ms\" = ? WHERE \"id\" IN (SELECT \"id\" FROM \"{JOB_TABLE}\" WHERE \"status\" = 'pending' AND (\"relayed_ms\" IS NULL OR (\"relayed_ms\" < 0 AND \"relayed_ms\" > ?)) ORDER BY \"run_at_ms\" LIMIT ?{lock}) RETURNING \"id\", \"queue\", \"priority\""
                ),
                vec![
                    (-(now + hold_ms)).into(),
                    (-now).into(),
                    i64::from(limit).into(),
                ],
            )?)
            .await
            .map_err(|e| JobsError::db("take unrelayed jobs", e))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let c = Cols::new(r, "read unrelayed job")?;
            let queue: String = c.get(1)?;
            let priority: i64 = c.get(2)?;
            out.push((c.id, queue, i32::try_from(priority).unwrap_or(0)));
        }
        Ok(out)
    }

    /// Records that a transport has accepted `ids` (after its publisher confirm).
    pub async fn mark_relayed(&self, ids: &[JobId]) -> Result<()> {
        self.set_relay_mark(ids, Some(now_ms()), false, "mark jobs relayed")
            .await
    }

    /// Lifts this relay's in-flight marks from `ids` the transport did not accept, so the next
    /// round (of any node) publishes them again instead of waiting for the marks to expire.
    pub async fn release_relayed(&self, ids: &[JobId]) -> Result<()> {
        self.set_relay_mark(ids, None, true, "release relay marks")
            .await
    }

    /// Sets `relayed_ms` of `ids` to `mark` (of those in flight only, with `only_in_flight`).
    async fn set_relay_mark(
        &self,
        ids: &[JobId],
        mark: Option<i64>,
        only_in_flight: bool,
        what: &'static str,
    ) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let d = self.dialect();
        let mut q = Sql::new(d);
        q.push(&format!("UPDATE \"{JOB_TABLE}\" SET \"relayed_ms\" = "))
            .bind(mark)
            .push(" WHERE ")
            .push(&lock_open(d));
        if only_in_flight {
            q.push("\"relayed_ms\" < 0 AND ");
        }
        q.push("\"id\" IN (")
            .bind_list(ids.iter())
            .push(")")
            .push(lock_close(d, false));
        self.engine
            .writer()
            .execute(q)
            .await
            .map_err(|e| JobsError::db(what, e))?;
        Ok(())
    }

    // ------------------------------------------------------------------ outcomes

    /// Marks `jobs` completed, in one statement, where `worker` still holds them; removes
    /// their idempotency keys.
    pub async fn complete(&self, worker: &str, jobs: &[(JobId, bool)]) -> Result<u64> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let d = self.dialect();
        let now = now_ms();
        let mut q = Sql::new(d);
        q.push(&format!(
            "UPDATE \"{JOB_TABLE}\" SET \"status\" = 'completed', \"finished_ms\" = "
        ))
        .bind(now)
        .push(", \"duration_ms\" = ")
        .bind(now)
        .push(" - \"started_ms\", \"lease_until_ms\" = NULL, \"error\" = NULL WHERE ")
        .push(&lock_open(d))
        .push("\"status\" = 'running' AND \"worker\" = ")
        .bind(worker)
        .push(" AND \"id\" IN (")
        .bind_list(jobs.iter().map(|(id, _)| id))
        .push(")")
        .push(lock_close(d, false));
        let done = self
            .engine
            .writer()
            .execute(q)
            .await
            .map_err(|e| JobsError::db("complete jobs", e))?;
        let keyed: Vec<&JobId> = jobs
            .iter()
            .filter(|(_, keyed)| *keyed)
            .map(|(id, _)| id)
            .collect();
        self.remove_keys(&keyed).await?;
        Ok(done)
    }

    async fn remove_keys(&self, ids: &[&JobId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut q = Sql::new(self.dialect());
        q.push(&format!(
            "DELETE FROM \"{KEY_TABLE}\" WHERE \"job_id\" IN ("
        ))
        .bind_list(ids.iter().copied())
        .push(")");
        self.engine
            .writer()
            .execute(q)
            .await
            .map_err(|e| JobsError::db("remove idempotency keys", e))?;
        Ok(())
    }

    /// Records a failed attempt: a retry after `retry_in_ms` while attempts remain and the
    /// failure is retryable, else `dead`; `cancelled` when a cancel was requested meanwhile.
    /// Returns the status written (`None`: the worker no longer held the job).
    pub async fn fail(
        &self,
        worker: &str,
        job: &Claimed,
        message: &str,
        retry_in_ms: Option<i64>,
        cancelled: bool,
    ) -> Result<Option<JobStatus>> {
        let d = self.dialect();
        let now = now_ms();
        let status = if cancelled {
            JobStatus::Cancelled
        } else if retry_in_ms.is_some() {
            JobStatus::Scheduled
        } else {
            JobStatus::Dead
        };
        let run_at = now + retry_in_ms.unwrap_or(0);
        let finished = if status.is_final() { Some(now) } else { None };
        let q = sql(
            d,
            &format!(
                "UPDATE \"{JOB_TABLE}\" SET \"status\" = ?, \"error\" = ?, \"run_at_ms\" = ?, \"finished_ms\" = ?, \"duration_ms\" = ? - \"started_ms\", \"lease_until_ms\" = NULL, \"relayed_ms\" = NULL WHERE \"id\" = ? AND \"status\" = 'running' AND \"worker\" = ?"
            ),
            vec![
                status.as_str().into(),
                message.into(),
                run_at.into(),
                finished.into(),
                now.into(),
                (&job.id).into(),
                worker.into(),
            ],
        )?;
        let n = self
            .engine
            .writer()
            .execute(q)
            .await
            .map_err(|e| JobsError::db("record job failure", e))?;
        if n == 0 {
            return Ok(None);
        }
        if status.is_final() && job.idempotency_key.is_some() {
            self.remove_keys(&[&job.id]).await?;
        }
        Ok(Some(status))
    }

    // ------------------------------------------------------------------ maintenance

    /// Extends the leases `worker` holds; returns the ids among them whose cancel was
    /// requested (by another node).
    pub async fn heartbeat(&self, worker: &str, lease_until: i64) -> Result<Vec<JobId>> {
        let d = self.dialect();
        self.engine
            .writer()
            .execute(sql(
                d,
                &format!(
                    "UPDATE \"{JOB_TABLE}\" SET \"lease_until_ms\" = ? WHERE {}",
                    // A row locked now is being completed or failed: it needs no renewal.
                    rows_where(d, "\"status\" = 'running' AND \"worker\" = ?", true)
                ),
                vec![lease_until.into(), worker.into()],
            )?)
            .await
            .map_err(|e| JobsError::db("renew leases", e))?;
        let rows = self
            .engine
            .pool()
            .fetch_all(sql(
                d,
                &format!(
                    "SELECT \"id\" FROM \"{JOB_TABLE}\" WHERE \"status\" = 'running' AND \"worker\" = ? AND \"cancel_requested\" = ?"
                ),
                vec![worker.into(), true.into()],
            )?)
            .await
            .map_err(|e| JobsError::db("read cancel requests", e))?;
        rows.iter()
            .map(|r| r.get::<String>(0).map_err(|e| JobsError::db("read job", e)))
            .collect()
    }

    /// Jobs whose worker stopped renewing its lease come back: `pending` again while
    /// attempts remain, else `dead`; `cancelled` if a cancel was requested. Returns the
    /// queues of the jobs that came back.
    pub async fn reclaim_expired(&self) -> Result<Vec<String>> {
        let d = self.dialect();
        let now = now_ms();
        let w = self.engine.writer();
        // Rows locked now are being completed, failed or renewed: not expired after all.
        let expired = &rows_where(d, "\"status\" = 'running' AND \"lease_until_ms\" < ?", true);
        w.execute(sql(
            d,
            &format!(
                "UPDATE \"{JOB_TABLE}\" SET \"status\" = 'cancelled', \"finished_ms\" = ?, \"lease_until_ms\" = NULL WHERE {expired} AND \"cancel_requested\" = ?"
            ),
            vec![now.into(), now.into(), true.into()],
        )?)
        .await
        .map_err(|e| JobsError::db("cancel expired jobs", e))?;
        w.execute(sql(
            d,
            &format!(
                "UPDATE \"{JOB_TABLE}\" SET \"status\" = 'dead', \"finished_ms\" = ?, \"error\" = 'lease expired: the worker stopped (attempts used up)', \"lease_until_ms\" = NULL WHERE {expired} AND \"attempts\" >= \"max_attempts\""
            ),
            vec![now.into(), now.into()],
        )?)
        .await
        .map_err(|e| JobsError::db("dead-letter expired jobs", e))?;
        let rows = w
            .fetch_all(sql(
                d,
                &format!(
                    "UPDATE \"{JOB_TABLE}\" SET \"status\" = 'pending', \"error\" = 'lease expired: the worker stopped; delivered again', \"lease_until_ms\" = NULL, \"relayed_ms\" = NULL WHERE {expired} RETURNING \"queue\""
                ),
                vec![now.into()],
            )?)
            .await
            .map_err(|e| JobsError::db("reclaim expired jobs", e))?;
        Ok(distinct_queues(&rows))
    }

    /// Makes scheduled jobs whose time has come `pending`; returns their queues.
    pub async fn promote_due(&self) -> Result<Vec<String>> {
        let d = self.dialect();
        let now = now_ms();
        let rows = self
            .engine
            .writer()
            .fetch_all(sql(
                d,
                &format!(
                    "UPDATE \"{JOB_TABLE}\" SET \"status\" = 'pending' WHERE {} RETURNING \"queue\"",
                    rows_where(d, "\"status\" = 'scheduled' AND \"run_at_ms\" <= ?", true)
                ),
                vec![now.into()],
            )?)
            .await
            .map_err(|e| JobsError::db("promote due jobs", e))?;
        Ok(distinct_queues(&rows))
    }

    /// Deletes completed and cancelled runs finished before `before_ms`.
    pub async fn prune_finished(&self, before_ms: i64) -> Result<u64> {
        let d = self.dialect();
        self.engine
            .writer()
            .execute(sql(
                d,
                &format!(
                    "DELETE FROM \"{JOB_TABLE}\" WHERE {}",
                    rows_where(
                        d,
                        "\"status\" IN ('completed', 'cancelled') AND \"finished_ms\" < ?",
                        true
                    )
                ),
                vec![before_ms.into()],
            )?)
            .await
            .map_err(|e| JobsError::db("prune finished jobs", e))
    }

    // ------------------------------------------------------------------ admin

    pub async fn get(&self, id: &str) -> Result<Option<JobInfo>> {
        let d = self.dialect();
        let row = self
            .engine
            .pool()
            .fetch_optional(sql(
                d,
                &format!("SELECT {INFO_COLUMNS} FROM \"{JOB_TABLE}\" WHERE \"id\" = ?"),
                vec![id.into()],
            )?)
            .await
            .map_err(|e| JobsError::db("read job", e))?;
        row.as_ref().map(info_from_row).transpose()
    }

    pub async fn list(&self, filter: &JobFilter) -> Result<JobPage> {
        let d = self.dialect();
        let limit = if filter.limit == 0 {
            50
        } else {
            filter.limit.min(1000)
        };
        // Placeholders are numbered as they are bound, so each statement is built whole.
        let build = |head: &str, tail: bool| {
            let mut q = Sql::new(d);
            q.push(head);
            q.push(" WHERE 1 = 1");
            if let Some(s) = filter.status {
                q.push(" AND \"status\" = ").bind(s.as_str());
            }
            if let Some(x) = &filter.queue {
                q.push(" AND \"queue\" = ").bind(x);
            }
            if let Some(h) = &filter.handler {
                q.push(" AND \"handler\" = ").bind(h);
            }
            if tail {
                q.push(" ORDER BY \"created_ms\" DESC, \"id\" DESC LIMIT ")
                    .bind(i64::from(limit))
                    .push(" OFFSET ")
                    .bind(i64::from(filter.offset));
            }
            q
        };
        let pool = self.engine.pool();
        let rows = pool
            .fetch_all(build(
                &format!("SELECT {INFO_COLUMNS} FROM \"{JOB_TABLE}\""),
                true,
            ))
            .await
            .map_err(|e| JobsError::db("list jobs", e))?;
        let total = pool
            .fetch_optional(build(
                &format!("SELECT COUNT(*) FROM \"{JOB_TABLE}\""),
                false,
            ))
            .await
            .map_err(|e| JobsError::db("count jobs", e))?
            .map(|r| r.get::<i64>(0))
            .transpose()
            .map_err(|e| JobsError::db("count jobs", e))?
            .unwrap_or(0);
        // A row that does not decode is left out (and logged) rather than failing the page.
        let (items, _skipped) = decode_all(&rows, info_from_row)?;
        Ok(JobPage {
            items,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    pub async fn counts(&self) -> Result<BTreeMap<String, u64>> {
        let rows = self
            .engine
            .pool()
            .fetch_all(sql(
                self.dialect(),
                &format!("SELECT \"status\", COUNT(*) FROM \"{JOB_TABLE}\" GROUP BY \"status\""),
                vec![],
            )?)
            .await
            .map_err(|e| JobsError::db("count jobs", e))?;
        let mut out = BTreeMap::new();
        for r in rows {
            let s: String = r.get(0).map_err(|e| JobsError::db("count jobs", e))?;
            let n: i64 = r.get(1).map_err(|e| JobsError::db("count jobs", e))?;
            out.insert(s, u64::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }

    /// Cancels a job that has not started; `false` when it is not waiting.
    pub async fn cancel_waiting(&self, id: &str) -> Result<bool> {
        let now = now_ms();
        let n = self
            .engine
            .writer()
            .execute(sql(
                self.dialect(),
                &format!(
                    "UPDATE \"{JOB_TABLE}\" SET \"status\" = 'cancelled', \"finished_ms\" = ?, \"cancel_requested\" = ? WHERE \"id\" = ? AND \"status\" IN ('scheduled', 'pending')"
                ),
                vec![now.into(), true.into(), id.into()],
            )?)
            .await
            .map_err(|e| JobsError::db("cancel job", e))?;
        if n == 1 {
            self.remove_keys(&[&id.to_owned()]).await?;
        }
        Ok(n == 1)
    }

    /// Asks the worker running `id` to stop; `false` when it is not running.
    pub async fn request_cancel(&self, id: &str) -> Result<bool> {
        let n = self
            .engine
            .writer()
            .execute(sql(
                self.dialect(),
                &format!(
                    "UPDATE \"{JOB_TABLE}\" SET \"cancel_requested\" = ? WHERE \"id\" = ? AND \"status\" = 'running'"
                ),
                vec![true.into(), id.into()],
            )?)
            .await
            .map_err(|e| JobsError::db("request job cancel", e))?;
        Ok(n == 1)
    }

    /// Makes a job in one of `from` due again with fresh attempts.
    pub async fn requeue(&self, id: &str, from: &[JobStatus]) -> Result<bool> {
        let d = self.dialect();
        let mut q = Sql::new(d);
        q.push(&format!(
            "UPDATE \"{JOB_TABLE}\" SET \"status\" = 'pending', \"attempts\" = 0, \"run_at_ms\" = "
        ))
        .bind(now_ms())
        .push(", \"finished_ms\" = NULL, \"lease_until_ms\" = NULL, \"worker\" = NULL, \"relayed_ms\" = NULL, \"cancel_requested\" = ")
        .bind(false)
        .push(" WHERE \"id\" = ")
        .bind(id)
        .push(" AND \"status\" IN (")
        .bind_list(from.iter().map(|s| s.as_str()))
        .push(")");
        let n = self
            .engine
            .writer()
            .execute(q)
            .await
            .map_err(|e| JobsError::db("requeue job", e))?;
        Ok(n == 1)
    }

    // ------------------------------------------------------------------ scheduling

    /// Takes or renews the lease `name` for `holder` until `until`; true when `holder` has
    /// it (it was free, expired, or already its own).
    pub async fn try_lease(&self, name: &str, holder: &str, until: i64) -> Result<bool> {
        let now = now_ms();
        let n = self
            .engine
            .writer()
            .execute(sql(
                self.dialect(),
                &format!(
                    "INSERT INTO \"{LEASE_TABLE}\" (\"name\", \"holder\", \"until_ms\") VALUES (?, ?, ?) ON CONFLICT (\"name\") DO UPDATE SET \"holder\" = excluded.\"holder\", \"until_ms\" = excluded.\"until_ms\" WHERE \"{LEASE_TABLE}\".\"until_ms\" < ? OR \"{LEASE_TABLE}\".\"holder\" = ?"
                ),
                vec![name.into(), holder.into(), until.into(), now.into(), holder.into()],
            )?)
            .await
            .map_err(|e| JobsError::db("take lease", e))?;
        Ok(n == 1)
    }

    /// Gives the lease `name` up if `holder` has it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.engine
            .writer()
            .execute(sql(
                self.dialect(),
                &format!("DELETE FROM \"{LEASE_TABLE}\" WHERE \"name\" = ? AND \"holder\" = ?"),
                vec![name.into(), holder.into()],
            )?)
            .await
            .map_err(|e| JobsError::db("release lease", e))?;
        Ok(())
    }

    /// Enqueues the run of `schedule` for `tick_ms` unless some node already did: the tick
    /// row and the job commit together. True when this call enqueued it.
    pub async fn enqueue_tick(&self, job: &NewJob, schedule: &str, tick_ms: i64) -> Result<bool> {
        let tx = self
            .engine
            .begin_own_transaction()
            .await
            .map_err(|e| JobsError::db("begin tick", e))?;
        let n = tx
            .execute(sql(
                self.dialect(),
                &format!(
                    "INSERT INTO \"{TICK_TABLE}\" (\"schedule\", \"tick_ms\", \"job_id\") VALUES (?, ?, ?) ON CONFLICT (\"schedule\", \"tick_ms\") DO NOTHING"
                ),
                vec![schedule.into(), tick_ms.into(), (&job.id).into()],
            )?)
            .await
            .map_err(|e| JobsError::db("record tick", e))?;
        if n == 1 {
            self.insert_rows(&tx, std::slice::from_ref(job)).await?;
        }
        tx.commit()
            .await
            .map_err(|e| JobsError::db("commit tick", e))?;
        Ok(n == 1)
    }

    /// The last tick of `schedule` any node enqueued.
    pub async fn last_tick(&self, schedule: &str) -> Result<Option<i64>> {
        let row = self
            .engine
            .pool()
            .fetch_optional(sql(
                self.dialect(),
                &format!("SELECT MAX(\"tick_ms\") FROM \"{TICK_TABLE}\" WHERE \"schedule\" = ?"),
                vec![schedule.into()],
            )?)
            .await
            .map_err(|e| JobsError::db("read last tick", e))?;
        row.map(|r| r.get::<Option<i64>>(0))
            .transpose()
            .map(Option::flatten)
            .map_err(|e| JobsError::db("read last tick", e))
    }

    /// Deletes tick records older than `before_ms` (they only guard ticks still being
    /// decided).
    pub async fn prune_ticks(&self, before_ms: i64) -> Result<u64> {
        self.engine
            .writer()
            .execute(sql(
                self.dialect(),
                &format!("DELETE FROM \"{TICK_TABLE}\" WHERE \"tick_ms\" < ?"),
                vec![before_ms.into()],
            )?)
            .await
            .map_err(|e| JobsError::db("prune ticks", e))
    }
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
