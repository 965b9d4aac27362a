//! Object permissions: a user without a grant gets 403 on reads and creates, and a 404 that is
//! indistinguishable from a missing record on updates and deletes; administration routes are
//! closed to everyone but administrators.

use serde_json::json;

use crate::support::{Backend, no_leak, refused, same_as_missing};
use crate::world::{ACME_SECRET, HIDDEN_NAME, HIDDEN_SECRET, create, world};

const MISSING: &str = "00000000-0000-0000-0000-000000000000";

pub(crate) async fn run(b: &Backend) {
    let w = world(b).await;
    let api = w.srv.api;
    let label = w.srv.label;
    let leaks = ["Acme Public", ACME_SECRET, HIDDEN_NAME, HIDDEN_SECRET];

    // `nobody` has no grant on account: every read is 403, whether the record exists or not.
    let nobody = w.nobody.t();
    let mut messages = Vec::new();
    for path in [
        "/api/v1/data/account".to_owned(),
        "/api/v1/data/account?count=true".to_owned(),
        "/api/v1/data/account?filter=%7B%22name%22%3A%22Acme%20Public%22%7D".to_owned(),
        format!("/api/v1/data/account/{}", w.acme),
        format!("/api/v1/data/account/{}", w.hidden),
        format!("/api/v1/data/account/{MISSING}"),
    ] {
        let r = api.get(&path, nobody).await;
        messages.push(refused(&r, 403, "PERMISSION_DENIED"));
        no_leak(&r, &leaks);
    }
    assert!(
        messages.windows(2).all(|m| m[0] == m[1]),
        "[{label}] the refusals differ: {messages:?}"
    );
    let r = api
        .post(
            "/api/v1/data/account/query",
            nobody,
            json!({"aggregations": [{"function": "count", "alias": "n"}]}),
        )
        .await;
    refused(&r, 403, "PERMISSION_DENIED");
    let r = api
        .post("/api/v1/data/account", nobody, json!({"name": "mine"}))
        .await;
    refused(&r, 403, "PERMISSION_DENIED");
    // Updating or deleting a record one cannot read answers like a missing id.
    for id in [&w.acme, &w.hidden] {
        let path = format!("/api/v1/data/account/{id}");
        let missing = format!("/api/v1/data/account/{MISSING}");
        let hidden = api.patch(&path, nobody, json!({"name": "x"})).await;
        let absent = api.patch(&missing, nobody, json!({"name": "x"})).await;
        same_as_missing(&hidden, &absent, id, MISSING);
        no_leak(&hidden, &leaks);
        let hidden = api.delete(&path, nobody).await;
        let absent = api.delete(&missing, nobody).await;
        same_as_missing(&hidden, &absent, id, MISSING);
    }
    // Bulk routes go through the same checks.
    let r = api
        .post(
            "/api/v1/data/account/deleteMany",
            nobody,
            json!({"ids": [w.acme, w.hidden]}),
        )
        .await;
    assert_eq!(r.body["succeeded"], 0, "[{label}] {}", r.text);
    assert_eq!(
        r.body["results"][0]["errors"][0]["code"], "RECORD_NOT_FOUND",
        "[{label}] {}",
        r.text
    );
    no_leak(&r, &leaks);

    // The rep may read accounts but not delete them: 403 on a visible one, 404 on a hidden one.
    let rep = w.rep.t();
    let r = api
        .delete(&format!("/api/v1/data/account/{}", w.acme), rep)
        .await;
    refused(&r, 403, "PERMISSION_DENIED");
    let hidden = api
        .delete(&format!("/api/v1/data/account/{}", w.hidden), rep)
        .await;
    let absent = api
        .delete(&format!("/api/v1/data/account/{MISSING}"), rep)
        .await;
    same_as_missing(&hidden, &absent, &w.hidden, MISSING);

    // No set grants memo: the rep gets 403 on reads and creates, 404 on writes to existing ones.
    let memo = create(
        &w.srv,
        &w.owner,
        "memo",
        json!({"title": "board only 3e9d"}),
    )
    .await;
    for path in [
        "/api/v1/data/memo".to_owned(),
        format!("/api/v1/data/memo/{memo}"),
    ] {
        let r = api.get(&path, rep).await;
        refused(&r, 403, "PERMISSION_DENIED");
        no_leak(&r, &["board only 3e9d"]);
    }
    refused(
        &api.post("/api/v1/data/memo", rep, json!({"title": "t"}))
            .await,
        403,
        "PERMISSION_DENIED",
    );
    let hidden = api
        .patch(
            &format!("/api/v1/data/memo/{memo}"),
            rep,
            json!({"title": "t"}),
        )
        .await;
    let absent = api
        .patch(
            &format!("/api/v1/data/memo/{MISSING}"),
            rep,
            json!({"title": "t"}),
        )
        .await;
    same_as_missing(&hidden, &absent, &memo, MISSING);
    let r = api
        .post(
            "/api/v1/auth/check",
            rep,
            json!({"object": "memo", "action": "read"}),
        )
        .await;
    assert_eq!(r.body["allowed"], false, "[{label}] {}", r.text);

    // Only administrators manage assignments and read the audit log; no self-promotion.
    for (method, body) in [
        ("POST", json!({"userId": w.rep.id, "permissionSet": "rep"})),
        (
            "POST",
            json!({"userId": w.nobody.id, "permissionSet": "rep"}),
        ),
        ("DELETE", json!({"userId": w.rep.id, "role": "sales"})),
    ] {
        let r = api
            .call(method, "/api/v1/permissions/assignments", rep, Some(body))
            .await;
        refused(&r, 403, "PERMISSION_DENIED");
    }
    for path in [
        "/api/v1/audit/events",
        "/api/v1/audit/export",
        &format!("/api/v1/audit/trail/account/{}", w.hidden),
    ] {
        let r = api.get(path, rep).await;
        refused(&r, 403, "PERMISSION_DENIED");
        no_leak(&r, &leaks);
    }
    // ...and nothing changed: nobody still has no grant, the rep still sees what it saw.
    let r = api.get("/api/v1/data/account", nobody).await;
    refused(&r, 403, "PERMISSION_DENIED");
    let names = api.get("/api/v1/data/account", w.owner.t()).await.names();
    assert_eq!(names, ["Acme Public", HIDDEN_NAME, "Rep Own"], "[{label}]");
    w.srv.stop();
}
