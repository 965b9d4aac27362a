//! Observability as an operator meets it: `/metrics` and `/api/v1/metrics/prometheus` refuse a
//! scrape without the metrics token (401) and, with it, count a signed-in workload by route
//! template (never a record id); `/health` reports the database as a timed, required backend;
//! with `OBJECTOS_LOG_FORMAT=json` every log line is one JSON object, and the lines a request
//! writes carry its request id and, with `metrics.tracing` on, the trace id of the client's
//! `traceparent`. The collector configured here is not there: requests are answered all the same.

use serde_json::{Value, json};

use crate::support::{Backend, Server, fixture_app, refused};

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
