//! The scenario's starting point, built over HTTP as a new operator would: the first sign-up
//! (owner, administrator), a sales rep the owner creates (`admin/create-user`) with the
//! restricted `rep` set and `sales` role assigned through the permissions API, a user with
//! nothing assigned, and records owned by each.

use serde_json::{Value, json};

use crate::support::{Backend, CONFIG, Server, User, fixture_app};

/// Values the rep must never see through any route.
pub(crate) const ACME_SECRET: &str = "acme-note-7f3a19";
pub(crate) const HIDDEN_SECRET: &str = "hidden-note-91c2e4";
pub(crate) const HIDDEN_NAME: &str = "Hidden Corp 5d81";
pub(crate) const OWNER_DEAL: &str = "Owner Deal 44b0";

#[derive(Debug)]
pub(crate) struct World {
    pub(crate) srv: Server,
    pub(crate) owner: User,
    pub(crate) rep: User,
    /// Signed up, nothing assigned: no object permission at all.
    pub(crate) nobody: User,
    pub(crate) org_a: String,
    /// Owner's public-sector account: readable by the rep through the sharing rule.
    pub(crate) acme: String,
    /// Owner's private-sector account: hidden from the rep by sharing.
    pub(crate) hidden: String,
    /// The rep's own account.
    pub(crate) rep_account: String,
    /// The owner's deal: hidden from the rep by row-level security.
    pub(crate) owner_deal: String,
    /// The rep's deals, on Acme and on the hidden account.
    pub(crate) rep_deal_acme: String,
    pub(crate) rep_deal_hidden: String,
}

#[track_caller]
pub(crate) fn id(r: &crate::support::Reply) -> String {
    assert!(r.status == 200 || r.status == 201, "{}: {}", r.what, r.text);
    r.body["id"].as_str().unwrap().to_owned()
}

/// Assigns a permission set or a role to `user` as the owner.
pub(crate) async fn assign(srv: &Server, owner: &User, user: &User, key: &str, name: &str) {
    let r = srv
        .api
        .post(
            "/api/v1/permissions/assignments",
            owner.t(),
            json!({"userId": user.id, key: name}),
        )
        .await;
    assert_eq!(r.status, 200, "[{}] assign {name}: {}", srv.label, r.text);
    assert_eq!(r.body["success"], true);
}

pub(crate) async fn create(srv: &Server, who: &User, object: &str, body: Value) -> String {
    let r = srv
        .api
        .post(&format!("/api/v1/data/{object}"), who.t(), body)
        .await;
    assert_eq!(r.status, 201, "[{}] create {object}: {}", srv.label, r.text);
    id(&r)
}

pub(crate) async fn world(backend: &Backend) -> World {
    world_with(backend, CONFIG).await
}

pub(crate) async fn world_with(backend: &Backend, config: &str) -> World {
    let srv = Server::start(backend, &fixture_app(), config).await;
    let owner = srv.sign_up("owner", "Owner-Passw0rd-a71").await;
    let session = srv.api.get("/api/v1/auth/get-session", owner.t()).await;
    let org_a = session.body["session"]["activeOrganizationId"]
        .as_str()
        .unwrap_or_else(|| panic!("no organization in {}", session.text))
        .to_owned();
    let rep = srv.create_user(&owner, "rep", "Rep-Passw0rd-b82").await;
    let nobody = srv
        .create_user(&owner, "nobody", "Nobody-Passw0rd-c93")
        .await;
    assign(&srv, &owner, &rep, "permissionSet", "rep").await;
    assign(&srv, &owner, &rep, "role", "sales").await;

    let acme = create(
        &srv,
        &owner,
        "account",
        json!({"name": "Acme Public", "industry": "public", "revenue": 100, "secret_note": ACME_SECRET}),
    )
    .await;
    let hidden = create(
        &srv,
        &owner,
        "account",
        json!({"name": HIDDEN_NAME, "industry": "private", "revenue": 900, "secret_note": HIDDEN_SECRET}),
    )
    .await;
    let rep_account = create(
        &srv,
        &rep,
        "account",
        json!({"name": "Rep Own", "industry": "private"}),
    )
    .await;
    let owner_deal = create(
        &srv,
        &owner,
        "deal",
        json!({"name": OWNER_DEAL, "amount": 500, "account": hidden}),
    )
    .await;
    let rep_deal_acme = create(
        &srv,
        &rep,
        "deal",
        json!({"name": "Rep Deal Acme", "amount": 100, "account": acme}),
    )
    .await;
    // The rep cannot link to an account they cannot see: refused exactly like an id that does
    // not exist (documented in the permissions README).
    let mut answers = Vec::new();
    for account in [hidden.as_str(), "00000000-0000-0000-0000-000000000000"] {
        let r = srv
            .api
            .post(
                "/api/v1/data/deal",
                rep.t(),
                json!({"name": "Rep Deal Hidden", "amount": 7, "account": account}),
            )
            .await;
        crate::support::refused(&r, 400, "VALIDATION_FAILED");
        answers.push(r.text);
    }
    assert_eq!(answers[0], answers[1], "[{}]", srv.label);
    // The owner links the rep's deal to the hidden account instead; the link must not reveal
    // anything about it to the rep.
    let rep_deal_hidden = create(
        &srv,
        &rep,
        "deal",
        json!({"name": "Rep Deal Hidden", "amount": 7}),
    )
    .await;
    // The partner lookup is unreadable for the rep; the owner sets it.
    for deal in [&rep_deal_acme, &rep_deal_hidden] {
        let mut patch = json!({"partner": hidden});
        if deal == &rep_deal_hidden {
            patch["account"] = json!(hidden);
        }
        let r = srv
            .api
            .patch(&format!("/api/v1/data/deal/{deal}"), owner.t(), patch)
            .await;
        assert_eq!(r.status, 200, "[{}] {}", srv.label, r.text);
    }
    World {
        srv,
        owner,
        rep,
        nobody,
        org_a,
        acme,
        hidden,
        rep_account,
        owner_deal,
        rep_deal_acme,
        rep_deal_hidden,
    }
}
