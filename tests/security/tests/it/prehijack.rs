//! Accounts are global and organizations are anyone's, so an organization's administrator must
//! not act on what is global. Two attacks from a plain member who made an organization of its
//! own (allowed by default):
//!
//! - Pre-hijack: plant an account for someone else's address with a chosen password
//!   (`admin/create-user` in the self-made organization), wait until a real organization
//!   invites the address as administrator, sign in as it and accept. Creating accounts is for
//!   platform administrators, and answering an invitation needs the mailed token or a verified
//!   address, so neither step works; an account whose password the attacker knows (made by
//!   an administrator, or planted by an earlier version) is no help either.
//! - Enumeration: ask the self-made organization's routes about an address that has an account
//!   elsewhere and one that does not; the answers must not differ.
//!
//! The server runs with the default account settings (public sign-up closed).

use serde_json::{Value, json};

/// Builds a probe's body for an address.
type BodyFor = Box<dyn Fn(&str) -> Value>;

use crate::support::{Backend, Reply, Server, User, fixture_app, no_leak, refused};

/// The suite's settings without `allowSignUp`: the default, sign-up closed after the owner.
const DEFAULTS: &str = "\
auth:
  sessionCacheSeconds: 1
  argon2: { memoryKib: 8192, iterations: 1, parallelism: 1 }
  lockout: { maxFailedAttempts: 3, lockMinutes: 15 }
  rateLimit: { enabled: true, perIpPerMinute: 600, perEmailPerMinute: 5 }
";

const VICTIM: &str = "victim@example.com";
const ATTACKER_PASSWORD: &str = "Attacker-Passw0rd-9k2";

/// A plain member (created by the owner) who makes an organization of its own and is its owner.
async fn mallory_with_own_org(srv: &Server, owner: &User) -> (User, String) {
    let mallory = srv
        .create_user(owner, "mallory", "Mallory-Passw0rd-x71")
        .await;
    let r = srv
        .api
        .post(
            "/api/v1/auth/organization/create",
            mallory.t(),
            json!({"name": "Mallory Labs"}),
        )
        .await;
    assert_eq!(r.status, 200, "[{}] {}", srv.label, r.text);
    let org = r.body["id"].as_str().unwrap().to_owned();
    let s = srv.api.get("/api/v1/auth/get-session", mallory.t()).await;
    assert_eq!(
        s.body["session"]["activeOrganizationRole"], "owner",
        "[{}] {}",
        srv.label, s.text
    );
    (mallory, org)
}

/// The members' addresses of the caller's active organization.
async fn member_emails(srv: &Server, who: &User) -> Vec<String> {
    let r = srv
        .api
        .get("/api/v1/auth/organization/list-members", who.t())
        .await;
    assert_eq!(r.status, 200, "[{}] {}", srv.label, r.text);
    r.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"]["email"].as_str().unwrap_or_default().to_owned())
        .collect()
}

pub(crate) async fn pre_hijack(b: &Backend) {
    let srv = Server::start(b, &fixture_app(), DEFAULTS).await;
    let api = srv.api;
    let label = srv.label;
    let owner = srv.sign_up("owner", "Owner-Passw0rd-c3d").await;
    let (mallory, _) = mallory_with_own_org(&srv, &owner).await;

    // Step 1: plant an account for the victim's address, as member or admin of Mallory Labs.
    for role in [None, Some("admin")] {
        let mut body = json!({"email": VICTIM, "password": ATTACKER_PASSWORD, "name": "Victim"});
        if let Some(role) = role {
            body["role"] = json!(role);
        }
        let r = api
            .post("/api/v1/auth/admin/create-user", mallory.t(), body)
            .await;
        refused(&r, 403, "YOU_ARE_NOT_ALLOWED_TO_CREATE_USERS");
    }
    let r = api
        .post(
            "/api/v1/auth/sign-in/email",
            None,
            json!({"email": VICTIM, "password": ATTACKER_PASSWORD}),
        )
        .await;
    refused(&r, 401, "INVALID_CREDENTIALS");

    // Step 2: the real organization invites the address as an administrator. The account for
    // it already exists with a password the attacker knows (the platform administrator gave
    // it out, or an earlier version let Mallory plant it); only the mailbox is the victim's.
    let victim = srv.create_user(&owner, "victim", ATTACKER_PASSWORD).await;
    let r = api
        .post(
            "/api/v1/auth/organization/create",
            owner.t(),
            json!({"name": "Acme Holdings"}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let acme = r.body["id"].as_str().unwrap().to_owned();
    let r = api
        .post(
            "/api/v1/auth/organization/invite-member",
            owner.t(),
            json!({"email": VICTIM, "role": "admin", "organizationId": acme}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let invitation = r.body["id"].as_str().unwrap().to_owned();
    assert!(
        r.body.get("token").is_none(),
        "[{label}] the token must only be in the mail: {}",
        r.text
    );

    // Step 3: signed in as the address, the attacker finds the invitation and accepts it.
    let attacker = srv.sign_in(&victim).await;
    let r = api
        .get(
            "/api/v1/auth/organization/list-user-invitations",
            Some(&attacker),
        )
        .await;
    refused(&r, 403, "EMAIL_NOT_VERIFIED");
    no_leak(&r, &[&invitation, "Acme Holdings"]);
    // Even with the id (administrators see it), without the mailed token.
    for verb in ["accept", "reject"] {
        for body in [
            json!({"invitationId": invitation}),
            json!({"invitationId": invitation, "token": invitation}),
            json!({"invitationId": invitation, "token": "0000"}),
        ] {
            let r = api
                .post(
                    &format!("/api/v1/auth/organization/{verb}-invitation"),
                    Some(&attacker),
                    body,
                )
                .await;
            refused(&r, 403, "EMAIL_NOT_VERIFIED");
        }
    }
    // Mallory's own session is not the address's: the invitation does not exist for it.
    let r = api
        .post(
            "/api/v1/auth/organization/accept-invitation",
            mallory.t(),
            json!({"invitationId": invitation}),
        )
        .await;
    refused(&r, 404, "INVITATION_NOT_FOUND");
    // Acme is untouched: no new member, the invitation still open for the real owner.
    assert!(
        !member_emails(&srv, &owner)
            .await
            .contains(&VICTIM.to_owned()),
        "[{label}] the attacker joined Acme"
    );
    let r = api
        .get("/api/v1/auth/organization/list-invitations", owner.t())
        .await;
    assert_eq!(r.body[0]["status"], "pending", "[{label}] {}", r.text);
    let s = api.get("/api/v1/auth/get-session", Some(&attacker)).await;
    assert_ne!(
        s.body["session"]["activeOrganizationId"],
        json!(acme),
        "[{label}] {}",
        s.text
    );

    // Once the address is verified (its owner followed the verification mail; the suite
    // cannot read mail, so the flag is set directly), its holder accepts without the token.
    srv.sql(
        r#"UPDATE "user" SET "email_verified" = ? WHERE "id" = ?"#,
        vec![true.into(), victim.id.clone().into()],
    )
    .await;
    let r = api
        .post(
            "/api/v1/auth/organization/accept-invitation",
            Some(&attacker),
            json!({"invitationId": invitation}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    assert_eq!(r.body["member"]["role"], "admin", "[{label}] {}", r.text);
    srv.stop();
}

/// The answer with each address replaced by a placeholder, and the parts that differ by nature
/// (ids, times) dropped, so two answers can be compared.
fn normalized(r: &Reply, address: &str) -> (u16, Value) {
    fn scrub(v: &Value, address: &str) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "id" | "expiresAt" | "createdAt"))
                    .map(|(k, v)| (k.clone(), scrub(v, address)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|c| scrub(c, address)).collect()),
            Value::String(s) => Value::String(s.replace(address, "<address>")),
            other => other.clone(),
        }
    }
    (r.status, scrub(&r.body, address))
}

pub(crate) async fn enumeration(b: &Backend) {
    let srv = Server::start(b, &fixture_app(), DEFAULTS).await;
    let api = srv.api;
    let label = srv.label;
    let owner = srv.sign_up("owner", "Owner-Passw0rd-c3d").await;
    // An address with an account in the owner's organization, and one nobody has.
    let held = srv.create_user(&owner, "held", "Held-Passw0rd-5v8").await;
    let fresh = "fresh-7d1@example.com";
    let (mallory, _) = mallory_with_own_org(&srv, &owner).await;

    let probes: Vec<(&str, &str, BodyFor)> = vec![
        (
            "POST",
            "/api/v1/auth/admin/create-user",
            Box::new(|e| json!({"email": e, "password": "Probe-Passw0rd-1a2", "name": "P"})),
        ),
        (
            "POST",
            "/api/v1/auth/organization/add-member",
            Box::new(|e| json!({"email": e, "role": "member"})),
        ),
        (
            "POST",
            "/api/v1/data/user",
            Box::new(|e| json!({"name": "Probe", "email": e})),
        ),
        (
            "POST",
            "/api/v1/auth/organization/invite-member",
            Box::new(|e| json!({"email": e, "role": "member"})),
        ),
    ];
    for (method, path, body) in &probes {
        let known = api
            .call(method, path, mallory.t(), Some(body(&held.email)))
            .await;
        let unknown = api.call(method, path, mallory.t(), Some(body(fresh))).await;
        assert!(
            known.status < 500 && unknown.status < 500,
            "[{label}] {path}: {} / {}",
            known.text,
            unknown.text
        );
        assert_eq!(
            normalized(&known, &held.email),
            normalized(&unknown, fresh),
            "[{label}] {method} {path} tells an address with an account from a new one"
        );
    }
    // Creating accounts stays refused, and no probe created one.
    let r = api
        .post(
            "/api/v1/auth/admin/create-user",
            mallory.t(),
            json!({"email": fresh, "password": "Probe-Passw0rd-1a2"}),
        )
        .await;
    refused(&r, 403, "YOU_ARE_NOT_ALLOWED_TO_CREATE_USERS");
    let r = api
        .post(
            "/api/v1/auth/sign-in/email",
            None,
            json!({"email": fresh, "password": "Probe-Passw0rd-1a2"}),
        )
        .await;
    refused(&r, 401, "INVALID_CREDENTIALS");

    // The platform administrator (the owner) is still told that an address is taken: it
    // runs the deployment, and scripts rely on it.
    let r = api
        .post(
            "/api/v1/auth/admin/create-user",
            owner.t(),
            json!({"email": held.email, "password": "Probe-Passw0rd-1a2"}),
        )
        .await;
    assert_eq!(r.status, 422, "[{label}] {}", r.text);
    assert_eq!(
        r.body["code"], "USER_ALREADY_EXISTS",
        "[{label}] {}",
        r.text
    );
    srv.stop();
}
