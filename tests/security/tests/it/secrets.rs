//! Secrets: after every flow that handles one (sign-up, wrong and changed passwords, sessions,
//! TOTP enrolment, API keys, password reset mails), none of them appears in the server's log
//! (captured at debug level), in the audit trail (events and both export formats) or in any
//! refusal.

use serde_json::json;

use crate::support::{Reply, refused};
use crate::world::{ACME_SECRET, HIDDEN_SECRET, world};

fn contains_any(haystack: &str, secrets: &[String]) -> Vec<String> {
    secrets
        .iter()
        .filter(|s| haystack.contains(s.as_str()))
        .cloned()
        .collect()
}

pub(crate) async fn run(b: &crate::support::Backend) {
    let w = world(b).await;
    let srv = &w.srv;
    let api = srv.api;
    let label = srv.label;
    let mut secrets: Vec<String> = vec![
        w.owner.password.clone(),
        w.rep.password.clone(),
        w.nobody.password.clone(),
        w.owner.token.clone(),
        w.rep.token.clone(),
        w.nobody.token.clone(),
    ];
    let mut refusals: Vec<Reply> = Vec::new();

    // A wrong password.
    let wrong = "Wrong-Secret-Pw-i59";
    secrets.push(wrong.to_owned());
    let r = api
        .post(
            "/api/v1/auth/sign-in/email",
            None,
            json!({"email": w.rep.email, "password": wrong}),
        )
        .await;
    refused(&r, 401, "INVALID_CREDENTIALS");
    refusals.push(r);
    // A weak password, refused with the broken rules (not the password).
    let weak = "weakpw";
    let r = api
        .post(
            "/api/v1/auth/sign-up/email",
            None,
            json!({"email": "weak@example.com", "password": weak, "name": "Weak"}),
        )
        .await;
    refused(&r, 400, "WEAK_PASSWORD");
    assert!(!r.text.contains(weak), "[{label}] {}", r.text);
    refusals.push(r);

    // A second session, then a password change (with a wrong current password first).
    let extra = srv.sign_in(&w.nobody).await;
    secrets.push(extra.clone());
    let new_password = "Nobody-New-Passw0rd-j60";
    secrets.push(new_password.to_owned());
    let r = api
        .post(
            "/api/v1/auth/change-password",
            Some(&extra),
            json!({"currentPassword": "Not-The-Current-k71", "newPassword": new_password}),
        )
        .await;
    refused(&r, 401, "INVALID_CREDENTIALS");
    secrets.push("Not-The-Current-k71".to_owned());
    refusals.push(r);
    let r = api
        .post(
            "/api/v1/auth/change-password",
            Some(&extra),
            json!({"currentPassword": w.nobody.password, "newPassword": new_password}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let r = api
        .post("/api/v1/auth/sign-out", Some(&extra), json!({}))
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);

    // TOTP enrolment: the seed and the recovery codes are shown once.
    let r = api
        .post(
            "/api/v1/auth/two-factor/enable",
            w.owner.t(),
            json!({"password": w.owner.password}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let seed = r.body["secret"].as_str().unwrap().to_owned();
    assert!(seed.len() >= 16, "[{label}] {}", r.text);
    secrets.push(seed);
    for code in r.body["backupCodes"].as_array().unwrap() {
        secrets.push(code.as_str().unwrap().to_owned());
    }
    let r = api
        .post(
            "/api/v1/auth/two-factor/verify-totp",
            w.owner.t(),
            json!({"code": "000000"}),
        )
        .await;
    refused(&r, 401, "INVALID_TWO_FACTOR_CODE");
    refusals.push(r);

    // API keys: created, used, listed, deleted.
    let r = api
        .post(
            "/api/v1/auth/api-key/create",
            w.owner.t(),
            json!({"name": "ci", "scopes": ["read", "write", "admin"]}),
        )
        .await;
    assert_eq!(r.status, 201, "[{label}] {}", r.text);
    let key = r.body["key"].as_str().unwrap().to_owned();
    let key_id = r.body["id"].as_str().unwrap().to_owned();
    secrets.push(key.clone());
    let r = api
        .send("GET", "/api/v1/data/account", &[("x-api-key", &key)], None)
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let r = api.get("/api/v1/auth/api-key/list", w.owner.t()).await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    assert!(
        contains_any(&r.text, &secrets).is_empty(),
        "[{label}] the key list shows a secret: {}",
        r.text
    );
    let r = api
        .post(
            "/api/v1/auth/api-key/delete",
            w.owner.t(),
            json!({"keyId": key_id}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let r = api
        .send("GET", "/api/v1/data/account", &[("x-api-key", &key)], None)
        .await;
    refused(&r, 401, "UNAUTHENTICATED");
    refusals.push(r);

    // A reset mail: the link's token must not be logged.
    let r = api
        .post(
            "/api/v1/auth/forget-password",
            None,
            json!({"email": w.rep.email}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let r = api
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"token": "made-up-reset-token-l82", "newPassword": "Rep-New-Passw0rd-m93"}),
        )
        .await;
    refused(&r, 400, "INVALID_TOKEN");
    refusals.push(r);
    secrets.push("Rep-New-Passw0rd-m93".to_owned());

    // The audit trail, as an administrator reads or exports it.
    let mut audit = String::new();
    for path in [
        "/api/v1/audit/events?limit=1000",
        "/api/v1/audit/export?format=json",
        "/api/v1/audit/export?format=csv",
    ] {
        let r = api.get(path, w.owner.t()).await;
        assert_eq!(r.status, 200, "[{label}] {path}: {}", r.text);
        audit.push_str(&r.text);
    }
    // The trail did record these flows (so the check below looks at something real).
    for event in [
        "auth.login_failed",
        "auth.password_changed",
        "security.api_key_created",
        "security.api_key_revoked",
        "authz.permission_granted",
        "data.create",
    ] {
        assert!(
            audit.contains(event),
            "[{label}] no {event} in the audit trail"
        );
    }
    let found = contains_any(&audit, &secrets);
    assert!(
        found.is_empty(),
        "[{label}] the audit trail holds {found:?}"
    );
    // Fields named like secrets are redacted in the trail's diffs as well.
    for value in [ACME_SECRET, HIDDEN_SECRET] {
        assert!(
            !audit.contains(value),
            "[{label}] the audit trail shows secret_note's value"
        );
    }

    for r in &refusals {
        let found = contains_any(&r.text, &secrets);
        assert!(found.is_empty(), "[{label}] {} reveals {found:?}", r.what);
    }

    let log = srv.log_text();
    // The log was captured (at debug level) and saw these flows.
    assert!(log.contains("Account created."), "[{label}] log: {log}");
    assert!(
        log.lines().count() > 20,
        "[{label}] the log is too short to mean anything:\n{log}"
    );
    let found = contains_any(&log, &secrets);
    assert!(found.is_empty(), "[{label}] the server log holds {found:?}");
    assert!(
        !log.contains("token="),
        "[{label}] the log shows a reset link's token"
    );
    w.srv.stop();
}
