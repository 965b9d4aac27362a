//! Organization invitations, shaped like better-auth's organization plugin: owners and admins
//! invite an address (`invite-member`), list and cancel invitations; the signed-in user whose
//! address it is accepts (joining the organization) or rejects it.
//!
//! An invitation's id is 256 random bits and goes out in the invitation mail and to the
//! organization's administrators; answering it also needs the invitee's own session, so the id
//! alone grants nothing. A session for the address is not proof that the caller owns the
//! address, though: an account can exist for an address its holder never controlled (public
//! sign-up, or an account made by an earlier version's organization admins). So answering also
//! needs a verified address or the invitation's `token`, a second 256-bit secret that only the
//! mail carries (stored as its SHA-256, replaced on every re-send). Invitations expire
//! (`organization.invitationExpiresHours`) and are used once. Everything an outsider could name
//! answers `404 INVITATION_NOT_FOUND` alike: an unknown id, another organization's invitation,
//! an invitation to someone else.

use objectos_spec::event::auth::AuthDetails;
use serde_json::{Value as Json, json};

use crate::crypto;
use crate::error::{AuthError, Result};
use crate::mailer::Mail;
use crate::orgs::{MAX_PAGE, check_manages, iso, new_member_role};
use crate::service::{AuthService, RequestMeta, Resolved, events, fold_email, normalize_email};
use crate::store::{get_i, get_os, get_s, i, s};
use objectos_data::store::Row;

/// The columns every invitation query reads, in [`Invitation::from_row`]'s order.
const COLUMNS: &str = r#""id", "org_id", "email", "role", "status", "inviter_id", "created_at", "expires_at", "token_hash""#;

/// One stored invitation.
#[derive(Debug, Clone)]
struct Invitation {
    id: String,
    org: String,
    email: String,
    role: String,
    status: String,
    inviter: String,
    created_at: i64,
    expires_at: i64,
    /// SHA-256 of the mailed token; `None` for invitations sent before tokens existed.
    token_hash: Option<String>,
}

impl Invitation {
    fn from_row(r: &Row) -> Result<Self> {
        Ok(Self {
            id: get_s(r, 0)?,
            org: get_s(r, 1)?,
            email: get_s(r, 2)?,
            role: get_s(r, 3)?,
            status: get_s(r, 4)?,
            inviter: get_s(r, 5)?,
            created_at: get_i(r, 6)?,
            expires_at: get_i(r, 7)?,
            token_hash: get_os(r, 8),
        })
    }

    /// better-auth's invitation shape.
    fn json(&self) -> Json {
        json!({
            "id": self.id,
            "organizationId": self.org,
            "email": self.email,
            "role": self.role,
            "status": self.status,
            "inviterId": self.inviter,
            "expiresAt": iso(self.expires_at),
            "createdAt": iso(self.created_at),
        })
    }

    /// Why the invitation cannot be answered any more, if it cannot.
    fn closed(&self, now: i64) -> Option<AuthError> {
        if self.status != "pending" {
            Some(AuthError::InvitationNotPending(self.status.clone()))
        } else if self.expires_at <= now {
            Some(AuthError::InvitationNotPending("expired".into()))
        } else {
            None
        }
    }
}

impl AuthService {
    async fn invitation(&self, id: &str) -> Result<Option<Invitation>> {
        let id = id.trim();
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        let sql = format!(r#"SELECT {COLUMNS} FROM "_objectos_auth_invitation" WHERE "id" = ?"#);
        match self.db().one(&sql, vec![s(id)]).await? {
            Some(r) => Ok(Some(Invitation::from_row(&r)?)),
            None => Ok(None),
        }
    }

    /// Moves a pending invitation to `status` (one conditional statement, so of two concurrent
    /// answers one wins); false when it was no longer pending.
    async fn close_pending(&self, id: &str, status: &str, now: i64) -> Result<bool> {
        let n = self
            .db()
            .exec_uncached(
                r#"UPDATE "_objectos_auth_invitation" SET "status" = ?, "updated_at" = ? WHERE "id" = ? AND "status" = 'pending'"#,
                vec![s(status), i(now), s(id)],
            )
            .await?;
        Ok(n == 1)
    }

    /// `POST /organization/invite-member` `{email, role?, organizationId?, resend?}`: owners
    /// and admins invite an address (`owner` only by owners); the link goes out by mail. An open
    /// invitation to the same address is refused unless `resend`, which sends it again with a
    /// fresh expiry.
    pub async fn invite_member(
        &self,
        who: &Resolved,
        email: &str,
        role: Option<&str>,
        org: Option<&str>,
        resend: bool,
        meta: &RequestMeta,
    ) -> Result<Json> {
        let (org, my_role) = self.acting_org(who, org).await?;
        check_manages(who, &my_role, "invite members")?;
        let role = new_member_role(role, &my_role, "invite")?;
        let email = normalize_email(email)?;
        if let Some(c) = self.credential_by("email", &email).await?
            && self.member_role(&org, &c.user_id).await?.is_some()
        {
            return Err(AuthError::BadRequest(format!(
                "`{email}` is already a member of this organization."
            )));
        }
        let now = self.now_millis();
        let expires =
            now + i64::from(self.config().organization.invitation_expires_hours) * 3_600_000;
        let already_open = || {
            AuthError::BadRequest(format!(
                "`{email}` already has an open invitation to this organization; send `resend: true` to send it again."
            ))
        };
        // At most one: a partial unique index keeps one pending invitation per address.
        let pending = self
            .db()
            .one(
                r#"SELECT "id", "expires_at" FROM "_objectos_auth_invitation" WHERE "org_id" = ? AND "email" = ? AND "status" = 'pending'"#,
                vec![s(&org), s(&email)],
            )
            .await?
            .map(|r| Ok::<_, AuthError>((get_s(&r, 0)?, get_i(&r, 1)?)))
            .transpose()?;
        // A fresh token every time: a re-sent mail replaces the earlier one.
        let token = crypto::random_token()?;
        let token_hash = crypto::sha256_hex(&token);
        let (id, resent) = match pending {
            Some((id, expiry)) if expiry > now && resend => {
                self.db()
                    .exec_uncached(
                        r#"UPDATE "_objectos_auth_invitation" SET "role" = ?, "inviter_id" = ?, "expires_at" = ?, "updated_at" = ?, "token_hash" = ? WHERE "id" = ? AND "status" = 'pending'"#,
                        vec![s(role), s(&who.user_id), i(expires), i(now), s(&token_hash), s(&id)],
                    )
                    .await?;
                (id, true)
            }
            Some((_, expiry)) if expiry > now => return Err(already_open()),
            expired => {
                // An expired invitation stays pending (its link answers that it expired) until
                // a new one to the address replaces it.
                if let Some((old, _)) = expired {
                    self.db()
                        .exec_uncached(
                            r#"UPDATE "_objectos_auth_invitation" SET "status" = 'canceled', "updated_at" = ? WHERE "id" = ? AND "status" = 'pending' AND "expires_at" <= ?"#,
                            vec![i(now), s(&old), i(now)],
                        )
                        .await?;
                }
                let id = crypto::random_token()?;
                let added = self
                    .db()
                    .exec_uncached(
                        r#"INSERT INTO "_objectos_auth_invitation" ("id", "org_id", "email", "role", "status", "inviter_id", "created_at", "expires_at", "updated_at", "token_hash") VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"#,
                        vec![s(&id), s(&org), s(&email), s(role), s(&who.user_id), i(now), i(expires), i(now), s(&token_hash)],
                    )
                    .await?;
                // The unique index refused it: a concurrent invitation to the address got in
                // between the read above and this insert.
                if added == 0 {
                    return Err(already_open());
                }
                (id, false)
            }
        };
        let invitation = self
            .invitation(&id)
            .await?
            .ok_or_else(|| AuthError::Internal("a stored invitation vanished".into()))?;
        let orgs = self
            .records_by_id("organization", std::slice::from_ref(&org))
            .await?;
        let org_name = orgs
            .get(&org)
            .and_then(|r| r.get("name"))
            .and_then(Json::as_str)
            .unwrap_or("an organization")
            .to_owned();
        let cfg = &self.config().organization;
        let base = cfg.invitation_url.trim();
        let sep = if base.contains('?') { '&' } else { '?' };
        // The token rides only in the mail (never in an answer, an event or a log), so answering
        // with it proves that the address's mailbox was read.
        let link = format!("{base}{sep}invitationId={id}&token={token}");
        self.mail(Mail {
            organization: Some(org.to_string()),
            to: email.clone(),
            subject: format!("You are invited to join {org_name}"),
            body: format!(
                "{} invited you to join {org_name} as {role}. Open this link within {} hours and sign in with this address to accept or decline: {link}",
                who.email, cfg.invitation_expires_hours
            ),
            link: Some(link),
        })?;
        self.publish_by(
            events::MEMBER_INVITED,
            who,
            Some(&org),
            meta,
            AuthDetails {
                organization_id: Some(org.to_string()),
                invitee_email: Some(email.to_string()),
                role: Some(role.to_string()),
                resent: Some(resent),
                ..AuthDetails::default()
            },
        )
        .await;
        Ok(invitation.json())
    }

    /// `GET /organization/list-invitations?organizationId=`: the organization's invitations,
    /// newest first; owners and admins only.
    pub async fn list_invitations(
        &self,
        who: &Resolved,
        org: Option<&str>,
        limit: u64,
        offset: u64,
    ) -> Result<Json> {
        let (org, my_role) = self.acting_org(who, org).await?;
        check_manages(who, &my_role, "list its invitations")?;
        let sql = format!(
            r#"SELECT {COLUMNS} FROM "_objectos_auth_invitation" WHERE "org_id" = ? ORDER BY "created_at" DESC, "id" LIMIT ? OFFSET ?"#
        );
        let rows = self
            .db()
            .all(
                &sql,
                vec![
                    s(&org),
                    i(i64::try_from(limit.min(MAX_PAGE)).unwrap_or(100)),
                    i(i64::try_from(offset).unwrap_or(i64::MAX)),
                ],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(Invitation::from_row(r)?.json());
        }
        Ok(Json::Array(out))
    }

    /// `GET /organization/list-user-invitations`: the open invitations to the caller's address,
    /// each with the organization's name. Only for a verified address: an account made for
    /// someone else's address must not learn who invites them, nor the ids (the mail's link
    /// works without this list).
    pub async fn list_user_invitations(&self, who: &Resolved) -> Result<Json> {
        if !self.email_verified(&who.user_id).await? {
            return Err(AuthError::InvitationProofRequired);
        }
        let sql = format!(
            r#"SELECT {COLUMNS} FROM "_objectos_auth_invitation" WHERE "email" = ? AND "status" = 'pending' AND "expires_at" > ? ORDER BY "created_at" DESC, "id" LIMIT ?"#
        );
        let rows = self
            .db()
            .all(
                &sql,
                vec![
                    s(fold_email(&who.email)),
                    i(self.now_millis()),
                    i(i64::try_from(MAX_PAGE).unwrap_or(500)),
                ],
            )
            .await?;
        let mut list = Vec::with_capacity(rows.len());
        for r in &rows {
            list.push(Invitation::from_row(r)?);
        }
        let orgs: Vec<String> = list.iter().map(|inv| inv.org.clone()).collect();
        let recs = self.records_by_id("organization", &orgs).await?;
        Ok(Json::Array(
            list.iter()
                .map(|inv| {
                    let mut j = inv.json();
                    j["organizationName"] = recs
                        .get(&inv.org)
                        .and_then(|r| r.get("name"))
                        .cloned()
                        .unwrap_or(Json::Null);
                    j
                })
                .collect(),
        ))
    }

    /// `POST /organization/cancel-invitation` `{invitationId}`: owners and admins of the
    /// invitation's organization withdraw an open invitation (an invitation to become owner only
    /// by owners).
    pub async fn cancel_invitation(
        &self,
        who: &Resolved,
        id: &str,
        meta: &RequestMeta,
    ) -> Result<Json> {
        let not_found = || AuthError::InvitationNotFound(id.trim().to_owned());
        let inv = self.invitation(id).await?.ok_or_else(not_found)?;
        let (org, my_role) = self
            .acting_org(who, Some(&inv.org))
            .await
            .map_err(|e| match e {
                AuthError::OrganizationNotFound(_) => not_found(),
                other => other,
            })?;
        check_manages(who, &my_role, "cancel invitations")?;
        if inv.role == "owner" && my_role != "owner" {
            return Err(AuthError::Forbidden(
                "Only owners may cancel an invitation to become owner.".into(),
            ));
        }
        let now = self.now_millis();
        if !self.close_pending(&inv.id, "canceled", now).await? {
            let current = self.invitation(&inv.id).await?.unwrap_or(inv);
            return Err(AuthError::InvitationNotPending(current.status));
        }
        self.publish_by(
            events::INVITATION_CANCELED,
            who,
            Some(&org),
            meta,
            AuthDetails {
                organization_id: Some(org.to_string()),
                invitee_email: Some(inv.email.clone()),
                role: Some(inv.role.clone()),
                ..AuthDetails::default()
            },
        )
        .await;
        Ok(Invitation {
            status: "canceled".into(),
            ..inv
        }
        .json())
    }

    /// Whether the caller has shown that the invited address is theirs: the invitation mail's
    /// token, or a verified address (only the latter with
    /// `organization.requireEmailVerificationOnInvitation`).
    async fn proves_address(
        &self,
        who: &Resolved,
        inv: &Invitation,
        token: Option<&str>,
    ) -> Result<bool> {
        let by_token = match (
            token.map(str::trim).filter(|t| !t.is_empty()),
            &inv.token_hash,
        ) {
            (Some(token), Some(stored)) if token.len() <= 128 => {
                crypto::ct_eq(&crypto::sha256_hex(token), stored)
            }
            _ => false,
        };
        let strict = self
            .config()
            .organization
            .require_email_verification_on_invitation;
        if by_token && !strict {
            return Ok(true);
        }
        self.email_verified(&who.user_id).await
    }

    /// `POST /organization/accept-invitation` and `/reject-invitation` `{invitationId, token?}`:
    /// the signed-in user the invitation is addressed to answers it, once, after showing that
    /// the address is theirs (the mailed `token`, or a verified address). Accepting adds the
    /// membership, closes the invitation and makes the organization the session's active one
    /// in one transaction.
    pub async fn answer_invitation(
        &self,
        who: &Resolved,
        id: &str,
        token: Option<&str>,
        accept: bool,
        meta: &RequestMeta,
    ) -> Result<Json> {
        let Some(session) = who.session_id.as_deref() else {
            return Err(AuthError::Forbidden(
                "API keys cannot answer invitations; sign in.".into(),
            ));
        };
        let not_found = || AuthError::InvitationNotFound(id.trim().to_owned());
        let inv = self.invitation(id).await?.ok_or_else(not_found)?;
        // Someone else's invitation does not exist for the caller.
        if !crypto::ct_eq(&fold_email(&who.email), &inv.email) {
            return Err(not_found());
        }
        // Rejecting needs the proof too: otherwise whoever holds an account for the address
        // could turn down the invitations meant for the address's real owner.
        if !self.proves_address(who, &inv, token).await? {
            return Err(AuthError::InvitationProofRequired);
        }
        let now = self.now_millis();
        if let Some(closed) = inv.closed(now) {
            return Err(closed);
        }
        if !accept {
            if !self.close_pending(&inv.id, "rejected", now).await? {
                return Err(AuthError::InvitationNotPending("no longer pending".into()));
            }
            self.publish_by(
                events::INVITATION_REJECTED,
                who,
                Some(&inv.org),
                meta,
                AuthDetails {
                    organization_id: Some(inv.org.clone()),
                    role: Some(inv.role.clone()),
                    ..AuthDetails::default()
                },
            )
            .await;
            let out = Invitation {
                status: "rejected".into(),
                ..inv
            };
            return Ok(json!({"invitation": out.json(), "member": null}));
        }
        let mut tx = self.db().begin().await?;
        // The invitation, and the accepting user's membership and session: only their cached
        // sessions go stale.
        tx.concerns_user(&who.user_id);
        // The claim is conditional, so two concurrent accepts cannot both succeed.
        let claimed = tx
            .exec(
                r#"UPDATE "_objectos_auth_invitation" SET "status" = 'accepted', "updated_at" = ? WHERE "id" = ? AND "status" = 'pending' AND "expires_at" > ?"#,
                vec![i(now), s(&inv.id), i(now)],
            )
            .await?;
        if claimed != 1 {
            return Err(AuthError::InvitationNotPending("no longer pending".into()));
        }
        let added = tx
            .exec(
                r#"INSERT INTO "_objectos_auth_member" ("org_id", "user_id", "role", "created_at") VALUES (?, ?, ?, ?) ON CONFLICT ("org_id", "user_id") DO NOTHING"#,
                vec![s(&inv.org), s(&who.user_id), s(&inv.role), i(now)],
            )
            .await?;
        if added != 1 {
            // Dropping the transaction rolls the claim back: the invitation stays open.
            return Err(AuthError::BadRequest(
                "You are already a member of this organization; reject the invitation instead."
                    .into(),
            ));
        }
        tx.exec(
            r#"UPDATE "_objectos_auth_session" SET "active_org" = ? WHERE "id" = ?"#,
            vec![s(&inv.org), s(session)],
        )
        .await?;
        tx.commit().await?;
        self.publish_by(
            events::INVITATION_ACCEPTED,
            who,
            Some(&inv.org),
            meta,
            AuthDetails {
                organization_id: Some(inv.org.clone()),
                role: Some(inv.role.clone()),
                ..AuthDetails::default()
            },
        )
        .await;
        self.publish_by(
            events::MEMBER_ADDED,
            who,
            Some(&inv.org),
            meta,
            AuthDetails {
                organization_id: Some(inv.org.clone()),
                target_user_id: Some(who.user_id.clone()),
                role: Some(inv.role.clone()),
                via: Some("invitation".to_owned()),
                ..AuthDetails::default()
            },
        )
        .await;
        let member = self
            .member_view(&inv.org, &who.user_id, &inv.role, now)
            .await?;
        let out = Invitation {
            status: "accepted".into(),
            ..inv
        };
        Ok(json!({"invitation": out.json(), "member": member}))
    }
}
