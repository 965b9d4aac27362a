//! Concurrent requests that once could break an invariant, on SQLite and PostgreSQL: two owners
//! demoting or removing each other at once leave the organization an owner, and two invitations
//! to the same address at once create one.

use serde_json::{Value, json};

use crate::orgs::token;
use crate::support::{H, PASSWORD, Reply, databases, test_config};

const REMOVE: &str = "/api/v1/auth/organization/remove-member";

/// Rounds per scenario: each races two requests, which need not overlap every time.
const ROUNDS: usize = 8;

impl H {
    /// One text value `sql` selects (the SQL has no parameters).
    async fn sql_number(&self, sql: &str) -> i64 {
        self.sql_text(sql).await.unwrap().parse().unwrap()
    }

    async fn owners_of(&self, org: &str) -> i64 {
        self.sql_number(&format!(
            r#"SELECT CAST(COUNT(*) AS TEXT) FROM "_objectos_auth_member" WHERE "org_id" = '{org}' AND "role" = 'owner'"#
        ))
        .await
    }
}

/// Exactly one of two racing requests went through; the other was refused with a 4xx.
#[track_caller]
fn one_of(a: &Reply, b: &Reply) {
    let ok = [a, b].iter().filter(|r| r.status.is_success()).count();
    assert_eq!(ok, 1, "exactly one must win:\n{a:?}\n{b:?}");
    for r in [a, b] {
        assert!(
            r.status.is_success() || r.status.is_client_error(),
            "a refusal is a 4xx: {r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_cannot_together_leave_an_organization_ownerless() {
    let mut cfg = test_config();
    // Every round owns a new organization.
    cfg.organization.limit_per_user = 100;
    for db in databases("auth_owner_race").await {
        eprintln!("owner races on {}", db.label);
        owner_races(H::with(cfg.clone(), db.url.clone()).await).await;
        db.cleanup().await;
    }
    // A SQLite file has separate reader and writer connections (memory has one for all).
    let dir = tempfile::tempdir().unwrap();
    let file = format!("sqlite://{}?mode=rwc", dir.path().join("auth.db").display());
    eprintln!("owner races on a sqlite file");
    owner_races(H::with(cfg, file).await).await;
}

async fn owner_races(h: H) {
    let a = h.owner().await;
    h.create_user(&a, "b@example.com", None).await.ok();
    let b = token(&h.sign_in("b@example.com", PASSWORD).await);
    let (a_id, b_id) = (h.user_id(&a).await, h.user_id(&b).await);
    for round in 0..3 * ROUNDS {
        // A fresh organization with two owners (both keep the first one, so removal is allowed).
        let org = h
            .new_org(
                &a,
                json!({"name": format!("Race {round}"), "keepCurrentActiveOrganization": true}),
            )
            .await;
        h.post(
            "/api/v1/auth/organization/add-member",
            Some(&a),
            &json!({"userId": b_id, "role": "owner", "organizationId": org}),
        )
        .await
        .ok();
        assert_eq!(h.owners_of(&org).await, 2);
        let demote =
            |target: &str| json!({"memberId": target, "role": "admin", "organizationId": org});
        let remove = |target: &str| json!({"memberIdOrEmail": target, "organizationId": org});
        let role = crate::invitations::ROLE;
        let ((path_a, body_a), (path_b, body_b)) = match round % 3 {
            // Each demotes the other.
            0 => ((role, demote(&b_id)), (role, demote(&a_id))),
            // Each removes the other.
            1 => ((REMOVE, remove(&b_id)), (REMOVE, remove(&a_id))),
            // One demotes, the other removes.
            _ => ((role, demote(&b_id)), (REMOVE, remove(&a_id))),
        };
        let (ra, rb) = tokio::join!(
            h.post(path_a, Some(&a), &body_a),
            h.post(path_b, Some(&b), &body_b)
        );
        one_of(&ra, &rb);
        assert_eq!(
            h.owners_of(&org).await,
            1,
            "round {round}: the organization keeps exactly one owner\n{ra:?}\n{rb:?}"
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invitations_to_one_address_create_one() {
    for db in databases("auth_invite_race").await {
        eprintln!("invitation races on {}", db.label);
        invitation_races(H::with(test_config(), db.url.clone()).await).await;
        db.cleanup().await;
    }
}

async fn invitation_races(h: H) {
    let a = h.owner().await;
    h.create_user(&a, "adm@example.com", Some("admin"))
        .await
        .ok();
    let adm = token(&h.sign_in("adm@example.com", PASSWORD).await);
    for round in 0..ROUNDS {
        let email = format!("guest{round}@example.com");
        let body = json!({"email": email, "role": "member"});
        // Two administrators at once, or one twice.
        let second = if round % 2 == 0 { &adm } else { &a };
        let (r1, r2) = tokio::join!(h.invite(&a, body.clone()), h.invite(second, body.clone()));
        one_of(&r1, &r2);
        for r in [&r1, &r2] {
            if !r.status.is_success() {
                r.error(400, "BAD_REQUEST");
                assert!(r.text.contains("already has an open invitation"), "{r:?}");
            }
        }
        let pending = h
            .sql_number(&format!(
                r#"SELECT CAST(COUNT(*) AS TEXT) FROM "_objectos_auth_invitation" WHERE "email" = '{email}' AND "status" = 'pending'"#
            ))
            .await;
        assert_eq!(pending, 1, "round {round}");
    }
    // An expired invitation still gives way to a new one, which replaces it.
    let body = json!({"email": "guest0@example.com"});
    h.advance_minutes(48 * 60 + 1);
    let a = token(&h.sign_in("bench@example.com", PASSWORD).await);
    let fresh: Value = h.invite(&a, body).await.ok().clone();
    assert_eq!(fresh["status"], "pending");
    let statuses = h
        .sql_number(
            r#"SELECT CAST(COUNT(*) AS TEXT) FROM "_objectos_auth_invitation" WHERE "email" = 'guest0@example.com' AND "status" = 'canceled'"#,
        )
        .await;
    assert_eq!(statuses, 1, "the expired invitation was canceled");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_duplicates_from_before_the_index_are_resolved_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = format!("sqlite://{}?mode=rwc", dir.path().join("auth.db").display());
    let mut urls = vec![("sqlite file", file, None)];
    for db in databases("auth_invite_dupes").await {
        if db.label == "postgres" {
            urls.push(("postgres", db.url.clone(), Some(db)));
        }
    }
    for (label, url, db) in urls {
        eprintln!("pending duplicates on {label}");
        let h = H::with(test_config(), url.clone()).await;
        let a = h.owner().await;
        let org = h.session(&a).await["session"]["activeOrganizationId"]
            .as_str()
            .unwrap()
            .to_owned();
        // A database written before the index: two pending invitations to one address.
        h.sql_exec(r#"DROP INDEX "_objectos_auth_invitation_pending""#)
            .await;
        // Such a database has not recorded the plugin's current tables either.
        h.sql_exec(
            r#"DELETE FROM "_objectos_schema" WHERE "object" = '__plugin:com.objectos.auth'"#,
        )
        .await;
        for (id, at) in [("old", 1), ("new", 2)] {
            h.sql_exec(&format!(
                r#"INSERT INTO "_objectos_auth_invitation" ("id", "org_id", "email", "role", "status", "inviter_id", "created_at", "expires_at", "updated_at") VALUES ('{id}', '{org}', 'dup@example.com', 'member', 'pending', 'x', {at}, 9999999999999, {at})"#
            ))
            .await;
        }
        h.stop().await;
        // The next start keeps the newest, cancels the other and builds the index.
        let h = H::with(test_config(), url.clone()).await;
        assert_eq!(
            h.sql_text(r#"SELECT "id" FROM "_objectos_auth_invitation" WHERE "email" = 'dup@example.com' AND "status" = 'pending'"#)
                .await
                .as_deref(),
            Some("new")
        );
        let a = token(&h.sign_in("bench@example.com", PASSWORD).await);
        h.invite(&a, json!({"email": "dup@example.com"}))
            .await
            .error(400, "BAD_REQUEST");
        h.stop().await;
        if let Some(db) = db {
            db.cleanup().await;
        }
    }
}
