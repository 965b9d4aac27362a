//! Group commit: concurrent writes on a SQLite file share transactions (one savepoint each), and
//! a member that fails or is cancelled takes nothing of the others down with it.

use std::sync::Arc;

use async_trait::async_trait;
use objectos_data::{DataEngine, DataError, Dialect, HookContext, Interceptor, Operation, Result};
use objectos_spec::query::QueryAst;
use serde_json::json;

use crate::hooks::Collect;
use crate::{CRM, for_each_backend, rec, user_cx};

/// Refuses, after its INSERT ran, every contact named `fail-*`; parks forever on `hang`.
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
    async fn after(&self, hook: &mut HookContext<'_>) -> Result<()> {
        let name = hook
            .result
            .as_deref()
            .and_then(|r| r.get("name"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
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
            let name = if i % 4 == 3 {
                format!("fail-{i:02}")
            } else {
                format!("ok-{i:02}")
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
            if name.starts_with("fail-") {
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
        assert_eq!(e.dispatch_pending(&sink).await.unwrap(), 36);
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
            // 36 successful creates queued together: they shared transactions.
            assert!(commits < 36, "{commits} commits for 36 grouped creates");
        } else {
            assert_eq!(commits, 36);
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
