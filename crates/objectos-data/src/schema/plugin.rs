//! Plugin-owned private tables and their storage settings: the steps that bring them to what each
//! plugin's [`PluginSchema`] declares.

use std::collections::HashMap;

use sea_orm::DatabaseConnection;

use super::{MigrationStep, PluginSteps, family};
use crate::db::{self, Dialect, Sql};
use crate::error::Result;
use crate::owned::PluginSchema;

/// The storage settings (`reloptions`) of every table of the current schema that has any, as
/// PostgreSQL lists them (`fillfactor=70`); empty on SQLite, which has none.
pub(super) async fn existing_storage(
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
pub(super) fn storage_steps(
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
pub(super) fn plugin_steps(
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
