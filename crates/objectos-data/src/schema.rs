//! Schema sync: an additive migration plan (create tables, add columns, create indexes) computed by
//! introspecting the database, printed one SQL statement per line, and applied with progress.
//!
//! Tables and columns are never dropped or narrowed: a column whose type changed is reported as a
//! manual step and left alone. The one thing the sync drops is an index an older DDL version
//! created that a new index replaces (the unique index over a field alone on a tenant-scoped
//! object, superseded by one over `organization_id` and the field); an index holds no data, so
//! nothing is lost. `_objectos_schema` records the hash of every object last applied.

use std::collections::{HashMap, HashSet};
use std::fmt;

use objectos_spec::object::{IndexType, Storage};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait, Value};

use crate::db::{self, Dialect, Sql};
use crate::error::{DataError, Result};
use crate::meta::{Column, MetadataSnapshot, ObjectPlan};
use crate::owned::PluginSchema;

/// One step of a migration plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationStep {
    CreateTable {
        object: String,
        sql: String,
    },
    AddColumn {
        object: String,
        column: String,
        sql: String,
    },
    CreateIndex {
        object: String,
        index: String,
        sql: String,
    },
    /// Drops an index an older DDL version created that `replaced_by` (over `columns`, created
    /// earlier in the same plan or already present) supersedes, or (`replaced_by` empty) the
    /// unique index of `columns`, a field no longer declared unique. An index holds no data of
    /// its own: dropping it loses nothing. Tables and columns are never dropped.
    DropIndex {
        object: String,
        index: String,
        replaced_by: String,
        columns: Vec<String>,
        sql: String,
    },
    /// Drops an index the plugin that owns the table retired (it lists the name in its
    /// `TableDef`); an index holds no data of its own.
    RetireIndex {
        object: String,
        index: String,
        sql: String,
    },
    /// Sets a plugin's storage settings on its table (PostgreSQL only: `fillfactor`), planned
    /// when the table's `reloptions` lack them.
    SetStorage {
        object: String,
        sql: String,
    },
    /// Something the engine will not do automatically (type change); printed as a SQL comment.
    Manual {
        object: String,
        column: String,
        message: String,
    },
}

impl MigrationStep {
    /// The SQL to run, `None` for manual steps.
    pub fn sql(&self) -> Option<&str> {
        match self {
            Self::CreateTable { sql, .. }
            | Self::AddColumn { sql, .. }
            | Self::CreateIndex { sql, .. }
            | Self::DropIndex { sql, .. }
            | Self::RetireIndex { sql, .. }
            | Self::SetStorage { sql, .. } => Some(sql),
            Self::Manual { .. } => None,
        }
    }

    /// The object the step belongs to.
    pub fn object(&self) -> &str {
        match self {
            Self::CreateTable { object, .. }
            | Self::AddColumn { object, .. }
            | Self::CreateIndex { object, .. }
            | Self::DropIndex { object, .. }
            | Self::RetireIndex { object, .. }
            | Self::SetStorage { object, .. }
            | Self::Manual { object, .. } => object,
        }
    }
}

impl fmt::Display for MigrationStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Manual {
                object,
                column,
                message,
            } => {
                write!(
                    f,
                    "-- manual step (skipped): {object}.{column}: {}",
                    message.replace('\n', " ")
                )
            }
            Self::DropIndex {
                sql,
                replaced_by,
                columns,
                ..
            } if replaced_by.is_empty() => write!(
                f,
                "{sql}; -- {} is no longer unique; dropping an index loses no data",
                columns.join(", ")
            ),
            Self::DropIndex {
                sql,
                replaced_by,
                columns,
                ..
            } => write!(
                f,
                "{sql}; -- superseded by {} ({}); dropping an index loses no data",
                replaced_by,
                columns.join(", ")
            ),
            Self::RetireIndex { sql, .. } => {
                write!(
                    f,
                    "{sql}; -- retired by its plugin; dropping an index loses no data"
                )
            }
            other => write!(f, "{};", other.sql().unwrap_or_default()),
        }
    }
}

/// The additive plan: what `migrate` would run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationPlan {
    /// The steps of the metadata's objects and the engine's own tables.
    pub steps: Vec<MigrationStep>,
    /// Objects whose recorded hash differs from the current metadata (recorded on migrate).
    pub changed_objects: Vec<String>,
    /// The steps of each plugin's private tables, per plugin (in the order plugins were
    /// given; plugins with nothing to do included, with no steps).
    pub plugins: Vec<PluginSteps>,
}

/// The steps of one plugin's private tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginSteps {
    pub plugin: String,
    /// The tables the plugin declares.
    pub tables: Vec<String>,
    pub steps: Vec<MigrationStep>,
}

impl MigrationPlan {
    /// True when there is nothing to run (manual steps do not count: they are never run).
    pub fn is_empty(&self) -> bool {
        self.all_steps()
            .all(|s| matches!(s, MigrationStep::Manual { .. }))
    }

    /// Every step: the objects' first, then each plugin's.
    pub fn all_steps(&self) -> impl Iterator<Item = &MigrationStep> {
        self.steps
            .iter()
            .chain(self.plugins.iter().flat_map(|p| p.steps.iter()))
    }
}

impl fmt::Display for MigrationPlan {
    /// One SQL statement per line; each plugin's tables under a comment naming the plugin.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            writeln!(f, "{s}")?;
        }
        for p in &self.plugins {
            if p.steps.is_empty() {
                writeln!(
                    f,
                    "-- plugin {}: {} up to date",
                    p.plugin,
                    p.tables.join(", ")
                )?;
            } else {
                writeln!(f, "-- plugin {}: {}", p.plugin, p.tables.join(", "))?;
                for s in &p.steps {
                    writeln!(f, "{s}")?;
                }
            }
        }
        Ok(())
    }
}

/// What `migrate` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    pub applied: usize,
    pub skipped_manual: usize,
    pub objects_recorded: usize,
}

/// SQL type of a column.
pub(crate) fn column_type(dialect: Dialect, c: &Column) -> String {
    match (dialect, c.storage) {
        (_, Storage::Text | Storage::ReferenceId) => "TEXT".into(),
        (Dialect::Sqlite, Storage::Integer) => "INTEGER".into(),
        (Dialect::Postgres, Storage::Integer) => "BIGINT".into(),
        (Dialect::Sqlite, Storage::Decimal) => "REAL".into(),
        (Dialect::Postgres, Storage::Decimal) => match c.numeric {
            Some((p, s)) => format!("NUMERIC({p},{s})"),
            None => "DOUBLE PRECISION".into(),
        },
        (_, Storage::Boolean) => "BOOLEAN".into(),
        (Dialect::Sqlite, Storage::Date | Storage::DateTime | Storage::Time | Storage::Json) => {
            "TEXT".into()
        }
        (Dialect::Postgres, Storage::Date) => "DATE".into(),
        (Dialect::Postgres, Storage::DateTime) => "TIMESTAMPTZ".into(),
        (Dialect::Postgres, Storage::Time) => "TIME".into(),
        (Dialect::Postgres, Storage::Json) => "JSONB".into(),
    }
}

/// A coarse type family used to detect changed column types in the existing database.
fn family(t: &str) -> &'static str {
    let t = t.to_ascii_lowercase();
    if t.contains("int") {
        "int"
    } else if t.contains("real")
        || t.contains("double")
        || t.contains("numeric")
        || t.contains("decimal")
        || t.contains("float")
    {
        "num"
    } else if t.contains("bool") {
        "bool"
    } else if t.contains("timestamp") {
        "ts"
    } else if t == "date" {
        "date"
    } else if t.starts_with("time") {
        "time"
    } else if t.contains("json") {
        "json"
    } else {
        "text"
    }
}

fn index_name(table: &str, suffix: &str, unique: bool) -> String {
    bounded(format!(
        "{}_{}_{}",
        if unique { "ux" } else { "ix" },
        table,
        suffix
    ))
}

/// The internal tables, created at open with IF NOT EXISTS.
pub(crate) fn internal_ddl(dialect: Dialect) -> Vec<String> {
    let (serial, payload, ts) = match dialect {
        // No AUTOINCREMENT: it updates `sqlite_sequence` on every insert (one more page per write
        // transaction). A plain rowid is max + 1, so ids still grow while rows exist, which is
        // all the dispatcher's id order needs; event identity is `event_id`.
        Dialect::Sqlite => ("INTEGER PRIMARY KEY", "TEXT", "TEXT"),
        Dialect::Postgres => ("BIGSERIAL PRIMARY KEY", "TEXT", "TEXT"),
    };
    // The dispatcher's claim columns exist on PostgreSQL only (several servers may share it);
    // an older table gets them from the migration plan.
    let mut extra: String = match dialect {
        Dialect::Sqlite => String::new(),
        Dialect::Postgres => crate::outbox::CLAIM_COLUMNS
            .iter()
            .map(|(name, ty)| format!(", \"{name}\" {ty}"))
            .collect(),
    };
    // The event envelope's request, correlation and causation ids (DDL version 5) and trace
    // context (version 6).
    for (name, ty) in crate::outbox::TRACE_COLUMNS {
        extra.push_str(&format!(", \"{name}\" {ty}"));
    }
    vec![
        format!("CREATE TABLE IF NOT EXISTS \"_objectos_schema\" (\"object\" TEXT PRIMARY KEY, \"hash\" TEXT NOT NULL, \"applied_at\" {ts} NOT NULL)"),
        format!(
            "CREATE TABLE IF NOT EXISTS \"_objectos_outbox\" (\"id\" {serial}, \"event_id\" TEXT NOT NULL, \"event_name\" TEXT NOT NULL, \"object\" TEXT NOT NULL, \"record_id\" TEXT, \"payload\" {payload} NOT NULL, \"user_id\" TEXT, \"tenant_id\" TEXT, \"created_at\" {ts} NOT NULL, \"dispatched_at\" {ts}{extra})"
        ),
        "CREATE INDEX IF NOT EXISTS \"ix__objectos_outbox_pending\" ON \"_objectos_outbox\" (\"dispatched_at\", \"id\")".to_owned(),
        "CREATE TABLE IF NOT EXISTS \"_objectos_autonumber\" (\"object\" TEXT NOT NULL, \"field\" TEXT NOT NULL, \"value\" BIGINT NOT NULL, PRIMARY KEY (\"object\", \"field\"))".to_owned(),
    ]
}

/// Every table's columns (name to declared type), read in one query rather than one per object.
async fn existing_columns(
    conn: &DatabaseConnection,
    dialect: Dialect,
) -> Result<HashMap<String, HashMap<String, String>>> {
    let mut sql = Sql::new(dialect);
    match dialect {
        Dialect::Sqlite => {
            sql.push("SELECT m.name, p.name, p.type FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS p WHERE m.type = 'table'");
        }
        Dialect::Postgres => {
            sql.push("SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns WHERE table_schema = current_schema()");
        }
    }
    let rows = db::query(conn, sql).await?;
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    for r in rows {
        let table: String = r
            .try_get_by_index(0)
            .map_err(|e| DataError::Database(e.to_string()))?;
        let name: String = r
            .try_get_by_index(1)
            .map_err(|e| DataError::Database(e.to_string()))?;
        let ty: String = r.try_get_by_index(2).unwrap_or_default();
        out.entry(table).or_default().insert(name, ty);
    }
    Ok(out)
}

/// Every index of the database (of the current schema on PostgreSQL): name to table.
async fn existing_indexes(
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

async fn recorded_hashes(
    conn: &DatabaseConnection,
    dialect: Dialect,
) -> Result<HashMap<String, String>> {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT \"object\", \"hash\" FROM \"_objectos_schema\"");
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
/// tenant-scoped object, now over `organization_id` and the field). Only such superseded
/// indexes, found by name on this table, are ever dropped; an index holds no data of its own.
fn index_steps(
    dialect: Dialect,
    plan: &ObjectPlan,
    existing: &HashMap<String, String>,
    out: &mut Vec<MigrationStep>,
) {
    let q = |s: &str| dialect.quote(s);
    let table = &plan.table;
    let candidates = candidate_indexes(plan);
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

/// The storage settings (`reloptions`) of every table of the current schema that has any, as
/// PostgreSQL lists them (`fillfactor=70`); empty on SQLite, which has none.
async fn existing_storage(
    conn: &DatabaseConnection,
    dialect: Dialect,
) -> Result<HashMap<String, Vec<String>>> {
    if dialect != Dialect::Postgres {
        return Ok(HashMap::new());
    }
    let mut sql = Sql::new(dialect);
    sql.push("SELECT c.relname::text, array_to_string(c.reloptions, ',') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.reloptions IS NOT NULL");
    let rows = db::query(conn, sql).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let table = r.try_get_by_index::<String>(0).ok()?;
            let options = r.try_get_by_index::<String>(1).ok()?;
            Some((table, options.split(',').map(str::to_owned).collect()))
        })
        .collect())
}

/// The steps that set a plugin's storage settings its tables lack (PostgreSQL only).
fn storage_steps(
    dialect: Dialect,
    schema: &PluginSchema,
    storage: &HashMap<String, Vec<String>>,
) -> Vec<MigrationStep> {
    if dialect != Dialect::Postgres {
        return Vec::new();
    }
    schema
        .storage_settings()
        .iter()
        .filter(|st| {
            let have = storage.get(st.table());
            st.options()
                .iter()
                .any(|o| !have.is_some_and(|h| h.contains(o)))
        })
        .filter_map(|st| {
            Some(MigrationStep::SetStorage {
                object: st.table().to_owned(),
                sql: st.alter_sql()?,
            })
        })
        .collect()
}

/// The steps that bring one plugin's private tables (and storage settings) to its declaration.
fn plugin_steps(
    dialect: Dialect,
    schema: &PluginSchema,
    tables: &HashMap<String, HashMap<String, String>>,
    indexes: &HashMap<String, String>,
    storage: &HashMap<String, Vec<String>>,
) -> PluginSteps {
    let mut steps = Vec::new();
    for table in schema.tables() {
        let object = table.name().to_owned();
        let existing = tables.get(table.name());
        match existing {
            None => steps.push(MigrationStep::CreateTable {
                object: object.clone(),
                sql: table.create_sql(dialect),
            }),
            Some(have) => {
                for c in table.columns() {
                    let want = table.column_sql(dialect, c);
                    match have.get(&c.name) {
                        None if table.primary().contains(&c.name)
                            || (c.not_null && c.default.is_none())
                            || c.unique =>
                        {
                            steps.push(MigrationStep::Manual {
                                object: object.clone(),
                                column: c.name.clone(),
                                message: format!(
                                    "the table has no column `{}` and it cannot be added in place (it is part of the primary key, unique, or NOT NULL without a default); rebuild the table by hand",
                                    c.name
                                ),
                            });
                        }
                        None => steps.push(MigrationStep::AddColumn {
                            object: object.clone(),
                            column: c.name.clone(),
                            sql: format!(
                                "ALTER TABLE {} ADD COLUMN {want}",
                                dialect.quote(table.name())
                            ),
                        }),
                        Some(ty) if family(ty) != family(&want) => {
                            steps.push(MigrationStep::Manual {
                                object: object.clone(),
                                column: c.name.clone(),
                                message: format!(
                                    "column type is {ty} but the plugin now declares {want}; migrate the data by hand (the engine never changes or drops a column)"
                                ),
                            });
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        for i in table.indexes() {
            if !indexes.contains_key(&i.name) {
                let create = table.index_sql(dialect, i);
                // Rows of an existing table are made to satisfy the index first, in the same
                // step (one transaction with the rest of the plan).
                let sql = match (&i.prepare, existing) {
                    (Some(prepare), Some(_)) => format!("{prepare};\n{create}"),
                    _ => create,
                };
                steps.push(MigrationStep::CreateIndex {
                    object: object.clone(),
                    index: i.name.clone(),
                    sql,
                });
            }
        }
        for r in table.retired() {
            if indexes.get(r).is_some_and(|t| t == table.name()) {
                steps.push(MigrationStep::RetireIndex {
                    object: object.clone(),
                    index: r.clone(),
                    sql: format!("DROP INDEX IF EXISTS {}", dialect.quote(r)),
                });
            }
        }
    }
    // After the tables: a table created by this plan gets its settings in the same run (the
    // objects' tables are created before any plugin's steps).
    steps.extend(storage_steps(dialect, schema, storage));
    PluginSteps {
        plugin: schema.plugin().to_owned(),
        tables: schema
            .tables()
            .iter()
            .map(|t| t.name().to_owned())
            .collect(),
        steps,
    }
}

/// Computes the additive plan for every object of the snapshot and every plugin's tables.
pub(crate) async fn plan(
    conn: &DatabaseConnection,
    dialect: Dialect,
    snap: &MetadataSnapshot,
    owned: &[PluginSchema],
) -> Result<MigrationPlan> {
    let q = |s: &str| dialect.quote(s);
    let indexes = existing_indexes(conn, dialect).await?;
    let hashes = recorded_hashes(conn, dialect).await?;
    let tables = existing_columns(conn, dialect).await?;
    let storage = existing_storage(conn, dialect).await?;
    let mut steps = Vec::new();
    let mut changed = Vec::new();
    for schema in snap.objects() {
        let plan = snap.plan(&schema.name)?;
        if hashes.get(&schema.name).map(String::as_str) != snap.etag(&schema.name) {
            changed.push(schema.name.clone());
        }
        match tables.get(&plan.table) {
            None => {
                let mut cols = Vec::new();
                for c in &plan.columns {
                    let pk = if c.name == "id" { " PRIMARY KEY" } else { "" };
                    cols.push(format!("{} {}{}", q(&c.name), column_type(dialect, c), pk));
                }
                let sql = format!("CREATE TABLE {} ({})", q(&plan.table), cols.join(", "));
                steps.push(MigrationStep::CreateTable {
                    object: plan.name.clone(),
                    sql,
                });
            }
            Some(existing) => {
                for c in &plan.columns {
                    let want = column_type(dialect, c);
                    match existing.get(&c.name) {
                        None => steps.push(MigrationStep::AddColumn {
                            object: plan.name.clone(),
                            column: c.name.clone(),
                            sql: format!("ALTER TABLE {} ADD COLUMN {} {}", q(&plan.table), q(&c.name), want),
                        }),
                        Some(have) if family(have) != family(&want) => steps.push(MigrationStep::Manual {
                            object: plan.name.clone(),
                            column: c.name.clone(),
                            message: format!(
                                "column type is {have} but the metadata now needs {want}; migrate the data by hand (the engine never changes or drops a column)"
                            ),
                        }),
                        Some(_) => {}
                    }
                }
            }
        }
        index_steps(dialect, plan, &indexes, &mut steps);
    }
    outbox_steps(dialect, &tables, &indexes, &mut steps);
    let plugins = owned
        .iter()
        .filter(|o| o.declares_storage())
        .map(|o| plugin_steps(dialect, o, &tables, &indexes, &storage))
        .collect();
    Ok(MigrationPlan {
        steps,
        changed_objects: changed,
        plugins,
    })
}

/// The outbox's columns added after the first release, for databases created before them, all
/// additive (nullable columns and an index): the event envelope's request, correlation and
/// causation ids on both databases (DDL version 4 and older), and on PostgreSQL the claim
/// columns and per-record index (see `outbox::claim`; DDL version 3 and older).
fn outbox_steps(
    dialect: Dialect,
    tables: &HashMap<String, HashMap<String, String>>,
    indexes: &HashMap<String, String>,
    steps: &mut Vec<MigrationStep>,
) {
    const TABLE: &str = "_objectos_outbox";
    let Some(columns) = tables.get(TABLE) else {
        return;
    };
    // SQLite has no `ADD COLUMN IF NOT EXISTS`; the plan only lists columns that are missing.
    let if_not_exists = match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => "IF NOT EXISTS ",
    };
    for (name, ty) in crate::outbox::TRACE_COLUMNS {
        if !columns.contains_key(name) {
            steps.push(MigrationStep::AddColumn {
                object: TABLE.to_owned(),
                column: name.to_owned(),
                sql: format!("ALTER TABLE \"{TABLE}\" ADD COLUMN {if_not_exists}\"{name}\" {ty}"),
            });
        }
    }
    if dialect != Dialect::Postgres {
        return;
    }
    for (name, ty) in crate::outbox::CLAIM_COLUMNS {
        if !columns.contains_key(name) {
            steps.push(MigrationStep::AddColumn {
                object: TABLE.to_owned(),
                column: name.to_owned(),
                sql: format!("ALTER TABLE \"{TABLE}\" ADD COLUMN IF NOT EXISTS \"{name}\" {ty}"),
            });
        }
    }
    if !indexes.contains_key(crate::outbox::RECORD_INDEX) {
        steps.push(MigrationStep::CreateIndex {
            object: TABLE.to_owned(),
            index: crate::outbox::RECORD_INDEX.to_owned(),
            sql: crate::outbox::record_index_sql(),
        });
    }
}

/// Applies a plan in one transaction (PostgreSQL DDL is transactional; SQLite too), then records
/// every object's hash and the engine's DDL version.
///
/// The statements go to the database as one batch (one round trip to the connection instead of
/// one per table and index, which is most of a first start); if the batch fails, the transaction
/// is rolled back and the steps are replayed one by one so the error names the failing statement.
pub(crate) async fn apply(
    conn: &DatabaseConnection,
    dialect: Dialect,
    snap: &MetadataSnapshot,
    owned: &[PluginSchema],
    plan: &MigrationPlan,
    progress: &(dyn Fn(&MigrationStep) + Send + Sync),
) -> Result<MigrationReport> {
    let mut report = MigrationReport::default();
    let mut batch = String::new();
    for step in plan.all_steps() {
        progress(step);
        match step.sql() {
            Some(sql) => {
                batch.push_str(sql);
                batch.push_str(";\n");
                report.applied += 1;
            }
            None => report.skipped_manual += 1,
        }
    }
    let tx = conn.begin().await.map_err(db::map_db_err)?;
    if !batch.is_empty()
        && let Err(e) = tx.execute_unprepared(&batch).await
    {
        let _ = tx.rollback().await;
        return Err(replay_for_error(conn, plan)
            .await
            .unwrap_or_else(|| DataError::Database(format!("migration failed: {e}"))));
    }
    let now = crate::util::format_ts(crate::util::now());
    let mut recorded: Vec<(String, String)> = snap
        .objects()
        .filter_map(|o| Some((o.name.clone(), snap.etag(&o.name)?.to_owned())))
        .collect();
    report.objects_recorded = recorded.len();
    recorded.push((ENGINE_ROW.to_owned(), DDL_VERSION.to_owned()));
    // A plugin whose table has a manual step is not recorded: the next start looks again.
    for o in owned.iter().filter(|o| o.declares_storage()) {
        let manual = plan.plugins.iter().any(|p| {
            p.plugin == o.plugin()
                && p.steps
                    .iter()
                    .any(|s| matches!(s, MigrationStep::Manual { .. }))
        });
        if !manual {
            recorded.push((o.record_key(), o.digest()));
        }
    }
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO \"_objectos_schema\" (\"object\", \"hash\", \"applied_at\") VALUES ");
    for (i, (object, hash)) in recorded.into_iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push("(")
            .param(Value::from(object))
            .push(", ")
            .param(Value::from(hash))
            .push(", ")
            .param(Value::from(now.clone()))
            .push(")");
    }
    sql.push(" ON CONFLICT (\"object\") DO UPDATE SET \"hash\" = excluded.\"hash\", \"applied_at\" = excluded.\"applied_at\"");
    db::exec(&tx, sql).await?;
    tx.commit().await.map_err(db::map_db_err)?;
    Ok(report)
}

/// Runs the plan's statements one at a time in a transaction that is always rolled back, and
/// returns the first failure with its statement.
async fn replay_for_error(conn: &DatabaseConnection, plan: &MigrationPlan) -> Option<DataError> {
    let tx = conn.begin().await.ok()?;
    let mut found = None;
    for sql in plan.all_steps().filter_map(MigrationStep::sql) {
        if let Err(e) = tx.execute_unprepared(sql).await {
            found = Some(DataError::Database(format!(
                "migration step `{sql}` failed: {e}"
            )));
            break;
        }
    }
    let _ = tx.rollback().await;
    found
}

/// The `_objectos_schema` row holding [`DDL_VERSION`] (not an object name: those never start with `_`).
const ENGINE_ROW: &str = "__objectos_ddl";

/// Version of the rules that turn metadata into tables, columns and indexes. Bump it whenever
/// those rules change, so databases whose object hashes all match are introspected once more
/// and get what the new rules add. 3: unique indexes of tenant-scoped objects lead with
/// `organization_id` (they hold per organization); the global ones are dropped. 4: the outbox's
/// claim columns and per-record index on PostgreSQL (`outbox_steps`). 5: the outbox's request,
/// correlation and causation id columns on both databases (`outbox_steps`). 6: the outbox's
/// `traceparent` and `tracestate` columns (`outbox_steps`).
pub(crate) const DDL_VERSION: &str = "6";

/// True when the database records exactly the current metadata's hashes under the current DDL
/// rules: nothing can be missing, so start-up skips introspection. One query.
pub(crate) async fn is_current(
    conn: &DatabaseConnection,
    dialect: Dialect,
    snap: &MetadataSnapshot,
    owned: &[PluginSchema],
) -> Result<bool> {
    let hashes = recorded_hashes(conn, dialect).await?;
    if hashes.get(ENGINE_ROW).map(String::as_str) != Some(DDL_VERSION) {
        return Ok(false);
    }
    let plugins_current = owned
        .iter()
        .filter(|o| o.declares_storage())
        .all(|o| hashes.get(&o.record_key()) == Some(&o.digest()));
    if !plugins_current
        || !snap
            .objects()
            .all(|o| hashes.get(&o.name).map(String::as_str) == snap.etag(&o.name))
    {
        return Ok(false);
    }
    // Storage settings can be reset behind the engine's back (`ALTER TABLE .. RESET`, a
    // restore into a fresh table): one more query, on PostgreSQL and only when a plugin
    // declares any, so they are back after every start.
    if dialect == Dialect::Postgres && owned.iter().any(|o| !o.storage_settings().is_empty()) {
        let storage = existing_storage(conn, dialect).await?;
        return Ok(owned
            .iter()
            .all(|o| storage_steps(dialect, o, &storage).is_empty()));
    }
    Ok(true)
}

/// Creates the internal tables.
pub(crate) async fn ensure_internal(conn: &DatabaseConnection, dialect: Dialect) -> Result<()> {
    // One batch, one round trip; every statement is IF NOT EXISTS. In one transaction behind
    // the cluster's migration lock: nodes starting together on an empty PostgreSQL database
    // would otherwise race on the same CREATE TABLE (IF NOT EXISTS does not stop two at once).
    let batch = internal_ddl(dialect).join(";\n");
    let tx = conn.begin().await.map_err(db::map_db_err)?;
    lock_migrations(&tx, dialect).await?;
    tx.execute_unprepared(&batch)
        .await
        .map_err(|e| DataError::Database(format!("cannot create internal table: {e}")))?;
    tx.commit().await.map_err(db::map_db_err)?;
    Ok(())
}

/// The PostgreSQL advisory lock key every node's schema changes take ("objectos" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x6f62_6a65_6374_6f73;

/// Takes the cluster-wide migration lock for the rest of `tx` (PostgreSQL; SQLite's write
/// lock already serializes schema changes): a node that starts while another migrates waits,
/// then finds the tables there, instead of failing on a catalog row the other just created.
pub(crate) async fn lock_migrations<C: ConnectionTrait>(tx: &C, dialect: Dialect) -> Result<()> {
    if dialect == Dialect::Postgres {
        tx.execute_unprepared(&format!(
            "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
        ))
        .await
        .map_err(|e| DataError::Database(format!("cannot take the migration lock: {e}")))?;
    }
    Ok(())
}
