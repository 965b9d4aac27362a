//! Schema sync: every field type gets a column, the plan is additive and idempotent, metadata errors are reported together.

use objectos_data::{DataConfig, DataEngine, DataError};
use sea_orm::ConnectionTrait;

use crate::{CRM, for_each_backend, open};

#[tokio::test]
async fn sync_creates_everything_and_second_plan_is_empty() {
    for_each_backend(CRM, |engine| async move {
        let plan = engine.plan_migration().await.unwrap();
        assert!(plan.is_empty(), "second plan must be empty, got:\n{plan}");
        assert_eq!(plan.to_string(), "");
        let snap = engine.metadata();
        let account = snap.object("account").unwrap();
        let names: Vec<&str> = account.fields.keys().map(String::as_str).take(7).collect();
        assert_eq!(
            names,
            [
                "id",
                "created_at",
                "updated_at",
                "organization_id",
                "created_by",
                "updated_by",
                "owner_id"
            ]
        );
        assert!(snap.etag("account").is_some());
        assert!(snap.object("nope").is_none());
    })
    .await;
}

async fn evolve(url: &str) {
    let v1: &[(&str, &str)] = &[(
        "a.object.yml",
        "name: thing\nfields:\n  title: { type: text }\n  n: { type: number }\n",
    )];
    let (engine, meta_dir) = open(url, v1).await;
    std::fs::write(
        meta_dir.path().join("a.object.yml"),
        "name: thing\nfields:\n  title: { type: text }\n  n: { type: boolean }\n  extra: { type: text, unique: true }\n",
    )
    .unwrap();
    engine.reload().await.unwrap();
    let plan = engine.plan_migration().await.unwrap();
    let text = plan.to_string();
    assert!(
        text.contains("ALTER TABLE \"thing\" ADD COLUMN \"extra\" TEXT;"),
        "{text}"
    );
    assert!(text.contains("CREATE UNIQUE INDEX"), "{text}");
    assert!(text.contains("-- manual step (skipped): thing.n"), "{text}");
    assert_eq!(text.lines().count(), plan.steps.len());
    assert_eq!(plan.changed_objects, ["thing"]);
    let steps = std::sync::Mutex::new(0);
    let report = engine
        .migrate(&|_| *steps.lock().unwrap() += 1)
        .await
        .unwrap();
    assert_eq!(*steps.lock().unwrap(), 3);
    assert_eq!(report.applied, 2);
    assert_eq!(report.skipped_manual, 1);
    let again = engine.plan_migration().await.unwrap();
    assert!(again.is_empty(), "{again}");
    assert!(again.changed_objects.is_empty());
    engine.connection().clone().close().await.ok();
}

#[tokio::test]
async fn added_field_plans_one_add_column_and_changed_type_is_manual() {
    let dir = tempfile::tempdir().unwrap();
    evolve(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("m.db").display()
    ))
    .await;
    if let Some(base) = std::env::var("OBJECTOS_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
    {
        let (url, schema) = crate::pg_schema(&base).await;
        evolve(&url).await;
        crate::pg_drop(&base, &schema).await;
    } else {
        eprintln!("PostgreSQL skipped: set OBJECTOS_TEST_POSTGRES_URL");
    }
}

#[tokio::test]
async fn metadata_errors_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.object.yml"),
        "name: a\nfields:\n  x: { type: nosuchtype }\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(
        dir.path().join("sub/b.object.yml"),
        "name: b\nfields:\n  y: { type: lookup, reference: missing }\n",
    )
    .unwrap();
    let err = DataEngine::open(DataConfig {
        database_url: "sqlite::memory:".into(),
        metadata_dirs: vec![dir.path().to_path_buf()],
        include_base: false,
        max_connections: 1,
        auto_migrate: true,
        owned: Vec::new(),
    })
    .await
    .unwrap_err();
    match &err {
        DataError::Metadata { diagnostics } => {
            let text = err.to_string();
            assert!(!diagnostics.is_empty(), "{text}");
            assert!(text.contains("nosuchtype"), "{text}");
            assert!(text.contains("a.object.yml"), "{text}");
        }
        other => panic!("expected Metadata, got {other:?}"),
    }
    assert_eq!(err.code(), "INVALID_METADATA");
}

#[tokio::test]
async fn cross_object_reference_errors_name_file_and_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("b.object.yml"),
        "name: b\nfields:\n  y: { type: lookup, reference: missing }\n",
    )
    .unwrap();
    let err = DataEngine::open(DataConfig {
        database_url: "sqlite::memory:".into(),
        metadata_dirs: vec![dir.path().to_path_buf()],
        include_base: false,
        max_connections: 1,
        auto_migrate: true,
        owned: Vec::new(),
    })
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("b.object.yml")
            && text.contains("fields.y.reference")
            && text.contains("missing"),
        "{text}"
    );
}

#[tokio::test]
async fn embedded_base_objects_load_and_system_lookups_expand() {
    let meta = tempfile::tempdir().unwrap();
    for (name, text) in crate::CRM {
        std::fs::write(meta.path().join(name), text).unwrap();
    }
    let engine = DataEngine::open(DataConfig {
        database_url: "sqlite::memory:".into(),
        metadata_dirs: vec![meta.path().to_path_buf()],
        include_base: true,
        max_connections: 1,
        auto_migrate: true,
        owned: Vec::new(),
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let snap = engine.metadata();
    assert!(snap.object("user").is_some(), "the base preset is embedded");
    let owner = snap
        .object("account")
        .unwrap()
        .fields
        .get("owner_id")
        .unwrap()
        .clone();
    assert_eq!(owner.reference.as_deref(), Some("user"));
    let admin = objectos_data::OpContext::system("test").with_tenant("org1");
    let user = engine
        .create(
            &admin,
            "user",
            crate::rec(serde_json::json!({"name": "Ann", "email": "ann@example.com"})),
        )
        .await
        .unwrap_or_else(|e| panic!("{e} {:?}", e.field_errors()));
    let cx = objectos_data::OpContext {
        principal: objectos_data::Principal::User {
            id: user["id"].as_str().unwrap().into(),
            roles: vec![],
            permission_sets: vec![],
            is_admin: false,
        },
        ..admin
    };
    engine
        .create(
            &cx,
            "account",
            crate::rec(serde_json::json!({"name": "Owned"})),
        )
        .await
        .unwrap();
    let q =
        objectos_spec::query::QueryAst::from_json(&serde_json::json!({"expand": {"owner_id": {}}}))
            .unwrap();
    let r = engine.find(&cx, "account", q).await.unwrap();
    assert_eq!(r.records[0]["owner_id"]["name"], "Ann");
}

const INDEXED: &[(&str, &str)] = &[
    (
        "a.object.yml",
        "name: parent\nfields:\n  title: { type: text }\n",
    ),
    (
        "b.object.yml",
        "name: child\nfields:\n  parent: { type: lookup, reference: parent }\n  code: { type: text, unique: true }\n  title: { type: text }\nindexes:\n  - { name: child_parent_idx, fields: [parent] }\n  - { fields: [code] }\n  - { fields: [title, code] }\n",
    ),
];

async fn open_dir(url: &str, dir: &std::path::Path, auto_migrate: bool) -> DataEngine {
    DataEngine::open(DataConfig {
        database_url: url.to_owned(),
        metadata_dirs: vec![dir.to_path_buf()],
        include_base: false,
        max_connections: 2,
        auto_migrate,
        owned: Vec::new(),
    })
    .await
    .unwrap_or_else(|e| panic!("open failed: {e}"))
}

async fn indexes_once_and_restart_skips_introspection(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in INDEXED {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let engine = open_dir(url, dir.path(), false).await;
    let plan = engine.plan_migration().await.unwrap().to_string();
    // The declared index on the lookup replaces the automatic one; the unique index on `code`
    // holds per organization (organization_id, code), so the declared plain one on `code` (which
    // serves reads without a tenant) is kept; the composite stays as declared.
    let on = |cols: &str| {
        plan.lines()
            .filter(|l| {
                l.contains("INDEX")
                    && l.contains("ON \"child\"")
                    && l.ends_with(&format!("({cols});"))
            })
            .count()
    };
    assert_eq!(on("\"parent\""), 1, "{plan}");
    assert!(plan.contains("CREATE INDEX \"child_parent_idx\""), "{plan}");
    assert!(!plan.contains("\"ix_child_parent\""), "{plan}");
    assert_eq!(on("\"organization_id\", \"code\""), 1, "{plan}");
    assert!(
        plan.contains("CREATE UNIQUE INDEX \"ux_child_organization_id_code\""),
        "{plan}"
    );
    assert_eq!(on("\"code\""), 1, "{plan}");
    assert_eq!(on("\"title\", \"code\""), 1, "{plan}");
    assert!(!plan.contains("DROP"), "{plan}");
    engine.migrate(&|_| {}).await.unwrap();
    assert!(engine.plan_migration().await.unwrap().is_empty());

    // A restart with unchanged metadata trusts the recorded hashes and introspects nothing: an
    // index dropped behind the engine's back stays dropped ...
    engine
        .connection()
        .execute_unprepared("DROP INDEX \"child_parent_idx\"")
        .await
        .unwrap();
    engine.connection().clone().close().await.ok();
    drop(engine);
    let engine = open_dir(url, dir.path(), true).await;
    let pending = engine.plan_migration().await.unwrap().to_string();
    assert!(
        pending.contains("CREATE INDEX \"child_parent_idx\""),
        "{pending}"
    );
    // ... while a database recorded under other DDL rules (here: none) is synced again.
    engine
        .connection()
        .execute_unprepared("DELETE FROM \"_objectos_schema\" WHERE \"object\" = '__objectos_ddl'")
        .await
        .unwrap();
    engine.connection().clone().close().await.ok();
    drop(engine);
    let engine = open_dir(url, dir.path(), true).await;
    let plan = engine.plan_migration().await.unwrap();
    assert!(plan.is_empty(), "{plan}");
    engine.connection().clone().close().await.ok();
}

#[tokio::test]
async fn duplicate_indexes_are_created_once_and_restarts_skip_introspection() {
    let dir = tempfile::tempdir().unwrap();
    indexes_once_and_restart_skips_introspection(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("i.db").display()
    ))
    .await;
    if let Some(base) = std::env::var("OBJECTOS_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
    {
        let (url, schema) = crate::pg_schema(&base).await;
        indexes_once_and_restart_skips_introspection(&url).await;
        crate::pg_drop(&base, &schema).await;
    } else {
        eprintln!("PostgreSQL skipped: set OBJECTOS_TEST_POSTGRES_URL");
    }
}

async fn failed_step_is_named(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.object.yml"),
        "name: thing\nfields:\n  title: { type: text, index: true }\n",
    )
    .unwrap();
    let engine = open_dir(url, dir.path(), false).await;
    // A table squatting on the index's name makes the batch fail at that statement.
    engine
        .connection()
        .execute_unprepared("CREATE TABLE \"ix_thing_title\" (\"x\" TEXT)")
        .await
        .unwrap();
    let err = engine.migrate(&|_| {}).await.unwrap_err().to_string();
    assert!(
        err.contains("migration step `CREATE INDEX \"ix_thing_title\" ON \"thing\""),
        "{err}"
    );
    // Nothing of the batch was kept.
    let plan = engine.plan_migration().await.unwrap().to_string();
    assert!(plan.contains("CREATE TABLE \"thing\""), "{plan}");
    engine.connection().clone().close().await.ok();
}

#[tokio::test]
async fn a_failed_migration_names_its_statement_and_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    failed_step_is_named(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("f.db").display()
    ))
    .await;
    if let Some(base) = std::env::var("OBJECTOS_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
    {
        let (url, schema) = crate::pg_schema(&base).await;
        failed_step_is_named(&url).await;
        crate::pg_drop(&base, &schema).await;
    } else {
        eprintln!("PostgreSQL skipped: set OBJECTOS_TEST_POSTGRES_URL");
    }
}

/// A database made before DDL version 5 gets the outbox's request, correlation and causation
/// columns (and version 6's trace context columns) from the plan (listed by `objectos migrate --dry-run`, applied by the next start),
/// and the rows it had pending are still dispatched, without those ids.
async fn outbox_gets_trace_columns(url: &str) {
    let (e, dir) = open(url, CRM).await;
    for sql in [
        "ALTER TABLE \"_objectos_outbox\" DROP COLUMN \"request_id\"",
        "ALTER TABLE \"_objectos_outbox\" DROP COLUMN \"correlation_id\"",
        "ALTER TABLE \"_objectos_outbox\" DROP COLUMN \"causation_id\"",
        "ALTER TABLE \"_objectos_outbox\" DROP COLUMN \"traceparent\"",
        "ALTER TABLE \"_objectos_outbox\" DROP COLUMN \"tracestate\"",
        "INSERT INTO \"_objectos_outbox\" (\"event_id\", \"event_name\", \"object\", \"record_id\", \"payload\", \"user_id\", \"tenant_id\", \"created_at\") VALUES ('old-1', 'data.account.created', 'account', 'r0', '{\"object\":\"account\",\"recordId\":\"r0\"}', 'u1', 'org1', '2026-01-01T00:00:00.000Z')",
        "UPDATE \"_objectos_schema\" SET \"hash\" = '4' WHERE \"object\" = '__objectos_ddl'",
    ] {
        e.connection().execute_unprepared(sql).await.unwrap();
    }
    e.connection().clone().close().await.ok();
    drop(e);
    let config = |auto_migrate| DataConfig {
        database_url: url.to_owned(),
        metadata_dirs: vec![dir.path().to_path_buf()],
        include_base: false,
        max_connections: 2,
        auto_migrate,
        owned: Vec::new(),
    };
    let e = DataEngine::open(config(false)).await.unwrap();
    let plan = e.plan_migration().await.unwrap().to_string();
    for column in [
        "request_id",
        "correlation_id",
        "causation_id",
        "traceparent",
        "tracestate",
    ] {
        assert!(plan.contains(&format!("\"{column}\" TEXT;")), "{plan}");
    }
    assert_eq!(plan.lines().count(), 5, "{plan}");
    e.connection().clone().close().await.ok();
    drop(e);

    let e = DataEngine::open(config(true)).await.unwrap();
    assert!(e.plan_migration().await.unwrap().is_empty());
    let cx = crate::user_cx()
        .with_request_id("req-9")
        .with_correlation_id("req-9");
    e.create(
        &cx,
        "account",
        crate::rec(serde_json::json!({"name": "after"})),
    )
    .await
    .unwrap();
    let sink = crate::hooks::Collect::default();
    assert_eq!(e.dispatch_pending(&sink).await.unwrap(), 2);
    let events = sink.0.lock().unwrap().clone();
    assert_eq!(events[0].id, "old-1");
    assert_eq!(events[0].metadata.correlation_id, None);
    assert_eq!(events[0].metadata.user_id.as_deref(), Some("u1"));
    assert_eq!(events[1].metadata.correlation_id.as_deref(), Some("req-9"));
    e.connection().clone().close().await.ok();
}

#[tokio::test]
async fn an_outbox_made_before_trace_ids_gets_their_columns_from_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    outbox_gets_trace_columns(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("o.db").display()
    ))
    .await;
    if let Some(base) = std::env::var("OBJECTOS_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
    {
        let (url, schema) = crate::pg_schema(&base).await;
        outbox_gets_trace_columns(&url).await;
        crate::pg_drop(&base, &schema).await;
    }
}
