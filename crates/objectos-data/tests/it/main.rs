//! Integration tests of the data engine, run on SQLite and (with OBJECTOS_TEST_POSTGRES_URL) PostgreSQL.

// Test helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crud;
mod follow_up;
mod form_errors;
mod group;
mod hooks;
mod nul;
mod outbox_cluster;
mod owned;
mod plugin;
mod query;
mod refs;
mod rollup;
mod schema;
mod select;
mod services;
mod storage;
mod tenant_unique;
mod types;
mod unique;
mod xbatch;

use std::future::Future;
use std::path::Path;

use objectos_data::{DataConfig, DataEngine, OpContext, Principal, Record};
use sea_orm::ConnectionTrait;
use serde_json::Value;

pub const CRM: &[(&str, &str)] = &[
    (
        "account.object.yml",
        r#"
name: account
label: Account
fields:
  name: { type: text, label: Account Name, required: true, searchable: true, maxLength: 100 }
  number: { type: autonumber, autonumberFormat: "ACC-{0000}" }
  kind:
    type: select
    options:
      - { label: Prospect, value: prospect, default: true }
      - { label: Customer, value: customer }
  code: { type: text, unique: true }
  revenue: { type: currency, precision: 14, scale: 2 }
  employees: { type: number, scale: 0 }
  rating: { type: number }
  is_active: { type: boolean, defaultValue: true }
  founded: { type: date }
  last_contact: { type: datetime }
  opens_at: { type: time }
  tags: { type: multiselect, options: [ { label: A, value: a }, { label: B, value: b }, { label: C, value: c } ] }
  meta: { type: json }
  parent: { type: lookup, reference: account }
  contact_count: { type: summary, summaryOperations: { object: contact, field: id, function: count } }
  contact_total: { type: summary, summaryOperations: { object: contact, field: amount, function: sum } }
  double_rating: { type: formula, expression: "rating * 2" }
indexes:
  - { fields: [kind, is_active] }
"#,
    ),
    (
        "contact.object.yml",
        r#"
name: contact
fields:
  name: { type: text, required: true }
  email: { type: email }
  amount: { type: currency, precision: 12, scale: 2 }
  status:
    type: select
    options: [ { label: New, value: new, default: true }, { label: Active, value: active }, { label: Closed, value: closed } ]
  account: { type: lookup, reference: account }
  limit_amount: { type: number }
  related: { type: lookup, reference: account, multiple: true }
"#,
    ),
    (
        "invoice.object.yml",
        r#"
name: invoice
fields:
  title: { type: text }
  account: { type: master_detail, reference: account, deleteBehavior: cascade }
"#,
    ),
    (
        "invoice_line.object.yml",
        r#"
name: invoice_line
fields:
  label: { type: text }
  invoice: { type: master_detail, reference: invoice, deleteBehavior: cascade }
"#,
    ),
    (
        "contract.object.yml",
        r#"
name: contract
fields:
  title: { type: text }
  account: { type: lookup, reference: account, deleteBehavior: restrict }
"#,
    ),
];

pub fn user_cx() -> OpContext {
    OpContext {
        principal: Principal::User {
            id: "u1".into(),
            roles: vec![],
            permission_sets: vec![],
            is_admin: false,
        },
        tenant: Some("org1".into()),
        locale: None,
        request_id: None,
        cascade_of: None,
        correlation_id: None,
        causation_id: None,
    }
}

pub fn rec(v: Value) -> Record {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

pub fn pg_url() -> Option<String> {
    std::env::var("OBJECTOS_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Opens an engine on `url` with `files` as the metadata folder.
pub async fn open(url: &str, files: &[(&str, &str)]) -> (DataEngine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), files);
    let cfg = DataConfig {
        database_url: url.to_owned(),
        metadata_dirs: vec![dir.path().to_path_buf()],
        include_base: false,
        max_connections: 4,
        auto_migrate: true,
        owned: Vec::new(),
    };
    let engine = DataEngine::open(cfg)
        .await
        .unwrap_or_else(|e| panic!("open failed: {e}"));
    (engine, dir)
}

/// A fresh PostgreSQL schema; returns the URL that selects it.
pub async fn pg_schema(base: &str) -> (String, String) {
    let name = format!("t_{}", uuid_like());
    let db = sea_orm::Database::connect(base).await.unwrap();
    db.execute_unprepared(&format!("CREATE SCHEMA \"{name}\""))
        .await
        .unwrap();
    db.close().await.unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    (format!("{base}{sep}options[search_path]={name}"), name)
}

pub async fn pg_drop(base: &str, name: &str) {
    let db = sea_orm::Database::connect(base).await.unwrap();
    db.execute_unprepared(&format!("DROP SCHEMA \"{name}\" CASCADE"))
        .await
        .unwrap();
    db.close().await.unwrap();
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", n, std::process::id())
}

/// Runs `f` on SQLite and, when OBJECTOS_TEST_POSTGRES_URL is set, on PostgreSQL.
pub async fn for_each_backend<F, Fut>(files: &[(&str, &str)], f: F)
where
    F: Fn(DataEngine) -> Fut,
    Fut: Future<Output = ()>,
{
    let sqlite_dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        sqlite_dir.path().join("t.db").display()
    );
    let (engine, _d) = open(&url, files).await;
    f(engine).await;
    match pg_url() {
        Some(base) => {
            let (url, schema) = pg_schema(&base).await;
            let (engine, _d) = open(&url, files).await;
            f(engine.clone()).await;
            engine.connection().clone().close().await.ok();
            pg_drop(&base, &schema).await;
        }
        None => eprintln!(
            "PostgreSQL skipped: set OBJECTOS_TEST_POSTGRES_URL to run this test on PostgreSQL too"
        ),
    }
}
