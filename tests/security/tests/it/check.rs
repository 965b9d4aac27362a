//! `POST /api/v1/permissions/check` (and `/api/v1/auth/check`) with a `recordId`: a record of
//! another organization and an id that does not exist both answer `allowed: false` with the
//! same reason, for an administrator as for a restricted user, as a GET of either answers the
//! same 404; the caller's own records still answer `true`.

use serde_json::{Value, json};

use crate::support::{Backend, User};
use crate::world::{create, world};

const MISSING: &str = "00000000-0000-0000-0000-000000000000";

async fn check(
    api: crate::support::Api,
    who: &User,
    path: &str,
    object: &str,
    action: &str,
    id: &str,
) -> Value {
    let r = api
        .post(
            path,
            who.t(),
            json!({"object": object, "action": action, "recordId": id}),
        )
        .await;
    assert_eq!(r.status, 200, "{}: {}", r.what, r.text);
    r.body
}

pub(crate) async fn run(b: &Backend) {
    let w = world(b).await;
    let srv = &w.srv;
    let api = srv.api;
    let label = srv.label;

    // Organization B, made as tenants.rs makes it: a user signs up (joining A), creates B, and
    // A's owner removes them from A. B's administrator creates an account there.
    let beta = srv.sign_up("beta", "Beta-Passw0rd-h48").await;
    let r = api
        .post(
            "/api/v1/auth/organization/create",
            beta.t(),
            json!({"name": "Beta Inc", "slug": "beta-inc"}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let r = api
        .post(
            "/api/v1/auth/organization/remove-member",
            w.owner.t(),
            json!({"memberIdOrEmail": beta.email}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let b_account = create(
        srv,
        &beta,
        "account",
        json!({"name": "Beta Account", "industry": "public"}),
    )
    .await;

    for path in ["/api/v1/permissions/check", "/api/v1/auth/check"] {
        for action in ["read", "edit", "delete"] {
            // The owner of A is an administrator: everything of A, nothing outside it.
            let own = check(api, &w.owner, path, "account", action, &w.hidden).await;
            assert_eq!(own["allowed"], true, "[{label}] {path} {action}: {own}");
            let other = check(api, &w.owner, path, "account", action, &b_account).await;
            let missing = check(api, &w.owner, path, "account", action, MISSING).await;
            assert_eq!(
                other["allowed"], false,
                "[{label}] {path} {action}: {other}"
            );
            assert_eq!(other, missing, "[{label}] {path} {action}");
            // And the other way round.
            let other = check(api, &beta, path, "account", action, &w.acme).await;
            let missing = check(api, &beta, path, "account", action, MISSING).await;
            assert_eq!(
                other["allowed"], false,
                "[{label}] {path} {action}: {other}"
            );
            assert_eq!(other, missing, "[{label}] {path} {action}");
            let mine = check(api, &beta, path, "account", action, &b_account).await;
            assert_eq!(mine["allowed"], true, "[{label}] {path} {action}: {mine}");
        }
        // The restricted rep: another organization's account, a missing one and one hidden by
        // sharing all answer alike; their own answers true.
        let mut answers = Vec::new();
        for id in [b_account.as_str(), MISSING, w.hidden.as_str()] {
            answers.push(check(api, &w.rep, path, "account", "read", id).await);
        }
        assert_eq!(
            answers[0]["allowed"], false,
            "[{label}] {path}: {}",
            answers[0]
        );
        assert!(
            answers.iter().all(|a| a == &answers[0]),
            "[{label}] {path}: {answers:?}"
        );
        let mine = check(api, &w.rep, path, "account", "read", &w.rep_account).await;
        assert_eq!(mine["allowed"], true, "[{label}] {path}: {mine}");
    }
    w.srv.stop();
}
