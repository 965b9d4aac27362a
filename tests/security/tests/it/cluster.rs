//! Two `objectos serve` processes on one PostgreSQL database (one schema): records written
//! through both, each record's versions through both in turn, and every outbox event is
//! published by exactly one of them, each record's events in the order they were written.
//! On SQLite (one process per database file) the same writes go through one server, which
//! publishes each event once.
//!
//! What a node published is read from its log: the data engine logs every event its
//! dispatcher hands to the bus at TRACE under the target `objectos_data::outbox` (off unless
//! asked for, as here with `OBJECTOS_LOG=debug,objectos_data::outbox=trace`), with the event id,
//! the event name, the object, the record id and the outbox row id.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Backend, CONFIG, Server, User, fixture_app, refused};
use crate::world::id;

/// The suite's log level plus the dispatcher's per-event line.
const TRACE_OUTBOX: &[(&str, &str)] = &[("OBJECTOS_LOG", "debug,objectos_data::outbox=trace")];

const RECORDS: usize = 12;
const VERSIONS: usize = 4;

/// One "Outbox event published." line.
#[derive(Debug, Clone)]
struct Published {
    /// The line's timestamp (RFC 3339, fixed width, so it sorts as text), then which node and
    /// where in its log: the order the events were handed to the buses in.
    at: (String, usize, usize),
    event_id: String,
    event: String,
    object: String,
    record_id: String,
    outbox_id: i64,
}

/// Every event `node`'s log says its dispatcher published.
fn published(log: &str, node: usize) -> Vec<Published> {
    log.lines()
        .enumerate()
        .filter(|(_, l)| l.contains("Outbox event published."))
        .map(|(n, line)| {
            let field = |key: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{key}=")))
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_owned()
            };
            Published {
                at: (
                    line.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                    node,
                    n,
                ),
                event_id: field("event_id"),
                event: field("event"),
                object: field("object"),
                record_id: field("record_id"),
                outbox_id: field("outbox_id").parse().unwrap_or(-1),
            }
        })
        .collect()
}

pub(crate) async fn run(b: &Backend) {
    let first = Server::start_with(b, &fixture_app(), CONFIG, None, TRACE_OUTBOX).await;
    let label = first.label;
    // The second node starts once the first has created and migrated the schema.
    let second = match b {
        Backend::Postgres(_) => {
            Some(Server::start_with(b, &fixture_app(), CONFIG, Some(&first), TRACE_OUTBOX).await)
        }
        Backend::Sqlite | Backend::SqliteFile(_) => None,
    };
    let nodes: Vec<&Server> = std::iter::once(&first).chain(second.as_ref()).collect();
    // A session is a database row: the owner's token works on every node.
    let owner = first.sign_up("owner", "Owner-Passw0rd-c71").await;

    let mut tasks = tokio::task::JoinSet::new();
    for r in 0..RECORDS {
        let apis: Vec<_> = nodes.iter().map(|n| n.api).collect();
        let token = owner.token.clone();
        tasks.spawn(async move {
            let on = |v: usize| apis[(r + v) % apis.len()];
            let created = on(0)
                .post(
                    "/api/v1/data/memo",
                    Some(&token),
                    json!({"title": format!("m{r} v0")}),
                )
                .await;
            let memo = id(&created);
            for v in 1..VERSIONS {
                let r2 = on(v)
                    .patch(
                        &format!("/api/v1/data/memo/{memo}"),
                        Some(&token),
                        json!({"title": format!("m{r} v{v}")}),
                    )
                    .await;
                assert_eq!(r2.status, 200, "{}: {}", r2.what, r2.text);
            }
            memo
        });
    }
    let mut memos = HashSet::new();
    while let Some(done) = tasks.join_next().await {
        memos.insert(done.unwrap());
    }

    // Every memo event shows up in some node's log (the dispatchers run after commit).
    let expected = RECORDS * VERSIONS;
    let deadline = Instant::now() + Duration::from_secs(60);
    let all = loop {
        let all: Vec<Published> = nodes
            .iter()
            .enumerate()
            .flat_map(|(n, s)| published(&s.log_text(), n))
            .collect();
        let of_memos = all.iter().filter(|p| memos.contains(&p.record_id)).count();
        if of_memos >= expected {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "[{label}] {of_memos} of {expected} memo events were published:\n{}",
            first.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Once: no event id twice, across every node and every object (sign-up's events too).
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for p in &all {
        *seen.entry(p.event_id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "[{label}] published more than once: {twice:?}"
    );
    assert!(
        all.iter().all(|p| !p.event_id.is_empty()),
        "[{label}] {all:?}"
    );
    let per_node: Vec<usize> = (0..nodes.len())
        .map(|n| all.iter().filter(|p| p.at.1 == n).count())
        .collect();
    eprintln!("[{label}] events published per node: {per_node:?}");

    // Per memo, in publication order: its creation, then its updates in the order written
    // (outbox row ids grow with each committed write of one record).
    let mut per_memo: BTreeMap<&str, Vec<&Published>> = BTreeMap::new();
    for p in all.iter().filter(|p| memos.contains(&p.record_id)) {
        per_memo.entry(p.record_id.as_str()).or_default().push(p);
    }
    assert_eq!(per_memo.len(), RECORDS, "[{label}]");
    for (memo, mut events) in per_memo {
        events.sort_by(|a, b| a.at.cmp(&b.at));
        let names: Vec<&str> = events.iter().map(|p| p.event.as_str()).collect();
        let mut want = vec!["data.memo.created"];
        want.extend(std::iter::repeat_n("data.memo.updated", VERSIONS - 1));
        assert_eq!(names, want, "[{label}] memo {memo}: {events:?}");
        assert!(
            events.iter().all(|p| p.object == "memo"),
            "[{label}] {events:?}"
        );
        assert!(
            events.windows(2).all(|w| w[0].outbox_id < w[1].outbox_id),
            "[{label}] memo {memo} published out of order: {events:?}"
        );
    }
}

/// One "Event received from another node." line of the cluster plugin (TRACE, target
/// `objectos_cluster::inbound`).
#[derive(Debug, Clone)]
struct Received {
    event_id: String,
    event: String,
    from: String,
}

fn received(log: &str) -> Vec<Received> {
    log.lines()
        .filter(|l| l.contains("Event received from another node."))
        .map(|line| {
            let field = |key: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{key}=")))
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_owned()
            };
            Received {
                event_id: field("event_id"),
                event: field("event"),
                from: field("from"),
            }
        })
        .collect()
}

/// Two nodes sharing PostgreSQL and Redis: the suite's configuration with sessions cached for
/// 30 s (so only a cross-node invalidation can make a revocation show within a second) and an
/// event stream of the test's own.
pub(crate) struct RedisPair {
    pub(crate) nodes: [Server; 2],
    stream: String,
    redis_url: String,
}

const NODE_IDS: [&str; 2] = ["node-1", "node-2"];

impl RedisPair {
    pub(crate) async fn start(pg_base: &str, redis_url: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let stream = format!("objectos-test:{}-{nanos}:events", std::process::id());
        let config = format!(
            "{}events:\n  stream: \"{stream}\"\n  maxLen: 10000\n",
            CONFIG.replace("sessionCacheSeconds: 1", "sessionCacheSeconds: 30")
        );
        let backend = Backend::Postgres(pg_base.to_owned());
        let env = |node: &'static str| {
            [
                (
                    "OBJECTOS_LOG",
                    "debug,objectos_data::outbox=trace,objectos_cluster::inbound=trace",
                ),
                ("OBJECTOS_REDIS_URL", redis_url),
                ("OBJECTOS_NODE_ID", node),
            ]
        };
        let first =
            Server::start_with(&backend, &fixture_app(), &config, None, &env(NODE_IDS[0])).await;
        let second = Server::start_with(
            &backend,
            &fixture_app(),
            &config,
            Some(&first),
            &env(NODE_IDS[1]),
        )
        .await;
        Self {
            nodes: [first, second],
            stream,
            redis_url: redis_url.to_owned(),
        }
    }
}

impl Drop for RedisPair {
    fn drop(&mut self) {
        // Best effort: a leftover stream only costs memory in the test Redis.
        let (url, key) = (self.redis_url.clone(), self.stream.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(client) = deadpool_redis::redis::Client::open(url)
                && let Ok(mut conn) = client.get_connection()
            {
                let _: deadpool_redis::redis::RedisResult<i64> =
                    deadpool_redis::redis::cmd("DEL").arg(&key).query(&mut conn);
            }
        })
        .join();
    }
}

/// Polls `/health` until the cluster plugin of `node` reports Redis connected; returns its report.
async fn wait_connected(node: &Server) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = node.api.get("/health", None).await;
        let plugin = r.body["plugins"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["id"] == "com.objectos.cluster"))
            .cloned()
            .unwrap_or_default();
        if plugin["details"]["backend"] == "redis" && plugin["details"]["state"] == "connected" {
            return plugin;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster plugin never connected: {}\n{}",
            r.text,
            node.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Events of writes through both nodes reach the other node over Redis, each exactly once and
/// never back to the node that published it; health and discovery say the bus runs on Redis.
pub(crate) async fn events_over_redis(pair: &RedisPair) -> User {
    let [first, second] = &pair.nodes;
    for (node, id) in pair.nodes.iter().zip(NODE_IDS) {
        let plugin = wait_connected(node).await;
        assert_eq!(plugin["details"]["nodeId"], id, "{plugin}");
        assert_eq!(
            plugin["details"]["stream"],
            pair.stream.as_str(),
            "{plugin}"
        );
        let d = node.api.get("/api/v1/discovery", None).await;
        assert_eq!(d.status, 200, "{}", d.text);
        let bus = &d.body["eventBus"];
        assert_eq!(bus["backend"], "redis", "{}", d.text);
        assert_eq!(bus["state"], "connected", "{}", d.text);
        assert_eq!(bus["provider"], "com.objectos.cluster", "{}", d.text);
    }

    let owner = first.sign_up("owner", "Owner-Passw0rd-c71").await;
    let mut memos = HashSet::new();
    for r in 0..RECORDS {
        let node = &pair.nodes[r % 2];
        let created = node
            .api
            .post(
                "/api/v1/data/memo",
                Some(&owner.token),
                json!({"title": format!("r{r}")}),
            )
            .await;
        let memo = id(&created);
        let other = &pair.nodes[(r + 1) % 2];
        let r2 = other
            .api
            .patch(
                &format!("/api/v1/data/memo/{memo}"),
                Some(&owner.token),
                json!({"title": format!("r{r} v1")}),
            )
            .await;
        assert_eq!(r2.status, 200, "{}: {}", r2.what, r2.text);
        memos.insert(memo);
    }

    // Every memo event: published by one node's dispatcher (outbox trace), received by the
    // other node over Redis (cluster trace), and never by the node that published it.
    let expected = RECORDS * 2;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = [first.log_text(), second.log_text()];
        let published: Vec<Published> = logs
            .iter()
            .enumerate()
            .flat_map(|(n, log)| published(log, n))
            .filter(|p| memos.contains(&p.record_id))
            .collect();
        let got: [Vec<Received>; 2] = [received(&logs[0]), received(&logs[1])];
        let missing: Vec<&Published> = published
            .iter()
            .filter(|p| {
                let other = 1 - p.at.1;
                !got[other].iter().any(|r| r.event_id == p.event_id)
            })
            .collect();
        if published.len() == expected && missing.is_empty() {
            for (n, list) in got.iter().enumerate() {
                // No echo: a node receives only what the other node wrote.
                assert!(
                    list.iter().all(|r| r.from == NODE_IDS[1 - n]),
                    "node {n} received its own events: {list:?}"
                );
                let mut once: HashMap<&str, usize> = HashMap::new();
                for r in list {
                    *once.entry(r.event_id.as_str()).or_default() += 1;
                }
                let twice: Vec<_> = once.iter().filter(|(_, c)| **c > 1).collect();
                assert!(twice.is_empty(), "node {n} received twice: {twice:?}");
            }
            for p in &published {
                let other = 1 - p.at.1;
                let r = got[other]
                    .iter()
                    .find(|r| r.event_id == p.event_id)
                    .unwrap();
                assert_eq!(r.event, p.event, "{p:?} / {r:?}");
            }
            let per_node: Vec<usize> = (0..2)
                .map(|n| published.iter().filter(|p| p.at.1 == n).count())
                .collect();
            eprintln!(
                "[redis] memo events published per node {per_node:?}, each received by the other"
            );
            return owner;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {expected} memo events published, {} not received by the other node: {missing:?}",
            published.len(),
            missing.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A session signed out on node 1 is refused on node 2 within a second, although node 2 has
/// it cached for 30 s: only the cache's invalidation over Redis can make that happen.
pub(crate) async fn revocation_over_redis(pair: &RedisPair, owner: &User) {
    let [first, second] = &pair.nodes;
    let token = first.sign_in(owner).await;
    // Node 2 resolves (and caches) the session.
    for _ in 0..2 {
        let r = second.api.get("/api/v1/data/memo", Some(&token)).await;
        assert_eq!(r.status, 200, "{}: {}", r.what, r.text);
    }
    let out = first
        .api
        .post("/api/v1/auth/sign-out", Some(&token), json!({}))
        .await;
    assert_eq!(out.status, 200, "{}: {}", out.what, out.text);
    let signed_out = Instant::now();
    // The bound is the requirement (issue 13: within a second), so it is what the loop allows.
    loop {
        let r = second.api.get("/api/v1/data/memo", Some(&token)).await;
        if r.status == 401 {
            refused(&r, 401, "UNAUTHENTICATED");
            break;
        }
        assert!(
            signed_out.elapsed() < Duration::from_secs(1),
            "node 2 still accepts a session signed out on node 1 {:?} ago: {} {}",
            signed_out.elapsed(),
            r.status,
            r.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "[redis] a sign-out on node 1 was refused on node 2 after {:?}",
        signed_out.elapsed()
    );
}
