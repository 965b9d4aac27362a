//! Email verification, TOTP secrets encrypted at rest, the forget-password decoy and folded
//! (NFKC) email addresses, on SQLite and PostgreSQL.

use objectos_auth::SecretKey;
use salvo::test::TestClient;
use serde_json::json;

use crate::orgs::token;
use crate::support::{BASE, H, PASSWORD, databases, test_config};

fn verify_url(link: &str) -> String {
    let query = link.split_once('?').unwrap().1;
    format!("/api/v1/auth/verify-email?{query}")
}

impl H {
    async fn count(&self, table: &str) -> i64 {
        self.sql_text(&format!(r#"SELECT CAST(COUNT(*) AS TEXT) FROM "{table}""#))
            .await
            .unwrap()
            .parse()
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_verification_gates_sign_in_when_required() {
    for db in databases("auth_verify").await {
        eprintln!("email verification on {}", db.label);
        let mut cfg = test_config();
        cfg.email_verification.required = true;
        cfg.allow_sign_up = true;
        email_verification(H::with(cfg, db.url.clone()).await).await;
        db.cleanup().await;
    }
}

async fn email_verification(h: H) {
    // Sign-up: the account and a mailed link, no session (better-auth's `token: null`).
    let r = h.sign_up("bench@example.com", PASSWORD).await;
    assert_eq!(r.ok()["token"], json!(null));
    assert_eq!(r.body["user"]["emailVerified"], false);
    assert!(r.header("set-auth-token").is_none() && r.header("set-cookie").is_none());
    let link = h.mailer.last_link().unwrap();
    assert!(
        link.starts_with("/api/v1/auth/verify-email?token="),
        "{link}"
    );
    let tok = link.split("token=").nth(1).unwrap().to_owned();
    assert_eq!(h.count("_objectos_auth_session").await, 0);

    // Sign-in: the password first (a guesser learns nothing), then 403 and still no session.
    h.sign_in("bench@example.com", "Wrong-Passw0rd")
        .await
        .error(401, "INVALID_CREDENTIALS");
    let r = h.sign_in("bench@example.com", PASSWORD).await;
    r.error(403, "EMAIL_NOT_VERIFIED");
    assert!(r.header("set-auth-token").is_none() && r.header("set-cookie").is_none());
    assert_eq!(h.count("_objectos_auth_session").await, 0);

    // The token is stored as its digest only.
    let stored = h
        .sql_text(r#"SELECT "token_hash" FROM "_objectos_auth_verification""#)
        .await
        .unwrap();
    assert_eq!(stored.len(), 64);
    assert_ne!(stored, tok);

    h.get("/api/v1/auth/verify-email?token=bogus", None)
        .await
        .error(400, "INVALID_TOKEN");
    let r = h.get(&verify_url(&link), None).await;
    assert_eq!(r.ok(), &json!({"status": true, "user": null}));
    h.event("auth.email_verified").await;
    // Single use.
    h.get(&verify_url(&link), None)
        .await
        .error(400, "INVALID_TOKEN");
    let r = h.sign_in("bench@example.com", PASSWORD).await;
    assert_eq!(r.ok()["user"]["emailVerified"], true);
    let owner = token(&r);

    // Asking for a link: always `{status: true}`; a mail only for an unverified account.
    let before = h.mailer.last_link();
    let rows = h.count("_objectos_auth_verification").await;
    for email in ["nobody@example.com", "bench@example.com"] {
        let r = h
            .post(
                "/api/v1/auth/send-verification-email",
                None,
                &json!({"email": email}),
            )
            .await;
        assert_eq!(r.ok(), &json!({"status": true}));
    }
    assert_eq!(h.mailer.last_link(), before);
    // ... after the same work: one stored (decoy) token each.
    assert_eq!(h.count("_objectos_auth_verification").await, rows + 2);
    h.post(
        "/api/v1/auth/send-verification-email",
        Some(&owner),
        &json!({"email": "bench@example.com"}),
    )
    .await
    .error(400, "BAD_REQUEST");
    h.post(
        "/api/v1/auth/send-verification-email",
        Some(&owner),
        &json!({"email": "someone@example.com"}),
    )
    .await
    .error(400, "BAD_REQUEST");
    h.post(
        "/api/v1/auth/send-verification-email",
        None,
        &json!({"email": "bench@example.com", "callbackURL": "https://evil.example/x"}),
    )
    .await
    .error(400, "SSO_INVALID_REDIRECT");

    // A later sign-up with a callback page: expired links and success both redirect there.
    h.post(
        "/api/v1/auth/sign-up/email",
        None,
        &json!({"email": "rep@example.com", "password": PASSWORD, "callbackURL": "/welcome"}),
    )
    .await
    .ok();
    let link = h.mailer.last_link().unwrap();
    assert!(link.ends_with("&callbackURL=%2Fwelcome"), "{link}");
    h.advance_minutes(24 * 60 + 1);
    let r = h.get(&verify_url(&link), None).await;
    assert_eq!(r.status.as_u16(), 302, "{}", r.text);
    assert_eq!(r.header("location"), Some("/welcome?error=INVALID_TOKEN"));
    let r = h
        .post(
            "/api/v1/auth/send-verification-email",
            None,
            &json!({"email": "REP@example.com", "callbackURL": "/welcome"}),
        )
        .await;
    r.ok();
    let link = h.mailer.last_link().unwrap();
    assert_eq!(h.mailer.last_mail().unwrap().to, "rep@example.com");
    let r = h.get(&verify_url(&link), None).await;
    assert_eq!(r.status.as_u16(), 302, "{}", r.text);
    assert_eq!(r.header("location"), Some("/welcome"));
    h.sign_in("rep@example.com", PASSWORD).await.ok();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_can_require_a_verified_address() {
    let mut cfg = test_config();
    cfg.organization.require_email_verification_on_invitation = true;
    let h = H::with(cfg, crate::support::database_url()).await;
    let owner = h.owner().await;
    h.create_user(&owner, "new@example.com", None).await.ok();
    let new = token(&h.sign_in("new@example.com", PASSWORD).await);
    let org = h
        .new_org(
            &owner,
            json!({"name": "Second", "keepCurrentActiveOrganization": true}),
        )
        .await;
    let id = h
        .post(
            "/api/v1/auth/organization/invite-member",
            Some(&owner),
            &json!({"email": "new@example.com", "role": "member", "organizationId": org}),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let accept = json!({"invitationId": id});
    h.post(
        "/api/v1/auth/organization/accept-invitation",
        Some(&new),
        &accept,
    )
    .await
    .error(403, "EMAIL_NOT_VERIFIED");
    // The signed-in user asks for the link, follows it, and may accept.
    h.post(
        "/api/v1/auth/send-verification-email",
        Some(&new),
        &json!({"email": "new@example.com"}),
    )
    .await
    .ok();
    h.get(&verify_url(&h.mailer.last_link().unwrap()), None)
        .await
        .ok();
    let r = h
        .post(
            "/api/v1/auth/organization/accept-invitation",
            Some(&new),
            &accept,
        )
        .await;
    assert_eq!(r.ok()["member"]["organizationId"], org.as_str());
    h.stop().await;
}

fn totp_code(secret: &str, at: i64) -> String {
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap();
    totp.generate(u64::try_from(at).unwrap()).to_string()
}

/// Enables and verifies TOTP for the signed-in `token`; returns the secret.
async fn enrol(h: &H, token: &str) -> String {
    let r = h
        .post(
            "/api/v1/auth/two-factor/enable",
            Some(token),
            &json!({"password": PASSWORD}),
        )
        .await;
    let secret = r.ok()["secret"].as_str().unwrap().to_owned();
    h.post(
        "/api/v1/auth/two-factor/verify-totp",
        Some(token),
        &json!({"code": totp_code(&secret, h.clock_now())}),
    )
    .await
    .ok();
    secret
}

async fn sign_in_with_code(h: &H, secret: &str) {
    h.clock.advance(std::time::Duration::from_secs(30));
    h.post(
        "/api/v1/auth/sign-in/email",
        None,
        &json!({"email": "bench@example.com", "password": PASSWORD, "code": totp_code(secret, h.clock_now())}),
    )
    .await
    .ok();
}

const STORED_SECRET: &str = r#"SELECT "secret" FROM "_objectos_auth_totp""#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_secrets_are_encrypted_at_rest() {
    let key = SecretKey::from_bytes([42; 32]);
    for db in databases("auth_totpkey").await {
        eprintln!("TOTP encryption on {}", db.label);
        let h = H::with_key(test_config(), db.url.clone(), Some(key.clone())).await;
        let owner = h.owner().await;
        let secret = enrol(&h, &owner).await;
        let stored = h.sql_text(STORED_SECRET).await.unwrap();
        assert!(stored.starts_with("enc:v1:"), "{stored}");
        assert!(!stored.contains(&secret));
        sign_in_with_code(&h, &secret).await;

        // A row written before encryption existed keeps working and is encrypted on use.
        h.sql_exec(&format!(
            r#"UPDATE "_objectos_auth_totp" SET "secret" = '{secret}'"#
        ))
        .await;
        sign_in_with_code(&h, &secret).await;
        let stored = h.sql_text(STORED_SECRET).await.unwrap();
        assert!(stored.starts_with("enc:v1:"), "{stored}");
        sign_in_with_code(&h, &secret).await;

        // A ciphertext moved onto another user's row does not decrypt there.
        h.create_user(&owner, "rep@example.com", None).await.ok();
        let rep = token(&h.sign_in("rep@example.com", PASSWORD).await);
        enrol(&h, &rep).await;
        h.sql_exec(&format!(
            r#"UPDATE "_objectos_auth_totp" SET "secret" = '{stored}'"#
        ))
        .await;
        h.clock.advance(std::time::Duration::from_secs(30));
        let r = h
            .post(
                "/api/v1/auth/sign-in/email",
                None,
                &json!({"email": "rep@example.com", "password": PASSWORD, "code": totp_code(&secret, h.clock_now())}),
            )
            .await;
        assert_eq!(r.status.as_u16(), 500, "{}", r.text);
        assert!(!r.text.contains(&stored));
        h.stop().await;
        db.cleanup().await;
    }

    // Without a key: stored as before (the plugin warned at start).
    let mut cfg = test_config();
    cfg.secret_key_env = "OBJECTOS_AUTH_TEST_NO_SUCH_KEY".into();
    let h = H::with(cfg, crate::support::database_url()).await;
    let owner = h.owner().await;
    let secret = enrol(&h, &owner).await;
    assert_eq!(h.sql_text(STORED_SECRET).await.unwrap(), secret);
    sign_in_with_code(&h, &secret).await;
    h.stop().await;
}

/// Boots on `url` (a database that outlives the kernel) with and without the right key.
async fn restart_with_keys(url: String) {
    let k1 = SecretKey::from_bytes([1; 32]);
    let h = H::with_key(test_config(), url.clone(), Some(k1.clone())).await;
    let owner = h.owner().await;
    let secret = enrol(&h, &owner).await;
    h.stop().await;

    // Encrypted secrets and no key: refused at start, naming the setting.
    let mut no_key = test_config();
    no_key.secret_key_env = "OBJECTOS_AUTH_TEST_NO_SUCH_KEY".into();
    let err = H::try_with_key(no_key, url.clone(), None)
        .await
        .err()
        .unwrap();
    assert!(
        err.contains("OBJECTOS_AUTH_TEST_NO_SUCH_KEY") && err.contains("encrypted"),
        "{err}"
    );
    // Another key: refused too.
    let err = H::try_with_key(
        test_config(),
        url.clone(),
        Some(SecretKey::from_bytes([2; 32])),
    )
    .await
    .err()
    .unwrap();
    assert!(err.contains("does not decrypt"), "{err}");
    // A variable that holds no key: refused, naming the variable and not its value.
    let mut not_a_key = test_config();
    not_a_key.secret_key_env = "PATH".into();
    let err = H::try_with_key(not_a_key, url.clone(), None)
        .await
        .err()
        .unwrap();
    assert!(err.contains("`PATH`"), "{err}");
    let path = std::env::var("PATH").unwrap_or_default();
    assert!(path.len() < 4 || !err.contains(&path), "{err}");

    // The right key: two-factor sign-in works as before.
    let h = H::with_key(test_config(), url.clone(), Some(k1)).await;
    sign_in_with_code(&h, &secret).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_key_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    restart_with_keys(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("auth.db").display()
    ))
    .await;
    for db in databases("auth_restart").await {
        if db.label == "postgres" {
            restart_with_keys(db.url.clone()).await;
        }
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_password_does_the_same_work_for_unknown_addresses() {
    for db in databases("auth_forget").await {
        eprintln!("forget-password decoys on {}", db.label);
        let h = H::with(test_config(), db.url.clone()).await;
        h.owner().await;
        assert_eq!(h.count("_objectos_auth_reset").await, 0);
        let forget = |email: &'static str| {
            let h = &h;
            async move {
                let r = h
                    .post(
                        "/api/v1/auth/forget-password",
                        None,
                        &json!({"email": email}),
                    )
                    .await;
                assert_eq!(r.ok(), &json!({"status": true}));
            }
        };
        // One stored token either way; only the real one is mailed, and the decoy is dead.
        forget("nobody@example.com").await;
        assert_eq!(h.count("_objectos_auth_reset").await, 1);
        assert!(h.mailer.last_link().is_none());
        let decoy_owner = h
            .sql_text(r#"SELECT "user_id" FROM "_objectos_auth_reset""#)
            .await
            .unwrap();
        assert_eq!(decoy_owner, "");
        forget("bench@example.com").await;
        assert_eq!(h.count("_objectos_auth_reset").await, 2);
        assert!(h.mailer.last_link().is_some());
        // Rows expired for a day are pruned by the same requests.
        h.advance_minutes(25 * 60);
        forget("nobody@example.com").await;
        assert_eq!(h.count("_objectos_auth_reset").await, 1);
        h.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_addresses_are_folded_everywhere() {
    for db in databases("auth_fold").await {
        eprintln!("email folding on {}", db.label);
        let h = H::with(test_config(), db.url.clone()).await;
        let owner = h.owner().await;
        // Created with the Kelvin sign and full-width letters: stored plain.
        let r = h
            .create_user(&owner, " \u{212A}ELVIN@ｅｘａｍｐｌｅ.com ", None)
            .await;
        assert_eq!(r.ok()["user"]["email"], "kelvin@example.com");
        for spelling in [
            "kelvin@example.com",
            "KELVIN@EXAMPLE.COM",
            "\u{212A}elvin@example.com",
        ] {
            h.sign_in(spelling, PASSWORD).await.ok();
        }
        h.create_user(&owner, "kelvin@example.com", None)
            .await
            .error(422, "USER_ALREADY_EXISTS");
        h.create_user(&owner, "\u{212A}elvin@example.com", None)
            .await
            .error(422, "USER_ALREADY_EXISTS");
        // One lockout counter for every spelling.
        for spelling in [
            "\u{212A}elvin@example.com",
            "KELVIN@example.com",
            "kelvin@ｅｘａｍｐｌｅ.com",
            "kelvin@example.com",
        ] {
            h.sign_in(spelling, "Wrong-Passw0rd")
                .await
                .error(401, "INVALID_CREDENTIALS");
        }
        h.sign_in("\u{212A}ELVIN@EXAMPLE.COM", "Wrong-Passw0rd")
            .await
            .error(429, "ACCOUNT_LOCKED");
        h.sign_in("kelvin@example.com", PASSWORD)
            .await
            .error(429, "ACCOUNT_LOCKED");
        // Public routes take any spelling too.
        let r = h
            .send(
                TestClient::post(format!("{BASE}/api/v1/auth/forget-password"))
                    .json(&json!({"email": "\u{212A}elvin@example.com"})),
            )
            .await;
        r.ok();
        assert_eq!(h.mailer.last_mail().unwrap().to, "kelvin@example.com");
        h.stop().await;
        db.cleanup().await;
    }
}
