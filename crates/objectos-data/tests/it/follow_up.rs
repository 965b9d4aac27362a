//! Follow-up writes (`create_with`, `update_with`): the caller's statements run in the
//! operation's transaction with the written record in hand, and commit or roll back with it,
//! on a SQLite file (group commit: neighbours in the same transaction are untouched) and on
//! PostgreSQL.

use std::future::Future;

use async_trait::async_trait;
use objectos_data::store::{Row, Sql, SqlValue, Store};
use objectos_data::{DataEngine, DataError, FollowUp, Record, Result, WriteTx};
use objectos_spec::query::{Filter, QueryAst};
use serde_json::{Value, json};

use crate::{for_each_backend, rec, user_cx};

const FILES: &[(&str, &str)] = &[(
    "ticket.object.yml",
    r#"
name: ticket
fields:
  title: { type: text }
  note_id: { type: text }
"#,
)];

/// Writes a row naming the record into `follow_note`, stores its id on the record (row and
/// returned record), then fails when told to: after its own statements ran (`fail`) or with a
/// statement the database refuses (`dup`: a note id that exists already).
struct Note {
    note: String,
    fail: bool,
}

#[async_trait]
impl FollowUp for Note {
    type Output = String;

    async fn run(self, tx: WriteTx<'_>, record: &mut Record) -> Result<String> {
        let id = record["id"].as_str().unwrap().to_owned();
        let d = tx.dialect();
        tx.execute(Sql::with(
            d,
            "INSERT INTO \"follow_note\" (\"id\", \"record_id\") VALUES (?, ?)",
            vec![self.note.as_str().into(), id.as_str().into()],
        )?)
        .await?;
        tx.execute(Sql::with(
            d,
            "UPDATE \"ticket\" SET \"note_id\" = ? WHERE \"id\" = ?",
            vec![self.note.as_str().into(), id.as_str().into()],
        )?)
        .await?;
        record.insert("note_id".into(), json!(self.note));
        if self.fail {
            return Err(DataError::Forbidden {
                object: "ticket".into(),
                message: format!("{} refused", self.note),
            });
        }
        Ok(format!("noted {}", self.note))
    }
}

fn note(name: &str, fail: bool) -> Note {
    Note {
        note: name.to_owned(),
        fail,
    }
}

/// Runs `f` on each backend with the `ticket` object and the follow-ups' table `follow_note`.
async fn with_tickets<F, Fut>(f: F)
where
    F: Fn(DataEngine) -> Fut,
    Fut: Future<Output = ()>,
{
    let f = &f;
    for_each_backend(FILES, move |e| async move {
        e.writer()
            .execute(Sql::with(
                e.dialect(),
                "CREATE TABLE \"follow_note\" (\"id\" TEXT PRIMARY KEY, \"record_id\" TEXT NOT NULL)",
                vec![],
            )
            .unwrap())
            .await
            .unwrap();
        f(e).await;
    })
    .await;
}

/// Creates ticket `title` with the follow-up `note(name, fail)`.
async fn create_noted(
    e: &DataEngine,
    title: &str,
    name: &str,
    fail: bool,
) -> Result<(Record, String)> {
    e.create_with(
        &user_cx(),
        "ticket",
        rec(json!({ "title": title })),
        note(name, fail),
    )
    .await
}

/// Renames ticket `id` to `changed` with the follow-up `Unnote { fail }`.
async fn rename_unnoted(e: &DataEngine, id: &str, fail: bool) -> Result<(Record, u64)> {
    e.update_with(
        &user_cx(),
        "ticket",
        id,
        rec(json!({"title": "changed"})),
        None,
        Unnote { fail },
    )
    .await
}

/// The rows of a query run on the writer (which sees every committed write).
async fn rows(e: &DataEngine, text: &str, values: Vec<SqlValue>) -> Vec<Row> {
    e.writer()
        .fetch_all(Sql::with(e.dialect(), text, values).unwrap())
        .await
        .unwrap()
}

async fn notes(e: &DataEngine) -> Vec<(String, String)> {
    rows(
        e,
        "SELECT \"id\", \"record_id\" FROM \"follow_note\" ORDER BY \"id\"",
        vec![],
    )
    .await
    .iter()
    .map(|r| (r.get::<String>(0).unwrap(), r.get::<String>(1).unwrap()))
    .collect()
}

async fn tickets(e: &DataEngine) -> Vec<Record> {
    let mut out = e
        .find(
            &user_cx(),
            "ticket",
            QueryAst {
                limit: Some(1000),
                ..QueryAst::default()
            },
        )
        .await
        .unwrap()
        .records;
    out.sort_by_key(|r| r["title"].as_str().unwrap_or_default().to_owned());
    out
}

/// Outbox rows (record events) written for `id`.
async fn events_of(e: &DataEngine, id: &str) -> Vec<Value> {
    rows(
        e,
        "SELECT \"payload\" FROM \"_objectos_outbox\" WHERE \"record_id\" = ? ORDER BY \"id\"",
        vec![id.into()],
    )
    .await
    .iter()
    .map(|r| serde_json::from_str(&r.get::<String>(0).unwrap()).unwrap())
    .collect()
}

#[tokio::test]
async fn follow_up_writes_commit_with_the_create_and_reach_its_event() {
    with_tickets(|e| async move {
        let (created, out) = create_noted(&e, "a", "n1", false).await.unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(out, "noted n1");
        assert_eq!(created["note_id"], json!("n1"));
        assert_eq!(notes(&e).await, vec![("n1".to_owned(), id.clone())]);
        let stored = e
            .get(&user_cx(), "ticket", &id, QueryAst::default())
            .await
            .unwrap();
        assert_eq!(stored["note_id"], json!("n1"));
        let events = events_of(&e, &id).await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["record"]["note_id"], json!("n1"));
    })
    .await;
}

#[tokio::test]
async fn a_failing_follow_up_leaves_nothing_written() {
    with_tickets(|e| async move {
        // The follow-up's own statements ran, then it refused: all of it goes.
        let err = create_noted(&e, "a", "n1", true).await.unwrap_err();
        assert!(
            matches!(err, DataError::Forbidden { ref message, .. } if message == "n1 refused"),
            "{err:?}"
        );
        assert!(tickets(&e).await.is_empty());
        assert!(notes(&e).await.is_empty());
        // A statement of the follow-up the database refuses (a note id taken by a committed
        // create): the error is the follow-up's, and its create is gone with it.
        create_noted(&e, "b", "n2", false).await.unwrap();
        let err = create_noted(&e, "c", "n2", false).await.unwrap_err();
        assert_eq!(err.code(), "DUPLICATE_VALUE", "{err:?}");
        let left = tickets(&e).await;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0]["title"], json!("b"));
        let b = left[0]["id"].as_str().unwrap().to_owned();
        assert_eq!(notes(&e).await, vec![("n2".to_owned(), b.clone())]);
        // No event for what was rolled back: only b's.
        let pending = rows(
            &e,
            "SELECT \"record_id\" FROM \"_objectos_outbox\" WHERE \"object\" = 'ticket'",
            vec![],
        )
        .await;
        let ids: Vec<String> = pending.iter().map(|r| r.get(0).unwrap()).collect();
        assert_eq!(ids, vec![b]);
        // Writes go on normally afterwards.
        create_noted(&e, "d", "n3", false).await.unwrap();
        assert_eq!(tickets(&e).await.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn concurrent_creates_keep_their_follow_ups_apart() {
    // On a SQLite file these share group-committed transactions: a member whose follow-up
    // fails takes only its own record and rows back.
    with_tickets(|e| async move {
        let tasks: Vec<_> = (0..24)
            .map(|i| {
                let e = e.clone();
                tokio::spawn(async move {
                    create_noted(&e, &format!("t{i:02}"), &format!("n{i:02}"), i % 3 == 0)
                        .await
                        .map(|(r, _)| r)
                })
            })
            .collect();
        let mut kept = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            match t.await.unwrap() {
                Ok(r) => {
                    assert_ne!(i % 3, 0);
                    kept.push((format!("n{i:02}"), r["id"].as_str().unwrap().to_owned()));
                }
                Err(err) => {
                    assert_eq!(i % 3, 0, "{err:?}");
                }
            }
        }
        assert_eq!(kept.len(), 16);
        assert_eq!(notes(&e).await, kept);
        let titles: Vec<String> = tickets(&e)
            .await
            .iter()
            .map(|r| r["title"].as_str().unwrap().to_owned())
            .collect();
        let expected: Vec<String> = (0..24)
            .filter(|i| i % 3 != 0)
            .map(|i| format!("t{i:02}"))
            .collect();
        assert_eq!(titles, expected);
    })
    .await;
}

/// Deletes the record's note, then fails when told to.
struct Unnote {
    fail: bool,
}

#[async_trait]
impl FollowUp for Unnote {
    type Output = u64;

    async fn run(self, tx: WriteTx<'_>, record: &mut Record) -> Result<u64> {
        let id = record["id"].as_str().unwrap().to_owned();
        let n = tx
            .execute(Sql::with(
                tx.dialect(),
                "DELETE FROM \"follow_note\" WHERE \"record_id\" = ?",
                vec![id.as_str().into()],
            )?)
            .await?;
        if self.fail {
            return Err(DataError::Forbidden {
                object: "ticket".into(),
                message: "unnote refused".into(),
            });
        }
        Ok(n)
    }
}

#[tokio::test]
async fn follow_up_writes_commit_and_roll_back_with_an_update() {
    with_tickets(|e| async move {
        let (created, _) = create_noted(&e, "a", "n1", false).await.unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        let err = rename_unnoted(&e, &id, true).await.unwrap_err();
        assert!(matches!(err, DataError::Forbidden { .. }), "{err:?}");
        assert_eq!(tickets(&e).await[0]["title"], json!("a"));
        assert_eq!(notes(&e).await.len(), 1);
        assert_eq!(events_of(&e, &id).await.len(), 1);
        let (updated, removed) = rename_unnoted(&e, &id, false).await.unwrap();
        assert_eq!(removed, 1);
        assert_eq!(updated["title"], json!("changed"));
        assert!(notes(&e).await.is_empty());
        assert_eq!(
            e.count(&user_cx(), "ticket", Filter::eq("title", "changed"))
                .await
                .unwrap(),
            1
        );
        assert_eq!(events_of(&e, &id).await.len(), 2);
    })
    .await;
}
