//! The embedded backend's benchmark (`cargo xtask bench jobs` runs it in a release build):
//! no-op jobs per second through batched claims and completions, and enqueue-to-start latency
//! (p50, p99) of jobs enqueued one at a time, on a SQLite file and, with
//! `OBJECTOS_TEST_POSTGRES_URL`, on a fresh PostgreSQL schema. With `OBJECTOS_TEST_AMQP_URL`
//! the same runs again with `backend: rabbitmq` (relay, broker, consumers) under a fresh
//! exchange prefix, deleted afterwards. Prints one JSON line per backend and database.
//! `OBJECTOS_JOBS_BENCH_ONLY` (comma-separated, e.g. `embedded-postgres,rabbitmq-postgres`;
//! names `embedded|rabbitmq` `-` `sqlite|postgres`) runs only those combinations.

// A measuring program, like a test: a failed step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use objectos_data::{DataConfig, DataPlugin};
use objectos_jobs::amqp::{RabbitmqSettings, delete_topology};
use objectos_jobs::{Backend, JobsPlugin, JobsSettings};
use objectos_kernel::contracts::{EnqueueRequest, JobQueue, handler_fn};
use objectos_kernel::{ClusterSettings, Kernel};
use objectos_testkit::TestDatabase;
use parking_lot::Mutex;
use serde_json::json;

const THROUGHPUT_JOBS: usize = 50_000;
const LATENCY_JOBS: usize = 2_000;

struct Probe {
    started: AtomicUsize,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
    /// Per latency job (payload `i`): when its enqueue began and when its handler started.
    enqueued: Mutex<Vec<Option<Instant>>>,
    began: Mutex<Vec<Option<Instant>>>,
}

/// `amqp`: the broker URL and the exchange prefix of a `backend: rabbitmq` run.
async fn run(label: &str, db: TestDatabase, amqp: Option<(&str, &str)>) -> serde_json::Value {
    let probe = Arc::new(Probe {
        started: AtomicUsize::new(0),
        first: Mutex::new(None),
        last: Mutex::new(None),
        enqueued: Mutex::new(vec![None; LATENCY_JOBS]),
        began: Mutex::new(vec![None; LATENCY_JOBS]),
    });
    let mut settings = JobsSettings {
        workers: 64,
        batch_size: 256,
        poll_interval_ms: 100,
        ..JobsSettings::default()
    };
    let mut cluster = ClusterSettings::single_node();
    if let Some((url, prefix)) = amqp {
        settings.backend = Backend::Rabbitmq;
        settings.rabbitmq = RabbitmqSettings {
            prefix: prefix.to_owned(),
            ..RabbitmqSettings::default()
        };
        cluster.amqp_url = Some(objectos_spec::settings::Secret::new(url));
    }
    let jobs = JobsPlugin::new(settings);
    let cell = jobs.service_cell();
    let kernel = Kernel::builder()
        .plugin(DataPlugin::new(DataConfig {
            database_url: db.url.clone(),
            metadata_dirs: Vec::new(),
            include_base: false,
            max_connections: 8,
            auto_migrate: true,
            owned: Vec::new(),
        }))
        .plugin(jobs)
        .cluster(cluster)
        .build()
        .unwrap();
    let report = kernel.boot().await.unwrap();
    assert!(report.all_started(), "{report:?}");
    let service = cell.get().unwrap().clone();
    let p = probe.clone();
    service
        .register_handler(
            "bench.noop",
            handler_fn(move |cx| {
                let p = p.clone();
                async move {
                    let now = Instant::now();
                    if let Some(i) = cx.payload.get("i").and_then(|v| v.as_u64()) {
                        if let Some(slot) = p.began.lock().get_mut(i as usize) {
                            *slot = Some(now);
                        }
                    } else {
                        p.first.lock().get_or_insert(now);
                        let n = p.started.fetch_add(1, Ordering::SeqCst) + 1;
                        if n == THROUGHPUT_JOBS {
                            *p.last.lock() = Some(now);
                        }
                    }
                    Ok(())
                }
            }),
        )
        .unwrap();

    // Throughput: jobs become due together (enqueued as scheduled, promoted in one statement),
    // then the workers drain them; measured from the first start to the last completion
    // written.
    let due = chrono::Utc::now() + chrono::Duration::seconds(3);
    let enqueue_started = Instant::now();
    for chunk in (0..THROUGHPUT_JOBS).collect::<Vec<_>>().chunks(5_000) {
        service
            .enqueue_many(
                chunk
                    .iter()
                    .map(|_| EnqueueRequest {
                        run_at: Some(due),
                        ..EnqueueRequest::new("bench.noop", json!({}))
                    })
                    .collect(),
            )
            .await
            .unwrap();
    }
    let enqueue_secs = enqueue_started.elapsed().as_secs_f64();
    // The table is counted only once every handler has started (the probe, in memory, says
    // when): the count reads the whole table, and polled through the drain (every 25 ms before)
    // it took a share of a 2-core machine from the workers it measured. What is left then is
    // the last completion batches, polled every 5 ms; the drain is measured long by at most one
    // interval, so the figure errs low.
    while probe.started.load(Ordering::SeqCst) < THROUGHPUT_JOBS {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let completed_at = loop {
        let c = service.counts().await.unwrap();
        if c.get("completed").copied().unwrap_or(0) as usize >= THROUGHPUT_JOBS {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let first = probe.first.lock().unwrap();
    let drain = completed_at - first;
    let handlers_done = probe.last.lock().unwrap() - first;
    let jobs_per_sec = THROUGHPUT_JOBS as f64 / drain.as_secs_f64();

    // Latency: one enqueue at a time, each waiting for the previous job to start.
    for i in 0..LATENCY_JOBS {
        probe.enqueued.lock()[i] = Some(Instant::now());
        service
            .enqueue(EnqueueRequest::new("bench.noop", json!({ "i": i })))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while probe.began.lock()[i].is_none() && Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
    }
    let mut lat: Vec<f64> = (0..LATENCY_JOBS)
        .filter_map(|i| {
            let e = probe.enqueued.lock()[i]?;
            let b = probe.began.lock()[i]?;
            Some((b - e).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    kernel.shutdown().await;
    db.cleanup().await;
    if let Some((url, prefix)) = amqp
        && let Err(error) = delete_topology(url, prefix, &["default"]).await
    {
        eprintln!("could not delete the benchmark's exchanges and queues: {error}");
    }
    json!({
        "backend": if amqp.is_some() { "rabbitmq" } else { "embedded" },
        "database": label,
        "jobs": THROUGHPUT_JOBS,
        "enqueueJobsPerSec": (THROUGHPUT_JOBS as f64 / enqueue_secs).round(),
        "jobsPerSec": jobs_per_sec.round(),
        "handlersJobsPerSec": (THROUGHPUT_JOBS as f64 / handlers_done.as_secs_f64()).round(),
        "latencyJobs": lat.len(),
        "p50Ms": (pct(0.5) * 100.0).round() / 100.0,
        "p99Ms": (pct(0.99) * 100.0).round() / 100.0,
    })
}

/// Whether the `OBJECTOS_JOBS_BENCH_ONLY` filter (absent: everything) selects `name`.
fn selected(name: &str) -> bool {
    match std::env::var("OBJECTOS_JOBS_BENCH_ONLY") {
        Ok(only) if !only.trim().is_empty() => only.split(',').any(|n| n.trim() == name),
        _ => true,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if selected("embedded-sqlite") {
        println!(
            "{}",
            run("SQLite file", TestDatabase::sqlite_file(), None).await
        );
    }
    if selected("embedded-postgres")
        && let Some(db) = TestDatabase::postgres("jobsbench").await
    {
        println!("{}", run("PostgreSQL", db, None).await);
    }
    if let Some(url) = std::env::var("OBJECTOS_TEST_AMQP_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    {
        let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let amqp = Some((url.as_str(), prefix.as_str()));
        if selected("rabbitmq-sqlite") {
            println!(
                "{}",
                run("SQLite file", TestDatabase::sqlite_file(), amqp).await
            );
        }
        if selected("rabbitmq-postgres")
            && let Some(db) = TestDatabase::postgres("jobsbench").await
        {
            println!("{}", run("PostgreSQL", db, amqp).await);
        }
    }
}
