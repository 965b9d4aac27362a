//! NUL characters (`\u0000`) in any input position: record values, the three filter forms,
//! `where`, search, a record id in the path, and the unauthenticated sign-in and sign-up bodies.
//! Each is refused with a 4xx (400 naming the field or parameter; sign-in answers like any bad
//! credentials) before any SQL, so PostgreSQL never sees one and the server logs no error.

use serde_json::json;

use crate::support::{Backend, Reply, enc, refused};
use crate::world::world;

const NUL: &str = "Acme\u{0}Public";

/// A 400 whose `fields` (for bodies) or `param` (for queries) names where the NUL was.
#[track_caller]
fn refused_at(r: &Reply, code: &str, field: Option<&str>, param: Option<&str>) {
    let message = refused(r, 400, code);
    assert!(message.contains("NUL"), "{}: {}", r.what, r.text);
    if let Some(f) = field {
        assert_eq!(r.body["fields"][0]["field"], f, "{}: {}", r.what, r.text);
        assert_eq!(
            r.body["fields"][0]["code"], "invalid_character",
            "{}: {}",
            r.what, r.text
        );
    }
    if let Some(p) = param {
        assert_eq!(r.body["param"], p, "{}: {}", r.what, r.text);
    }
}

pub(crate) async fn run(b: &Backend) {
    let w = world(b).await;
    let api = w.srv.api;
    let label = w.srv.label;
    let before = api
        .get("/api/v1/data/account?sort=id", w.owner.t())
        .await
        .records();

    for who in [w.owner.t(), w.rep.t()] {
        // Record values: text, select, lookup, on create and on update.
        for (field, body) in [
            ("name", json!({"name": NUL})),
            ("industry", json!({"name": "ok", "industry": "public\u{0}"})),
        ] {
            let r = api.post("/api/v1/data/account", who, body.clone()).await;
            refused_at(&r, "VALIDATION_FAILED", Some(field), None);
            let r = api
                .patch(&format!("/api/v1/data/account/{}", w.acme), who, body)
                .await;
            refused_at(&r, "VALIDATION_FAILED", Some(field), None);
        }
        let r = api
            .post(
                "/api/v1/data/deal",
                who,
                json!({"name": "d", "account": format!("{}\u{0}", w.acme)}),
            )
            .await;
        refused_at(&r, "VALIDATION_FAILED", Some("account"), None);

        // Filters: the object form, the array form, a plain field parameter, `where`, and the
        // search text; in lists, counts and aggregates.
        for path in [
            format!(
                "/api/v1/data/account?filter={}",
                enc(&json!({"name": NUL}).to_string())
            ),
            format!(
                "/api/v1/data/account?filter={}",
                enc(&json!({"name": {"$in": ["x", NUL]}}).to_string())
            ),
            format!(
                "/api/v1/data/account?filter={}",
                enc(&json!(["name", "contains", NUL]).to_string())
            ),
            format!(
                "/api/v1/data/account?filter={}",
                enc(&json!([["name", "=", "x"], "or", ["industry", "=", NUL]]).to_string())
            ),
            format!("/api/v1/data/account?name={}", enc(NUL)),
            format!("/api/v1/data/account?count=true&name={}", enc(NUL)),
            format!(
                "/api/v1/data/deal?filter={}",
                enc(&json!({"account.name": NUL}).to_string())
            ),
        ] {
            let r = api.get(&path, who).await;
            refused_at(&r, "INVALID_QUERY", None, Some("filter"));
        }
        let r = api
            .post(
                "/api/v1/data/account/query",
                who,
                json!({"where": {"name": NUL}}),
            )
            .await;
        refused_at(&r, "INVALID_QUERY", None, Some("filter"));
        let r = api
            .post(
                "/api/v1/data/account/query",
                who,
                json!({"search": {"query": NUL}}),
            )
            .await;
        refused_at(&r, "INVALID_QUERY", None, Some("search"));
        let r = api
            .get(&format!("/api/v1/data/account?search={}", enc(NUL)), who)
            .await;
        refused_at(&r, "INVALID_QUERY", None, Some("search"));

        // A record id in the path of get, update and delete.
        let bad = format!("/api/v1/data/account/{}%00", w.acme);
        let r = api.get(&bad, who).await;
        refused_at(&r, "INVALID_QUERY", None, Some("id"));
        let r = api.patch(&bad, who, json!({"name": "x"})).await;
        refused_at(&r, "INVALID_QUERY", None, Some("id"));
        let r = api.delete(&bad, who).await;
        refused_at(&r, "INVALID_QUERY", None, Some("id"));
    }

    // The unauthenticated bodies: sign-in answers a NUL email like wrong credentials (401),
    // sign-up refuses it (400); neither reaches SQL.
    for (email, password) in [
        ("ow\u{0}ner@example.com", "Owner-Passw0rd-a71"),
        ("nobody@example.com\u{0}", "x"),
    ] {
        let r = api
            .post(
                "/api/v1/auth/sign-in/email",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(r.status, 401, "[{label}] {}: {}", r.what, r.text);
    }
    let r = api
        .post(
            "/api/v1/auth/sign-up/email",
            None,
            json!({"email": "n\u{0}ul@example.com", "password": "Nul-Passw0rd-d04", "name": "n"}),
        )
        .await;
    refused(&r, 400, "INVALID_BODY");

    // Nothing changed, and the server logged no error (PostgreSQL's `invalid byte sequence`
    // was answered with a 500 and an ERROR line each time).
    let after = api
        .get("/api/v1/data/account?sort=id", w.owner.t())
        .await
        .records();
    assert_eq!(before, after, "[{label}]");
    let log = w.srv.log_text();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains("invalid byte sequence"))
        .collect();
    assert!(errors.is_empty(), "[{label}] the server logged {errors:#?}");
    w.srv.stop();
}
