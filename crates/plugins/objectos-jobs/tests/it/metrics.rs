//! The queue's metrics (`objectos_jobs_*`) move by exactly what a workload did. The test
//! installs the process's recorder, so it is the only test of this binary that does (nextest
//! runs each test in a process of its own; under `cargo test` the others record into it too,
//! on other handler and queue names).

use std::time::Duration;

use objectos_kernel::contracts::{EnqueueRequest, JobFailure, JobStatus, RetryPolicy, handler_fn};
use serde_json::json;

use crate::support::{Harness, Options};

/// The value of the series `name{labels}` in a Prometheus text page (0 when absent).
fn value(page: &str, name: &str, labels: &str) -> f64 {
    let series = format!("{name}{{{labels}}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_queue_records_its_metrics() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let db = objectos_testkit::TestDatabase::sqlite_file();
    let h = Harness::boot(
        &db.url,
        Options::handlers(vec![
            ("metrics.ok".into(), handler_fn(|_| async { Ok(()) })),
            (
                "metrics.boom".into(),
                handler_fn(|_| async { Err(JobFailure::retry("boom")) }),
            ),
        ]),
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(
            h.enqueue(EnqueueRequest::new("metrics.ok", json!(null)))
                .await,
        );
    }
    let dead = h
        .enqueue(EnqueueRequest {
            retry: Some(RetryPolicy {
                max_attempts: 2,
                backoff: Duration::from_millis(1),
                jitter: false,
                ..RetryPolicy::default()
            }),
            ..EnqueueRequest::new("metrics.boom", json!(null))
        })
        .await;
    // A queue no node works on: enqueued without waking anyone (no worker starts for it), its
    // job waits, due, and shows in the depth.
    h.queue
        .enqueue_in(
            &h.engine.writer(),
            EnqueueRequest {
                queue: Some("metrics-idle".into()),
                ..EnqueueRequest::new("metrics.ok", json!(null))
            },
        )
        .await
        .unwrap();
    for id in &ids {
        h.wait_status(id, JobStatus::Completed).await;
    }
    h.wait_status(&dead, JobStatus::Dead).await;
    // The counters are written right after the outcome; the depth at the next heartbeat.
    let mut page = String::new();
    for _ in 0..300 {
        page = recorder.render();
        if value(
            &page,
            "objectos_jobs_completed_total",
            "handler=\"metrics.ok\"",
        ) == 2.0
            && value(
                &page,
                "objectos_jobs_dead_lettered_total",
                "handler=\"metrics.boom\"",
            ) == 1.0
            && value(&page, "objectos_jobs_queue_depth", "queue=\"metrics-idle\"") == 1.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        value(&page, "objectos_jobs_enqueued_total", "queue=\"default\""),
        3.0,
        "{page}"
    );
    assert_eq!(
        value(
            &page,
            "objectos_jobs_enqueued_total",
            "queue=\"metrics-idle\""
        ),
        1.0
    );
    assert_eq!(
        value(
            &page,
            "objectos_jobs_started_total",
            "handler=\"metrics.ok\""
        ),
        2.0
    );
    assert_eq!(
        value(
            &page,
            "objectos_jobs_completed_total",
            "handler=\"metrics.ok\""
        ),
        2.0
    );
    assert_eq!(
        value(
            &page,
            "objectos_jobs_started_total",
            "handler=\"metrics.boom\""
        ),
        2.0
    );
    assert_eq!(
        value(
            &page,
            "objectos_jobs_failed_total",
            "handler=\"metrics.boom\""
        ),
        2.0
    );
    assert_eq!(
        value(
            &page,
            "objectos_jobs_dead_lettered_total",
            "handler=\"metrics.boom\""
        ),
        1.0
    );
    assert_eq!(
        value(
            &page,
            "objectos_jobs_failed_total",
            "handler=\"metrics.ok\""
        ),
        0.0
    );
    assert_eq!(
        value(
            &page,
            "objectos_jobs_run_duration_seconds_count",
            "handler=\"metrics.ok\""
        ),
        2.0,
        "{page}"
    );
    assert_eq!(
        value(&page, "objectos_jobs_queue_depth", "queue=\"metrics-idle\""),
        1.0,
        "{page}"
    );
    h.stop().await;
    db.cleanup().await;
}
