//! The built-in `http.request` handler and `POST /api/v1/jobs`: jobs enqueued over HTTP reach
//! a receiver on loopback (allowed in `jobs.http.allowHosts`), a 500 is retried and then
//! dead-lettered, a schedule posts `{schedule, tick}`, and bad enqueues are refused with their
//! codes, nothing stored.

use std::sync::Arc;
use std::time::Duration;

use objectos_jobs::JobsSettings;
use objectos_kernel::contracts::JobStatus;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use objectos_testkit::Who;

use crate::support::{Harness, Options, admin, fast_settings, user};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Value,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny HTTP/1.1 receiver on loopback: records every request and answers 500 to paths
/// starting with `/fail`, 204 to the rest.
pub(crate) struct Receiver {
    pub(crate) port: u16,
    pub(crate) got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = got.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Head, then as much body as content-length says.
                    let (head, mut body) = loop {
                        let Ok(n) = stream.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break (
                                String::from_utf8_lossy(&buf[..at]).into_owned(),
                                buf[at + 4..].to_vec(),
                            );
                        }
                    };
                    let mut lines = head.lines();
                    let first = lines.next().unwrap_or_default().to_owned();
                    let headers: Vec<(String, String)> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect();
                    let len: usize = headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    while body.len() < len {
                        let Ok(n) = stream.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            break;
                        }
                        body.extend_from_slice(&chunk[..n]);
                    }
                    let mut parts = first.split_whitespace();
                    let method = parts.next().unwrap_or_default().to_owned();
                    let path = parts.next().unwrap_or_default().to_owned();
                    let fail = path.starts_with("/fail");
                    sink.lock().push(Received {
                        method,
                        path,
                        headers,
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    });
                    let answer = if fail {
                        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope"
                    } else {
                        "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"
                    };
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Receiver { port, got, task }
    }

    pub(crate) fn to(&self, path: &str) -> Vec<Received> {
        self.got
            .lock()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

fn settings_allowing(port: u16) -> JobsSettings {
    let mut s = fast_settings();
    s.http.allow_hosts = vec![format!("127.0.0.1:{port}")];
    s
}

/// `POST /api/v1/jobs` as `who`: the status and the JSON answer.
async fn post(h: &Harness, who: Who, body: Value) -> (u16, Value) {
    let r = h.client(who).post("/api/v1/jobs", &body).await;
    (r.status, r.json())
}

#[track_caller]
fn refused(got: &(u16, Value), code: &str) {
    assert_eq!(got.0, 400, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    assert!(
        !got.1["message"].as_str().unwrap_or_default().is_empty(),
        "{}",
        got.1
    );
}

async fn http_handler(url: &str) {
    let rx = Receiver::start().await;
    let base = format!("http://127.0.0.1:{}", rx.port);
    let every_second = format!(
        "name: ping\nschedule: '* * * * * *'\nhandler: http.request\npayload:\n  url: {base}/tick\n"
    );
    let h = Harness::boot(
        url,
        Options {
            settings: settings_allowing(rx.port),
            files: vec![("ping.job.yml".into(), every_second)],
            ..Options::default()
        },
    )
    .await;

    // Access.
    let job = json!({"handler": "http.request", "payload": {"url": format!("{base}/ok")}});
    assert_eq!(post(&h, Who::anonymous(), job.clone()).await.0, 401);
    let r = post(&h, user(), job.clone()).await;
    assert_eq!(r.0, 403, "{}", r.1);
    assert_eq!(r.1["code"], "PERMISSION_DENIED");

    // Refusals, each with its code; nothing is stored.
    refused(
        &post(&h, admin(), json!({"handler": "no.such", "payload": {}})).await,
        "UNKNOWN_HANDLER",
    );
    refused(&post(&h, admin(), json!([1, 2])).await, "INVALID_BODY");
    refused(
        &post(&h, admin(), json!({"handler": "http.request", "bogus": 1})).await,
        "INVALID_BODY",
    );
    refused(
        &post(
            &h,
            admin(),
            json!({"handler": "http.request", "payload": {"url": format!("{base}/ok")}, "queue": "nope"}),
        )
        .await,
        "UNKNOWN_QUEUE",
    );
    refused(
        &post(
            &h,
            admin(),
            json!({"handler": "http.request", "payload": {"url": format!("{base}/ok")}, "maxAttempts": 0}),
        )
        .await,
        "INVALID_BODY",
    );
    refused(
        &post(
            &h,
            admin(),
            json!({"handler": "http.request", "payload": {"url": format!("{base}/ok")}, "runAt": "tomorrow"}),
        )
        .await,
        "INVALID_BODY",
    );
    let other_port = post(
        &h,
        admin(),
        json!({"handler": "http.request", "payload": {"url": format!("http://127.0.0.1:{}/x", rx.port.wrapping_add(1))}}),
    )
    .await;
    refused(&other_port, "INVALID_PAYLOAD");
    assert!(
        other_port.1["message"]
            .as_str()
            .unwrap()
            .contains("allowHosts"),
        "{}",
        other_port.1
    );
    refused(
        &post(
            &h,
            admin(),
            json!({"handler": "http.request", "payload": {"url": format!("{base}/ok"), "method": "TRACE"}}),
        )
        .await,
        "INVALID_PAYLOAD",
    );
    let before = h
        .client(admin())
        .get("/api/v1/jobs?handler=http.request")
        .await
        .ok_json();
    let stored_before = before["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["schedule"].is_null())
        .count();
    assert_eq!(stored_before, 0, "{before}");

    // A request that completes: POST with the JSON body and the job's headers.
    let ok = post(
        &h,
        admin(),
        json!({"handler": "http.request", "priority": 5, "maxAttempts": 2,
               "payload": {"url": format!("{base}/ok"), "body": {"a": 1}, "headers": {"X-Token": "t1"}}}),
    )
    .await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    assert_eq!(ok.1["created"], true);
    assert_eq!(ok.1["job"]["maxAttempts"], 2);
    assert_eq!(ok.1["job"]["priority"], 5);
    let id = ok.1["id"].as_str().unwrap().to_owned();
    h.wait_status(&id, JobStatus::Completed).await;
    let got = rx.to("/ok");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].body, json!({"a": 1}));
    assert_eq!(got[0].header("idempotency-key"), Some(id.as_str()));
    assert_eq!(got[0].header("x-objectos-job-id"), Some(id.as_str()));
    assert_eq!(got[0].header("x-objectos-attempt"), Some("1"));
    assert_eq!(got[0].header("x-token"), Some("t1"));
    assert_eq!(got[0].header("content-type"), Some("application/json"));

    // An idempotency key: a second enqueue while the first waits returns the first.
    let delayed = json!({"handler": "http.request", "delayMs": 3_600_000, "idempotencyKey": "k-1",
                         "payload": {"url": format!("{base}/later"), "method": "PUT"}});
    let first = post(&h, admin(), delayed.clone()).await;
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(first.1["job"]["status"], "scheduled");
    let second = post(&h, admin(), delayed).await;
    assert_eq!(second.0, 200, "{}", second.1);
    assert_eq!(second.1["created"], false);
    assert_eq!(second.1["id"], first.1["id"]);

    // A 500 is retried, then dead-lettered with the status in its error.
    let failing = post(
        &h,
        admin(),
        json!({"handler": "http.request", "maxAttempts": 2, "payload": {"url": format!("{base}/fail")}}),
    )
    .await;
    assert_eq!(failing.0, 200, "{}", failing.1);
    let dead = h
        .wait_status(failing.1["id"].as_str().unwrap(), JobStatus::Dead)
        .await;
    assert_eq!(dead.attempts, 2, "{dead:?}");
    let error = dead.error.unwrap_or_default();
    assert!(error.contains("500") && error.contains("nope"), "{error}");
    assert_eq!(rx.to("/fail").len(), 2);

    // The schedule posts {schedule, tick} once per tick.
    let mut ticks = Vec::new();
    for _ in 0..300 {
        ticks = rx.to("/tick");
        if ticks.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ticks.len() >= 2, "{ticks:?}");
    assert_eq!(ticks[0].body["schedule"], "ping", "{:?}", ticks[0]);
    assert!(ticks[0].body["tick"].is_i64(), "{:?}", ticks[0]);
    assert_eq!(ticks[0].header("x-objectos-schedule"), Some("ping"));
    assert_ne!(ticks[0].body["tick"], ticks[1].body["tick"]);
    h.stop().await;
}
on_both!(http_handler);

/// Without `jobs.http.allowHosts` the handler refuses every URL, and a schedule whose payload
/// it refuses turns the plugin degraded with the file named.
async fn http_handler_allows_nothing_by_default(url: &str) {
    let bad_schedule = "name: ping\nschedule: '0 3 * * *'\nhandler: http.request\npayload:\n  url: https://hooks.example.com/x\n";
    let h = Harness::boot(
        url,
        Options {
            files: vec![("ping.job.yml".into(), bad_schedule.into())],
            ..Options::default()
        },
    )
    .await;
    let r = post(
        &h,
        admin(),
        json!({"handler": "http.request", "payload": {"url": "https://hooks.example.com/x"}}),
    )
    .await;
    refused(&r, "INVALID_PAYLOAD");
    assert!(
        r.1["message"]
            .as_str()
            .unwrap()
            .contains("jobs.http.allowHosts is empty"),
        "{}",
        r.1
    );
    let problems = h.service.check_schedules();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("ping.job.yml: payload: url: host `hooks.example.com` is not allowed"),
        "{problems:?}"
    );
    h.stop().await;
}
on_both!(http_handler_allows_nothing_by_default);

#[test]
fn a_bad_allow_hosts_entry_stops_the_start_with_its_path() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = objectos_testkit::TestDatabase::sqlite_file();
        let mut settings = fast_settings();
        settings.http.allow_hosts = vec!["https://hooks.example.com/x".into()];
        let err = Harness::try_boot(
            &db.url,
            Options {
                settings,
                ..Options::default()
            },
        )
        .await
        .err()
        .unwrap();
        assert!(err.contains("jobs.http.allowHosts.0"), "{err}");
        db.cleanup().await;
    });
}
