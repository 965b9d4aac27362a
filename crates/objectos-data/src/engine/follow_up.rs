//! Follow-up writes: a caller's own statements run in the transaction of one create or update,
//! with the written record in hand, committed or rolled back with it.
//!
//! A plugin that stores a record and rows of its own about it (a message and its pending
//! contents, its idempotency key, its delivery job) needs them all or none. An interceptor can
//! write in the operation's transaction, but it learns what to write only from the record, so a
//! caller with more to say had to hand it over out of band (a task-local set around the call,
//! silently empty if the hook ever ran elsewhere). [`DataEngine::create_with`] and
//! [`DataEngine::update_with`] take the follow-up as an argument instead: it runs after the
//! INSERT or UPDATE and the after-hooks, inside the same [`super::WriteUnit::run`] step (the
//! write unit `DataEngine::write_one` opens for every single-record write; so under the
//! operation's savepoint on a grouped SQLite file, and within `maxWriteMillis`), and before the
//! outbox row, so what it sets on the record reaches the caller and the event.

use async_trait::async_trait;

use super::DataEngine;
use crate::Record;
use crate::context::OpContext;
use crate::error::Result;
use crate::hooks::WriteTx;
use crate::observe::Op;

/// Writes a caller runs in the transaction of one create or update ([`DataEngine::create_with`],
/// [`DataEngine::update_with`]).
///
/// `run` gets the operation's transaction and the record as written (system fields, computed
/// fields, what after-hooks set). Its statements commit with the record or not at all: an error
/// rolls back the record, the follow-up's own statements, the after-hooks' rows and the event,
/// and is what the call returns. Changes to `record` are what the caller and the record's event
/// see; storing them in the row is the follow-up's own statement (through `tx`).
#[async_trait]
pub trait FollowUp: Send {
    /// What the follow-up hands back to the caller beside the record.
    type Output: Send;

    async fn run(self, tx: WriteTx<'_>, record: &mut Record) -> Result<Self::Output>;
}

/// The follow-up of a plain create or update: nothing.
pub(super) struct NoFollowUp;

#[async_trait]
impl FollowUp for NoFollowUp {
    type Output = ();

    async fn run(self, _tx: WriteTx<'_>, _record: &mut Record) -> Result<()> {
        Ok(())
    }
}

impl DataEngine {
    /// [`DataEngine::create`], then `then` in the same transaction with the created record
    /// (see [`FollowUp`]): the record and the follow-up's writes commit together or not at all.
    /// Returns the record and the follow-up's output.
    #[tracing::instrument(name = "data.create", level = "debug", skip_all, fields(object = object))]
    pub async fn create_with<F: FollowUp>(
        &self,
        cx: &OpContext,
        object: &str,
        data: Record,
        then: F,
    ) -> Result<(Record, F::Output)> {
        self.write_one(Op::Create, cx, object, None, async move |scope| {
            self.create_then(scope, data, then).await
        })
        .await
    }

    /// [`DataEngine::update`], then `then` in the same transaction with the updated record (see
    /// [`FollowUp`]): the change and the follow-up's writes commit together or not at all.
    #[tracing::instrument(name = "data.update", level = "debug", skip_all, fields(object = object))]
    pub async fn update_with<F: FollowUp>(
        &self,
        cx: &OpContext,
        object: &str,
        id: &str,
        patch: Record,
        if_match: Option<&str>,
        then: F,
    ) -> Result<(Record, F::Output)> {
        self.write_one(Op::Update, cx, object, Some(id), async move |scope| {
            self.update_then(scope, id, patch, if_match, then).await
        })
        .await
    }
}
