//! `/api/v1/jobs`: administrators only; list, get, retry, cancel, dead letters and replay,
//! with 409 `INVALID_STATE` where the job's state does not allow the operation.

use std::time::Duration;

use objectos_kernel::contracts::{EnqueueRequest, JobFailure, JobStatus, RetryPolicy, handler_fn};
use serde_json::{Value, json};

use crate::support::{ADMIN, Harness, Options, USER};

async fn routes(url: &str) {
    let h = Harness::boot(
        url,
        Options {
            handlers: vec![
                ("noop".into(), handler_fn(|_| async { Ok(()) })),
                (
                    "boom".into(),
                    handler_fn(|_| async { Err(JobFailure::fatal("boom")) }),
                ),
            ],
            ..Options::default()
        },
    )
    .await;
    let done = h
        .queue
        .enqueue(EnqueueRequest::new("noop", json!({"a": 1})))
        .await
        .unwrap()
        .id;
    let waiting = h
        .queue
        .enqueue(EnqueueRequest {
            delay: Some(Duration::from_secs(3600)),
            ..EnqueueRequest::new("noop", json!(null))
        })
        .await
        .unwrap()
        .id;
    let dead = h
        .queue
        .enqueue(EnqueueRequest {
            retry: Some(RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            }),
            ..EnqueueRequest::new("boom", json!(null))
        })
        .await
        .unwrap()
        .id;
    h.wait_status(&done, JobStatus::Completed).await;
    h.wait_status(&dead, JobStatus::Dead).await;

    // Access.
    let (s, body) = h.http("GET", "/api/v1/jobs", &[], None).await;
    assert_eq!(s, 401, "{body}");
    let (s, body) = h.http("GET", "/api/v1/jobs", USER, None).await;
    assert_eq!(s, 403, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "PERMISSION_DENIED");
    let (s, _) = h
        .http("POST", &format!("/api/v1/jobs/{dead}/retry"), USER, None)
        .await;
    assert_eq!(s, 403);

    // List and filters.
    let (s, body) = h.http("GET", "/api/v1/jobs", ADMIN, None).await;
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["total"], 3);
    let (s, body) = h
        .http("GET", "/api/v1/jobs?status=completed&limit=5", ADMIN, None)
        .await;
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["total"], 1);
    assert_eq!(v["items"][0]["id"], done.as_str());
    assert_eq!(v["items"][0]["payload"], json!({"a": 1}));
    let (s, body) = h
        .http("GET", "/api/v1/jobs?status=bogus", ADMIN, None)
        .await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("status"), "{body}");

    // Get.
    let (s, body) = h
        .http("GET", &format!("/api/v1/jobs/{waiting}"), ADMIN, None)
        .await;
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "scheduled");
    let (s, body) = h.http("GET", "/api/v1/jobs/missing", ADMIN, None).await;
    assert_eq!(s, 404, "{body}");

    // Retry of a waiting job, cancel of a finished one: 409.
    let (s, body) = h
        .http(
            "POST",
            &format!("/api/v1/jobs/{waiting}/retry"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(s, 409, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "INVALID_STATE");
    let (s, body) = h
        .http("POST", &format!("/api/v1/jobs/{done}/cancel"), ADMIN, None)
        .await;
    assert_eq!(s, 409, "{body}");
    assert!(body.contains("INVALID_STATE"), "{body}");

    // Cancel the waiting job.
    let (s, body) = h
        .http(
            "POST",
            &format!("/api/v1/jobs/{waiting}/cancel"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "cancelled");

    // Dead letters and replay.
    let (s, body) = h
        .http("GET", "/api/v1/jobs/dead-letters", ADMIN, None)
        .await;
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["total"], 1);
    assert_eq!(v["items"][0]["id"], dead.as_str());
    assert_eq!(v["items"][0]["error"], "boom");
    let (s, body) = h
        .http(
            "POST",
            &format!("/api/v1/jobs/dead-letters/{done}/replay"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(s, 409, "{body}");
    let (s, body) = h
        .http(
            "POST",
            &format!("/api/v1/jobs/dead-letters/{dead}/replay"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "pending");
    assert_eq!(v["attempts"], 0);
    h.wait_status(&dead, JobStatus::Dead).await;

    // Job runs are records of the sys_job_run object.
    let (s, body) = h.http("GET", "/api/v1/data/sys_job_run", ADMIN, None).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains(done.as_str()), "{body}");
    h.stop().await;
}
on_both!(routes);

#[test]
fn every_route_is_documented() {
    let service = std::sync::Arc::new(objectos_jobs::JobsService::new(
        objectos_jobs::JobsSettings::default(),
    ));
    let contribution = objectos_http::RouteContribution::new("jobs", move || {
        objectos_jobs::routes::router_for_tests(service.clone())
    })
    .operations(objectos_jobs::routes::operations());
    assert!(
        contribution.undocumented().is_empty(),
        "{:?}",
        contribution.undocumented()
    );
}
