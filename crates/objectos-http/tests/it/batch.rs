//! `POST /api/v1/batch` (cross-object, `$ref`, atomic) and `POST /api/v1/data/{object}/{id}/clone`.

use salvo::http::StatusCode;
use serde_json::{Value, json};

use crate::support::Harness;

async fn total(h: &Harness, object: &str) -> u64 {
    let r = h.get(&format!("/api/v1/data/{object}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["total"].as_u64().unwrap()
}

#[tokio::test]
async fn cross_object_batch_resolves_refs_in_one_transaction() {
    let h = Harness::new().await;
    let r = h
        .post(
            "/api/v1/batch",
            &json!({ "operations": [
                { "object": "account", "operation": "create", "data": { "name": "Acme" } },
                { "object": "contact", "operation": "create", "data": { "name": "Ann", "account": { "$ref": 0 } } },
                { "object": "contact", "operation": "update", "id": { "$ref": 1 }, "data": { "status": "active" } }
            ] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["success"], true);
    assert_eq!(
        (r.body["total"].as_u64(), r.body["succeeded"].as_u64()),
        (Some(3), Some(3))
    );
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results[1]["index"], 1);
    assert_eq!(results[1]["object"], "contact");
    assert_eq!(results[1]["operation"], "create");
    assert_eq!(results[1]["data"]["account"], results[0]["id"]);
    assert_eq!(results[2]["data"]["status"], "active");

    // A bare array of operations is accepted too.
    let r = h
        .post(
            "/api/v1/batch",
            &json!([{ "object": "account", "operation": "create", "data": { "name": "Beta" } }]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(total(&h, "account").await, 2);
}

#[tokio::test]
async fn a_failed_operation_is_named_and_nothing_is_written() {
    let h = Harness::new().await;
    let r = h
        .post(
            "/api/v1/batch",
            &json!({ "operations": [
                { "object": "account", "operation": "create", "data": { "name": "Acme" } },
                { "object": "contact", "operation": "create", "data": { "email": "x@y.io", "account": { "$ref": 0 } } }
            ] }),
        )
        .await;
    let body = r.error(400, "VALIDATION_FAILED");
    assert_eq!(body["index"], 1);
    assert_eq!(body["object"], "contact");
    assert_eq!(
        body["message"],
        "operations[1] (create contact): Name is required"
    );
    assert_eq!(body["fields"][0]["field"], "name");
    assert_eq!(total(&h, "account").await, 0);

    // A `$ref` to a later operation is refused before anything runs.
    let r = h
        .post(
            "/api/v1/batch",
            &json!({ "operations": [
                { "object": "account", "operation": "create", "data": { "name": "A" } },
                { "object": "contact", "operation": "create", "data": { "name": "B", "account": { "$ref": 2 } } }
            ] }),
        )
        .await;
    let body = r.error(400, "INVALID_BODY");
    assert_eq!(body["index"], 1);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("operations[1].data.account"),
        "{}",
        r.text
    );
    // Unknown objects and records keep their own status.
    let r = h
        .post(
            "/api/v1/batch",
            &json!({ "operations": [{ "object": "contact", "operation": "delete", "id": "nope" }] }),
        )
        .await;
    assert_eq!(r.error(404, "RECORD_NOT_FOUND")["index"], 0);
    assert_eq!(total(&h, "account").await, 0);

    // Without atomic, each operation commits on its own and the answer lists every outcome.
    let r = h
        .post(
            "/api/v1/batch",
            &json!({ "operations": [
                { "object": "account", "operation": "create", "data": { "name": "Kept" } },
                { "object": "contact", "operation": "create", "data": {} }
            ], "options": { "atomic": false } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (r.body["succeeded"].as_u64(), r.body["failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        r.body["results"][1]["errors"][0]["code"],
        "VALIDATION_FAILED"
    );
    assert_eq!(total(&h, "account").await, 1);
}

#[tokio::test]
async fn batch_limits_and_shapes() {
    let h = Harness::new().await;
    let many: Vec<Value> = (0..201)
        .map(|i| json!({ "object": "account", "operation": "create", "data": { "name": format!("a{i}") } }))
        .collect();
    let r = h
        .post("/api/v1/batch", &json!({ "operations": many }))
        .await;
    r.error(413, "BATCH_TOO_LARGE");
    let r = h.post("/api/v1/batch", &json!({ "operations": [] })).await;
    r.error(400, "INVALID_BODY");
    let r = h.post("/api/v1/batch", &json!({ "ops": [] })).await;
    r.error(400, "INVALID_BODY");
    let r = h
        .post(
            "/api/v1/batch",
            &json!({ "operations": [{ "object": "account", "operation": "merge" }] }),
        )
        .await;
    let body = r.error(400, "INVALID_BODY");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("operations[0]: "),
        "{}",
        r.text
    );
    // `ledger` does not expose bulk operations (enable.apiMethods).
    let r = h
        .post(
            "/api/v1/batch",
            &json!({ "operations": [
                { "object": "account", "operation": "create", "data": { "name": "A" } },
                { "object": "ledger", "operation": "create", "data": { "name": "L" } }
            ] }),
        )
        .await;
    assert_eq!(r.error(403, "OPERATION_NOT_ALLOWED")["index"], 1);
    assert_eq!(total(&h, "account").await, 0);
}

#[tokio::test]
async fn clone_creates_a_copy() {
    let h = Harness::new().await;
    let (account, ids) = h.seed().await;
    let r = h
        .post(
            &format!("/api/v1/data/contact/{}/clone", ids[0]),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let copy = &r.body["record"];
    assert_ne!(copy["id"], ids[0].as_str());
    assert_eq!(r.body["id"], copy["id"]);
    assert_eq!(copy["name"], "Alice Anchor");
    assert_eq!(copy["account"], account.as_str());
    assert!(r.header("etag").is_some());

    let r = h
        .send(salvo::test::TestClient::post(format!(
            "{}/api/v1/data/contact/{}/clone",
            crate::support::BASE,
            ids[1]
        )))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "no body is fine: {}", r.text);
    let r = h
        .post(
            &format!("/api/v1/data/contact/{}/clone", ids[0]),
            &json!({ "name": "Alice Again" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["record"]["name"], "Alice Again");
    h.post("/api/v1/data/contact/nope/clone", &json!({}))
        .await
        .error(404, "RECORD_NOT_FOUND");
    assert_eq!(total(&h, "contact").await, 6);
}
