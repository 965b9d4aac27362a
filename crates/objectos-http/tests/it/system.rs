//! Discovery, health, readiness and packages.

use objectos_http::HttpConfig;
use salvo::http::StatusCode;

use crate::support::Harness;

#[tokio::test]
async fn discovery_on_all_three_paths() {
    let h = Harness::new().await;
    let a = h.get("/api/v1/discovery").await;
    let b = h.get("/.well-known/objectstack").await;
    let c = h.get("/api/v1").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body, b.body);
    assert_eq!(a.body, c.body);
    let d = &a.body;
    assert_eq!(d["name"], "ObjectOS");
    assert_eq!(d["version"], "9.9.9");
    assert_eq!(d["environment"], "development");
    assert_eq!(d["routes"]["data"], "/api/v1/data");
    assert_eq!(d["routes"]["metadata"], "/api/v1/meta");
    assert_eq!(d["routes"]["ui"], "/api/v1/ui");
    assert_eq!(d["routes"]["packages"], "/api/v1/packages");
    assert!(
        d["routes"].get("auth").is_none(),
        "no auth route without an auth plugin"
    );
    assert_eq!(d["locale"]["default"], "en");
    assert_eq!(d["services"]["data"]["status"], "available");
    assert_eq!(d["services"]["data"]["route"], "/api/v1/data");
    assert_eq!(d["services"]["metadata"]["provider"], "com.objectos.data");
    assert_eq!(d["services"]["auth"]["enabled"], false);
    assert_eq!(d["services"]["auth"]["status"], "unavailable");
    assert!(
        d["services"]["auth"]["message"]
            .as_str()
            .unwrap()
            .contains("anonymous")
    );
    assert_eq!(d["services"]["cache"]["status"], "unavailable");
    assert!(d["capabilities"].is_object());
}

#[tokio::test]
async fn health_ready_packages() {
    let h = Harness::new().await;
    let r = h.get("/health").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "healthy");
    let r = h.get("/ready").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["ready"], true);
    let r = h.get("/api/v1/packages").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["packages"][0]["id"], "com.objectos.http");
    assert_eq!(r.body["packages"][0]["type"], "plugin");
    let r = h.get("/api/v1/packages/com.objectos.http").await;
    assert_eq!(r.body["package"]["id"], "com.objectos.http");
    h.get("/api/v1/packages/nope")
        .await
        .error(404, "PACKAGE_NOT_FOUND");

    let not_ready = Harness::build(HttpConfig::default(), Vec::new(), false).await;
    not_ready
        .get("/ready")
        .await
        .error(503, "SERVICE_UNAVAILABLE");
}
