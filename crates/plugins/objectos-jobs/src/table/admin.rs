//! What operators ask of the table (`/api/v1/jobs`, `objectos jobs`, the `JobQueue`
//! contract's get, list, cancel and retry): reads through the pool, and the single-row state
//! changes an operator makes.

use std::collections::BTreeMap;

use objectos_data::store::Sql;
use objectos_kernel::contracts::{JobFilter, JobInfo, JobPage, JobStatus};

use super::{INFO_COLUMNS, JOB_TABLE, JobTable, col, decode_all, info_from_row, now_ms};
use crate::error::Result;

impl JobTable {
    pub async fn get(&self, id: &str) -> Result<Option<JobInfo>> {
        let q = self.stmt(
            &format!("SELECT {INFO_COLUMNS} FROM \"{JOB_TABLE}\" WHERE \"id\" = ?"),
            vec![id.into()],
        )?;
        let row = self.read_one("read job", q).await?;
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
            if let Some(o) = &filter.organization_id {
                q.push(" AND \"organization_id\" = ").bind(o);
            }
            if tail {
                q.push(" ORDER BY \"created_ms\" DESC, \"id\" DESC LIMIT ")
                    .bind(i64::from(limit))
                    .push(" OFFSET ")
                    .bind(i64::from(filter.offset));
            }
            q
        };
        let rows = self
            .read(
                "list jobs",
                build(&format!("SELECT {INFO_COLUMNS} FROM \"{JOB_TABLE}\""), true),
            )
            .await?;
        let total: i64 = match self
            .read_one(
                "count jobs",
                build(&format!("SELECT COUNT(*) FROM \"{JOB_TABLE}\""), false),
            )
            .await?
        {
            Some(row) => col(&row, 0, "count jobs")?,
            None => 0,
        };
        // A row that does not decode is left out (and logged) rather than failing the page.
        let (items, _skipped) = decode_all(&rows, info_from_row)?;
        Ok(JobPage {
            items,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    pub async fn counts(&self) -> Result<BTreeMap<String, u64>> {
        let q = self.stmt(
            &format!("SELECT \"status\", COUNT(*) FROM \"{JOB_TABLE}\" GROUP BY \"status\""),
            vec![],
        )?;
        let mut out = BTreeMap::new();
        for r in self.read("count jobs", q).await? {
            let n: i64 = col(&r, 1, "count jobs")?;
            out.insert(col(&r, 0, "count jobs")?, u64::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }

    /// Jobs due and not yet claimed, per queue (the `(status, run_at_ms)` index finds them).
    pub async fn pending_by_queue(&self) -> Result<BTreeMap<String, u64>> {
        let q = self.stmt(
            &format!(
                "SELECT \"queue\", COUNT(*) FROM \"{JOB_TABLE}\" WHERE \"status\" = 'pending' GROUP BY \"queue\""
            ),
            vec![],
        )?;
        let mut out = BTreeMap::new();
        for r in self.read("count pending jobs", q).await? {
            let n: i64 = col(&r, 1, "count pending jobs")?;
            out.insert(
                col(&r, 0, "count pending jobs")?,
                u64::try_from(n).unwrap_or(0),
            );
        }
        Ok(out)
    }

    /// Cancels a job that has not started; `false` when it is not waiting.
    pub async fn cancel_waiting(&self, id: &str) -> Result<bool> {
        let q = self.stmt(
            &format!(
                "UPDATE \"{JOB_TABLE}\" SET \"status\" = 'cancelled', \"finished_ms\" = ?, \"cancel_requested\" = ? WHERE \"id\" = ? AND \"status\" IN ('scheduled', 'pending')"
            ),
            vec![now_ms().into(), true.into(), id.into()],
        )?;
        let n = self.change("cancel job", q).await?;
        if n == 1 {
            self.remove_keys(&[&id.to_owned()]).await?;
        }
        Ok(n == 1)
    }

    /// Asks the worker running `id` to stop; `false` when it is not running.
    pub async fn request_cancel(&self, id: &str) -> Result<bool> {
        let q = self.stmt(
            &format!(
                "UPDATE \"{JOB_TABLE}\" SET \"cancel_requested\" = ? WHERE \"id\" = ? AND \"status\" = 'running'"
            ),
            vec![true.into(), id.into()],
        )?;
        Ok(self.change("request job cancel", q).await? == 1)
    }

    /// Makes a job in one of `from` due again with fresh attempts.
    pub async fn requeue(&self, id: &str, from: &[JobStatus]) -> Result<bool> {
        let mut q = Sql::new(self.dialect());
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
        Ok(self.change("requeue job", q).await? == 1)
    }
}
