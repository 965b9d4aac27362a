//! `backend: rabbitmq` end to end: the plugin on a real database (SQLite file, PostgreSQL when
//! configured) and the real broker (`OBJECTOS_TEST_AMQP_URL`), each test under its own exchange
//! and queue prefix, deleted at the end.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use objectos_jobs::amqp::{RabbitmqSettings, TopologyCleanup};
use objectos_jobs::{Backend, JobsSettings};
use objectos_kernel::ClusterSettings;
use objectos_kernel::contracts::{
    EnqueueRequest, JobFailure, JobFilter, JobStatus, RetryPolicy, handler_fn,
};
use objectos_spec::settings::Secret;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::support::{Handlers, Harness, Options, fast_settings};

/// Runs `$scenario(db_url)` on a SQLite file and on PostgreSQL; both need the broker.
macro_rules! with_broker {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[cfg_attr(not(objectos_amqp), ignore = "OBJECTOS_TEST_AMQP_URL is not set")]
            async fn sqlite() {
                let db = objectos_testkit::TestDatabase::sqlite_file();
                super::$scenario(&db.url).await;
                db.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[cfg_attr(
                not(all(objectos_amqp, objectos_pg)),
                ignore = "OBJECTOS_TEST_AMQP_URL or OBJECTOS_TEST_POSTGRES_URL is not set"
            )]
            async fn postgres() {
                let db = objectos_testkit::TestDatabase::postgres("jobsamqp")
                    .await
                    .unwrap();
                super::$scenario(&db.url).await;
                db.cleanup().await;
            }
        }
    };
}

fn broker_url() -> String {
    std::env::var("OBJECTOS_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A fresh prefix, and the guard that deletes its exchanges and queues when the test ends,
/// passed or failed.
fn prefix() -> (String, TopologyCleanup) {
    let prefix = format!("it-{}", uuid::Uuid::new_v4().simple());
    let cleanup = TopologyCleanup::new(&broker_url(), &prefix, &["default"]);
    (prefix, cleanup)
}

/// Options for one node of the RabbitMQ backend under `prefix`.
fn node(prefix: &str, node_id: &str, amqp_url: &str, handlers: Handlers) -> Options {
    Options {
        settings: JobsSettings {
            backend: Backend::Rabbitmq,
            rabbitmq: RabbitmqSettings {
                prefix: prefix.to_owned(),
                ..RabbitmqSettings::default()
            },
            ..fast_settings()
        },
        handlers,
        cluster: ClusterSettings {
            node_id: node_id.to_owned(),
            redis_url: None,
            amqp_url: Some(Secret::new(amqp_url)),
        },
        ..Options::default()
    }
}

type Runs = Arc<Mutex<HashMap<String, u32>>>;

/// A handler that counts its runs per job.
fn counting(runs: &Runs) -> Handlers {
    let runs = runs.clone();
    vec![(
        "count".into(),
        handler_fn(move |cx| {
            let runs = runs.clone();
            async move {
                *runs.lock().entry(cx.id).or_default() += 1;
                Ok(())
            }
        }),
    )]
}

/// The jobs plugin's `details.transport` in the kernel's health.
async fn transport(h: &Harness) -> (String, Value) {
    let health = h.kernel.health().await;
    let jobs = health
        .plugins
        .iter()
        .find(|p| p.id == objectos_jobs::PLUGIN_ID)
        .unwrap();
    let text = serde_json::to_string(&jobs.report).unwrap();
    (
        text,
        jobs.report
            .details
            .get("transport")
            .cloned()
            .unwrap_or_default(),
    )
}

async fn completed(h: &Harness) -> u64 {
    h.queue
        .list(JobFilter {
            status: Some(JobStatus::Completed),
            limit: 1,
            ..JobFilter::default()
        })
        .await
        .unwrap()
        .total
}

async fn wait_completed(h: &Harness, n: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let done = completed(h).await;
        if done == n {
            return;
        }
        if Instant::now() >= deadline {
            let page = h
                .queue
                .list(JobFilter {
                    limit: 1_000,
                    ..JobFilter::default()
                })
                .await
                .unwrap();
            let left: Vec<_> = page
                .items
                .iter()
                .filter(|j| j.status != JobStatus::Completed)
                .collect();
            panic!("{done} of {n} jobs completed; the others: {left:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Jobs go out through the relay, come back through a consumer and complete once each; the
/// health report shows the connected transport.
async fn jobs_run_through_rabbitmq(db: &str) {
    let (prefix, _cleanup) = prefix();
    let runs: Runs = Arc::default();
    let h = Harness::boot(db, node(&prefix, "n1", &broker_url(), counting(&runs))).await;
    for i in 0..300 {
        h.queue
            .enqueue(EnqueueRequest {
                priority: i % 5,
                ..EnqueueRequest::new("count", json!({ "i": i }))
            })
            .await
            .unwrap();
    }
    wait_completed(&h, 300, Duration::from_secs(30)).await;
    let runs = runs.lock().clone();
    assert_eq!(runs.len(), 300);
    assert!(runs.values().all(|n| *n == 1), "a job ran twice");
    let (_, transport) = transport(&h).await;
    assert_eq!(transport["backend"], "rabbitmq");
    assert_eq!(transport["state"], "connected");
    assert_eq!(transport["published"], 300);
    h.stop().await;
}
with_broker!(jobs_run_through_rabbitmq);

/// A failing job is retried through the delay tiers after its backoff, and one out of
/// attempts is dead-lettered in the table and rejected into the dead-letter exchange.
async fn retries_and_dead_letters_through_rabbitmq(db: &str) {
    let (prefix, _cleanup) = prefix();
    let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let s = starts.clone();
    let handlers: Handlers = vec![
        (
            "flaky".into(),
            handler_fn(move |cx| {
                let s = s.clone();
                async move {
                    s.lock().push(Instant::now());
                    if cx.attempt < 3 {
                        Err(JobFailure::retry("not yet"))
                    } else {
                        Ok(())
                    }
                }
            }),
        ),
        (
            "broken".into(),
            handler_fn(|_| async { Err(JobFailure::retry("always")) }),
        ),
    ];
    let h = Harness::boot(db, node(&prefix, "n1", &broker_url(), handlers)).await;
    let policy = |attempts| RetryPolicy {
        max_attempts: attempts,
        backoff: Duration::from_millis(400),
        multiplier: 2.0,
        max_delay: Duration::from_secs(10),
        jitter: false,
    };
    let flaky = h
        .enqueue(EnqueueRequest {
            retry: Some(policy(3)),
            ..EnqueueRequest::new("flaky", json!({}))
        })
        .await;
    let broken = h
        .enqueue(EnqueueRequest {
            retry: Some(policy(2)),
            ..EnqueueRequest::new("broken", json!({}))
        })
        .await;
    let info = h.wait_status(&flaky, JobStatus::Completed).await;
    assert_eq!(info.attempts, 3);
    let starts = starts.lock().clone();
    assert_eq!(starts.len(), 3);
    // Each retry came back no earlier than its backoff (400 ms, then 800 ms).
    assert!(starts[1] - starts[0] >= Duration::from_millis(400));
    assert!(starts[2] - starts[1] >= Duration::from_millis(800));
    let info = h.wait_status(&broken, JobStatus::Dead).await;
    assert_eq!(info.attempts, 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, transport) = transport(&h).await;
        if transport["deadLettered"] == 1 {
            assert!(transport["delayed"].as_u64().unwrap() >= 3, "{transport}");
            break;
        }
        assert!(Instant::now() < deadline, "{transport}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.stop().await;
}
with_broker!(retries_and_dead_letters_through_rabbitmq);

/// With the broker unreachable, enqueues succeed and wait in the table while the health
/// report says why (password masked); a node with the broker back runs every one of them.
async fn enqueues_wait_for_an_unreachable_broker(db: &str) {
    let (prefix, _cleanup) = prefix();
    let runs: Runs = Arc::default();
    let down = Harness::boot(
        db,
        node(
            &prefix,
            "n1",
            "amqp://guest:pa55word@127.0.0.1:1/%2f",
            counting(&runs),
        ),
    )
    .await;
    for i in 0..20 {
        down.queue
            .enqueue(EnqueueRequest::new("count", json!({ "i": i })))
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let (text, transport) = loop {
        let (text, transport) = transport(&down).await;
        if transport["state"] == "reconnecting" {
            break (text, transport);
        }
        assert!(Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!text.contains("pa55word"), "{text}");
    assert!(text.contains("amqp://guest:***@127.0.0.1:1/%2f"), "{text}");
    assert!(transport["lastError"].is_string(), "{transport}");
    assert!(text.contains("\"degraded\""), "{text}");
    let pending = down
        .queue
        .list(JobFilter {
            status: Some(JobStatus::Pending),
            ..JobFilter::default()
        })
        .await
        .unwrap()
        .total;
    assert_eq!(pending, 20);
    down.stop().await;

    // The node restarted with the broker reachable.
    let up = Harness::boot(db, node(&prefix, "n1", &broker_url(), counting(&runs))).await;
    wait_completed(&up, 20, Duration::from_secs(20)).await;
    assert_eq!(runs.lock().len(), 20);
    up.stop().await;
}
with_broker!(enqueues_wait_for_an_unreachable_broker);

/// A node stops in the middle of a job: the broker takes the delivery back, and the other
/// node runs the job once the dead node's lease ran out.
async fn a_job_left_by_a_stopped_node_completes_on_another(db: &str) {
    let (prefix, _cleanup) = prefix();
    let hang: Handlers = vec![(
        "work".into(),
        handler_fn(|_| async {
            std::future::pending::<()>().await;
            Ok(())
        }),
    )];
    let one = Harness::boot(db, node(&prefix, "n1", &broker_url(), hang)).await;
    let id = one.enqueue(EnqueueRequest::new("work", json!({}))).await;
    let info = one.wait_status(&id, JobStatus::Running).await;
    assert_eq!(info.attempts, 1);
    one.stop().await;

    let runs: Runs = Arc::default();
    let done = runs.clone();
    let work: Handlers = vec![(
        "work".into(),
        handler_fn(move |cx| {
            let done = done.clone();
            async move {
                *done.lock().entry(cx.id).or_default() += 1;
                Ok(())
            }
        }),
    )];
    let two = Harness::boot(db, node(&prefix, "n2", &broker_url(), work)).await;
    let info = two.wait_status(&id, JobStatus::Completed).await;
    assert_eq!(info.attempts, 2);
    assert_eq!(runs.lock().get(&id), Some(&1));
    two.stop().await;
}
with_broker!(a_job_left_by_a_stopped_node_completes_on_another);

/// Two nodes on one database and one broker: 1,000 jobs enqueued through both all complete,
/// each once.
async fn a_thousand_jobs_through_two_nodes(db: &str) {
    let (prefix, _cleanup) = prefix();
    let runs: Runs = Arc::default();
    // The normal case: leases long enough that a loaded machine never lets one expire (the
    // 1 s lease of the other tests can, and an expired lease rightly runs a job again).
    let normal = |id: &str| {
        let mut options = node(&prefix, id, &broker_url(), counting(&runs));
        options.settings.lease_ms = 30_000;
        options
    };
    let one = Harness::boot(db, normal("n1")).await;
    let two = Harness::boot(db, normal("n2")).await;
    for i in 0..1_000 {
        let queue = if i % 2 == 0 { &one.queue } else { &two.queue };
        queue
            .enqueue(EnqueueRequest::new("count", json!({ "i": i })))
            .await
            .unwrap();
    }
    wait_completed(&one, 1_000, Duration::from_secs(60)).await;
    let runs = runs.lock().clone();
    assert_eq!(runs.len(), 1_000);
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "ran more than once: {twice:?}");
    one.stop().await;
    two.stop().await;
}
with_broker!(a_thousand_jobs_through_two_nodes);

/// A job claimed while every handler slot of its queue is taken waits for a slot; a cancel
/// reaches it at once (it is cancelled without running), not once the slot frees up: the
/// blocking job holds the only slot until the end of the test.
async fn a_job_waiting_for_a_slot_is_cancelled_at_once(db: &str) {
    let (prefix, _cleanup) = prefix();
    let release = Arc::new(tokio::sync::Notify::new());
    let ran: Runs = Arc::default();
    let gate = release.clone();
    let mut handlers = counting(&ran);
    handlers.push((
        "block".into(),
        handler_fn(move |_cx| {
            let gate = gate.clone();
            async move {
                gate.notified().await;
                Ok(())
            }
        }),
    ));
    let mut options = node(&prefix, "n1", &broker_url(), handlers);
    options.settings.workers = 1;
    let h = Harness::boot(db, options).await;
    let blocking = h.enqueue(EnqueueRequest::new("block", json!(null))).await;
    h.wait_status(&blocking, JobStatus::Running).await;
    let waiting = h.enqueue(EnqueueRequest::new("count", json!(null))).await;
    // Claimed by this node (its row says running), waiting for the slot.
    h.wait_status(&waiting, JobStatus::Running).await;
    h.queue.cancel(&waiting).await.unwrap();
    let cancelled = h.wait_status(&waiting, JobStatus::Cancelled).await;
    assert!(cancelled.cancel_requested);
    assert_eq!(
        h.queue.get(&blocking).await.unwrap().unwrap().status,
        JobStatus::Running,
        "the slot was never free"
    );
    assert!(ran.lock().is_empty(), "the cancelled job ran");
    release.notify_one();
    h.wait_status(&blocking, JobStatus::Completed).await;
    h.stop().await;
}
with_broker!(a_job_waiting_for_a_slot_is_cancelled_at_once);
