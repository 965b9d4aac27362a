//! `deleteBehavior` for multi-valued references (`multiple: true` lookups, stored as JSON arrays
//! of ids): `restrict` refuses, `cascade` deletes the referencing records, `set_null` removes the
//! deleted id from each array (an array left empty becomes `null`).

use std::future::Future;
use std::pin::Pin;

use objectos_spec::object::{DeleteBehavior, Storage};
use objectos_spec::query::Filter;
use sea_orm::Value;
use serde_json::Value as Json;

use super::{Conn, DataEngine, WriteScope, same_tenant};
use crate::context::{CascadeOrigin, OpContext};
use crate::db::{Dialect, Sql};
use crate::error::{DataError, Result};
use crate::meta::{ChildRef, MetadataSnapshot, ObjectPlan};
use crate::sqlgen::FilterCompiler;
use crate::util::{format_ts, now};
use crate::value::{read_number, to_db};

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// The delete whose `deleteBehavior` references are being applied: the deleted record's id,
/// the organization the references are followed in (the caller's tenant, or the record's own
/// for work without one; `None` is the records without an organization) and how many cascades
/// led to it.
#[derive(Clone, Copy)]
pub(super) struct Deletion<'a> {
    pub(super) id: &'a str,
    pub(super) org: Option<&'a str>,
    pub(super) depth: usize,
}

impl DataEngine {
    /// `WHERE <child.column holds id> [AND same organization]` for one multi-valued reference.
    fn holds(
        &self,
        snap: &MetadataSnapshot,
        cplan: &ObjectPlan,
        child: &ChildRef,
        id: &str,
        org: Option<&str>,
        sql: &mut Sql,
    ) -> Result<()> {
        sql.push(" WHERE ");
        let fc = FilterCompiler {
            snap,
            dialect: self.inner.dialect,
            param: "filter",
        };
        // Equality with a scalar on a JSON column is array membership (see FilterCompiler).
        fc.compile(
            cplan,
            &cplan.table,
            &Filter::eq(child.column.clone(), id.to_owned()),
            sql,
            0,
        )?;
        same_tenant(sql, cplan, org);
        Ok(())
    }

    /// Deletes the `child` records (of `cplan`) that `select_ids` (a `SELECT id` of those holding
    /// the deleted id) finds, for `deletion` of `scope`'s record (`deleteBehavior: cascade`). The
    /// children are deleted as the caller (their hooks check the caller's delete permission),
    /// within the parent's organization `deletion.org`, marked as a cascade so interceptors can
    /// tell them from a request of the caller's.
    pub(super) async fn cascade_to(
        &self,
        scope: WriteScope<'_>,
        deletion: Deletion<'_>,
        child: &ChildRef,
        cplan: &ObjectPlan,
        select_ids: Sql,
    ) -> Result<()> {
        let WriteScope { tx, cx, plan, .. } = scope;
        let Deletion { id, org, depth } = deletion;
        let rows = self.q(Conn::Tx(tx), select_ids).await?;
        let ids: Vec<String> = rows
            .iter()
            .filter_map(|r| r.try_get_by_index::<String>(0).ok())
            .filter(|c| c != id)
            .collect();
        let child_cx = OpContext {
            tenant: org.map(str::to_owned),
            cascade_of: Some(CascadeOrigin {
                object: plan.name.clone(),
                id: id.to_owned(),
            }),
            ..cx.clone()
        };
        let child_scope = WriteScope {
            cx: &child_cx,
            plan: cplan,
            ..scope
        };
        for cid in ids {
            self.delete_in(child_scope, &cid, depth + 1)
                .await
                .map_err(|e| match e {
                    // The child was just selected, so "not found" means the caller's row filter
                    // keeps it from being deleted: refuse the parent's delete, naming the child
                    // object but not the id.
                    DataError::RecordNotFound { .. } => DataError::Forbidden {
                        object: child.object.clone(),
                        message: format!(
                            "Cannot delete {} {id}: its {} records are deleted with it (deleteBehavior: cascade) and you may not delete all of them",
                            plan.name, child.object
                        ),
                    },
                    other => other,
                })?;
        }
        Ok(())
    }

    /// Runs `count_sql` (a `SELECT COUNT(*)` of `child` records holding `id`) and refuses the
    /// delete of `plan`'s record when any do (`deleteBehavior: restrict`).
    pub(super) async fn refuse_if_referenced(
        &self,
        scope: WriteScope<'_>,
        id: &str,
        child: &ChildRef,
        count_sql: Sql,
    ) -> Result<()> {
        let plan = scope.plan;
        let rows = self.q(Conn::Tx(scope.tx), count_sql).await?;
        let n = rows
            .first()
            .and_then(|r| read_number(r, 0).as_u64())
            .unwrap_or(0);
        if n == 0 {
            return Ok(());
        }
        Err(DataError::DeleteRestricted {
            object: plan.name.clone(),
            message: format!(
                "Cannot delete {} {id}: {n} {} record(s) reference it through '{}' (deleteBehavior: restrict)",
                plan.name, child.object, child.column
            ),
        })
    }

    /// Refuses the delete of `plan`'s record `id` when a multi-valued reference with
    /// `deleteBehavior: restrict` holds it (within `org`, the parent's organization).
    pub(super) async fn refuse_multi_refs(
        &self,
        scope: WriteScope<'_>,
        id: &str,
        org: Option<&str>,
    ) -> Result<()> {
        let WriteScope { snap, plan, .. } = scope;
        for child in plan
            .children
            .iter()
            .filter(|c| c.multiple && c.behavior == DeleteBehavior::Restrict)
        {
            let cplan = snap.plan(&child.object)?;
            let mut sql = Sql::new(self.inner.dialect);
            sql.push("SELECT COUNT(*) FROM ").ident(&cplan.table);
            self.holds(snap, cplan, child, id, org, &mut sql)?;
            self.refuse_if_referenced(scope, id, child, sql).await?;
        }
        Ok(())
    }

    /// Applies `cascade` and `set_null` of the multi-valued references to `plan`'s record `id`
    /// (after [`DataEngine::refuse_multi_refs`]), in the delete's transaction.
    pub(super) fn apply_multi_refs<'a>(
        &'a self,
        scope: WriteScope<'a>,
        deletion: Deletion<'a>,
    ) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let WriteScope { tx, snap, plan, .. } = scope;
            let Deletion { id, org, .. } = deletion;
            let dialect = self.inner.dialect;
            for child in plan.children.iter().filter(|c| c.multiple) {
                let cplan = snap.plan(&child.object)?;
                match child.behavior {
                    DeleteBehavior::Restrict => {}
                    DeleteBehavior::Cascade => {
                        let mut sql = Sql::new(dialect);
                        sql.push("SELECT ")
                            .ident("id")
                            .push(" FROM ")
                            .ident(&cplan.table);
                        self.holds(snap, cplan, child, id, org, &mut sql)?;
                        self.cascade_to(scope, deletion, child, cplan, sql).await?;
                    }
                    DeleteBehavior::SetNull => {
                        let ts = to_db(Storage::DateTime, dialect, &Json::String(format_ts(now())))
                            .map_err(DataError::Internal)?;
                        let mut sql = Sql::new(dialect);
                        sql.push("UPDATE ")
                            .ident(&cplan.table)
                            .push(" SET ")
                            .ident(&child.column)
                            .push(" = ");
                        match dialect {
                            Dialect::Postgres => {
                                // `jsonb - text` removes every element equal to the text.
                                sql.push("CASE WHEN ")
                                    .qualified(&cplan.table, &child.column)
                                    .push(" - CAST(")
                                    .param(Value::from(id.to_owned()))
                                    .push(" AS TEXT) = '[]'::jsonb THEN NULL ELSE ")
                                    .qualified(&cplan.table, &child.column)
                                    .push(" - CAST(")
                                    .param(Value::from(id.to_owned()))
                                    .push(" AS TEXT) END");
                            }
                            Dialect::Sqlite => {
                                sql.push(
                                    "(SELECT CASE WHEN COUNT(*) = 0 THEN NULL ELSE json_group_array(value) END FROM json_each(",
                                )
                                .qualified(&cplan.table, &child.column)
                                .push(") WHERE value <> ")
                                .param(Value::from(id.to_owned()))
                                .push(")");
                            }
                        }
                        sql.push(", ").ident("updated_at").push(" = ").param(ts);
                        self.holds(snap, cplan, child, id, org, &mut sql)?;
                        self.x(Conn::Tx(tx), sql).await?;
                    }
                }
            }
            Ok(())
        })
    }
}
