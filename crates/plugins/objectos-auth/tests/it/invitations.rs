//! Member roles, invitations and the organization creation limit, on SQLite and PostgreSQL:
//! only owners and admins manage them, owners stay owners by owners' hands, nothing of another
//! organization can be reached, and an invitation is answered once, by its addressee.

use serde_json::{Value, json};

use crate::orgs::{FAKE_ORG, message_without, token};
use crate::support::{H, PASSWORD, Reply, databases, test_config};

pub(crate) const ROLE: &str = "/api/v1/auth/organization/update-member-role";
pub(crate) const INVITE: &str = "/api/v1/auth/organization/invite-member";

impl H {
    pub(crate) async fn user_id(&self, token: &str) -> String {
        self.session(token).await["user"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub(crate) async fn set_role(&self, token: &str, body: Value) -> Reply {
        self.post(ROLE, Some(token), &body).await
    }

    pub(crate) async fn invite(&self, token: &str, body: Value) -> Reply {
        self.post(INVITE, Some(token), &body).await
    }

    async fn answer(&self, token: &str, verb: &str, id: &str) -> Reply {
        self.answer_with(token, verb, id, None).await
    }

    /// Answers (`accept`, `reject`, `cancel`) an invitation, with the mailed token when given.
    pub(crate) async fn answer_with(
        &self,
        token: &str,
        verb: &str,
        id: &str,
        mailed: Option<&str>,
    ) -> Reply {
        let mut body = json!({"invitationId": id});
        if let Some(mailed) = mailed {
            body["token"] = json!(mailed);
        }
        self.post(
            &format!("/api/v1/auth/organization/{verb}-invitation"),
            Some(token),
            &body,
        )
        .await
    }

    /// The `(userId, role)` pairs of an organization's members.
    pub(crate) async fn member_roles(&self, token: &str, org: &str) -> Vec<(String, String)> {
        let r = self
            .get(
                &format!("/api/v1/auth/organization/list-members?organizationId={org}"),
                Some(token),
            )
            .await;
        r.ok()["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["userId"].as_str().unwrap().to_owned(),
                    m["role"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_roles_change_by_the_rules() {
    for db in databases("auth_roles").await {
        eprintln!("member roles on {}", db.label);
        member_roles(H::with(test_config(), db.url.clone()).await).await;
        db.cleanup().await;
    }
}

async fn member_roles(h: H) {
    let owner = h.owner().await;
    let owner_id = h.user_id(&owner).await;
    let org = h.session(&owner).await["session"]["activeOrganizationId"]
        .as_str()
        .unwrap()
        .to_owned();
    h.create_user(&owner, "adm@example.com", Some("admin"))
        .await
        .ok();
    h.create_user(&owner, "mem@example.com", None).await.ok();
    h.create_user(&owner, "boss@example.com", None).await.ok();
    let adm = token(&h.sign_in("adm@example.com", PASSWORD).await);
    let mem = token(&h.sign_in("mem@example.com", PASSWORD).await);
    let boss = token(&h.sign_in("boss@example.com", PASSWORD).await);
    let adm_id = h.user_id(&adm).await;
    let mem_id = h.user_id(&mem).await;

    // Another organization, with a member the first one does not have.
    let org_b = h.new_org(&boss, json!({"name": "Beta"})).await;
    // Only platform administrators create accounts: the owner creates it, B invites it, and
    // the first organization lets it go.
    let b_only = h
        .member_of_only(&owner, &boss, "bonly@example.com", &org_b)
        .await;

    // Bad input.
    h.set_role(&owner, json!({"memberId": mem_id, "role": "boss"}))
        .await
        .error(400, "INVALID_BODY");
    h.set_role(&owner, json!({"role": "admin"}))
        .await
        .error(400, "INVALID_BODY");
    h.set_role(&owner, json!({"memberId": mem_id}))
        .await
        .error(400, "INVALID_BODY");

    // A member cannot change roles, not even their own.
    h.set_role(&mem, json!({"memberId": mem_id, "role": "admin"}))
        .await
        .error(403, "PERMISSION_DENIED");

    // An admin promotes a member to admin; the member's next request sees it.
    let r = h
        .set_role(&adm, json!({"memberId": mem_id, "role": "admin"}))
        .await;
    assert_eq!(r.ok()["role"], "admin");
    assert_eq!(r.body["userId"], mem_id.as_str());
    assert_eq!(r.body["organizationId"], org.as_str());
    assert_eq!(r.body["user"]["email"], "mem@example.com");
    let s = h.session(&mem).await;
    assert_eq!(s["session"]["activeOrganizationRole"], "admin");
    assert_eq!(s["user"]["role"], "admin");
    let ev = h.event("auth.member_role_updated").await;
    assert_eq!(ev.payload["targetUserId"], mem_id.as_str());
    assert_eq!(ev.payload["role"], "admin");
    assert_eq!(ev.payload["previousRole"], "member");
    assert_eq!(ev.metadata.tenant_id.as_deref(), Some(org.as_str()));
    // ... and back (`userId` names the member too).
    h.set_role(&adm, json!({"userId": mem_id, "role": "member"}))
        .await
        .ok();
    assert_eq!(
        h.session(&mem).await["session"]["activeOrganizationRole"],
        "member"
    );

    // An admin can neither make an owner nor touch one.
    h.set_role(&adm, json!({"memberId": mem_id, "role": "owner"}))
        .await
        .error(403, "PERMISSION_DENIED");
    h.set_role(&adm, json!({"memberId": owner_id, "role": "member"}))
        .await
        .error(403, "PERMISSION_DENIED");

    // Another organization's member, another organization, an unknown id: all not found.
    let cross = h
        .set_role(&owner, json!({"memberId": b_only, "role": "admin"}))
        .await;
    cross.error(404, "USER_NOT_FOUND");
    let unknown = h
        .set_role(&owner, json!({"memberId": FAKE_ORG, "role": "admin"}))
        .await;
    unknown.error(404, "USER_NOT_FOUND");
    assert_eq!(
        message_without(&cross, &b_only),
        message_without(&unknown, FAKE_ORG)
    );
    let r = h
        .set_role(
            &owner,
            json!({"memberId": b_only, "role": "admin", "organizationId": org_b}),
        )
        .await;
    r.error(404, "ORGANIZATION_NOT_FOUND");
    assert_eq!(
        message_without(&r, &org_b),
        message_without(
            &h.set_role(
                &owner,
                json!({"memberId": b_only, "role": "admin", "organizationId": FAKE_ORG}),
            )
            .await,
            FAKE_ORG
        )
    );

    // The last owner stays an owner.
    h.set_role(&owner, json!({"memberId": owner_id, "role": "admin"}))
        .await
        .error(400, "BAD_REQUEST");
    // With a second owner the first may step down; then the second is the last one.
    h.set_role(&owner, json!({"memberId": adm_id, "role": "owner"}))
        .await
        .ok();
    h.set_role(&owner, json!({"memberId": owner_id, "role": "admin"}))
        .await
        .ok();
    assert_eq!(
        h.session(&owner).await["session"]["activeOrganizationRole"],
        "admin"
    );
    h.set_role(&adm, json!({"memberId": adm_id, "role": "member"}))
        .await
        .error(400, "BAD_REQUEST");
    let roles = h.member_roles(&adm, &org).await;
    assert!(roles.contains(&(adm_id.clone(), "owner".to_owned())));
    assert!(roles.contains(&(owner_id.clone(), "admin".to_owned())));
    // An owner may hand the organization back.
    h.set_role(&adm, json!({"memberId": owner_id, "role": "owner"}))
        .await
        .ok();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_answered_once_by_their_addressee() {
    for db in databases("auth_invites").await {
        eprintln!("invitations on {}", db.label);
        invitations(H::with(test_config(), db.url.clone()).await).await;
        db.cleanup().await;
    }
}

async fn invitations(h: H) {
    let owner = h.owner().await;
    for email in [
        "boss@example.com",
        "new@example.com",
        "other@example.com",
        "third@example.com",
        "Kim@Example.com",
    ] {
        h.create_user(&owner, email, None).await.ok();
    }
    let boss = token(&h.sign_in("boss@example.com", PASSWORD).await);
    let new = token(&h.sign_in("new@example.com", PASSWORD).await);
    let other = token(&h.sign_in("other@example.com", PASSWORD).await);
    let third = token(&h.sign_in("third@example.com", PASSWORD).await);
    let new_id = h.user_id(&new).await;
    // The boss's own organization, which the others are invited to.
    let org_b = h.new_org(&boss, json!({"name": "Beta"})).await;
    let boss_id = h.user_id(&boss).await;

    // Bad input.
    h.invite(&boss, json!({"email": "not-an-email", "role": "member"}))
        .await
        .error(400, "INVALID_BODY");
    h.invite(&boss, json!({"email": "new@example.com", "role": "king"}))
        .await
        .error(400, "INVALID_BODY");
    // Not the caller's organization: the same answer as a made-up one.
    let r = h
        .invite(
            &new,
            json!({"email": "x@example.com", "role": "member", "organizationId": org_b}),
        )
        .await;
    r.error(404, "ORGANIZATION_NOT_FOUND");

    // The invitation: better-auth's shape, an unguessable id, a mail with the link.
    let r = h
        .invite(
            &boss,
            json!({"email": " NEW@example.com ", "role": "member"}),
        )
        .await;
    let inv = r.ok().clone();
    let id = inv["id"].as_str().unwrap().to_owned();
    assert!(id.len() >= 40, "{id}");
    assert_eq!(inv["email"], "new@example.com");
    assert_eq!(inv["status"], "pending");
    assert_eq!(inv["role"], "member");
    assert_eq!(inv["organizationId"], org_b.as_str());
    assert_eq!(inv["inviterId"], boss_id.as_str());
    assert!(
        inv["expiresAt"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-25T12:00")
    );
    let mail = h.mailer.last_mail().unwrap();
    assert_eq!(mail.to, "new@example.com");
    let first_token = h.mailed_token();
    assert_eq!(
        mail.link.as_deref(),
        Some(format!("/accept-invitation?invitationId={id}&token={first_token}").as_str())
    );
    assert!(first_token.len() >= 40, "{first_token}");
    assert!(!format!("{mail:?}").contains(&id));
    assert!(!format!("{mail:?}").contains(&first_token));
    // The token is only in the mail: not in the answer, not in the event.
    assert!(!inv.to_string().contains(&first_token));
    let ev = h.event("auth.member_invited").await;
    assert_eq!(ev.payload["inviteeEmail"], "new@example.com");
    assert!(!serde_json::to_string(&ev.payload).unwrap().contains(&id));
    assert!(
        !serde_json::to_string(&ev.payload)
            .unwrap()
            .contains(&first_token)
    );
    // Once per address, unless re-sent (the same invitation, a fresh expiry).
    h.invite(&boss, json!({"email": "new@example.com", "role": "member"}))
        .await
        .error(400, "BAD_REQUEST");
    h.advance_minutes(20);
    let again = h
        .invite(
            &boss,
            json!({"email": "new@example.com", "role": "member", "resend": true}),
        )
        .await;
    assert_eq!(again.ok()["id"], id.as_str());
    assert!(
        again.body["expiresAt"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-25T12:20")
    );
    // A re-sent mail carries a new token, which replaces the first.
    let new_token = h.mailed_token();
    assert_ne!(new_token, first_token);

    // Listing: the organization's administrators; the invitee sees its own.
    let list = h
        .get("/api/v1/auth/organization/list-invitations", Some(&boss))
        .await;
    assert_eq!(list.ok().as_array().unwrap().len(), 1);
    h.get(
        &format!("/api/v1/auth/organization/list-invitations?organizationId={org_b}"),
        Some(&new),
    )
    .await
    .error(404, "ORGANIZATION_NOT_FOUND");
    // ... once the address is verified: an account for an address is no proof of owning it.
    h.get(
        "/api/v1/auth/organization/list-user-invitations",
        Some(&new),
    )
    .await
    .error(403, "EMAIL_NOT_VERIFIED");
    h.verify_email(&other, "other@example.com").await;
    let none = h
        .get(
            "/api/v1/auth/organization/list-user-invitations",
            Some(&other),
        )
        .await;
    assert_eq!(none.ok(), &json!([]));

    // Someone else cannot accept, reject or cancel it: not found, like a made-up id.
    let theirs = h.answer(&other, "accept", &id).await;
    theirs.error(404, "INVITATION_NOT_FOUND");
    let made_up = h.answer(&other, "accept", FAKE_ORG).await;
    made_up.error(404, "INVITATION_NOT_FOUND");
    assert_eq!(
        message_without(&theirs, &id),
        message_without(&made_up, FAKE_ORG)
    );
    h.answer(&other, "reject", &id)
        .await
        .error(404, "INVITATION_NOT_FOUND");
    h.answer(&owner, "cancel", &id)
        .await
        .error(404, "INVITATION_NOT_FOUND");

    // The addressee, whose address is not verified, needs the mailed token: none, a made-up
    // one or the one the re-sent mail replaced are refused, and nothing changes.
    for mailed in [None, Some("made-up"), Some(first_token.as_str())] {
        for verb in ["accept", "reject"] {
            h.answer_with(&new, verb, &id, mailed)
                .await
                .error(403, "EMAIL_NOT_VERIFIED");
        }
    }
    // The addressee accepts: a member of B, B active, once.
    let r = h.answer_with(&new, "accept", &id, Some(&new_token)).await;
    assert_eq!(r.ok()["invitation"]["status"], "accepted");
    assert_eq!(r.body["member"]["role"], "member");
    assert_eq!(r.body["member"]["userId"], new_id.as_str());
    assert_eq!(
        h.session(&new).await["session"]["activeOrganizationId"],
        org_b.as_str()
    );
    assert!(
        h.member_roles(&boss, &org_b)
            .await
            .contains(&(new_id.clone(), "member".to_owned()))
    );
    h.event("auth.invitation_accepted").await;
    h.answer_with(&new, "accept", &id, Some(&new_token))
        .await
        .error(400, "INVITATION_NOT_PENDING");
    h.answer_with(&new, "reject", &id, Some(&new_token))
        .await
        .error(400, "INVITATION_NOT_PENDING");
    // A member is not invited again, and a member cannot invite.
    h.invite(&boss, json!({"email": "new@example.com", "role": "admin"}))
        .await
        .error(400, "BAD_REQUEST");
    h.invite(&new, json!({"email": "x@example.com", "role": "member"}))
        .await
        .error(403, "PERMISSION_DENIED");
    // An admin invites, but not owners.
    h.set_role(&boss, json!({"memberId": new_id, "role": "admin"}))
        .await
        .ok();
    h.invite(&new, json!({"email": "x@example.com", "role": "owner"}))
        .await
        .error(403, "PERMISSION_DENIED");

    // Rejected: no membership, and final.
    h.advance_minutes(1);
    let id2 = h
        .invite(
            &new,
            json!({"email": "other@example.com", "role": "member"}),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A verified address needs no token, and sees its invitations.
    let mine = h
        .get(
            "/api/v1/auth/organization/list-user-invitations",
            Some(&other),
        )
        .await;
    assert_eq!(mine.ok()[0]["id"], id2.as_str());
    assert_eq!(mine.body[0]["organizationName"], "Beta");
    let r = h.answer(&other, "reject", &id2).await;
    assert_eq!(r.ok()["invitation"]["status"], "rejected");
    assert_eq!(r.body["member"], Value::Null);
    h.event("auth.invitation_rejected").await;
    h.answer(&other, "accept", &id2)
        .await
        .error(400, "INVITATION_NOT_PENDING");
    let other_id = h.user_id(&other).await;
    assert!(
        !h.member_roles(&boss, &org_b)
            .await
            .iter()
            .any(|(u, _)| *u == other_id)
    );

    // Canceled by an administrator: no longer answerable.
    h.advance_minutes(1);
    let id3 = h
        .invite(
            &boss,
            json!({"email": "third@example.com", "role": "admin"}),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let third_token = h.mailed_token();
    h.answer(&third, "cancel", &id3)
        .await
        .error(404, "INVITATION_NOT_FOUND");
    let r = h.answer(&boss, "cancel", &id3).await;
    assert_eq!(r.ok()["status"], "canceled");
    h.event("auth.invitation_canceled").await;
    h.answer(&boss, "cancel", &id3)
        .await
        .error(400, "INVITATION_NOT_PENDING");
    h.answer_with(&third, "accept", &id3, Some(&third_token))
        .await
        .error(400, "INVITATION_NOT_PENDING");
    let statuses: Vec<String> = h
        .get("/api/v1/auth/organization/list-invitations", Some(&boss))
        .await
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["canceled", "rejected", "accepted"]);

    // Addresses are compared folded: the Kelvin sign is a k.
    let id4 = h
        .invite(
            &boss,
            json!({"email": "\u{212A}IM@example.com", "role": "member"}),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let kim_token = h.mailed_token();
    let kim = token(&h.sign_in("kim@EXAMPLE.com", PASSWORD).await);
    h.answer_with(&kim, "accept", &id4, Some(&kim_token))
        .await
        .ok();

    // Invitations expire.
    let id5 = h
        .invite(
            &boss,
            json!({"email": "third@example.com", "role": "member"}),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let third_token = h.mailed_token();
    h.advance_minutes(48 * 60 + 1);
    let third = token(&h.sign_in("third@example.com", PASSWORD).await);
    let r = h
        .answer_with(&third, "accept", &id5, Some(&third_token))
        .await;
    r.error(400, "INVITATION_NOT_PENDING");
    assert!(r.body["message"].as_str().unwrap().contains("expired"));
    let boss = token(&h.sign_in("boss@example.com", PASSWORD).await);
    // An expired invitation does not block a new one (a new session starts in the first
    // organization, so B is named).
    h.invite(
        &boss,
        json!({"email": "third@example.com", "role": "member", "organizationId": org_b}),
    )
    .await
    .ok();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_creation_is_limited_by_configuration() {
    for db in databases("auth_orglimit").await {
        eprintln!("organization limit on {}", db.label);
        let mut cfg = test_config();
        cfg.organization.limit_per_user = 2;
        let h = H::with(cfg, db.url.clone()).await;
        let owner = h.owner().await;
        h.create_user(&owner, "rep@example.com", None).await.ok();
        let rep = token(&h.sign_in("rep@example.com", PASSWORD).await);
        let create = |t: String, name: &'static str| {
            let h = &h;
            async move {
                h.post(
                    "/api/v1/auth/organization/create",
                    Some(&t),
                    &json!({"name": name}),
                )
                .await
            }
        };
        // The owner owns the first organization already: one more, then the limit.
        create(owner.clone(), "Second").await.ok();
        let r = create(owner.clone(), "Third").await;
        r.error(403, "YOU_HAVE_REACHED_THE_MAXIMUM_NUMBER_OF_ORGANIZATIONS");
        assert!(r.body["message"].as_str().unwrap().contains('2'));
        assert_eq!(
            h.get("/api/v1/auth/organization/list", Some(&owner))
                .await
                .ok()
                .as_array()
                .unwrap()
                .len(),
            2
        );
        // Membership is not ownership: the rep may still create two.
        create(rep.clone(), "Rep 1").await.ok();
        create(rep.clone(), "Rep 2").await.ok();
        create(rep.clone(), "Rep 3")
            .await
            .error(403, "YOU_HAVE_REACHED_THE_MAXIMUM_NUMBER_OF_ORGANIZATIONS");
        h.stop().await;

        let mut cfg = test_config();
        cfg.organization.allow_user_to_create = false;
        let h = H::with(cfg, db.url.clone()).await;
        let owner = match h.sign_up("bench@example.com", PASSWORD).await {
            r if r.status.is_success() => token(&r),
            _ => token(&h.sign_in("bench@example.com", PASSWORD).await),
        };
        h.post(
            "/api/v1/auth/organization/create",
            Some(&owner),
            &json!({"name": "Nope"}),
        )
        .await
        .error(403, "YOU_ARE_NOT_ALLOWED_TO_CREATE_A_NEW_ORGANIZATION");
        h.stop().await;
        db.cleanup().await;
    }
}

#[test]
fn organization_settings_are_checked() {
    // Unknown keys stay errors, inside the new sections too.
    let bad: Result<objectos_auth::AuthConfig, _> = serde_json::from_value(json!({
        "organization": {"limitPerUser": 3, "limitPerUsr": 4}
    }));
    assert!(bad.unwrap_err().to_string().contains("limitPerUsr"));
    let bad: Result<objectos_auth::AuthConfig, _> = serde_json::from_value(json!({
        "emailVerification": {"require": true}
    }));
    assert!(bad.unwrap_err().to_string().contains("require"));
    let cfg: objectos_auth::AuthConfig = serde_json::from_value(json!({
        "organization": {"allowUserToCreate": false, "limitPerUser": 3, "invitationExpiresHours": 72},
        "emailVerification": {"required": true},
        "secretKeyEnv": "MY_KEY"
    }))
    .unwrap();
    assert!(!cfg.organization.allow_user_to_create);
    assert_eq!(cfg.organization.invitation_expires_hours, 72);
    assert!(cfg.email_verification.required);
    assert_eq!(cfg.secret_key_env, "MY_KEY");
    cfg.validate().unwrap();
    let defaults = objectos_auth::AuthConfig::default();
    assert!(defaults.organization.allow_user_to_create);
    assert_eq!(defaults.organization.limit_per_user, 10);
    assert_eq!(defaults.organization.invitation_expires_hours, 48);
    assert!(!defaults.email_verification.required);
    assert_eq!(defaults.secret_key_env, "OBJECTOS_SECRET_KEY");

    let mut bad = objectos_auth::AuthConfig::default();
    bad.organization.limit_per_user = 0;
    bad.organization.invitation_expires_hours = 0;
    bad.email_verification.token_minutes = 0;
    bad.secret_key_env = "NOT A NAME".into();
    let msg = bad.validate().unwrap_err().to_string();
    for key in [
        "organization.limitPerUser",
        "organization.invitationExpiresHours",
        "emailVerification.tokenMinutes",
        "secretKeyEnv",
    ] {
        assert!(msg.contains(key), "{key} missing from {msg}");
    }
}
