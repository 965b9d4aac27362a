//! `/api/v1/jobs`: administrators only; list, get, retry, cancel, dead letters and replay,
//! with 409 `INVALID_STATE` where the job's state does not allow the operation. An
//! organization's administrator reaches that organization's jobs only (anything else is 404,
//! like a missing job) and cannot enqueue; platform administrators reach every job.

use std::time::Duration;

use objectos_kernel::contracts::{EnqueueRequest, JobFailure, JobStatus, RetryPolicy, handler_fn};
use serde_json::{Value, json};

use crate::support::{ADMIN, Harness, ORG_A_ADMIN, ORG_B_ADMIN, Options, USER};

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

/// Jobs carry their organization; an organization's administrator sees and manages only
/// those, gets 404 (never 403) for another organization's job or a system job, and 403
/// `PLATFORM_ADMIN_REQUIRED` for an enqueue; the platform administrator reaches everything.
async fn organizations_see_only_their_jobs(url: &str) {
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
    let for_org = |org: Option<&str>, handler: &str, delay: bool| EnqueueRequest {
        organization_id: org.map(str::to_owned),
        delay: delay.then(|| Duration::from_secs(3600)),
        retry: Some(RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }),
        ..EnqueueRequest::new(handler, json!({ "org": org }))
    };
    let a_waiting = h
        .queue
        .enqueue(for_org(Some("org-a"), "noop", true))
        .await
        .unwrap()
        .id;
    let a_dead = h
        .queue
        .enqueue(for_org(Some("org-a"), "boom", false))
        .await
        .unwrap()
        .id;
    let b_waiting = h
        .queue
        .enqueue(for_org(Some("org-b"), "noop", true))
        .await
        .unwrap()
        .id;
    let b_dead = h
        .queue
        .enqueue(for_org(Some("org-b"), "boom", false))
        .await
        .unwrap()
        .id;
    let system = h
        .queue
        .enqueue(for_org(None, "boom", false))
        .await
        .unwrap()
        .id;
    h.wait_status(&a_dead, JobStatus::Dead).await;
    h.wait_status(&b_dead, JobStatus::Dead).await;
    h.wait_status(&system, JobStatus::Dead).await;
    // Rows carry the organization.
    let info = h.queue.get(&a_waiting).await.unwrap().unwrap();
    assert_eq!(info.organization_id.as_deref(), Some("org-a"));
    assert_eq!(
        h.queue.get(&system).await.unwrap().unwrap().organization_id,
        None
    );

    let ids = |body: &str| -> Vec<String> {
        let v: Value = serde_json::from_str(body).unwrap();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // Lists: A sees its two jobs, with their organization.
    let (s, body) = h.http("GET", "/api/v1/jobs", ORG_A_ADMIN, None).await;
    assert_eq!(s, 200, "{body}");
    let mut seen = ids(&body);
    seen.sort();
    let mut want = vec![a_waiting.clone(), a_dead.clone()];
    want.sort();
    assert_eq!(seen, want, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["total"], 2);
    assert_eq!(v["items"][0]["organizationId"], "org-a");
    let (s, body) = h
        .http("GET", "/api/v1/jobs/dead-letters", ORG_A_ADMIN, None)
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(ids(&body), std::slice::from_ref(&a_dead));
    // The platform administrator sees all five.
    let (s, body) = h.http("GET", "/api/v1/jobs", ADMIN, None).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(ids(&body).len(), 5, "{body}");

    // Another organization's job, or a system job, is not there for A: 404 like a missing one.
    for id in [&b_waiting, &b_dead, &system] {
        for (method, path) in [
            ("GET", format!("/api/v1/jobs/{id}")),
            ("POST", format!("/api/v1/jobs/{id}/retry")),
            ("POST", format!("/api/v1/jobs/{id}/cancel")),
            ("POST", format!("/api/v1/jobs/dead-letters/{id}/replay")),
        ] {
            let (s, body) = h.http(method, &path, ORG_A_ADMIN, None).await;
            assert_eq!(s, 404, "{method} {path}: {body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["code"], "NOT_FOUND");
        }
    }
    let (s, missing) = h.http("GET", "/api/v1/jobs/nope", ORG_A_ADMIN, None).await;
    assert_eq!(s, 404);
    let (_, foreign) = h
        .http(
            "GET",
            &format!("/api/v1/jobs/{b_waiting}"),
            ORG_A_ADMIN,
            None,
        )
        .await;
    assert_eq!(
        missing.replace("nope", "ID"),
        foreign.replace(b_waiting.as_str(), "ID"),
        "a foreign job reads exactly like a missing one"
    );
    // Nothing changed for B.
    assert_eq!(
        h.queue.get(&b_waiting).await.unwrap().unwrap().status,
        JobStatus::Scheduled
    );
    assert_eq!(
        h.queue.get(&b_dead).await.unwrap().unwrap().status,
        JobStatus::Dead
    );

    // A manages its own jobs.
    let (s, body) = h
        .http(
            "POST",
            &format!("/api/v1/jobs/{a_waiting}/cancel"),
            ORG_A_ADMIN,
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = h
        .http(
            "POST",
            &format!("/api/v1/jobs/dead-letters/{a_dead}/replay"),
            ORG_A_ADMIN,
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    // B's administrator sees B's jobs only.
    let (s, body) = h.http("GET", "/api/v1/jobs", ORG_B_ADMIN, None).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(ids(&body).len(), 2, "{body}");
    assert!(!body.contains(a_waiting.as_str()), "{body}");

    // Enqueue over HTTP: platform administrators only, with a stable code.
    let enqueue = json!({ "handler": "noop", "payload": {} });
    let (s, body) = h
        .http("POST", "/api/v1/jobs", ORG_A_ADMIN, Some(enqueue.clone()))
        .await;
    assert_eq!(s, 403, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "PLATFORM_ADMIN_REQUIRED");
    let (s, body) = h.http("POST", "/api/v1/jobs", ADMIN, Some(enqueue)).await;
    assert_eq!(s, 200, "{body}");
    // An administrator acting in no organization who is no platform administrator: 403.
    let (s, body) = h
        .http(
            "GET",
            "/api/v1/jobs",
            &[("x-test-user", "carol"), ("x-test-admin", "1")],
            None,
        )
        .await;
    assert_eq!(s, 403, "{body}");

    // The platform administrator manages anyone's job.
    let (s, body) = h
        .http(
            "POST",
            &format!("/api/v1/jobs/{b_waiting}/cancel"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");

    // Under /api/v1/data the engine scopes sys_job_run to the request's organization.
    let (s, body) = h
        .http("GET", "/api/v1/data/sys_job_run", ORG_A_ADMIN, None)
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains(a_waiting.as_str()), "{body}");
    assert!(!body.contains(b_waiting.as_str()), "{body}");
    assert!(!body.contains(system.as_str()), "{body}");
    h.stop().await;
}
on_both!(organizations_see_only_their_jobs);

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
