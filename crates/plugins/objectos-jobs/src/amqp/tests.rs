//! The RabbitMQ backend against the real broker (`OBJECTOS_TEST_AMQP_URL`), each test under its
//! own uuid prefix and deleting its exchanges and queues at the end. The job table here is a
//! table in memory with the same lease and retry rules as the plugin's; what is under test is the
//! broker side: confirms, acknowledgements, redelivery, delay tiers, dead letters, reconnection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use objectos_spec::settings::Secret;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::topology::short;
use super::*;

fn url() -> String {
    std::env::var("OBJECTOS_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A fresh prefix, and the guard that deletes its exchanges and queues when the test ends,
/// passed or failed.
fn prefix() -> (String, TopologyCleanup) {
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let cleanup = TopologyCleanup::new(&url(), &prefix, &["default", "reports"]);
    (prefix, cleanup)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Running { lease_until: Instant },
    Completed,
    Dead,
}

#[derive(Debug, Clone)]
struct Row {
    queue: String,
    priority: i32,
    status: Status,
    published: bool,
    /// A relay took the row and has not confirmed it yet; other relays skip it until then.
    relaying_until: Option<Instant>,
    run_at: Instant,
    attempts: u32,
    starts: Vec<Instant>,
}

/// The shared job table of every "node" in a test.
#[derive(Debug)]
struct Table {
    rows: Mutex<HashMap<String, Row>>,
    lease: Duration,
    max_attempts: u32,
    backoff: Duration,
    changed: Notify,
}

impl Table {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            rows: Mutex::new(HashMap::new()),
            lease: Duration::from_secs(1),
            max_attempts: 3,
            backoff: Duration::from_secs(1),
            changed: Notify::new(),
        })
    }

    fn enqueue(&self, queue: &str) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        self.rows.lock().insert(
            id.clone(),
            Row {
                queue: queue.to_owned(),
                priority: 0,
                status: Status::Pending,
                published: false,
                relaying_until: None,
                run_at: Instant::now(),
                attempts: 0,
                starts: Vec::new(),
            },
        );
        id
    }

    fn row(&self, id: &str) -> Row {
        self.rows.lock()[id].clone()
    }

    fn count(&self, status: Status) -> usize {
        self.rows
            .lock()
            .values()
            .filter(|r| r.status == status)
            .count()
    }

    /// Waits until `done` holds, or fails the test after `limit`.
    async fn until(&self, limit: Duration, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            let _ = tokio::time::timeout(Duration::from_millis(50), self.changed.notified()).await;
        }
    }
}

/// What a node's handler does with a job.
#[derive(Debug, Clone)]
enum Handler {
    Succeed,
    /// Fails the first `n` attempts.
    FailFirst(u32),
    /// Never returns (a job a node is killed in the middle of).
    Hang(Arc<Notify>),
}

/// One node's view of the table: the shared rows and this node's handler.
#[derive(Debug, Clone)]
struct Node {
    table: Arc<Table>,
    handler: Handler,
}

#[async_trait]
impl JobRows for Node {
    async fn unpublished(&self, limit: usize) -> Result<Vec<Outgoing>, JobsError> {
        let now = Instant::now();
        let mut rows = self.table.rows.lock();
        let mut out = Vec::new();
        for (id, row) in rows.iter_mut() {
            if out.len() >= limit {
                break;
            }
            let free = row.relaying_until.is_none_or(|until| until <= now);
            if !row.published && row.status == Status::Pending && row.run_at <= now && free {
                row.relaying_until = Some(now + Duration::from_secs(5));
                out.push(Outgoing {
                    id: id.clone(),
                    queue: row.queue.clone(),
                    priority: row.priority,
                });
            }
        }
        Ok(out)
    }

    async fn mark_published(&self, ids: &[String]) -> Result<(), JobsError> {
        let mut rows = self.table.rows.lock();
        for id in ids {
            if let Some(row) = rows.get_mut(id) {
                row.published = true;
                row.relaying_until = None;
            }
        }
        Ok(())
    }

    async fn release_unpublished(&self, ids: &[String]) -> Result<(), JobsError> {
        let mut rows = self.table.rows.lock();
        for id in ids {
            if let Some(row) = rows.get_mut(id) {
                row.relaying_until = None;
            }
        }
        Ok(())
    }

    async fn take(&self, jobs: Vec<Delivered>) -> Result<Vec<JobRun>, JobsError> {
        Ok(jobs
            .into_iter()
            .map(|job| {
                let node = self.clone();
                let run: JobRun = Box::pin(async move { node.run(&job).await });
                run
            })
            .collect())
    }
}

impl Node {
    /// Claims, runs and records one job, like the plugin's table does for a batch.
    async fn run(&self, job: &Delivered) -> Result<Outcome, JobsError> {
        let now = Instant::now();
        let attempt = {
            let mut rows = self.table.rows.lock();
            let Some(row) = rows.get_mut(&job.id) else {
                return Ok(Outcome::Done);
            };
            match row.status {
                Status::Completed | Status::Dead => return Ok(Outcome::Done),
                Status::Running { lease_until } if lease_until > now => {
                    return Ok(Outcome::RetryAfter(lease_until - now));
                }
                Status::Pending if row.run_at > now => {
                    return Ok(Outcome::RetryAfter(row.run_at - now));
                }
                Status::Pending | Status::Running { .. } => {}
            }
            row.status = Status::Running {
                lease_until: now + self.table.lease,
            };
            row.attempts += 1;
            row.starts.push(now);
            row.attempts
        };
        self.table.changed.notify_waiters();
        let ok = match &self.handler {
            Handler::Succeed => true,
            Handler::FailFirst(n) => attempt > *n,
            Handler::Hang(started) => {
                started.notify_one();
                std::future::pending::<()>().await;
                true
            }
        };
        let outcome = {
            let mut rows = self.table.rows.lock();
            let Some(row) = rows.get_mut(&job.id) else {
                return Ok(Outcome::Done);
            };
            if ok {
                row.status = Status::Completed;
                Outcome::Done
            } else if attempt >= self.table.max_attempts {
                row.status = Status::Dead;
                Outcome::DeadLetter
            } else {
                row.status = Status::Pending;
                row.run_at = Instant::now() + self.table.backoff;
                Outcome::RetryAfter(self.table.backoff)
            }
        };
        self.table.changed.notify_waiters();
        Ok(outcome)
    }
}

fn node(url: &str, prefix: &str, table: &Arc<Table>, handler: Handler) -> AmqpBackend {
    let mut settings = AmqpSettings::new(Secret::new(url), ["default"]);
    settings.prefix = prefix.to_owned();
    settings.relay_interval = Duration::from_millis(100);
    let backend = AmqpBackend::new(
        settings,
        Arc::new(Node {
            table: Arc::clone(table),
            handler,
        }),
    )
    .unwrap();
    backend.start();
    backend
}

async fn connected(backend: &AmqpBackend) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while backend.status().state != AmqpState::Connected {
        assert!(
            Instant::now() < deadline,
            "never connected: {:?}",
            backend.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Messages waiting in one of the test's queues.
async fn depth(queue: &str) -> u32 {
    let connection = Connection::connect(&url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let q = channel
        .queue_declare(
            short(queue),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "".into()).await;
    q.message_count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(objectos_amqp), ignore = "needs OBJECTOS_TEST_AMQP_URL")]
async fn relayed_jobs_are_confirmed_consumed_and_acknowledged() {
    let (prefix, _cleanup) = prefix();
    let table = Table::new();
    let ids: Vec<String> = (0..20).map(|_| table.enqueue("default")).collect();
    let backend = node(&url(), &prefix, &table, Handler::Succeed);
    backend.wake();
    table
        .until(Duration::from_secs(20), "20 completed jobs", |t| {
            t.count(Status::Completed) == 20
        })
        .await;
    let status = backend.status();
    assert_eq!(status.state, AmqpState::Connected);
    // Acknowledgements trail the row update by a moment, and the published count and marks
    // the publisher confirm, which RabbitMQ may send after a consumer acknowledged the message.
    let settled = |b: &AmqpBackend| {
        let status = b.status();
        status.acknowledged >= 20
            && status.published >= 20
            && ids.iter().all(|id| table.row(id).published)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !settled(&backend) {
        assert!(Instant::now() < deadline, "{:?}", backend.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = backend.status();
    assert_eq!(status.published, 20);
    assert_eq!(status.acknowledged, 20);
    for id in &ids {
        let row = table.row(id);
        assert!(row.published, "{id} was never marked published");
        assert_eq!(row.attempts, 1);
    }
    backend.stop(Duration::from_secs(2)).await;
    assert_eq!(backend.status().state, AmqpState::Stopped);
    // Everything was acknowledged: nothing waits in the queue or went to the dead letters.
    let topology = Topology::new(&prefix, 9).unwrap();
    assert_eq!(depth(&topology.work_queue("default").unwrap()).await, 0);
    assert_eq!(depth(&topology.dead_letters()).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(objectos_amqp), ignore = "needs OBJECTOS_TEST_AMQP_URL")]
async fn a_job_whose_worker_dies_is_delivered_again_and_completes() {
    let (prefix, _cleanup) = prefix();
    let table = Table::new();
    let started = Arc::new(Notify::new());
    let doomed = node(&url(), &prefix, &table, Handler::Hang(Arc::clone(&started)));
    connected(&doomed).await;
    let id = table.enqueue("default");
    doomed.wake();
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the job never started");
    // The node dies mid-job: no acknowledgement, the row stays leased.
    doomed.kill();
    assert!(matches!(table.row(&id).status, Status::Running { .. }));

    let survivor = node(&url(), &prefix, &table, Handler::Succeed);
    table
        .until(
            Duration::from_secs(20),
            "the job to complete on the survivor",
            |t| t.row(&id).status == Status::Completed,
        )
        .await;
    let row = table.row(&id);
    // Once on the dead node, once on the survivor after the lease ran out.
    assert_eq!(row.attempts, 2);
    assert!(row.starts[1] - row.starts[0] >= table.lease);
    survivor.stop(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(objectos_amqp), ignore = "needs OBJECTOS_TEST_AMQP_URL")]
async fn a_failed_job_is_retried_after_its_delay() {
    let (prefix, _cleanup) = prefix();
    let table = Table::new();
    let backend = node(&url(), &prefix, &table, Handler::FailFirst(1));
    let id = table.enqueue("default");
    backend.wake();
    table
        .until(
            Duration::from_secs(20),
            "the retried job to complete",
            |t| t.row(&id).status == Status::Completed,
        )
        .await;
    let row = table.row(&id);
    assert_eq!(row.attempts, 2);
    // The retry went through a delay tier: not before the backoff the row asked for.
    assert!(
        row.starts[1] - row.starts[0] >= table.backoff,
        "retried after {:?}",
        row.starts[1] - row.starts[0]
    );
    assert!(backend.status().delayed >= 1);
    backend.stop(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(objectos_amqp), ignore = "needs OBJECTOS_TEST_AMQP_URL")]
async fn a_job_out_of_attempts_is_dead_lettered() {
    let (prefix, _cleanup) = prefix();
    let table = Table::new();
    let backend = node(&url(), &prefix, &table, Handler::FailFirst(u32::MAX));
    let id = table.enqueue("default");
    backend.wake();
    table
        .until(
            Duration::from_secs(30),
            "the job to be dead-lettered",
            |t| t.row(&id).status == Status::Dead,
        )
        .await;
    assert_eq!(table.row(&id).attempts, table.max_attempts);
    let topology = backend.topology().clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    while depth(&topology.dead_letters()).await < 1 {
        assert!(Instant::now() < deadline, "no message in the dead letters");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The dead letter names the job.
    let connection = Connection::connect(&url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let message = channel
        .basic_get(
            short(&topology.dead_letters()),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("a dead letter");
    let body: relay::Body = serde_json::from_slice(&message.delivery.data).unwrap();
    assert_eq!(body.id, id);
    let _ = connection.close(200, "".into()).await;
    assert_eq!(backend.status().dead_lettered, 1);
    backend.stop(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(objectos_amqp), ignore = "needs OBJECTOS_TEST_AMQP_URL")]
async fn jobs_enqueued_while_the_broker_is_unreachable_flow_when_it_returns() {
    let (prefix, _cleanup) = prefix();
    let table = Table::new();
    // Nothing listens on port 1; the password must never show in the status.
    let down = node(
        "amqp://guest:pa55word@127.0.0.1:1/%2f",
        &prefix,
        &table,
        Handler::Succeed,
    );
    let ids: Vec<String> = (0..50).map(|_| table.enqueue("default")).collect();
    down.wake();
    let deadline = Instant::now() + Duration::from_secs(10);
    while down.status().attempts < 2 {
        assert!(Instant::now() < deadline, "{:?}", down.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = down.status();
    assert_eq!(status.state, AmqpState::Reconnecting);
    assert!(status.last_error.is_some());
    let shown = serde_json::to_string(&status).unwrap();
    assert!(!shown.contains("pa55word"), "{shown}");
    assert!(
        shown.contains("amqp://guest:***@127.0.0.1:1/%2f"),
        "{shown}"
    );
    // The enqueues are all still there, none published.
    assert_eq!(table.count(Status::Pending), 50);
    assert!(ids.iter().all(|id| !table.row(id).published));
    down.stop(Duration::from_secs(1)).await;

    // The same node configured with the reachable broker (as after a restart of RabbitMQ).
    let up = node(&url(), &prefix, &table, Handler::Succeed);
    table
        .until(Duration::from_secs(20), "all 50 jobs", |t| {
            t.count(Status::Completed) == 50
        })
        .await;
    assert!(ids.iter().all(|id| table.row(id).attempts == 1));
    up.stop(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(objectos_amqp), ignore = "needs OBJECTOS_TEST_AMQP_URL")]
async fn a_thousand_jobs_through_two_nodes_all_complete_once() {
    let (prefix, _cleanup) = prefix();
    let table = Table::new();
    let one = node(&url(), &prefix, &table, Handler::Succeed);
    let two = node(&url(), &prefix, &table, Handler::Succeed);
    connected(&one).await;
    connected(&two).await;
    for i in 0..1_000 {
        table.enqueue("default");
        if i % 100 == 99 {
            // Enqueued "through" each node in turn.
            if i % 200 == 99 {
                one.wake()
            } else {
                two.wake()
            }
        }
    }
    table
        .until(Duration::from_secs(60), "1000 completed jobs", |t| {
            t.count(Status::Completed) == 1_000
        })
        .await;
    let rows = table.rows.lock().clone();
    let twice: Vec<_> = rows.iter().filter(|(_, r)| r.attempts != 1).collect();
    assert!(twice.is_empty(), "ran more than once: {twice:?}");
    // The relays count a batch once all of its confirms are in, which can be after its jobs
    // ran; each row was published once (no relay took a row another relay held).
    let deadline = Instant::now() + Duration::from_secs(5);
    while one.status().published + two.status().published < 1_000 {
        assert!(
            Instant::now() < deadline,
            "{:?} {:?}",
            one.status(),
            two.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(one.status().published + two.status().published, 1_000);
    one.stop(Duration::from_secs(2)).await;
    two.stop(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(objectos_amqp), ignore = "needs OBJECTOS_TEST_AMQP_URL")]
async fn a_queue_added_while_connected_is_declared_and_consumed() {
    let (prefix, _cleanup) = prefix();
    let table = Table::new();
    let backend = node(&url(), &prefix, &table, Handler::Succeed);
    connected(&backend).await;
    let id = table.enqueue("reports");
    // The relay declares the queue for the message; consume() starts its consumer.
    backend.wake();
    assert!(!backend.consumes("reports"));
    backend
        .consume(AmqpQueue {
            name: "reports".to_owned(),
            prefetch: 4,
        })
        .unwrap();
    assert!(backend.consumes("reports"));
    table
        .until(Duration::from_secs(15), "the job of the added queue", |t| {
            t.row(&id).status == Status::Completed
        })
        .await;
    assert!(
        backend
            .consume(AmqpQueue {
                name: "Not Valid".to_owned(),
                prefetch: 4,
            })
            .is_err()
    );
    backend.stop(Duration::from_secs(2)).await;
}

#[test]
fn the_password_never_shows() {
    assert_eq!(
        redact_url("amqp://user:secret@host:5672/%2f"),
        "amqp://user:***@host:5672/%2f"
    );
    assert_eq!(redact_url("amqp://host/%2f"), "amqp://host/%2f");
    assert_eq!(
        redact_text("failed: amqp://user:secret@host", "amqp://user:secret@host"),
        "failed: amqp://user:***@host"
    );
}

#[test]
fn backoff_grows_to_its_cap() {
    assert!(backoff(1) >= Duration::from_millis(100) && backoff(1) < Duration::from_millis(130));
    assert!(backoff(5) >= Duration::from_millis(1_600));
    assert!(backoff(40) <= Duration::from_millis(37_500));
}
