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

use crate::support::{Backend, CONFIG, Server, fixture_app};
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
