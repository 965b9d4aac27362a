//! QueryAST -> SQL: filters (every operator, nesting, field-to-field, dotted paths through lookups
//! as `IN (SELECT id ...)` subqueries), sort, keyset cursors and aggregations, with bound values only.

use objectos_spec::object::Storage;
use objectos_spec::query::{
    AggregateFunction, Aggregation, Condition, Cursor, Filter, FilterValue, Operator, SortNode,
    SortOrder,
};
use sea_orm::Value;
use serde_json::Value as Json;

use crate::db::{Dialect, Sql};
use crate::error::{DataError, Result};
use crate::meta::{Column, MetadataSnapshot, ObjectPlan};
use crate::util::{b64_decode, b64_encode};
use crate::value::to_db;

/// Page size when the query gives none.
pub const DEFAULT_LIMIT: u64 = 100;
/// Largest page size accepted.
pub const MAX_LIMIT: u64 = objectos_spec::query::MAX_LIMIT;

pub(crate) fn invalid(object: &str, param: &str, code: &str, message: String) -> DataError {
    DataError::InvalidQuery {
        object: object.to_owned(),
        param: param.to_owned(),
        code: code.to_owned(),
        message,
    }
}

/// Maps `_id` to `id`.
pub(crate) fn canonical(name: &str) -> &str {
    if name == "_id" { "id" } else { name }
}

/// Resolves a stored column of `plan` named in query parameter `param`.
pub(crate) fn column<'p>(plan: &'p ObjectPlan, name: &str, param: &str) -> Result<&'p Column> {
    let name = canonical(name);
    match plan.column(name) {
        Some(c) => Ok(c),
        None if plan.field(name).is_some() => Err(invalid(
            &plan.name,
            param,
            "computed_field",
            format!(
                "{param}: field '{name}' of object '{}' is computed on read and cannot be used here",
                plan.name
            ),
        )),
        None => Err(invalid(
            &plan.name,
            param,
            "unknown_field",
            format!(
                "{param}: field '{name}' does not exist on object '{}'",
                plan.name
            ),
        )),
    }
}

fn bind(
    plan: &ObjectPlan,
    param: &str,
    field: &str,
    c: &Column,
    dialect: Dialect,
    v: &Json,
) -> Result<Value> {
    // Lookup ids, text and the like compare as text; arrays stored as JSON are matched element-wise elsewhere.
    to_db(c.storage, dialect, v).map_err(|reason| {
        invalid(
            &plan.name,
            param,
            "invalid_value",
            format!("{param}: value for field '{field}' is invalid: {reason}"),
        )
    })
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for ch in s.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Compiles filters of one object; `table` is the alias its columns are qualified with.
pub(crate) struct FilterCompiler<'a> {
    pub(crate) snap: &'a MetadataSnapshot,
    pub(crate) dialect: Dialect,
    pub(crate) param: &'a str,
}

impl FilterCompiler<'_> {
    pub(crate) fn compile(
        &self,
        plan: &ObjectPlan,
        table: &str,
        f: &Filter,
        sql: &mut Sql,
        depth: usize,
    ) -> Result<()> {
        match f {
            Filter::True => {
                sql.push("1=1");
            }
            Filter::And(items) | Filter::Or(items) => {
                let joiner = if matches!(f, Filter::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                sql.push("(");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        sql.push(joiner);
                    }
                    self.compile(plan, table, item, sql, depth)?;
                }
                if items.is_empty() {
                    sql.push(if matches!(f, Filter::And(_)) {
                        "1=1"
                    } else {
                        "1=0"
                    });
                }
                sql.push(")");
            }
            Filter::Not(inner) => {
                sql.push("NOT (");
                self.compile(plan, table, inner, sql, depth)?;
                sql.push(")");
            }
            Filter::Condition(c) => self.condition(plan, table, c, sql, depth)?,
        }
        Ok(())
    }

    fn condition(
        &self,
        plan: &ObjectPlan,
        table: &str,
        c: &Condition,
        sql: &mut Sql,
        depth: usize,
    ) -> Result<()> {
        // Every form of filter (object, array, string), `where`, search, expand sub-filters and
        // record ids (`id = <id>`) end up here, so this one check keeps NUL away from SQL: on
        // PostgreSQL a bound text holding it fails as a server error. A path condition is checked
        // again at each hop; the scan is a `memchr`.
        if let FilterValue::Value(v) = &c.value
            && crate::validate::has_nul(v)
        {
            return Err(invalid(
                &plan.name,
                self.param,
                "invalid_character",
                format!(
                    "{}: the value for field '{}' contains a NUL character (\\u0000)",
                    self.param, c.field
                ),
            ));
        }
        if let Some((head, rest)) = c.field.split_once('.') {
            // A path through a lookup: `account.name = x` -> `account IN (SELECT id FROM account WHERE name = x)`.
            let field = plan.field(canonical(head)).ok_or_else(|| {
                invalid(
                    &plan.name,
                    self.param,
                    "unknown_field",
                    format!(
                        "{}: field '{head}' does not exist on object '{}'",
                        self.param, plan.name
                    ),
                )
            })?;
            let target = field
                .reference_target(&plan.name)
                .filter(|_| !field.multiple)
                .ok_or_else(|| {
                    invalid(
                        &plan.name,
                        self.param,
                        "invalid_path",
                        format!(
                            "{}: '{}' is not a lookup field, so '{}' cannot be followed",
                            self.param, head, c.field
                        ),
                    )
                })?;
            if depth >= 3 {
                return Err(invalid(
                    &plan.name,
                    self.param,
                    "invalid_path",
                    format!(
                        "{}: path '{}' is deeper than 3 lookups",
                        self.param, c.field
                    ),
                ));
            }
            let tplan = self.snap.plan(target)?;
            let alias = format!("j{}", depth + 1);
            let inner = Condition {
                field: rest.to_owned(),
                op: c.op,
                value: c.value.clone(),
            };
            sql.qualified(table, &field.name)
                .push(" IN (SELECT ")
                .qualified(&alias, "id")
                .push(" FROM ")
                .ident(&tplan.table)
                .push(" ")
                .ident(&alias)
                .push(" WHERE ");
            self.condition(tplan, &alias, &inner, sql, depth + 1)?;
            sql.push(")");
            return Ok(());
        }
        let col = column(plan, &c.field, self.param)?;
        let name = col.name.as_str();
        // Text operators work on a text rendering of non-text columns on PostgreSQL.
        let text_col = |sql: &mut Sql| {
            if self.dialect == Dialect::Postgres
                && !matches!(col.storage, Storage::Text | Storage::ReferenceId)
            {
                sql.push("CAST(").qualified(table, name).push(" AS TEXT)");
            } else {
                sql.qualified(table, name);
            }
        };
        if let FilterValue::Field(other) = &c.value {
            let oc = column(plan, other, self.param)?;
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
                        self.param,
                        "invalid_operator",
                        format!(
                            "{}: operator {} cannot compare two fields",
                            self.param,
                            other.as_str()
                        ),
                    ));
                }
            };
            sql.qualified(table, name)
                .push(op)
                .qualified(table, &oc.name);
            return Ok(());
        }
        let v = c.value.as_value().cloned().unwrap_or(Json::Null);
        let cmp = |sql: &mut Sql, op: &str, v: &Json| -> Result<()> {
            let b = bind(plan, self.param, name, col, self.dialect, v)?;
            sql.qualified(table, name).push(op).param(b);
            Ok(())
        };
        match c.op {
            Operator::Eq if v.is_null() => {
                sql.qualified(table, name).push(" IS NULL");
            }
            Operator::Ne if v.is_null() => {
                sql.qualified(table, name).push(" IS NOT NULL");
            }
            Operator::Eq if col.storage == Storage::Json && !v.is_array() && !v.is_object() => {
                self.json_has(plan, table, col, &v, sql)?;
            }
            Operator::Eq => cmp(sql, " = ", &v)?,
            Operator::Ne => {
                sql.push("(");
                cmp(sql, " <> ", &v)?;
                sql.push(" OR ").qualified(table, name).push(" IS NULL)");
            }
            Operator::Gt => cmp(sql, " > ", &v)?,
            Operator::Gte => cmp(sql, " >= ", &v)?,
            Operator::Lt => cmp(sql, " < ", &v)?,
            Operator::Lte => cmp(sql, " <= ", &v)?,
            Operator::In | Operator::Nin => {
                let items = match &v {
                    Json::Array(a) => a.clone(),
                    other => vec![other.clone()],
                };
                let negate = c.op == Operator::Nin;
                let non_null: Vec<&Json> = items.iter().filter(|x| !x.is_null()).collect();
                let has_null = non_null.len() != items.len();
                if col.storage == Storage::Json {
                    // Multi-valued fields: any element in the list.
                    sql.push(if negate { "NOT (" } else { "(" });
                    for (i, item) in non_null.iter().enumerate() {
                        if i > 0 {
                            sql.push(" OR ");
                        }
                        self.json_has(plan, table, col, item, sql)?;
                    }
                    if non_null.is_empty() {
                        sql.push("1=0");
                    }
                    sql.push(")");
                    return Ok(());
                }
                sql.push("(");
                if non_null.is_empty() {
                    sql.push(if negate { "1=1" } else { "1=0" });
                } else {
                    sql.qualified(table, name)
                        .push(if negate { " NOT IN (" } else { " IN (" });
                    for (i, item) in non_null.iter().enumerate() {
                        if i > 0 {
                            sql.push(", ");
                        }
                        let b = bind(plan, self.param, name, col, self.dialect, item)?;
                        sql.param(b);
                    }
                    sql.push(")");
                }
                match (negate, has_null) {
                    (false, true) => {
                        sql.push(" OR ").qualified(table, name).push(" IS NULL");
                    }
                    (true, false) => {
                        sql.push(" OR ").qualified(table, name).push(" IS NULL");
                    }
                    (true, true) => {
                        sql.push(" AND ")
                            .qualified(table, name)
                            .push(" IS NOT NULL");
                    }
                    (false, false) => {}
                }
                sql.push(")");
            }
            Operator::Between => {
                let (lo, hi) = match &v {
                    Json::Array(a) if a.len() == 2 => (a[0].clone(), a[1].clone()),
                    _ => {
                        return Err(invalid(
                            &plan.name,
                            self.param,
                            "invalid_value",
                            format!(
                                "{}: $between on '{name}' needs an array of two values",
                                self.param
                            ),
                        ));
                    }
                };
                let lo = bind(plan, self.param, name, col, self.dialect, &lo)?;
                let hi = bind(plan, self.param, name, col, self.dialect, &hi)?;
                sql.qualified(table, name)
                    .push(" BETWEEN ")
                    .param(lo)
                    .push(" AND ")
                    .param(hi);
            }
            Operator::Contains
            | Operator::NotContains
            | Operator::StartsWith
            | Operator::EndsWith => {
                let text = match &v {
                    Json::String(s) => s.clone(),
                    Json::Number(n) => n.to_string(),
                    Json::Bool(b) => b.to_string(),
                    _ => {
                        return Err(invalid(
                            &plan.name,
                            self.param,
                            "invalid_value",
                            format!(
                                "{}: operator {} on '{name}' needs a text value",
                                self.param,
                                c.op.as_str()
                            ),
                        ));
                    }
                };
                if col.storage == Storage::Json
                    && matches!(c.op, Operator::Contains | Operator::NotContains)
                {
                    if c.op == Operator::NotContains {
                        sql.push("(NOT (");
                        self.json_has(plan, table, col, &v, sql)?;
                        sql.push(") OR ").qualified(table, name).push(" IS NULL)");
                    } else {
                        self.json_has(plan, table, col, &v, sql)?;
                    }
                    return Ok(());
                }
                let pattern = match c.op {
                    Operator::StartsWith => format!("{}%", escape_like(&text)),
                    Operator::EndsWith => format!("%{}", escape_like(&text)),
                    _ => format!("%{}%", escape_like(&text)),
                };
                let like = if self.dialect == Dialect::Postgres {
                    " ILIKE "
                } else {
                    " LIKE "
                };
                if c.op == Operator::NotContains {
                    sql.push("(NOT (");
                    text_col(sql);
                    sql.push(like)
                        .param(Value::from(pattern))
                        .push(" ESCAPE '\\') OR ")
                        .qualified(table, name)
                        .push(" IS NULL)");
                } else {
                    text_col(sql);
                    sql.push(like)
                        .param(Value::from(pattern))
                        .push(" ESCAPE '\\'");
                }
            }
            Operator::IsNull => {
                sql.qualified(table, name).push(" IS NULL");
            }
            Operator::IsNotNull => {
                sql.qualified(table, name).push(" IS NOT NULL");
            }
            Operator::Exists => {
                let exists = !matches!(v, Json::Bool(false));
                sql.qualified(table, name)
                    .push(if exists { " IS NOT NULL" } else { " IS NULL" });
            }
        }
        Ok(())
    }

    /// `column` (a JSON array) contains the scalar `v`.
    fn json_has(
        &self,
        _plan: &ObjectPlan,
        table: &str,
        col: &Column,
        v: &Json,
        sql: &mut Sql,
    ) -> Result<()> {
        match self.dialect {
            Dialect::Postgres => {
                sql.qualified(table, &col.name)
                    .push(" @> ")
                    .param(Value::Json(Some(Box::new(Json::Array(vec![v.clone()])))));
            }
            Dialect::Sqlite => {
                let scalar = match v {
                    Json::String(s) => Value::from(s.clone()),
                    Json::Number(n) => Value::Double(n.as_f64()),
                    Json::Bool(b) => Value::Bool(Some(*b)),
                    _ => Value::String(None),
                };
                sql.push("EXISTS (SELECT 1 FROM json_each(")
                    .qualified(table, &col.name)
                    .push(") WHERE json_each.value = ")
                    .param(scalar)
                    .push(")");
            }
        }
        Ok(())
    }
}

/// One resolved sort key.
#[derive(Debug, Clone)]
pub(crate) struct SortKey {
    pub(crate) column: Column,
    pub(crate) desc: bool,
}

/// Resolves the sort keys, always ending with `id` so paging is stable.
pub(crate) fn sort_keys(plan: &ObjectPlan, order_by: &[SortNode]) -> Result<Vec<SortKey>> {
    let mut keys: Vec<SortKey> = Vec::with_capacity(order_by.len() + 1);
    for s in order_by {
        let c = column(plan, &s.field, "sort")?;
        if keys.iter().any(|k| k.column.name == c.name) {
            continue;
        }
        keys.push(SortKey {
            column: c.clone(),
            desc: s.order == SortOrder::Desc,
        });
    }
    // Without an explicit sort, lists come back in creation order, as the reference server's do.
    if order_by.is_empty()
        && let Some(created) = plan.column("created_at")
    {
        keys.push(SortKey {
            column: created.clone(),
            desc: false,
        });
    }
    if !keys.iter().any(|k| k.column.name == "id")
        && let Some(id) = plan.column("id")
    {
        keys.push(SortKey {
            column: id.clone(),
            desc: false,
        });
    }
    Ok(keys)
}

/// `ORDER BY ...` with NULLs sorting as the smallest value on both dialects.
pub(crate) fn order_by(sql: &mut Sql, table: &str, keys: &[SortKey]) {
    sql.push(" ORDER BY ");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.qualified(table, &k.column.name).push(if k.desc {
            " DESC NULLS LAST"
        } else {
            " ASC NULLS FIRST"
        });
    }
}

/// Encodes the keyset position after `record`.
pub(crate) fn encode_cursor(keys: &[SortKey], record: &crate::Record) -> String {
    let vals: Vec<Json> = keys
        .iter()
        .map(|k| record.get(&k.column.name).cloned().unwrap_or(Json::Null))
        .collect();
    b64_encode(Json::Array(vals).to_string().as_bytes())
}

/// Decodes a cursor into one value per sort key.
pub(crate) fn decode_cursor(
    plan: &ObjectPlan,
    keys: &[SortKey],
    cursor: &Cursor,
) -> Result<Vec<Json>> {
    let bad = |why: &str| {
        invalid(
            &plan.name,
            "cursor",
            "invalid_cursor",
            format!("cursor: {why}; pass the nextCursor of the previous page with the same sort"),
        )
    };
    let values: Vec<Json> = match cursor {
        Cursor::Token(t) => {
            let bytes = b64_decode(t).ok_or_else(|| bad("not a cursor token"))?;
            let v: Json = serde_json::from_slice(&bytes).map_err(|_| bad("not a cursor token"))?;
            match v {
                Json::Array(a) if a.len() == keys.len() => a,
                _ => return Err(bad("the cursor was made for a different sort order")),
            }
        }
        Cursor::Keyset(map) => keys
            .iter()
            .map(|k| {
                map.get(&k.column.name)
                    .or_else(|| {
                        if k.column.name == "id" {
                            map.get("_id")
                        } else {
                            None
                        }
                    })
                    .cloned()
                    .ok_or_else(|| {
                        bad(&format!(
                            "the keyset has no value for sort key '{}'",
                            k.column.name
                        ))
                    })
            })
            .collect::<Result<_>>()?,
    };
    // Cursor values are bound like filter values (see `FilterCompiler::condition`).
    if values.iter().any(crate::validate::has_nul) {
        return Err(bad("a value contains a NUL character (\\u0000)"));
    }
    Ok(values)
}

/// `(keys) > (values)` in sort order, NULLs being the smallest value.
pub(crate) fn keyset_condition(
    plan: &ObjectPlan,
    sql: &mut Sql,
    table: &str,
    keys: &[SortKey],
    values: &[Json],
) -> Result<()> {
    let dialect = sql.dialect;
    sql.push("(");
    for i in 0..keys.len() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push("(");
        for (j, k) in keys.iter().enumerate().take(i) {
            if j > 0 {
                sql.push(" AND ");
            }
            let v = &values[j];
            if v.is_null() {
                sql.qualified(table, &k.column.name).push(" IS NULL");
            } else {
                let b = to_db(k.column.storage, dialect, v).map_err(|e| {
                    invalid(
                        &plan.name,
                        "cursor",
                        "invalid_cursor",
                        format!("cursor: {e}"),
                    )
                })?;
                sql.qualified(table, &k.column.name).push(" = ").param(b);
            }
        }
        if i > 0 {
            sql.push(" AND ");
        }
        let k = &keys[i];
        let v = &values[i];
        let name = &k.column.name;
        match (k.desc, v.is_null()) {
            (false, true) => {
                sql.qualified(table, name).push(" IS NOT NULL");
            }
            (true, true) => {
                sql.push("1=0");
            }
            (false, false) => {
                let b = to_db(k.column.storage, dialect, v).map_err(|e| {
                    invalid(
                        &plan.name,
                        "cursor",
                        "invalid_cursor",
                        format!("cursor: {e}"),
                    )
                })?;
                sql.qualified(table, name).push(" > ").param(b);
            }
            (true, false) => {
                let b = to_db(k.column.storage, dialect, v).map_err(|e| {
                    invalid(
                        &plan.name,
                        "cursor",
                        "invalid_cursor",
                        format!("cursor: {e}"),
                    )
                })?;
                sql.push("(")
                    .qualified(table, name)
                    .push(" < ")
                    .param(b)
                    .push(" OR ")
                    .qualified(table, name)
                    .push(" IS NULL)");
            }
        }
        sql.push(")");
    }
    sql.push(")");
    Ok(())
}

/// One compiled aggregation output.
#[derive(Debug, Clone)]
pub(crate) struct AggOut {
    pub(crate) alias: String,
    pub(crate) function: AggregateFunction,
    /// The column, for min/max (read with its storage).
    pub(crate) column: Option<Column>,
}

/// Appends the SQL expression of one aggregation.
pub(crate) fn aggregate_expr(
    fc: &FilterCompiler<'_>,
    plan: &ObjectPlan,
    table: &str,
    a: &Aggregation,
    sql: &mut Sql,
) -> Result<AggOut> {
    let dialect = sql.dialect;
    let col = match &a.field {
        Some(f) if !(a.function == AggregateFunction::Count && (f == "*" || f.is_empty())) => {
            Some(column(plan, f, "aggregations")?.clone())
        }
        _ => None,
    };
    // `count` without a field counts rows; made distinct it needs the field whose values to count.
    let needs_field = !matches!(a.function, AggregateFunction::Count) || a.distinct;
    if needs_field && col.is_none() {
        return Err(invalid(
            &plan.name,
            "aggregations",
            "invalid_aggregation",
            format!(
                "aggregations: {} '{}' needs a field",
                a.function.as_str(),
                a.alias
            ),
        ));
    }
    if let (Some(c), AggregateFunction::Sum | AggregateFunction::Avg) = (&col, a.function)
        && !matches!(c.storage, Storage::Integer | Storage::Decimal)
    {
        return Err(invalid(
            &plan.name,
            "aggregations",
            "invalid_aggregation",
            format!(
                "aggregations: {} needs a numeric field, '{}' is not one",
                a.function.as_str(),
                c.name
            ),
        ));
    }
    // The value expression, filtered by CASE WHEN when the aggregation has its own filter.
    let value = |sql: &mut Sql| -> Result<()> {
        match &a.filter {
            Some(f) => {
                sql.push("CASE WHEN ");
                fc.compile(plan, table, f, sql, 0)?;
                sql.push(" THEN ");
                match &col {
                    Some(c) => sql.qualified(table, &c.name),
                    None => sql.push("1"),
                };
                sql.push(" END");
            }
            None => match &col {
                Some(c) => {
                    sql.qualified(table, &c.name);
                }
                None => {
                    sql.push("*");
                }
            },
        }
        Ok(())
    };
    let distinct = if a.distinct || a.function == AggregateFunction::CountDistinct {
        "DISTINCT "
    } else {
        ""
    };
    match a.function {
        AggregateFunction::Count | AggregateFunction::CountDistinct => {
            sql.push("COUNT(").push(distinct);
            value(sql)?;
            sql.push(")");
        }
        AggregateFunction::Sum
        | AggregateFunction::Avg
        | AggregateFunction::Min
        | AggregateFunction::Max => {
            let f = match a.function {
                AggregateFunction::Sum => "SUM(",
                AggregateFunction::Avg => "AVG(",
                AggregateFunction::Min => "MIN(",
                _ => "MAX(",
            };
            // PostgreSQL returns NUMERIC for these, which reads back as f64 only through a cast.
            let cast = dialect == Dialect::Postgres
                && col.as_ref().is_some_and(|c| {
                    c.numeric.is_some()
                        || (c.storage == Storage::Integer
                            && matches!(
                                a.function,
                                AggregateFunction::Sum | AggregateFunction::Avg
                            ))
                });
            if cast {
                sql.push("CAST(");
            }
            sql.push(f).push(distinct);
            value(sql)?;
            sql.push(")");
            if cast {
                sql.push(" AS DOUBLE PRECISION)");
            }
        }
        AggregateFunction::ArrayAgg => {
            sql.push(if dialect == Dialect::Postgres {
                "CAST(json_agg("
            } else {
                "json_group_array("
            })
            .push(distinct);
            value(sql)?;
            sql.push(if dialect == Dialect::Postgres {
                ") AS TEXT)"
            } else {
                ")"
            });
        }
        AggregateFunction::StringAgg => {
            if dialect == Dialect::Postgres {
                sql.push("string_agg(").push(distinct).push("CAST(");
                value(sql)?;
                sql.push(" AS TEXT), ',')");
            } else {
                sql.push("group_concat(").push(distinct);
                value(sql)?;
                sql.push(")");
            }
        }
    }
    Ok(AggOut {
        alias: a.alias.clone(),
        function: a.function,
        column: col,
    })
}
