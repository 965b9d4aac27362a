//! Transactional enqueue: the part of the job queue that needs the caller's write transaction.
//!
//! `objectos_kernel::contracts::JobQueue` cannot take a transaction: the kernel knows no SQL,
//! and the transaction types ([`crate::WriteTx`], [`crate::OwnTransaction`]) live here. A job
//! queue whose jobs are rows in the same database implements [`TransactionalJobQueue`] and
//! registers it as the `queue` service (the same object is the `job` service as a plain
//! `JobQueue`); a plugin that must enqueue atomically with its own write looks `queue` up as
//! `dyn TransactionalJobQueue` and passes the [`Store`] it writes through. The job's row is
//! written by that store, so it commits or rolls back with the caller's change.

use async_trait::async_trait;
use objectos_kernel::contracts::{EnqueueRequest, Enqueued, JobError, JobQueue};

use crate::store::Store;

/// A [`JobQueue`] that can also enqueue inside a caller's transaction.
#[async_trait]
pub trait TransactionalJobQueue: JobQueue {
    /// Writes the job through `tx` (a hook's `WriteTx`, an `OwnTransaction`): it exists if and
    /// only if `tx` commits. Workers see it after the commit (at their next poll, or at once
    /// when the caller runs [`TransactionalJobQueue::wake`] after committing).
    async fn enqueue_in(
        &self,
        tx: &dyn Store,
        request: EnqueueRequest,
    ) -> Result<Enqueued, JobError>;

    /// Tells this node's workers of `queue` (`DEFAULT_QUEUE` when the request named none)
    /// that jobs were committed there (a hint; polling finds them anyway).
    fn wake(&self, queue: &str);
}
