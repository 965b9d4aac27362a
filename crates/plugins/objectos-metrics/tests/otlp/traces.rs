//! What a collector receives: request -> data operation -> SQL statement spans in one trace, a
//! client's `traceparent` continued, a malformed one ignored, the plugin lifecycle traced; the
//! record event carrying the trace context to a subscriber, which handles it in an
//! `event.handle` span of the same trace, where a statement it runs through the plugin store
//! API gets its `db.statement` span too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use objectos_data::store::{Sql, Store as _};
use objectos_kernel::SubscribeOptions;
use objectos_spec::Event;

use objectos_metrics::{MetricsConfig, TracingConfig};
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use objectos_testkit::otlp::{Receiver, children, one};

use crate::support::Harness;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// What the subscriber saw: the event's `traceparent` and the one its handler ran in.
type Seen = Arc<Mutex<Vec<(Option<String>, Option<String>)>>>;

// One test: the subscriber, the exporter's channel and the receiver live as long as the runtime
// that created them, which is this test's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_real_otlp_receiver_with_their_structure() {
    let (receiver, addr) = Receiver::start().await;
    let config = TracingConfig {
        enabled: true,
        endpoint: format!("http://{addr}"),
        sampling_ratio: 1.0,
        service_name: "objectos-otlp-test".into(),
        resource: BTreeMap::from([("deployment.environment".into(), "test".into())]),
        ..TracingConfig::default()
    };
    let (layer, tracing) = objectos_metrics::otel::layer(&config, "9.9.9-test").unwrap();
    tracing_subscriber::registry()
        .with(layer)
        .try_init()
        .unwrap();

    let h = Harness::boot(MetricsConfig {
        token_env: "OBJECTOS_TEST_METRICS_TOKEN_UNSET".into(),
        tracing: config.clone(),
        ..MetricsConfig::default()
    })
    .await;
    // A subscriber of the record event: what context the event carries and the handler runs
    // in, and one statement through the plugin store API inside the handler.
    let engine = h.tk.engine.clone();
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    h.tk.kernel
        .bus()
        .subscribe(
            "test.observer",
            "data.contact.created",
            move |event: Arc<Event>| {
                let seen = seen2.clone();
                let engine = engine.clone();
                async move {
                    let current = objectos_kernel::trace::current().map(|h| h.traceparent);
                    let pool = engine.pool();
                    let sql = Sql::with(
                        pool.dialect(),
                        "SELECT COUNT(*) FROM \"contact\" WHERE \"name\" = ?",
                        vec!["Secret Value 42".into()],
                    )
                    .unwrap();
                    pool.fetch_all(sql).await.unwrap();
                    seen.lock()
                        .unwrap()
                        .push((event.traceparent().map(str::to_owned), current));
                    Ok(())
                }
            },
            SubscribeOptions::default(),
        )
        .unwrap();
    // A client that traces: its trace id is kept, its span is the request's parent.
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let (status, body) = h
        .http(
            "POST",
            "/api/v1/data/contact",
            &[("traceparent", &traceparent)],
            Some(r#"{"name":"Secret Value 42"}"#),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    let id = created["id"]
        .as_str()
        .or_else(|| created["record"]["id"].as_str())
        .or_else(|| created["data"]["id"].as_str())
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    // A malformed traceparent is ignored: the request starts a trace of its own.
    let (status, body) = h
        .http(
            "GET",
            &format!("/api/v1/data/contact/{id}"),
            &[("traceparent", "00-not-a-trace-01")],
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..200 {
        if !seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (carried, handled_in) = seen
        .lock()
        .unwrap()
        .first()
        .cloned()
        .expect("the subscriber got the record event");
    let carried = carried.expect("the event carries a traceparent");
    assert!(carried.starts_with(&format!("00-{TRACE_ID}-")), "{carried}");
    let handled_in = handled_in.expect("the handler runs in a traced span");
    assert!(
        handled_in.starts_with(&format!("00-{TRACE_ID}-")),
        "{handled_in}"
    );
    h.stop().await;
    let flusher = tracing.clone();
    tokio::task::spawn_blocking(move || flusher.flush())
        .await
        .unwrap();
    let spans = receiver.spans();
    assert!(
        spans.iter().all(|s| s.service == "objectos-otlp-test"),
        "{spans:#?}"
    );

    // The create request: in the client's trace, a child of the client's span.
    let request = one(&spans, "POST request span", |s| {
        s.attr("http.route") == Some("/api/v1/data/{object}") && s.name.starts_with("POST ")
    });
    assert_eq!(request.trace_id, TRACE_ID);
    assert_eq!(request.parent_id, PARENT_ID);
    assert_eq!(request.attr("http.response.status_code"), Some("201"));
    assert_eq!(request.attr("method"), Some("POST"));
    // request -> data.create -> SQL statements.
    let ops = children(&spans, request);
    let create = ops
        .iter()
        .find(|s| s.name == "data.create")
        .unwrap_or_else(|| panic!("no data.create under the request: {ops:#?}\nall: {spans:#?}"));
    assert_eq!(create.attr("object"), Some("contact"));
    let statements = children(&spans, create);
    let insert = statements
        .iter()
        .find(|s| s.name == "INSERT")
        .unwrap_or_else(|| panic!("no INSERT under data.create: {statements:#?}"));
    let sql = insert.attr("db.statement").unwrap();
    assert!(sql.contains("INSERT"), "{sql}");
    assert!(
        !sql.contains("Secret Value 42"),
        "values must not be traced: {sql}"
    );
    assert_eq!(insert.attr("db.system"), Some("sqlite"));
    assert!(
        spans.iter().all(|s| s
            .attributes
            .iter()
            .all(|(_, v)| !v.contains("Secret Value 42"))),
        "a record value reached a span: {spans:#?}"
    );

    // The event: written in data.create's span, handled in an `event.handle` span whose parent
    // is data.create, with the plugin's statement under it.
    let handle = one(&spans, "event.handle", |s| {
        s.name == "event.handle" && s.attr("event") == Some("data.contact.created")
    });
    assert_eq!(handle.trace_id, TRACE_ID);
    assert_eq!(handle.parent_id, create.span_id, "{spans:#?}");
    assert!(
        carried.contains(&create.span_id),
        "the event names data.create as its parent: {carried}"
    );
    let store_sql = children(&spans, handle);
    let count = store_sql
        .iter()
        .find(|s| s.name == "SELECT" && s.attr("db.caller") == Some("plugin"))
        .unwrap_or_else(|| panic!("no plugin statement under event.handle: {spans:#?}"));
    let text = count.attr("db.statement").unwrap();
    assert!(
        text.contains("COUNT(*)") && !text.contains("Secret"),
        "{text}"
    );

    // The read with a malformed traceparent: a new trace, no parent, still with its data span.
    let read = one(&spans, "GET request span", |s| {
        s.attr("http.route") == Some("/api/v1/data/{object}/{id}")
    });
    assert_ne!(read.trace_id, TRACE_ID);
    assert!(read.parent_id.is_empty(), "{read:?}");
    let get = children(&spans, read);
    let get = get.iter().find(|s| s.name == "data.get").unwrap();
    assert!(
        children(&spans, get).iter().any(|s| s.name == "SELECT"),
        "{spans:#?}"
    );

    // The plugin lifecycle: each start step a child of the boot.
    let boot = one(&spans, "kernel.boot", |s| s.name == "kernel.boot");
    let steps = children(&spans, boot);
    for step in ["plugin.init", "plugin.start"] {
        assert!(
            steps
                .iter()
                .any(|s| s.name == step && s.attr("plugin") == Some("com.objectos.data")),
            "{step}: {steps:#?}"
        );
    }
    assert!(
        spans
            .iter()
            .any(|s| s.name == "plugin.destroy" && s.attr("plugin") == Some("com.objectos.metrics")),
        "{spans:#?}"
    );
    // Dependencies' own spans stay out.
    assert!(
        spans
            .iter()
            .all(|s| !s.name.starts_with("hyper") && !s.name.starts_with("h2")),
        "{spans:#?}"
    );
    tokio::task::spawn_blocking(move || tracing.shutdown())
        .await
        .unwrap();
}
