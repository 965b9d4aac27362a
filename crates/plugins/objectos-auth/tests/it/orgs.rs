//! Organizations (create, switch, members) and user administration (create, list, ban), on
//! SQLite and PostgreSQL: the active organization is the tenant the data engine sees, and no
//! route reveals or reaches an organization the caller is not a member of.

use salvo::test::TestClient;
use serde_json::{Value, json};

use crate::support::{BASE, H, PASSWORD, Reply, databases, test_config};

pub(crate) const FAKE_ORG: &str = "0190aaaaaaaa7bbbbccccddddeeeeffff";

pub(crate) fn token(r: &Reply) -> String {
    r.ok()["token"].as_str().unwrap().to_owned()
}

/// The message with `id` replaced, to compare refusals about different ids.
#[track_caller]
pub(crate) fn message_without(r: &Reply, id: &str) -> String {
    r.body["message"].as_str().unwrap().replace(id, "<id>")
}

impl H {
    pub(crate) async fn create_user(&self, admin: &str, email: &str, role: Option<&str>) -> Reply {
        let mut body =
            json!({"email": email, "password": PASSWORD, "name": email.split('@').next()});
        if let Some(role) = role {
            body["role"] = json!(role);
        }
        self.post("/api/v1/auth/admin/create-user", Some(admin), &body)
            .await
    }

    /// Creates an organization (`body` as `organization/create` takes it) and returns its id.
    pub(crate) async fn new_org(&self, token: &str, body: Value) -> String {
        self.post("/api/v1/auth/organization/create", Some(token), &body)
            .await
            .ok()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub(crate) async fn session(&self, token: &str) -> Value {
        self.get("/api/v1/auth/get-session", Some(token))
            .await
            .ok()
            .clone()
    }

    /// The `name`s of the `role` records the caller's tenant sees.
    async fn role_names(&self, token: &str) -> Vec<String> {
        let r = self.get("/api/v1/data/role", Some(token)).await;
        let mut names: Vec<String> = r.ok()["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_create_list_and_ban_users_of_their_organization() {
    for db in databases("auth_admin").await {
        eprintln!("admin routes on {}", db.label);
        admin_routes(H::with(test_config(), db.url.clone()).await).await;
        db.cleanup().await;
    }
}

async fn admin_routes(h: H) {
    let owner = h.owner().await;
    let org = h.session(&owner).await["session"]["activeOrganizationId"]
        .as_str()
        .unwrap()
        .to_owned();

    // Public sign-up is closed; the owner creates the second user, a plain member.
    h.sign_up("rep@example.com", PASSWORD)
        .await
        .error(403, "SIGN_UP_DISABLED");
    let r = h.create_user(&owner, "Rep@Example.com", None).await;
    let rep = r.ok()["user"].clone();
    assert_eq!(rep["email"], "rep@example.com");
    assert_eq!(rep["role"], "user");
    assert_eq!(rep["organizationRole"], "member");
    assert_eq!(rep["tenantId"], org.as_str());
    assert!(!r.text.contains(PASSWORD) && !r.text.contains("argon2"));
    let rep_id = rep["id"].as_str().unwrap().to_owned();
    let rep_token = token(&h.sign_in("rep@example.com", PASSWORD).await);
    let created = h.event("auth.user_created").await;
    assert_eq!(created.payload["targetUserId"], rep_id.as_str());
    assert_eq!(created.metadata.tenant_id.as_deref(), Some(org.as_str()));
    assert!(
        !serde_json::to_string(&created.payload)
            .unwrap()
            .contains(PASSWORD)
    );

    // Bad input, and the rules every account follows.
    h.create_user(&owner, "rep@example.com", None)
        .await
        .error(422, "USER_ALREADY_EXISTS");
    h.create_user(&owner, "x@example.com", Some("owner"))
        .await
        .error(400, "INVALID_BODY");
    h.post(
        "/api/v1/auth/admin/create-user",
        Some(&owner),
        &json!({"email": "weak@example.com", "password": "short"}),
    )
    .await
    .error(400, "WEAK_PASSWORD");

    // A member is no administrator: every admin route is 403.
    h.create_user(&rep_token, "x@example.com", None)
        .await
        .error(403, "PERMISSION_DENIED");
    h.get("/api/v1/auth/admin/list-users", Some(&rep_token))
        .await
        .error(403, "PERMISSION_DENIED");
    h.post(
        "/api/v1/auth/admin/ban-user",
        Some(&rep_token),
        &json!({"userId": rep_id}),
    )
    .await
    .error(403, "PERMISSION_DENIED");
    h.get("/api/v1/auth/admin/list-users", None)
        .await
        .error(401, "UNAUTHENTICATED");

    // An administrator's API key carries administrator rights only with the `admin` scope.
    let key = |scopes: Value| {
        let h = &h;
        let owner = owner.clone();
        async move {
            h.post(
                "/api/v1/auth/api-key/create",
                Some(&owner),
                &json!({"name": "k", "scopes": scopes}),
            )
            .await
            .body["key"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let plain = key(json!(["read", "write"])).await;
    h.create_user(&plain, "bykey@example.com", None)
        .await
        .error(403, "PERMISSION_DENIED");
    let admin_key = key(json!(["admin"])).await;
    let r = h
        .create_user(&admin_key, "bykey@example.com", Some("admin"))
        .await;
    assert_eq!(r.ok()["user"]["role"], "admin");

    // The list: this organization's users, paged and searchable by email.
    let r = h.get("/api/v1/auth/admin/list-users", Some(&owner)).await;
    assert_eq!(r.ok()["total"], 3);
    let emails: Vec<&str> = r.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["bench@example.com", "rep@example.com", "bykey@example.com"]
    );
    let r = h
        .get(
            "/api/v1/auth/admin/list-users?limit=1&offset=1",
            Some(&owner),
        )
        .await;
    assert_eq!(r.ok()["users"][0]["email"], "rep@example.com");
    assert_eq!(
        (r.body["total"].clone(), r.body["limit"].clone()),
        (json!(3), json!(1))
    );
    let r = h
        .get(
            "/api/v1/auth/admin/list-users?searchValue=BYKEY",
            Some(&owner),
        )
        .await;
    assert_eq!(r.ok()["total"], 1);
    // `%` and `_` are literal in the search.
    let r = h
        .get(
            "/api/v1/auth/admin/list-users?searchValue=%25",
            Some(&owner),
        )
        .await;
    assert_eq!(r.ok()["total"], 0);
    h.get("/api/v1/auth/admin/list-users?limit=-1", Some(&owner))
        .await
        .error(400, "BAD_REQUEST");

    // Ban: the sessions end, sign-in is refused; unban restores sign-in.
    let r = h
        .post(
            "/api/v1/auth/admin/ban-user",
            Some(&owner),
            &json!({"userId": rep_id, "banReason": "left the company"}),
        )
        .await;
    assert_eq!(r.ok()["user"]["banned"], true);
    assert_eq!(r.body["user"]["status"], "locked");
    h.get("/api/v1/auth/get-session", Some(&rep_token))
        .await
        .error(401, "UNAUTHENTICATED");
    h.sign_in("rep@example.com", PASSWORD)
        .await
        .error(403, "ACCOUNT_DISABLED");
    let banned = h.event("auth.user_banned").await;
    assert_eq!(banned.payload["reason"], "left the company");
    let r = h
        .post(
            "/api/v1/auth/admin/unban-user",
            Some(&owner),
            &json!({"userId": rep_id}),
        )
        .await;
    assert_eq!(r.ok()["user"]["banned"], false);
    h.sign_in("rep@example.com", PASSWORD).await.ok();
    h.event("auth.user_unbanned").await;
    // Not oneself, and not a user the caller's organization does not have.
    let me = h.session(&owner).await["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.post(
        "/api/v1/auth/admin/ban-user",
        Some(&owner),
        &json!({"userId": me}),
    )
    .await
    .error(400, "BAD_REQUEST");
    h.post(
        "/api/v1/auth/admin/ban-user",
        Some(&owner),
        &json!({"userId": FAKE_ORG}),
    )
    .await
    .error(404, "USER_NOT_FOUND");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organizations_switch_the_tenant_and_stay_apart() {
    for db in databases("auth_orgs").await {
        eprintln!("organizations on {}", db.label);
        organizations(H::with(test_config(), db.url.clone()).await).await;
        db.cleanup().await;
    }
}

async fn organizations(h: H) {
    let owner = h.owner().await;
    let org_a = h.session(&owner).await["session"]["activeOrganizationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let rep_id = h.create_user(&owner, "rep@example.com", None).await.ok()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rep = token(&h.sign_in("rep@example.com", PASSWORD).await);
    let role = |name: &str| json!({"name": name, "label": name});
    h.post("/api/v1/data/role", Some(&owner), &role("a_role"))
        .await
        .ok();

    // The rep creates organization B: owner there, and B becomes the session's tenant.
    let r = h
        .post(
            "/api/v1/auth/organization/create",
            Some(&rep),
            &json!({"name": "Beta Inc", "slug": "beta-inc"}),
        )
        .await;
    let b = r.ok().clone();
    let org_b = b["id"].as_str().unwrap().to_owned();
    assert_eq!(b["slug"], "beta-inc");
    assert_eq!(b["members"][0]["userId"], rep_id.as_str());
    assert_eq!(b["members"][0]["role"], "owner");
    let s = h.session(&rep).await;
    assert_eq!(s["session"]["activeOrganizationId"], org_b.as_str());
    assert_eq!(s["session"]["activeOrganizationRole"], "owner");
    assert_eq!(s["user"]["role"], "admin");
    let ev = h.event("auth.organization_created").await;
    assert_eq!(ev.metadata.tenant_id.as_deref(), Some(org_b.as_str()));
    // The data engine sees B now: none of A's rows, and new rows belong to B.
    assert!(h.role_names(&rep).await.is_empty());
    let r = h
        .post("/api/v1/data/role", Some(&rep), &role("b_role"))
        .await;
    assert_eq!(r.ok()["record"]["organization_id"], org_b.as_str());
    assert_eq!(h.role_names(&owner).await, ["a_role"]);
    // Switching back and forth switches the rows.
    let r = h
        .post(
            "/api/v1/auth/organization/set-active",
            Some(&rep),
            &json!({"organizationId": org_a}),
        )
        .await;
    assert_eq!(r.ok()["success"], true);
    assert_eq!(h.role_names(&rep).await, ["a_role"]);
    assert_eq!(h.session(&rep).await["user"]["role"], "user");
    h.post(
        "/api/v1/auth/organization/set-active",
        Some(&rep),
        &json!({"organizationSlug": "beta-inc"}),
    )
    .await
    .ok();
    assert_eq!(h.role_names(&rep).await, ["b_role"]);
    h.event("auth.organization_switched").await;
    let orgs = h.get("/api/v1/auth/organization/list", Some(&rep)).await;
    let roles: Vec<(&str, &str)> = orgs
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["id"].as_str().unwrap(), o["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [(org_a.as_str(), "member"), (org_b.as_str(), "owner")]
    );

    // Slugs are unique; bad ones are refused by rule.
    h.post(
        "/api/v1/auth/organization/create",
        Some(&owner),
        &json!({"name": "Copy", "slug": "beta-inc"}),
    )
    .await
    .error(400, "ORGANIZATION_SLUG_TAKEN");
    h.post(
        "/api/v1/auth/organization/create",
        Some(&owner),
        &json!({"name": "Bad", "slug": "Beta Inc"}),
    )
    .await
    .error(400, "INVALID_BODY");

    // The owner of A is no member of B: B and a made-up organization get the same answer on
    // every route, and nothing about B shows.
    let mut messages = Vec::new();
    for id in [org_b.as_str(), FAKE_ORG] {
        let answers = [
            h.post(
                "/api/v1/auth/organization/set-active",
                Some(&owner),
                &json!({"organizationId": id}),
            )
            .await,
            h.get(
                &format!("/api/v1/auth/organization/list-members?organizationId={id}"),
                Some(&owner),
            )
            .await,
            h.post(
                "/api/v1/auth/organization/add-member",
                Some(&owner),
                &json!({"organizationId": id, "email": "bench@example.com"}),
            )
            .await,
            h.post(
                "/api/v1/auth/organization/remove-member",
                Some(&owner),
                &json!({"organizationId": id, "memberIdOrEmail": rep_id}),
            )
            .await,
        ];
        for r in &answers {
            r.error(404, "ORGANIZATION_NOT_FOUND");
            assert!(!r.text.contains("Beta") && !r.text.contains("beta-inc"));
        }
        messages.push(
            answers
                .iter()
                .map(|r| message_without(r, id))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(messages[0], messages[1]);
    h.post(
        "/api/v1/auth/organization/set-active",
        Some(&owner),
        &json!({"organizationSlug": "beta-inc"}),
    )
    .await
    .error(404, "ORGANIZATION_NOT_FOUND");
    assert_eq!(h.role_names(&owner).await, ["a_role"]);

    // B's owner cannot pull A's users into B: A is not an organization the rep administers,
    // so the owner is answered like an unknown address.
    let mut messages = Vec::new();
    for who in ["bench@example.com", "ghost@example.com"] {
        let r = h
            .post(
                "/api/v1/auth/organization/add-member",
                Some(&rep),
                &json!({"email": who, "role": "admin"}),
            )
            .await;
        r.error(404, "USER_NOT_FOUND");
        messages.push(message_without(&r, who));
    }
    assert_eq!(messages[0], messages[1]);
    // A plain member of A cannot add or remove members there.
    h.post(
        "/api/v1/auth/organization/add-member",
        Some(&rep),
        &json!({"organizationId": org_a, "userId": rep_id}),
    )
    .await
    .error(403, "PERMISSION_DENIED");

    // The owner creates organization C (keeping A active) and adds carol, a user of A, as admin.
    let carol_id = h.create_user(&owner, "carol@example.com", None).await.ok()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let carol = token(&h.sign_in("carol@example.com", PASSWORD).await);
    let carol_key = h
        .post(
            "/api/v1/auth/api-key/create",
            Some(&carol),
            &json!({"name": "in A"}),
        )
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    h.get("/api/v1/data/role", Some(&carol_key)).await.ok();
    let r = h
        .post(
            "/api/v1/auth/organization/create",
            Some(&owner),
            &json!({"name": "Gamma", "keepCurrentActiveOrganization": true}),
        )
        .await;
    let org_c = r.ok()["id"].as_str().unwrap().to_owned();
    assert!(r.body["slug"].as_str().unwrap().starts_with("gamma-"));
    assert_eq!(
        h.session(&owner).await["session"]["activeOrganizationId"],
        org_a.as_str()
    );
    let r = h
        .post(
            "/api/v1/auth/organization/add-member",
            Some(&owner),
            &json!({"organizationId": org_c, "email": "carol@example.com", "role": "admin"}),
        )
        .await;
    assert_eq!(r.ok()["role"], "admin");
    assert_eq!(r.body["user"]["email"], "carol@example.com");
    h.post(
        "/api/v1/auth/organization/add-member",
        Some(&owner),
        &json!({"organizationId": org_c, "userId": carol_id}),
    )
    .await
    .error(400, "BAD_REQUEST");
    let added = h.event("auth.member_added").await;
    assert_eq!(added.payload["targetUserId"], carol_id.as_str());
    let r = h
        .get(
            &format!("/api/v1/auth/organization/list-members?organizationId={org_c}"),
            Some(&owner),
        )
        .await;
    assert_eq!(r.ok()["total"], 2);
    assert_eq!(r.body["members"][1]["user"]["email"], "carol@example.com");
    // Carol administers C once she switches to it.
    h.post(
        "/api/v1/auth/organization/set-active",
        Some(&carol),
        &json!({"organizationId": org_c}),
    )
    .await
    .ok();
    assert_eq!(h.session(&carol).await["user"]["role"], "admin");
    assert!(h.role_names(&carol).await.is_empty());
    // Her API key stays in A, and reaches no other organization.
    assert_eq!(h.role_names(&carol_key).await, ["a_role"]);
    let orgs = h
        .get("/api/v1/auth/organization/list", Some(&carol_key))
        .await;
    assert_eq!(orgs.ok().as_array().unwrap().len(), 1);
    h.get(
        &format!("/api/v1/auth/organization/list-members?organizationId={org_c}"),
        Some(&carol_key),
    )
    .await
    .error(404, "ORGANIZATION_NOT_FOUND");
    // Without the `admin` scope a key changes no membership, not even its owner's own.
    h.post(
        "/api/v1/auth/organization/remove-member",
        Some(&carol_key),
        &json!({"memberIdOrEmail": carol_id}),
    )
    .await
    .error(403, "PERMISSION_DENIED");

    // Removing: the last owner stays, a plain member may not remove others, anyone may leave.
    h.post(
        "/api/v1/auth/organization/remove-member",
        Some(&owner),
        &json!({"memberIdOrEmail": "bench@example.com"}),
    )
    .await
    .error(400, "BAD_REQUEST");
    h.post(
        "/api/v1/auth/organization/remove-member",
        Some(&rep),
        &json!({"organizationId": org_a, "memberIdOrEmail": carol_id}),
    )
    .await
    .error(403, "PERMISSION_DENIED");
    // The owner removes carol from A: her profile moves to C (A no longer administers it), her
    // key for A stops working, her session stays in C.
    let r = h
        .post(
            "/api/v1/auth/organization/remove-member",
            Some(&owner),
            &json!({"memberIdOrEmail": "carol@example.com"}),
        )
        .await;
    assert_eq!(r.ok()["member"]["userId"], carol_id.as_str());
    let removed = h.event("auth.member_removed").await;
    assert_eq!(removed.payload["profileMoved"], true);
    assert!(!removed.payload.to_string().contains(&org_c));
    h.get("/api/v1/data/role", Some(&carol_key))
        .await
        .error(401, "UNAUTHENTICATED");
    let s = h.session(&carol).await;
    assert_eq!(s["session"]["activeOrganizationId"], org_c.as_str());
    assert_eq!(s["user"]["tenantId"], org_c.as_str());
    let users = h.get("/api/v1/data/user", Some(&owner)).await;
    assert!(!users.ok().to_string().contains("carol@example.com"));
    // Her last organization cannot be taken from her (ban the account instead).
    h.post(
        "/api/v1/auth/organization/remove-member",
        Some(&owner),
        &json!({"organizationId": org_c, "memberIdOrEmail": carol_id}),
    )
    .await
    .error(400, "BAD_REQUEST");
    // The rep leaves A while its session is there: the session moves on to B.
    h.post(
        "/api/v1/auth/organization/set-active",
        Some(&rep),
        &json!({"organizationId": org_a}),
    )
    .await
    .ok();
    h.post(
        "/api/v1/auth/organization/remove-member",
        Some(&rep),
        &json!({"memberIdOrEmail": rep_id}),
    )
    .await
    .ok();
    let s = h.session(&rep).await;
    assert_eq!(s["session"]["activeOrganizationId"], org_b.as_str());
    assert_eq!(h.role_names(&rep).await, ["b_role"]);
    // An unknown member, in an organization one belongs to.
    h.post(
        "/api/v1/auth/organization/remove-member",
        Some(&owner),
        &json!({"memberIdOrEmail": "ghost@example.com"}),
    )
    .await
    .error(404, "USER_NOT_FOUND");
    let r = h
        .send(
            TestClient::post(format!("{BASE}/api/v1/auth/organization/create"))
                .add_header("x-api-key", carol_key, true)
                .json(&json!({"name": "By key"})),
        )
        .await;
    r.error(401, "UNAUTHENTICATED");
    h.stop().await;
}
