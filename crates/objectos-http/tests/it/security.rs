//! The cross-site request forgery guard for cookie-authenticated writes, the security response
//! headers, and a start-up `/ready` poll that is answered without an ERROR log line.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use objectos_http::HttpConfig;
use salvo::http::StatusCode;
use salvo::test::{RequestBuilder, TestClient};
use serde_json::json;

use crate::support::{BASE, Harness, Reply};

const COOKIE: &str = "better-auth.session_token=s3ss10n";
const FOREIGN: &str = "https://evil.example";

fn create(headers: &[(&'static str, &str)]) -> RequestBuilder {
    let mut req = TestClient::post(format!("{BASE}/api/v1/data/account"));
    for (name, value) in headers {
        req = req.add_header(*name, *value, true);
    }
    req
}

/// A create with a body of `content_type` (`None`: no header at all).
async fn create_with(
    h: &Harness,
    headers: &[(&'static str, &str)],
    content_type: Option<&str>,
) -> Reply {
    let mut req = create(headers).body(r#"{"name":"Forged"}"#);
    if let Some(ct) = content_type {
        req = req.add_header("content-type", ct, true);
    }
    h.send(req).await
}

#[tokio::test]
async fn cookie_writes_need_our_origin_and_json() {
    let h = Harness::build(
        HttpConfig {
            trusted_origins: vec!["https://console.example".into()],
            cors_origins: vec!["http://localhost:5173".into(), "*".into()],
            ..HttpConfig::default()
        },
        Vec::new(),
        true,
    )
    .await;
    // A form or text/plain post from another site, or one that names no origin: 403.
    for content_type in [
        Some("text/plain"),
        None,
        Some("application/x-www-form-urlencoded"),
    ] {
        for origin in [Some(FOREIGN), Some("null"), None] {
            let mut headers = vec![("cookie", COOKIE)];
            if let Some(o) = origin {
                headers.push(("origin", o));
            }
            create_with(&h, &headers, content_type)
                .await
                .error(403, "CSRF_ORIGIN_MISMATCH");
        }
    }
    // A foreign Referer counts when there is no Origin; a foreign Origin wins over our Referer.
    let referer = format!("{FOREIGN}/page?x=1");
    create_with(
        &h,
        &[("cookie", COOKIE), ("referer", &referer)],
        Some("application/json"),
    )
    .await
    .error(403, "CSRF_ORIGIN_MISMATCH");
    let ours = format!("{BASE}/console/");
    create_with(
        &h,
        &[("cookie", COOKIE), ("origin", FOREIGN), ("referer", &ours)],
        Some("application/json"),
    )
    .await
    .error(403, "CSRF_ORIGIN_MISMATCH");
    // DELETE and PATCH without a body are checked too.
    h.send(
        TestClient::delete(format!("{BASE}/api/v1/data/account/x"))
            .add_header("cookie", COOKIE, true)
            .add_header("origin", FOREIGN, true),
    )
    .await
    .error(403, "CSRF_ORIGIN_MISMATCH");
    // Our own origin (the Host), a trusted origin and a CORS origin: the body must be JSON.
    for origin in [BASE, "https://console.example", "http://localhost:5173"] {
        let headers = [("cookie", COOKIE), ("origin", origin)];
        let r = create_with(&h, &headers, Some("application/json; charset=utf-8")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{origin}: {}", r.text);
        for ct in [
            Some("text/plain"),
            None,
            Some("multipart/form-data; boundary=x"),
        ] {
            let r = create_with(&h, &headers, ct).await;
            let message = r.error(415, "UNSUPPORTED_MEDIA_TYPE")["message"]
                .as_str()
                .unwrap();
            assert!(message.contains("session cookie"), "{message}");
        }
    }
    let r = create_with(
        &h,
        &[("cookie", COOKIE), ("referer", &ours)],
        Some("application/json"),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // The scheme counts: a trusted https origin is not trusted over http, and `*` trusts nobody.
    create_with(
        &h,
        &[("cookie", COOKIE), ("origin", "http://console.example")],
        Some("application/json"),
    )
    .await
    .error(403, "CSRF_ORIGIN_MISMATCH");
    // A body-less write from our origin needs no content type (sign-out).
    let r = h
        .send(
            TestClient::delete(format!("{BASE}/api/v1/data/account/missing"))
                .add_header("cookie", COOKIE, true)
                .add_header("origin", BASE, true),
        )
        .await;
    r.error(404, "RECORD_NOT_FOUND");
}

#[tokio::test]
async fn bearer_api_key_and_safe_methods_are_not_checked() {
    let h = Harness::new().await;
    // With a bearer token or an API key the cookie is not what authenticates: no origin or
    // content-type rule beyond the usual ones (text/plain is read as JSON, as before).
    for credential in [("authorization", "Bearer t0ken"), ("x-api-key", "osk_key")] {
        for ct in [Some("text/plain"), None, Some("application/json")] {
            let r = create_with(
                &h,
                &[("cookie", COOKIE), ("origin", FOREIGN), credential],
                ct,
            )
            .await;
            assert_eq!(
                r.status,
                StatusCode::CREATED,
                "{credential:?} {ct:?}: {}",
                r.text
            );
        }
    }
    // No cookie (or an empty one): nothing to forge.
    for cookie in [None, Some("better-auth.session_token="), Some("other=1")] {
        let mut headers = vec![("origin", FOREIGN)];
        if let Some(c) = cookie {
            headers.push(("cookie", c));
        }
        let r = create_with(&h, &headers, Some("text/plain")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{cookie:?}: {}", r.text);
    }
    // `Bearer` without a token does not replace the cookie (the auth hoop would use the cookie).
    create_with(
        &h,
        &[
            ("cookie", COOKIE),
            ("origin", FOREIGN),
            ("authorization", "Bearer"),
        ],
        None,
    )
    .await
    .error(403, "CSRF_ORIGIN_MISMATCH");
    // Reads with the cookie from anywhere are not this guard's business.
    let r = h
        .send(
            TestClient::get(format!("{BASE}/api/v1/data/account"))
                .add_header("cookie", COOKIE, true)
                .add_header("origin", FOREIGN, true),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn forwarded_host_and_proto_count_only_from_trusted_proxies() {
    // TestClient requests have no peer address, so no proxy can be trusted here; the forwarded
    // host is then ignored and only the request's own authority counts.
    let h = Harness::build(
        HttpConfig {
            trusted_proxies: vec!["0.0.0.0/0".parse().unwrap()],
            ..HttpConfig::default()
        },
        Vec::new(),
        true,
    )
    .await;
    create_with(
        &h,
        &[
            ("cookie", COOKIE),
            ("origin", "https://public.example"),
            ("x-forwarded-host", "public.example"),
        ],
        Some("application/json"),
    )
    .await
    .error(403, "CSRF_ORIGIN_MISMATCH");
}

#[tokio::test]
async fn every_response_gets_the_security_headers() {
    let h = Harness::new().await;
    for path in [
        "/api/v1/data/account",
        "/nowhere",
        "/ready",
        "/api/v1/docs/",
    ] {
        let r = h.get(path).await;
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            r.header("referrer-policy"),
            Some("strict-origin-when-cross-origin"),
            "{path}"
        );
        assert_eq!(r.header("strict-transport-security"), None, "{path}");
    }
    // Refusals too.
    let r = create_with(&h, &[("cookie", COOKIE), ("origin", FOREIGN)], None).await;
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    // The docs page is HTML: no framing by anyone.
    let docs = h.get("/api/v1/docs/").await;
    assert_eq!(docs.status, StatusCode::OK, "{}", docs.text);
    assert!(
        docs.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(docs.header("x-frame-options"), Some("DENY"));
    assert!(
        docs.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    // JSON answers are not pages.
    let json = h.get("/api/v1/data/account").await;
    assert_eq!(json.header("x-frame-options"), None);

    let hsts = Harness::build(
        HttpConfig {
            hsts_max_age: 31_536_000,
            ..HttpConfig::default()
        },
        Vec::new(),
        true,
    )
    .await;
    for path in ["/api/v1/data/account", "/nowhere"] {
        assert_eq!(
            hsts.get(path).await.header("strict-transport-security"),
            Some("max-age=31536000"),
            "{path}"
        );
    }
}

/// Counts ERROR events on this thread.
struct CountErrors(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountErrors {
    fn on_event(&self, event: &tracing::Event<'_>, _cx: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::ERROR {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn start_up_ready_polls_log_no_error() {
    use tracing_subscriber::layer::SubscriberExt;
    let errors = Arc::new(AtomicUsize::new(0));
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(CountErrors(errors.clone())),
    );
    let h = Harness::build(HttpConfig::default(), Vec::new(), false).await;
    for _ in 0..20 {
        let r = h.get("/ready").await;
        r.error(503, "SERVICE_UNAVAILABLE");
    }
    assert_eq!(
        errors.load(Ordering::SeqCst),
        0,
        "a not-ready poll logged an ERROR"
    );
    // A real server error still is one.
    let r = h.get("/api/v1/data/account?top=abc").await;
    assert!(r.status.is_client_error());
    assert_eq!(
        json!(errors.load(Ordering::SeqCst)),
        json!(0),
        "a client error logged an ERROR"
    );
}
