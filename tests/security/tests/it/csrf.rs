//! Cross-site request forgery through the session cookie (issue items 6 and 9): a write that
//! only the browser's cookie authenticates must come from the server's own origin and send JSON;
//! bearer tokens are unaffected; every answer carries the security headers.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::support::{Api, Backend, CONFIG, Reply, Server, fixture_app, refused};

const EVIL: &str = "https://evil.example";

/// A request with a raw body and exactly the headers given (no content type unless listed).
async fn raw(api: Api, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let what = format!("{method} {path} {headers:?}");
    let stream = TcpStream::connect(api.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", api.addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = sender
        .send_request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let data = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&data).into_owned();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        what,
        status,
        headers,
        text,
        body,
    }
}

#[track_caller]
fn media_refused(r: &Reply) {
    assert_eq!(r.status, 415, "{}: {}", r.what, r.text);
    assert_eq!(
        r.body["code"], "UNSUPPORTED_MEDIA_TYPE",
        "{}: {}",
        r.what, r.text
    );
}

pub(crate) async fn run(b: &Backend) {
    let srv = Server::start(b, &fixture_app(), CONFIG).await;
    let api = srv.api;
    let owner = srv.sign_up("csrf_owner", "Owner-Passw0rd-x81").await;
    let other = srv.sign_up("csrf_other", "Other-Passw0rd-x82").await;
    let cookie = format!("better-auth.session_token={}", owner.token);
    let bearer = format!("Bearer {}", owner.token);
    let ours = format!("http://{}", api.addr);
    let forged = r#"{"name":"Forged"}"#;
    let assignment = json!({"userId": other.id, "permissionSet": "rep"}).to_string();
    let batch =
        json!({"operations": [{"object": "account", "operation": "create", "data": {"name": "Forged"}}]})
            .to_string();
    let writes: [(&str, &str, &str); 5] = [
        ("POST", "/api/v1/data/account", forged),
        ("POST", "/api/v1/batch", &batch),
        ("POST", "/api/v1/permissions/assignments", &assignment),
        (
            "POST",
            "/api/v1/auth/api-key/create",
            r#"{"name":"forged"}"#,
        ),
        ("DELETE", "/api/v1/data/account/nope", ""),
    ];

    // The cookie alone, from another site or from nowhere, with a body a form or a no-preflight
    // fetch can send: refused before anything runs.
    for (method, path, body) in writes {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            None,
        ] {
            for origin in [Some(EVIL), None] {
                let mut headers = vec![("cookie", cookie.as_str())];
                if let Some(ct) = content_type {
                    headers.push(("content-type", ct));
                }
                if let Some(o) = origin {
                    headers.push(("origin", o));
                }
                let r = raw(api, method, path, &headers, body).await;
                refused(&r, 403, "CSRF_ORIGIN_MISMATCH");
            }
        }
        // Even as JSON, another site's page is not trusted.
        let r = raw(
            api,
            method,
            path,
            &[
                ("cookie", &cookie),
                ("origin", EVIL),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await;
        refused(&r, 403, "CSRF_ORIGIN_MISMATCH");
    }
    // Our own page must send JSON.
    for content_type in [Some("text/plain"), None] {
        let mut headers = vec![("cookie", cookie.as_str()), ("origin", ours.as_str())];
        if let Some(ct) = content_type {
            headers.push(("content-type", ct));
        }
        media_refused(&raw(api, "POST", "/api/v1/data/account", &headers, forged).await);
    }
    // Nothing was written by any of them.
    let list = api
        .get(
            "/api/v1/data/account?filter=%5B%22name%22%2C%22%3D%22%2C%22Forged%22%5D",
            owner.t(),
        )
        .await;
    assert!(list.records().is_empty(), "[{}] {}", srv.label, list.text);

    // A bearer token is not sent by a browser on its own: same requests, accepted.
    for content_type in [Some("text/plain"), None] {
        let mut headers = vec![
            ("cookie", cookie.as_str()),
            ("authorization", bearer.as_str()),
            ("origin", EVIL),
        ];
        if let Some(ct) = content_type {
            headers.push(("content-type", ct));
        }
        let r = raw(
            api,
            "POST",
            "/api/v1/data/account",
            &headers,
            r#"{"name":"By bearer"}"#,
        )
        .await;
        assert_eq!(r.status, 201, "[{}] {}: {}", srv.label, r.what, r.text);
    }
    let r = raw(
        api,
        "POST",
        "/api/v1/batch",
        &[("authorization", &bearer), ("content-type", "text/plain")],
        &batch.replace("Forged", "Batched by bearer"),
    )
    .await;
    assert_eq!(r.status, 200, "[{}] {}: {}", srv.label, r.what, r.text);

    // The cookie with JSON from our own origin (or a Referer on it): the browser console works.
    let r = raw(
        api,
        "POST",
        "/api/v1/data/account",
        &[
            ("cookie", &cookie),
            ("origin", &ours),
            ("content-type", "application/json"),
        ],
        r#"{"name":"By cookie"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "[{}] {}: {}", srv.label, r.what, r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let referer = format!("{ours}/console/accounts");
    let r = raw(
        api,
        "PATCH",
        &format!("/api/v1/data/account/{id}"),
        &[
            ("cookie", &cookie),
            ("referer", &referer),
            ("content-type", "application/json"),
        ],
        r#"{"name":"By cookie, renamed"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "[{}] {}: {}", srv.label, r.what, r.text);
    // Sign-in from our page sets the cookie; signing out by cookie needs our origin.
    let r = raw(
        api,
        "POST",
        "/api/v1/auth/sign-in/email",
        &[("origin", &ours), ("content-type", "application/json")],
        &json!({"email": other.email, "password": other.password}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "[{}] {}: {}", srv.label, r.what, r.text);
    let set_cookie = r.headers.get("set-cookie").unwrap().to_str().unwrap();
    let token = r.body["token"].as_str().unwrap();
    assert!(set_cookie.starts_with(&format!("better-auth.session_token={token};")));
    let other_cookie = format!("better-auth.session_token={token}");
    let r = raw(
        api,
        "POST",
        "/api/v1/auth/sign-out",
        &[("cookie", &other_cookie), ("origin", EVIL)],
        "",
    )
    .await;
    refused(&r, 403, "CSRF_ORIGIN_MISMATCH");
    let r = raw(
        api,
        "POST",
        "/api/v1/auth/sign-out",
        &[("cookie", &other_cookie), ("origin", &ours)],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "[{}] {}: {}", srv.label, r.what, r.text);
    srv.stop();
}

pub(crate) async fn headers(b: &Backend) {
    let srv = Server::start(b, &fixture_app(), CONFIG).await;
    let api = srv.api;
    let owner = srv.sign_up("headers_owner", "Owner-Passw0rd-x83").await;
    for r in [
        api.get("/api/v1/data/account", owner.t()).await,
        api.get("/api/v1/data/account", None).await,
        api.get("/nowhere", None).await,
        api.get("/ready", None).await,
        api.get("/api/v1/docs/", None).await,
    ] {
        let h = |n: &str| r.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            h("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{}",
            r.what
        );
        assert_eq!(
            h("referrer-policy").as_deref(),
            Some("strict-origin-when-cross-origin"),
            "{}",
            r.what
        );
        // No TLS and no `http.hstsMaxAge`: no HSTS.
        assert_eq!(h("strict-transport-security"), None, "{}", r.what);
    }
    let docs = api.get("/api/v1/docs/", None).await;
    assert_eq!(docs.status, 200, "{}", docs.text);
    let h = |n: &str| docs.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(h("x-frame-options").as_deref(), Some("DENY"));
    assert!(
        h("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    srv.stop();

    // Behind a TLS proxy the operator turns HSTS on.
    let config = format!("{CONFIG}http:\n  hstsMaxAge: 63072000\n");
    let srv = Server::start(b, &fixture_app(), &config).await;
    let r = srv.api.get("/health", None).await;
    assert_eq!(
        r.headers.get("strict-transport-security").unwrap(),
        "max-age=63072000"
    );
    srv.stop();
}
