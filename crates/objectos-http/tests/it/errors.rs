//! Error handling: bodies, query parameters, limits, content types, unknown routes, panics, ids.

use objectos_http::{HttpConfig, RouteContribution};
use objectos_spec::RuntimeMode;
use salvo::prelude::*;
use salvo::test::TestClient;
use serde_json::json;

use crate::support::{BASE, Harness};

#[tokio::test]
async fn malformed_and_non_object_bodies() {
    let h = Harness::new().await;
    let r = h
        .send(
            TestClient::post(format!("{BASE}/api/v1/data/contact"))
                .raw_json("{\"name\": \"x\",, }"),
        )
        .await;
    let body = r.error(400, "INVALID_BODY");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("line 1, column 14"),
        "{}",
        r.text
    );
    let r = h
        .send(TestClient::post(format!("{BASE}/api/v1/data/contact")).raw_json("[1, 2]"))
        .await;
    assert!(
        r.error(400, "INVALID_BODY")["error"]
            .as_str()
            .unwrap()
            .contains("received an array"),
        "{}",
        r.text
    );
    let r = h
        .send(TestClient::post(format!("{BASE}/api/v1/data/contact")).raw_json(""))
        .await;
    assert!(
        r.error(400, "INVALID_BODY")["error"]
            .as_str()
            .unwrap()
            .contains("empty"),
        "{}",
        r.text
    );
    h.send(TestClient::patch(format!("{BASE}/api/v1/data/contact/x")).raw_json("\"text\""))
        .await
        .error(400, "INVALID_BODY");
    h.send(
        TestClient::post(format!("{BASE}/api/v1/data/contact/query")).raw_json("{\"where\": 5}"),
    )
    .await
    .error(400, "INVALID_QUERY");
}

#[tokio::test]
async fn bad_query_parameters_name_the_parameter() {
    let h = Harness::new().await;
    for (query, param) in [
        ("filter=%5B%22amount%22%2C%22%3E%3E%22%2C1%5D", "filter"),
        ("filter=not-json%5B", "filter"),
        ("sort=%2C%2C-", "sort"),
        ("select=a..b", "select"),
        ("top=-1", "top"),
        ("top=1&top=2", "top"),
    ] {
        let r = h.get(&format!("/api/v1/data/contact?{query}")).await;
        let body = r.error(400, "INVALID_QUERY");
        assert_eq!(body["param"], param, "{query}: {}", r.text);
    }
    // Unknown fields are caught by the engine against the metadata.
    for (query, what) in [
        ("sort=nope", "nope"),
        ("select=name,nope", "nope"),
        ("expand=name", "name"),
        ("filter=%5B%22nope%22%2C%22%3D%22%2C1%5D", "nope"),
    ] {
        let r = h.get(&format!("/api/v1/data/contact?{query}")).await;
        assert_eq!(r.status.as_u16(), 400, "{query}: {}", r.text);
        assert!(
            r.body["error"].as_str().unwrap().contains(what),
            "{query}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn oversized_body_is_413() {
    let h = Harness::build(
        HttpConfig {
            body_limit: 1024,
            ..HttpConfig::default()
        },
        Vec::new(),
        true,
    )
    .await;
    let big = "x".repeat(4096);
    let r = h
        .post("/api/v1/data/contact", &json!({ "name": big }))
        .await;
    let body = r.error(413, "PAYLOAD_TOO_LARGE");
    assert!(
        body["error"].as_str().unwrap().contains("1024"),
        "{}",
        r.text
    );
    // A small body still works.
    let r = h
        .post("/api/v1/data/account", &json!({ "name": "small" }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let h = Harness::new().await;
    let r = h
        .send(TestClient::post(format!("{BASE}/api/v1/data/account")).raw_form("name=x"))
        .await;
    r.error(415, "UNSUPPORTED_MEDIA_TYPE");
}

#[tokio::test]
async fn unknown_routes_are_json_404_and_405() {
    let h = Harness::new().await;
    h.get("/api/v1/nothing/here")
        .await
        .error(404, "ROUTE_NOT_FOUND");
    h.get("/nowhere").await.error(404, "ROUTE_NOT_FOUND");
    let r = h.delete("/api/v1/discovery").await;
    assert!(matches!(r.status.as_u16(), 404 | 405), "{}", r.text);
    assert!(r.body["code"].is_string(), "{}", r.text);
}

/// `enable.apiMethods` limits the API: the `ledger` fixture lists get, list, create and update;
/// anything else (delete, bulk, search, aggregate) is a 403 naming the operation.
#[tokio::test]
async fn operations_missing_from_api_methods_are_403() {
    let h = Harness::new().await;
    let created = h
        .post("/api/v1/data/ledger", &json!({"name": "kept"}))
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let r = h.delete(&format!("/api/v1/data/ledger/{id}")).await;
    let e = r.error(403, "OPERATION_NOT_ALLOWED");
    assert!(
        e["message"].as_str().unwrap().contains("'delete'"),
        "{}",
        r.text
    );
    h.post("/api/v1/data/ledger/createMany", &json!([{"name": "r1"}]))
        .await
        .error(403, "OPERATION_NOT_ALLOWED");
    h.post(
        "/api/v1/data/ledger/deleteMany",
        &json!({"ids": [id.clone()]}),
    )
    .await
    .error(403, "OPERATION_NOT_ALLOWED");
    h.get("/api/v1/data/ledger?search=kept")
        .await
        .error(403, "OPERATION_NOT_ALLOWED");
    h.post(
        "/api/v1/data/ledger/query",
        &json!({"aggregations": [{"function": "count", "alias": "n"}]}),
    )
    .await
    .error(403, "OPERATION_NOT_ALLOWED");
    // Listed operations still work, and the refused ones changed nothing.
    let list = h.get("/api/v1/data/ledger").await;
    assert_eq!(list.status.as_u16(), 200, "{}", list.text);
    assert_eq!(
        list.body["records"].as_array().unwrap().len(),
        1,
        "{}",
        list.text
    );
    assert!(!list.text.contains("r1"), "{}", list.text);
    let patched = h
        .patch(
            &format!("/api/v1/data/ledger/{id}"),
            &json!({"name": "renamed"}),
        )
        .await;
    assert_eq!(patched.status.as_u16(), 200, "{}", patched.text);
    // An unknown object is still the engine's 404, not a 403.
    h.post("/api/v1/data/nothing", &json!({}))
        .await
        .error(404, "OBJECT_NOT_FOUND");
}

#[handler]
async fn boom() -> &'static str {
    panic!("deliberate test panic")
}

#[handler]
async fn hello() -> &'static str {
    "hello from a plugin"
}

#[tokio::test]
async fn contributed_routes_are_mounted_and_panics_become_500() {
    let routes = vec![
        RouteContribution::new("plugin-x", || {
            Router::new()
                .push(Router::with_path("boom").get(boom))
                .push(Router::with_path("hello").get(hello))
        }),
        RouteContribution::new("/absolute", || Router::new().get(hello)),
    ];
    let h = Harness::build(HttpConfig::default(), routes, true).await;
    let r = h.get("/api/v1/plugin-x/hello").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text, "hello from a plugin");
    assert_eq!(h.get("/absolute").await.text, "hello from a plugin");
    let r = h.get("/api/v1/plugin-x/boom").await;
    let body = r.error(500, "INTERNAL_ERROR");
    assert!(
        !body["error"].as_str().unwrap().contains("deliberate"),
        "panic detail leaked: {}",
        r.text
    );
    // The server keeps serving after a panic.
    assert_eq!(h.get("/api/v1/discovery").await.status, StatusCode::OK);
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let h = Harness::new().await;
    let r = h
        .send(
            TestClient::get(format!("{BASE}/api/v1/discovery")).add_header(
                "x-request-id",
                "abc-123",
                true,
            ),
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    let r = h.get("/api/v1/discovery").await;
    assert!(r.header("x-request-id").is_some_and(|v| v.len() >= 32));
    // An id with characters that could forge log lines is replaced.
    let r = h
        .send(
            TestClient::get(format!("{BASE}/api/v1/discovery")).add_header(
                "x-request-id",
                "a b\tc",
                true,
            ),
        )
        .await;
    assert_ne!(r.header("x-request-id"), Some("a b\tc"));
    // Errors carry it too.
    let r = h
        .send(
            TestClient::get(format!("{BASE}/api/v1/data/nope")).add_header(
                "x-request-id",
                "err-1",
                true,
            ),
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("err-1"));
}

#[tokio::test]
async fn cors_preflight_is_answered() {
    let h = Harness::new().await;
    let r = h
        .send(
            TestClient::options(format!("{BASE}/api/v1/data/contact"))
                .add_header("origin", "http://localhost:5173", true)
                .add_header("access-control-request-method", "POST", true),
        )
        .await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text);
    assert!(r.header("access-control-allow-origin").is_some());
}

#[tokio::test]
async fn cors_origins_are_configurable() {
    let preflight = |origin: &str| {
        TestClient::options(format!("{BASE}/api/v1/data/contact"))
            .add_header("origin", origin, true)
            .add_header("access-control-request-method", "POST", true)
    };
    let config = HttpConfig {
        cors_origins: vec!["https://app.example".into()],
        ..HttpConfig::default()
    };
    let h = Harness::build(config, Vec::new(), true).await;
    let r = h.send(preflight("https://app.example")).await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    let r = h.send(preflight("https://evil.example")).await;
    assert_eq!(r.header("access-control-allow-origin"), None);

    // Production without configured origins allows no cross-origin calls.
    let h = Harness::build_in_mode(
        HttpConfig::default(),
        Vec::new(),
        true,
        RuntimeMode::Production,
    )
    .await;
    let r = h.send(preflight("https://app.example")).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(
        h.get("/api/v1/discovery").await.body["environment"],
        "production"
    );
}

#[tokio::test]
async fn responses_are_compressed_when_accepted() {
    let h = Harness::new().await;
    let r = h
        .send(
            TestClient::get(format!("{BASE}/api/v1/openapi.json")).add_header(
                "accept-encoding",
                "gzip",
                true,
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
}

#[tokio::test]
async fn requests_without_origin_skip_cors_but_keep_vary() {
    let h = Harness::new().await;
    let r = h.get("/api/v1/data/contact").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert!(
        r.headers
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("origin")),
        "{:?}",
        r.headers
    );
    let r = h
        .send(
            TestClient::get(format!("{BASE}/api/v1/data/contact")).add_header(
                "origin",
                "http://localhost:5173",
                true,
            ),
        )
        .await;
    assert!(r.header("access-control-allow-origin").is_some());
}

#[tokio::test]
async fn responses_are_not_compressed_unless_asked() {
    let h = Harness::new().await;
    let r = h.get("/api/v1/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let list = h.get("/api/v1/data/contact").await;
    assert_eq!(
        list.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(list.body["records"].is_array(), "{}", list.text);
}
