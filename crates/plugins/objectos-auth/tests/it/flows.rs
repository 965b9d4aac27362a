//! The auth flows end to end.

use std::sync::Arc;

use objectos_auth::{AuthConfig, LockoutConfig, RateLimitConfig};
use salvo::test::TestClient;
use serde_json::{Value, json};

use crate::support::{BASE, H, PASSWORD, database_url, databases, test_config};

const UNAUTH: &str = r#"{"error":"UNAUTHENTICATED","code":"UNAUTHENTICATED","message":"Authentication is required to access this endpoint."}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sign_up_is_owner_and_bootstrap_flips() {
    let h = H::new().await;
    let r = h.get("/api/v1/auth/bootstrap-status", None).await;
    assert_eq!(r.ok(), &json!({"hasOwner": false}));

    let r = h.sign_up("Bench@Example.com", PASSWORD).await;
    let body = r.ok().clone();
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.len(), 43);
    assert_eq!(r.header("set-auth-token"), Some(token));
    let cookie = r.header("set-cookie").unwrap();
    assert!(cookie.starts_with(&format!("better-auth.session_token={token};")));
    for part in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=28800"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let user = &body["user"];
    assert_eq!(user["email"], "bench@example.com");
    assert_eq!(user["name"], "Bench User");
    assert_eq!(user["role"], "admin");
    assert_eq!(user["emailVerified"], false);
    for key in ["id", "createdAt", "updatedAt", "image"] {
        assert!(user.get(key).is_some(), "missing {key}: {user}");
    }
    assert!(!r.text.contains(PASSWORD) && !r.text.contains("argon2"));

    let r = h.get("/api/v1/auth/bootstrap-status", None).await;
    assert_eq!(r.ok(), &json!({"hasOwner": true}));

    // Public sign-up is closed once the owner exists.
    h.sign_up("second@example.com", PASSWORD)
        .await
        .error(403, "SIGN_UP_DISABLED");
    // The owner's session carries the organization as tenant.
    let s = h.get("/api/v1/auth/get-session", Some(token)).await;
    let org = s.ok()["session"]["activeOrganizationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let orgs = h.get("/api/v1/auth/organization/list", Some(token)).await;
    assert_eq!(orgs.ok()[0]["id"], org.as_str());
    assert_eq!(orgs.body[0]["role"], "owner");

    // Records created by the owner are stamped with the organization.
    let c = h
        .post(
            "/api/v1/data/role",
            Some(token),
            &json!({"name": "sales", "label": "Sales"}),
        )
        .await;
    if c.status.is_success() {
        assert_eq!(c.body["record"]["organization_id"], org.as_str());
    }

    // Discovery (as the HTTP plugin builds it from the kernel) reports auth as available.
    let raw = h.raw_get("/api/v1/discovery").await;
    let json_start = raw.find("\r\n\r\n").unwrap() + 4;
    let doc: Value = serde_json::from_str(raw[json_start..].trim()).unwrap_or_else(|_| {
        // A chunked body: take the first JSON object in it.
        let start = raw[json_start..].find('{').unwrap() + json_start;
        let end = raw.rfind('}').unwrap();
        serde_json::from_str(&raw[start..=end]).unwrap()
    });
    assert_eq!(doc["routes"]["auth"], "/api/v1/auth", "{doc}");
    assert_eq!(doc["services"]["auth"]["status"], "available");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_access_to_data_and_meta_is_401() {
    let h = H::new().await;
    for path in [
        "/api/v1/data/user?top=1",
        "/api/v1/meta",
        "/api/v1/meta/object/user",
    ] {
        let r = h.get(path, None).await;
        assert_eq!(r.status.as_u16(), 401, "{path}");
        assert_eq!(r.body, serde_json::from_str::<Value>(UNAUTH).unwrap());
    }
    for path in [
        "/api/v1",
        "/.well-known/objectstack",
        "/api/v1/discovery",
        "/health",
        "/ready",
        "/api/v1/openapi.json",
        "/api/v1/auth/bootstrap-status",
    ] {
        let r = h.get(path, None).await;
        assert_ne!(r.status.as_u16(), 401, "{path}: {}", r.text);
    }
    // A wrong token on a protected route is refused; on a public auth route it is ignored.
    h.get("/api/v1/data/user", Some("nope"))
        .await
        .error(401, "UNAUTHENTICATED");
    h.get("/api/v1/auth/bootstrap-status", Some("nope"))
        .await
        .ok();
    h.get("/api/v1/discovery", Some("nope")).await.ok();
    h.get("/api/v1/packages", None)
        .await
        .error(401, "UNAUTHENTICATED");
    h.get("/api/v1/auth/get-session", Some("nope"))
        .await
        .error(401, "UNAUTHENTICATED");
    let token = h.owner().await;
    let r = h.get("/api/v1/data/user", Some(&token)).await;
    assert_eq!(r.ok()["records"].as_array().unwrap().len(), 1);
    h.get("/api/v1/meta", Some(&token)).await.ok();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_lockout_and_unlock() {
    let mut cfg = test_config();
    cfg.lockout = LockoutConfig {
        max_failed_attempts: 3,
        lock_minutes: 15,
    };
    let h = H::with(cfg, database_url()).await;
    h.owner().await;
    let good = h.sign_in("bench@example.com", PASSWORD).await;
    assert_eq!(good.ok()["user"]["email"], "bench@example.com");
    assert!(good.header("set-auth-token").is_some());
    // A real account and an unknown email go through the same steps and get the same answers:
    // two refusals, then the third failure locks either one for 15 minutes.
    let mut answers = Vec::new();
    for email in ["bench@example.com", "Nobody@Example.com"] {
        for _ in 0..2 {
            let r = h.sign_in(email, "Wrong-Passw0rd").await;
            r.error(401, "INVALID_CREDENTIALS");
            answers.push(r.text.clone());
        }
        let locked = h.sign_in(email, "Wrong-Passw0rd").await;
        locked.error(429, "ACCOUNT_LOCKED");
        assert_eq!(locked.header("retry-after"), Some("900"));
        answers.push(locked.text.clone());
        // Locked: even the right password is refused until the lock expires.
        let again = h.sign_in(email, PASSWORD).await;
        again.error(429, "ACCOUNT_LOCKED");
        assert_eq!(again.header("retry-after"), Some("900"));
        answers.push(again.text.clone());
    }
    assert_eq!(answers[..4], answers[4..], "the answers differ");
    assert!(!answers[2].contains("account"), "{}", answers[2]);
    h.advance_minutes(16);
    h.sign_in("bench@example.com", PASSWORD).await.ok();
    h.sign_in("nobody@example.com", PASSWORD)
        .await
        .error(401, "INVALID_CREDENTIALS");
    // A success forgets earlier failures: two more are not yet a lock.
    for _ in 0..2 {
        h.sign_in("bench@example.com", "Wrong-Passw0rd")
            .await
            .error(401, "INVALID_CREDENTIALS");
    }
    h.sign_in("bench@example.com", PASSWORD).await.ok();
    // Failures more than a day apart do not add up.
    for _ in 0..2 {
        h.sign_in("bench@example.com", "Wrong-Passw0rd")
            .await
            .error(401, "INVALID_CREDENTIALS");
    }
    h.advance_minutes(24 * 60 + 1);
    h.sign_in("bench@example.com", "Wrong-Passw0rd")
        .await
        .error(401, "INVALID_CREDENTIALS");
    h.sign_in("bench@example.com", PASSWORD).await.ok();
    let ev = h.event("auth.account_locked").await;
    assert_eq!(ev.payload["email"], "bench@example.com");
    let failed = h.event("auth.login_failed").await;
    for key in [
        "userId",
        "email",
        "tenantId",
        "ip",
        "userAgent",
        "requestId",
        "reason",
    ] {
        assert!(
            failed.payload.get(key).is_some(),
            "{key} missing: {}",
            failed.payload
        );
    }
    let text = serde_json::to_string(
        &*h.events
            .all()
            .iter()
            .map(|e| e.payload.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!text.contains(PASSWORD) && !text.contains("Wrong-Passw0rd"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_retry_after() {
    let mut cfg = test_config();
    cfg.rate_limit = RateLimitConfig {
        enabled: true,
        per_ip_per_minute: 100,
        per_email_per_minute: 3,
    };
    let h = H::with(cfg, database_url()).await;
    h.owner().await; // one token of bench@example.com's bucket
    for _ in 0..2 {
        h.sign_in("bench@example.com", PASSWORD).await.ok();
    }
    let r = h.sign_in("bench@example.com", PASSWORD).await;
    r.error(429, "RATE_LIMITED");
    assert_eq!(r.header("retry-after"), Some("20"));
    // Another email is not limited; the bucket refills with time.
    h.sign_in("other@example.com", PASSWORD)
        .await
        .error(401, "INVALID_CREDENTIALS");
    h.clock.advance(std::time::Duration::from_secs(20));
    h.sign_in("bench@example.com", PASSWORD).await.ok();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_session_by_bearer_and_cookie_then_sign_out() {
    let h = H::new().await;
    let token = h.owner().await;
    let s = h.get("/api/v1/auth/get-session", Some(&token)).await;
    assert_eq!(s.header("cache-control"), Some("no-store"));
    let b = s.ok();
    assert_eq!(b["user"]["email"], "bench@example.com");
    assert_eq!(b["session"]["token"], token.as_str());
    assert!(b["session"]["expiresAt"].is_string());
    let by_cookie = h
        .send(
            TestClient::get(format!("{BASE}/api/v1/auth/get-session")).add_header(
                "cookie",
                format!("better-auth.session_token={token}"),
                true,
            ),
        )
        .await;
    assert_eq!(by_cookie.ok()["user"]["email"], "bench@example.com");
    // Anonymous get-session is `null`, as better-auth answers.
    assert_eq!(
        h.get("/api/v1/auth/get-session", None).await.body,
        Value::Null
    );

    let out = h
        .post("/api/v1/auth/sign-out", Some(&token), &json!({}))
        .await;
    assert_eq!(out.ok(), &json!({"success": true}));
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    h.get("/api/v1/auth/get-session", Some(&token))
        .await
        .error(401, "UNAUTHENTICATED");
    h.get("/api/v1/data/user", Some(&token))
        .await
        .error(401, "UNAUTHENTICATED");
    // Signing out again with the dead token still succeeds (the client may retry).
    h.post("/api/v1/auth/sign-out", Some(&token), &json!({}))
        .await
        .ok();
    let ev = h.event("auth.logout").await;
    assert!(ev.payload["userId"].is_string());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_absolute_timeouts() {
    let h = H::new().await; // idle 30 min, absolute 480 min
    let token = h.owner().await;
    h.advance_minutes(29);
    h.get("/api/v1/auth/get-session", Some(&token)).await.ok();
    h.advance_minutes(31);
    h.get("/api/v1/auth/get-session", Some(&token))
        .await
        .error(401, "UNAUTHENTICATED");

    let token = h.sign_in("bench@example.com", PASSWORD).await.ok()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..16 {
        h.advance_minutes(29);
        h.get("/api/v1/auth/get-session", Some(&token)).await.ok();
    }
    h.advance_minutes(16); // 480 minutes since sign-in
    h.get("/api/v1/auth/get-session", Some(&token))
        .await
        .error(401, "UNAUTHENTICATED");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_password_revokes_other_sessions() {
    let h = H::new().await;
    let a = h.owner().await;
    let b = h.sign_in("bench@example.com", PASSWORD).await.ok()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    h.post(
        "/api/v1/auth/change-password",
        Some(&a),
        &json!({"currentPassword": "wrong", "newPassword": "New-Passw0rd!"}),
    )
    .await
    .error(401, "INVALID_CREDENTIALS");
    let weak = h
        .post(
            "/api/v1/auth/change-password",
            Some(&a),
            &json!({"currentPassword": PASSWORD, "newPassword": "short"}),
        )
        .await;
    weak.error(400, "WEAK_PASSWORD");
    assert!(
        weak.body["message"]
            .as_str()
            .unwrap()
            .contains("at least 8")
    );
    h.post(
        "/api/v1/auth/change-password",
        Some(&a),
        &json!({"currentPassword": PASSWORD, "newPassword": "New-Passw0rd!"}),
    )
    .await
    .ok();
    h.get("/api/v1/auth/get-session", Some(&a)).await.ok();
    h.get("/api/v1/auth/get-session", Some(&b))
        .await
        .error(401, "UNAUTHENTICATED");
    h.sign_in("bench@example.com", PASSWORD)
        .await
        .error(401, "INVALID_CREDENTIALS");
    h.sign_in("bench@example.com", "New-Passw0rd!").await.ok();
    h.event("auth.password_changed").await;
    // historyCount 3: neither the current nor the previous password may be reused.
    for reused in ["New-Passw0rd!", PASSWORD] {
        let r = h
            .post(
                "/api/v1/auth/change-password",
                Some(&a),
                &json!({"currentPassword": "New-Passw0rd!", "newPassword": reused}),
            )
            .await;
        r.error(400, "WEAK_PASSWORD");
        assert!(
            r.body["message"]
                .as_str()
                .unwrap()
                .contains("last 3 passwords")
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_and_reset_password_through_the_mailer() {
    let h = H::new().await;
    let old = h.owner().await;
    let r = h
        .post(
            "/api/v1/auth/forget-password",
            None,
            &json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(r.ok(), &json!({"status": true}));
    assert!(h.mailer.last_link().is_none());
    h.post(
        "/api/v1/auth/forget-password",
        None,
        &json!({"email": "bench@example.com"}),
    )
    .await
    .ok();
    let link = h.mailer.last_link().unwrap();
    let token = link.split("token=").nth(1).unwrap().to_owned();
    assert!(link.starts_with("/reset-password?token="));
    h.post(
        "/api/v1/auth/reset-password",
        None,
        &json!({"token": "bogus", "newPassword": "Reset-Passw0rd!"}),
    )
    .await
    .error(400, "INVALID_TOKEN");
    h.post(
        "/api/v1/auth/reset-password",
        None,
        &json!({"token": token, "newPassword": "Reset-Passw0rd!"}),
    )
    .await
    .ok();
    // Single use.
    h.post(
        "/api/v1/auth/reset-password",
        None,
        &json!({"token": token, "newPassword": "Other-Passw0rd!"}),
    )
    .await
    .error(400, "INVALID_TOKEN");
    h.get("/api/v1/auth/get-session", Some(&old))
        .await
        .error(401, "UNAUTHENTICATED");
    h.sign_in("bench@example.com", "Reset-Passw0rd!").await.ok();
    h.event("auth.password_reset").await;

    // An expired link is refused.
    h.post(
        "/api/v1/auth/forget-password",
        None,
        &json!({"email": "bench@example.com"}),
    )
    .await
    .ok();
    let token = h
        .mailer
        .last_link()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_owned();
    h.advance_minutes(31);
    h.post(
        "/api/v1/auth/reset-password",
        None,
        &json!({"token": token, "newPassword": "Later-Passw0rd!"}),
    )
    .await
    .error(400, "INVALID_TOKEN");
    h.stop().await;
}

fn totp_code(secret: &str, at: i64) -> String {
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap();
    totp.generate(u64::try_from(at).unwrap()).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_enable_verify_recovery_codes_and_disable() {
    let h = H::new().await;
    let token = h.owner().await;
    h.post(
        "/api/v1/auth/two-factor/enable",
        Some(&token),
        &json!({"password": "wrong"}),
    )
    .await
    .error(401, "INVALID_CREDENTIALS");
    let en = h
        .post(
            "/api/v1/auth/two-factor/enable",
            Some(&token),
            &json!({"password": PASSWORD}),
        )
        .await;
    let secret = en.ok()["secret"].as_str().unwrap().to_owned();
    assert!(
        en.body["totpURI"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/ObjectOS:bench@example.com?secret=")
    );
    let codes: Vec<String> = en.body["backupCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    // Not active until verified: sign-in needs no code yet.
    h.sign_in("bench@example.com", PASSWORD).await.ok();
    let now = h.clock_now();
    h.post(
        "/api/v1/auth/two-factor/verify-totp",
        Some(&token),
        &json!({"code": "000000"}),
    )
    .await
    .error(401, "INVALID_TWO_FACTOR_CODE");
    h.post(
        "/api/v1/auth/two-factor/verify-totp",
        Some(&token),
        &json!({"code": totp_code(&secret, now)}),
    )
    .await
    .ok();
    h.event("auth.mfa_enabled").await;
    // The secret never comes back.
    let s = h.get("/api/v1/auth/get-session", Some(&token)).await;
    assert!(!s.text.contains(&secret));
    assert_eq!(s.body["user"]["twoFactorEnabled"], true);

    h.sign_in("bench@example.com", PASSWORD)
        .await
        .error(401, "TWO_FACTOR_REQUIRED");
    // The same time step is not accepted twice.
    let code = totp_code(&secret, now);
    let with =
        |code: String| json!({"email": "bench@example.com", "password": PASSWORD, "code": code});
    h.post("/api/v1/auth/sign-in/email", None, &with(code))
        .await
        .error(401, "INVALID_TWO_FACTOR_CODE");
    h.clock.advance(std::time::Duration::from_secs(30));
    let code = totp_code(&secret, h.clock_now());
    h.post("/api/v1/auth/sign-in/email", None, &with(code))
        .await
        .ok();
    // A recovery code works once.
    h.post("/api/v1/auth/sign-in/email", None, &with(codes[0].clone()))
        .await
        .ok();
    h.post("/api/v1/auth/sign-in/email", None, &with(codes[0].clone()))
        .await
        .error(401, "INVALID_TWO_FACTOR_CODE");
    h.post(
        "/api/v1/auth/sign-in/email",
        None,
        &with(codes[1].to_uppercase()),
    )
    .await
    .ok();

    h.post(
        "/api/v1/auth/two-factor/disable",
        Some(&token),
        &json!({"password": PASSWORD}),
    )
    .await
    .ok();
    h.event("auth.mfa_disabled").await;
    h.sign_in("bench@example.com", PASSWORD).await.ok();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_create_list_use_revoke() {
    let h = H::new().await;
    let token = h.owner().await;
    let created = h
        .post(
            "/api/v1/auth/api-key/create",
            Some(&token),
            &json!({"name": "ci"}),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("osk_"));
    let ro = h
        .post(
            "/api/v1/auth/api-key/create",
            Some(&token),
            &json!({"name": "ro", "scopes": ["read"]}),
        )
        .await;
    let ro_key = ro.body["key"].as_str().unwrap().to_owned();
    h.post(
        "/api/v1/auth/api-key/create",
        Some(&token),
        &json!({"name": "x", "scopes": ["root"]}),
    )
    .await
    .error(400, "INVALID_BODY");

    let list = h.get("/api/v1/auth/api-key/list", Some(&token)).await;
    assert_eq!(list.ok().as_array().unwrap().len(), 3 - 1);
    assert!(!list.text.contains(&key) && !list.text.contains(&ro_key));
    assert_eq!(list.body[0]["name"], "ci");

    // Bearer and X-API-Key both work.
    h.get("/api/v1/data/user", Some(&key)).await.ok();
    let by_header = h
        .send(
            TestClient::get(format!("{BASE}/api/v1/data/user")).add_header(
                "x-api-key",
                key.clone(),
                true,
            ),
        )
        .await;
    by_header.ok();
    h.event("security.api_key_used").await;
    // A read-only key cannot write.
    h.get("/api/v1/data/user", Some(&ro_key)).await.ok();
    h.post(
        "/api/v1/data/role",
        Some(&ro_key),
        &json!({"name": "x", "label": "X"}),
    )
    .await
    .error(403, "PERMISSION_DENIED");

    h.post(
        "/api/v1/auth/api-key/delete",
        Some(&token),
        &json!({"keyId": id}),
    )
    .await
    .ok();
    h.get("/api/v1/data/user", Some(&key))
        .await
        .error(401, "UNAUTHENTICATED");
    h.post(
        "/api/v1/auth/api-key/delete",
        Some(&token),
        &json!({"keyId": id}),
    )
    .await
    .error(404, "NOT_FOUND");
    h.event("security.api_key_created").await;
    h.event("security.api_key_revoked").await;
    h.stop().await;
}

/// Collects log lines into a buffer.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn no_secret_in_logs_or_bodies() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut secrets: Vec<String> = vec![PASSWORD.to_owned(), "New-Passw0rd!".to_owned()];
    let mut bodies = String::new();
    rt.block_on(async {
        let h = H::new().await;
        let r = h.sign_up("bench@example.com", PASSWORD).await;
        let token = r.ok()["token"].as_str().unwrap().to_owned();
        bodies.push_str(&r.text);
        secrets.push(token.clone());
        let r = h.sign_in("bench@example.com", "Wrong-Passw0rd").await;
        bodies.push_str(&r.text);
        secrets.push("Wrong-Passw0rd".into());
        let r = h.get("/api/v1/auth/get-session", Some(&token)).await;
        bodies.push_str(&r.text);
        let r = h
            .post(
                "/api/v1/auth/api-key/create",
                Some(&token),
                &json!({"name": "k"}),
            )
            .await;
        let key = r.body["key"].as_str().unwrap().to_owned();
        h.get("/api/v1/data/user", Some(&key)).await.ok();
        secrets.push(key);
        let r = h
            .post(
                "/api/v1/auth/two-factor/enable",
                Some(&token),
                &json!({"password": PASSWORD}),
            )
            .await;
        secrets.push(r.body["secret"].as_str().unwrap().to_owned());
        h.post(
            "/api/v1/auth/forget-password",
            None,
            &json!({"email": "bench@example.com"}),
        )
        .await
        .ok();
        let link = h.mailer.last_link().unwrap();
        secrets.push(link.split("token=").nth(1).unwrap().to_owned());
        // Verification tokens and invitation ids travel only in mails.
        h.post(
            "/api/v1/auth/send-verification-email",
            None,
            &json!({"email": "bench@example.com"}),
        )
        .await
        .ok();
        let link = h.mailer.last_link().unwrap();
        secrets.push(link.split("token=").nth(1).unwrap().to_owned());
        let r = h
            .post(
                "/api/v1/auth/organization/invite-member",
                Some(&token),
                &json!({"email": "guest@example.com", "role": "member"}),
            )
            .await;
        secrets.push(r.ok()["id"].as_str().unwrap().to_owned());
        let r = h
            .post(
                "/api/v1/auth/change-password",
                Some(&token),
                &json!({"currentPassword": PASSWORD, "newPassword": "New-Passw0rd!"}),
            )
            .await;
        bodies.push_str(&r.text);
        h.stop().await;
    });
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("Mail sent"),
        "the capture is not working: {logs}"
    );
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret was logged");
    }
    for secret in [PASSWORD, "Wrong-Passw0rd", "New-Passw0rd!"] {
        assert!(!bodies.contains(secret), "a password was sent back");
    }
    assert!(!bodies.contains("$argon2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_account_for_scripts_and_invalid_config() {
    let h = H::new().await;
    let svc = h.auth.service().unwrap();
    let (_id, org) = svc
        .create_account("ops@example.com", PASSWORD, None, true, false)
        .await
        .unwrap();
    assert!(org.is_some(), "the first account creates the organization");
    let (id2, org2) = svc
        .create_account("member@example.com", PASSWORD, Some("M"), false, false)
        .await
        .unwrap();
    assert_eq!(org, org2);
    let r = h.sign_in("member@example.com", PASSWORD).await;
    assert_eq!(r.ok()["user"]["role"], "user");
    let r = h.sign_in("ops@example.com", PASSWORD).await;
    assert_eq!(r.ok()["user"]["role"], "admin");
    // A deactivated user can no longer sign in, and loses the sessions already open.
    let ops = r.body["token"].as_str().unwrap().to_owned();
    let member = h.sign_in("member@example.com", PASSWORD).await.ok()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    h.get("/api/v1/auth/get-session", Some(&member)).await.ok();
    let patch = h
        .send(
            TestClient::patch(format!("{BASE}/api/v1/data/user/{id2}"))
                .bearer_auth(&ops)
                .json(&json!({"status": "deactivated"})),
        )
        .await;
    patch.ok();
    h.sign_in("member@example.com", PASSWORD)
        .await
        .error(403, "ACCOUNT_DISABLED");
    h.get("/api/v1/auth/get-session", Some(&member))
        .await
        .error(401, "UNAUTHENTICATED");
    assert!(matches!(
        svc.create_account("ops@example.com", PASSWORD, None, false, false)
            .await,
        Err(objectos_auth::AuthError::UserExists)
    ));
    h.stop().await;

    let mut bad = AuthConfig::default();
    bad.session_policy.idle_timeout = 0;
    bad.lockout.max_failed_attempts = 0;
    let msg = bad.validate().unwrap_err().to_string();
    assert!(
        msg.contains("sessionPolicy.idleTimeout") && msg.contains("lockout"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_core_flow() {
    // A fresh schema per run keeps the test independent of earlier runs.
    let Some(db) = databases("auth_it")
        .await
        .into_iter()
        .find(|d| d.label == "postgres")
    else {
        return;
    };
    let h = H::with(test_config(), db.url.clone()).await;
    let token = h.owner().await;
    h.get("/api/v1/auth/get-session", Some(&token)).await.ok();
    h.get("/api/v1/data/user", None)
        .await
        .error(401, "UNAUTHENTICATED");
    h.sign_in("bench@example.com", "Wrong-Passw0rd")
        .await
        .error(401, "INVALID_CREDENTIALS");
    // Failed sign-ins are counted (an upsert) for unknown emails as for accounts.
    for _ in 0..4 {
        h.sign_in("ghost@example.com", "Wrong-Passw0rd")
            .await
            .error(401, "INVALID_CREDENTIALS");
    }
    h.sign_in("ghost@example.com", "Wrong-Passw0rd")
        .await
        .error(429, "ACCOUNT_LOCKED");
    let t2 = h.sign_in("bench@example.com", PASSWORD).await.ok()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    h.post("/api/v1/auth/sign-out", Some(&t2), &json!({}))
        .await
        .ok();
    h.get("/api/v1/auth/get-session", Some(&t2))
        .await
        .error(401, "UNAUTHENTICATED");
    // Password history, API keys and TOTP tables on PostgreSQL too.
    h.post(
        "/api/v1/auth/change-password",
        Some(&token),
        &json!({"currentPassword": PASSWORD, "newPassword": PASSWORD}),
    )
    .await
    .error(400, "WEAK_PASSWORD");
    h.post(
        "/api/v1/auth/change-password",
        Some(&token),
        &json!({"currentPassword": PASSWORD, "newPassword": "New-Passw0rd!"}),
    )
    .await
    .ok();
    let key = h
        .post(
            "/api/v1/auth/api-key/create",
            Some(&token),
            &json!({"name": "pg"}),
        )
        .await;
    let key = key.body["key"].as_str().unwrap().to_owned();
    h.get("/api/v1/data/user", Some(&key)).await.ok();
    let en = h
        .post(
            "/api/v1/auth/two-factor/enable",
            Some(&token),
            &json!({"password": "New-Passw0rd!"}),
        )
        .await;
    let secret = en.ok()["secret"].as_str().unwrap().to_owned();
    h.post(
        "/api/v1/auth/two-factor/verify-totp",
        Some(&token),
        &json!({"code": totp_code(&secret, h.clock_now())}),
    )
    .await
    .ok();
    h.stop().await;
    db.cleanup().await;
}

/// Every route the auth plugin mounts is in the OpenAPI document (checked against the router
/// itself), public routes without security, the others with the three accepted schemes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auth_route_is_in_the_openapi_document() {
    use objectos_http::RouteContribution;

    let h = H::new().await;
    let routes: Vec<RouteContribution> = h
        .kernel
        .registry()
        .contributions::<RouteContribution>()
        .unwrap()
        .iter()
        .map(|c| c.value.clone())
        .collect();
    let auth: Vec<&RouteContribution> = routes.iter().filter(|c| c.mount == "auth").collect();
    assert_eq!(auth.len(), 1);
    assert_eq!(auth[0].service.as_deref(), Some("auth"));
    assert_eq!(auth[0].undocumented(), Vec::new());

    let r = h.get("/api/v1/openapi.json", None).await;
    let doc = r.ok();
    assert_eq!(
        objectos_http::routes::openapi::missing_operations(doc, &routes),
        Vec::<String>::new()
    );
    let paths = &doc["paths"];
    assert_eq!(
        paths["/api/v1/auth/sign-in/email"]["post"]["security"],
        json!([])
    );
    assert_eq!(
        paths["/api/v1/auth/sign-up/email"]["post"]["security"],
        json!([])
    );
    assert_eq!(
        paths["/api/v1/auth/api-key/create"]["post"]["security"],
        json!([{"bearerAuth": []}, {"sessionCookie": []}, {"apiKey": []}])
    );
    assert_eq!(
        paths["/api/v1/auth/get-session"]["get"]["security"][0],
        json!({})
    );
    assert_eq!(
        paths["/api/v1/auth/organization/create"]["post"]["tags"],
        json!(["auth", "organizations"])
    );
    let mut ids = std::collections::HashSet::new();
    for item in paths.as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if let Some(id) = op["operationId"].as_str() {
                assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            }
        }
    }
    assert!(ids.len() >= 40, "{}", ids.len());
}
