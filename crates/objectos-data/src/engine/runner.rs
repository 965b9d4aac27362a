//! The interceptor runner: which interceptors apply to an operation, and running their
//! before- and after-hooks in order with the parts of the operation each one may see or change.

use std::sync::Arc;

use objectos_spec::query::QueryAst;

use super::{DataEngine, Scope};
use crate::Record;
use crate::error::Result;
use crate::hooks::{HookContext, Interceptor, Operation};

impl DataEngine {
    /// The interceptors that apply to `op` on `object`, in order; none without a lookup when no
    /// interceptor is registered at all.
    pub(super) fn hooks(&self, object: &str, op: Operation) -> Vec<Arc<dyn Interceptor>> {
        let all = self.inner.interceptors.load();
        if all.is_empty() {
            return Vec::new();
        }
        all.iter()
            .filter(|i| i.applies_to(object, op))
            .cloned()
            .collect()
    }

    /// The before-hooks of an operation that selects records: they may narrow `query` (RLS).
    pub(super) async fn before_query(
        &self,
        hooks: &[Arc<dyn Interceptor>],
        scope: Scope<'_>,
        op: Operation,
        query: &mut QueryAst,
    ) -> Result<()> {
        self.run_hooks(
            hooks,
            true,
            scope,
            op,
            HookData {
                query: Some(query),
                ..HookData::default()
            },
        )
        .await
    }

    /// The after-hooks of an operation that returns a page of records (FLS strips fields there).
    pub(super) async fn after_records(
        &self,
        hooks: &[Arc<dyn Interceptor>],
        scope: Scope<'_>,
        op: Operation,
        records: &mut Vec<Record>,
    ) -> Result<()> {
        self.run_hooks(
            hooks,
            false,
            scope,
            op,
            HookData {
                records: Some(records),
                ..HookData::default()
            },
        )
        .await
    }

    /// Runs `hooks` in order (their before- or after-hooks) on `scope`'s object as `scope`'s
    /// caller; a hook sees the operation's transaction when `scope` runs in one (see
    /// `HookContext::tx`). The first error stops the rest and fails the operation.
    pub(super) async fn run_hooks(
        &self,
        hooks: &[Arc<dyn Interceptor>],
        before: bool,
        scope: Scope<'_>,
        op: Operation,
        data: HookData<'_>,
    ) -> Result<()> {
        if hooks.is_empty() {
            return Ok(());
        }
        let HookData {
            mut query,
            mut input,
            previous,
            mut result,
            mut records,
        } = data;
        let tx = scope.conn.tx();
        for h in hooks {
            let mut hc = HookContext {
                cx: scope.cx,
                object: &scope.plan.schema,
                operation: op,
                query: query.as_deref_mut(),
                input: input.as_deref_mut(),
                previous,
                result: result.as_deref_mut(),
                records: records.as_deref_mut(),
                tx,
            };
            if before {
                h.before(&mut hc).await?
            } else {
                h.after(&mut hc).await?
            }
        }
        Ok(())
    }
}

/// What one hook call exposes besides its context; each part is present only for the operations
/// that have it (a query for reads, input for writes, the previous record for update and delete...).
#[derive(Default)]
pub(super) struct HookData<'a> {
    pub(super) query: Option<&'a mut QueryAst>,
    pub(super) input: Option<&'a mut Record>,
    pub(super) previous: Option<&'a Record>,
    pub(super) result: Option<&'a mut Record>,
    pub(super) records: Option<&'a mut Vec<Record>>,
}
