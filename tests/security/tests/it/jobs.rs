//! Background jobs across two `objectos serve` processes on one PostgreSQL schema, driven from
//! outside only: jobs are enqueued through `POST /api/v1/jobs` on both nodes for the built-in
//! `http.request` handler, which posts to a small HTTP receiver in the test (allowed through
//! `jobs.http.allowHosts`), and a `*.job.yml` schedule fires every second on both nodes.
//!
//! Checked, once with the embedded backend and once through RabbitMQ: each tick of the
//! schedule reaches the receiver once; 1,000 jobs enqueued through both nodes all complete and
//! each reaches the receiver once; a node killed with SIGKILL while its jobs run loses none
//! (they complete on the other node once their lease ran out, and the schedule keeps ticking).
//!
//! Also here: two nodes started at the same moment on an empty PostgreSQL schema (the
//! cluster-wide migration lock), and who may read job runs (administrators only, over
//! `/api/v1/data/sys_job_run` and `/api/v1/jobs`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Api, Backend, CONFIG, Server, User, fixture_app, refused};

/// One request the receiver got: its path and JSON body.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    body: Value,
}

/// An HTTP/1.1 receiver on loopback that records every request and answers 204; requests to
/// `/slow/...` are answered after [`SLOW`], so their jobs are still running when a node dies.
struct Receiver {
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
    task: tokio::task::JoinHandle<()>,
}

const SLOW: Duration = Duration::from_millis(300);

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Hit> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, mut body) = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break (
                String::from_utf8_lossy(&buf[..at]).into_owned(),
                buf[at + 4..].to_vec(),
            );
        }
    };
    let len: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while body.len() < len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Some(Hit {
        path,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let sink = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let Some(hit) = read_request(&mut stream).await else {
                        return;
                    };
                    let slow = hit.path.starts_with("/slow");
                    sink.lock().unwrap().push(hit);
                    if slow {
                        tokio::time::sleep(SLOW).await;
                    }
                    let _ = stream
                        .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                        .await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Receiver { port, hits, task }
    }

    /// How often each `n` of the bodies sent to paths under `prefix` arrived.
    fn counts(&self, prefix: &str, key: &str) -> BTreeMap<i64, usize> {
        let mut out = BTreeMap::new();
        for h in self.hits.lock().unwrap().iter() {
            if h.path.starts_with(prefix)
                && let Some(n) = h.body[key].as_i64()
            {
                *out.entry(n).or_default() += 1;
            }
        }
        out
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Which job backend a pair runs.
#[derive(Debug, Clone)]
pub(crate) enum JobBackend {
    Embedded,
    /// The AMQP URL (`OBJECTOS_TEST_AMQP_URL`).
    Rabbitmq(String),
}

const NODE_IDS: [&str; 2] = ["node-1", "node-2"];
const BULK: i64 = 1000;
const SLOW_JOBS: i64 = 100;

/// Two nodes on one PostgreSQL schema with a schedule ticking every second; node 1 owns the
/// schema, so node 2 is the one killed.
struct JobsPair {
    first: Server,
    second: Option<Server>,
    rx: Receiver,
    _meta: tempfile::TempDir,
    /// Deletes the RabbitMQ run's exchanges and queues once the servers above are gone, also
    /// when the test fails (fields drop in order).
    _broker: Option<objectos_jobs::amqp::TopologyCleanup>,
}

impl JobsPair {
    async fn start(pg: &str, backend: &JobBackend) -> JobsPair {
        let rx = Receiver::start().await;
        let meta = tempfile::tempdir().unwrap();
        copy_dir(&fixture_app(), meta.path());
        std::fs::write(
            meta.path().join("tick.job.yml"),
            format!(
                "name: tick\nschedule: '* * * * * *'\nhandler: http.request\npayload:\n  url: http://127.0.0.1:{}/tick\n",
                rx.port
            ),
        )
        .unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let (backend_yml, amqp, broker) = match backend {
            JobBackend::Embedded => (String::new(), None, None),
            JobBackend::Rabbitmq(url) => {
                let prefix = format!("objectos-test-{}-{nanos:x}", std::process::id());
                (
                    format!("  backend: rabbitmq\n  rabbitmq: {{ prefix: \"{prefix}\" }}\n"),
                    Some(url.clone()),
                    Some(objectos_jobs::amqp::TopologyCleanup::new(
                        url,
                        &prefix,
                        &["default", "bulk", "slow"],
                    )),
                )
            }
        };
        // A short lease so a killed node's jobs come back quickly.
        let config = format!(
            "{CONFIG}jobs:\n{backend_yml}  leaseMs: 2000\n  pollIntervalMs: 100\n  queues: {{ bulk: {{ workers: 16 }}, slow: {{ workers: 16 }} }}\n  http:\n    allowHosts: [\"127.0.0.1:{}\"]\n",
            rx.port
        );
        let pg_backend = Backend::Postgres(pg.to_owned());
        let env = |node: &'static str| {
            let mut env = vec![("OBJECTOS_NODE_ID", node)];
            if let Some(url) = &amqp {
                env.push(("OBJECTOS_AMQP_URL", url.as_str()));
            }
            env
        };
        let first =
            Server::start_with(&pg_backend, meta.path(), &config, None, &env(NODE_IDS[0])).await;
        let second = Server::start_with(
            &pg_backend,
            meta.path(),
            &config,
            Some(&first),
            &env(NODE_IDS[1]),
        )
        .await;
        JobsPair {
            first,
            second: Some(second),
            rx,
            _meta: meta,
            _broker: broker,
        }
    }

    fn apis(&self) -> Vec<Api> {
        std::iter::once(&self.first)
            .chain(self.second.as_ref())
            .map(|s| s.api)
            .collect()
    }

    fn logs(&self) -> String {
        let mut out = format!("--- node 1\n{}", tail(&self.first.log_text()));
        if let Some(s) = &self.second {
            out.push_str(&format!("--- node 2\n{}", tail(&s.log_text())));
        }
        out
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n") + "\n"
}

/// Enqueues `count` `http.request` jobs to `queue`, posting `{n}` to `path`, through the
/// nodes in turn, 16 at a time.
async fn enqueue_many(apis: &[Api], token: &str, queue: &str, path: &str, port: u16, count: i64) {
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..count {
        let api = apis[usize::try_from(n).unwrap() % apis.len()];
        let token = token.to_owned();
        let body = json!({"handler": "http.request", "queue": queue,
            "payload": {"url": format!("http://127.0.0.1:{port}{path}/{n}"), "body": {"n": n}}});
        tasks.spawn(async move {
            let r = api.post("/api/v1/jobs", Some(&token), body).await;
            assert_eq!(r.status, 200, "{}: {}", r.what, r.text);
            assert_eq!(r.body["created"], true, "{}", r.text);
        });
        if tasks.len() >= 16 {
            tasks.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

async fn total(api: Api, token: &str, query: &str) -> u64 {
    let r = api
        .get(&format!("/api/v1/jobs?limit=1&{query}"), Some(token))
        .await;
    assert_eq!(r.status, 200, "{}: {}", r.what, r.text);
    r.body["total"].as_u64().unwrap()
}

/// Waits (bounded) until `done` holds.
async fn wait_for(pair: &JobsPair, what: &str, secs: u64, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "{what} (not within {secs} s)\n{}",
            pair.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each tick seen so far arrived once.
#[track_caller]
fn ticks_once(pair: &JobsPair, label: &str) -> usize {
    let ticks = pair.rx.counts("/tick", "tick");
    let twice: Vec<_> = ticks.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        twice.is_empty(),
        "[{label}] ticks delivered more than once: {twice:?}"
    );
    ticks.len()
}

pub(crate) async fn two_nodes(pg: &str, backend: JobBackend) {
    let label = match &backend {
        JobBackend::Embedded => "embedded",
        JobBackend::Rabbitmq(_) => "rabbitmq",
    };
    let mut pair = JobsPair::start(pg, &backend).await;
    let owner: User = pair.first.sign_up("owner", "Owner-Passw0rd-c71").await;
    let token = owner.token.clone();
    let apis = pair.apis();
    let port = pair.rx.port;

    // (a) The schedule: every tick once, though both nodes run a scheduler.
    wait_for(&pair, "five ticks arrive", 60, async || {
        pair.rx.counts("/tick", "tick").len() >= 5
    })
    .await;
    ticks_once(&pair, label);

    // (b) 1,000 jobs enqueued through both nodes: all complete, each delivered once.
    enqueue_many(&apis, &token, "bulk", "/bulk", port, BULK).await;
    let first_api = apis[0];
    wait_for(&pair, "1,000 jobs complete", 180, async || {
        total(first_api, &token, "queue=bulk&status=completed").await == BULK as u64
    })
    .await;
    let bulk = pair.rx.counts("/bulk", "n");
    assert_eq!(bulk.len() as i64, BULK, "[{label}] distinct jobs delivered");
    let twice: Vec<_> = bulk.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        twice.is_empty(),
        "[{label}] delivered more than once: {twice:?}"
    );
    for status in ["dead", "failed", "pending", "running", "scheduled"] {
        assert_eq!(
            total(first_api, &token, &format!("queue=bulk&status={status}")).await,
            0,
            "[{label}] {status}"
        );
    }
    eprintln!("[{label}] {BULK} jobs through two nodes completed, each delivered once");

    // (c) Node 2 is SIGKILLed while it runs slow jobs: every job completes on node 1.
    enqueue_many(&apis, &token, "slow", "/slow", port, SLOW_JOBS).await;
    let second_api = apis[1];
    let mut on_node_2: Vec<String> = Vec::new();
    wait_for(&pair, "node 2 runs slow jobs", 60, async || {
        let r = second_api
            .get(
                "/api/v1/jobs?queue=slow&status=running&limit=1000",
                Some(&token),
            )
            .await;
        on_node_2 = r.body["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|j| {
                j["worker"]
                    .as_str()
                    .is_some_and(|w| w.starts_with("node-2/"))
            })
            .filter_map(|j| j["id"].as_str().map(str::to_owned))
            .collect();
        !on_node_2.is_empty()
    })
    .await;
    let ticks_before = ticks_once(&pair, label);
    // `Child::kill` is SIGKILL: no shutdown, no lease released.
    pair.second.take().unwrap().stop();
    wait_for(
        &pair,
        "every slow job completes after node 2 died",
        120,
        async || total(first_api, &token, "queue=slow&status=completed").await == SLOW_JOBS as u64,
    )
    .await;
    let slow = pair.rx.counts("/slow", "n");
    assert_eq!(
        slow.len() as i64,
        SLOW_JOBS,
        "[{label}] distinct slow jobs delivered"
    );
    let mut again = 0;
    for id in &on_node_2 {
        let r = first_api
            .get(&format!("/api/v1/jobs/{id}"), Some(&token))
            .await;
        assert_eq!(r.body["status"], "completed", "[{label}] {}", r.text);
        if r.body["attempts"].as_u64().unwrap_or(0) >= 2 {
            again += 1;
        }
    }
    assert!(
        again >= 1,
        "[{label}] none of the {} jobs running on node 2 ran again: {on_node_2:?}",
        on_node_2.len()
    );
    let redelivered = slow.values().filter(|c| **c > 1).count();
    eprintln!(
        "[{label}] node 2 killed with {} jobs running; {again} ran again on node 1; {redelivered} of {SLOW_JOBS} reached the receiver twice",
        on_node_2.len()
    );

    // The schedule survives its node: node 1 takes the scheduler lease over if node 2 held it.
    wait_for(&pair, "ticks continue after node 2 died", 60, async || {
        pair.rx.counts("/tick", "tick").len() >= ticks_before + 3
    })
    .await;
    ticks_once(&pair, label);
}

/// Two nodes started at the same moment on an empty PostgreSQL schema both become ready, and
/// the schema is created once: the cluster-wide migration lock makes the later node plan after
/// the first committed and find nothing left to create, so every row of `_objectos_schema` (the
/// applied objects and plugin schemas) was written by one transaction. Without the lock both
/// create the same tables and one of them fails to start.
pub(crate) async fn two_nodes_start_together_on_an_empty_database(pg: &str) {
    let backend = Backend::Postgres(pg.to_owned());
    let (first, second) = Server::start_together(
        &backend,
        &fixture_app(),
        CONFIG,
        [
            &[("OBJECTOS_NODE_ID", NODE_IDS[0])],
            &[("OBJECTOS_NODE_ID", NODE_IDS[1])],
        ],
    )
    .await;
    let db = sea_orm::Database::connect(&first.database_url)
        .await
        .unwrap();
    let row = sea_orm::ConnectionTrait::query_one_raw(
        &db,
        sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT COUNT(*), COUNT(DISTINCT xmin::text) FROM \"_objectos_schema\"",
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let recorded: i64 = row.try_get_by_index(0).unwrap();
    let writers: i64 = row.try_get_by_index(1).unwrap();
    db.close().await.ok();
    assert!(recorded > 0, "no schema recorded");
    assert_eq!(
        writers,
        1,
        "the schema record was written by {writers} transactions, so both nodes migrated\n--- node 1\n{}--- node 2\n{}",
        tail(&first.log_text()),
        tail(&second.log_text())
    );
    // Both serve the same schema.
    let owner = first.sign_up("owner", "Owner-Passw0rd-c71").await;
    let r = second.api.get("/api/v1/jobs?limit=1", owner.t()).await;
    assert_eq!(r.status, 200, "{}: {}", r.what, r.text);
}

/// Job runs are for administrators: a member reads none of them, neither as records nor
/// through the jobs routes, and cannot enqueue.
pub(crate) async fn members_cannot_read_job_runs(b: &Backend) {
    let config = format!("{CONFIG}jobs:\n  http:\n    allowHosts: [\"127.0.0.1:9\"]\n");
    let server = Server::start(b, &fixture_app(), &config).await;
    let label = server.label;
    let owner = server.sign_up("owner", "Owner-Passw0rd-c71").await;
    let member = server
        .create_user(&owner, "member", "Member-Passw0rd-c71")
        .await;
    let r = server
        .api
        .post(
            "/api/v1/jobs",
            owner.t(),
            json!({"handler": "http.request", "delayMs": 3_600_000,
                   "payload": {"url": "http://127.0.0.1:9/secret-hook", "headers": {"x-token": "s3cr3t"}}}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();

    // The owner may read the object (its rows have no organization, and reads of a signed-in
    // caller are filtered by the active one, so the list is empty: see the report of #13) and
    // sees the run through the jobs routes.
    let r = server.api.get("/api/v1/data/sys_job_run", owner.t()).await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let r = server
        .api
        .get(&format!("/api/v1/jobs/{id}"), owner.t())
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);

    // The member sees nothing of it.
    let hidden = [id.as_str(), "secret-hook", "s3cr3t"];
    for path in [
        "/api/v1/data/sys_job_run".to_owned(),
        format!("/api/v1/data/sys_job_run/{id}"),
        "/api/v1/jobs".to_owned(),
        format!("/api/v1/jobs/{id}"),
        "/api/v1/jobs/dead-letters".to_owned(),
    ] {
        let r = server.api.get(&path, member.t()).await;
        assert!(
            r.status == 403 || r.status == 404,
            "[{label}] {}: {}",
            r.what,
            r.text
        );
        crate::support::no_leak(&r, &hidden);
        if path.starts_with("/api/v1/jobs") {
            refused(&r, 403, "PERMISSION_DENIED");
        }
    }
    let r = server
        .api
        .post(
            "/api/v1/data/sys_job_run/query",
            member.t(),
            json!({"filter": {"id": id}}),
        )
        .await;
    assert!(
        (403..=405).contains(&r.status),
        "[{label}] {}: {}",
        r.what,
        r.text
    );
    crate::support::no_leak(&r, &hidden);
    for (method, path) in [
        ("POST", "/api/v1/jobs".to_owned()),
        ("POST", format!("/api/v1/jobs/{id}/cancel")),
        ("POST", format!("/api/v1/jobs/{id}/retry")),
    ] {
        let r = server
            .api
            .call(
                method,
                &path,
                member.t(),
                Some(
                    json!({"handler": "http.request", "payload": {"url": "http://127.0.0.1:9/x"}}),
                ),
            )
            .await;
        refused(&r, 403, "PERMISSION_DENIED");
    }
    // Anonymous callers are asked to sign in.
    let r = server.api.get("/api/v1/jobs", None).await;
    refused(&r, 401, "UNAUTHENTICATED");
    // Still waiting, not cancelled by the member.
    let r = server
        .api
        .get(&format!("/api/v1/jobs/{id}"), owner.t())
        .await;
    assert_eq!(r.body["status"], "scheduled", "[{label}] {}", r.text);
}
