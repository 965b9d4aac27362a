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
    // /api/v1/batch is served and atomic by default.
    assert_eq!(d["capabilities"]["transactionalBatch"]["enabled"], true);
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

/// `GET /` is a small HTML page whose every link answers 200: a browser pointed at the server
/// finds the docs instead of a JSON 404.
#[tokio::test]
async fn root_page_links_the_docs_discovery_openapi_and_probes() {
    let h = Harness::new().await;
    let r = h.get("/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.header("content-type").map(|c| c.starts_with("text/html")),
        Some(true)
    );
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(r.text.contains("9.9.9"), "{}", r.text);
    let links: Vec<&str> = r
        .text
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    for wanted in [
        "/api/v1/docs",
        "/api/v1/discovery",
        "/api/v1/openapi.json",
        "/health",
        "/ready",
    ] {
        assert!(links.contains(&wanted), "{wanted} missing from {links:?}");
    }
    for link in links {
        let mut target = h.get(link).await;
        // The docs page may send `/docs` on to `/docs/`; one redirect is fine, a dead link is not.
        if target.status.is_redirection() {
            let next = target.header("location").unwrap_or_default().to_owned();
            assert!(next.starts_with('/'), "{link} redirects off-site: {next}");
            target = h.get(&next).await;
        }
        assert_eq!(target.status, StatusCode::OK, "{link}: {}", target.text);
    }
}
