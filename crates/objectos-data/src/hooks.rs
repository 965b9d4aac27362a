//! The interceptor pipeline: ordered before/after hooks per operation, run inside the operation's
//! transaction, able to rewrite the query (RLS), the input (FLS, defaults) and see the result.

use std::fmt;

use async_trait::async_trait;
use objectos_spec::object::ObjectSchema;
use objectos_spec::query::QueryAst;
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult, Statement,
};

use crate::Record;
use crate::context::OpContext;
use crate::error::Result;

/// The operation a hook runs around.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Find,
    Get,
    Count,
    Aggregate,
    Create,
    Update,
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Find => "find",
            Self::Get => "get",
            Self::Count => "count",
            Self::Aggregate => "aggregate",
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }

    /// True for operations that change records.
    pub fn is_write(self) -> bool {
        matches!(self, Self::Create | Self::Update | Self::Delete)
    }
}

/// What a hook sees and may change.
///
/// - `query`: for find/get/count/aggregate/update/delete, the query that selects the records;
///   before-hooks may AND filters into `query.filter` (row-level security). For get, update and
///   delete it starts as `id = <id>`; a record the narrowed filter excludes is reported as not found.
/// - `input`: for create/update, the record or patch being written (system fields already removed).
/// - `previous`: for update/delete, the record as it was.
/// - `result`: for get/create/update (after-hooks), the record returned to the caller.
/// - `records`: for find (after-hooks), the page of records returned.
/// - `tx`: for create/update/delete, the operation's transaction; rows written through it commit
///   or roll back with the change. Reads (find/get/count/aggregate) run without a transaction
///   (one statement, or a few read-only ones), so it is `None` there: a BEGIN/COMMIT pair would
///   double the round trips of every secured read for no consistency a read needs.
pub struct HookContext<'a> {
    pub cx: &'a OpContext,
    pub object: &'a ObjectSchema,
    pub operation: Operation,
    pub query: Option<&'a mut QueryAst>,
    pub input: Option<&'a mut Record>,
    pub previous: Option<&'a Record>,
    pub result: Option<&'a mut Record>,
    pub records: Option<&'a mut Vec<Record>>,
    /// Reached through [`HookContext::write_tx`], which keeps the hook's statements inside the
    /// operation's own part of a shared (group-committed) transaction.
    pub(crate) tx: Option<&'a DatabaseTransaction>,
}

impl<'a> HookContext<'a> {
    /// The write transaction, for hooks that write rows that must commit with the change.
    /// An error (not a panic) when called from a read, where there is none.
    pub fn write_tx(&self) -> Result<WriteTx<'a>> {
        self.tx.map(WriteTx::new).ok_or_else(|| {
            crate::error::DataError::Internal(format!(
                "{} ran a write-only hook step during {} (no transaction)",
                self.object.name,
                self.operation.as_str()
            ))
        })
    }

    /// Whether the operation runs in a write transaction (create, update, delete).
    pub fn in_write_transaction(&self) -> bool {
        self.tx.is_some()
    }
}

/// A write operation's transaction as hooks see it: a `ConnectionTrait` whose statements
/// commit or roll back with the operation. On a SQLite file several operations may share one
/// transaction (group commit), each behind its own savepoint; statements sent through this
/// type land behind the operation's savepoint, which the bare transaction would not promise.
#[derive(Clone, Copy)]
pub struct WriteTx<'a> {
    tx: &'a DatabaseTransaction,
}

impl fmt::Debug for WriteTx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteTx")
            .field("backend", &self.tx.get_database_backend())
            .finish()
    }
}

impl<'a> WriteTx<'a> {
    /// The write operation's transaction, for its hooks and follow-up writes.
    pub(crate) fn new(tx: &'a DatabaseTransaction) -> Self {
        Self { tx }
    }

    /// The engine's own statements take the transaction; its statement paths keep the same
    /// savepoint promise.
    pub(crate) fn transaction(&self) -> &'a DatabaseTransaction {
        self.tx
    }
}

#[async_trait]
impl ConnectionTrait for WriteTx<'_> {
    fn get_database_backend(&self) -> DbBackend {
        self.tx.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> std::result::Result<ExecResult, DbErr> {
        crate::engine::group_execute(self.tx, stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> std::result::Result<ExecResult, DbErr> {
        crate::engine::group_execute_unprepared(self.tx, sql).await
    }

    async fn query_one_raw(
        &self,
        stmt: Statement,
    ) -> std::result::Result<Option<QueryResult>, DbErr> {
        crate::engine::group_query_one(self.tx, stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> std::result::Result<Vec<QueryResult>, DbErr> {
        crate::engine::group_query_all(self.tx, stmt).await
    }
}

impl fmt::Debug for HookContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookContext")
            .field("object", &self.object.name)
            .field("operation", &self.operation)
            .finish_non_exhaustive()
    }
}

/// A plugin's hook into every engine operation. Errors abort the operation and roll it back.
#[async_trait]
pub trait Interceptor: Send + Sync + 'static {
    /// A name for logs and errors.
    fn name(&self) -> &str;
    /// Lower runs first (before-hooks ascending; after-hooks in the same order).
    fn order(&self) -> i32 {
        0
    }
    /// Whether the hook wants this object and operation.
    fn applies_to(&self, object: &str, op: Operation) -> bool {
        let _ = (object, op);
        true
    }
    /// Runs before the operation touches the database.
    async fn before(&self, hook: &mut HookContext<'_>) -> Result<()> {
        let _ = hook;
        Ok(())
    }
    /// Runs after the operation, still inside its transaction.
    async fn after(&self, hook: &mut HookContext<'_>) -> Result<()> {
        let _ = hook;
        Ok(())
    }
}
