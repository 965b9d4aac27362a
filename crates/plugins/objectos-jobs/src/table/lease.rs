//! The scheduler's statements: its leader lease and the `(schedule, tick)` records that make
//! each tick run once per cluster.

use objectos_data::store::Store;

use super::{JobTable, LEASE_TABLE, NewJob, TICK_TABLE, col, now_ms, sql};
use crate::error::{JobsError, Result};

impl JobTable {
    /// Takes or renews the lease `name` for `holder` until `until`; true when `holder` has
    /// it (it was free, expired, or already its own).
    pub async fn try_lease(&self, name: &str, holder: &str, until: i64) -> Result<bool> {
        let q = self.stmt(
            &format!(
                "INSERT INTO \"{LEASE_TABLE}\" (\"name\", \"holder\", \"until_ms\") VALUES (?, ?, ?) ON CONFLICT (\"name\") DO UPDATE SET \"holder\" = excluded.\"holder\", \"until_ms\" = excluded.\"until_ms\" WHERE \"{LEASE_TABLE}\".\"until_ms\" < ? OR \"{LEASE_TABLE}\".\"holder\" = ?"
            ),
            vec![name.into(), holder.into(), until.into(), now_ms().into(), holder.into()],
        )?;
        Ok(self.change("take lease", q).await? == 1)
    }

    /// Gives the lease `name` up if `holder` has it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let q = self.stmt(
            &format!("DELETE FROM \"{LEASE_TABLE}\" WHERE \"name\" = ? AND \"holder\" = ?"),
            vec![name.into(), holder.into()],
        )?;
        self.change("release lease", q).await?;
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
        let q = self.stmt(
            &format!("SELECT MAX(\"tick_ms\") FROM \"{TICK_TABLE}\" WHERE \"schedule\" = ?"),
            vec![schedule.into()],
        )?;
        match self.read_one("read last tick", q).await? {
            Some(row) => col(&row, 0, "read last tick"),
            None => Ok(None),
        }
    }

    /// Deletes tick records older than `before_ms` (they only guard ticks still being
    /// decided).
    pub async fn prune_ticks(&self, before_ms: i64) -> Result<u64> {
        let q = self.stmt(
            &format!("DELETE FROM \"{TICK_TABLE}\" WHERE \"tick_ms\" < ?"),
            vec![before_ms.into()],
        )?;
        self.change("prune ticks", q).await
    }
}
