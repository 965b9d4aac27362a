//! `/api/v1/jobs`: administrators only; list, get, retry, cancel, dead letters and replay,
//! with 409 `INVALID_STATE` where the job's state does not allow the operation. An
//! organization's administrator reaches that organization's jobs only (anything else is 404,
//! like a missing job) and cannot enqueue; platform administrators reach every job.

use std::time::Duration;

use objectos_kernel::contracts::{EnqueueRequest, JobFailure, JobStatus, RetryPolicy, handler_fn};
use objectos_testkit::{Client, Request, Response, Who};
use serde_json::{Value, json};

use crate::support::{Harness, Options, admin, org_a_admin, org_b_admin, user};

/// A node with a handler that succeeds (`noop`) and one that fails for good (`boom`).
async fn boot(url: &str) -> Harness {
    Harness::boot(
        url,
        Options::handlers(vec![
            ("noop".into(), handler_fn(|_| async { Ok(()) })),
            (
                "boom".into(),
                handler_fn(|_| async { Err(JobFailure::fatal("boom")) }),
            ),
        ]),
    )
    .await
}

/// A job of `handler` for `org` (none: a system job), tried once, an hour from now when
/// `waiting`; its payload names both.
fn job(handler: &str, org: Option<&str>, waiting: bool) -> EnqueueRequest {
    EnqueueRequest {
        organization_id: org.map(str::to_owned),
        delay: waiting.then(|| Duration::from_secs(3600)),
        retry: Some(RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }),
        ..EnqueueRequest::new(handler, json!({ "handler": handler, "org": org }))
    }
}

/// The ids of a list answer's items.
fn ids(list: &Value) -> Vec<String> {
    let mut out: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut out: Vec<String> = ids.iter().map(|s| (*s).clone()).collect();
    out.sort();
    out
}

/// `POST path` without a body (retry, cancel, replay).
async fn post(client: &Client, path: &str) -> Response {
    client.send(Request::new("POST", path)).await
}

async fn routes(url: &str) {
    let h = boot(url).await;
    let done = h.enqueue(job("noop", None, false)).await;
    let waiting = h.enqueue(job("noop", None, true)).await;
    let dead = h.enqueue(job("boom", None, false)).await;
    h.wait_status(&done, JobStatus::Completed).await;
    h.wait_status(&dead, JobStatus::Dead).await;
    let (admin, user) = (h.client(admin()), h.client(user()));

    // Access.
    let r = h.client(Who::anonymous()).get("/api/v1/jobs").await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = user.get("/api/v1/jobs").await;
    assert_eq!(r.expect_json(403)["code"], "PERMISSION_DENIED");
    let r = post(&user, &format!("/api/v1/jobs/{dead}/retry")).await;
    assert_eq!(r.status, 403);

    // List and filters.
    let v = admin.get("/api/v1/jobs").await.ok_json();
    assert_eq!(v["total"], 3);
    let v = admin
        .get("/api/v1/jobs?status=completed&limit=5")
        .await
        .ok_json();
    assert_eq!(v["total"], 1);
    assert_eq!(v["items"][0]["id"], done.as_str());
    assert_eq!(
        v["items"][0]["payload"],
        json!({"handler": "noop", "org": null})
    );
    let r = admin.get("/api/v1/jobs?status=bogus").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("status"), "{}", r.text());

    // Get.
    let v = admin
        .get(&format!("/api/v1/jobs/{waiting}"))
        .await
        .ok_json();
    assert_eq!(v["status"], "scheduled");
    let r = admin.get("/api/v1/jobs/missing").await;
    assert_eq!(r.status, 404, "{}", r.text());

    // Retry of a waiting job, cancel of a finished one: 409.
    let r = post(&admin, &format!("/api/v1/jobs/{waiting}/retry")).await;
    assert_eq!(r.expect_json(409)["code"], "INVALID_STATE");
    let r = post(&admin, &format!("/api/v1/jobs/{done}/cancel")).await;
    assert_eq!(r.expect_json(409)["code"], "INVALID_STATE");

    // Cancel the waiting job.
    let r = post(&admin, &format!("/api/v1/jobs/{waiting}/cancel")).await;
    assert_eq!(r.ok_json()["status"], "cancelled");

    // Dead letters and replay.
    let v = admin.get("/api/v1/jobs/dead-letters").await.ok_json();
    assert_eq!(v["total"], 1);
    assert_eq!(v["items"][0]["id"], dead.as_str());
    assert_eq!(v["items"][0]["error"], "boom");
    let r = post(&admin, &format!("/api/v1/jobs/dead-letters/{done}/replay")).await;
    assert_eq!(r.status, 409, "{}", r.text());
    let v = post(&admin, &format!("/api/v1/jobs/dead-letters/{dead}/replay"))
        .await
        .ok_json();
    assert_eq!(v["status"], "pending");
    assert_eq!(v["attempts"], 0);
    h.wait_status(&dead, JobStatus::Dead).await;

    // Job runs are records of the sys_job_run object.
    let r = admin.get("/api/v1/data/sys_job_run").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(done.as_str()), "{}", r.text());
    h.stop().await;
}
on_both!(routes);

/// Jobs carry their organization; an organization's administrator sees and manages only
/// those, gets 404 (never 403) for another organization's job or a system job, and 403
/// `PLATFORM_ADMIN_REQUIRED` for an enqueue; the platform administrator reaches everything.
async fn organizations_see_only_their_jobs(url: &str) {
    let h = boot(url).await;
    let a_waiting = h.enqueue(job("noop", Some("org-a"), true)).await;
    let a_dead = h.enqueue(job("boom", Some("org-a"), false)).await;
    let b_waiting = h.enqueue(job("noop", Some("org-b"), true)).await;
    let b_dead = h.enqueue(job("boom", Some("org-b"), false)).await;
    let system = h.enqueue(job("boom", None, false)).await;
    for id in [&a_dead, &b_dead, &system] {
        h.wait_status(id, JobStatus::Dead).await;
    }
    // Rows carry the organization.
    let info = h.queue.get(&a_waiting).await.unwrap().unwrap();
    assert_eq!(info.organization_id.as_deref(), Some("org-a"));
    assert_eq!(
        h.queue.get(&system).await.unwrap().unwrap().organization_id,
        None
    );
    let (admin, a, b) = (
        h.client(admin()),
        h.client(org_a_admin()),
        h.client(org_b_admin()),
    );

    // Lists: A sees its two jobs, with their organization.
    let v = a.get("/api/v1/jobs").await.ok_json();
    assert_eq!(ids(&v), sorted(&[&a_waiting, &a_dead]), "{v}");
    assert_eq!(v["total"], 2);
    assert_eq!(v["items"][0]["organizationId"], "org-a");
    let v = a.get("/api/v1/jobs/dead-letters").await.ok_json();
    assert_eq!(ids(&v), std::slice::from_ref(&a_dead));
    // The platform administrator sees all five.
    let v = admin.get("/api/v1/jobs").await.ok_json();
    assert_eq!(ids(&v).len(), 5, "{v}");

    // Another organization's job, or a system job, is not there for A: 404 like a missing one.
    for id in [&b_waiting, &b_dead, &system] {
        for (method, path) in [
            ("GET", format!("/api/v1/jobs/{id}")),
            ("POST", format!("/api/v1/jobs/{id}/retry")),
            ("POST", format!("/api/v1/jobs/{id}/cancel")),
            ("POST", format!("/api/v1/jobs/dead-letters/{id}/replay")),
        ] {
            let r = a.send(Request::new(method, &path)).await;
            assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
            assert_eq!(r.code(), "NOT_FOUND");
        }
    }
    let missing = a.get("/api/v1/jobs/nope").await;
    assert_eq!(missing.status, 404);
    let foreign = a.get(&format!("/api/v1/jobs/{b_waiting}")).await;
    assert_eq!(
        missing.text().replace("nope", "ID"),
        foreign.text().replace(b_waiting.as_str(), "ID"),
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
    post(&a, &format!("/api/v1/jobs/{a_waiting}/cancel"))
        .await
        .ok_json();
    post(&a, &format!("/api/v1/jobs/dead-letters/{a_dead}/replay"))
        .await
        .ok_json();
    // B's administrator sees B's jobs only.
    let v = b.get("/api/v1/jobs").await.ok_json();
    assert_eq!(ids(&v), sorted(&[&b_waiting, &b_dead]), "{v}");

    // Enqueue over HTTP: platform administrators only, with a stable code.
    let enqueue = json!({ "handler": "noop", "payload": {} });
    let r = a.post("/api/v1/jobs", &enqueue).await;
    assert_eq!(r.expect_json(403)["code"], "PLATFORM_ADMIN_REQUIRED");
    admin.post("/api/v1/jobs", &enqueue).await.ok_json();
    // An administrator acting in no organization who is no platform administrator: 403.
    let mut carol = Who::user("carol");
    carol.admin = true;
    let r = h.client(carol).get("/api/v1/jobs").await;
    assert_eq!(r.status, 403, "{}", r.text());

    // The platform administrator manages anyone's job.
    post(&admin, &format!("/api/v1/jobs/{b_waiting}/cancel"))
        .await
        .ok_json();

    // Under /api/v1/data the engine scopes sys_job_run to the request's organization.
    let r = a.get("/api/v1/data/sys_job_run").await;
    let body = r.text();
    assert_eq!(r.status, 200, "{body}");
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
