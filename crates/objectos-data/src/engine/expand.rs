//! What a page of records gets after its `SELECT`: roll-up summaries (through the child
//! object's read interceptors), formulas, `expand` of lookups (one batched query per lookup and
//! level) and the final projection to the selected fields.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;
use objectos_spec::object::SummaryFunction;
use objectos_spec::query::{AggregateFunction, Condition, Filter, FilterValue, Operator, QueryAst};
use sea_orm::Value;
use serde_json::{Value as Json, json};

use super::{DataEngine, Scope, select, tenant_filter};
use crate::Record;
use crate::checks;
use crate::db::{Dialect, Sql};
use crate::error::{DataError, Result};
use crate::hooks::Operation;
use crate::sqlgen::{self, FilterCompiler, invalid};
use crate::value::read_number;

impl DataEngine {
    /// Summaries, formulas, expand and projection, for a page of records of `plan`.
    pub(super) fn decorate<'a>(
        &'a self,
        scope: Scope<'a>,
        records: &'a mut [Record],
        query: &'a QueryAst,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let plan = scope.plan;
            if records.is_empty() {
                return Ok(());
            }
            let wanted = |f: &str| {
                query.fields.is_empty()
                    || query
                        .fields
                        .iter()
                        .any(|s| sqlgen::canonical(s.name()) == f)
            };
            self.load_summaries(scope, records, &wanted).await?;
            for r in records.iter_mut() {
                checks::compute_formulas(plan, r);
            }
            self.expand(scope, records, &query.expand, depth).await?;
            if !query.fields.is_empty() {
                for r in records.iter_mut() {
                    *r = select::project(&query.fields, std::mem::take(r));
                }
            }
            Ok(())
        })
    }

    /// Roll-ups of a page of records, one grouped aggregate query per summary field.
    ///
    /// A summary shows what the reader could aggregate themselves: the child object's read
    /// interceptors run for `cx` on the query `<function>(<field>) GROUP BY <reference>` as an
    /// `Aggregate` (so the permissions plugin checks read access to the child object and to both
    /// fields, and ANDs in its sharing and row-level filter), and the tenant is ANDed in like any
    /// read. A summary the reader may not compute at all (an interceptor refused with
    /// `PERMISSION_DENIED`) is `null`: it reveals nothing, not even whether children exist.
    /// `scope: all` (an explicit per-field opt-in) skips the interceptors: every child in the
    /// organization counts.
    async fn load_summaries(
        &self,
        scope: Scope<'_>,
        records: &mut [Record],
        wanted: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<()> {
        let Scope {
            conn,
            cx,
            snap,
            plan,
        } = scope;
        let dialect = self.inner.dialect;
        for s in plan.summaries.iter().filter(|s| wanted(&s.field)) {
            let ids: Vec<String> = records
                .iter()
                .filter_map(|r| r.get("id").and_then(Json::as_str).map(str::to_owned))
                .collect();
            if ids.is_empty() {
                continue;
            }
            let cplan = snap.plan(&s.child_object)?;
            let mut visible = QueryAst::default();
            if !s.all_children {
                let hooks = self.hooks(&cplan.name, Operation::Aggregate);
                if !hooks.is_empty() {
                    visible.group_by = vec![s.fk_column.clone()];
                    visible.aggregations = vec![objectos_spec::query::Aggregation {
                        function: match s.function {
                            SummaryFunction::Count => AggregateFunction::Count,
                            SummaryFunction::Sum => AggregateFunction::Sum,
                            SummaryFunction::Min => AggregateFunction::Min,
                            SummaryFunction::Max => AggregateFunction::Max,
                            SummaryFunction::Avg => AggregateFunction::Avg,
                        },
                        field: s.child_column.clone(),
                        alias: s.field.clone(),
                        distinct: false,
                        filter: None,
                    }];
                    let narrowed = self
                        .before_query(&hooks, scope.on(cplan), Operation::Aggregate, &mut visible)
                        .await;
                    match narrowed {
                        Ok(()) => {}
                        Err(DataError::Forbidden { .. }) => {
                            for r in records.iter_mut() {
                                r.insert(s.field.clone(), Json::Null);
                            }
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            let mut sql = Sql::new(dialect);
            sql.push("SELECT ").ident(&s.fk_column).push(", ");
            let func = match s.function {
                SummaryFunction::Count => "COUNT(",
                SummaryFunction::Sum => "SUM(",
                SummaryFunction::Min => "MIN(",
                SummaryFunction::Max => "MAX(",
                SummaryFunction::Avg => "AVG(",
            };
            let cast = dialect == Dialect::Postgres && s.function != SummaryFunction::Count;
            if cast {
                sql.push("CAST(");
            }
            sql.push(func);
            match &s.child_column {
                Some(c) => sql.ident(c),
                None => sql.push("*"),
            };
            sql.push(")");
            if cast {
                sql.push(" AS DOUBLE PRECISION)");
            }
            sql.push(" FROM ")
                .ident(&s.child_table)
                .push(" WHERE ")
                .ident(&s.fk_column)
                .push(" IN (");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.param(Value::from(id.clone()));
            }
            sql.push(") AND ");
            // The tenant and the interceptors' row filter, compiled (bound values only) like the
            // WHERE of a read of the child object.
            let fc = FilterCompiler {
                snap,
                dialect,
                param: "filter",
            };
            fc.compile(
                cplan,
                &cplan.table,
                &tenant_filter(cx).and(visible.filter),
                &mut sql,
                0,
            )?;
            sql.push(" GROUP BY ").ident(&s.fk_column);
            let rows = self.q(conn, sql).await?;
            let mut by_id: HashMap<String, Json> = HashMap::with_capacity(rows.len());
            for r in &rows {
                if let Ok(Some(k)) = r.try_get_by_index::<Option<String>>(0) {
                    by_id.insert(k, read_number(r, 1));
                }
            }
            let empty = match s.function {
                SummaryFunction::Count | SummaryFunction::Sum => json!(0),
                _ => Json::Null,
            };
            for r in records.iter_mut() {
                let v = r
                    .get("id")
                    .and_then(Json::as_str)
                    .and_then(|id| by_id.get(id).cloned())
                    .unwrap_or_else(|| empty.clone());
                r.insert(s.field.clone(), v);
            }
        }
        Ok(())
    }

    async fn expand(
        &self,
        scope: Scope<'_>,
        records: &mut [Record],
        expand: &IndexMap<String, QueryAst>,
        depth: usize,
    ) -> Result<()> {
        let Scope { snap, plan, .. } = scope;
        if expand.is_empty() {
            return Ok(());
        }
        if depth > objectos_spec::query::MAX_EXPAND_DEPTH {
            return Err(invalid(
                &plan.name,
                "expand",
                "invalid_expand",
                format!(
                    "expand: nesting is deeper than {} levels",
                    objectos_spec::query::MAX_EXPAND_DEPTH
                ),
            ));
        }
        for (field_name, sub) in expand {
            let name = sqlgen::canonical(field_name);
            let field = plan.field(name).ok_or_else(|| {
                invalid(
                    &plan.name,
                    "expand",
                    "unknown_field",
                    format!(
                        "expand: field '{name}' does not exist on object '{}'",
                        plan.name
                    ),
                )
            })?;
            let target = field.reference_target(&plan.name).ok_or_else(|| {
                invalid(
                    &plan.name,
                    "expand",
                    "invalid_expand",
                    format!(
                        "expand: field '{name}' of object '{}' is not a lookup",
                        plan.name
                    ),
                )
            })?;
            let Ok(tplan) = snap.plan(target) else {
                // A reference to an object that is not installed (e.g. `user` without the auth preset): leave ids.
                continue;
            };
            let mut ids: Vec<String> = Vec::new();
            let mut seen = HashSet::new();
            for r in records.iter() {
                match r.get(name) {
                    Some(Json::String(s)) if seen.insert(s.clone()) => ids.push(s.clone()),
                    Some(Json::Array(a)) => {
                        for s in a.iter().filter_map(Json::as_str) {
                            if seen.insert(s.to_owned()) {
                                ids.push(s.to_owned());
                            }
                        }
                    }
                    _ => {}
                }
            }
            if ids.is_empty() {
                continue;
            }
            let mut subq = sub.clone();
            let hooks = self.hooks(&tplan.name, Operation::Find);
            self.before_query(&hooks, scope.on(tplan), Operation::Find, &mut subq)
                .await?;
            select::lower_selection(snap, tplan, &mut subq, depth, "").map_err(|e| match e {
                DataError::InvalidQuery {
                    object,
                    code,
                    message,
                    ..
                } => DataError::InvalidQuery {
                    object,
                    param: "expand".into(),
                    code,
                    message: format!("expand.{name}: {message}"),
                },
                other => other,
            })?;
            let in_ids = Filter::Condition(Condition {
                field: "id".into(),
                op: Operator::In,
                value: FilterValue::Value(Json::Array(ids.into_iter().map(Json::String).collect())),
            });
            let mut related = self
                .select(
                    scope.on(tplan),
                    &in_ids.and(subq.filter.clone()),
                    None,
                    "expand",
                )
                .await?;
            // Only the selected fields (roll-ups cost a query each), plus `id` to match on;
            // the final projection below drops it again when it was not selected.
            let mut fields = subq.fields.clone();
            if !fields.is_empty() && !fields.iter().any(|f| sqlgen::canonical(f.name()) == "id") {
                fields.push(objectos_spec::query::FieldSelection::Field("id".into()));
            }
            self.decorate(
                scope.on(tplan),
                &mut related,
                &QueryAst {
                    fields,
                    expand: subq.expand.clone(),
                    ..QueryAst::default()
                },
                depth + 1,
            )
            .await?;
            let by_id: HashMap<String, Record> = related
                .into_iter()
                .filter_map(|r| {
                    let id = r.get("id")?.as_str()?.to_owned();
                    let projected = if subq.fields.is_empty() {
                        r
                    } else {
                        select::project(&subq.fields, r)
                    };
                    Some((id, projected))
                })
                .collect();
            for r in records.iter_mut() {
                let Some(v) = r.get_mut(name) else { continue };
                match v {
                    Json::String(s) => {
                        if let Some(x) = by_id.get(s.as_str()) {
                            *v = Json::Object(x.clone());
                        }
                    }
                    Json::Array(a) => {
                        for item in a.iter_mut() {
                            if let Some(x) = item.as_str().and_then(|s| by_id.get(s)) {
                                *item = Json::Object(x.clone());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
