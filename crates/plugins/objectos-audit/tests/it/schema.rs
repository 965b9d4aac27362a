//! The declared tables ([`objectos_audit::schema`]) are the ones earlier versions created with
//! their own DDL: a database from before needs nothing but the retired indexes dropped, keeps
//! its chains, and the CLI's store ([`AuditStore::connect`]) opens it, or a fresh one, as it is.

use objectos_audit::store::append_own;
use objectos_audit::{Actor, AuditEvent, AuditStore, EventFilter, PLUGIN_ID, schema};
use objectos_data::store::{Sql, Store};
use objectos_data::{DataConfig, DataEngine, MigrationStep};
use objectos_testkit::TestDatabase;

/// The DDL the plugin ran at start before its tables were declared, including the indexes of
/// the version before that (which the declaration retires).
const OLD_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS _objectos_audit_event (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, seq BIGINT NOT NULL, \
     event_type TEXT NOT NULL, severity TEXT NOT NULL, occurred_at TEXT NOT NULL, actor_type TEXT NOT NULL, \
     actor_id TEXT, actor_reason TEXT, ip TEXT, user_agent TEXT, object TEXT, record_id TEXT, operation TEXT, \
     changes TEXT NOT NULL, result TEXT NOT NULL, request_id TEXT, description TEXT, details TEXT NOT NULL, \
     prev_hash TEXT NOT NULL, hash TEXT NOT NULL, UNIQUE (tenant_id, seq))",
    "CREATE INDEX IF NOT EXISTS ix_audit_actor ON _objectos_audit_event (actor_id, id)",
    "CREATE INDEX IF NOT EXISTS ix_audit_target ON _objectos_audit_event (object, record_id, id)",
    "CREATE INDEX IF NOT EXISTS ix_audit_event_type ON _objectos_audit_event (event_type)",
    "CREATE INDEX IF NOT EXISTS ix_audit_time ON _objectos_audit_event (occurred_at)",
    "CREATE INDEX IF NOT EXISTS ix_audit_tenant_time ON _objectos_audit_event (tenant_id, occurred_at)",
    "CREATE TABLE IF NOT EXISTS _objectos_audit_head (tenant_id TEXT PRIMARY KEY, last_seq BIGINT NOT NULL, \
     last_hash TEXT NOT NULL, anchor_seq BIGINT NOT NULL, anchor_hash TEXT NOT NULL, pruned_at TEXT)",
    "CREATE TABLE IF NOT EXISTS _objectos_field_history (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, object TEXT NOT NULL, \
     record_id TEXT NOT NULL, field TEXT NOT NULL, old_value TEXT, new_value TEXT, actor_type TEXT NOT NULL, \
     actor_id TEXT, changed_at TEXT NOT NULL, event_id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_field_history_record ON _objectos_field_history (object, record_id, changed_at)",
    "CREATE INDEX IF NOT EXISTS ix_field_history_time ON _objectos_field_history (changed_at)",
];

fn config(url: &str, owned: bool) -> DataConfig {
    DataConfig {
        database_url: url.to_owned(),
        metadata_dirs: Vec::new(),
        include_base: false,
        max_connections: 2,
        auto_migrate: false,
        owned: if owned {
            vec![schema().owned_by(PLUGIN_ID)]
        } else {
            Vec::new()
        },
    }
}

fn event(n: u32) -> AuditEvent {
    let mut ev = AuditEvent::new(
        format!("test.old{n}"),
        Actor {
            kind: "system".into(),
            id: None,
            reason: Some("test".into()),
            ip_address: None,
            user_agent: None,
        },
    );
    ev.tenant_id = Some("old-t".into());
    ev
}

async fn old_database_scenario(url: &str) {
    // A database as the plugin left it when it still created its tables itself.
    let engine = DataEngine::open(config(url, false)).await.unwrap();
    let w = engine.writer();
    for ddl in OLD_DDL {
        w.execute(Sql::with(w.dialect(), ddl, Vec::new()).unwrap())
            .await
            .unwrap();
    }
    append_own(&engine, event(1)).await.unwrap();
    append_own(&engine, event(2)).await.unwrap();
    drop(engine);

    // The declaration matches it: only the indexes the id order replaced go.
    let engine = DataEngine::open(config(url, true)).await.unwrap();
    let plan = engine.plan_migration().await.unwrap();
    let audit = plan
        .plugins
        .iter()
        .find(|p| p.plugin == PLUGIN_ID)
        .expect("the audit plugin's steps");
    let mut retired: Vec<&str> = audit
        .steps
        .iter()
        .map(|s| match s {
            MigrationStep::RetireIndex { index, .. } => index.as_str(),
            other => panic!("unexpected step {other}\n{plan}"),
        })
        .collect();
    retired.sort_unstable();
    assert_eq!(
        retired,
        [
            "ix_audit_event_type",
            "ix_audit_tenant_time",
            "ix_audit_time"
        ],
        "{plan}"
    );
    engine.migrate(&|_| {}).await.unwrap();
    assert!(engine.plan_migration().await.unwrap().is_empty());
    drop(engine);

    // The CLI's store opens it and finds the chain intact and extendable.
    let store = AuditStore::connect(url).await.unwrap();
    let ev = store.append(event(3)).await.unwrap();
    assert_eq!(ev.seq, 3);
    let report = store.verify(Some("old-t")).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.tenants, report.events), (1, 3));
    let all = store.export(&EventFilter::default()).await.unwrap();
    assert_eq!(all.len(), 3);
}

#[tokio::test]
async fn an_old_database_needs_no_change_sqlite() {
    let db = TestDatabase::sqlite_file();
    old_database_scenario(&db.url).await;
    db.cleanup().await;
}

#[tokio::test]
#[cfg_attr(
    not(objectos_pg),
    ignore = "needs PostgreSQL: set OBJECTOS_TEST_POSTGRES_URL"
)]
async fn an_old_database_needs_no_change_postgres() {
    if let Some(db) = TestDatabase::postgres("audit_old").await {
        old_database_scenario(&db.url).await;
        db.cleanup().await;
    }
}

async fn fresh_database_scenario(url: &str) {
    // `objectos audit verify` on a database no server has started on yet.
    let store = AuditStore::connect(url).await.unwrap();
    let report = store.verify(None).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.tenants, report.events), (0, 0));
    store.append(event(1)).await.unwrap();
    assert_eq!(store.verify(None).await.unwrap().events, 1);
    drop(store);
    // Its tables are exactly the declaration: nothing left to migrate.
    let engine = DataEngine::open(config(url, true)).await.unwrap();
    let plan = engine.plan_migration().await.unwrap();
    assert!(plan.is_empty(), "{plan}");
}

#[tokio::test]
async fn the_cli_store_creates_the_tables_sqlite() {
    let db = TestDatabase::sqlite_file();
    fresh_database_scenario(&db.url).await;
    db.cleanup().await;
}

#[tokio::test]
#[cfg_attr(
    not(objectos_pg),
    ignore = "needs PostgreSQL: set OBJECTOS_TEST_POSTGRES_URL"
)]
async fn the_cli_store_creates_the_tables_postgres() {
    if let Some(db) = TestDatabase::postgres("audit_new").await {
        fresh_database_scenario(&db.url).await;
        db.cleanup().await;
    }
}
