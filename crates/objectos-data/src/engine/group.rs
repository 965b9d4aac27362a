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
//!
//! A failure that may have ended the transaction behind the engine's back (SQLite rolls a
//! whole transaction back by itself after a full disk, an I/O error, running out of memory or a
//! busy timeout) breaks the group: it is rolled back, every member is told with a retryable
//! error ([`DataError::StorageFull`] or [`DataError::Unavailable`]), and the writer connection
//! is closed and opened afresh. sqlx counts the connection's BEGINs and SAVEPOINTs itself; after
//! such a rollback its count said "in a transaction" while SQLite was not, so its next BEGIN
//! became a SAVEPOINT that opened a transaction nobody ever committed, and every later write
//! was acknowledged without being stored. A fresh connection starts from a state both agree on.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbErr, ExecResult, QueryResult, Statement,
    TransactionTrait,
};
use tokio::sync::oneshot;

use super::DataEngine;
use super::fair::WriterGuard;
use crate::context::OpContext;
use crate::db;
use crate::error::{DataError, Result};
use crate::outbox;

/// Most operations one transaction holds: bounds the savepoint stack and the wait of the first.
const MAX_OPS: usize = 64;
/// Longest a group stays open: bounds the latency its first member sees.
const MAX_AGE: Duration = Duration::from_millis(8);
/// How long a broken group's settlement waits for the writer connection to come back to its
/// pool before giving up on reopening it (it is normally back at once).
const RESET_WAIT: Duration = Duration::from_secs(5);
/// How long a member waits for the COMMIT before committing the group itself (a queued writer
/// that gave up, a cancelled request): the group never stays open without somebody to close it.
const FLUSH_AFTER: Duration = Duration::from_millis(25);
/// The savepoint each joining operation opens; `ROLLBACK TO` finds the newest one, the failing
/// operation's own. The next joiner releases it in the same round trip as it opens its own, so
/// at most one is open: SQLite copies every page an operation first touches into the savepoint's
/// sub-journal and marks it in every open savepoint's bitmap, so a stack of them cost more per
/// write the longer the group grew, and their sub-journal was only freed at COMMIT.
///
/// A joining operation does not open its savepoint in a round trip of its own: the statement
/// is owed ([`Savepoint::Owed`]) and goes out in front of the operation's first query (see
/// [`query_all`]), so a grouped create costs two round trips to the connection's thread instead
/// of three. Statements that return no rows (and hooks' statements through
/// [`crate::WriteTx`]) pay it first in a round trip of its own.
const SAVEPOINT: &str = "SAVEPOINT objectos_op";
const RELEASE_AND_SAVEPOINT: &str = "RELEASE objectos_op; SAVEPOINT objectos_op";
const ROLLBACK_TO: &str = "ROLLBACK TO objectos_op";

tokio::task_local! {
    /// The state of the write operation running in this task (inside [`WriteUnit::run`]).
    static SAVEPOINT_STATE: Arc<std::sync::Mutex<OpState>>;
}

/// What the statements of a write operation left behind for its settlement.
#[derive(Debug, Clone, Default)]
struct OpState {
    savepoint: Savepoint,
    /// A statement failed in a way that may have ended the transaction (see the module docs):
    /// the group cannot be trusted any more.
    broken: Option<Failure>,
}

/// Why a group failed, as every member is told.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    StorageFull(String),
    Unavailable(String),
}

impl Failure {
    fn from_db(err: &DbErr) -> Self {
        match db::transient(err) {
            Some(db::Transient::StorageFull) => Self::StorageFull(err.to_string()),
            _ => Self::Unavailable(err.to_string()),
        }
    }

    /// The failure behind an operation's error, when it is one that breaks a group.
    fn of(err: &DataError) -> Option<Self> {
        match err {
            DataError::StorageFull(m) => Some(Self::StorageFull(m.clone())),
            DataError::Unavailable(m) => Some(Self::Unavailable(m.clone())),
            _ => None,
        }
    }

    fn into_error(self) -> DataError {
        match self {
            Self::StorageFull(m) => DataError::StorageFull(m),
            Self::Unavailable(m) => DataError::Unavailable(m),
        }
    }

    fn detail(&self) -> &str {
        match self {
            Self::StorageFull(m) | Self::Unavailable(m) => m,
        }
    }
}

/// Where a joining operation's savepoint stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Savepoint {
    /// The operation started its transaction (or runs on PostgreSQL): nothing to open.
    #[default]
    None,
    /// Owed: not sent yet, so nothing of the operation reached the database.
    Owed(&'static str),
    /// Sent in front of a statement whose outcome is not known (its caller went away, or the
    /// savepoint statements themselves failed): the savepoint may or may not exist, so it
    /// cannot be rolled back to safely.
    Sent,
    /// The operation's savepoint exists (the statement that carried it came back, with rows or
    /// with an error of its own).
    Open,
}

type Outcome = std::result::Result<(), Failure>;

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
    /// When the operation must let go of a SQLite file's writer (and the bound it came from).
    deadline: Option<(tokio::time::Instant, Duration)>,
    state: Option<Turn>,
    /// Outbox rows of the operation's steps run through [`WriteUnit::run`].
    rows: std::sync::Mutex<Vec<outbox::Row>>,
    /// The operation's savepoint and health, shared with the statements its steps run.
    savepoint: Arc<std::sync::Mutex<OpState>>,
}

struct Turn {
    guard: Option<WriterGuard>,
    group: Group,
    /// Joined a group another operation started: its part is behind a savepoint.
    joined: bool,
}

impl DataEngine {
    /// Takes the writer for code outside record operations (migrations, the outbox dispatcher):
    /// waits its turn and commits a group left open, so the writer connection is free.
    pub(crate) async fn lock_writer(&self) -> WriterGuard {
        let guard = self.queue_for_writer(None).await;
        let parked = self.take_parked();
        if let Some(group) = parked
            && let Err(reason) = commit_group(self, group).await
        {
            tracing::warn!(error = %reason.detail(), "Committing a shared write transaction failed; its operations were told.");
        }
        guard
    }

    /// Remembers a full disk, so the checkpointer gives the WAL's space back (see
    /// `reclaim_wal`).
    fn note_failure(&self, failure: &Failure) {
        if matches!(failure, Failure::StorageFull(_)) && self.inner.group_commit {
            self.inner.storage_full.store(true, Ordering::Release);
        }
    }

    /// Closes the writer connection so the pool opens a fresh one (see the module docs); the
    /// caller holds the writer. Only a SQLite file has a connection of its own for writes: an
    /// in-memory database lives in its connection and PostgreSQL's pool drops broken ones.
    async fn reset_writer(&self) {
        if !self.inner.group_commit {
            return;
        }
        let pool = self.inner.write.get_sqlite_connection_pool();
        match tokio::time::timeout(RESET_WAIT, pool.acquire()).await {
            Ok(Ok(conn)) => {
                if let Err(e) = conn.close().await {
                    tracing::warn!(error = %e, "Closing the writer connection after a failed write transaction failed.");
                }
                tracing::info!(
                    "The writer connection was reopened after a failed write transaction."
                );
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "The writer connection could not be taken to reopen it.");
            }
            Err(_) => {
                tracing::warn!("The writer connection was not returned in time to reopen it.");
            }
        }
    }

    /// Waits for the writer in the organization's turn (`None`: internal work, a turn of its
    /// own), see [`super::fair`].
    async fn queue_for_writer(&self, tenant: Option<&str>) -> WriterGuard {
        /// Counts this caller as queued until it holds the lock, even if its future is dropped.
        struct Queued<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Queued<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.inner.write_queue.fetch_add(1, Ordering::AcqRel);
        let _queued = Queued(&self.inner.write_queue);
        self.inner.write_lock.acquire(tenant).await
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
    pub(crate) async fn begin_write(&self, cx: &OpContext) -> Result<WriteUnit> {
        if self.inner.dialect != db::Dialect::Sqlite {
            // The wait for a pooled connection (and its BEGIN).
            let waited = std::time::Instant::now();
            let tx = self.inner.write.begin().await.map_err(db::map_db_err)?;
            crate::observe::pool_waited(waited);
            return Ok(self.unit(None, new_group(tx), false));
        }
        // The wait for SQLite's single writer: the pool's bottleneck on a file.
        let waited = std::time::Instant::now();
        let guard = self.queue_for_writer(cx.tenant.as_deref()).await;
        crate::observe::pool_waited(waited);
        if self.inner.group_commit
            && let Some(mut group) = self.take_parked()
        {
            let sql = if group.savepoint_open {
                RELEASE_AND_SAVEPOINT
            } else {
                SAVEPOINT
            };
            group.ops += 1;
            let unit = self.unit(Some(guard), group, true);
            lock(&unit.savepoint).savepoint = Savepoint::Owed(sql);
            return Ok(unit);
        }
        let options = sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
            ..sea_orm::TransactionOptions::default()
        };
        let tx = match self.inner.write.begin_with_options(options).await {
            Ok(tx) => tx,
            Err(e) => {
                // A BEGIN that failed (a full disk cannot even take the lock file, an I/O
                // error) leaves the connection as uncertain as a failed COMMIT.
                self.reset_writer().await;
                drop(guard);
                return Err(db::map_db_err(e));
            }
        };
        Ok(self.unit(Some(guard), new_group(tx), false))
    }

    fn unit(&self, guard: Option<WriterGuard>, group: Group, joined: bool) -> WriteUnit {
        // Only a SQLite file's single writer makes everyone wait for a long operation.
        let deadline = guard
            .as_ref()
            .and_then(|_| self.inner.limits.load().write_deadline())
            .map(|d| (tokio::time::Instant::now() + d, d));
        WriteUnit {
            deadline,
            engine: self.clone(),
            state: Some(Turn {
                guard,
                group,
                joined,
            }),
            rows: std::sync::Mutex::new(Vec::new()),
            savepoint: Arc::new(std::sync::Mutex::new(OpState::default())),
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
        let scoped = SAVEPOINT_STATE.scope(self.savepoint.clone(), outbox::buffered(step));
        let (r, rows) = match self.deadline {
            None => scoped.await,
            Some((at, bound)) => match tokio::time::timeout_at(at, scoped).await {
                Ok(done) => done,
                // The step was dropped mid-way; settling the unit as failed undoes its part.
                Err(_) => {
                    return Err(DataError::WriteTimeout {
                        limit_ms: u64::try_from(bound.as_millis()).unwrap_or(u64::MAX),
                    });
                }
            },
        };
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
        let mut state = lock(&self.savepoint).clone();
        if state.broken.is_none() {
            state.broken = r.as_ref().err().and_then(Failure::of);
        }
        match settle(&engine, turn, state, r.is_ok(), rows).await {
            Settled::Done(Ok(())) => r,
            Settled::Done(Err(e)) => match r {
                Ok(_) => Err(e),
                // The group broke under this operation: the retryable failure is the truth,
                // whatever a hook made of the statement's error.
                Err(_) if Failure::of(&e).is_some() => Err(e),
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
            let state = lock(&self.savepoint).clone();
            let _ = settle(&engine, turn, state, false, Vec::new()).await;
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
        let state = lock(&self.savepoint).clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = settle(&engine, turn, state, false, Vec::new()).await;
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
async fn settle(
    engine: &DataEngine,
    turn: Turn,
    state: OpState,
    ok: bool,
    rows: Vec<outbox::Row>,
) -> Settled {
    let Turn {
        guard,
        group,
        joined,
    } = turn;
    let mut group = group;
    let OpState { savepoint, broken } = state;
    if let Some(failure) = broken {
        // The transaction may already be gone (see the module docs): nothing of the group can
        // be committed, everyone waiting is told, and the writer starts over on a fresh
        // connection before anybody else gets it.
        fail_group(engine, group, failure.clone()).await;
        drop(guard);
        return Settled::Done(Err(failure.into_error()));
    }
    if savepoint == Savepoint::Sent {
        // Whether the savepoint exists is unknown, so this part cannot be told apart from the
        // previous member's: the group goes as a whole (nothing of it committed, every member
        // told). Only an abandoned statement carrying the savepoint (a request dropped in that
        // very round trip) or a failing savepoint statement gets here.
        let failure = Failure::Unavailable(
            "an operation sharing the write transaction was interrupted".to_owned(),
        );
        fail_group(engine, group, failure.clone()).await;
        drop(guard);
        return Settled::Done(if ok {
            Err(failure.into_error())
        } else {
            Ok(())
        });
    }
    group.outbox.extend(rows);
    if savepoint == Savepoint::Open {
        group.savepoint_open = true;
    }
    if !ok {
        if !joined {
            // This operation started the group and nobody joined yet: roll everything back.
            if group.tx.rollback().await.is_err() {
                // A ROLLBACK that fails leaves sqlx's transaction count behind SQLite's.
                engine.reset_writer().await;
            }
            drop(guard);
            return Settled::Done(Ok(()));
        }
        // A joined operation that never sent its savepoint wrote nothing: nothing to undo.
        if savepoint == Savepoint::Open
            && let Err(e) = group.tx.execute_unprepared(ROLLBACK_TO).await
        {
            fail_group(engine, group, Failure::from_db(&e)).await;
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
    Settled::Done(outcome.map_err(Failure::into_error))
}

/// Commits a group and tells every waiting member how it went. The caller holds the writer.
///
/// Any failure here is reported as retryable: nothing of the group was stored (a failed COMMIT
/// leaves the transaction rolled back, by SQLite or by the ROLLBACK that follows), whatever the
/// cause, and the connection is reopened because its transaction state is not known.
async fn commit_group(engine: &DataEngine, group: Group) -> Outcome {
    let Group {
        tx,
        outbox: rows,
        waiting,
        ..
    } = group;
    let outcome = match outbox::insert_rows(&tx, engine.inner.dialect, rows).await {
        Ok(()) => match tx.commit().await {
            Ok(()) => Ok(()),
            Err(e) => Err(Failure::from_db(&e)),
        },
        Err(e) => {
            let _ = tx.rollback().await;
            Err(match Failure::of(&e) {
                Some(f) => f,
                None => Failure::Unavailable(e.to_string()),
            })
        }
    };
    match &outcome {
        Ok(()) => {
            engine.inner.write_commits.fetch_add(1, Ordering::Relaxed);
            crate::observe::group_committed(waiting.len() + 1);
            engine.inner.outbox_notify.notify_one();
        }
        Err(failure) => {
            engine.note_failure(failure);
            tracing::warn!(error = %failure.detail(), members = waiting.len() + 1, "A write transaction failed to commit; nothing of it was stored and every operation in it was told.");
            engine.reset_writer().await;
        }
    }
    for member in waiting {
        let _ = member.send(outcome.clone());
    }
    outcome
}

/// Rolls a broken group back, fails everybody waiting on it and reopens the writer connection.
/// The caller holds the writer.
async fn fail_group(engine: &DataEngine, group: Group, failure: Failure) {
    engine.note_failure(&failure);
    let Group { tx, waiting, .. } = group;
    let _ = tx.rollback().await;
    tracing::warn!(error = %failure.detail(), members = waiting.len() + 1, "A write transaction failed and was rolled back; every operation in it was told.");
    for member in waiting {
        let _ = member.send(Err(failure.clone()));
    }
    engine.reset_writer().await;
}

/// Waits for the COMMIT of the group a member left open; commits it itself if nobody did soon.
async fn wait_committed(engine: &DataEngine, mut rx: oneshot::Receiver<Outcome>) -> Result<()> {
    loop {
        tokio::select! {
            outcome = &mut rx => {
                return match outcome {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(failure)) => Err(failure.into_error()),
                    Err(_) => Err(DataError::Unavailable(
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

fn lock(m: &std::sync::Mutex<OpState>) -> std::sync::MutexGuard<'_, OpState> {
    // A poisoned lock only means a panic elsewhere; the state itself is a plain value.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes the savepoint the running operation owes, if any (marking it sent).
fn take_owed() -> Option<(Arc<std::sync::Mutex<OpState>>, &'static str)> {
    SAVEPOINT_STATE
        .try_with(|state| {
            let mut s = lock(state);
            match s.savepoint {
                Savepoint::Owed(sql) => {
                    s.savepoint = Savepoint::Sent;
                    Some((state.clone(), sql))
                }
                _ => None,
            }
        })
        .ok()
        .flatten()
}

fn mark_open(state: &std::sync::Mutex<OpState>) {
    lock(state).savepoint = Savepoint::Open;
}

/// After the statement that carried the savepoint came back: SQLite ran the savepoint
/// statements before the statement itself (each is prepared only when the previous one is
/// done), so an error of the statement (a constraint, a bad value) leaves the savepoint in place
/// and only an error of the savepoint statements themselves leaves its state unknown.
fn settle_sent(state: &std::sync::Mutex<OpState>, err: Option<&DbErr>) {
    let savepoint_failed = err.is_some_and(|e| e.to_string().contains("savepoint"));
    if !savepoint_failed {
        mark_open(state);
    }
}

/// Notes a statement failure of the running operation that may have ended its transaction.
fn note_failure<T>(r: std::result::Result<T, DbErr>) -> std::result::Result<T, DbErr> {
    if let Err(e) = &r
        && db::leaves_transaction_unknown(e)
    {
        let _ = SAVEPOINT_STATE.try_with(|state| {
            let mut s = lock(state);
            if s.broken.is_none() {
                s.broken = Some(Failure::from_db(e));
            }
        });
    }
    r
}

/// Runs a query on the write transaction `tx`, sending the savepoint the running operation owes
/// in the same round trip (SQLite runs the statements of one text in order; the savepoint
/// statements take no parameters and return no rows).
pub(crate) async fn query_all(
    tx: &DatabaseTransaction,
    stmt: Statement,
) -> std::result::Result<Vec<QueryResult>, DbErr> {
    carrying_owed(stmt, |s| tx.query_all_raw(s)).await
}

/// Like [`query_all`], for the first row only.
pub(crate) async fn query_one(
    tx: &DatabaseTransaction,
    stmt: Statement,
) -> std::result::Result<Option<QueryResult>, DbErr> {
    carrying_owed(stmt, |s| tx.query_one_raw(s)).await
}

/// Runs `stmt` through `run`, with the owed savepoint (if any) in front of it.
async fn carrying_owed<T, F, Fut>(stmt: Statement, run: F) -> std::result::Result<T, DbErr>
where
    F: FnOnce(Statement) -> Fut,
    Fut: Future<Output = std::result::Result<T, DbErr>>,
{
    let Some((state, sql)) = take_owed() else {
        return note_failure(run(stmt).await);
    };
    let stmt = Statement {
        sql: format!("{sql}; {}", stmt.sql),
        ..stmt
    };
    let r = run(stmt).await;
    settle_sent(&state, r.as_ref().err());
    note_failure(r)
}

/// Sends the savepoint the running operation owes on its own, before a statement whose row
/// count matters (SQLite reports a savepoint statement with the previous statement's count).
pub(crate) async fn pay_owed(tx: &DatabaseTransaction) -> std::result::Result<(), DbErr> {
    if let Some((state, sql)) = take_owed() {
        note_failure(tx.execute_unprepared(sql).await)?;
        mark_open(&state);
    }
    Ok(())
}

/// Runs a statement without rows on the write transaction `tx`, after the owed savepoint.
pub(crate) async fn execute(
    tx: &DatabaseTransaction,
    stmt: Statement,
) -> std::result::Result<ExecResult, DbErr> {
    pay_owed(tx).await?;
    note_failure(tx.execute_raw(stmt).await)
}

/// Runs unprepared SQL (no parameters) on the write transaction `tx`, after the owed savepoint.
pub(crate) async fn execute_unprepared(
    tx: &DatabaseTransaction,
    sql: &str,
) -> std::result::Result<ExecResult, DbErr> {
    pay_owed(tx).await?;
    note_failure(tx.execute_unprepared(sql).await)
}

/// A write transaction of a plugin's own, for its private tables (sessions, audit chains,
/// assignments), on the engine's writer: on a SQLite file it waits its turn for the writer
/// (committing a group left open first), so it never races the engine's writes for the file
/// lock, and a failure that may have ended the transaction behind sqlx's back (a full disk, an
/// I/O error) gets the writer connection reopened exactly as the engine's own writes do (see
/// the module docs) instead of leaving it believing it is still in a transaction. On
/// PostgreSQL it is a plain transaction from the pool.
///
/// Statements go through its [`ConnectionTrait`] impl; [`OwnTransaction::commit`] makes them
/// durable; dropping it uncommitted rolls back. No engine operation may run while it is open
/// (on SQLite that would wait for the writer it holds).
pub struct OwnTransaction {
    engine: DataEngine,
    guard: Option<WriterGuard>,
    tx: Option<DatabaseTransaction>,
    broken: std::sync::Mutex<Option<Failure>>,
}

impl std::fmt::Debug for OwnTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnTransaction")
            .field("dialect", &self.engine.inner.dialect)
            .finish_non_exhaustive()
    }
}

impl DataEngine {
    /// Opens an [`OwnTransaction`] (`BEGIN IMMEDIATE` on SQLite: the write lock from the start,
    /// so what it reads stays true until it commits).
    pub async fn begin_own_transaction(&self) -> Result<OwnTransaction> {
        let guard = if self.inner.dialect == db::Dialect::Sqlite {
            Some(self.lock_writer().await)
        } else {
            None
        };
        let options = sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
            ..sea_orm::TransactionOptions::default()
        };
        match self.inner.write.begin_with_options(options).await {
            Ok(tx) => Ok(OwnTransaction {
                engine: self.clone(),
                guard,
                tx: Some(tx),
                broken: std::sync::Mutex::new(None),
            }),
            Err(e) => {
                if guard.is_some() {
                    self.reset_writer().await;
                }
                Err(db::map_db_err(e))
            }
        }
    }
}

impl OwnTransaction {
    fn tx(&self) -> std::result::Result<&DatabaseTransaction, DbErr> {
        self.tx
            .as_ref()
            .ok_or_else(|| DbErr::Custom("the transaction has ended".to_owned()))
    }

    fn note<T>(&self, r: std::result::Result<T, DbErr>) -> std::result::Result<T, DbErr> {
        if let Err(e) = &r
            && db::leaves_transaction_unknown(e)
        {
            let mut broken = self.broken.lock().unwrap_or_else(|p| p.into_inner());
            if broken.is_none() {
                *broken = Some(Failure::from_db(e));
            }
        }
        r
    }

    fn take_broken(&self) -> Option<Failure> {
        self.broken.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Commits. A failure is retryable (nothing was stored) and leaves the writer connection
    /// reopened.
    pub async fn commit(mut self) -> Result<()> {
        let (Some(tx), guard) = (self.tx.take(), self.guard.take()) else {
            return Err(DataError::Internal("the transaction has ended".into()));
        };
        if let Some(failure) = self.take_broken() {
            let _ = tx.rollback().await;
            if guard.is_some() {
                self.engine.note_failure(&failure);
                self.engine.reset_writer().await;
            }
            return Err(failure.into_error());
        }
        match tx.commit().await {
            Ok(()) => Ok(()),
            Err(e) => {
                let failure = Failure::from_db(&e);
                if guard.is_some() {
                    self.engine.note_failure(&failure);
                    self.engine.reset_writer().await;
                }
                Err(failure.into_error())
            }
        }
    }

    /// Rolls back (what dropping it does, but awaited).
    pub async fn rollback(mut self) -> Result<()> {
        let (Some(tx), guard) = (self.tx.take(), self.guard.take()) else {
            return Ok(());
        };
        let failed = tx.rollback().await.is_err() || self.take_broken().is_some();
        if failed && guard.is_some() {
            self.engine.reset_writer().await;
        }
        Ok(())
    }
}

impl Drop for OwnTransaction {
    fn drop(&mut self) {
        let (Some(tx), guard) = (self.tx.take(), self.guard.take()) else {
            return;
        };
        let broken = self.take_broken().is_some();
        let engine = self.engine.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    // The writer is handed on only after the rollback (and a reset, if the
                    // connection's state is in doubt).
                    let failed = tx.rollback().await.is_err() || broken;
                    if failed && guard.is_some() {
                        engine.reset_writer().await;
                    }
                    drop(guard);
                });
            }
            // No runtime: sqlx queues the rollback when the transaction is dropped.
            Err(_) => drop(tx),
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for OwnTransaction {
    fn get_database_backend(&self) -> sea_orm::DbBackend {
        self.engine.inner.dialect.backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> std::result::Result<ExecResult, DbErr> {
        let r = self.tx()?.execute_raw(stmt).await;
        self.note(r)
    }

    async fn execute_unprepared(&self, sql: &str) -> std::result::Result<ExecResult, DbErr> {
        let r = self.tx()?.execute_unprepared(sql).await;
        self.note(r)
    }

    async fn query_one_raw(
        &self,
        stmt: Statement,
    ) -> std::result::Result<Option<QueryResult>, DbErr> {
        let r = self.tx()?.query_one_raw(stmt).await;
        self.note(r)
    }

    async fn query_all_raw(&self, stmt: Statement) -> std::result::Result<Vec<QueryResult>, DbErr> {
        let r = self.tx()?.query_all_raw(stmt).await;
        self.note(r)
    }
}
