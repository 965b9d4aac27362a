//! Authentication: anonymous access, lockout, rate limits, and sessions that must stop working
//! (signed out, idle, past their absolute lifetime, revoked by a password change, deleted keys).

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::{Backend, refused};
use crate::world::{ACME_SECRET, HIDDEN_NAME, world};

pub(crate) async fn anonymous(b: &Backend) {
    let w = world(b).await;
    let api = w.srv.api;
    let acme = format!("/api/v1/data/account/{}", w.acme);
    for path in [
        "/api/v1/data/account",
        "/api/v1/data/account?count=true",
        acme.as_str(),
        "/api/v1/data/memo",
        "/api/v1/meta/object",
        "/api/v1/meta/object/account",
        "/api/v1/permissions/effective",
        "/api/v1/permissions/sets",
        "/api/v1/auth/permissions/effective",
        "/api/v1/auth/permissions/account",
        "/api/v1/audit/events",
        "/api/v1/audit/export",
        "/api/v1/auth/api-key/list",
        "/api/v1/auth/organization/list",
        "/api/v1/auth/organization/list-members",
        "/api/v1/auth/admin/list-users",
    ] {
        let r = api.get(path, None).await;
        refused(&r, 401, "UNAUTHENTICATED");
        crate::support::no_leak(&r, &["Acme Public", ACME_SECRET, HIDDEN_NAME]);
    }
    for (method, path, body) in [
        ("POST", "/api/v1/data/account", json!({"name": "anon"})),
        ("POST", "/api/v1/data/account/query", json!({})),
        (
            "POST",
            "/api/v1/data/account/batch",
            json!({"operation": "create", "records": [{"data": {"name": "anon"}}]}),
        ),
        ("PATCH", acme.as_str(), json!({"name": "anon"})),
        ("DELETE", acme.as_str(), json!({})),
        (
            "POST",
            "/api/v1/permissions/assignments",
            json!({"userId": w.nobody.id, "permissionSet": "rep"}),
        ),
        (
            "POST",
            "/api/v1/auth/check",
            json!({"object": "account", "action": "read"}),
        ),
        ("POST", "/api/v1/auth/api-key/create", json!({"name": "k"})),
        (
            "POST",
            "/api/v1/auth/admin/create-user",
            json!({"email": "anon@example.com", "password": "Anon-Passw0rd-q37"}),
        ),
        (
            "POST",
            "/api/v1/auth/admin/ban-user",
            json!({"userId": w.rep.id}),
        ),
        (
            "POST",
            "/api/v1/auth/organization/create",
            json!({"name": "Anon Inc"}),
        ),
        (
            "POST",
            "/api/v1/auth/organization/add-member",
            json!({"organizationId": w.org_a, "userId": w.nobody.id}),
        ),
        (
            "POST",
            "/api/v1/auth/organization/remove-member",
            json!({"organizationId": w.org_a, "memberIdOrEmail": w.rep.id}),
        ),
        (
            "POST",
            "/api/v1/auth/organization/set-active",
            json!({"organizationId": w.org_a}),
        ),
    ] {
        let r = api.call(method, path, None, Some(body)).await;
        refused(&r, 401, "UNAUTHENTICATED");
    }
    // A made-up bearer token, session cookie or API key is no better than none.
    for (name, value) in [
        ("authorization", "Bearer not-a-real-token"),
        ("cookie", "better-auth.session_token=not-a-real-token"),
        ("x-api-key", "osk_not_a_real_key"),
    ] {
        let r = api
            .send("GET", "/api/v1/data/account", &[(name, value)], None)
            .await;
        refused(&r, 401, "UNAUTHENTICATED");
    }
    // Open routes stay open, and get-session answers `null` for nobody.
    assert_eq!(api.get("/api/v1/discovery", None).await.status, 200);
    let r = api.get("/api/v1/auth/get-session", None).await;
    assert_eq!((r.status, r.body.clone()), (200, json!(null)), "{}", r.text);

    // Nothing was created, changed or deleted.
    let r = api.get("/api/v1/data/account", w.owner.t()).await;
    let names = r.names();
    assert_eq!(names, ["Acme Public", HIDDEN_NAME, "Rep Own"], "{}", r.text);
    w.srv.stop();
}

pub(crate) async fn lockout_and_rate_limit(b: &Backend) {
    let w = world(b).await;
    let api = w.srv.api;
    let label = w.srv.label;
    // An account of its own: the per-email limit (5 a minute) must not be what stops it.
    let victim = w.srv.sign_up("victim", "Victim-Passw0rd-d04").await;
    let wrong = "Wrong-Passw0rd-e15";
    let sign_in = move |email: String, password: &'static str| async move {
        api.post(
            "/api/v1/auth/sign-in/email",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    };
    // An account and an unknown email go through the same steps with the same answers: two
    // refusals, then the third failure in a row locks the address (429 with Retry-After, a
    // message that names no account), and then even the right password is refused. Nothing
    // tells the attacker which address has an account.
    let right: &'static str = "Victim-Passw0rd-d04";
    let mut transcripts = Vec::new();
    for email in [victim.email.clone(), "ghost@example.com".to_owned()] {
        let mut answers = Vec::new();
        for _ in 0..2 {
            let r = sign_in(email.clone(), wrong).await;
            answers.push(refused(&r, 401, "INVALID_CREDENTIALS"));
            crate::support::no_leak(&r, &[wrong, right]);
        }
        for password in [wrong, right] {
            let r = sign_in(email.clone(), password).await;
            let message = refused(&r, 429, "ACCOUNT_LOCKED");
            let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((890..=900).contains(&retry), "[{label}] {r:?}");
            assert!(!message.contains("account"), "[{label}] {message}");
            crate::support::no_leak(&r, &[wrong, right]);
            // The seconds left may tick between the two addresses.
            answers.push(message.replace(|c: char| c.is_ascii_digit(), ""));
        }
        transcripts.push(answers);
    }
    assert_eq!(transcripts[0], transcripts[1], "[{label}]");

    // Sign-in attempts for one email are rate limited (5 a minute here), known or not: an
    // unknown address meets the lockout first and then the limit...
    let mut answers = Vec::new();
    for _ in 0..6 {
        let r = sign_in("probe@example.com".into(), wrong).await;
        let code = r.body["code"].as_str().unwrap_or_default().to_owned();
        refused(&r, r.status, &code);
        if r.status == 429 {
            assert!(r.headers.contains_key("retry-after"), "[{label}] {r:?}");
        }
        answers.push((r.status, code));
    }
    let expect = |s: u16, c: &str| (s, c.to_owned());
    assert_eq!(
        answers,
        [
            expect(401, "INVALID_CREDENTIALS"),
            expect(401, "INVALID_CREDENTIALS"),
            expect(429, "ACCOUNT_LOCKED"),
            expect(429, "ACCOUNT_LOCKED"),
            expect(429, "ACCOUNT_LOCKED"),
            expect(429, "RATE_LIMITED"),
        ],
        "[{label}]"
    );
    // ... and an account signing in correctly meets the limit on its sixth sign-in.
    let steady = w.srv.sign_up("steady", "Steady-Passw0rd-e26").await;
    for _ in 0..4 {
        w.srv.sign_in(&steady).await;
    }
    let r = sign_in(steady.email.clone(), "Steady-Passw0rd-e26").await;
    refused(&r, 429, "RATE_LIMITED");
    w.srv.stop();
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(crate) async fn sessions(b: &Backend) {
    // Five sign-ins and a password change for one email: above the suite's limit of 5 a minute.
    let config = crate::support::CONFIG.replace("perEmailPerMinute: 5", "perEmailPerMinute: 50");
    let w = crate::world::world_with(b, &config).await;
    let srv = &w.srv;
    let api = srv.api;
    let label = srv.label;
    let user = srv.sign_up("sess", "Sess-Passw0rd-f26").await;
    let (t2, t3, t4, t5) = (
        srv.sign_in(&user).await,
        srv.sign_in(&user).await,
        srv.sign_in(&user).await,
        srv.sign_in(&user).await,
    );
    let works = move |token: String| async move {
        api.get("/api/v1/permissions/effective", Some(&token)).await
    };
    for t in [&user.token, &t2, &t3, &t4, &t5] {
        assert_eq!(works(t.clone()).await.status, 200, "[{label}]");
    }

    // Signed out: the token is dead on every protected route and on get-session.
    let r = api
        .post("/api/v1/auth/sign-out", Some(&t2), json!({}))
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    refused(&works(t2.clone()).await, 401, "UNAUTHENTICATED");
    refused(
        &api.get("/api/v1/auth/get-session", Some(&t2)).await,
        401,
        "UNAUTHENTICATED",
    );
    refused(
        &api.get("/api/v1/data/account", Some(&t2)).await,
        401,
        "UNAUTHENTICATED",
    );

    // Idle past the idle timeout (30 minutes by default): the session's clock is moved back
    // instead of waiting.
    let minutes = |m: i64| sea_orm::Value::from(m * 60_000);
    let n = srv
        .sql(
            r#"UPDATE "_objectos_auth_session" SET "last_seen_at" = "last_seen_at" - ? WHERE "token_hash" = ?"#,
            vec![minutes(31), digest(&t3).into()],
        )
        .await;
    assert_eq!(n, 1, "[{label}] no session row for the token");
    // Written behind the server's back: seen once the cached resolution (1 s here) expires.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    refused(&works(t3.clone()).await, 401, "UNAUTHENTICATED");
    // Older than the absolute timeout (8 hours), although active a moment ago.
    srv.sql(
        r#"UPDATE "_objectos_auth_session" SET "created_at" = "created_at" - ? WHERE "token_hash" = ?"#,
        vec![minutes(481), digest(&t4).into()],
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    refused(&works(t4.clone()).await, 401, "UNAUTHENTICATED");

    // A password change revokes every other session of the user, and keeps the current one.
    let r = api
        .post(
            "/api/v1/auth/change-password",
            Some(&t5),
            json!({"currentPassword": user.password, "newPassword": "Sess-Passw0rd-g37"}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    refused(&works(user.token.clone()).await, 401, "UNAUTHENTICATED");
    assert_eq!(works(t5.clone()).await.status, 200, "[{label}]");

    // API keys: a read-only key cannot write; a deleted key is refused. (The rep's key: an
    // administrator's key without the `admin` scope carries no administrator rights.)
    let r = api
        .post(
            "/api/v1/auth/api-key/create",
            w.rep.t(),
            json!({"name": "reader", "scopes": ["read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "[{label}] {}", r.text);
    let key = r.body["key"].as_str().unwrap().to_owned();
    let key_id = r.body["id"].as_str().unwrap().to_owned();
    let with_key = [("x-api-key", key.as_str())];
    let r = api
        .send("GET", "/api/v1/data/account", &with_key, None)
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let r = api
        .send(
            "POST",
            "/api/v1/data/account",
            &with_key,
            Some(&json!({"name": "written with a read key"})),
        )
        .await;
    refused(&r, 403, "PERMISSION_DENIED");
    let r = api
        .post(
            "/api/v1/auth/api-key/delete",
            w.rep.t(),
            json!({"keyId": key_id}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let r = api
        .send("GET", "/api/v1/data/account", &with_key, None)
        .await;
    refused(&r, 401, "UNAUTHENTICATED");
    let bearer = format!("Bearer {key}");
    let r = api
        .send(
            "GET",
            "/api/v1/data/account",
            &[("authorization", bearer.as_str())],
            None,
        )
        .await;
    refused(&r, 401, "UNAUTHENTICATED");

    // Nothing was written by the refused requests.
    let names = api.get("/api/v1/data/account", w.owner.t()).await.names();
    assert_eq!(names, ["Acme Public", HIDDEN_NAME, "Rep Own"], "[{label}]");
    w.srv.stop();
}
