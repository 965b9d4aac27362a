//! Tenant isolation: the owner of organization B and the owner of organization A cannot read
//! or write each other's records, by id or otherwise, through any route, and the organization
//! routes do not even reveal that the other organization exists.
//!
//! Organization B is made as a new operator would: a user signs up (joining A), creates B
//! (`organization/create`, which makes B the session's active organization), and A's owner
//! removes that user from A (`organization/remove-member`), which moves the user's profile to B.

use serde_json::{Value, json};

use crate::support::{Backend, enc, no_leak, refused, same_as_missing};
use crate::world::{HIDDEN_NAME, create, world};

const B_NAME: &str = "Beta Confidential 0c4e";
const FAKE_ORG: &str = "0190aaaaaaaa7bbbbccccddddeeeeffff";

pub(crate) async fn run(b: &Backend) {
    let w = world(b).await;
    let srv = &w.srv;
    let api = srv.api;
    let label = srv.label;

    let beta = srv.sign_up("beta", "Beta-Passw0rd-h48").await;
    let r = api
        .post(
            "/api/v1/auth/organization/create",
            beta.t(),
            json!({"name": "Beta Inc", "slug": "beta-inc"}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let org_b = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.body["members"][0]["role"], "owner",
        "[{label}] {}",
        r.text
    );
    let r = api
        .post(
            "/api/v1/auth/organization/remove-member",
            w.owner.t(),
            json!({"memberIdOrEmail": beta.email}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let s = api.get("/api/v1/auth/get-session", beta.t()).await;
    assert_eq!(
        s.body["session"]["activeOrganizationId"],
        json!(org_b),
        "[{label}] {}",
        s.text
    );
    assert_eq!(s.body["user"]["role"], "admin", "[{label}] {}", s.text);
    assert_eq!(
        s.body["user"]["tenantId"],
        json!(org_b),
        "[{label}] {}",
        s.text
    );

    // The organization routes: each side lists only its own organization, and the other one
    // is answered exactly like a made-up id on every route that names one.
    for (me, mine, theirs) in [(&w.owner, &w.org_a, &org_b), (&beta, &org_b, &w.org_a)] {
        let r = api.get("/api/v1/auth/organization/list", me.t()).await;
        assert_eq!(r.status, 200, "[{label}] {}", r.text);
        let ids: Vec<&str> = r
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [mine.as_str()], "[{label}] {}", r.text);
        let mut messages = Vec::new();
        for id in [theirs.as_str(), FAKE_ORG] {
            let mut answers = Vec::new();
            for (method, path, body) in [
                (
                    "POST",
                    "/api/v1/auth/organization/set-active".to_owned(),
                    Some(json!({"organizationId": id})),
                ),
                (
                    "GET",
                    format!("/api/v1/auth/organization/list-members?organizationId={id}"),
                    None,
                ),
                (
                    "POST",
                    "/api/v1/auth/organization/add-member".to_owned(),
                    Some(json!({"organizationId": id, "userId": me.id})),
                ),
                (
                    "POST",
                    "/api/v1/auth/organization/remove-member".to_owned(),
                    Some(json!({"organizationId": id, "memberIdOrEmail": me.id})),
                ),
            ] {
                let r = api.call(method, &path, me.t(), body).await;
                let message = refused(&r, 404, "ORGANIZATION_NOT_FOUND");
                no_leak(&r, &["Beta Inc", "beta-inc", B_NAME]);
                answers.push(message.replace(id, "<id>"));
            }
            messages.push(answers);
        }
        assert_eq!(messages[0], messages[1], "[{label}]");
        // Neither can pull the other's people in: they are answered like unknown addresses.
        let mut answers = Vec::new();
        let other = if me.id == beta.id {
            &w.owner.email
        } else {
            &beta.email
        };
        for email in [other.as_str(), "ghost@example.com"] {
            let r = api
                .post(
                    "/api/v1/auth/organization/add-member",
                    me.t(),
                    json!({"email": email}),
                )
                .await;
            answers.push(refused(&r, 404, "USER_NOT_FOUND").replace(email, "<email>"));
        }
        assert_eq!(answers[0], answers[1], "[{label}]");
        // And the admin routes see only their own organization's users.
        let r = api.get("/api/v1/auth/admin/list-users", me.t()).await;
        assert_eq!(r.status, 200, "[{label}] {}", r.text);
        no_leak(&r, &[other.as_str()]);
        let their_id = if me.id == beta.id {
            &w.rep.id
        } else {
            &beta.id
        };
        let r = api
            .post(
                "/api/v1/auth/admin/ban-user",
                me.t(),
                json!({"userId": their_id}),
            )
            .await;
        refused(&r, 404, "USER_NOT_FOUND");
    }

    // Organization B's administrator creates records of its own.
    let b_account = create(
        srv,
        &beta,
        "account",
        json!({"name": B_NAME, "industry": "public", "revenue": 77}),
    )
    .await;
    // A deal in B pointing at A's account by id is refused exactly like a link to no record:
    // the id is not a way in, not even to learn that it exists.
    let mut answers = Vec::new();
    for account in [w.hidden.as_str(), "00000000-0000-0000-0000-000000000000"] {
        let r = api
            .post(
                "/api/v1/data/deal",
                beta.t(),
                json!({"name": "Beta Deal", "amount": 3, "account": account}),
            )
            .await;
        refused(&r, 400, "VALIDATION_FAILED");
        no_leak(&r, &[HIDDEN_NAME]);
        answers.push(r.text);
    }
    assert_eq!(answers[0], answers[1], "[{label}]");
    let b_deal = create(
        srv,
        &beta,
        "deal",
        json!({"name": "Beta Deal", "amount": 3, "account": b_account}),
    )
    .await;

    // Both sides are owners (no permission checks), so only the tenant separates them.
    for (me, mine, theirs, their_names) in [
        (
            &w.owner,
            vec![w.acme.clone(), w.hidden.clone()],
            vec![b_account.clone(), b_deal.clone()],
            vec![B_NAME, "Beta Deal"],
        ),
        (
            &beta,
            vec![b_account.clone()],
            vec![w.acme.clone(), w.hidden.clone(), w.owner_deal.clone()],
            vec!["Acme Public", HIDDEN_NAME, "Rep Own", "Owner Deal"],
        ),
    ] {
        let t = me.t();
        for id in &mine {
            let r = api.get(&format!("/api/v1/data/account/{id}"), t).await;
            assert_eq!(r.status, 200, "[{label}] {}", r.text);
        }
        for id in &theirs {
            for object in ["account", "deal"] {
                let path = format!("/api/v1/data/{object}/{id}");
                let missing = format!("/api/v1/data/{object}/00000000-0000-0000-0000-000000000000");
                let m = api.get(&missing, t).await;
                let h = api.get(&path, t).await;
                same_as_missing(&h, &m, id, "00000000-0000-0000-0000-000000000000");
                let h = api.patch(&path, t, json!({"name": "taken"})).await;
                let m = api.patch(&missing, t, json!({"name": "taken"})).await;
                same_as_missing(&h, &m, id, "00000000-0000-0000-0000-000000000000");
                let h = api.delete(&path, t).await;
                let m = api.delete(&missing, t).await;
                same_as_missing(&h, &m, id, "00000000-0000-0000-0000-000000000000");
            }
            // Filters by id, counts and aggregates do not see across either.
            let filter = enc(&json!({"id": id}).to_string());
            for object in ["account", "deal"] {
                let r = api
                    .get(
                        &format!("/api/v1/data/{object}?count=true&filter={filter}"),
                        t,
                    )
                    .await;
                assert_eq!(r.body["total"], 0, "[{label}] {}", r.text);
            }
        }
        for object in ["account", "deal"] {
            let r = api
                .get(&format!("/api/v1/data/{object}?count=true"), t)
                .await;
            no_leak(&r, &their_names);
            let r = api
                .post(
                    &format!("/api/v1/data/{object}/query"),
                    t,
                    json!({"groupBy": ["name"], "aggregations": [{"function": "count", "alias": "n"}]}),
                )
                .await;
            assert_eq!(r.status, 200, "[{label}] {}", r.text);
            no_leak(&r, &their_names);
        }
        // Bulk writes by id cannot reach the other organization.
        let r = api
            .post(
                "/api/v1/data/account/updateMany",
                t,
                json!({"records": theirs.iter().map(|id| json!({"id": id, "data": {"name": "taken"}})).collect::<Vec<Value>>()}),
            )
            .await;
        no_leak(&r, &their_names);
        let r = api
            .post("/api/v1/data/account/deleteMany", t, json!({"ids": theirs}))
            .await;
        no_leak(&r, &their_names);
    }

    // Permission assignments are deployment-wide, so they are limited to the caller's own
    // organization's users: another organization's user is answered like an unknown id.
    let unknown = "00000000-0000-0000-0000-000000000000";
    for (admin, target) in [(&beta, &w.nobody.id), (&w.owner, &beta.id)] {
        for method in ["POST", "DELETE"] {
            let mut answers = Vec::new();
            for id in [target.as_str(), unknown] {
                let r = api
                    .call(
                        method,
                        "/api/v1/permissions/assignments",
                        admin.t(),
                        Some(json!({"userId": id, "permissionSet": "rep"})),
                    )
                    .await;
                let message = crate::support::refused(&r, 404, "RECORD_NOT_FOUND");
                answers.push(message.replace(id, "<id>"));
            }
            assert_eq!(answers[0], answers[1], "[{label}]");
        }
    }
    let r = api.get("/api/v1/data/account", w.nobody.t()).await;
    crate::support::refused(&r, 403, "PERMISSION_DENIED");

    // The owner's lists are organization A's rows only, the B deal links B's own account, and
    // nothing was changed on either side.
    let r = api.get("/api/v1/data/account", w.owner.t()).await;
    assert_eq!(
        r.names(),
        ["Acme Public", HIDDEN_NAME, "Rep Own"],
        "[{label}]"
    );
    let r = api.get("/api/v1/data/account", beta.t()).await;
    assert_eq!(r.names(), [B_NAME], "[{label}]");
    let r = api
        .get(
            &format!("/api/v1/data/deal/{b_deal}?expand=account"),
            beta.t(),
        )
        .await;
    assert_eq!(
        r.record()["account"]["name"],
        json!(B_NAME),
        "[{label}] {}",
        r.text
    );
    no_leak(&r, &[HIDDEN_NAME]);
    // The rep of A (not an administrator) is no closer to B.
    let r = api
        .get(&format!("/api/v1/data/account/{b_account}"), w.rep.t())
        .await;
    crate::support::refused(&r, 404, "RECORD_NOT_FOUND");
    let r = api
        .post(
            "/api/v1/auth/check",
            w.rep.t(),
            json!({"object": "account", "action": "read", "recordId": b_account}),
        )
        .await;
    assert_eq!(r.body["allowed"], false, "[{label}] {}", r.text);
    // Audit events stay in their organization, by id too.
    // (Field history is only kept for updates of trackHistory objects, so only the trail has
    // something for B to see.)
    for (path, key, b_sees) in [
        (
            format!("/api/v1/audit/trail/account/{b_account}"),
            "events",
            true,
        ),
        (
            format!("/api/v1/audit/history/account/{b_account}"),
            "history",
            false,
        ),
    ] {
        let r = api.get(&path, w.owner.t()).await;
        assert_eq!(r.status, 200, "[{label}] {}", r.text);
        assert_eq!(r.body[key], json!([]), "[{label}] {}", r.text);
        no_leak(&r, &[B_NAME]);
        // B's administrator sees its own record's trail (so the empty answer above means something).
        let r = api.get(&path, beta.t()).await;
        assert_eq!(r.status, 200, "[{label}] {}", r.text);
        assert_eq!(r.body[key] != json!([]), b_sees, "[{label}] {}", r.text);
    }
    let r = api
        .get("/api/v1/audit/events?limit=1000", w.owner.t())
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    no_leak(&r, &[B_NAME, &b_account]);
    let r = api.get("/api/v1/audit/events?limit=1000", beta.t()).await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    // (B's own deal names A's account id, which B typed; nothing of A beyond that.)
    no_leak(&r, &[HIDDEN_NAME, "Acme Public", &w.acme, &w.owner.id]);
    w.srv.stop();
}
