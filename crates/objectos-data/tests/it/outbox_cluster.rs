//! The outbox dispatcher with several servers on one PostgreSQL database: two engines on one
//! schema, each dispatching to its own sink, publish every event once and each record's events in
//! order; rows a dead node claimed come back after the lease; an outbox made before claims gets
//! the claim columns from the migration plan. PostgreSQL only (SQLite is one process per file):
//! the tests print a skip note without OBJECTOS_TEST_POSTGRES_URL.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use objectos_data::{DataConfig, DataEngine, EventSink};
use objectos_spec::Event;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use crate::{open, pg_drop, pg_schema, pg_url, rec, user_cx};

const ITEM: &[(&str, &str)] = &[(
    "item.object.yml",
    "name: item\nfields:\n  name: { type: text }\n  n: { type: number, scale: 0 }\n",
)];

/// One node's sink. Every publish takes a number from a counter shared by all nodes, so the
/// events of both sinks can be put back in the order they were published in.
struct Node {
    clock: Arc<AtomicU64>,
    seen: Mutex<Vec<(u64, Event)>>,
}

impl Node {
    fn new(clock: Arc<AtomicU64>) -> Self {
        Self {
            clock,
            seen: Mutex::new(Vec::new()),
        }
    }

    fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn events(&self) -> Vec<(u64, Event)> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait]
impl EventSink for Node {
    async fn publish(&self, event: Event) -> std::result::Result<(), String> {
        // Numbered under the lock, so a sink's list is in number order too.
        let mut seen = self.seen.lock().unwrap();
        let n = self.clock.fetch_add(1, Ordering::SeqCst);
        seen.push((n, event));
        Ok(())
    }
}

/// A node that dies while publishing: it says it got the batch, then never returns.
#[derive(Default)]
struct Hang {
    entered: tokio::sync::Notify,
}

#[async_trait]
impl EventSink for Hang {
    async fn publish(&self, _event: Event) -> std::result::Result<(), String> {
        self.entered.notify_one();
        std::future::pending::<()>().await;
        Ok(())
    }
}

fn skip() {
    eprintln!("PostgreSQL skipped: set OBJECTOS_TEST_POSTGRES_URL to run the outbox cluster tests");
}

/// `record.n` of an event (the record's version in these tests).
fn version(e: &Event) -> i64 {
    e.payload["record"]["n"]
        .as_f64()
        .map(|n| n as i64)
        .unwrap_or(-1)
}

async fn scalar(e: &DataEngine, sql: &str) -> i64 {
    let conn = e.connection();
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

const UNDELIVERED: &str =
    "SELECT COUNT(*)::bigint FROM \"_objectos_outbox\" WHERE \"dispatched_at\" IS NULL";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(objectos_pg),
    ignore = "needs PostgreSQL: set OBJECTOS_TEST_POSTGRES_URL"
)]
async fn two_engines_on_one_postgres_schema_publish_each_event_once_in_record_order() {
    let Some(base) = pg_url() else {
        return skip();
    };
    let (url, schema) = pg_schema(&base).await;
    let (a, _da) = open(&url, ITEM).await;
    let (b, _db) = open(&url, ITEM).await;
    let clock = Arc::new(AtomicU64::new(0));
    let sinks = [
        Arc::new(Node::new(clock.clone())),
        Arc::new(Node::new(clock.clone())),
    ];
    let handles = [
        a.start_dispatcher(sinks[0].clone()),
        b.start_dispatcher(sinks[1].clone()),
    ];

    // Every record is created through one engine and updated through both in turn, one version
    // after the other, while the other records are written concurrently.
    const RECORDS: usize = 24;
    const VERSIONS: usize = 6;
    let mut tasks = tokio::task::JoinSet::new();
    for r in 0..RECORDS {
        let engines = [a.clone(), b.clone()];
        tasks.spawn(async move {
            let cx = user_cx();
            let created = engines[r % 2]
                .create(&cx, "item", rec(json!({"name": format!("r{r}"), "n": 0})))
                .await
                .unwrap();
            let id = created["id"].as_str().unwrap().to_owned();
            for v in 1..VERSIONS {
                engines[(r + v) % 2]
                    .update(&cx, "item", &id, rec(json!({"n": v})), None)
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }

    let expected = RECORDS * VERSIONS;
    let deadline = Instant::now() + Duration::from_secs(60);
    while sinks.iter().map(|s| s.len()).sum::<usize>() < expected
        || scalar(&a, UNDELIVERED).await > 0
    {
        assert!(
            Instant::now() < deadline,
            "only {} of {expected} events were published",
            sinks.iter().map(|s| s.len()).sum::<usize>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for h in handles {
        h.stop().await;
    }
    // Nothing is left for either node.
    assert_eq!(a.dispatch_pending(sinks[0].as_ref()).await.unwrap(), 0);
    assert_eq!(b.dispatch_pending(sinks[1].as_ref()).await.unwrap(), 0);

    let mut all: Vec<(u64, Event)> = sinks.iter().flat_map(|s| s.events()).collect();
    all.sort_by_key(|(n, _)| *n);
    eprintln!(
        "published by node a: {}, by node b: {}",
        sinks[0].len(),
        sinks[1].len()
    );
    assert_eq!(all.len(), expected, "every write's event, once");
    let ids: HashSet<&str> = all.iter().map(|(_, e)| e.id.as_str()).collect();
    assert_eq!(ids.len(), expected, "an event was published twice");
    // Per record, in publication order (across both nodes): created, then each update in turn.
    let mut per_record: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for (_, e) in &all {
        per_record
            .entry(e.payload["recordId"].as_str().unwrap().to_owned())
            .or_default()
            .push((e.name.clone(), version(e)));
    }
    assert_eq!(per_record.len(), RECORDS);
    for (id, seen) in per_record {
        let want: Vec<(String, i64)> = (0..VERSIONS)
            .map(|v| {
                let name = if v == 0 {
                    "data.item.created"
                } else {
                    "data.item.updated"
                };
                (name.to_owned(), v as i64)
            })
            .collect();
        assert_eq!(seen, want, "events of record {id} out of order");
    }

    a.connection().clone().close().await.ok();
    b.connection().clone().close().await.ok();
    pg_drop(&base, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(objectos_pg),
    ignore = "needs PostgreSQL: set OBJECTOS_TEST_POSTGRES_URL"
)]
async fn a_claim_left_by_a_dead_node_is_taken_over_after_its_lease() {
    let Some(base) = pg_url() else {
        return skip();
    };
    let (url, schema) = pg_schema(&base).await;
    let (a, _da) = open(&url, ITEM).await;
    let (b, _db) = open(&url, ITEM).await;
    let cx = user_cx();
    let create = |e: &DataEngine, name: &str| {
        let (e, cx, name) = (e.clone(), cx.clone(), name.to_owned());
        async move {
            let r = e
                .create(&cx, "item", rec(json!({"name": name, "n": 0})))
                .await
                .unwrap();
            r["id"].as_str().unwrap().to_owned()
        }
    };
    let x = create(&a, "x").await;
    a.update(&cx, "item", &x, rec(json!({"n": 1})), None)
        .await
        .unwrap();
    create(&a, "y").await;

    // Node a claims the three rows and dies while publishing them.
    let hang = Arc::new(Hang::default());
    let dying = tokio::spawn({
        let (a, hang) = (a.clone(), hang.clone());
        async move {
            let _ = a.dispatch_pending(hang.as_ref()).await;
        }
    });
    hang.entered.notified().await;
    dying.abort();
    let _ = dying.await;
    let claimed = "SELECT COUNT(*)::bigint FROM \"_objectos_outbox\" WHERE \"dispatched_at\" IS NULL AND \"claimed_until\" > now()";
    assert_eq!(scalar(&a, claimed).await, 3);

    // While a's lease holds, b publishes only what a does not hold: not y, and not x's next
    // event either, which would overtake x's first two.
    b.update(&cx, "item", &x, rec(json!({"n": 2})), None)
        .await
        .unwrap();
    create(&b, "z").await;
    let sink = Node::new(Arc::new(AtomicU64::new(0)));
    assert_eq!(b.dispatch_pending(&sink).await.unwrap(), 1);
    let names: Vec<String> = sink
        .events()
        .iter()
        .map(|(_, e)| e.payload["record"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["z"]);
    assert_eq!(b.dispatch_pending(&sink).await.unwrap(), 0);

    // The lease runs out (the clock moved instead of sleeping 30 s): b takes everything over,
    // x's events still in order.
    b.connection()
        .execute_unprepared("UPDATE \"_objectos_outbox\" SET \"claimed_until\" = \"claimed_until\" - interval '1 hour' WHERE \"claimed_until\" IS NOT NULL")
        .await
        .unwrap();
    assert_eq!(b.dispatch_pending(&sink).await.unwrap(), 4);
    let seen: Vec<(String, i64)> = sink
        .events()
        .iter()
        .map(|(_, e)| {
            (
                e.payload["recordId"].as_str().unwrap().to_owned(),
                version(e),
            )
        })
        .collect();
    let of_x: Vec<i64> = seen
        .iter()
        .filter(|(r, _)| *r == x)
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(of_x, [0, 1, 2]);
    assert_eq!(seen.len(), 5);
    assert_eq!(scalar(&b, UNDELIVERED).await, 0);

    a.connection().clone().close().await.ok();
    b.connection().clone().close().await.ok();
    pg_drop(&base, &schema).await;
}

#[tokio::test]
#[cfg_attr(
    not(objectos_pg),
    ignore = "needs PostgreSQL: set OBJECTOS_TEST_POSTGRES_URL"
)]
async fn an_outbox_made_before_claims_gets_the_claim_columns_from_the_plan() {
    let Some(base) = pg_url() else {
        return skip();
    };
    let (url, schema) = pg_schema(&base).await;
    let (e, dir) = open(&url, ITEM).await;
    // Back to what DDL version 3 made: no claim columns, no per-record index.
    e.connection()
        .execute_unprepared(
            "ALTER TABLE \"_objectos_outbox\" DROP COLUMN \"claimed_by\", DROP COLUMN \"claimed_until\"; \
             DROP INDEX \"ix__objectos_outbox_record\"; \
             UPDATE \"_objectos_schema\" SET \"hash\" = '3' WHERE \"object\" = '__objectos_ddl'",
        )
        .await
        .unwrap();
    e.connection().clone().close().await.ok();
    drop(e);
    let config = |auto_migrate| DataConfig {
        database_url: url.clone(),
        metadata_dirs: vec![dir.path().to_path_buf()],
        include_base: false,
        max_connections: 2,
        auto_migrate,
        owned: Vec::new(),
    };

    // What `objectos migrate --dry-run` prints.
    let e = DataEngine::open(config(false)).await.unwrap();
    let plan = e.plan_migration().await.unwrap().to_string();
    assert!(
        plan.contains(
            "ALTER TABLE \"_objectos_outbox\" ADD COLUMN IF NOT EXISTS \"claimed_by\" TEXT;"
        ),
        "{plan}"
    );
    assert!(
        plan.contains("ADD COLUMN IF NOT EXISTS \"claimed_until\" TIMESTAMPTZ;"),
        "{plan}"
    );
    assert!(
        plan.contains("CREATE INDEX IF NOT EXISTS \"ix__objectos_outbox_record\""),
        "{plan}"
    );
    assert_eq!(plan.lines().count(), 3, "{plan}");
    e.connection().clone().close().await.ok();
    drop(e);

    // A start migrates once (the DDL version changed), then the plan is empty and rows written
    // before the upgrade are claimed and published.
    let e = DataEngine::open(config(true)).await.unwrap();
    assert!(e.plan_migration().await.unwrap().is_empty());
    e.create(&user_cx(), "item", rec(json!({"name": "after"})))
        .await
        .unwrap();
    let sink = Node::new(Arc::new(AtomicU64::new(0)));
    assert_eq!(e.dispatch_pending(&sink).await.unwrap(), 1);
    e.connection().clone().close().await.ok();
    pg_drop(&base, &schema).await;
}
