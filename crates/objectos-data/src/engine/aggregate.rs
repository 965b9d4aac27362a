//! Aggregate queries: aggregations, `groupBy`, `having` and sorting by group or alias,
//! compiled to one grouped `SELECT`.

use std::collections::HashMap;

use objectos_spec::object::Storage;
use objectos_spec::query::{Filter, Operator, QueryAst};
use sea_orm::Value;
use serde_json::Value as Json;

use super::{DataEngine, FindResult, Scope, tenant_filter};
use crate::Record;
use crate::db::Sql;
use crate::error::Result;
use crate::meta::{self, ObjectPlan};
use crate::sqlgen::{self, FilterCompiler, MAX_LIMIT, invalid};
use crate::value::{from_row, read_number};

impl DataEngine {
    /// The rows of an aggregate query (its before-hooks already ran): one grouped `SELECT` of the
    /// aggregations and groupBy fields, tenant and filter in its WHERE, `having` and sort after it.
    pub(super) async fn aggregate_in(
        &self,
        scope: Scope<'_>,
        query: &QueryAst,
    ) -> Result<FindResult> {
        let Scope {
            conn,
            cx,
            snap,
            plan,
        } = scope;
        let dialect = self.inner.dialect;
        let fc = FilterCompiler {
            snap,
            dialect,
            param: "filter",
        };
        let afc = FilterCompiler {
            snap,
            dialect,
            param: "aggregations",
        };
        let t = plan.table.as_str();
        let mut group_cols = Vec::new();
        for g in &query.group_by {
            group_cols.push(sqlgen::column(plan, g, "groupBy")?.clone());
        }
        let mut sql = Sql::new(dialect);
        sql.push("SELECT ");
        let mut outs = Vec::new();
        let mut aliases: HashMap<String, usize> = HashMap::new();
        for (i, a) in query.aggregations.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            let out = sqlgen::aggregate_expr(&afc, plan, t, a, &mut sql)?;
            sql.push(" AS ").ident(&format!("a{i}"));
            aliases.insert(a.alias.clone(), i);
            outs.push(out);
        }
        for (i, g) in group_cols.iter().enumerate() {
            if i > 0 || !outs.is_empty() {
                sql.push(", ");
            }
            sql.push(&meta::column_expr(dialect, t, g));
        }
        if outs.is_empty() && group_cols.is_empty() {
            sql.push("COUNT(*)");
        }
        sql.push(" FROM ").ident(t).push(" WHERE ");
        fc.compile(
            plan,
            t,
            &tenant_filter(cx).and(query.filter.clone()),
            &mut sql,
            0,
        )?;
        if !group_cols.is_empty() {
            sql.push(" GROUP BY ");
            for (i, g) in group_cols.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.qualified(t, &g.name);
            }
        }
        if !query.having.is_true() {
            sql.push(" HAVING ");
            self.having(plan, t, &query.having, query, &group_cols, &mut sql)?;
        }
        if !query.order_by.is_empty() {
            sql.push(" ORDER BY ");
            for (i, s) in query.order_by.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                if let Some(ai) = aliases.get(&s.field) {
                    sql.ident(&format!("a{ai}"));
                } else if let Some(g) = group_cols
                    .iter()
                    .find(|g| g.name == sqlgen::canonical(&s.field))
                {
                    sql.qualified(t, &g.name);
                } else {
                    return Err(invalid(
                        &plan.name,
                        "sort",
                        "unknown_field",
                        format!(
                            "sort: '{}' is neither a groupBy field nor an aggregation alias",
                            s.field
                        ),
                    ));
                }
                sql.push(if s.order == objectos_spec::query::SortOrder::Desc {
                    " DESC"
                } else {
                    " ASC"
                });
            }
        }
        let limit = query.limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
        sql.limit(limit + 1);
        if let Some(o) = query.offset.filter(|o| *o > 0) {
            sql.push(" OFFSET ").param(Value::BigInt(Some(o as i64)));
        }
        let rows = self.q(conn, sql).await?;
        let mut records = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut rec = Record::new();
            for (i, o) in outs.iter().enumerate() {
                let v = match (o.function, &o.column) {
                    (
                        objectos_spec::query::AggregateFunction::Min
                        | objectos_spec::query::AggregateFunction::Max,
                        Some(c),
                    ) => {
                        let mut c = c.clone();
                        c.numeric = None;
                        if c.storage == Storage::Decimal || c.storage == Storage::Integer {
                            read_number(r, i)
                        } else {
                            from_row(r, i, &c, dialect)
                        }
                    }
                    (objectos_spec::query::AggregateFunction::ArrayAgg, _) => {
                        let s = r.try_get_by_index::<Option<String>>(i).ok().flatten();
                        s.and_then(|s| serde_json::from_str(&s).ok())
                            .unwrap_or(Json::Null)
                    }
                    (objectos_spec::query::AggregateFunction::StringAgg, _) => r
                        .try_get_by_index::<Option<String>>(i)
                        .ok()
                        .flatten()
                        .map(Json::String)
                        .unwrap_or(Json::Null),
                    _ => read_number(r, i),
                };
                rec.insert(o.alias.clone(), v);
            }
            for (j, g) in group_cols.iter().enumerate() {
                rec.insert(g.name.clone(), from_row(r, outs.len() + j, g, dialect));
            }
            records.push(rec);
        }
        let has_more = records.len() as u64 > limit;
        records.truncate(limit as usize);
        let total = records.len() as u64;
        Ok(FindResult {
            records,
            total: Some(total),
            next_cursor: None,
            has_more,
        })
    }

    fn having(
        &self,
        plan: &ObjectPlan,
        t: &str,
        f: &Filter,
        query: &QueryAst,
        groups: &[crate::meta::Column],
        sql: &mut Sql,
    ) -> Result<()> {
        match f {
            Filter::True => {
                sql.push("1=1");
            }
            Filter::And(items) | Filter::Or(items) => {
                sql.push("(");
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        sql.push(if matches!(f, Filter::And(_)) {
                            " AND "
                        } else {
                            " OR "
                        });
                    }
                    self.having(plan, t, it, query, groups, sql)?;
                }
                sql.push(")");
            }
            Filter::Not(inner) => {
                sql.push("NOT (");
                self.having(plan, t, inner, query, groups, sql)?;
                sql.push(")");
            }
            Filter::Condition(c) => {
                let fc = FilterCompiler {
                    snap: &self.metadata(),
                    dialect: sql.dialect,
                    param: "having",
                };
                if let Some(a) = query.aggregations.iter().find(|a| a.alias == c.field) {
                    let mut expr = Sql::new(sql.dialect);
                    sqlgen::aggregate_expr(&fc, plan, t, a, &mut expr)?;
                    let op = match c.op {
                        Operator::Eq => " = ",
                        Operator::Ne => " <> ",
                        Operator::Gt => " > ",
                        Operator::Gte => " >= ",
                        Operator::Lt => " < ",
                        Operator::Lte => " <= ",
                        other => {
                            return Err(invalid(
                                &plan.name,
                                "having",
                                "invalid_operator",
                                format!(
                                    "having: operator {} is not supported on aggregates",
                                    other.as_str()
                                ),
                            ));
                        }
                    };
                    let v = c.value.as_value().and_then(Json::as_f64).ok_or_else(|| {
                        invalid(
                            &plan.name,
                            "having",
                            "invalid_value",
                            format!("having: '{}' must be compared with a number", c.field),
                        )
                    })?;
                    sql.append(expr);
                    sql.push(op).param(Value::Double(Some(v)));
                } else if groups.iter().any(|g| g.name == sqlgen::canonical(&c.field)) {
                    fc.compile(plan, t, f, sql, 0)?;
                } else {
                    return Err(invalid(
                        &plan.name,
                        "having",
                        "unknown_field",
                        format!(
                            "having: '{}' is neither a groupBy field nor an aggregation alias",
                            c.field
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
