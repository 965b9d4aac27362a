//! Schema sync: an additive migration plan (create tables, add columns, create indexes) computed by
//! introspecting the database, printed one SQL statement per line, and applied with progress.
//!
//! Nothing is ever dropped or narrowed: a column whose type changed is reported as a manual step
//! and left alone. `_objectos_schema` records the hash of every object last applied.

use std::collections::{HashMap, HashSet};
use std::fmt;

use objectos_spec::object::{IndexType, Storage};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait, Value};

use crate::db::{self, Dialect, Sql};
use crate::error::{DataError, Result};
use crate::meta::{Column, MetadataSnapshot, ObjectPlan};

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
            | Self::CreateIndex { sql, .. } => Some(sql),
            Self::Manual { .. } => None,
        }
    }

    /// The object the step belongs to.
    pub fn object(&self) -> &str {
        match self {
            Self::CreateTable { object, .. }
            | Self::AddColumn { object, .. }
            | Self::CreateIndex { object, .. }
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
            other => write!(f, "{};", other.sql().unwrap_or_default()),
        }
    }
}

/// The additive plan: what `migrate` would run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationPlan {
    pub steps: Vec<MigrationStep>,
    /// Objects whose recorded hash differs from the current metadata (recorded on migrate).
    pub changed_objects: Vec<String>,
}

impl MigrationPlan {
    /// True when there is nothing to run (manual steps do not count: they are never run).
    pub fn is_empty(&self) -> bool {
        self.steps
            .iter()
            .all(|s| matches!(s, MigrationStep::Manual { .. }))
    }
}

impl fmt::Display for MigrationPlan {
    /// One SQL statement per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            writeln!(f, "{s}")?;
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
    let name = format!("{}_{}_{}", if unique { "ux" } else { "ix" }, table, suffix);
    if name.len() <= 60 {
        name
    } else {
        format!("{}_{}", &name[..43], crate::meta::stable_hash(&name))
    }
}

/// The internal tables, created at open with IF NOT EXISTS.
pub(crate) fn internal_ddl(dialect: Dialect) -> Vec<String> {
    let (serial, payload, ts) = match dialect {
        Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT", "TEXT"),
        Dialect::Postgres => ("BIGSERIAL PRIMARY KEY", "TEXT", "TEXT"),
    };
    vec![
        format!("CREATE TABLE IF NOT EXISTS \"_objectos_schema\" (\"object\" TEXT PRIMARY KEY, \"hash\" TEXT NOT NULL, \"applied_at\" {ts} NOT NULL)"),
        format!(
            "CREATE TABLE IF NOT EXISTS \"_objectos_outbox\" (\"id\" {serial}, \"event_id\" TEXT NOT NULL, \"event_name\" TEXT NOT NULL, \"object\" TEXT NOT NULL, \"record_id\" TEXT, \"payload\" {payload} NOT NULL, \"user_id\" TEXT, \"tenant_id\" TEXT, \"created_at\" {ts} NOT NULL, \"dispatched_at\" {ts})"
        ),
        "CREATE INDEX IF NOT EXISTS \"ix__objectos_outbox_pending\" ON \"_objectos_outbox\" (\"dispatched_at\", \"id\")".to_owned(),
        "CREATE TABLE IF NOT EXISTS \"_objectos_autonumber\" (\"object\" TEXT NOT NULL, \"field\" TEXT NOT NULL, \"value\" BIGINT NOT NULL, PRIMARY KEY (\"object\", \"field\"))".to_owned(),
    ]
}

async fn existing_columns(
    conn: &DatabaseConnection,
    dialect: Dialect,
    table: &str,
) -> Result<Option<HashMap<String, String>>> {
    let mut sql = Sql::new(dialect);
    match dialect {
        Dialect::Sqlite => {
            sql.push("SELECT name, type FROM pragma_table_info(")
                .param(Value::from(table.to_owned()))
                .push(")");
        }
        Dialect::Postgres => {
            sql.push("SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ")
                .param(Value::from(table.to_owned()));
        }
    }
    let rows = db::query(conn, sql).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut out = HashMap::new();
    for r in rows {
        let name: String = r
            .try_get_by_index(0)
            .map_err(|e| DataError::Database(e.to_string()))?;
        let ty: String = r.try_get_by_index(1).unwrap_or_default();
        out.insert(name, ty);
    }
    Ok(Some(out))
}

async fn existing_indexes(conn: &DatabaseConnection, dialect: Dialect) -> Result<HashSet<String>> {
    let mut sql = Sql::new(dialect);
    match dialect {
        Dialect::Sqlite => sql.push("SELECT name FROM sqlite_master WHERE type = 'index'"),
        Dialect::Postgres => {
            sql.push("SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema()")
        }
    };
    let rows = db::query(conn, sql).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.try_get_by_index::<String>(0).ok())
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

fn index_steps(
    dialect: Dialect,
    plan: &ObjectPlan,
    existing: &HashSet<String>,
    out: &mut Vec<MigrationStep>,
) {
    let q = |s: &str| dialect.quote(s);
    let table = &plan.table;
    let mut wanted: Vec<(String, Vec<String>, bool, IndexType)> = Vec::new();
    for f in plan.schema.fields.values() {
        if plan.column(&f.name).is_none() || f.name == "id" {
            continue;
        }
        if f.unique {
            wanted.push((
                index_name(table, &f.name, true),
                vec![f.name.clone()],
                true,
                IndexType::Btree,
            ));
        } else if f.index || (f.reference_target(&plan.name).is_some() && !f.multiple) {
            wanted.push((
                index_name(table, &f.name, false),
                vec![f.name.clone()],
                false,
                IndexType::Btree,
            ));
        }
    }
    for ix in &plan.schema.indexes {
        if ix.fields.is_empty() || ix.fields.iter().any(|f| plan.column(f).is_none()) {
            continue;
        }
        let name = match &ix.name {
            Some(n) => n.clone(),
            None => index_name(table, &ix.fields.join("_"), ix.unique),
        };
        wanted.push((name, ix.fields.clone(), ix.unique, ix.kind));
    }
    let mut seen = HashSet::new();
    for (name, fields, unique, kind) in wanted {
        if existing.contains(&name) || !seen.insert(name.clone()) {
            continue;
        }
        let using = match (dialect, kind) {
            (Dialect::Postgres, IndexType::Hash) if !unique && fields.len() == 1 => " USING hash",
            _ => "",
        };
        let cols: Vec<String> = fields.iter().map(|f| q(f)).collect();
        let sql = format!(
            "CREATE {}INDEX {} ON {}{} ({})",
            if unique { "UNIQUE " } else { "" },
            q(&name),
            q(table),
            using,
            cols.join(", ")
        );
        out.push(MigrationStep::CreateIndex {
            object: plan.name.clone(),
            index: name,
            sql,
        });
    }
}

/// Computes the additive plan for every object of the snapshot.
pub(crate) async fn plan(
    conn: &DatabaseConnection,
    dialect: Dialect,
    snap: &MetadataSnapshot,
) -> Result<MigrationPlan> {
    let q = |s: &str| dialect.quote(s);
    let indexes = existing_indexes(conn, dialect).await?;
    let hashes = recorded_hashes(conn, dialect).await?;
    let mut steps = Vec::new();
    let mut changed = Vec::new();
    for schema in snap.objects() {
        let plan = snap.plan(&schema.name)?;
        if hashes.get(&schema.name).map(String::as_str) != snap.etag(&schema.name) {
            changed.push(schema.name.clone());
        }
        match existing_columns(conn, dialect, &plan.table).await? {
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
    Ok(MigrationPlan {
        steps,
        changed_objects: changed,
    })
}

/// Applies a plan in one transaction (PostgreSQL DDL is transactional; SQLite too), then records
/// every object's hash.
pub(crate) async fn apply(
    conn: &DatabaseConnection,
    dialect: Dialect,
    snap: &MetadataSnapshot,
    plan: &MigrationPlan,
    progress: &(dyn Fn(&MigrationStep) + Send + Sync),
) -> Result<MigrationReport> {
    let tx = conn.begin().await.map_err(db::map_db_err)?;
    let mut report = MigrationReport::default();
    for step in &plan.steps {
        progress(step);
        match step.sql() {
            Some(sql) => {
                tx.execute_unprepared(sql).await.map_err(|e| {
                    DataError::Database(format!("migration step `{sql}` failed: {e}"))
                })?;
                report.applied += 1;
            }
            None => report.skipped_manual += 1,
        }
    }
    let now = crate::util::format_ts(crate::util::now());
    for schema in snap.objects() {
        let Some(hash) = snap.etag(&schema.name) else {
            continue;
        };
        let mut sql = Sql::new(dialect);
        sql.push("INSERT INTO \"_objectos_schema\" (\"object\", \"hash\", \"applied_at\") VALUES (")
            .param(Value::from(schema.name.clone()))
            .push(", ")
            .param(Value::from(hash.to_owned()))
            .push(", ")
            .param(Value::from(now.clone()))
            .push(") ON CONFLICT (\"object\") DO UPDATE SET \"hash\" = excluded.\"hash\", \"applied_at\" = excluded.\"applied_at\"");
        db::exec(&tx, sql).await?;
        report.objects_recorded += 1;
    }
    tx.commit().await.map_err(db::map_db_err)?;
    Ok(report)
}

/// Creates the internal tables.
pub(crate) async fn ensure_internal<C: ConnectionTrait>(conn: &C, dialect: Dialect) -> Result<()> {
    for sql in internal_ddl(dialect) {
        conn.execute_unprepared(&sql)
            .await
            .map_err(|e| DataError::Database(format!("cannot create internal table: {e}")))?;
    }
    Ok(())
}
