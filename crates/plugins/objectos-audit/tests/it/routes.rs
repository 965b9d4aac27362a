//! The `/api/v1/audit` routes: access control, filters, paging, trail, export.

use serde_json::{Value, json};

use crate::support::{ADMIN, Harness, rec, user_cx};

async fn routes_scenario(h: &Harness) {
    let e = &h.engine;
    let alice = user_cx("alice");
    let bob = user_cx("bob");
    let a = e
        .create(&alice, "task", rec(json!({"title": "a1"})))
        .await
        .unwrap();
    let aid = a["id"].as_str().unwrap().to_owned();
    e.update(&alice, "task", &aid, rec(json!({"title": "a2"})), None)
        .await
        .unwrap();
    for i in 0..5 {
        e.create(
            &bob,
            "contact",
            rec(json!({"name": format!("c{i}"), "api_token": "s3cr3t"})),
        )
        .await
        .unwrap();
    }

    // Access: anonymous 401, non-admin 403, both in the error shape.
    for path in [
        "/api/v1/audit/events",
        "/api/v1/audit/export?format=csv",
        "/api/v1/audit/trail/task/x",
        "/api/v1/audit/history/task/x",
        "/api/v1/audit/verify",
    ] {
        let (s, body) = h.http("GET", path, &[], None).await;
        assert_eq!(s, 401, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "UNAUTHENTICATED");
        assert_eq!(v["error"], v["message"]);
        let (s, body) = h.http("GET", path, &[("x-test-user", "bob")], None).await;
        assert_eq!(s, 403, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "PERMISSION_DENIED");
    }

    // Filters.
    let v = h.get_json("/api/v1/audit/events", ADMIN).await;
    assert_eq!(v["total"], 7);
    let v = h.get_json("/api/v1/audit/events?actor=alice", ADMIN).await;
    assert_eq!(v["total"], 2);
    let v = h
        .get_json("/api/v1/audit/events?eventType=data.update", ADMIN)
        .await;
    assert_eq!(v["total"], 1);
    assert_eq!(
        v["events"][0]["changes"],
        json!([{"field": "title", "oldValue": "a1", "newValue": "a2"}])
    );
    let v = h
        .get_json(
            "/api/v1/audit/events?eventType=data.*&object=contact",
            ADMIN,
        )
        .await;
    assert_eq!(v["total"], 5);
    let v = h
        .get_json(
            &format!("/api/v1/audit/events?object=task&recordId={aid}"),
            ADMIN,
        )
        .await;
    assert_eq!(v["total"], 2);
    let v = h
        .get_json("/api/v1/audit/events?from=2000-01-01&to=2000-01-02", ADMIN)
        .await;
    assert_eq!(v["total"], 0);
    let v = h
        .get_json("/api/v1/audit/events?from=2000-01-01T00:00:00Z", ADMIN)
        .await;
    assert_eq!(v["total"], 7);
    // `from` is inclusive and `to` exclusive, to the millisecond, although the query also
    // narrows on the (time-ordered) ids.
    let newest = h.get_json("/api/v1/audit/events?limit=1", ADMIN).await;
    let ts = newest["events"][0]["timestamp"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = h
        .get_json(&format!("/api/v1/audit/events?from={ts}"), ADMIN)
        .await;
    assert!(v["total"].as_u64().unwrap() >= 1, "{v}");
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["timestamp"].as_str().unwrap() >= ts.as_str()),
        "{v}"
    );
    let v = h
        .get_json(&format!("/api/v1/audit/events?to={ts}"), ADMIN)
        .await;
    let before = v["total"].as_u64().unwrap();
    let at = h
        .get_json(
            &format!("/api/v1/audit/events?from={ts}&to=2999-01-01"),
            ADMIN,
        )
        .await;
    assert_eq!(before + at["total"].as_u64().unwrap(), 7, "{v} {at}");
    let v = h.get_json("/api/v1/audit/events?tenant=nope", ADMIN).await;
    assert_eq!(v["total"], 0);
    let (s, body) = h
        .http("GET", "/api/v1/audit/events?from=yesterday", ADMIN, None)
        .await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("\"param\":\"from\""), "{body}");
    let (s, _) = h
        .http("GET", "/api/v1/audit/events?limit=-1", ADMIN, None)
        .await;
    assert_eq!(s, 400);

    // Offset paging, newest first.
    let p1 = h.get_json("/api/v1/audit/events?limit=3", ADMIN).await;
    let p3 = h
        .get_json("/api/v1/audit/events?limit=3&offset=6", ADMIN)
        .await;
    assert_eq!(p1["events"].as_array().unwrap().len(), 3);
    assert_eq!(p1["hasMore"], true);
    assert_eq!(p3["events"].as_array().unwrap().len(), 1);
    assert_eq!(p3["hasMore"], false);
    assert_eq!(p3["events"][0]["eventType"], "data.create");
    assert_eq!(p3["events"][0]["object"], "task");
    // Cursor paging walks every event once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let v = h
            .get_json(
                &format!("/api/v1/audit/events?limit=3&cursor={cursor}"),
                ADMIN,
            )
            .await;
        for e in v["events"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_owned());
        }
        match v["nextCursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted);

    // Trail of one record.
    let v = h
        .get_json(&format!("/api/v1/audit/trail/task/{aid}"), ADMIN)
        .await;
    let types: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["data.update", "data.create"]);

    // Export: JSON array and CSV, with the same filters; secrets never appear.
    let v = h
        .get_json("/api/v1/audit/export?format=json&object=contact", ADMIN)
        .await;
    assert_eq!(v.as_array().unwrap().len(), 5);
    let (s, csv) = h
        .http("GET", "/api/v1/audit/export?format=csv", ADMIN, None)
        .await;
    assert_eq!(s, 200);
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(lines.len(), 8, "{csv}");
    assert!(lines[0].starts_with("id,tenantId,seq,eventType"));
    assert!(lines[1..].iter().all(|l| l.contains(",data.")), "{csv}");
    assert!(!csv.contains("s3cr3t"), "{csv}");
    let (s, body) = h
        .http("GET", "/api/v1/audit/export?format=xml", ADMIN, None)
        .await;
    assert_eq!(s, 400, "{body}");

    // Chain verification: every chain, intact.
    let v = h.get_json("/api/v1/audit/verify", ADMIN).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["events"], 7, "{v}");
    assert_eq!(v["broken"], json!([]));

    // A caller bound to a tenant sees only that tenant.
    e.create(
        &user_cx("t").with_tenant("t1"),
        "task",
        rec(json!({"title": "t"})),
    )
    .await
    .unwrap();
    let v = h
        .get_json(
            "/api/v1/audit/events",
            &[
                ("x-test-user", "root"),
                ("x-test-admin", "1"),
                ("x-test-tenant", "t1"),
            ],
        )
        .await;
    assert_eq!(v["total"], 1);
    let (s, _) = h
        .http(
            "GET",
            "/api/v1/audit/events?tenant=other",
            &[
                ("x-test-user", "root"),
                ("x-test-admin", "1"),
                ("x-test-tenant", "t1"),
            ],
            None,
        )
        .await;
    assert_eq!(s, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_sqlite() {
    let h = Harness::sqlite().await;
    routes_scenario(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(objectos_pg),
    ignore = "needs PostgreSQL: set OBJECTOS_TEST_POSTGRES_URL"
)]
async fn routes_postgres() {
    if let Some(h) = Harness::postgres().await {
        routes_scenario(&h).await;
        h.stop().await;
    }
}

/// The audit routes are advertised by discovery under the `audit-log` service at their real
/// mount, and every one of them is in the OpenAPI document (checked against the router itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_openapi_list_the_audit_routes() {
    use objectos_http::RouteContribution;

    let h = Harness::sqlite().await;
    let routes: Vec<RouteContribution> = h
        .kernel
        .registry()
        .contributions::<RouteContribution>()
        .unwrap()
        .iter()
        .map(|c| c.value.clone())
        .collect();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].service.as_deref(), Some("audit-log"));
    assert_eq!(routes[0].undocumented(), Vec::new());

    let (s, body) = h.http("GET", "/api/v1/discovery", &[], None).await;
    assert_eq!(s, 200, "{body}");
    let d: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["routes"]["audit"], "/api/v1/audit");
    assert_eq!(d["services"]["audit-log"]["route"], "/api/v1/audit");
    assert_eq!(d["services"]["audit-log"]["status"], "available");
    assert_eq!(d["services"]["audit-log"]["provider"], "com.objectos.audit");

    let (s, body) = h.http("GET", "/api/v1/openapi.json", &[], None).await;
    assert_eq!(s, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        objectos_http::routes::openapi::missing_operations(&doc, &routes),
        Vec::<String>::new()
    );
    let trail = &doc["paths"]["/api/v1/audit/trail/{object}/{id}"]["get"];
    assert_eq!(trail["tags"][0], "audit-log");
    assert_eq!(trail["parameters"].as_array().map(Vec::len), Some(2));
    assert_eq!(trail["security"].as_array().map(Vec::len), Some(3));
    h.stop().await;
}
