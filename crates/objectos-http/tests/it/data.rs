//! Data routes, following the reference transcript's exchanges 8-26.

use salvo::http::StatusCode;
use salvo::test::TestClient;
use serde_json::{Value, json};

use crate::support::{BASE, Harness};

#[tokio::test]
async fn create_get_list_update_delete_like_the_transcript() {
    let h = Harness::new().await;
    let (account, ids) = h.seed().await;

    // Exchange 12: get by id, with an ETag.
    let r = h.get(&format!("/api/v1/data/contact/{}", ids[0])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["object"], "contact");
    assert_eq!(r.body["id"], ids[0].as_str());
    let rec = &r.body["record"];
    for key in [
        "id",
        "created_at",
        "updated_at",
        "name",
        "email",
        "amount",
        "status",
        "account",
    ] {
        assert!(rec.get(key).is_some(), "record lacks {key}: {}", r.text);
    }
    assert_eq!(rec["account"], account.as_str());
    assert!(r.header("etag").is_some(), "GET by id sends an ETag");

    // Exchange 13: equality filter, sort, top.
    let r = h
        .get("/api/v1/data/contact?top=2&sort=-amount&status=active")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["object"], "contact");
    assert_eq!(r.body["total"], 2);
    assert_eq!(r.body["hasMore"], false);
    let names: Vec<&str> = r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alice Anchor", "Carol Compare"]);

    // Exchange 14: filter AST, select, skip.
    let r = h
        .get("/api/v1/data/contact?top=10&skip=0&sort=name&select=name%2Camount%2Cstatus&filter=%5B%22amount%22%2C%22%3E%22%2C100%5D")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["records"],
        json!([
            { "name": "Alice Anchor", "amount": 1200.5, "status": "active" },
            { "name": "Carol Compare", "amount": 455.25, "status": "active" },
        ])
    );

    // Exchange 15: POST /query.
    let r = h
        .post(
            "/api/v1/data/contact/query",
            &json!({
                "where": { "status": "active", "amount": { "$gte": 100 } },
                "orderBy": [{ "field": "amount", "order": "desc" }],
                "limit": 5,
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["total"], 2);
    assert_eq!(r.body["records"][0]["name"], "Alice Anchor");

    // Exchange 16: expand a lookup.
    let r = h
        .get("/api/v1/data/contact?top=5&status=active&expand=account&sort=name")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["records"][0]["account"]["name"], "Acme Corp");
    assert_eq!(r.body["records"][1]["account"], Value::Null);

    // GET by id honours select and expand.
    let r = h
        .get(&format!(
            "/api/v1/data/contact/{}?select=name,account&expand=account",
            ids[0]
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["record"]["account"]["name"], "Acme Corp");
    assert!(
        r.body["record"].get("email").is_none(),
        "select was ignored: {}",
        r.text
    );

    // Exchanges 17-18: PATCH then GET.
    let r = h
        .patch(
            &format!("/api/v1/data/contact/{}", ids[1]),
            &json!({ "status": "closed", "amount": 99.99 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["record"]["status"], "closed");
    assert_eq!(r.body["record"]["amount"], 99.99);
    assert!(r.header("etag").is_some(), "PATCH sends an ETag");
    let r = h.get(&format!("/api/v1/data/contact/{}", ids[1])).await;
    assert_eq!(r.body["record"]["amount"], 99.99);

    // PUT is accepted as an update too.
    let r = h
        .send(
            TestClient::put(format!("{BASE}/api/v1/data/contact/{}", ids[1]))
                .json(&json!({ "email": "bob@new.example" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["record"]["email"], "bob@new.example");

    // Exchanges 19-20: delete, then 404.
    let r = h.delete(&format!("/api/v1/data/contact/{}", ids[2])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body,
        json!({ "object": "contact", "id": ids[2], "success": true, "deleted": true })
    );
    let r = h.get(&format!("/api/v1/data/contact/{}", ids[2])).await;
    let body = r.error(404, "RECORD_NOT_FOUND");
    assert_eq!(body["object"], "contact");
    assert_eq!(
        body["error"],
        format!("Record {} not found in contact", ids[2])
    );

    // Exchange 23: a one-row page still reports the true total.
    let r = h.get("/api/v1/data/contact?top=1").await;
    assert_eq!(r.body["total"], 2);
    assert_eq!(r.body["hasMore"], true);
    assert_eq!(r.body["records"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn aggregations_only_through_post_query() {
    let h = Harness::new().await;
    h.seed().await;
    // Exchange 21.
    let r = h.get("/api/v1/data/contact?aggregations=%5B%7B%22function%22%3A%22count%22%2C%22alias%22%3A%22n%22%7D%5D").await;
    let body = r.error(400, "INVALID_QUERY");
    assert_eq!(body["object"], "contact");
    assert_eq!(body["param"], "aggregations");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("'POST /data/:object/query' body"),
        "{}",
        r.text
    );
    // Exchange 22.
    let r = h
        .post(
            "/api/v1/data/contact/query",
            &json!({ "aggregations": [{ "function": "count", "alias": "n" }] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["records"], json!([{ "n": 3 }]));
}

#[tokio::test]
async fn validation_errors_carry_fields() {
    let h = Harness::new().await;
    // Exchange 24.
    let r = h
        .post(
            "/api/v1/data/contact",
            &json!({ "email": "noname@example.com" }),
        )
        .await;
    let body = r.error(400, "VALIDATION_FAILED");
    assert_eq!(body["error"], "Name is required");
    assert_eq!(body["object"], "contact");
    assert_eq!(body["fields"][0]["field"], "name");
    assert_eq!(body["fields"][0]["code"], "required");
    // Exchange 25.
    let r = h
        .post(
            "/api/v1/data/contact",
            &json!({ "name": "Bad Status", "status": "bogus" }),
        )
        .await;
    let body = r.error(400, "VALIDATION_FAILED");
    assert_eq!(body["fields"][0]["field"], "status");
    assert_eq!(body["fields"][0]["code"], "invalid_option");
}

#[tokio::test]
async fn unknown_object_and_record() {
    let h = Harness::new().await;
    // Exchange 26.
    let r = h.get("/api/v1/data/no_such_object?top=1").await;
    let body = r.error(404, "OBJECT_NOT_FOUND");
    assert_eq!(body["error"], "Object 'no_such_object' is not registered");
    assert_eq!(body["object"], "no_such_object");
    h.post("/api/v1/data/no_such_object", &json!({ "a": 1 }))
        .await
        .error(404, "OBJECT_NOT_FOUND");
    h.get("/api/v1/data/contact/nope")
        .await
        .error(404, "RECORD_NOT_FOUND");
    h.patch("/api/v1/data/contact/nope", &json!({ "name": "x" }))
        .await
        .error(404, "RECORD_NOT_FOUND");
    h.delete("/api/v1/data/contact/nope")
        .await
        .error(404, "RECORD_NOT_FOUND");
}

#[tokio::test]
async fn if_match_gives_optimistic_concurrency() {
    let h = Harness::new().await;
    let (_, ids) = h.seed().await;
    let path = format!("/api/v1/data/contact/{}", ids[0]);
    let etag = h.get(&path).await.header("etag").unwrap().to_owned();

    let stale = h
        .send(
            TestClient::patch(format!("{BASE}{path}"))
                .add_header("if-match", "\"1999-01-01T00:00:00.000Z\"", true)
                .json(&json!({ "amount": 1 })),
        )
        .await;
    stale.error(412, "CONCURRENT_MODIFICATION");

    let fresh = h
        .send(
            TestClient::patch(format!("{BASE}{path}"))
                .add_header("if-match", etag.as_str(), true)
                .json(&json!({ "amount": 2 })),
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.text);
    assert_eq!(fresh.body["record"]["amount"], 2);
}

#[tokio::test]
async fn bulk_routes() {
    let h = Harness::new().await;
    let r = h
        .post(
            "/api/v1/data/account/createMany",
            &json!([{ "name": "A1" }, { "name": "A2" }, { "name": "A3" }]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["object"], "account");
    assert_eq!(r.body["count"], 3);
    let ids: Vec<String> = r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .collect();

    // An invalid item makes createMany fail as a whole.
    let r = h
        .post(
            "/api/v1/data/account/createMany",
            &json!([{ "name": "ok" }, {}]),
        )
        .await;
    r.error(400, "VALIDATION_FAILED");
    h.post("/api/v1/data/account/createMany", &json!({ "name": "x" }))
        .await
        .error(400, "INVALID_BODY");

    let r = h
        .post("/api/v1/data/account/batch", &json!({ "operation": "create", "records": [{ "data": { "name": "B1" } }, { "data": { "name": "B2" } }] }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["success"], true);
    assert_eq!(r.body["total"], 2);
    assert_eq!(r.body["succeeded"], 2);

    let r = h
        .post("/api/v1/data/account/updateMany", &json!({ "records": [{ "id": ids[0], "data": { "name": "A1x" } }, { "id": ids[1], "data": { "name": "A2x" } }] }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["succeeded"], 2, "{}", r.text);
    assert_eq!(
        h.get(&format!("/api/v1/data/account/{}", ids[0]))
            .await
            .body["record"]["name"],
        "A1x"
    );

    let r = h
        .post(
            "/api/v1/data/account/deleteMany",
            &json!({ "ids": [ids[0], ids[1]] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["succeeded"], 2, "{}", r.text);
    h.get(&format!("/api/v1/data/account/{}", ids[1]))
        .await
        .error(404, "RECORD_NOT_FOUND");

    h.post(
        "/api/v1/data/account/batch",
        &json!({ "operation": "explode", "records": [] }),
    )
    .await
    .error(400, "INVALID_BODY");
}

#[tokio::test]
async fn select_through_lookups_and_distinct() {
    let h = Harness::new().await;
    let (_, ids) = h.seed().await;
    let r = h
        .get("/api/v1/data/contact?select=name,account.name&sort=name")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["records"],
        json!([
            { "name": "Alice Anchor", "account": { "name": "Acme Corp" } },
            { "name": "Bob Baseline", "account": null },
            { "name": "Carol Compare", "account": null }
        ])
    );
    let r = h
        .get(&format!(
            "/api/v1/data/contact/{}?select=account.name",
            ids[0]
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["record"],
        json!({ "account": { "name": "Acme Corp" } })
    );
    let r = h
        .post(
            "/api/v1/data/contact/query",
            &json!({ "fields": ["name", { "field": "account", "fields": ["name"] }], "where": { "name": "Alice Anchor" } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["records"][0]["account"],
        json!({ "name": "Acme Corp" })
    );

    let r = h.get("/api/v1/data/contact?select=name,account.nme").await;
    let body = r.error(400, "INVALID_QUERY");
    assert_eq!(body["param"], "select");
    assert_eq!(
        body["message"],
        "select: field 'nme' does not exist on object 'account' (in 'account.nme')"
    );

    let r = h
        .get("/api/v1/data/contact?select=status&distinct=true")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["records"],
        json!([{ "status": "active" }, { "status": "new" }])
    );
    assert_eq!(r.body["total"], 2);
}
