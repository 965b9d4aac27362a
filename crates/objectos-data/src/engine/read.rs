//! Reads: find (offset and cursor paging, search, distinct), get by id, count, and the
//! `SELECT` every read and write goes through to fetch records of one object.

use objectos_spec::query::{Condition, Filter, FilterValue, Operator, QueryAst, SearchQuery};
use sea_orm::Value;
use serde_json::Value as Json;

use super::runner::HookData;
use super::{
    Conn, DataEngine, FindResult, Scope, check_id, id_filter, row_to_record, select, tenant_filter,
};
use crate::Record;
use crate::context::OpContext;
use crate::db::Sql;
use crate::error::{DataError, Result};
use crate::hooks::{Operation, WriteTx};
use crate::meta::ObjectPlan;
use crate::sqlgen::{self, DEFAULT_LIMIT, FilterCompiler, MAX_LIMIT, SortKey, invalid};
use crate::value::read_number;

impl DataEngine {
    /// Finds records (or aggregated rows when the query has aggregations or groupBy).
    // One span per engine operation (debug: off unless the tracing backend asks for it), the
    // parent of its SQL statements' spans.
    #[tracing::instrument(name = "data.find", level = "debug", skip_all, fields(object = object))]
    pub async fn find(&self, cx: &OpContext, object: &str, query: QueryAst) -> Result<FindResult> {
        let _timer = crate::observe::OpTimer::start(
            if query.aggregations.is_empty() && query.group_by.is_empty() {
                crate::observe::Op::Find
            } else {
                crate::observe::Op::Aggregate
            },
        );
        let snap = self.metadata();
        let plan = snap.plan(object)?.clone();
        let op = if query.aggregations.is_empty() && query.group_by.is_empty() {
            Operation::Find
        } else {
            Operation::Aggregate
        };
        // Reads run on the pool, hooks included (see HookContext::tx).
        let scope = Scope {
            conn: Conn::Pool(&self.inner.db),
            cx,
            snap: &snap,
            plan: &plan,
        };
        self.find_in(scope, query, op).await
    }

    /// The number of records matching `filter`.
    #[tracing::instrument(name = "data.count", level = "debug", skip_all, fields(object = object))]
    pub async fn count(&self, cx: &OpContext, object: &str, filter: Filter) -> Result<u64> {
        let _timer = crate::observe::OpTimer::start(crate::observe::Op::Count);
        let snap = self.metadata();
        let plan = snap.plan(object)?.clone();
        let mut query = QueryAst {
            filter,
            ..QueryAst::default()
        };
        let hooks = self.hooks(object, Operation::Count);
        let scope = Scope {
            conn: Conn::Pool(&self.inner.db),
            cx,
            snap: &snap,
            plan: &plan,
        };
        self.before_query(&hooks, scope, Operation::Count, &mut query)
            .await?;
        self.count_in(scope, &query.filter).await
    }

    /// One record by id, with `select` and `expand` from `query` (RecordNotFound otherwise).
    #[tracing::instrument(name = "data.get", level = "debug", skip_all, fields(object = object))]
    pub async fn get(
        &self,
        cx: &OpContext,
        object: &str,
        id: &str,
        query: QueryAst,
    ) -> Result<Record> {
        let _timer = crate::observe::OpTimer::start(crate::observe::Op::Get);
        let snap = self.metadata();
        let plan = snap.plan(object)?.clone();
        check_id(object, id)?;
        let mut query = QueryAst {
            filter: id_filter(id),
            fields: query.fields,
            expand: query.expand,
            ..QueryAst::default()
        };
        let hooks = self.hooks(object, Operation::Get);
        let scope = Scope {
            conn: Conn::Pool(&self.inner.db),
            cx,
            snap: &snap,
            plan: &plan,
        };
        self.before_query(&hooks, scope, Operation::Get, &mut query)
            .await?;
        let mut rec = self.get_in(scope, id, &query).await?;
        self.run_hooks(
            &hooks,
            false,
            scope,
            Operation::Get,
            HookData {
                result: Some(&mut rec),
                ..HookData::default()
            },
        )
        .await?;
        Ok(rec)
    }

    async fn get_in(&self, scope: Scope<'_>, id: &str, query: &QueryAst) -> Result<Record> {
        let Scope { snap, plan, .. } = scope;
        // Lowering a selection rewrites the query; without one (the usual get) nothing is copied.
        let lowered;
        let query = if query.fields.is_empty() {
            select::check_expand_keys(plan, query)?;
            query
        } else {
            let mut q = query.clone();
            select::lower_selection(snap, plan, &mut q, 0, "")?;
            lowered = q;
            &lowered
        };
        let mut records = self.select(scope, &query.filter, Some(1), "filter").await?;
        let Some(_) = records.first() else {
            return Err(DataError::RecordNotFound {
                object: plan.name.clone(),
                id: id.to_owned(),
            });
        };
        self.decorate(scope, &mut records, query, 1).await?;
        Ok(records.swap_remove(0))
    }

    async fn count_in(&self, scope: Scope<'_>, filter: &Filter) -> Result<u64> {
        let Scope {
            conn,
            cx,
            snap,
            plan,
        } = scope;
        let mut sql = Sql::new(self.inner.dialect);
        sql.push("SELECT COUNT(*) FROM ")
            .ident(&plan.table)
            .push(" WHERE ");
        let fc = FilterCompiler {
            snap,
            dialect: self.inner.dialect,
            param: "filter",
        };
        fc.compile(
            plan,
            &plan.table,
            &tenant_filter(cx).and(filter.clone()),
            &mut sql,
            0,
        )?;
        let rows = self.q(conn, sql).await?;
        Ok(rows
            .first()
            .and_then(|r| read_number(r, 0).as_u64())
            .unwrap_or(0))
    }

    /// Up to `limit` records of `scope`'s object matching `filter` (and the tenant), unsorted;
    /// `param` names the request parameter a bad filter is reported against.
    pub(super) async fn select(
        &self,
        scope: Scope<'_>,
        filter: &Filter,
        limit: Option<u64>,
        param: &str,
    ) -> Result<Vec<Record>> {
        let page = SelectPage {
            keys: &[],
            limit,
            offset: None,
            keyset: None,
            total: false,
        };
        Ok(self.select_page(scope, filter, page, param).await?.0)
    }

    /// A page of records; with `page.total`, also the number of records matching `filter`
    /// (without the keyset), counted by a subquery of the same statement, so a list costs one
    /// round trip to the database instead of two. `None` when the page came back empty (the
    /// count rides on the rows).
    async fn select_page(
        &self,
        scope: Scope<'_>,
        filter: &Filter,
        page: SelectPage<'_>,
        param: &str,
    ) -> Result<(Vec<Record>, Option<u64>)> {
        let Scope {
            conn,
            cx,
            snap,
            plan,
        } = scope;
        let SelectPage {
            keys,
            limit,
            offset,
            keyset,
            total,
        } = page;
        let dialect = self.inner.dialect;
        let mut sql = Sql::new(dialect);
        let fc = FilterCompiler {
            snap,
            dialect,
            param,
        };
        let full = tenant_filter(cx).and(filter.clone());
        if total {
            sql.push(&plan.select_cols)
                .push(", (SELECT COUNT(*) FROM ")
                .ident(&plan.table)
                .push(" WHERE ");
            fc.compile(plan, &plan.table, &full, &mut sql, 0)?;
            sql.push(") FROM ").ident(&plan.table);
        } else {
            sql.push(&plan.select_all);
        }
        sql.push(" WHERE ");
        fc.compile(plan, &plan.table, &full, &mut sql, 0)?;
        if let Some(values) = keyset {
            sql.push(" AND ");
            sqlgen::keyset_condition(plan, &mut sql, &plan.table, keys, values)?;
        }
        if !keys.is_empty() {
            sqlgen::order_by(&mut sql, &plan.table, keys);
        }
        if let Some(l) = limit {
            sql.limit(l);
        }
        if let Some(o) = offset.filter(|o| *o > 0) {
            if limit.is_none() {
                sql.push(" LIMIT -1");
            }
            sql.push(" OFFSET ")
                .param(Value::BigInt(Some(o.min(i64::MAX as u64) as i64)));
        }
        let rows = self.q(conn, sql).await?;
        let count = if total {
            rows.first()
                .and_then(|r| read_number(r, plan.columns.len()).as_u64())
        } else {
            None
        };
        Ok((
            rows.iter()
                .map(|r| row_to_record(plan, r, dialect))
                .collect(),
            count,
        ))
    }

    async fn find_in(
        &self,
        scope: Scope<'_>,
        mut query: QueryAst,
        op: Operation,
    ) -> Result<FindResult> {
        let Scope { snap, plan, .. } = scope;
        let hooks = self.hooks(&plan.name, op);
        self.before_query(&hooks, scope, op, &mut query).await?;
        if op == Operation::Aggregate {
            let mut result = self.aggregate_in(scope, &query).await?;
            self.after_records(&hooks, scope, op, &mut result.records)
                .await?;
            return Ok(result);
        }
        select::lower_selection(snap, plan, &mut query, 0, "")?;
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if limit > MAX_LIMIT {
            return Err(invalid(
                &plan.name,
                "limit",
                "invalid_paging",
                format!("limit: {limit} is larger than the maximum page size {MAX_LIMIT}"),
            ));
        }
        let mut filter = query.filter.clone();
        if let Some(s) = &query.search {
            filter = filter.and(search_filter(plan, s)?);
        }
        if query.distinct && !query.fields.is_empty() {
            let page = self.distinct_page(scope, &query, &filter, limit).await?;
            let mut records = page.records;
            self.decorate(scope, &mut records, &query, 1).await?;
            self.after_records(&hooks, scope, op, &mut records).await?;
            return Ok(FindResult {
                records,
                total: Some(page.total),
                next_cursor: None,
                has_more: page.has_more,
            });
        }
        let keys = sqlgen::sort_keys(plan, &query.order_by)?;
        let keyset = match &query.cursor {
            Some(objectos_spec::query::Cursor::Token(t)) if t.is_empty() => None,
            Some(c) => Some(sqlgen::decode_cursor(plan, &keys, c)?),
            None => None,
        };
        let offset = if query.cursor.is_some() {
            None
        } else {
            query.offset
        };
        let (mut records, counted) = self
            .select_page(
                scope,
                &filter,
                SelectPage {
                    keys: &keys,
                    limit: Some(limit + 1),
                    offset,
                    keyset: keyset.as_deref(),
                    total: true,
                },
                "filter",
            )
            .await?;
        let has_more = records.len() as u64 > limit;
        records.truncate(limit as usize);
        let total = match counted {
            Some(n) => n,
            None if keyset.is_none() && offset.unwrap_or(0) == 0 => 0,
            // An empty page past the end (or after a cursor): count on its own.
            None => self.count_in(scope, &filter).await?,
        };
        let next_cursor = match (&query.cursor, has_more, records.last()) {
            (Some(_), true, Some(last)) => Some(sqlgen::encode_cursor(&keys, last)),
            _ => None,
        };
        self.decorate(scope, &mut records, &query, 1).await?;
        self.after_records(&hooks, scope, op, &mut records).await?;
        Ok(FindResult {
            records,
            total: Some(total),
            next_cursor,
            has_more,
        })
    }

    /// Counts the records of `object` matching `filter` (within `cx`'s tenant) through `tx`, the
    /// transaction of a write in progress, without running hooks. For interceptors that check
    /// facts inside the write they guard: they see its uncommitted rows, and never wait for a
    /// second connection (an in-memory SQLite database has only one).
    pub async fn count_within(
        &self,
        tx: WriteTx<'_>,
        cx: &OpContext,
        object: &str,
        filter: &Filter,
    ) -> Result<u64> {
        let snap = self.metadata();
        let plan = snap.plan(object)?;
        let scope = Scope {
            conn: Conn::Tx(tx.transaction()),
            cx,
            snap: &snap,
            plan,
        };
        self.count_in(scope, filter).await
    }
}

/// A search becomes `contains` on the searched fields, ORed.
fn search_filter(plan: &ObjectPlan, s: &SearchQuery) -> Result<Filter> {
    if s.query.trim().is_empty() {
        return Ok(Filter::True);
    }
    // Named as the search text here; the filter compiler would refuse it too, but as a filter.
    if s.query.contains('\0') {
        return Err(invalid(
            &plan.name,
            "search",
            "invalid_character",
            "search: the search text contains a NUL character (\\u0000)".to_owned(),
        ));
    }
    let mut fields: Vec<String> = s.fields.clone();
    if fields.is_empty() {
        fields = plan
            .schema
            .fields
            .values()
            .filter(|f| f.searchable && plan.column(&f.name).is_some())
            .map(|f| f.name.clone())
            .collect();
    }
    if fields.is_empty()
        && let Some(d) = plan.schema.display_name_field()
    {
        fields.push(d.to_owned());
    }
    for f in &fields {
        sqlgen::column(plan, f, "search")?;
    }
    let conds: Vec<Filter> = fields
        .into_iter()
        .map(|f| {
            Filter::Condition(Condition {
                field: f,
                op: Operator::Contains,
                value: FilterValue::Value(Json::String(s.query.clone())),
            })
        })
        .collect();
    Ok(match conds.len() {
        0 => Filter::True,
        1 => conds.into_iter().next().unwrap_or_default(),
        _ => Filter::Or(conds),
    })
}

/// Paging of one `select_page` call.
#[derive(Clone, Copy)]
struct SelectPage<'a> {
    keys: &'a [SortKey],
    limit: Option<u64>,
    offset: Option<u64>,
    keyset: Option<&'a [Json]>,
    /// Also count every record matching the filter (without the keyset).
    total: bool,
}
