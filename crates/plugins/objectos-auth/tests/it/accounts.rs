//! Accounts are global, organizations are anyone's: an organization's administrator cannot plant
//! an account for an address it does not control (`admin/create-user` is for platform
//! administrators), whoever answers an invitation proves the address is theirs (the mailed token
//! or a verified address), a ban reaches beyond one organization only by a platform
//! administrator's hand, and the data API neither creates user records nor changes addresses, so
//! none of these routes tells a self-made organization which addresses have accounts.

use serde_json::{Value, json};

use crate::orgs::token;
use crate::support::{H, PASSWORD, Reply, databases, test_config};

const CREATE: &str = "/api/v1/auth/admin/create-user";
const MEMBERS: &str = "/api/v1/auth/organization/list-members";

impl H {
    /// The `token` of the last mailed link (an invitation's).
    pub(crate) fn mailed_token(&self) -> String {
        let link = self.mailer.last_link().unwrap();
        link.split_once("token=")
            .unwrap()
            .1
            .split('&')
            .next()
            .unwrap()
            .to_owned()
    }

    /// Verifies `email` (the session's own address) through the mailed link.
    pub(crate) async fn verify_email(&self, session: &str, email: &str) {
        self.post(
            "/api/v1/auth/send-verification-email",
            Some(session),
            &json!({"email": email}),
        )
        .await
        .ok();
        let link = self.mailer.last_link().unwrap();
        let query = link.split_once('?').unwrap().1;
        self.get(&format!("/api/v1/auth/verify-email?{query}"), None)
            .await
            .ok();
    }

    /// An account that is a member of `org` only: the owner (a platform administrator) creates
    /// it, `inviter` invites it to `org`, it accepts with the mailed token, and the owner's
    /// organization lets it go. Returns the user id.
    pub(crate) async fn member_of_only(
        &self,
        owner: &str,
        inviter: &str,
        email: &str,
        org: &str,
    ) -> String {
        let id = self.create_user(owner, email, None).await.ok()["user"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.join(inviter, email, org).await;
        self.post(
            "/api/v1/auth/organization/remove-member",
            Some(owner),
            &json!({"memberIdOrEmail": id}),
        )
        .await
        .ok();
        id
    }

    /// `inviter` invites `email` to `org` and the addressee accepts with the mailed token.
    pub(crate) async fn join(&self, inviter: &str, email: &str, org: &str) {
        let inv = self
            .post(
                "/api/v1/auth/organization/invite-member",
                Some(inviter),
                &json!({"email": email, "role": "member", "organizationId": org}),
            )
            .await;
        let id = inv.ok()["id"].as_str().unwrap().to_owned();
        let mailed = self.mailed_token();
        let session = token(&self.sign_in(email, PASSWORD).await);
        self.answer_with(&session, "accept", &id, Some(&mailed))
            .await
            .ok();
    }

    async fn member_emails(&self, session: &str, org: &str) -> Vec<String> {
        self.get(&format!("{MEMBERS}?organizationId={org}"), Some(session))
            .await
            .ok()["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["user"]["email"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Status, code and body of an answer, to compare two answers that must be the same.
fn shape(r: &Reply) -> (u16, Value) {
    (r.status.as_u16(), r.body.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_platform_administrators_create_accounts() {
    for db in databases("auth_accounts").await {
        eprintln!("create-user on {}", db.label);
        create_user_rules(H::with(test_config(), db.url.clone()).await).await;
        db.cleanup().await;
    }
}

async fn create_user_rules(h: H) {
    let owner = h.owner().await;
    // A plain member makes an organization of its own, which it administers.
    h.create_user(&owner, "mallory@example.com", None)
        .await
        .ok();
    let mallory = token(&h.sign_in("mallory@example.com", PASSWORD).await);
    let evil = h.new_org(&mallory, json!({"name": "Evil"})).await;
    assert_eq!(
        h.session(&mallory).await["session"]["activeOrganizationId"],
        evil.as_str()
    );

    // Creating an account for someone else's address with a chosen password is refused, and
    // the answer is the same for an address with an account and a new one.
    let planted = h.create_user(&mallory, "victim@example.com", None).await;
    planted.error(403, "YOU_ARE_NOT_ALLOWED_TO_CREATE_USERS");
    let taken = h.create_user(&mallory, "bench@example.com", None).await;
    assert_eq!(shape(&taken), shape(&planted));
    let as_admin = h
        .create_user(&mallory, "victim@example.com", Some("admin"))
        .await;
    assert_eq!(shape(&as_admin), shape(&planted));
    // Even a malformed address or a weak password gets the same refusal: nothing is looked at.
    let r = h
        .post(
            CREATE,
            Some(&mallory),
            &json!({"email": "nope", "password": "x"}),
        )
        .await;
    assert_eq!(shape(&r), shape(&planted));
    h.sign_in("victim@example.com", PASSWORD)
        .await
        .error(401, "INVALID_CREDENTIALS");
    // The owner's creation of mallory is the only account created.
    let created = h
        .event_names()
        .iter()
        .filter(|n| *n == "auth.user_created")
        .count();
    assert_eq!(created, 1);

    // An administrator flag from an earlier version (an organization admin could hand it out)
    // does not make the admin of a self-made organization a platform administrator.
    h.sql_exec(
        r#"UPDATE "_objectos_auth_credential" SET "is_admin" = 1 WHERE "email" = 'mallory@example.com'"#,
    )
    .await;
    let mallory = token(&h.sign_in("mallory@example.com", PASSWORD).await);
    h.post(
        "/api/v1/auth/organization/set-active",
        Some(&mallory),
        &json!({"organizationId": evil}),
    )
    .await
    .ok();
    h.create_user(&mallory, "victim@example.com", None)
        .await
        .error(403, "YOU_ARE_NOT_ALLOWED_TO_CREATE_USERS");

    // An admin of the first organization who was not created as an administrator is an
    // organization admin, not a platform administrator.
    let promoted = h.create_user(&owner, "promoted@example.com", None).await;
    let promoted_id = promoted.ok()["user"]["id"].as_str().unwrap().to_owned();
    h.post(
        "/api/v1/auth/organization/update-member-role",
        Some(&owner),
        &json!({"memberId": promoted_id, "role": "admin"}),
    )
    .await
    .ok();
    let promoted = token(&h.sign_in("promoted@example.com", PASSWORD).await);
    h.create_user(&promoted, "victim@example.com", None)
        .await
        .error(403, "YOU_ARE_NOT_ALLOWED_TO_CREATE_USERS");

    // The owner and the administrators it creates are platform administrators; they are told
    // when an address is taken (they run the deployment).
    h.create_user(&owner, "ops@example.com", Some("admin"))
        .await
        .ok();
    let ops = token(&h.sign_in("ops@example.com", PASSWORD).await);
    h.create_user(&ops, "victim@example.com", None).await.ok();
    h.create_user(&owner, "victim@example.com", None)
        .await
        .error(422, "USER_ALREADY_EXISTS");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_an_invitation_needs_the_mailed_token_or_a_verified_address() {
    for db in databases("auth_prehijack").await {
        eprintln!("invitation proof on {}", db.label);
        let mut cfg = test_config();
        // Public sign-up lets anyone hold an account for an address it does not own.
        cfg.allow_sign_up = true;
        pre_hijack(H::with(cfg, db.url.clone()).await).await;
        db.cleanup().await;
    }
}

async fn pre_hijack(h: H) {
    let owner = h.owner().await;
    // The attacker registers the victim's address with a password of its choosing (public
    // sign-up puts it in the first organization).
    let squatter = token(&h.sign_up("victim@example.com", "Squatter-Passw0rd!").await);
    // The organization that will invite the address (the new organization becomes active).
    let org = h.new_org(&owner, json!({"name": "Target"})).await;

    // Later the organization invites the address as an administrator.
    let inv = h
        .post(
            "/api/v1/auth/organization/invite-member",
            Some(&owner),
            &json!({"email": "victim@example.com", "role": "admin"}),
        )
        .await;
    let id = inv.ok()["id"].as_str().unwrap().to_owned();
    let mailed = h.mailed_token();

    // The squatter cannot list the invitation, and even with its id (which administrators
    // see) can neither accept nor reject it without the token only the mail carries.
    h.get(
        "/api/v1/auth/organization/list-user-invitations",
        Some(&squatter),
    )
    .await
    .error(403, "EMAIL_NOT_VERIFIED");
    for verb in ["accept", "reject"] {
        for guess in [None, Some(id.as_str()), Some("")] {
            h.answer_with(&squatter, verb, &id, guess)
                .await
                .error(403, "EMAIL_NOT_VERIFIED");
        }
    }
    assert!(
        !h.member_emails(&owner, &org)
            .await
            .contains(&"victim@example.com".to_owned())
    );
    // Nor can it verify the address: the link goes to the victim's mailbox (here: the mailer).
    let listed = h
        .get("/api/v1/auth/organization/list-invitations", Some(&owner))
        .await;
    assert_eq!(listed.ok()[0]["status"], "pending");
    assert!(!listed.text.contains(&mailed));

    // The victim takes the account back by resetting the password (which ends the squatter's
    // sessions), then accepts with the mailed token.
    h.post(
        "/api/v1/auth/forget-password",
        None,
        &json!({"email": "victim@example.com"}),
    )
    .await
    .ok();
    let reset = h.mailer.last_link().unwrap();
    let reset_token = reset.split_once("token=").unwrap().1.to_owned();
    h.post(
        "/api/v1/auth/reset-password",
        None,
        &json!({"token": reset_token, "newPassword": PASSWORD}),
    )
    .await
    .ok();
    h.get("/api/v1/auth/get-session", Some(&squatter))
        .await
        .error(401, "UNAUTHENTICATED");
    let victim = token(&h.sign_in("victim@example.com", PASSWORD).await);
    let r = h.answer_with(&victim, "accept", &id, Some(&mailed)).await;
    assert_eq!(r.ok()["member"]["role"], "admin");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_strict_setting_needs_a_verified_address_even_with_the_token() {
    let mut cfg = test_config();
    cfg.organization.require_email_verification_on_invitation = true;
    let h = H::with(cfg, crate::support::database_url()).await;
    let owner = h.owner().await;
    h.create_user(&owner, "new@example.com", None).await.ok();
    let new = token(&h.sign_in("new@example.com", PASSWORD).await);
    let id = h
        .post(
            "/api/v1/auth/organization/invite-member",
            Some(&owner),
            &json!({"email": "new@example.com", "role": "member", "organizationId": h.new_org(&owner, json!({"name": "Second", "keepCurrentActiveOrganization": true})).await}),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mailed = h.mailed_token();
    h.answer_with(&new, "accept", &id, Some(&mailed))
        .await
        .error(403, "EMAIL_NOT_VERIFIED");
    h.verify_email(&new, "new@example.com").await;
    h.answer_with(&new, "accept", &id, Some(&mailed)).await.ok();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_admin_bans_only_accounts_used_nowhere_else() {
    for db in databases("auth_ban_scope").await {
        eprintln!("ban scope on {}", db.label);
        ban_scope(H::with(test_config(), db.url.clone()).await).await;
        db.cleanup().await;
    }
}

async fn ban_scope(h: H) {
    let owner = h.owner().await;
    h.create_user(&owner, "boss@example.com", None).await.ok();
    let boss = token(&h.sign_in("boss@example.com", PASSWORD).await);
    let beta = h.new_org(&boss, json!({"name": "Beta"})).await;
    // X joins Beta and another organization, then leaves the first one: its user record moves
    // to Beta, whose admin now manages the profile.
    let x_id = h.create_user(&owner, "x@example.com", None).await.ok()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.join(&boss, "x@example.com", &beta).await;
    let gamma = h
        .new_org(
            &owner,
            json!({"name": "Gamma", "keepCurrentActiveOrganization": true}),
        )
        .await;
    h.join(&owner, "x@example.com", &gamma).await;
    h.post(
        "/api/v1/auth/organization/remove-member",
        Some(&owner),
        &json!({"memberIdOrEmail": x_id}),
    )
    .await
    .ok();
    let boss = token(&h.sign_in("boss@example.com", PASSWORD).await);
    h.post(
        "/api/v1/auth/organization/set-active",
        Some(&boss),
        &json!({"organizationId": beta}),
    )
    .await
    .ok();

    // A ban locks the account everywhere, so Beta's admin may not while X is in Gamma too.
    h.post(
        "/api/v1/auth/admin/ban-user",
        Some(&boss),
        &json!({"userId": x_id}),
    )
    .await
    .error(403, "PERMISSION_DENIED");
    let x = token(&h.sign_in("x@example.com", PASSWORD).await);
    // Once X is in Beta only, Beta's admin may.
    h.post(
        "/api/v1/auth/organization/remove-member",
        Some(&x),
        &json!({"memberIdOrEmail": x_id, "organizationId": gamma}),
    )
    .await
    .ok();
    let r = h
        .post(
            "/api/v1/auth/admin/ban-user",
            Some(&boss),
            &json!({"userId": x_id}),
        )
        .await;
    assert_eq!(r.ok()["user"]["banned"], true);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_api_neither_creates_users_nor_changes_addresses() {
    for db in databases("auth_user_identity").await {
        eprintln!("user identity on {}", db.label);
        user_identity(H::with(test_config(), db.url.clone()).await).await;
        db.cleanup().await;
    }
}

async fn user_identity(h: H) {
    let owner = h.owner().await;
    let owner_id = h.user_id(&owner).await;
    h.create_user(&owner, "rep@example.com", None).await.ok();
    let rep = token(&h.sign_in("rep@example.com", PASSWORD).await);
    let rep_id = h.user_id(&rep).await;
    // A self-made organization's admin asks about an address with an account and a new one.
    let own = h.new_org(&rep, json!({"name": "Own"})).await;
    assert!(!own.is_empty());
    let taken = h
        .post(
            "/api/v1/data/user",
            Some(&rep),
            &json!({"name": "T", "email": "bench@example.com"}),
        )
        .await;
    taken.error(403, "PERMISSION_DENIED");
    let new = h
        .post(
            "/api/v1/data/user",
            Some(&rep),
            &json!({"name": "T", "email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(shape(&taken), shape(&new));

    // Addresses and their verification do not change through the data API, not even by the
    // owner; the other fields do, and sending the current address is no change.
    let path = format!("/api/v1/data/user/{rep_id}");
    for patch in [
        json!({"email": "bench@example.com"}),
        json!({"email": "fresh@example.com"}),
        json!({"email_verified": true}),
    ] {
        let r = h
            .send(
                salvo::test::TestClient::patch(format!("{}{path}", crate::support::BASE))
                    .json(&patch)
                    .bearer_auth(&owner),
            )
            .await;
        r.error(403, "PERMISSION_DENIED");
    }
    let r = h
        .send(
            salvo::test::TestClient::patch(format!("{}{path}", crate::support::BASE))
                .json(&json!({"name": "Rep Renamed", "email": "rep@example.com", "email_verified": false}))
                .bearer_auth(&owner),
        )
        .await;
    assert_eq!(r.ok()["record"]["name"], "Rep Renamed", "{}", r.text);
    assert_ne!(owner_id, rep_id);
    h.stop().await;
}
