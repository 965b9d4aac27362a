//! Schema sync: an additive migration plan (create tables, add columns, create indexes) computed by
//! introspecting the database, printed one SQL statement per line, and applied with progress.
//!
//! Tables and columns are never dropped or narrowed: a column whose type changed is reported as a
//! manual step and left alone. The one thing the sync drops, always as a step of the plan, is an
//! index nobody wants any more: one an older DDL version created that a new index replaces (the
//! unique index over a field alone on a tenant-scoped object, superseded by one over
//! `organization_id` and the field), or one the owning plugin retired (a private table's, or a
//! system-field index it leaves out on its object); an index holds no data, so nothing is lost.
//! `_objectos_schema` records the hash of every object last applied.

use std::collections::HashMap;

use objectos_spec::object::Storage;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait, Value};

use crate::db::{self, Dialect, Sql};
use crate::error::{DataError, Result};
use crate::meta::{Column, MetadataSnapshot};
use crate::owned::PluginSchema;

mod indexes;
mod plugin;
mod steps;

pub(crate) use indexes::{WantedIndex, candidate_indexes};
use indexes::{existing_indexes, index_steps};
use plugin::{existing_storage, plugin_steps, storage_steps};
pub use steps::{MigrationPlan, MigrationReport, MigrationStep, PluginSteps};

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
        let unindexed: Vec<&str> = owned
            .iter()
            .flat_map(PluginSchema::storage_settings)
            .filter(|st| st.table() == plan.table)
            .flat_map(|st| st.unindexed_system_fields().iter().map(String::as_str))
            .collect();
        index_steps(dialect, plan, &unindexed, &indexes, &mut steps);
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
