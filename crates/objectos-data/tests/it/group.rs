//! Group commit: concurrent writes on a SQLite file share transactions (one savepoint each), and
//! a member that fails or is cancelled takes nothing of the others down with it.

use std::sync::Arc;

use async_trait::async_trait;
use objectos_data::{DataEngine, DataError, Dialect, HookContext, Interceptor, Operation, Result};
use objectos_spec::query::QueryAst;
use serde_json::json;

use crate::hooks::Collect;
use crate::{CRM, for_each_backend, rec, user_cx};

/// Refuses, after its INSERT ran, every contact named `fail-*`, and before anything ran every
/// one named `early-*`; parks forever on `hang`.
struct Saboteur {
    entered_hang: Arc<tokio::sync::Notify>,
}

#[async_trait]
impl Interceptor for Saboteur {
    fn name(&self) -> &str {
        "saboteur"
    }
    fn applies_to(&self, object: &str, op: Operation) -> bool {
        object == "contact" && op == Operation::Create
    }
    async fn before(&self, hook: &mut HookContext<'_>) -> Result<()> {
        let name = name_of(hook.input.as_deref());
        if name.starts_with("early-") {
            return Err(DataError::Forbidden {
                object: "contact".into(),
                message: format!("{name} refused early"),
            });
        }
        Ok(())
    }
    async fn after(&self, hook: &mut HookContext<'_>) -> Result<()> {
        let name = name_of(hook.result.as_deref());
        if name == "hang" {
            self.entered_hang.notify_one();
            std::future::pending::<()>().await;
        }
        if name.starts_with("fail-") {
            return Err(DataError::Forbidden {
                object: "contact".into(),
                message: format!("{name} refused"),
            });
        }
        Ok(())
    }
}

fn name_of(record: Option<&objectos_data::Record>) -> String {
    record
        .and_then(|r| r.get("name"))
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

async fn names(e: &DataEngine) -> Vec<String> {
    let found = e
        .find(
            &user_cx(),
            "contact",
            QueryAst {
                limit: Some(1000),
                ..QueryAst::default()
            },
        )
        .await
        .unwrap();
    let mut out: Vec<String> = found
        .records
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn concurrent_creates_share_commits_and_failures_stay_their_own() {
    for_each_backend(CRM, |e| async move {
        e.add_interceptor(Arc::new(Saboteur {
            entered_hang: Arc::new(tokio::sync::Notify::new()),
        }));
        let commits_before = e.write_commits();
        let mut tasks = Vec::new();
        for i in 0..48 {
            let e = e.clone();
            // A member refused before it wrote anything owes its savepoint still: refusing it
            // must not roll back to the previous member's savepoint.
            let name = match i % 6 {
                3 => format!("fail-{i:02}"),
                5 => format!("early-{i:02}"),
                _ => format!("ok-{i:02}"),
            };
            tasks.push(tokio::spawn(async move {
                let r = e
                    .create(&user_cx(), "contact", rec(json!({"name": name})))
                    .await;
                (name, r)
            }));
        }
        let mut expected = Vec::new();
        for t in tasks {
            let (name, r) = t.await.unwrap();
            if name.starts_with("fail-") || name.starts_with("early-") {
                let err = r.unwrap_err();
                assert!(matches!(err, DataError::Forbidden { .. }), "{name}: {err}");
            } else {
                let created = r.unwrap_or_else(|err| panic!("{name}: {err}"));
                assert_eq!(created["name"], name.as_str());
                expected.push(name);
            }
        }
        expected.sort();
        // Exactly the successful creates are stored, and only their outbox rows exist.
        assert_eq!(names(&e).await, expected);
        let sink = Collect::default();
        assert_eq!(e.dispatch_pending(&sink).await.unwrap(), 32);
        let mut published: Vec<String> = sink
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|ev| ev.payload["record"]["name"].as_str().unwrap().to_owned())
            .collect();
        published.sort();
        assert_eq!(published, expected);
        let commits = e.write_commits() - commits_before;
        if e.dialect() == Dialect::Sqlite {
            // 32 successful creates queued together: they shared transactions.
            assert!(commits < 32, "{commits} commits for 32 grouped creates");
        } else {
            assert_eq!(commits, 32);
        }
        // A later single write, with nobody queued, commits at once and is visible.
        e.create(&user_cx(), "contact", rec(json!({"name": "late"})))
            .await
            .unwrap();
        assert!(names(&e).await.contains(&"late".to_owned()));
    })
    .await;
}

#[tokio::test]
async fn a_cancelled_member_is_undone_and_the_others_commit() {
    for_each_backend(CRM, |e| async move {
        let entered = Arc::new(tokio::sync::Notify::new());
        e.add_interceptor(Arc::new(Saboteur {
            entered_hang: entered.clone(),
        }));
        let spawn = |name: String| {
            let e = e.clone();
            tokio::spawn(async move {
                e.create(&user_cx(), "contact", rec(json!({"name": name})))
                    .await
                    .map(|_| ())
            })
        };
        let mut others = Vec::new();
        for i in 0..5 {
            others.push(spawn(format!("before-{i}")));
        }
        let hang = spawn("hang".into());
        for i in 0..5 {
            others.push(spawn(format!("after-{i}")));
        }
        entered.notified().await;
        // The request is dropped mid-operation (a client that went away): its insert must go,
        // the writes grouped with it must not.
        hang.abort();
        for t in others {
            t.await.unwrap().unwrap();
        }
        let expected: Vec<String> = (0..5)
            .map(|i| format!("after-{i}"))
            .chain((0..5).map(|i| format!("before-{i}")))
            .collect();
        assert_eq!(names(&e).await, expected);
        // The writer is free again.
        e.create(&user_cx(), "contact", rec(json!({"name": "later"})))
            .await
            .unwrap();
    })
    .await;
}

/// Under a steady stream of writes the WAL keeps starting over instead of growing with every
/// commit: the checkpointer catches up with the writer held once it passes its size limit.
#[tokio::test]
async fn the_wal_stays_bounded_under_sustained_writes() {
    const NOTE: &[(&str, &str)] = &[(
        "note.object.yml",
        "name: note\nfields:\n  body: { type: textarea }\n",
    )];
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let (e, _meta) = crate::open(&url, NOTE).await;
    // Each note fills about two pages, so the creates below append more than 7,200 frames
    // (28 MiB): over three times the restart limit (2,048 frames), spread over many checkpoint
    // ticks because the writers run for a while.
    let body = "x".repeat(6_000);
    let writers: Vec<_> = (0..6)
        .map(|_| {
            let e = e.clone();
            let body = body.clone();
            tokio::spawn(async move {
                for _ in 0..600 {
                    e.create(&user_cx(), "note", rec(json!({ "body": body })))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let wal = std::fs::metadata(dir.path().join("t.db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    let data = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    eprintln!("WAL high-water mark {wal} bytes, database file {data} bytes");
    // Without the restart the WAL holds every frame written since the start (80 MiB here);
    // with it, the high-water mark stays near the limit: 8 MiB plus what the writers append
    // between two checkpoint ticks (12 to 15 MiB measured).
    assert!(
        wal < 24 * 1024 * 1024,
        "the WAL grew to {wal} bytes (database file {data} bytes)"
    );
    let n = e
        .count(&user_cx(), "note", objectos_spec::query::Filter::True)
        .await
        .unwrap();
    assert_eq!(n, 3_600);
}
