//! Metadata, UI view and OpenAPI routes.

use salvo::http::StatusCode;
use salvo::test::TestClient;
use serde_json::json;

use crate::support::{BASE, Harness};

#[tokio::test]
async fn metadata_types_items_and_item() {
    let h = Harness::new().await;
    let r = h.get("/api/v1/meta").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body["types"]
            .as_array()
            .unwrap()
            .contains(&json!("object"))
    );

    for path in ["/api/v1/meta/object", "/api/v1/meta/objects"] {
        let r = h.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["type"], "object");
        let names: Vec<&str> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"contact") && names.contains(&"account"),
            "{names:?}"
        );
    }
    let r = h.get("/api/v1/meta/app").await;
    assert_eq!(r.body, json!({ "type": "app", "items": [] }));

    // Exchange 6.
    let r = h.get("/api/v1/meta/object/contact").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["type"], "object");
    assert_eq!(r.body["name"], "contact");
    assert_eq!(r.body["item"]["name"], "contact");
    assert_eq!(r.body["item"]["fields"]["status"]["type"], "select");
    assert_eq!(r.body["sortability"]["fields"]["name"]["sortable"], true);
    assert_eq!(r.header("cache-control"), Some("private, no-cache"));
    let etag = r.header("etag").expect("etag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    let r = h
        .send(
            TestClient::get(format!("{BASE}/api/v1/meta/objects/contact")).add_header(
                "if-none-match",
                etag.as_str(),
                true,
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.text.is_empty());
    let r = h
        .send(
            TestClient::get(format!("{BASE}/api/v1/meta/object/contact")).add_header(
                "if-none-match",
                "\"other\"",
                true,
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    h.get("/api/v1/meta/object/nope")
        .await
        .error(404, "METADATA_NOT_FOUND");
    h.get("/api/v1/meta/widgets")
        .await
        .error(404, "METADATA_TYPE_NOT_FOUND");
    h.get("/api/v1/meta/widgets/x")
        .await
        .error(404, "METADATA_TYPE_NOT_FOUND");
    let r = h
        .send(
            TestClient::put(format!("{BASE}/api/v1/meta/object/contact"))
                .json(&json!({ "name": "contact" })),
        )
        .await;
    r.error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.header("allow"), Some("GET"));
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("edit its file and reload the server")
    );

    let r = h.get("/api/v1/meta/package/com.objectos.http").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["item"]["id"], "com.objectos.http");
}

#[tokio::test]
async fn generated_views() {
    let h = Harness::new().await;
    let r = h.get("/api/v1/ui/view/contact/list").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["list"]["type"], "grid");
    let cols = r.body["list"]["columns"].as_array().unwrap();
    assert!(
        cols.contains(&json!({ "field": "name", "label": "Name" })),
        "{}",
        r.text
    );
    assert!(
        cols.contains(&json!({ "field": "status", "label": "Status" })),
        "{}",
        r.text
    );

    for path in [
        "/api/v1/ui/view/contact/form",
        "/api/v1/ui/view/contact?type=form",
    ] {
        let r = h.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["form"]["type"], "simple");
        assert_eq!(r.body["form"]["sections"][0]["columns"], 2);
        assert_eq!(
            r.body["form"]["sections"][0]["fields"],
            json!(["name", "email", "amount", "status", "account"])
        );
    }
    assert_eq!(
        h.get("/api/v1/ui/view/contact").await.body["list"]["type"],
        "grid"
    );
    h.get("/api/v1/ui/view/nope/list")
        .await
        .error(404, "OBJECT_NOT_FOUND");
    h.get("/api/v1/ui/view/contact/kanban")
        .await
        .error(400, "INVALID_QUERY");
}

#[tokio::test]
async fn openapi_document_follows_the_metadata() {
    let h = Harness::new().await;
    let r = h.get("/api/v1/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let doc = &r.body;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/data/contact",
        "/api/v1/data/contact/query",
        "/api/v1/data/contact/{id}",
        "/api/v1/data/contact/createMany",
        "/api/v1/data/contact/batch",
        "/api/v1/data/contact/updateMany",
        "/api/v1/data/contact/deleteMany",
        "/api/v1/data/contact/{id}/clone",
        "/api/v1/data/account",
        "/api/v1/batch",
    ] {
        assert!(paths.contains_key(p), "missing path {p}");
    }
    let item = &doc["paths"]["/api/v1/data/contact/{id}"];
    for m in ["get", "patch", "put", "delete"] {
        assert!(item.get(m).is_some(), "missing {m}");
    }
    assert!(item["patch"]["responses"].get("412").is_some());
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["contact.create"]["required"], json!(["name"]));
    // An optional choice may be sent as null.
    assert_eq!(
        schemas["contact.create"]["properties"]["status"]["enum"],
        json!(["new", "active", "closed", null])
    );
    // Any stored value may come back null, a lookup's too (an id, the expanded record, or null).
    let lookup = &schemas["contact"]["properties"]["account"]["oneOf"];
    assert_eq!(lookup[2], json!({ "type": "null" }), "{lookup}");
    assert_eq!(
        schemas["contact"]["properties"]["name"]["type"],
        json!(["string", "null"])
    );
    assert_eq!(
        schemas["contact.create"]["properties"]["name"]["type"], "string",
        "a required input is not nullable"
    );
    assert_eq!(
        schemas["contact.create"]["properties"]["email"]["format"],
        "email"
    );
    assert!(
        schemas["contact.create"]["properties"].get("id").is_none(),
        "system fields are not inputs"
    );
    assert!(schemas["contact"]["properties"].get("id").is_some());
    assert!(schemas.get("Error").is_some());
    assert!(schemas.get("CrossBatchRequest").is_some());
    assert_eq!(
        doc["paths"]["/api/v1/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/CrossBatchRequest"
    );
    assert!(
        doc["paths"]["/api/v1/batch"]["post"]["responses"]
            .get("413")
            .is_some()
    );
    assert_eq!(
        doc["paths"]["/api/v1/data/contact/{id}/clone"]["post"]["requestBody"]["required"],
        false
    );
    assert!(doc["components"]["parameters"].get("distinct").is_some());

    // The docs page is served from embedded assets.
    let r = h.get("/api/v1/docs/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.text.contains("swagger") || r.text.contains("Swagger"),
        "{}",
        &r.text[..r.text.len().min(300)]
    );
}
