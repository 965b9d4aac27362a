//! [`JobsAdmin`]: the job table without a running kernel, for `objectos jobs list|retry|
//! dead-letters`. Changes are written to the table only; a running server's workers pick
//! retried and replayed jobs up at their next poll.

use objectos_data::{DataConfig, DataEngine};
use objectos_kernel::contracts::{JobError, JobFilter, JobInfo, JobPage, JobStatus};

use crate::error::{JobsError, Result};
use crate::table::{JobTable, invalid_state};

/// Direct access to the job table (CLI, tests).
#[derive(Debug, Clone)]
pub struct JobsAdmin {
    table: JobTable,
}

impl JobsAdmin {
    /// Opens the server's database at `database_url` with only the jobs plugin's schema
    /// declared, creating or migrating it like the data plugin would.
    pub async fn connect(database_url: &str) -> Result<Self> {
        let engine = DataEngine::open(DataConfig {
            database_url: database_url.to_owned(),
            metadata_dirs: Vec::new(),
            include_base: false,
            max_connections: 2,
            auto_migrate: true,
            owned: vec![crate::schema::schema().owned_by(crate::PLUGIN_ID)],
        })
        .await
        .map_err(|e| JobsError::db("connect", e))?;
        Ok(Self::from_engine(&engine))
    }

    pub fn from_engine(engine: &DataEngine) -> Self {
        Self {
            table: JobTable::new(engine.clone()),
        }
    }

    pub async fn list(&self, filter: &JobFilter) -> Result<JobPage> {
        self.table.list(filter).await
    }

    pub async fn get(&self, id: &str) -> Result<Option<JobInfo>> {
        self.table.get(id).await
    }

    /// Makes a failed, dead or cancelled job pending again with fresh attempts.
    pub async fn retry(&self, id: &str) -> Result<JobInfo> {
        self.requeue(
            id,
            &[JobStatus::Failed, JobStatus::Dead, JobStatus::Cancelled],
            "only a failed, dead or cancelled job can be retried",
        )
        .await
    }

    /// Makes a dead job pending again with fresh attempts.
    pub async fn replay(&self, id: &str) -> Result<JobInfo> {
        self.requeue(id, &[JobStatus::Dead], "only a dead job can be replayed")
            .await
    }

    async fn requeue(&self, id: &str, from: &[JobStatus], refusal: &str) -> Result<JobInfo> {
        let moved = self.table.requeue(id, from).await?;
        let info = self
            .table
            .get(id)
            .await?
            .ok_or_else(|| JobError::NotFound(id.to_owned()))?;
        if moved {
            Ok(info)
        } else {
            Err(invalid_state(&info, refusal).into())
        }
    }
}
