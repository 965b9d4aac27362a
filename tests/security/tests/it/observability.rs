//! Observability as an operator meets it: `/metrics` and `/api/v1/metrics/prometheus` refuse a
//! scrape without the metrics token (401) and, with it, count a signed-in workload by route
//! template (never a record id); `/health` reports the database as a timed, required backend;
//! with `OBJECTOS_LOG_FORMAT=json` every log line is one JSON object, and the lines a request
//! writes carry its request id and, with `metrics.tracing` on, the trace id of the client's
//! `traceparent`. The collector configured here is not there: requests are answered all the same.
//!
//! [`traces`]: with a collector that is there (`objectos_testkit::otlp`, on loopback), a client's
//! `traceparent` on `POST /api/v1/jobs` reaches the job's `job.run` span (same trace, the request
//! span among its ancestors), a member's read shows its `permissions.check` span, an owner's
//! list its `permissions.filter` span, and the plugin statements of the jobs table their
//! `db.statement` spans; and `objectos_auth_sessions_active`
//! follows sign-ins and sign-outs exactly.

use serde_json::{Value, json};

use std::time::Duration;

use objectos_testkit::otlp::{Receiver, descends_from, one};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Api, Backend, Server, fixture_app, refused};

const TOKEN: &str = "metrics-token-Obs-7731-long";

/// The value of the series `name{labels...}` in a Prometheus text answer (0 when absent).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// The trace a client continues in the traced requests below.
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

pub(crate) async fn run(b: &Backend) {
    // Tracing on, towards a port where nothing listens (free a moment ago).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "{}metrics:\n  tracing:\n    enabled: true\n    endpoint: http://127.0.0.1:{closed}\n    timeoutSeconds: 1\n",
        crate::support::CONFIG
    );
    let srv = Server::start_with(
        b,
        &fixture_app(),
        &config,
        None,
        &[
            ("OBJECTOS_LOG_FORMAT", "json"),
            ("OBJECTOS_METRICS_TOKEN", TOKEN),
        ],
    )
    .await;
    let api = srv.api;
    let label = srv.label;
    let bearer = format!("Bearer {TOKEN}");

    for path in ["/metrics", "/api/v1/metrics/prometheus"] {
        let r = api.get(path, None).await;
        refused(&r, 401, "UNAUTHENTICATED");
        let r = api
            .send("GET", path, &[("authorization", "Bearer not-it")], None)
            .await;
        refused(&r, 401, "UNAUTHENTICATED");
        let r = api
            .send("GET", path, &[("authorization", &bearer)], None)
            .await;
        assert_eq!(r.status, 200, "[{label}] {path}: {}", r.text);
        assert!(
            r.text.contains("objectos_build_info"),
            "[{label}] {}",
            r.text
        );
    }

    let owner = srv.sign_up("obsowner", "Obs-Owner-Pw-1234").await;
    let before = api
        .send("GET", "/metrics", &[("authorization", &bearer)], None)
        .await
        .text;
    let created = api
        .post("/api/v1/data/memo", owner.t(), json!({"title": "observed"}))
        .await;
    assert_eq!(created.status, 201, "[{label}] {}", created.text);
    let id = created.body["id"]
        .as_str()
        .or(created.body["record"]["id"].as_str())
        .unwrap()
        .to_owned();
    let traced = "obs-request-4711";
    for _ in 0..3 {
        let r = api
            .send(
                "GET",
                &format!("/api/v1/data/memo/{id}"),
                &[
                    ("authorization", &format!("Bearer {}", owner.token)),
                    ("x-request-id", traced),
                    ("traceparent", &format!("00-{TRACE_ID}-b7ad6b7169203331-01")),
                ],
                None,
            )
            .await;
        assert_eq!(r.status, 200, "[{label}] {}", r.text);
    }
    // Failed sign-ins and a lockout: an unknown email, as many wrong attempts as
    // `lockout.maxFailedAttempts` (3) allows.
    for _ in 0..3 {
        let r = api
            .post(
                "/api/v1/auth/sign-in/email",
                None,
                json!({"email": "nobody-obs@example.com", "password": "Wrong-Pw-1234"}),
            )
            .await;
        assert!(r.status >= 400 && r.status < 500, "[{label}] {}", r.text);
    }
    // A member is no administrator: reading a memo takes a permission decision.
    let member = srv.sign_up("obsmember", "Obs-Member-Pw-1234").await;
    let r = api
        .get(&format!("/api/v1/data/memo/{id}"), member.t())
        .await;
    assert!(r.status < 500, "[{label}] {}", r.text);
    let after = api
        .send("GET", "/metrics", &[("authorization", &bearer)], None)
        .await
        .text;
    let by_id = [
        ("route", "/api/v1/data/{object}/{id}"),
        ("method", "GET"),
        ("status", "200"),
    ];
    let name = "objectos_http_requests_total";
    assert_eq!(
        sample(&after, name, &by_id) - sample(&before, name, &by_id),
        3.0,
        "[{label}] {after}"
    );
    let gets = [("operation", "get")];
    let ops = "objectos_data_operation_duration_seconds_count";
    assert!(
        sample(&after, ops, &gets) - sample(&before, ops, &gets) >= 3.0,
        "[{label}] {after}"
    );
    assert!(!after.contains(&id), "[{label}] a record id became a label");
    let moved = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    assert_eq!(
        moved("objectos_auth_sign_in_failures_total", &[]),
        3.0,
        "[{label}] {after}"
    );
    assert_eq!(
        moved("objectos_auth_lockouts_total", &[]),
        1.0,
        "[{label}] {after}"
    );
    assert_eq!(
        moved(
            "objectos_permissions_decisions_total",
            &[("operation", "read")]
        ),
        1.0,
        "[{label}] {after}"
    );
    assert!(
        moved("objectos_permissions_cache_hits_total", &[])
            + moved("objectos_permissions_cache_misses_total", &[])
            >= 1.0,
        "[{label}] {after}"
    );
    assert!(
        moved(
            "objectos_audit_append_duration_seconds_count",
            &[("path", "write")]
        ) >= 1.0,
        "[{label}] {after}"
    );

    // The database as a backend of the data plugin's health, timed.
    let health = api.get("/health", None).await;
    assert_eq!(health.status, 200, "[{label}] {}", health.text);
    let data = health.body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "com.objectos.data")
        .cloned()
        .unwrap();
    let db = &data["details"]["backends"][0];
    assert_eq!(db["name"], "database", "[{label}] {data}");
    assert_eq!(db["state"], "up", "[{label}] {data}");
    assert_eq!(db["required"], true, "[{label}] {data}");
    assert!(db["latencyMs"].as_f64().is_some(), "[{label}] {data}");
    assert!(db["lastCheck"].as_str().is_some(), "[{label}] {data}");
    assert_eq!(api.get("/ready", None).await.status, 200);

    // JSON logs: every line parses; the request's lines carry its id.
    let log = srv.log_text();
    let mut of_request = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("[{label}] not a JSON log line ({e}): {line}"));
        if v["span"]["request_id"] == traced {
            of_request += 1;
            assert_eq!(
                v["span"]["trace_id"], TRACE_ID,
                "[{label}] a line of the traced request without its trace id: {line}"
            );
        }
    }
    assert!(
        of_request >= 3,
        "[{label}] no log line carries request id {traced}:\n{log}"
    );
    assert!(
        !log.contains(TOKEN),
        "[{label}] the metrics token was logged"
    );
    srv.stop();
}

/// The trace the job test's client continues, and its own span.
const JOB_TRACE: &str = "5b8aa5a2d2c872e8321cf37308d69df2";
const JOB_PARENT: &str = "051581bf3cb55c13";
/// The trace of the member's read.
const READ_TRACE: &str = "6e0c63257de34c926f9efcd03899a1c5";
/// The trace of the owner's list, whose result the permissions filter.
const FILTER_TRACE: &str = "9f3c2b1a0e8d47c6b5a4938271605f4e";

/// A webhook target for the `http.request` job: answers 204 and keeps each request's
/// `traceparent` header (empty when none was sent).
async fn hook_target() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let traceparent = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("traceparent"))
                    .map(|(_, v)| v.trim().to_owned())
                    .unwrap_or_default();
                keep.lock().unwrap().push(traceparent);
                let _ = stream
                    .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (port, seen)
}

/// `objectos_auth_sessions_active` in a scrape now.
async fn active_sessions(api: &Api, bearer: &str) -> f64 {
    let text = api
        .send("GET", "/metrics", &[("authorization", bearer)], None)
        .await
        .text;
    sample(&text, "objectos_auth_sessions_active", &[])
}

pub(crate) async fn traces(b: &Backend) {
    let (receiver, otlp) = Receiver::start().await;
    let (hook_port, hooks) = hook_target().await;
    let config = format!(
        "{}metrics:\n  tracing:\n    enabled: true\n    endpoint: http://{otlp}\n    serviceName: objectos-e2e\njobs:\n  pollIntervalMs: 100\n  http:\n    allowHosts: [\"127.0.0.1:{hook_port}\"]\n",
        crate::support::CONFIG
    );
    let srv = Server::start_with(
        b,
        &fixture_app(),
        &config,
        None,
        // Export every 200 ms instead of every 5 s: the server is killed, not drained, at the end.
        &[
            ("OBJECTOS_METRICS_TOKEN", TOKEN),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    )
    .await;
    let api = &srv.api;
    let label = srv.label;
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        active_sessions(api, &bearer).await,
        0.0,
        "[{label}] no session yet"
    );

    let owner = srv.sign_up("traceowner", "Trace-Owner-Pw-1234").await;
    assert_eq!(
        active_sessions(api, &bearer).await,
        1.0,
        "[{label}] the owner's session"
    );

    // The request that enqueues a job, in the client's trace.
    let r = api
        .send(
            "POST",
            "/api/v1/jobs",
            &[
                ("authorization", &format!("Bearer {}", owner.token)),
                ("traceparent", &format!("00-{JOB_TRACE}-{JOB_PARENT}-01")),
            ],
            Some(&json!({"handler": "http.request",
                         "payload": {"url": format!("http://127.0.0.1:{hook_port}/traced")}})),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);

    // A member's read: a permission decision, in a trace of its own.
    let memo = api
        .post(
            "/api/v1/data/memo",
            owner.t(),
            json!({"title": "traced memo"}),
        )
        .await;
    assert_eq!(memo.status, 201, "[{label}] {}", memo.text);
    let id = memo.body["id"]
        .as_str()
        .or(memo.body["record"]["id"].as_str())
        .unwrap()
        .to_owned();
    let member = srv
        .create_user(&owner, "tracemember", "Trace-Member-Pw-1234")
        .await;
    assert_eq!(
        active_sessions(api, &bearer).await,
        2.0,
        "[{label}] the member signed in"
    );
    let r = api
        .send(
            "GET",
            &format!("/api/v1/data/memo/{id}"),
            &[
                ("authorization", &format!("Bearer {}", member.token)),
                ("traceparent", &format!("00-{READ_TRACE}-{JOB_PARENT}-01")),
            ],
            None,
        )
        .await;
    assert!(r.status < 500, "[{label}] {}", r.text);
    // A list in a sampled trace of its own: the permissions' after-hook filters its result in
    // a `permissions.filter` span.
    let r = api
        .send(
            "GET",
            "/api/v1/data/memo",
            &[
                ("authorization", &format!("Bearer {}", owner.token)),
                ("traceparent", &format!("00-{FILTER_TRACE}-{JOB_PARENT}-01")),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let r = api
        .send(
            "POST",
            "/api/v1/auth/sign-out",
            &[("authorization", &format!("Bearer {}", member.token))],
            Some(&json!({})),
        )
        .await;
    assert!(r.status < 300, "[{label}] sign-out: {}", r.text);
    assert_eq!(
        active_sessions(api, &bearer).await,
        1.0,
        "[{label}] the member signed out"
    );

    let spans = receiver
        .wait_until(Duration::from_secs(20), |spans| {
            spans
                .iter()
                .any(|s| s.name == "job.run" && s.trace_id == JOB_TRACE)
                && spans
                    .iter()
                    .any(|s| s.name == "permissions.check" && s.trace_id == READ_TRACE)
                && spans
                    .iter()
                    .any(|s| s.name == "permissions.filter" && s.trace_id == FILTER_TRACE)
        })
        .await;
    assert!(
        spans.iter().all(|s| s.service == "objectos-e2e"),
        "[{label}] {spans:#?}"
    );
    // request -> ... -> job.run, one trace.
    let request = one(&spans, "the enqueuing request", |s| {
        s.trace_id == JOB_TRACE && s.parent_id == JOB_PARENT
    });
    assert!(
        request.name.starts_with("POST /api/v1/jobs"),
        "[{label}] {request:?}"
    );
    let run = spans
        .iter()
        .find(|s| s.name == "job.run" && s.trace_id == JOB_TRACE)
        .unwrap();
    assert!(
        descends_from(&spans, run, request),
        "[{label}] job.run is not under the request: {spans:#?}"
    );
    // The jobs table is written through the plugin store API: its statements are traced too.
    assert!(
        spans.iter().any(|s| s.trace_id == JOB_TRACE
            && s.attr("db.caller") == Some("plugin")
            && s.attr("db.statement")
                .is_some_and(|t| t.contains("sys_job_run"))),
        "[{label}] no plugin statement on the jobs table in the trace: {spans:#?}"
    );
    // Whatever the job sent as its traceparent (if it sends one) is in the client's trace.
    for tp in hooks.lock().unwrap().iter().filter(|t| !t.is_empty()) {
        assert!(tp.contains(JOB_TRACE), "[{label}] webhook traceparent {tp}");
    }
    // The member's read: a permission decision on memo, with its outcome, no record values.
    let check = spans
        .iter()
        .find(|s| s.name == "permissions.check" && s.trace_id == READ_TRACE)
        .unwrap();
    assert_eq!(check.attr("object"), Some("memo"), "[{label}] {check:?}");
    assert_eq!(check.attr("operation"), Some("get"), "[{label}] {check:?}");
    assert!(
        matches!(check.attr("outcome"), Some("allow" | "deny")),
        "[{label}] {check:?}"
    );
    // The owner's list: the result filtered in a `permissions.filter` span below the request,
    // with the number of records and the outcome, no record values.
    let list = one(&spans, "the list request", |s| {
        s.trace_id == FILTER_TRACE && s.parent_id == JOB_PARENT
    });
    let filter = spans
        .iter()
        .find(|s| s.name == "permissions.filter" && s.trace_id == FILTER_TRACE)
        .unwrap();
    assert!(
        descends_from(&spans, filter, list),
        "[{label}] permissions.filter is not under the request: {spans:#?}"
    );
    assert_eq!(filter.attr("object"), Some("memo"), "[{label}] {filter:?}");
    assert_eq!(
        filter.attr("operation"),
        Some("find"),
        "[{label}] {filter:?}"
    );
    assert!(
        filter
            .attr("records")
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= 1),
        "[{label}] {filter:?}"
    );
    assert!(
        matches!(filter.attr("outcome"), Some("allow" | "bypass")),
        "[{label}] {filter:?}"
    );
    assert!(
        spans
            .iter()
            .all(|s| s.attributes.iter().all(|(_, v)| !v.contains("traced memo"))),
        "[{label}] a record value reached a span"
    );
    srv.stop();
}
