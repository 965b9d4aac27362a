//! A full disk never turns into an acknowledged write that was not stored: every write that
//! could not be stored fails with a retryable error (507 `STORAGE_FULL`, or 503 for its group
//! members), every acknowledged id reads back, also after a restart, and the writer recovers by
//! itself once space is freed.
//!
//! Two ways to fill the database: SQLite's `max_page_count` (everywhere; SQLite answers
//! `SQLITE_FULL` exactly as for a full disk) and, when the test runs as root, a real
//! size-limited tmpfs holding the database file and its WAL.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use objectos_data::{DataConfig, DataEngine, DataError};
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::{rec, user_cx};

const NOTE: &[(&str, &str)] = &[(
    "note.object.yml",
    "name: note\nfields:\n  body: { type: textarea }\n  n: { type: number }\n",
)];

async fn open_at(db: &Path, meta: &Path) -> DataEngine {
    std::fs::write(meta.join(NOTE[0].0), NOTE[0].1).unwrap();
    DataEngine::open(DataConfig {
        database_url: format!("sqlite://{}?mode=rwc", db.display()),
        metadata_dirs: vec![meta.to_path_buf()],
        include_base: false,
        max_connections: 4,
        auto_migrate: true,
        owned: Vec::new(),
    })
    .await
    .unwrap_or_else(|e| panic!("open failed: {e}"))
}

/// What a storm of concurrent creates came back with.
#[derive(Default)]
struct Storm {
    acked: Vec<String>,
    full: usize,
    unavailable: usize,
}

/// `writers` tasks create `each` notes of `size` bytes concurrently. Any error other than a
/// retryable storage or availability failure fails the test.
async fn storm(e: &DataEngine, writers: usize, each: usize, size: usize) -> Storm {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Storm::default();
            for i in 0..each {
                let body = format!("{w}-{i}-").repeat(size / 6 + 1);
                match e
                    .create(&user_cx(), "note", rec(json!({"body": body, "n": i})))
                    .await
                {
                    Ok(r) => out.acked.push(r["id"].as_str().unwrap().to_owned()),
                    Err(DataError::StorageFull(_)) => out.full += 1,
                    Err(DataError::Unavailable(_)) => out.unavailable += 1,
                    Err(other) => panic!("unexpected error {} ({other})", other.code()),
                }
            }
            out
        }));
    }
    let mut all = Storm::default();
    for t in tasks {
        let s = t.await.unwrap();
        all.acked.extend(s.acked);
        all.full += s.full;
        all.unavailable += s.unavailable;
    }
    all
}

/// Every id reads back through `e`.
async fn assert_stored(e: &DataEngine, ids: &[String], when: &str) {
    let mut missing = 0;
    for id in ids {
        if e.get(&user_cx(), "note", id, Default::default())
            .await
            .is_err()
        {
            missing += 1;
        }
    }
    assert_eq!(
        missing,
        0,
        "{when}: {missing} of {} acknowledged writes are not stored",
        ids.len()
    );
}

fn error_contract(err: &DataError) {
    assert!(err.retryable(), "{err}");
    assert!(matches!(err.http_status(), 503 | 507), "{err}");
    assert!(err.retry_after_secs().is_some(), "{err}");
}

#[tokio::test]
async fn a_full_database_never_acknowledges_a_write_it_did_not_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("full.db");
    let e = open_at(&db, dir.path()).await;
    let before = storm(&e, 4, 5, 200).await;
    assert_eq!(before.acked.len(), 20);

    // The database may grow by about 60 pages (240 KiB) from here: a few dozen 4 KiB notes.
    let pages = scalar(e.write_connection(), "PRAGMA page_count").await;
    set_max_pages(&e, pages + 60).await;

    let full = storm(&e, 24, 20, 4000).await;
    assert!(
        full.full > 0,
        "the database never filled up ({} acked)",
        full.acked.len()
    );
    assert!(!full.acked.is_empty(), "nothing fitted before it was full");
    assert_stored(&e, &full.acked, "while full").await;

    // Still full: a single writer, one at a time, gets the same retryable answer, never a 2xx.
    for i in 0..5 {
        // The limit is the connection's: the writer reopened its connection after the failures,
        // so cap the new one at its current size again.
        set_max_pages(&e, 1).await;
        let err = e
            .create(
                &user_cx(),
                "note",
                rec(json!({"body": "x".repeat(8000), "n": i})),
            )
            .await
            .expect_err("a write into a full database must fail");
        assert!(matches!(err, DataError::StorageFull(_)), "{err}");
        error_contract(&err);
    }

    // Space comes back: the writer recovers without a restart and writes are stored again.
    set_max_pages(&e, 1 << 30).await;
    let after = storm(&e, 8, 10, 2000).await;
    assert_eq!(
        after.acked.len(),
        80,
        "{} full, {} unavailable after space was freed",
        after.full,
        after.unavailable
    );
    assert_stored(&e, &after.acked, "after space was freed").await;

    // And all of it survives a restart (a second engine reads the file afresh).
    let reopened = open_at(&db, dir.path()).await;
    let mut all = before.acked.clone();
    all.extend(full.acked);
    all.extend(after.acked);
    assert_stored(&reopened, &all, "after a restart").await;
}

/// One integer from a query on `conn`.
async fn scalar(conn: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    conn.query_one_raw(sea_orm::Statement::from_string(
        sea_orm::DbBackend::Sqlite,
        sql,
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index(0)
    .unwrap()
}

/// A private table of a plugin's, as auth and audit keep them.
async fn private_table(e: &DataEngine) {
    e.write_connection()
        .execute_unprepared("CREATE TABLE _test_private (id INTEGER PRIMARY KEY, body TEXT)")
        .await
        .unwrap();
}

/// `PRAGMA max_page_count` on the writer connection (SQLite keeps it per connection and never
/// below the database's current size).
async fn set_max_pages(e: &DataEngine, pages: i64) {
    e.write_connection()
        .execute_unprepared(&format!("PRAGMA max_page_count = {pages}"))
        .await
        .unwrap();
}

/// A size-limited tmpfs mounted for the test's life (root only).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .ok()?
            .success();
        ok.then_some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_filesystem_never_acknowledges_a_write_it_did_not_store() {
    let Some(fs) = Tmpfs::mount("4m") else {
        eprintln!("skipped: mounting a tmpfs needs root (the max_page_count test covers the rest)");
        return;
    };
    // Ballast the test removes to free space again: as much as the database and its WAL can
    // take, so that what is freed covers the WAL a checkpoint copies into the database file.
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![7u8; 2 * 1024 * 1024]).unwrap();
    let meta = tempfile::tempdir().unwrap();
    let db = fs.path().join("full.db");
    let e = open_at(&db, meta.path()).await;

    let mut acked = Vec::new();
    let mut failures = 0;
    // Fill the file system until writes fail for a while (the WAL and the database grow).
    for _ in 0..40 {
        let s = storm(&e, 16, 10, 6000).await;
        acked.extend(s.acked);
        failures += s.full + s.unavailable;
        if failures > 200 {
            break;
        }
    }
    assert!(failures > 0, "the file system never filled up");
    assert_stored(&e, &acked, "while the disk is full").await;

    // A single sequential client on the full disk: refused, never acknowledged.
    for i in 0..3 {
        match e
            .create(
                &user_cx(),
                "note",
                rec(json!({"body": "y".repeat(64 * 1024), "n": i})),
            )
            .await
        {
            Ok(r) => acked.push(r["id"].as_str().unwrap().to_owned()),
            Err(err) => error_contract(&err),
        }
    }
    assert_stored(&e, &acked, "after sequential writes on a full disk").await;

    // Free space: writes are stored again without a restart.
    std::fs::remove_file(&ballast).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = Command::new("ls").arg("-la").arg(fs.path()).status();
    let _ = Command::new("df").arg(fs.path()).status();
    let after = storm(&e, 8, 10, 1000).await;
    assert_eq!(
        after.acked.len(),
        80,
        "{} full, {} unavailable after space was freed",
        after.full,
        after.unavailable
    );
    acked.extend(after.acked);
    assert_stored(&e, &acked, "after space was freed").await;

    let reopened = open_at(&db, meta.path()).await;
    assert_stored(&reopened, &acked, "after a restart").await;
    e.connection().clone().close().await.ok();
    e.write_connection().clone().close().await.ok();
    reopened.connection().clone().close().await.ok();
    reopened.write_connection().clone().close().await.ok();
}

/// Holds every contact create named `slow` far beyond the writer bound.
struct Slow;

#[async_trait::async_trait]
impl objectos_data::Interceptor for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    async fn after(&self, hook: &mut objectos_data::HookContext<'_>) -> objectos_data::Result<()> {
        let slow = hook
            .result
            .as_deref()
            .and_then(|r| r.get("body"))
            .is_some_and(|b| b == "slow");
        if slow {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Ok(())
    }
}

/// One tenant cannot hold the writer for everyone: bulk requests are capped, and an operation
/// that holds a SQLite file's writer past the bound is rolled back while the others go on.
#[tokio::test]
async fn bulk_writes_are_capped_and_the_writer_is_held_for_a_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_at(&dir.path().join("bulk.db"), dir.path()).await;
    let many = |n: usize| -> Vec<objectos_data::Record> {
        (0..n).map(|i| rec(json!({"body": "b", "n": i}))).collect()
    };
    let err = e
        .create_many(&user_cx(), "note", many(201))
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.http_status()), ("BATCH_TOO_LARGE", 413));
    assert_eq!(
        e.create_many(&user_cx(), "note", many(200))
            .await
            .unwrap()
            .len(),
        200
    );
    let req: objectos_data::BatchRequest = serde_json::from_value(json!({
        "operation": "create",
        "records": (0..60_000).map(|i| json!({"data": {"n": i}})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let err = e.batch(&user_cx(), "note", req).await.unwrap_err();
    assert_eq!(err.code(), "BATCH_TOO_LARGE");

    // The bound is configuration.
    e.set_write_limits(objectos_data::WriteLimits {
        max_batch_records: 5,
        max_write_millis: 300,
        ..objectos_data::WriteLimits::default()
    });
    assert_eq!(
        e.create_many(&user_cx(), "note", many(6))
            .await
            .unwrap_err()
            .code(),
        "BATCH_TOO_LARGE"
    );
    e.add_interceptor(std::sync::Arc::new(Slow));
    let slow = {
        let e = e.clone();
        tokio::spawn(async move {
            e.create(&user_cx(), "note", rec(json!({"body": "slow"})))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Queued behind the slow one, and stored once it was rolled back.
    let quick = e
        .create(&user_cx(), "note", rec(json!({"body": "quick"})))
        .await
        .unwrap();
    let err = slow.await.unwrap().unwrap_err();
    assert_eq!(
        (err.code(), err.http_status()),
        ("OPERATION_TOO_LARGE", 413),
        "{err}"
    );
    let id = quick["id"].as_str().unwrap();
    e.get(&user_cx(), "note", id, Default::default())
        .await
        .unwrap();
    let q: objectos_spec::query::QueryAst =
        serde_json::from_value(json!({"where": {"body": "slow"}})).unwrap();
    assert_eq!(
        e.find(&user_cx(), "note", q).await.unwrap().records.len(),
        0
    );
}

/// Write rates per organization and per user come from configuration and answer 429 with a
/// wait once used up.
#[tokio::test]
async fn write_rates_per_organization_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_at(&dir.path().join("rate.db"), dir.path()).await;
    e.set_write_limits(objectos_data::WriteLimits {
        per_organization_per_second: 5,
        burst: 5,
        max_batch_records: 3,
        ..objectos_data::WriteLimits::default()
    });
    for i in 0..5 {
        e.create(&user_cx(), "note", rec(json!({"n": i})))
            .await
            .unwrap();
    }
    let err = e
        .create(&user_cx(), "note", rec(json!({"n": 6})))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.http_status()),
        ("RATE_LIMIT_EXCEEDED", 429)
    );
    assert!(err.retryable());
    assert_eq!(err.retry_after_secs(), Some(1));
    // Another organization writes on.
    let mut other = user_cx();
    other.tenant = Some("org2".into());
    e.create(&other, "note", rec(json!({"n": 7})))
        .await
        .unwrap();
}

/// PostgreSQL connections cut under the engine (a restart, a failover, an idle timeout) answer
/// 503 `SERVICE_UNAVAILABLE` (retryable) instead of a 500, and the pool heals by itself.
#[tokio::test]
#[cfg_attr(
    not(objectos_pg),
    ignore = "needs PostgreSQL: set OBJECTOS_TEST_POSTGRES_URL"
)]
async fn lost_postgres_connections_answer_unavailable_and_heal() {
    let Some(base) = crate::pg_url() else {
        eprintln!(
            "PostgreSQL skipped: set OBJECTOS_TEST_POSTGRES_URL to run this test on PostgreSQL"
        );
        return;
    };
    let (url, schema) = crate::pg_schema(&base).await;
    let app = format!("objectos_cut_{schema}");
    let url = format!("{url}&application_name={app}");
    let (e, _d) = crate::open(&url, NOTE).await;
    let created = e
        .create(&user_cx(), "note", rec(json!({"n": 1})))
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    let admin = sea_orm::Database::connect(&base).await.unwrap();
    let killed = admin
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'"
            ),
        ))
        .await
        .unwrap();
    assert!(!killed.is_empty(), "no connection of the engine was found");

    let mut failures = 0;
    let mut healed = false;
    for i in 0..20 {
        let r = if i % 2 == 0 {
            e.get(&user_cx(), "note", &id, Default::default())
                .await
                .map(|_| ())
        } else {
            e.create(&user_cx(), "note", rec(json!({"n": i})))
                .await
                .map(|_| ())
        };
        match r {
            Ok(()) if failures > 0 || i > 8 => {
                healed = true;
                break;
            }
            Ok(()) => {}
            Err(err) => {
                assert_eq!(
                    (err.code(), err.http_status(), err.retryable()),
                    ("SERVICE_UNAVAILABLE", 503, true),
                    "{err}"
                );
                failures += 1;
            }
        }
    }
    assert!(healed, "the pool did not heal after {failures} failures");
    eprintln!("{failures} requests failed before the pool healed");
    admin.close().await.ok();
    e.connection().clone().close().await.ok();
    crate::pg_drop(&base, &schema).await;
}

/// A plugin's own transaction on the writer (private tables) that runs into a full disk must
/// not leave the writer connection believing it is still in a transaction: the engine's later
/// writes would then be acknowledged without ever being committed.
#[tokio::test]
async fn a_plugin_transaction_on_a_full_disk_leaves_the_writer_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("own.db");
    let e = open_at(&db, dir.path()).await;
    private_table(&e).await;
    let pages = scalar(e.write_connection(), "PRAGMA page_count").await;
    set_max_pages(&e, pages + 20).await;
    let tx = e.begin_own_transaction().await.unwrap();
    let mut failed = false;
    for i in 0..200 {
        let r = tx
            .execute_unprepared(&format!(
                "INSERT INTO _test_private (id, body) VALUES ({i}, hex(randomblob(8000)))"
            ))
            .await;
        if r.is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "the database never filled up");
    let err = tx.commit().await.unwrap_err();
    assert_eq!(err.http_status(), 507, "{err}");
    // The statements were not committed, and the writer works (and commits) again.
    set_max_pages(&e, 1 << 30).await;
    let after = storm(&e, 4, 5, 1000).await;
    assert_eq!(after.acked.len(), 20);
    let reopened = open_at(&db, dir.path()).await;
    assert_stored(
        &reopened,
        &after.acked,
        "after a plugin transaction hit a full disk",
    )
    .await;
    let left = scalar(reopened.connection(), "SELECT COUNT(*) FROM _test_private").await;
    assert_eq!(left, 0);
}

/// The same on a real full file system (root only): there SQLite rolls the whole transaction
/// back by itself, which is what left a plain transaction's connection out of step.
#[tokio::test]
async fn a_plugin_transaction_on_a_full_filesystem_leaves_the_writer_healthy() {
    let Some(fs) = Tmpfs::mount("4m") else {
        eprintln!("skipped: mounting a tmpfs needs root (the max_page_count test covers the rest)");
        return;
    };
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![7u8; 2 * 1024 * 1024]).unwrap();
    let meta = tempfile::tempdir().unwrap();
    let db = fs.path().join("own.db");
    let e = open_at(&db, meta.path()).await;
    private_table(&e).await;
    let mut committed = 0;
    let mut refused = 0;
    // Transactions of 10 rows of 16 KB until the disk refuses a few of them.
    for round in 0..40 {
        let tx = e.begin_own_transaction().await.unwrap();
        let mut ok = true;
        for i in 0..10 {
            let id = round * 10 + i;
            let r = tx
                .execute_unprepared(&format!(
                    "INSERT INTO _test_private (id, body) VALUES ({id}, hex(randomblob(8000)))"
                ))
                .await;
            if r.is_err() {
                ok = false;
                break;
            }
        }
        let r = if ok {
            tx.commit().await
        } else {
            let err = tx.commit().await.unwrap_err();
            assert!(err.retryable(), "{err}");
            Err(err)
        };
        match r {
            Ok(()) => committed += 10,
            Err(err) => {
                assert!(matches!(err.http_status(), 503 | 507), "{err}");
                refused += 1;
                if refused >= 3 {
                    break;
                }
            }
        }
    }
    assert!(refused > 0, "the disk never filled up");
    std::fs::remove_file(&ballast).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = storm(&e, 4, 5, 500).await;
    assert_eq!(
        after.acked.len(),
        20,
        "{} full, {} unavailable",
        after.full,
        after.unavailable
    );
    let reopened = open_at(&db, meta.path()).await;
    assert_stored(
        &reopened,
        &after.acked,
        "after a plugin transaction hit a full disk",
    )
    .await;
    let rows = scalar(reopened.connection(), "SELECT COUNT(*) FROM _test_private").await;
    assert_eq!(rows, committed);
    for c in [
        reopened.connection(),
        reopened.write_connection(),
        e.connection(),
        e.write_connection(),
    ] {
        c.clone().close().await.ok();
    }
}
