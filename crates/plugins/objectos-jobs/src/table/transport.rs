//! The statements of a job's way through the table: claims (by queue for the embedded workers,
//! by id for a transport's deliveries), the relay's outbox marks, completions and failures,
//! and the maintenance loop's lease renewals, reclaims, promotions and pruning.
//!
//! On PostgreSQL every statement here that changes several rows takes their locks in id order
//! or skips locked rows ([`rows_where`], [`lock_open`], [`lock_close`]), so statements of one
//! node or of several never wait on each other in a cycle.

use objectos_data::Dialect;
use objectos_data::store::Sql;
use objectos_kernel::contracts::{JobId, JobStatus};

use super::{
    CLAIM_COLUMNS, Claimed, Cols, JOB_TABLE, JobTable, KEY_TABLE, decode_all, distinct_queues,
    lock_close, lock_open, now_ms, picked_close, picked_open, rows_where,
};
use crate::error::Result;

/// `FOR UPDATE SKIP LOCKED` where the database has it: claims and relays of several nodes take
/// disjoint rows without waiting on each other (SQLite's single writer serialises them).
fn skip_locked(d: Dialect) -> &'static str {
    match d {
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        Dialect::Sqlite => "",
    }
}

impl JobTable {
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
        let mut q = Sql::new(d);
        claim_set(&mut q, worker, lease_until, now_ms());
        q.push(&picked_open(d))
            .push("\"queue\" = ")
            .bind(queue)
            .push(" AND \"status\" = 'pending' ORDER BY \"priority_rank\", \"run_at_ms\" LIMIT ")
            .bind(i64::from(limit))
            .push(skip_locked(d))
            .push(picked_close(d))
            .push(&format!(" RETURNING {CLAIM_COLUMNS}"));
        let rows = self.change_returning("claim jobs", q).await?;
        self.claimed_rows(&rows, worker).await
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
        claim_set(&mut q, worker, lease_until, now);
        // Not SKIP LOCKED: a row locked now is being marked relayed, and must be waited for,
        // not taken for someone else's.
        q.push(&lock_open(d))
            .push("\"id\" IN (")
            .bind_list(ids.iter().copied())
            .push(
                ") AND (\"status\" = 'pending' OR (\"status\" = 'scheduled' AND \"run_at_ms\" <= ",
            )
            .bind(now)
            .push(") OR (\"status\" = 'running' AND \"lease_until_ms\" < ")
            .bind(now)
            .push(" AND \"attempts\" < \"max_attempts\" AND \"cancel_requested\" = ")
            .bind(false)
            .push("))")
            .push(&lock_close(d, false))
            .push(&format!(" RETURNING {CLAIM_COLUMNS}"));
        let rows = self.change_returning("claim delivered jobs", q).await?;
        self.claimed_rows(&rows, worker).await
    }

    /// Decodes claimed rows; the ones that do not decode are dead-lettered: they can never run,
    /// and left `running` they would come back after every lease.
    async fn claimed_rows(
        &self,
        rows: &[objectos_data::store::Row],
        worker: &str,
    ) -> Result<Vec<Claimed>> {
        let (claimed, corrupt) = decode_all(rows, Claimed::from_row)?;
        if !corrupt.is_empty() {
            let mut q = Sql::new(self.dialect());
            q.push(&format!(
                "UPDATE \"{JOB_TABLE}\" SET \"status\" = 'dead', \"error\" = 'the job row does not decode', \"finished_ms\" = "
            ))
            .bind(now_ms())
            .push(", \"lease_until_ms\" = NULL WHERE \"worker\" = ")
            .bind(worker)
            .push(" AND \"id\" IN (")
            .bind_list(corrupt.iter())
            .push(")");
            if let Err(error) = self.change("dead-letter undecodable jobs", q).await {
                tracing::warn!(%error, "jobs: could not dead-letter undecodable job rows");
            }
        }
        Ok(claimed)
    }

    // ------------------------------------------------------------------ relay (outbox)

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
        let q = self.stmt(
            &format!(
                "UPDATE \"{JOB_TABLE}\" SET \"relayed_ms\" = ? WHERE {}\"status\" = 'pending' AND (\"relayed_ms\" IS NULL OR (\"relayed_ms\" < 0 AND \"relayed_ms\" > ?)) ORDER BY \"run_at_ms\" LIMIT ?{}{} RETURNING \"id\", \"queue\", \"priority\"",
                picked_open(d),
                skip_locked(d),
                picked_close(d)
            ),
            vec![
                (-(now + hold_ms)).into(),
                (-now).into(),
                i64::from(limit).into(),
            ],
        )?;
        let rows = self.change_returning("take unrelayed jobs", q).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let c = Cols::new(r, "read unrelayed job")?;
            let queue: String = c.get(1)?;
            let priority: i64 = c.get(2)?;
            out.push((c.id, queue, i32::try_from(priority).unwrap_or(0)));
        }
        Ok(out)
    }

    /// Records that a transport has accepted `ids` (after its publisher confirm). Only rows
    /// still waiting (`pending`, or `scheduled` for a delayed copy) take the mark: it only keeps
    /// the relay from publishing a waiting row again, and a row a consumer claimed meanwhile
    /// (the message often arrives before its confirm) is spared a write. Every way back to
    /// waiting (a failed attempt, an expired lease, a requeue) clears the mark anyway.
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
        } else {
            q.push("\"status\" IN ('pending', 'scheduled') AND ");
        }
        q.push("\"id\" IN (")
            .bind_list(ids.iter())
            .push(")")
            .push(&lock_close(d, false));
        self.change(what, q).await?;
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
        .push(&lock_close(d, false));
        let done = self.change("complete jobs", q).await?;
        let keyed: Vec<&JobId> = jobs
            .iter()
            .filter(|(_, keyed)| *keyed)
            .map(|(id, _)| id)
            .collect();
        self.remove_keys(&keyed).await?;
        Ok(done)
    }

    /// Deletes the idempotency keys of finished jobs, so the keys can be used again.
    pub(crate) async fn remove_keys(&self, ids: &[&JobId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut q = Sql::new(self.dialect());
        q.push(&format!(
            "DELETE FROM \"{KEY_TABLE}\" WHERE \"job_id\" IN ("
        ))
        .bind_list(ids.iter().copied())
        .push(")");
        self.change("remove idempotency keys", q).await?;
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
        let q = self.stmt(
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
        if self.change("record job failure", q).await? == 0 {
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
        let renew = self.stmt(
            &format!(
                "UPDATE \"{JOB_TABLE}\" SET \"lease_until_ms\" = ? WHERE {}",
                // A row locked now is being completed or failed: it needs no renewal.
                rows_where(d, "\"status\" = 'running' AND \"worker\" = ?", true)
            ),
            vec![lease_until.into(), worker.into()],
        )?;
        self.change("renew leases", renew).await?;
        let cancels = self.stmt(
            &format!(
                "SELECT \"id\" FROM \"{JOB_TABLE}\" WHERE \"status\" = 'running' AND \"worker\" = ? AND \"cancel_requested\" = ?"
            ),
            vec![worker.into(), true.into()],
        )?;
        let rows = self.read("read cancel requests", cancels).await?;
        rows.iter()
            .map(|r| Ok(Cols::new(r, "read cancel requests")?.id))
            .collect()
    }

    /// Jobs whose worker stopped renewing its lease come back: `pending` again while
    /// attempts remain, else `dead`; `cancelled` if a cancel was requested. Returns the
    /// queues of the jobs that came back.
    pub async fn reclaim_expired(&self) -> Result<Vec<String>> {
        let d = self.dialect();
        let now = now_ms();
        // Rows locked now are being completed, failed or renewed: not expired after all.
        let expired = &rows_where(d, "\"status\" = 'running' AND \"lease_until_ms\" < ?", true);
        let cancel = self.stmt(
            &format!(
                "UPDATE \"{JOB_TABLE}\" SET \"status\" = 'cancelled', \"finished_ms\" = ?, \"lease_until_ms\" = NULL WHERE {expired} AND \"cancel_requested\" = ?"
            ),
            vec![now.into(), now.into(), true.into()],
        )?;
        self.change("cancel expired jobs", cancel).await?;
        let bury = self.stmt(
            &format!(
                "UPDATE \"{JOB_TABLE}\" SET \"status\" = 'dead', \"finished_ms\" = ?, \"error\" = 'lease expired: the worker stopped (attempts used up)', \"lease_until_ms\" = NULL WHERE {expired} AND \"attempts\" >= \"max_attempts\""
            ),
            vec![now.into(), now.into()],
        )?;
        self.change("dead-letter expired jobs", bury).await?;
        let again = self.stmt(
            &format!(
                "UPDATE \"{JOB_TABLE}\" SET \"status\" = 'pending', \"error\" = 'lease expired: the worker stopped; delivered again', \"lease_until_ms\" = NULL, \"relayed_ms\" = NULL WHERE {expired} RETURNING \"queue\""
            ),
            vec![now.into()],
        )?;
        let rows = self.change_returning("reclaim expired jobs", again).await?;
        Ok(distinct_queues(&rows))
    }

    /// Makes scheduled jobs whose time has come `pending`; returns their queues.
    pub async fn promote_due(&self) -> Result<Vec<String>> {
        let d = self.dialect();
        let q = self.stmt(
            &format!(
                "UPDATE \"{JOB_TABLE}\" SET \"status\" = 'pending' WHERE {} RETURNING \"queue\"",
                rows_where(d, "\"status\" = 'scheduled' AND \"run_at_ms\" <= ?", true)
            ),
            vec![now_ms().into()],
        )?;
        let rows = self.change_returning("promote due jobs", q).await?;
        Ok(distinct_queues(&rows))
    }

    /// Deletes completed and cancelled runs finished before `before_ms`.
    pub async fn prune_finished(&self, before_ms: i64) -> Result<u64> {
        let d = self.dialect();
        let q = self.stmt(
            &format!(
                "DELETE FROM \"{JOB_TABLE}\" WHERE {}",
                rows_where(
                    d,
                    "\"status\" IN ('completed', 'cancelled') AND \"finished_ms\" < ?",
                    true
                )
            ),
            vec![before_ms.into()],
        )?;
        self.change("prune finished jobs", q).await
    }
}

/// `UPDATE .. SET` of a claim, up to its `WHERE `: the row runs now for `worker`, with a lease
/// until `lease_until` and one more attempt.
fn claim_set(q: &mut Sql, worker: &str, lease_until: i64, now: i64) {
    q.push(&format!(
        "UPDATE \"{JOB_TABLE}\" SET \"status\" = 'running', \"attempts\" = \"attempts\" + 1, \"worker\" = "
    ))
    .bind(worker)
    .push(", \"lease_until_ms\" = ")
    .bind(lease_until)
    .push(", \"started_ms\" = ")
    .bind(now)
    .push(", \"finished_ms\" = NULL WHERE ");
}
