//! Uniqueness per organization: unique fields and unique indexes of tenant-scoped objects hold
//! within one organization (database indexes over `organization_id` first), system objects stay
//! global, databases with the old global indexes are migrated, and races past the pre-check are
//! still a 409 naming the field.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use objectos_data::{
    DataConfig, DataEngine, DataError, HookContext, Interceptor, OpContext, Operation, Result,
};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::{for_each_backend, rec, user_cx};

const FILES: &[(&str, &str)] = &[
    (
        "item.object.yml",
        r#"
name: item
fields:
  name: { type: text }
  code: { type: text, unique: true }
  sku: { type: text }
  region: { type: text }
  status: { type: text }
  amount: { type: number }
indexes:
  - { name: item_sku_region_idx, fields: [sku, region], unique: true }
  - { fields: [status, amount] }
"#,
    ),
    (
        "realm.object.yml",
        "name: realm\nisSystem: true\nfields:\n  slug: { type: text, unique: true }\n",
    ),
];

fn org(tenant: &str) -> OpContext {
    OpContext {
        tenant: Some(tenant.to_owned()),
        ..user_cx()
    }
}

/// `(code, status, fields named)` of a failed create.
async fn create(e: &DataEngine, cx: &OpContext, object: &str, v: Value) -> Result<String, String> {
    match e.create(cx, object, rec(v)).await {
        Ok(r) => Ok(r["id"].as_str().unwrap().to_owned()),
        Err(err) => Err(describe(&err)),
    }
}

fn describe(err: &DataError) -> String {
    let fields: Vec<&str> = err
        .field_errors()
        .iter()
        .map(|f| f.field.as_str())
        .collect();
    format!(
        "{} {} [{}] {}",
        err.http_status(),
        err.code(),
        fields.join(","),
        err
    )
}

#[tokio::test]
async fn two_organizations_may_hold_the_same_unique_value() {
    for_each_backend(FILES, |e| async move {
        let (a, b) = (org("org_a"), org("org_b"));
        let full = json!({"code": "X", "sku": "S1", "region": "EU"});
        create(&e, &a, "item", full.clone()).await.unwrap();
        // Another organization learns nothing about org_a's values and may use them too.
        let in_b = create(&e, &b, "item", full.clone()).await.unwrap();
        // Within one organization both uniqueness conditions still hold.
        assert_eq!(
            create(&e, &a, "item", json!({"code": "X"}))
                .await
                .unwrap_err(),
            "409 DUPLICATE_VALUE [code] Code must be unique"
        );
        assert_eq!(
            create(
                &e,
                &a,
                "item",
                json!({"code": "Y", "sku": "S1", "region": "EU"})
            )
            .await
            .unwrap_err(),
            "409 DUPLICATE_VALUE [sku,region] The combination of sku, region must be unique"
        );
        // Updates too: org_b may take a value org_a holds, not one it holds itself.
        create(&e, &a, "item", json!({"code": "Z"})).await.unwrap();
        e.update(&b, "item", &in_b, rec(json!({"code": "Z"})), None)
            .await
            .unwrap();
        create(&e, &b, "item", json!({"code": "X"})).await.unwrap();
        let err = e
            .update(&b, "item", &in_b, rec(json!({"code": "X"})), None)
            .await
            .unwrap_err();
        assert_eq!(
            describe(&err),
            "409 DUPLICATE_VALUE [code] Code must be unique"
        );
        // Records without an organization are compared with each other.
        let none = OpContext::system("test");
        create(&e, &none, "item", json!({"code": "N"}))
            .await
            .unwrap();
        assert!(
            create(&e, &none, "item", json!({"code": "N"}))
                .await
                .unwrap_err()
                .starts_with("409 DUPLICATE_VALUE [code]")
        );
        // A system object's unique field stays global: a slug identifies across tenants.
        create(&e, &a, "realm", json!({"slug": "acme"}))
            .await
            .unwrap();
        assert_eq!(
            create(&e, &b, "realm", json!({"slug": "acme"}))
                .await
                .unwrap_err(),
            "409 DUPLICATE_VALUE [slug] Slug must be unique"
        );
    })
    .await;
}

/// Index name to its columns, for the tables named, read from the catalog.
async fn indexes(e: &DataEngine, tables: &[&str]) -> BTreeMap<String, Vec<String>> {
    let conn = e.connection();
    let backend = conn.get_database_backend();
    let list = tables
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = match e.dialect() {
        objectos_data::Dialect::Sqlite => format!(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({list})"
        ),
        objectos_data::Dialect::Postgres => format!(
            "SELECT indexname::text, indexdef::text FROM pg_indexes WHERE schemaname = current_schema() AND tablename IN ({list})"
        ),
    };
    let rows = conn
        .query_all_raw(Statement::from_string(backend, sql))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let name: String = r.try_get_by_index(0).unwrap();
            let def: String = r.try_get_by_index(1).unwrap();
            let cols = def[def.rfind('(').unwrap() + 1..def.rfind(')').unwrap()]
                .split(',')
                .map(|c| c.trim().trim_matches('"').to_owned())
                .collect();
            (name, cols)
        })
        .collect()
}

async fn open_dir(url: &str, dir: &std::path::Path, auto_migrate: bool) -> DataEngine {
    DataEngine::open(DataConfig {
        database_url: url.to_owned(),
        metadata_dirs: vec![dir.to_path_buf()],
        include_base: false,
        max_connections: 4,
        auto_migrate,
        owned: Vec::new(),
    })
    .await
    .unwrap_or_else(|e| panic!("open failed: {e}"))
}

async fn exec(e: &DataEngine, sql: &str) {
    e.connection()
        .execute_unprepared(sql)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
}

async fn old_global_indexes_are_replaced(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in FILES {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let e = open_dir(url, dir.path(), true).await;
    let cols = |c: &[&str]| c.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let now = indexes(&e, &["item", "realm"]).await;
    assert_eq!(
        now.get("ux_item_organization_id_code"),
        Some(&cols(&["organization_id", "code"])),
        "{now:?}"
    );
    assert_eq!(now.get("ux_realm_slug"), Some(&cols(&["slug"])), "{now:?}");
    // Turn it into a database the previous DDL version (2) made: global unique indexes under
    // the old names (plain indexes keep their columns and names).
    for sql in [
        "DROP INDEX \"ux_item_organization_id_code\"",
        "DROP INDEX \"item_sku_region_idx_org\"",
        "CREATE UNIQUE INDEX \"ux_item_code\" ON \"item\" (\"code\")",
        "CREATE UNIQUE INDEX \"item_sku_region_idx\" ON \"item\" (\"sku\", \"region\")",
        "UPDATE \"_objectos_schema\" SET \"hash\" = '2' WHERE \"object\" = '__objectos_ddl'",
    ] {
        exec(&e, sql).await;
    }
    // The leak being fixed: the global index refuses org_b's value because org_a holds it. The
    // pre-check (per organization) passes, so this is the database's violation, still a 409
    // naming the field.
    create(&e, &org("org_a"), "item", json!({"code": "X"}))
        .await
        .unwrap();
    assert_eq!(
        create(&e, &org("org_b"), "item", json!({"code": "X"}))
            .await
            .unwrap_err(),
        "409 DUPLICATE_VALUE [code] Code must be unique"
    );

    // What `objectos migrate --dry-run` prints: the new indexes, then the drops they supersede.
    let plan = e.plan_migration().await.unwrap();
    assert_eq!(
        plan.to_string(),
        "CREATE UNIQUE INDEX \"ux_item_organization_id_code\" ON \"item\" (\"organization_id\", \"code\");\n\
         CREATE UNIQUE INDEX \"item_sku_region_idx_org\" ON \"item\" (\"organization_id\", \"sku\", \"region\");\n\
         DROP INDEX IF EXISTS \"ux_item_code\"; -- superseded by ux_item_organization_id_code (organization_id, code); dropping an index loses no data\n\
         DROP INDEX IF EXISTS \"item_sku_region_idx\"; -- superseded by item_sku_region_idx_org (organization_id, sku, region); dropping an index loses no data\n"
    );
    assert!(
        plan.changed_objects.is_empty(),
        "the metadata did not change"
    );

    // A restart (what `objectos serve` does): the recorded DDL version is older, so the sync runs
    // although every object hash matches.
    e.connection().clone().close().await.ok();
    drop(e);
    let e = open_dir(url, dir.path(), true).await;
    let after = indexes(&e, &["item", "realm"]).await;
    for gone in ["ux_item_code", "item_sku_region_idx"] {
        assert!(!after.contains_key(gone), "{gone} still there: {after:?}");
    }
    assert_eq!(
        after.get("ux_item_organization_id_code"),
        Some(&cols(&["organization_id", "code"])),
        "{after:?}"
    );
    assert_eq!(
        after.get("item_sku_region_idx_org"),
        Some(&cols(&["organization_id", "sku", "region"])),
        "{after:?}"
    );
    assert_eq!(
        after.get("ix_item_status_amount"),
        Some(&cols(&["status", "amount"])),
        "{after:?}"
    );
    assert_eq!(
        after.get("ux_realm_slug"),
        Some(&cols(&["slug"])),
        "{after:?}"
    );
    assert!(e.plan_migration().await.unwrap().is_empty());
    // No data was touched, and org_b may now use the value.
    assert_eq!(
        e.count(&org("org_a"), "item", objectos_spec::query::Filter::True)
            .await
            .unwrap(),
        1
    );
    create(&e, &org("org_b"), "item", json!({"code": "X"}))
        .await
        .unwrap();
    assert!(
        create(&e, &org("org_b"), "item", json!({"code": "X"}))
            .await
            .is_err()
    );

    // Idempotent: another restart finds nothing to do.
    e.connection().clone().close().await.ok();
    drop(e);
    let e = open_dir(url, dir.path(), false).await;
    assert!(e.plan_migration().await.unwrap().is_empty());
    assert_eq!(indexes(&e, &["item", "realm"]).await, after);
    e.connection().clone().close().await.ok();
}

/// Runs `scenario` on a database URL of a fresh SQLite file and, when configured, of a fresh
/// PostgreSQL schema (for scenarios that open and reopen engines themselves).
async fn on_each_database<F, Fut>(scenario: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    scenario(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("t.db").display()
    ))
    .await;
    match crate::pg_url() {
        Some(base) => {
            let (url, schema) = crate::pg_schema(&base).await;
            scenario(url).await;
            crate::pg_drop(&base, &schema).await;
        }
        None => eprintln!("PostgreSQL skipped: set OBJECTOS_TEST_POSTGRES_URL"),
    }
}

#[tokio::test]
async fn a_database_with_global_unique_indexes_is_migrated() {
    on_each_database(|url| async move { old_global_indexes_are_replaced(&url).await }).await;
}

/// A field that stops being unique loses the unique index the engine made for it (tenant-scoped
/// and system objects alike), so the database no longer refuses what the metadata allows.
async fn retired_unique_fields_lose_their_index(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let write = |unique: bool| {
        std::fs::write(
            dir.path().join("gadget.object.yml"),
            format!("name: gadget\nfields:\n  code: {{ type: text, unique: {unique} }}\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("badge.object.yml"),
            format!(
                "name: badge\nisSystem: true\nfields:\n  code: {{ type: text, unique: {unique} }}\n"
            ),
        )
        .unwrap();
    };
    write(true);
    let e = open_dir(url, dir.path(), true).await;
    create(&e, &org("org_a"), "gadget", json!({"code": "X"}))
        .await
        .unwrap();
    assert!(
        create(&e, &org("org_a"), "gadget", json!({"code": "X"}))
            .await
            .is_err()
    );
    create(&e, &org("org_a"), "badge", json!({"code": "X"}))
        .await
        .unwrap();
    assert!(
        create(&e, &org("org_b"), "badge", json!({"code": "X"}))
            .await
            .is_err()
    );
    write(false);
    e.reload().await.unwrap();
    let plan = e.plan_migration().await.unwrap().to_string();
    assert!(
        plan.contains(
            "DROP INDEX IF EXISTS \"ux_gadget_organization_id_code\"; -- code is no longer unique; dropping an index loses no data"
        ),
        "{plan}"
    );
    assert!(
        plan.contains(
            "DROP INDEX IF EXISTS \"ux_badge_code\"; -- code is no longer unique; dropping an index loses no data"
        ),
        "{plan}"
    );
    e.migrate(&|_| {}).await.unwrap();
    create(&e, &org("org_a"), "gadget", json!({"code": "X"}))
        .await
        .unwrap();
    create(&e, &org("org_b"), "badge", json!({"code": "X"}))
        .await
        .unwrap();
    assert!(e.plan_migration().await.unwrap().is_empty());
    e.connection().clone().close().await.ok();
}

#[tokio::test]
async fn a_field_no_longer_unique_loses_its_index() {
    on_each_database(|url| async move { retired_unique_fields_lose_their_index(&url).await }).await;
}

/// Holds the first create's transaction open after its INSERT until released.
struct Gate {
    inserted: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

#[async_trait]
impl Interceptor for Gate {
    fn name(&self) -> &str {
        "gate"
    }
    fn applies_to(&self, object: &str, op: Operation) -> bool {
        object == "item" && op == Operation::Create
    }
    async fn after(&self, hook: &mut HookContext<'_>) -> Result<()> {
        if hook.result.as_deref().and_then(|r| r.get("name")) == Some(&json!("first")) {
            self.inserted.notify_one();
            self.release.notified().await;
        }
        Ok(())
    }
}

/// Two transactions pass the pre-check before either commits (PostgreSQL, READ COMMITTED): the
/// second INSERT waits on the first's index entry, then fails on the index; still a 409 naming
/// the field. SQLite runs one write at a time, so it cannot race.
#[tokio::test]
#[cfg_attr(
    not(objectos_pg),
    ignore = "needs PostgreSQL: set OBJECTOS_TEST_POSTGRES_URL"
)]
async fn a_race_past_the_pre_check_is_a_duplicate_naming_the_field() {
    let Some(base) = crate::pg_url() else {
        eprintln!("PostgreSQL skipped: set OBJECTOS_TEST_POSTGRES_URL");
        return;
    };
    let (url, schema) = crate::pg_schema(&base).await;
    let (e, _dir) = crate::open(&url, FILES).await;
    let inserted = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    e.add_interceptor(Arc::new(Gate {
        inserted: inserted.clone(),
        release: release.clone(),
    }));
    let first = {
        let e = e.clone();
        tokio::spawn(async move {
            create(
                &e,
                &org("org_a"),
                "item",
                json!({"name": "first", "code": "R"}),
            )
            .await
        })
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), inserted.notified())
        .await
        .expect("the first create never reached its after-hook");
    let second = {
        let e = e.clone();
        tokio::spawn(async move {
            create(
                &e,
                &org("org_a"),
                "item",
                json!({"name": "second", "code": "R"}),
            )
            .await
        })
    };
    // Wait (bounded) until the second INSERT blocks on the first's uncommitted index entry.
    let probe = sea_orm::Database::connect(&base).await.unwrap();
    let mut waited = false;
    for _ in 0..200 {
        let rows = probe
            .query_all_raw(Statement::from_string(
                probe.get_database_backend(),
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO \"item\"%'".to_owned(),
            ))
            .await
            .unwrap();
        if !rows.is_empty() {
            waited = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    release.notify_one();
    probe.close().await.ok();
    first.await.unwrap().unwrap();
    assert_eq!(
        second.await.unwrap().unwrap_err(),
        "409 DUPLICATE_VALUE [code] Code must be unique"
    );
    assert!(waited, "the second INSERT never waited on the index");
    e.connection().clone().close().await.ok();
    crate::pg_drop(&base, &schema).await;
}

/// `cargo xtask bench`'s list (`contact?top=50&sort=-amount&filter=[status,=,active]`, with the
/// `owner_id` row filter of its secured profile) is served by the CRM preset's
/// `contact_status_amount_idx` with and without an organization filter (anonymous mode has
/// none: an index led by `organization_id` turned this into a full scan), and the rows come out
/// in `amount` order. The statement mirrors the engine's.
#[tokio::test]
async fn the_bench_list_query_uses_the_declared_index() {
    let crm = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../presets/crm/objects");
    let dir = tempfile::tempdir().unwrap();
    let e = DataEngine::open(DataConfig {
        database_url: format!("sqlite://{}?mode=rwc", dir.path().join("b.db").display()),
        metadata_dirs: vec![crm],
        include_base: true,
        max_connections: 1,
        auto_migrate: true,
        owned: Vec::new(),
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let conn = e.connection();
    for (label, filter) in [
        ("minimal", "(\"contact\".\"status\" = 'active')"),
        (
            "tenant",
            "(\"contact\".\"organization_id\" = 'org1' AND \"contact\".\"status\" = 'active')",
        ),
        (
            "secured",
            "(\"contact\".\"organization_id\" = 'org1' AND \"contact\".\"status\" = 'active' AND \"contact\".\"owner_id\" = 'u1')",
        ),
    ] {
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT \"contact\".\"id\", (SELECT COUNT(*) FROM \"contact\" WHERE {filter}) FROM \"contact\" WHERE {filter} ORDER BY \"contact\".\"amount\" DESC NULLS LAST, \"contact\".\"id\" ASC NULLS FIRST LIMIT 50"
        );
        let rows = conn
            .query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
            .await
            .unwrap();
        let plan: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String>("", "detail").unwrap())
            .collect();
        let text = plan.join("\n");
        // Both the page and its count subquery search the index by status.
        let searches: Vec<&String> = plan.iter().filter(|d| d.contains("contact")).collect();
        assert!(
            searches.len() == 2
                && searches.iter().all(|d| d
                    .contains("USING INDEX contact_status_amount_idx (status=?)")
                    || d.contains("COVERING INDEX contact_status_amount_idx (status=?)")),
            "{label}: {text}"
        );
        // The index gives `amount` order; only ties on `amount` are sorted by `id` afterwards.
        assert!(
            !text.contains("USE TEMP B-TREE FOR ORDER BY"),
            "{label}: {text}"
        );
    }
    conn.clone().close().await.ok();
}
