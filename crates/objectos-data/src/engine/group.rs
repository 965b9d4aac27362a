//! Group commit on a SQLite file: write operations that queue for the single writer while another
//! one runs join its transaction, each inside its own savepoint, and the last of them commits for
//! all. A burst of N creates then costs one COMMIT and writes each page it touched (the table's
//! last leaf, the index leaves, the outbox pages) to the WAL once instead of N times: the WAL
//! appends and the thread hand-offs of BEGIN and COMMIT were most of a create's CPU.
//!
//! Every operation still runs alone on the writer and in order; what changes is only when its
//! changes become durable. A member's result is handed back after the COMMIT that contains it
//! succeeded, so a caller never sees a success the database does not hold. A member that fails
//! is rolled back to its savepoint and leaves the others untouched; a COMMIT that fails fails
//! every member of the group. PostgreSQL (and in-memory SQLite) keep one transaction per
//! operation.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use tokio::sync::{OwnedMutexGuard, oneshot};

use super::DataEngine;
use crate::db;
use crate::error::{DataError, Result};
use crate::outbox;

/// Most operations one transaction holds: bounds the savepoint stack and the wait of the first.
const MAX_OPS: usize = 64;
/// Longest a group stays open: bounds the latency its first member sees.
const MAX_AGE: Duration = Duration::from_millis(8);
/// How long a member waits for the COMMIT before committing the group itself (a queued writer
/// that gave up, a cancelled request): the group never stays open without somebody to close it.
const FLUSH_AFTER: Duration = Duration::from_millis(25);
/// The savepoint each joining operation opens; `ROLLBACK TO` finds the newest one, the failing
/// operation's own. The next joiner releases it in the same round trip as it opens its own, so
/// at most one is open: SQLite copies every page an operation first touches into the savepoint's
/// sub-journal and marks it in every open savepoint's bitmap, so a stack of them cost more per
/// write the longer the group grew, and their sub-journal was only freed at COMMIT.
const SAVEPOINT: &str = "SAVEPOINT objectos_op";
const RELEASE_AND_SAVEPOINT: &str = "RELEASE objectos_op; SAVEPOINT objectos_op";
const ROLLBACK_TO: &str = "ROLLBACK TO objectos_op";

type Outcome = std::result::Result<(), String>;

/// An open write transaction and the operations waiting for it to commit.
pub(crate) struct Group {
    tx: DatabaseTransaction,
    /// The outbox rows of the members that succeeded, written just before the COMMIT.
    outbox: Vec<outbox::Row>,
    /// Members that finished their part and wait for the COMMIT.
    waiting: Vec<oneshot::Sender<Outcome>>,
    ops: usize,
    started: Instant,
    /// A member's savepoint is still open (released by the next joiner).
    savepoint_open: bool,
}

/// One write operation's turn on the writer: its transaction (shared when grouped) and, on
/// SQLite, the writer lock. Settle it with [`WriteUnit::finish`] or [`WriteUnit::discard`];
/// dropped unsettled (a cancelled request), it undoes its own part without harming the group.
pub(crate) struct WriteUnit {
    engine: DataEngine,
    state: Option<Turn>,
    /// Outbox rows of the operation's steps run through [`WriteUnit::run`].
    rows: std::sync::Mutex<Vec<outbox::Row>>,
}

struct Turn {
    guard: Option<OwnedMutexGuard<()>>,
    group: Group,
    /// Joined a group another operation started: its part is behind a savepoint.
    joined: bool,
}

impl DataEngine {
    /// Takes the writer for code outside record operations (migrations, the outbox dispatcher):
    /// waits its turn and commits a group left open, so the writer connection is free.
    pub(crate) async fn lock_writer(&self) -> OwnedMutexGuard<()> {
        let guard = self.queue_for_writer().await;
        let parked = self.take_parked();
        if let Some(group) = parked
            && let Err(reason) = commit_group(self, group).await
        {
            tracing::warn!(error = %reason, "Committing a shared write transaction failed; its operations were told.");
        }
        guard
    }

    async fn queue_for_writer(&self) -> OwnedMutexGuard<()> {
        /// Counts this caller as queued until it holds the lock, even if its future is dropped.
        struct Queued<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Queued<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.inner.write_queue.fetch_add(1, Ordering::AcqRel);
        let _queued = Queued(&self.inner.write_queue);
        self.inner.write_lock.clone().lock_owned().await
    }

    fn take_parked(&self) -> Option<Group> {
        // A poisoned lock only means a panic elsewhere; the slot itself is still consistent.
        self.inner
            .parked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Starts a write operation: joins the open group if there is one, else begins a transaction
    /// (`BEGIN IMMEDIATE` on SQLite, so the write lock is taken at once).
    pub(crate) async fn begin_write(&self) -> Result<WriteUnit> {
        if self.inner.dialect != db::Dialect::Sqlite {
            let tx = self.inner.write.begin().await.map_err(db::map_db_err)?;
            return Ok(self.unit(None, new_group(tx), false));
        }
        let guard = self.queue_for_writer().await;
        if self.inner.group_commit
            && let Some(mut group) = self.take_parked()
        {
            let sql = if group.savepoint_open {
                RELEASE_AND_SAVEPOINT
            } else {
                SAVEPOINT
            };
            match group.tx.execute_unprepared(sql).await {
                Ok(_) => {
                    group.ops += 1;
                    group.savepoint_open = true;
                    return Ok(self.unit(Some(guard), group, true));
                }
                Err(e) => {
                    // The shared transaction is unusable: fail those waiting on it, start afresh.
                    fail_group(group, &e.to_string()).await;
                }
            }
        }
        let options = sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
            ..sea_orm::TransactionOptions::default()
        };
        let tx = self
            .inner
            .write
            .begin_with_options(options)
            .await
            .map_err(db::map_db_err)?;
        Ok(self.unit(Some(guard), new_group(tx), false))
    }

    fn unit(&self, guard: Option<OwnedMutexGuard<()>>, group: Group, joined: bool) -> WriteUnit {
        WriteUnit {
            engine: self.clone(),
            state: Some(Turn {
                guard,
                group,
                joined,
            }),
            rows: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// How many write transactions record operations have committed (several operations share
    /// one under group commit); lets tests and metrics see the grouping.
    pub fn write_commits(&self) -> u64 {
        self.inner.write_commits.load(Ordering::Relaxed)
    }
}

fn new_group(tx: DatabaseTransaction) -> Group {
    Group {
        tx,
        outbox: Vec::new(),
        waiting: Vec::new(),
        ops: 1,
        started: Instant::now(),
        savepoint_open: false,
    }
}

impl WriteUnit {
    /// The transaction to run the operation's statements (and its hooks) in.
    pub(crate) fn tx(&self) -> &DatabaseTransaction {
        match &self.state {
            Some(turn) => &turn.group.tx,
            // `state` is only taken by `finish`/`discard`, which consume the unit.
            None => unreachable!("a settled write unit has no transaction"),
        }
    }

    /// Runs a step of the operation, keeping the outbox rows it writes for the COMMIT.
    pub(crate) async fn run<T>(&self, step: impl Future<Output = Result<T>>) -> Result<T> {
        let (r, rows) = outbox::buffered(step).await;
        if r.is_ok() {
            self.rows
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(rows);
        }
        r
    }

    fn take_rows(&self) -> Vec<outbox::Row> {
        std::mem::take(&mut *self.rows.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Ends the operation with `r`: on success its changes commit (now, or with the group it
    /// leaves open for the next queued writer; either way `Ok` comes back only once committed);
    /// on error only its own changes are undone.
    pub(crate) async fn finish<T>(mut self, r: Result<T>) -> Result<T> {
        let Some(turn) = self.state.take() else {
            return r;
        };
        let engine = self.engine.clone();
        let rows = if r.is_ok() {
            self.take_rows()
        } else {
            Vec::new()
        };
        match settle(&engine, turn, r.is_ok(), rows).await {
            Settled::Done(Ok(())) => r,
            Settled::Done(Err(e)) => match r {
                Ok(_) => Err(e),
                Err(original) => Err(original),
            },
            Settled::Wait(rx) => {
                wait_committed(&engine, rx).await?;
                r
            }
        }
    }

    /// Undoes the operation's own changes (an atomic batch that failed, a validate-only run).
    pub(crate) async fn discard(mut self) {
        if let Some(turn) = self.state.take() {
            let engine = self.engine.clone();
            let _ = settle(&engine, turn, false, Vec::new()).await;
        }
    }
}

impl Drop for WriteUnit {
    fn drop(&mut self) {
        let Some(turn) = self.state.take() else {
            return;
        };
        if !turn.joined {
            // Nobody else is in a group this operation started: dropping the transaction rolls it
            // back (sqlx queues the ROLLBACK) and dropping the guard hands the writer on.
            return;
        }
        // Other operations' committed-to-be work shares this transaction: undo only this part.
        let engine = self.engine.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = settle(&engine, turn, false, Vec::new()).await;
            });
        }
    }
}

enum Settled {
    /// Settled now: the commit (or rollback) outcome.
    Done(Result<()>),
    /// Left in an open group: the COMMIT's outcome arrives here.
    Wait(oneshot::Receiver<Outcome>),
}

/// Undoes a failed part, then commits the group or leaves it open for the next queued writer.
async fn settle(engine: &DataEngine, turn: Turn, ok: bool, rows: Vec<outbox::Row>) -> Settled {
    let Turn {
        guard,
        group,
        joined,
    } = turn;
    let mut group = group;
    group.outbox.extend(rows);
    if !ok {
        if !joined {
            // This operation started the group and nobody joined yet: roll everything back.
            let _ = group.tx.rollback().await;
            drop(guard);
            return Settled::Done(Ok(()));
        }
        if let Err(e) = group.tx.execute_unprepared(ROLLBACK_TO).await {
            fail_group(group, &e.to_string()).await;
            drop(guard);
            return Settled::Done(Ok(()));
        }
    }
    let keep_open = guard.is_some()
        && engine.inner.group_commit
        && engine.inner.write_queue.load(Ordering::Acquire) > 0
        && group.ops < MAX_OPS
        && group.started.elapsed() < MAX_AGE;
    if keep_open {
        let rx = if ok {
            let (tx, rx) = oneshot::channel();
            group.waiting.push(tx);
            Some(rx)
        } else {
            None
        };
        *engine
            .inner
            .parked
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(group);
        drop(guard);
        return match rx {
            Some(rx) => Settled::Wait(rx),
            None => Settled::Done(Ok(())),
        };
    }
    let outcome = commit_group(engine, group).await;
    drop(guard);
    Settled::Done(outcome.map_err(DataError::Database))
}

/// Commits a group and tells every waiting member how it went.
async fn commit_group(engine: &DataEngine, group: Group) -> Outcome {
    let Group {
        tx,
        outbox: rows,
        waiting,
        ..
    } = group;
    let outcome = match outbox::insert_rows(&tx, engine.inner.dialect, rows).await {
        Ok(()) => tx.commit().await.map_err(|e| db::map_db_err(e).to_string()),
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e.to_string())
        }
    };
    if outcome.is_ok() {
        engine.inner.write_commits.fetch_add(1, Ordering::Relaxed);
        engine.inner.outbox_notify.notify_one();
    }
    for member in waiting {
        let _ = member.send(outcome.clone());
    }
    outcome
}

/// Rolls a broken group back and fails everybody waiting on it.
async fn fail_group(group: Group, reason: &str) {
    let Group { tx, waiting, .. } = group;
    let _ = tx.rollback().await;
    tracing::warn!(error = %reason, members = waiting.len(), "A shared write transaction failed and was rolled back.");
    for member in waiting {
        let _ = member.send(Err(format!("the write transaction failed: {reason}")));
    }
}

/// Waits for the COMMIT of the group a member left open; commits it itself if nobody did soon.
async fn wait_committed(engine: &DataEngine, mut rx: oneshot::Receiver<Outcome>) -> Result<()> {
    loop {
        tokio::select! {
            outcome = &mut rx => {
                return match outcome {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(reason)) => Err(DataError::Database(reason)),
                    Err(_) => Err(DataError::Internal(
                        "the shared write transaction ended without committing".into(),
                    )),
                };
            }
            _ = tokio::time::sleep(FLUSH_AFTER) => {
                drop(engine.lock_writer().await);
            }
        }
    }
}
