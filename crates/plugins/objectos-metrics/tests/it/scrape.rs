//! `/metrics`: who may scrape, and that a scripted workload moves the counters by exactly its
//! own amounts, labelled with route templates.

use objectos_metrics::MetricsConfig;
use objectos_metrics::names;
use serde_json::{Value, json};

use crate::support::{Harness, SERIAL, TOKEN};

#[tokio::test]
async fn a_scrape_without_the_token_is_refused() {
    let _turn = SERIAL.lock().await;
    let h = Harness::with_token().await;
    for path in ["/metrics", "/api/v1/metrics/prometheus"] {
        let (status, body) = h.http("GET", path, &[], None).await;
        assert_eq!(status, 401, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "UNAUTHENTICATED", "{body}");
        let (status, _) = h
            .http(
                "GET",
                path,
                &[("authorization", "Bearer not-the-token")],
                None,
            )
            .await;
        assert_eq!(status, 401, "{path}");
        // Loopback is not enough once a token is configured.
        let (status, body) = h
            .http(
                "GET",
                path,
                &[("authorization", &format!("Bearer {TOKEN}"))],
                None,
            )
            .await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.contains(names::BUILD_INFO), "{body}");
    }
    let s = h.scrape().await;
    assert!(s.sum(names::SCRAPES_REFUSED, &[]) >= 4.0, "{}", s.text);
    h.stop().await;
}

#[tokio::test]
async fn without_a_token_only_allowed_addresses_scrape() {
    let _turn = SERIAL.lock().await;
    // Nothing configured: loopback (the test client) may scrape.
    let h = Harness::boot(MetricsConfig {
        token_env: "OBJECTOS_TEST_METRICS_TOKEN_UNSET".into(),
        ..MetricsConfig::default()
    })
    .await;
    let (status, _) = h.http("GET", "/metrics", &[], None).await;
    assert_eq!(status, 200);
    h.stop().await;
    // An allow list without loopback shuts the test client out.
    let h = Harness::boot(MetricsConfig {
        token_env: "OBJECTOS_TEST_METRICS_TOKEN_UNSET".into(),
        allow: vec!["10.0.0.0/8".into()],
        ..MetricsConfig::default()
    })
    .await;
    let (status, _) = h.http("GET", "/metrics", &[], None).await;
    assert_eq!(status, 401);
    h.stop().await;
}

#[tokio::test]
async fn a_workload_moves_the_counters_by_its_own_amounts() {
    let _turn = SERIAL.lock().await;
    let h = Harness::with_token().await;
    let before = h.scrape().await;

    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, body) = h
            .http(
                "POST",
                "/api/v1/data/contact",
                &[],
                Some(&format!(r#"{{"name":"c{i}"}}"#)),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        ids.push(
            v["record"]["id"]
                .as_str()
                .or(v["id"].as_str())
                .unwrap()
                .to_owned(),
        );
    }
    for id in &ids {
        for _ in 0..2 {
            let (status, body) = h
                .http("GET", &format!("/api/v1/data/contact/{id}"), &[], None)
                .await;
            assert_eq!(status, 200, "{body}");
        }
    }
    let (status, _) = h
        .http("GET", "/api/v1/data/contact/no-such-id", &[], None)
        .await;
    assert_eq!(status, 404);

    let after = h.scrape().await;
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    let by_id = [("route", "/api/v1/data/{object}/{id}"), ("method", "GET")];
    assert_eq!(
        delta(
            names::HTTP_REQUESTS,
            &[by_id[0], by_id[1], ("status", "200")]
        ),
        6.0,
        "{}",
        after.text
    );
    assert_eq!(
        delta(
            names::HTTP_REQUESTS,
            &[by_id[0], by_id[1], ("status", "404")]
        ),
        1.0,
        "{}",
        after.text
    );
    assert_eq!(
        delta(
            names::HTTP_REQUESTS,
            &[
                ("route", "/api/v1/data/{object}"),
                ("method", "POST"),
                ("status", "201")
            ]
        ),
        3.0,
        "{}",
        after.text
    );
    let count = format!("{}_count", names::HTTP_DURATION);
    assert_eq!(delta(&count, &by_id), 7.0, "{}", after.text);
    // Engine operations: three creates and seven gets (the miss included).
    let ops = format!("{}_count", names::DATA_OPERATION_DURATION);
    assert_eq!(
        delta(&ops, &[("operation", "create")]),
        3.0,
        "{}",
        after.text
    );
    assert_eq!(delta(&ops, &[("operation", "get")]), 7.0, "{}", after.text);
    // Each create waited once for the writer (SQLite's single writer here).
    let waits = format!("{}_count", names::DATA_POOL_WAIT);
    assert_eq!(delta(&waits, &[("pool", "write")]), 3.0, "{}", after.text);
    // Route templates only: no record id ever becomes a label.
    for id in &ids {
        assert!(!after.text.contains(id.as_str()), "{id} in {}", after.text);
    }
    assert!(!after.text.contains("no-such-id"));
    // Scrape-time gauges and build info.
    assert_eq!(
        after.sum(names::BUILD_INFO, &[("version", "9.9.9-test")]),
        1.0,
        "{}",
        after.text
    );
    assert_eq!(
        after.sum(
            names::KERNEL_PLUGIN_HEALTHY,
            &[("plugin", objectos_metrics::PLUGIN_ID)]
        ),
        1.0,
        "{}",
        after.text
    );
    assert_eq!(
        after.sum(
            names::KERNEL_PLUGIN_HEALTHY,
            &[("plugin", "com.objectos.data")]
        ),
        1.0
    );
    assert!(after.has(names::DATA_POOL_MAX), "{}", after.text);
    assert!(after.has(names::DATA_OUTBOX_BACKLOG), "{}", after.text);
    assert!(after.has(names::HTTP_IN_FLIGHT), "{}", after.text);
    h.stop().await;
}

#[tokio::test]
async fn the_event_bus_queue_and_its_dead_letters_are_scraped() {
    use std::sync::Arc;

    use objectos_kernel::{PluginError, RetryPolicy, SubscribeOptions, new_event};

    let _turn = SERIAL.lock().await;
    let h = Harness::with_token().await;
    let bus = h.tk.kernel.bus().clone();
    // A subscriber that holds its first event until released, so later ones stay queued.
    let entered = Arc::new(tokio::sync::Semaphore::new(0));
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (e, r) = (entered.clone(), release.clone());
    bus.subscribe(
        "metrics-test",
        "test.slow",
        move |_event| {
            let (e, r) = (e.clone(), r.clone());
            async move {
                e.add_permits(1);
                r.acquire().await.map(|p| p.forget()).ok();
                Ok(())
            }
        },
        SubscribeOptions::default(),
    )
    .unwrap();
    // And one that always fails, without retries: each event becomes a dead letter.
    bus.subscribe_inline(
        "metrics-test",
        "test.fails",
        |_| Err(PluginError::msg("always fails")),
        SubscribeOptions {
            retry: RetryPolicy::none(),
            ..SubscribeOptions::default()
        },
    )
    .unwrap();
    let before = h.scrape().await;
    assert_eq!(
        before.sum(names::EVENTS_QUEUE_DEPTH, &[]),
        0.0,
        "{}",
        before.text
    );

    bus.publish(new_event("test.slow", "test", json!({})))
        .await
        .unwrap();
    entered.acquire().await.unwrap().forget();
    for _ in 0..2 {
        bus.publish(new_event("test.slow", "test", json!({})))
            .await
            .unwrap();
    }
    for _ in 0..3 {
        bus.publish(new_event("test.fails", "test", json!({})))
            .await
            .unwrap();
    }
    // Polled, not timed: the failing subscriber's task hands each event on in its own time.
    while bus.dead_letters().len().await < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let during = h.scrape().await;
    assert_eq!(
        during.sum(names::EVENTS_QUEUE_DEPTH, &[]),
        2.0,
        "{}",
        during.text
    );
    assert_eq!(
        during.sum(names::EVENTS_DEAD_LETTERS, &[]) - before.sum(names::EVENTS_DEAD_LETTERS, &[]),
        3.0,
        "{}",
        during.text
    );
    release.add_permits(3);
    h.stop().await;
}

/// Not a timed assertion (timings are the benchmarks' job): prints how long a scrape with 100
/// route templates takes in this build, for `docs/benchmarks.md` when the release benchmark
/// (`benches/scrape.rs`) cannot be built. Run with `--run-ignored only`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run on request"]
async fn scrape_with_100_routes_measured() {
    let _turn = SERIAL.lock().await;
    let h = Harness::with_token().await;
    for i in 0..100 {
        let route = format!("/api/v1/measure{i}/{{id}}");
        for method in ["GET", "POST"] {
            for status in ["200", "404"] {
                metrics::counter!(names::HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status)
                    .increment(1);
            }
            metrics::histogram!(names::HTTP_DURATION, "route" => route.clone(), "method" => method)
                .record(0.002);
        }
    }
    let auth = format!("Bearer {TOKEN}");
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..200 {
        let started = std::time::Instant::now();
        let (status, body) = h
            .http("GET", "/metrics", &[("authorization", &auth)], None)
            .await;
        times.push(started.elapsed());
        assert_eq!(status, 200);
        size = body.len();
    }
    times.sort();
    eprintln!(
        "scrape with 100 routes ({size} bytes): median {:?}, p95 {:?}",
        times[times.len() / 2],
        times[times.len() * 95 / 100]
    );
    h.stop().await;
}
