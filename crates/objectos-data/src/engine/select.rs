//! Selections through lookups (`select=name,account.name`, `{field, fields}`) and `distinct`
//! pages over the selected fields.
//!
//! A selection through a lookup is lowered into an expand: `account.name` keeps `account` in the
//! record's own selection and becomes `expand.account.fields = [name]`. The related records are
//! then fetched exactly like an expand (one batched `IN (...)` query per lookup and level, through
//! the target object's Find interceptors, so its row filters apply, and the root object's
//! after-hooks strip unreadable fields from the nested records), and come back as nested objects
//! holding only the selected fields.

use objectos_spec::query::{FieldSelection, Filter, MAX_EXPAND_DEPTH, QueryAst, SortOrder};
use sea_orm::Value;
use serde_json::Value as Json;

use super::{DataEngine, Scope, tenant_filter};
use crate::Record;
use crate::db::Sql;
use crate::error::Result;
use crate::meta::{self, Column, MetadataSnapshot, ObjectPlan};
use crate::sqlgen::{self, FilterCompiler, canonical, invalid};
use crate::value::{from_row, read_number};

/// The nested selection collected for one lookup of the object being lowered.
struct Nested {
    /// The lookup field (canonical name).
    field: String,
    /// Selections on the target object, relative to it.
    fields: Vec<FieldSelection>,
    /// A `{field: "account"}` selection without `fields`: every field of the target.
    all: bool,
}

/// Rewrites `query` so that `query.fields` only names fields of `plan` itself, moving every part
/// that goes through a lookup into `query.expand` (see the module docs), and checks every name
/// on the way (`select` and `expand`), the nested levels included, before anything is queried.
///
/// `depth` is the expand level `query` is at (0 for the query of the request itself); a
/// selection may go through at most [`MAX_EXPAND_DEPTH`] lookups. `prefix` is the path that led
/// here (`account.`), for messages. Lowering a lowered query changes nothing.
pub(super) fn lower_selection(
    snap: &MetadataSnapshot,
    plan: &ObjectPlan,
    query: &mut QueryAst,
    depth: usize,
    prefix: &str,
) -> Result<()> {
    check_expand_keys(plan, query)?;
    if query.fields.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<FieldSelection> = Vec::with_capacity(query.fields.len());
    let mut nested: Vec<Nested> = Vec::new();
    let keep = |keys: &mut Vec<FieldSelection>, name: &str| {
        if !keys.iter().any(|k| canonical(k.name()) == canonical(name)) {
            keys.push(FieldSelection::Field(name.to_owned()));
        }
    };
    for sel in std::mem::take(&mut query.fields) {
        let (path, sub) = match sel {
            FieldSelection::Field(path) => (path, None),
            FieldSelection::Nested { field, fields } => (field, Some(fields)),
        };
        let (head, rest) = match path.split_once('.') {
            Some((h, r)) => (h, Some(r)),
            None => (path.as_str(), None),
        };
        let name = canonical(head);
        let field = plan.field(name).ok_or_else(|| {
            invalid(
                &plan.name,
                "select",
                "unknown_field",
                format!(
                    "select: field '{name}' does not exist on object '{}'{}",
                    plan.name,
                    in_path(prefix, &path)
                ),
            )
        })?;
        // A plain name, or `{field: name}` without a nested list: the field itself.
        if rest.is_none() && sub.as_ref().is_none_or(Vec::is_empty) && {
            field.reference_target(&plan.name).is_none() || sub.is_none()
        } {
            keep(&mut keys, head);
            continue;
        }
        let target = field.reference_target(&plan.name).ok_or_else(|| {
            invalid(
                &plan.name,
                "select",
                "invalid_path",
                format!(
                    "select: field '{name}' of object '{}' is not a lookup, so '{prefix}{path}' cannot go through it",
                    plan.name
                ),
            )
        })?;
        if snap.plan(target).is_err() {
            return Err(invalid(
                &plan.name,
                "select",
                "invalid_path",
                format!(
                    "select: field '{name}' of object '{}' refers to object '{target}', which is not installed, so '{prefix}{path}' cannot be selected",
                    plan.name
                ),
            ));
        }
        if depth >= MAX_EXPAND_DEPTH {
            return Err(invalid(
                &plan.name,
                "select",
                "invalid_path",
                format!(
                    "select: '{prefix}{path}' goes through more than {MAX_EXPAND_DEPTH} lookups"
                ),
            ));
        }
        keep(&mut keys, head);
        let slot = match nested.iter().position(|n| n.field == name) {
            Some(i) => &mut nested[i],
            None => {
                nested.push(Nested {
                    field: name.to_owned(),
                    fields: Vec::new(),
                    all: false,
                });
                let last = nested.len() - 1;
                &mut nested[last]
            }
        };
        match (rest, sub) {
            (Some(rest), None) => slot.fields.push(FieldSelection::Field(rest.to_owned())),
            (Some(rest), Some(fields)) => slot.fields.push(FieldSelection::Nested {
                field: rest.to_owned(),
                fields,
            }),
            (None, Some(fields)) if fields.is_empty() => slot.all = true,
            (None, Some(fields)) => slot.fields.extend(fields),
            // A plain lookup name was kept above.
            (None, None) => {}
        }
    }
    query.fields = keys;
    for n in nested {
        let Some(target) = plan
            .field(&n.field)
            .and_then(|f| f.reference_target(&plan.name))
        else {
            continue;
        };
        let tplan = snap.plan(target)?;
        let key = query
            .expand
            .keys()
            .find(|k| canonical(k) == n.field)
            .cloned();
        let sub = match key {
            Some(k) => query.expand.entry(k).or_default(),
            None => query.expand.entry(n.field.clone()).or_default(),
        };
        if n.all {
            // Every field of the target: nothing to narrow.
            sub.fields.clear();
        } else if sub.fields.is_empty() {
            sub.fields = n.fields;
        } else {
            sub.fields.extend(n.fields);
        }
        lower_selection(
            snap,
            tplan,
            sub,
            depth + 1,
            &format!("{prefix}{}.", n.field),
        )?;
    }
    Ok(())
}

fn in_path(prefix: &str, path: &str) -> String {
    if prefix.is_empty() && !path.contains('.') {
        String::new()
    } else {
        format!(" (in '{prefix}{path}')")
    }
}

/// `expand` keys must name lookups of `plan`.
pub(super) fn check_expand_keys(plan: &ObjectPlan, query: &QueryAst) -> Result<()> {
    for k in query.expand.keys() {
        let name = canonical(k);
        match plan.field(name) {
            None => {
                return Err(invalid(
                    &plan.name,
                    "expand",
                    "unknown_field",
                    format!(
                        "expand: field '{name}' does not exist on object '{}'",
                        plan.name
                    ),
                ));
            }
            Some(f) if f.reference_target(&plan.name).is_none() => {
                return Err(invalid(
                    &plan.name,
                    "expand",
                    "invalid_expand",
                    format!(
                        "expand: field '{name}' of object '{}' is not a lookup",
                        plan.name
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Keeps the selected keys of a record (a lowered selection: plain names), in selection order;
/// a field the record lacks comes back as `null`.
pub(super) fn project(fields: &[FieldSelection], mut record: Record) -> Record {
    let mut out = Record::with_capacity(fields.len());
    for s in fields {
        let v = record.remove(canonical(s.name())).unwrap_or(Json::Null);
        out.insert(s.name().to_owned(), v);
    }
    out
}

/// One page of distinct rows.
pub(super) struct DistinctPage {
    pub(super) records: Vec<Record>,
    pub(super) total: u64,
    pub(super) has_more: bool,
}

impl DataEngine {
    /// `SELECT DISTINCT` over the (lowered) selected fields of `query`: rows are the distinct
    /// combinations of those fields' values, sorted by the selected fields in order unless
    /// `orderBy` names some of them, paged with limit/offset; `total` counts the distinct rows.
    pub(super) async fn distinct_page(
        &self,
        scope: Scope<'_>,
        query: &QueryAst,
        filter: &Filter,
        limit: u64,
    ) -> Result<DistinctPage> {
        let Scope {
            conn,
            cx,
            snap,
            plan,
        } = scope;
        if query.cursor.is_some() {
            return Err(invalid(
                &plan.name,
                "cursor",
                "invalid_paging",
                "cursor: cursor paging is not available with distinct; page with limit and offset"
                    .into(),
            ));
        }
        let mut cols: Vec<Column> = Vec::with_capacity(query.fields.len());
        for s in &query.fields {
            cols.push(sqlgen::column(plan, s.name(), "select")?.clone());
        }
        // Sorting goes by position in the select list (the DISTINCT rows have no other columns).
        let mut order: Vec<(usize, bool)> = Vec::new();
        for s in &query.order_by {
            let name = canonical(&s.field);
            let i = cols.iter().position(|c| c.name == name).ok_or_else(|| {
                invalid(
                    &plan.name,
                    "sort",
                    "invalid_sort",
                    format!(
                        "sort: '{}' is not one of the selected fields; with distinct, sort by selected fields only",
                        s.field
                    ),
                )
            })?;
            if !order.iter().any(|(j, _)| *j == i) {
                order.push((i, s.order == SortOrder::Desc));
            }
        }
        for i in 0..cols.len() {
            if !order.iter().any(|(j, _)| *j == i) {
                order.push((i, false));
            }
        }
        let dialect = self.inner.dialect;
        let full = tenant_filter(cx).and(filter.clone());
        let inner = |sql: &mut Sql| -> Result<()> {
            sql.push("SELECT DISTINCT ");
            for (i, c) in cols.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push(&meta::column_expr(dialect, &plan.table, c))
                    .push(" AS ")
                    .ident(&format!("c{i}"));
            }
            sql.push(" FROM ").ident(&plan.table).push(" WHERE ");
            let fc = FilterCompiler {
                snap,
                dialect,
                param: "filter",
            };
            fc.compile(plan, &plan.table, &full, sql, 0)
        };
        let mut sql = Sql::new(dialect);
        sql.push("SELECT * FROM (");
        inner(&mut sql)?;
        sql.push(") ").ident("d").push(" ORDER BY ");
        for (n, (i, desc)) in order.iter().enumerate() {
            if n > 0 {
                sql.push(", ");
            }
            sql.qualified("d", &format!("c{i}")).push(if *desc {
                " DESC NULLS LAST"
            } else {
                " ASC NULLS FIRST"
            });
        }
        sql.limit(limit + 1);
        let offset = query.offset.filter(|o| *o > 0);
        if let Some(o) = offset {
            sql.push(" OFFSET ")
                .param(Value::BigInt(Some(o.min(i64::MAX as u64) as i64)));
        }
        let rows = self.q(conn, sql).await?;
        let mut records: Vec<Record> = rows
            .iter()
            .map(|r| {
                let mut rec = Record::with_capacity(cols.len());
                for (i, (s, c)) in query.fields.iter().zip(&cols).enumerate() {
                    rec.insert(s.name().to_owned(), from_row(r, i, c, dialect));
                }
                rec
            })
            .collect();
        let has_more = records.len() as u64 > limit;
        records.truncate(limit as usize);
        // The page holds every distinct row unless it is full or starts past the first one.
        let total = if !has_more && offset.is_none() {
            records.len() as u64
        } else {
            let mut sql = Sql::new(dialect);
            sql.push("SELECT COUNT(*) FROM (");
            inner(&mut sql)?;
            sql.push(") ").ident("d");
            let rows = self.q(conn, sql).await?;
            rows.first()
                .and_then(|r| read_number(r, 0).as_u64())
                .unwrap_or(0)
        };
        Ok(DistinctPage {
            records,
            total,
            has_more,
        })
    }
}
