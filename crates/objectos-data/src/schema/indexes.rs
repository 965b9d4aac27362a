//! The indexes the metadata asks for on an object's table: naming, the tenant rule for unique
//! indexes, merging duplicates, and the create/drop steps that bring a table to them.

use std::collections::{HashMap, HashSet};

use objectos_spec::object::IndexType;
use sea_orm::DatabaseConnection;

use super::MigrationStep;
use crate::db::{self, Dialect, Sql};
use crate::error::Result;
use crate::meta::ObjectPlan;

pub(super) fn index_name(table: &str, suffix: &str, unique: bool) -> String {
    bounded(format!(
        "{}_{}_{}",
        if unique { "ux" } else { "ix" },
        table,
        suffix
    ))
}

/// Every index of the database (of the current schema on PostgreSQL): name to table.
pub(super) async fn existing_indexes(
    conn: &DatabaseConnection,
    dialect: Dialect,
) -> Result<HashMap<String, String>> {
    let mut sql = Sql::new(dialect);
    match dialect {
        Dialect::Sqlite => {
            sql.push("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'")
        }
        Dialect::Postgres => sql.push(
            "SELECT indexname::text, tablename::text FROM pg_indexes WHERE schemaname = current_schema()",
        ),
    };
    let rows = db::query(conn, sql).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some((
                r.try_get_by_index::<String>(0).ok()?,
                r.try_get_by_index::<String>(1).ok()?,
            ))
        })
        .collect())
}

/// An index the schema sync wants on an object's table.
#[derive(Debug, Clone)]
pub(crate) struct WantedIndex {
    pub(crate) name: String,
    /// The indexed columns in order: `organization_id` first where the tenant rule applies.
    pub(crate) columns: Vec<String>,
    /// The fields the metadata names (the unique field, or the `indexes:` entry's fields), which
    /// are also the columns the rules before tenant-scoped indexes used. A duplicate names them.
    pub(crate) fields: Vec<String>,
    pub(crate) unique: bool,
    pub(crate) kind: IndexType,
    /// Declared in `indexes:` (rather than derived from a field).
    pub(crate) declared: bool,
    /// The name this index had under the rules before tenant-scoped indexes (the same as `name`
    /// when its columns did not change).
    pub(crate) legacy: String,
}

/// Caps a name at 60 bytes (PostgreSQL cuts identifiers at 63, which would make the name in the
/// catalog differ from the planned one): longer names keep 43 bytes and add a stable hash.
fn bounded(name: String) -> String {
    if name.len() <= 60 {
        return name;
    }
    let mut cut = 43;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{}", &name[..cut], crate::meta::stable_hash(&name))
}

/// The columns of a unique field or a declared index over `fields`. On a tenant-scoped object a
/// unique index holds per organization, so it is over (`organization_id`, fields). Plain indexes
/// keep their columns: without authentication (or for system work) reads carry no organization
/// filter, and an index led by `organization_id` could not serve them at all (measured: the bench
/// list fell from 3,000 to 350 req/s with a full scan), while with one the leading declared
/// column still narrows before the organization check.
fn tenant_columns(plan: &ObjectPlan, fields: &[String], unique: bool) -> Vec<String> {
    if !unique
        || !plan.tenant_scoped
        || fields.first().map(String::as_str) == Some("organization_id")
    {
        return fields.to_vec();
    }
    std::iter::once("organization_id".to_owned())
        .chain(fields.iter().filter(|f| *f != "organization_id").cloned())
        .collect()
}

/// Every index the metadata asks for on `plan`'s table, before duplicates are merged: unique
/// fields, automatic indexes (lookups, `index: true`), then `indexes:` in order.
pub(crate) fn candidate_indexes(plan: &ObjectPlan) -> Vec<WantedIndex> {
    let table = &plan.table;
    let mut out = Vec::new();
    for f in plan.schema.fields.values() {
        if plan.column(&f.name).is_none() || f.name == "id" {
            continue;
        }
        let fields = vec![f.name.clone()];
        if f.unique {
            let legacy = index_name(table, &f.name, true);
            let columns = tenant_columns(plan, &fields, true);
            let name = if columns == fields {
                legacy.clone()
            } else {
                index_name(table, &columns.join("_"), true)
            };
            out.push(WantedIndex {
                name,
                columns,
                fields,
                unique: true,
                kind: IndexType::Btree,
                declared: false,
                legacy,
            });
        } else if f.index || (f.reference_target(&plan.name).is_some() && !f.multiple) {
            let name = index_name(table, &f.name, false);
            out.push(WantedIndex {
                name: name.clone(),
                columns: fields.clone(),
                fields,
                unique: false,
                kind: IndexType::Btree,
                declared: false,
                legacy: name,
            });
        }
    }
    for ix in &plan.schema.indexes {
        if ix.fields.is_empty() || ix.fields.iter().any(|f| plan.column(f).is_none()) {
            continue;
        }
        let legacy = match &ix.name {
            Some(n) => n.clone(),
            None => index_name(table, &ix.fields.join("_"), ix.unique),
        };
        let columns = tenant_columns(plan, &ix.fields, ix.unique);
        let name = match &ix.name {
            _ if columns == ix.fields => legacy.clone(),
            // The operator's name with a suffix: the old index keeps its name until it is dropped
            // in the same migration, and index names are unique per database (per schema).
            Some(n) => bounded(format!("{n}_org")),
            None => index_name(table, &columns.join("_"), ix.unique),
        };
        out.push(WantedIndex {
            name,
            columns,
            fields: ix.fields.clone(),
            unique: ix.unique,
            kind: ix.kind,
            declared: true,
            legacy,
        });
    }
    out
}

/// The indexes to keep: [`candidate_indexes`] with those over the same columns merged. A declared
/// index that repeats an automatic one (`indexes: [{fields: [account]}]` next to the lookup
/// `account`) would double the write cost of every insert and update for nothing. The one kept
/// is, in this order: unique (it also serves lookups, and the constraint is needed), already in
/// the database (nothing is created), declared (its name is the operator's), first.
fn kept_indexes(
    candidates: &[WantedIndex],
    existing: &HashMap<String, String>,
) -> Vec<WantedIndex> {
    let rank = |c: &WantedIndex| (c.unique, existing.contains_key(&c.name), c.declared);
    let mut kept: Vec<WantedIndex> = Vec::with_capacity(candidates.len());
    for c in candidates {
        match kept.iter_mut().find(|k| k.columns == c.columns) {
            Some(k) if rank(c) > rank(k) => *k = c.clone(),
            Some(_) => {}
            None => kept.push(c.clone()),
        }
    }
    kept
}

/// Index steps for one object: the indexes that are missing, then the drops of indexes an older
/// DDL version created that a new one replaces (a unique index over the field alone on a
/// tenant-scoped object, now over `organization_id` and the field), of unique indexes of fields
/// no longer unique, and of the automatic indexes of the system fields in `unindexed`, which the
/// plugin owning the object leaves out (`TableStorage::without_system_index`). Only such
/// indexes, found by name on this table, are ever dropped; an index holds no data of its own.
pub(super) fn index_steps(
    dialect: Dialect,
    plan: &ObjectPlan,
    unindexed: &[&str],
    existing: &HashMap<String, String>,
    out: &mut Vec<MigrationStep>,
) {
    let q = |s: &str| dialect.quote(s);
    let table = &plan.table;
    // Only the automatic index of such a field goes: one declared under `indexes:`, or a unique
    // one (a constraint), stays.
    let left_out = |c: &WantedIndex| {
        !c.declared
            && !c.unique
            && matches!(c.fields.as_slice(), [f] if unindexed.contains(&f.as_str()))
    };
    let candidates: Vec<WantedIndex> = candidate_indexes(plan)
        .into_iter()
        .filter(|c| !left_out(c))
        .collect();
    let kept = kept_indexes(&candidates, existing);
    let mut seen = HashSet::new();
    for ix in &kept {
        if existing.contains_key(&ix.name) || !seen.insert(ix.name.clone()) {
            continue;
        }
        let using = match (dialect, ix.kind) {
            (Dialect::Postgres, IndexType::Hash) if !ix.unique && ix.columns.len() == 1 => {
                " USING hash"
            }
            _ => "",
        };
        let cols: Vec<String> = ix.columns.iter().map(|f| q(f)).collect();
        let sql = format!(
            "CREATE {}INDEX {} ON {}{} ({})",
            if ix.unique { "UNIQUE " } else { "" },
            q(&ix.name),
            q(table),
            using,
            cols.join(", ")
        );
        out.push(MigrationStep::CreateIndex {
            object: plan.name.clone(),
            index: ix.name.clone(),
            sql,
        });
    }
    let mut dropped = HashSet::new();
    for field in unindexed {
        let name = index_name(table, field, false);
        if existing.get(&name).is_some_and(|t| t == table)
            && !kept.iter().any(|k| k.name == name)
            && dropped.insert(name.clone())
        {
            out.push(MigrationStep::RetireIndex {
                object: plan.name.clone(),
                sql: format!("DROP INDEX IF EXISTS {}", q(&name)),
                index: name,
            });
        }
    }
    for c in candidates.iter().filter(|c| c.legacy != c.name) {
        let on_this_table = existing.get(&c.legacy).is_some_and(|t| t == table);
        if !on_this_table
            || kept.iter().any(|k| k.name == c.legacy)
            || !dropped.insert(c.legacy.clone())
        {
            continue;
        }
        // The kept index over the new columns (the candidate itself, or the one it merged into).
        let Some(by) = kept.iter().find(|k| k.columns == c.columns) else {
            continue;
        };
        out.push(MigrationStep::DropIndex {
            object: plan.name.clone(),
            index: c.legacy.clone(),
            replaced_by: by.name.clone(),
            columns: by.columns.clone(),
            sql: format!("DROP INDEX IF EXISTS {}", q(&c.legacy)),
        });
    }
    // A field that is no longer unique: the unique index the engine made for it (either name it
    // may have had) would go on refusing values the metadata now allows, with no pre-check in
    // front of it. It holds no data; it goes. Indexes declared under `indexes:` are kept while
    // declared.
    for f in plan.schema.fields.values() {
        if f.unique || f.name == "id" || plan.column(&f.name).is_none() {
            continue;
        }
        let fields = vec![f.name.clone()];
        let names = [
            index_name(table, &f.name, true),
            index_name(table, &tenant_columns(plan, &fields, true).join("_"), true),
            index_name(table, &format!("organization_id_{}", f.name), true),
        ];
        for name in names {
            let on_this_table = existing.get(&name).is_some_and(|t| t == table);
            if !on_this_table
                || kept.iter().any(|k| k.name == name)
                || !dropped.insert(name.clone())
            {
                continue;
            }
            out.push(MigrationStep::DropIndex {
                object: plan.name.clone(),
                sql: format!("DROP INDEX IF EXISTS {}", q(&name)),
                index: name,
                replaced_by: String::new(),
                columns: fields.clone(),
            });
        }
    }
}
