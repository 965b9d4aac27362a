//! Plugin-owned tables and objects (`PluginSchema`) through the engine's migration plan, and the
//! statement API plugins use instead of sea-orm (`objectos_data::store`), on SQLite and
//! PostgreSQL.

use objectos_data::store::{Sql, Store};
use objectos_data::{
    ColumnDefault, ColumnType, DataConfig, DataEngine, DataError, MigrationStep, OpContext,
    PluginSchema, TableDef,
};
use serde_json::json;

use crate::{pg_drop, pg_schema, pg_url, rec};

const JOB_RUN: &str =
    "name: demo_run\nlabel: Demo Run\nfields:\n  title: { type: text, required: true }\n";

fn session_table() -> TableDef {
    TableDef::new("_objectos_demo_session")
        .required("id", ColumnType::Varchar(64))
        .required("token_hash", ColumnType::Varchar(64))
        .unique_column()
        .required("user_id", ColumnType::Varchar(64))
        .required("failed", ColumnType::BigInt)
        .default(ColumnDefault::Int(0))
        .column("expires_at", ColumnType::BigInt)
        .primary_key(&["id"])
        .index("_objectos_demo_session_user", &["user_id"])
}

fn schema_v1() -> PluginSchema {
    PluginSchema::new()
        .table(session_table())
        .object("objects/demo_run.object.yml", JOB_RUN)
        .owned_by("com.example.demo")
}

/// Version 2 of the plugin: a nullable column and an index more, the old index retired.
fn schema_v2() -> PluginSchema {
    let table = TableDef::new("_objectos_demo_session")
        .required("id", ColumnType::Varchar(64))
        .required("token_hash", ColumnType::Varchar(64))
        .unique_column()
        .required("user_id", ColumnType::Varchar(64))
        .required("failed", ColumnType::BigInt)
        .default(ColumnDefault::Int(0))
        .column("expires_at", ColumnType::BigInt)
        .column("ip", ColumnType::Text)
        .required("kind", ColumnType::Varchar(16))
        .default(ColumnDefault::Text("web".into()))
        .primary_key(&["id"])
        .index("_objectos_demo_session_expiry", &["expires_at"])
        .retired_index("_objectos_demo_session_user");
    PluginSchema::new()
        .table(table)
        .object("objects/demo_run.object.yml", JOB_RUN)
        .owned_by("com.example.demo")
}

fn config(url: &str, owned: Vec<PluginSchema>, auto_migrate: bool) -> DataConfig {
    DataConfig {
        database_url: url.to_owned(),
        metadata_dirs: Vec::new(),
        include_base: false,
        max_connections: 2,
        auto_migrate,
        owned,
    }
}

/// The error an open with `config` fails with, as text.
async fn refused(config: DataConfig) -> String {
    DataEngine::open(config).await.unwrap_err().to_string()
}

async fn on_each_backend<F, Fut>(f: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    f(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("o.db").display()
    ))
    .await;
    match pg_url() {
        Some(base) => {
            let (url, schema) = pg_schema(&base).await;
            f(url).await;
            pg_drop(&base, &schema).await;
        }
        None => eprintln!("PostgreSQL skipped: set OBJECTOS_TEST_POSTGRES_URL"),
    }
}

#[tokio::test]
async fn plugin_tables_and_objects_are_created_and_migrated_by_the_plan() {
    on_each_backend(|url| async move {
        // A dry run on an empty database lists the plugin's table under the plugin.
        let engine = DataEngine::open(config(&url, vec![schema_v1()], false))
            .await
            .unwrap();
        let plan = engine.plan_migration().await.unwrap();
        let demo = plan
            .plugins
            .iter()
            .find(|p| p.plugin == "com.example.demo")
            .expect("the plugin's steps");
        assert!(
            demo.steps.iter().any(|s| matches!(s, MigrationStep::CreateTable { object, .. } if object == "_objectos_demo_session")),
            "{plan}"
        );
        assert!(plan.to_string().contains("-- plugin com.example.demo: _objectos_demo_session"), "{plan}");
        // The plugin's object is an ordinary object of the snapshot, in the objects' part.
        assert!(plan.steps.iter().any(|s| s.object() == "demo_run"), "{plan}");
        engine.migrate(&|_| {}).await.unwrap();
        assert!(engine.plan_migration().await.unwrap().is_empty());

        // The owned object serves records like any other.
        let sys = OpContext::system("test");
        let run = engine
            .create(&sys, "demo_run", rec(json!({ "title": "nightly" })))
            .await
            .unwrap();
        assert_eq!(run["title"], "nightly");

        // The statement API reaches the plugin's table: writer, pool, own transaction.
        let w = engine.writer();
        let insert = Sql::with(
            w.dialect(),
            "INSERT INTO \"_objectos_demo_session\" (\"id\", \"token_hash\", \"user_id\", \"expires_at\") VALUES (?, ?, ?, ?)",
            vec!["s1".into(), "h1".into(), "u1".into(), None::<i64>.into()],
        )
        .unwrap();
        assert_eq!(w.execute(insert).await.unwrap(), 1);
        let tx = engine.begin_own_transaction().await.unwrap();
        let mut sql = tx.sql();
        sql.push("UPDATE \"_objectos_demo_session\" SET \"failed\" = \"failed\" + ")
            .bind(2i64)
            .push(" WHERE \"id\" = ")
            .bind("s1");
        assert_eq!(tx.execute(sql).await.unwrap(), 1);
        tx.commit().await.unwrap();
        let p = engine.pool();
        let mut sql = p.sql();
        sql.push("SELECT \"token_hash\", \"failed\", \"expires_at\" FROM \"_objectos_demo_session\" WHERE \"id\" IN (")
            .bind_list(["s1", "nope"])
            .push(")");
        let row = p.fetch_optional(sql).await.unwrap().expect("the row");
        assert_eq!(row.get::<String>(0).unwrap(), "h1");
        assert_eq!(row.get::<i64>(1).unwrap(), 2);
        assert_eq!(row.get::<Option<i64>>(2).unwrap(), None);
        assert_eq!(row.get_named::<String>("token_hash").unwrap(), "h1");
        assert!(row.get::<String>(9).is_err(), "a missing column is an error");
        // A unique violation keeps its stable error.
        let dup = Sql::with(
            w.dialect(),
            "INSERT INTO \"_objectos_demo_session\" (\"id\", \"token_hash\", \"user_id\") VALUES (?, ?, ?)",
            vec!["s2".into(), "h1".into(), "u2".into()],
        )
        .unwrap();
        assert!(matches!(w.execute(dup).await, Err(DataError::Duplicate { .. })));
        drop(engine);

        // A restart with the same declaration has nothing to do; version 2 adds its column
        // and index and drops the retired one, keeping the rows.
        let engine = DataEngine::open(config(&url, vec![schema_v1()], false))
            .await
            .unwrap();
        assert!(engine.plan_migration().await.unwrap().is_empty());
        drop(engine);
        let engine = DataEngine::open(config(&url, vec![schema_v2()], false))
            .await
            .unwrap();
        let plan = engine.plan_migration().await.unwrap();
        let steps = &plan.plugins[0].steps;
        assert!(steps.iter().any(|s| matches!(s, MigrationStep::AddColumn { column, .. } if column == "ip")), "{plan}");
        assert!(steps.iter().any(|s| matches!(s, MigrationStep::AddColumn { column, .. } if column == "kind")), "{plan}");
        assert!(steps.iter().any(|s| matches!(s, MigrationStep::CreateIndex { index, .. } if index == "_objectos_demo_session_expiry")), "{plan}");
        assert!(steps.iter().any(|s| matches!(s, MigrationStep::RetireIndex { index, .. } if index == "_objectos_demo_session_user")), "{plan}");
        engine.migrate(&|_| {}).await.unwrap();
        assert!(engine.plan_migration().await.unwrap().is_empty());
        let p = engine.pool();
        let sql = Sql::with(
            p.dialect(),
            "SELECT \"kind\", \"ip\" FROM \"_objectos_demo_session\" WHERE \"id\" = ?",
            vec!["s1".into()],
        )
        .unwrap();
        let row = p.fetch_optional(sql).await.unwrap().expect("the row survived");
        assert_eq!(row.get::<String>(0).unwrap(), "web");
        assert_eq!(row.get::<Option<String>>(1).unwrap(), None);
        drop(engine);

        // Auto-migrating opens (what `serve` does) skip introspection once current.
        let engine = DataEngine::open(config(&url, vec![schema_v2()], true))
            .await
            .unwrap();
        assert!(engine.plan_migration().await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_column_that_cannot_be_added_in_place_is_a_manual_step() {
    on_each_backend(|url| async move {
        let engine = DataEngine::open(config(&url, vec![schema_v1()], true))
            .await
            .unwrap();
        drop(engine);
        // A new NOT NULL column without a default cannot be added to a table with rows.
        let v3 = PluginSchema::new()
            .table(session_table().required("scope", ColumnType::Text))
            .owned_by("com.example.demo");
        let engine = DataEngine::open(config(&url, vec![v3], true))
            .await
            .unwrap();
        let plan = engine.plan_migration().await.unwrap();
        assert!(
            plan.plugins[0]
                .steps
                .iter()
                .any(|s| matches!(s, MigrationStep::Manual { column, .. } if column == "scope")),
            "{plan}"
        );
    })
    .await;
}

#[tokio::test]
async fn two_owners_of_one_table_or_object_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
    let a = schema_v1();
    let b = PluginSchema::new()
        .table(session_table())
        .owned_by("com.example.other");
    let err = DataEngine::open(config(&url, vec![a.clone(), b], true))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("_objectos_demo_session")
            && err.contains("com.example.demo")
            && err.contains("com.example.other"),
        "{err}"
    );

    // A user object with a plugin object's name names the plugin.
    let meta = tempfile::tempdir().unwrap();
    std::fs::write(meta.path().join("demo_run.object.yml"), JOB_RUN).unwrap();
    let err = refused(DataConfig {
        metadata_dirs: vec![meta.path().to_path_buf()],
        ..config(&url, vec![a], true)
    })
    .await;
    assert!(
        err.contains("plugin com.example.demo: objects/demo_run.object.yml"),
        "{err}"
    );

    // A declaration mistake is reported, not sent to the database.
    let bad = PluginSchema::new()
        .table(
            TableDef::new("_objectos_bad")
                .column("a", ColumnType::Text)
                .primary_key(&["b"]),
        )
        .owned_by("com.example.bad");
    let err = DataEngine::open(config(&url, vec![bad], true))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("com.example.bad") && err.contains("unknown column `b`"),
        "{err}"
    );

    // The engine's own tables are not a plugin's.
    let internal = PluginSchema::new()
        .table(TableDef::new("_objectos_outbox").column("a", ColumnType::Text))
        .owned_by("com.example.bad");
    let err = DataEngine::open(config(&url, vec![internal], true))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("engine's own"), "{err}");
}

#[tokio::test]
async fn a_read_snapshot_reads_the_plugin_tables() {
    on_each_backend(|url| async move {
        let engine = DataEngine::open(config(&url, vec![schema_v1()], true))
            .await
            .unwrap();
        let snap = engine.begin_read_snapshot().await.unwrap();
        let sql = Sql::with(
            snap.dialect(),
            "SELECT COUNT(*) FROM \"_objectos_demo_session\"",
            vec![],
        )
        .unwrap();
        let n: i64 = snap
            .fetch_optional(sql)
            .await
            .unwrap()
            .unwrap()
            .get(0)
            .unwrap();
        assert_eq!(n, 0);
        snap.finish().await.unwrap();
    })
    .await;
}

fn flow_kind() -> objectos_data::MetadataKind {
    objectos_data::MetadataKind::new("flow", "flow", |doc| {
        let name = doc["name"].as_str().unwrap_or_default().to_owned();
        if name.is_empty() {
            return Err(vec![("name".into(), "a flow needs a name".into())]);
        }
        if !doc["steps"].is_array() {
            return Err(vec![("steps".into(), "steps must be a list".into())]);
        }
        Ok(vec![(name, doc.clone())])
    })
}

#[tokio::test]
async fn a_plugin_metadata_kind_loads_validates_and_reloads_with_the_objects() {
    let dir = tempfile::tempdir().unwrap();
    let meta = tempfile::tempdir().unwrap();
    std::fs::write(
        meta.path().join("nightly.flow.yml"),
        "name: nightly\nsteps: [a]\n",
    )
    .unwrap();
    std::fs::write(meta.path().join("demo_run.object.yml"), JOB_RUN).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display());
    let owned = vec![
        PluginSchema::new()
            .kind(flow_kind())
            .owned_by("com.example.flows"),
    ];
    let engine = DataEngine::open(DataConfig {
        metadata_dirs: vec![meta.path().to_path_buf()],
        ..config(&url, owned.clone(), true)
    })
    .await
    .unwrap();
    let snap = engine.metadata();
    assert_eq!(snap.kinds().collect::<Vec<_>>(), ["flow"]);
    let item = snap.item("flow", "nightly").expect("the flow");
    assert_eq!(item.value["steps"][0], "a");
    assert!(item.file.ends_with("nightly.flow.yml"));

    // A broken file of the kind keeps the running snapshot (objects included) and is located.
    std::fs::write(
        meta.path().join("broken.flow.yml"),
        "name: broken\nsteps: 3\n",
    )
    .unwrap();
    let err = engine.reload().await.unwrap_err();
    let DataError::Metadata { diagnostics } = &err else {
        panic!("{err}")
    };
    assert!(
        diagnostics
            .iter()
            .any(|d| d.file.ends_with("broken.flow.yml") && d.line == 2 && d.path == "steps"),
        "{diagnostics:?}"
    );
    assert!(engine.metadata().item("flow", "broken").is_none());
    assert!(engine.metadata().object("demo_run").is_some());

    // A valid edit swaps in items and objects together.
    std::fs::write(
        meta.path().join("broken.flow.yml"),
        "name: fixed\nsteps: []\n",
    )
    .unwrap();
    engine.reload().await.unwrap();
    assert!(engine.metadata().item("flow", "fixed").is_some());

    // Two flows of one name are refused with both files.
    std::fs::write(
        meta.path().join("again.flow.yml"),
        "name: nightly\nsteps: []\n",
    )
    .unwrap();
    let err = engine.reload().await.unwrap_err().to_string();
    assert!(err.contains("already defined"), "{err}");
}

/// The `fillfactor` of a table as PostgreSQL records it (`None`: unset).
async fn fillfactor(engine: &DataEngine, table: &str) -> Option<String> {
    let sql = Sql::with(
        engine.dialect(),
        "SELECT array_to_string(reloptions, ',') FROM pg_class WHERE oid = to_regclass(?)",
        vec![format!("\"{table}\"").into()],
    )
    .unwrap();
    let row = engine.pool().fetch_optional(sql).await.unwrap()?;
    row.get::<Option<String>>(0)
        .unwrap()?
        .split(',')
        .find_map(|o| o.strip_prefix("fillfactor=").map(str::to_owned))
}

fn with_storage() -> PluginSchema {
    PluginSchema::new()
        .table(session_table())
        .object("objects/demo_run.object.yml", JOB_RUN)
        .storage(objectos_data::TableStorage::new("demo_run").fillfactor(70))
        .storage(objectos_data::TableStorage::new("_objectos_demo_session").fillfactor(90))
        .owned_by("com.example.demo")
}

/// Storage settings are the schema sync's: set on PostgreSQL with the tables (an object's
/// table and a private one), planned only while the catalog lacks them, set again by a start
/// that finds them reset; planned nowhere on SQLite.
#[tokio::test]
async fn storage_settings_are_applied_on_postgres_and_ignored_on_sqlite() {
    on_each_backend(|url| async move {
        let engine = DataEngine::open(config(&url, vec![with_storage()], true))
            .await
            .unwrap();
        let plan = engine.plan_migration().await.unwrap();
        assert!(
            !plan
                .all_steps()
                .any(|s| matches!(s, MigrationStep::SetStorage { .. })),
            "{plan}"
        );
        if engine.dialect() != objectos_data::Dialect::Postgres {
            drop(engine);
            return;
        }
        assert_eq!(fillfactor(&engine, "demo_run").await.as_deref(), Some("70"));
        assert_eq!(
            fillfactor(&engine, "_objectos_demo_session")
                .await
                .as_deref(),
            Some("90")
        );
        // Reset behind the engine's back: the plan lists the step, the next start applies it.
        engine
            .writer()
            .execute(
                Sql::with(
                    engine.dialect(),
                    "ALTER TABLE \"demo_run\" RESET (fillfactor)",
                    vec![],
                )
                .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(fillfactor(&engine, "demo_run").await, None);
        let plan = engine.plan_migration().await.unwrap();
        let steps: Vec<&MigrationStep> = plan
            .all_steps()
            .filter(|s| matches!(s, MigrationStep::SetStorage { .. }))
            .collect();
        assert_eq!(steps.len(), 1, "{plan}");
        assert_eq!(
            steps[0].sql(),
            Some("ALTER TABLE \"demo_run\" SET (fillfactor = 70)")
        );
        drop(engine);
        let engine = DataEngine::open(config(&url, vec![with_storage()], true))
            .await
            .unwrap();
        assert_eq!(fillfactor(&engine, "demo_run").await.as_deref(), Some("70"));
        drop(engine);
    })
    .await;
}

/// Storage settings of a table the plugin neither declares nor ships an object for, or out of
/// range, and system-field indexes left out where there is no such index, on a private table
/// or on an object the plugin does not ship, refuse the start with every problem named.
#[tokio::test]
async fn storage_settings_of_unknown_tables_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
    let meta = tempfile::tempdir().unwrap();
    std::fs::write(
        meta.path().join("note.object.yml"),
        "name: note\nfields:\n  body: { type: text }\n",
    )
    .unwrap();
    let schema = PluginSchema::new()
        .table(session_table())
        .object("objects/demo_run.object.yml", JOB_RUN)
        .storage(objectos_data::TableStorage::new("nowhere").fillfactor(70))
        .storage(
            objectos_data::TableStorage::new("demo_run")
                .fillfactor(5)
                .without_system_index("title"),
        )
        .storage(
            objectos_data::TableStorage::new("_objectos_demo_session")
                .without_system_index("created_at"),
        )
        .storage(objectos_data::TableStorage::new("note").without_system_index("created_at"))
        .owned_by("com.example.demo");
    let err = refused(DataConfig {
        metadata_dirs: vec![meta.path().to_path_buf()],
        ..config(&url, vec![schema], true)
    })
    .await;
    assert!(err.contains("table `nowhere`"), "{err}");
    assert!(err.contains("fillfactor 5"), "{err}");
    assert!(err.contains("`title` has no automatic index"), "{err}");
    assert!(
        err.contains("table `_objectos_demo_session` is a private table"),
        "{err}"
    );
    assert!(err.contains("`note` is not one"), "{err}");
}

/// The secondary indexes of `table`, sorted (the primary key's left out).
async fn indexes_of(engine: &DataEngine, table: &str) -> Vec<String> {
    let text = match engine.dialect() {
        objectos_data::Dialect::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
        }
        objectos_data::Dialect::Postgres => {
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ?"
        }
    };
    let sql = Sql::with(engine.dialect(), text, vec![table.into()]).unwrap();
    let mut out: Vec<String> = engine
        .pool()
        .fetch_all(sql)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String>(0).unwrap())
        .filter(|n| !n.starts_with("sqlite_autoindex") && !n.ends_with("_pkey"))
        .collect();
    out.sort();
    out
}

/// An auto-migrating start with `schema` (what `serve` does): the engine, which has nothing
/// left to plan, and the secondary indexes of `demo_run`.
async fn start(url: &str, schema: PluginSchema) -> (DataEngine, Vec<String>) {
    let engine = DataEngine::open(config(url, vec![schema], true))
        .await
        .unwrap();
    assert!(engine.plan_migration().await.unwrap().is_empty());
    let ix = indexes_of(&engine, "demo_run").await;
    (engine, ix)
}

/// An open without migrating (what `objectos migrate --dry-run` does) and its plan.
async fn dry_run(url: &str, schema: PluginSchema) -> (DataEngine, objectos_data::MigrationPlan) {
    let engine = DataEngine::open(config(url, vec![schema], false))
        .await
        .unwrap();
    let plan = engine.plan_migration().await.unwrap();
    (engine, plan)
}

/// The index steps a plan has for `demo_run`, as `create <index>` or `retire <index>`, sorted.
fn demo_run_index_steps(plan: &objectos_data::MigrationPlan) -> Vec<String> {
    let mut out: Vec<String> = plan
        .all_steps()
        .filter(|s| s.object() == "demo_run")
        .filter_map(|s| match s {
            MigrationStep::CreateIndex { index, .. } => Some(format!("create {index}")),
            MigrationStep::RetireIndex { index, .. } => Some(format!("retire {index}")),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// A queue-like object whose plugin leaves out three system-field indexes; `created_at` is
/// still indexed through the object's own `indexes:` entry when `declared` is set.
fn lean_run(declared: bool) -> PluginSchema {
    let mut text =
        String::from("name: demo_run\nlabel: Demo Run\nfields:\n  title: { type: text }\n");
    if declared {
        text.push_str("indexes:\n  - fields: [created_at]\n");
    }
    PluginSchema::new()
        .object("objects/demo_run.object.yml", text)
        .storage(
            objectos_data::TableStorage::new("demo_run")
                .without_system_index("created_at")
                .without_system_index("updated_at")
                .without_system_index("owner_id"),
        )
        .owned_by("com.example.demo")
}

/// System-field indexes a plugin leaves out on its object: never created on a new database;
/// on one an earlier start indexed, dropped by a plan step the dry run lists (also by an
/// auto-migrating start, the plugin's digest having changed); an index the object file
/// declares over such a field is kept. Records are untouched throughout.
#[tokio::test]
async fn system_field_indexes_a_plugin_leaves_out_are_not_created_and_retired() {
    on_each_backend(|url| async move {
        // A database created before: every system field indexed.
        let plain = PluginSchema::new()
            .object(
                "objects/demo_run.object.yml",
                "name: demo_run\nlabel: Demo Run\nfields:\n  title: { type: text }\n",
            )
            .owned_by("com.example.demo");
        let engine = DataEngine::open(config(&url, vec![plain], true))
            .await
            .unwrap();
        assert_eq!(
            indexes_of(&engine, "demo_run").await,
            [
                "ix_demo_run_created_at",
                "ix_demo_run_organization_id",
                "ix_demo_run_owner_id",
                "ix_demo_run_updated_at",
            ]
        );
        let sys = OpContext::system("test");
        engine
            .create(&sys, "demo_run", rec(json!({ "title": "kept" })))
            .await
            .unwrap();
        drop(engine);

        // The dry run lists the drops, retired by the plugin, and creates nothing.
        let (engine, plan) = dry_run(&url, lean_run(false)).await;
        assert_eq!(
            demo_run_index_steps(&plan),
            [
                "retire ix_demo_run_created_at",
                "retire ix_demo_run_owner_id",
                "retire ix_demo_run_updated_at"
            ],
            "{plan}"
        );
        assert!(
            plan.to_string().contains(
                "DROP INDEX IF EXISTS \"ix_demo_run_owner_id\"; -- retired by its plugin"
            ),
            "{plan}"
        );
        drop(engine);

        // An auto-migrating start applies them (the plugin's recorded digest changed).
        let (engine, ix) = start(&url, lean_run(false)).await;
        assert_eq!(ix, ["ix_demo_run_organization_id"]);
        let n = engine
            .count(&sys, "demo_run", objectos_spec::query::Filter::True)
            .await
            .unwrap();
        assert_eq!(n, 1);
        drop(engine);

        // Declared under `indexes:`, the field keeps its index (under the same name).
        let (engine, ix) = start(&url, lean_run(true)).await;
        assert_eq!(
            ix,
            ["ix_demo_run_created_at", "ix_demo_run_organization_id"]
        );
        drop(engine);
    })
    .await;

    // A new database never gets them.
    on_each_backend(|url| async move {
        let (engine, plan) = dry_run(&url, lean_run(false)).await;
        assert_eq!(
            demo_run_index_steps(&plan),
            ["create ix_demo_run_organization_id"],
            "{plan}"
        );
        engine.migrate(&|_| {}).await.unwrap();
        assert_eq!(
            indexes_of(&engine, "demo_run").await,
            ["ix_demo_run_organization_id"]
        );
        drop(engine);
    })
    .await;
}
