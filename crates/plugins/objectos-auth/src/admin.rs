//! User administration, shaped like better-auth's admin plugin: create, list, ban and unban the
//! users of the caller's active organization.
//!
//! Only the organization's owners and admins may call these routes; an API key additionally
//! needs the `admin` scope (an administrator's key without it carries no administrator rights).
//! Everything happens in the caller's active organization: users of other organizations are
//! answered like unknown ids.
//!
//! Accounts are global (one per address across the deployment) while anyone may make an
//! organization and administer it, so an organization's administrator must not act on what is
//! global: creating an account with a chosen password is for platform administrators only
//! (else anyone could plant an account for an address they do not own and wait for it to be
//! invited), and banning, which locks the account everywhere, needs a platform administrator
//! once the user is also a member elsewhere.

use objectos_data::{OpContext, Principal, Record};
use objectos_spec::event::auth::AuthDetails;
use objectos_spec::query::QueryAst;
use serde_json::{Value as Json, json};

use crate::error::{AuthError, Result};
use crate::orgs::MAX_PAGE;
use crate::service::{AuthService, NewAccount, RequestMeta, Resolved, events, user_json};
use crate::store::{get_i, get_s, i, s};

/// The longest ban reason kept in the event.
const MAX_REASON: usize = 500;

/// The active organization of an administrator, or 403.
fn admin_org(who: &Resolved) -> Result<String> {
    match (&who.tenant, who.is_admin) {
        (Some(org), true) => Ok(org.clone()),
        _ => Err(AuthError::Forbidden(
            "Only owners and admins of the active organization may manage users (an API key also needs the `admin` scope).".into(),
        )),
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl AuthService {
    /// Whether the caller is a platform administrator: an account created as an administrator
    /// (the first account, `objectos user create --admin`, or `role: admin` from a platform
    /// administrator) that is an owner or admin of the deployment's own organization, acting as
    /// an administrator (a session, or an API key with the `admin` scope). Both halves count: an
    /// administrator flag handed out by an organization's admin under an earlier version does
    /// not reach beyond that organization, and an admin of the first organization who was not
    /// created as one stays an organization admin.
    pub(crate) async fn is_platform_admin(&self, who: &Resolved) -> Result<bool> {
        if !who.is_admin {
            return Ok(false);
        }
        let flagged = self
            .credential_by("user_id", &who.user_id)
            .await?
            .is_some_and(|c| c.is_admin);
        Ok(flagged && self.manages_home_org(&who.user_id).await?)
    }

    /// Whether `user_id` is an owner or admin of the deployment's own organization: the half
    /// of [`AuthService::is_platform_admin`] that does not depend on the credential (the
    /// directory's `platform_admin` joins it with the account's flag).
    pub(crate) async fn manages_home_org(&self, user_id: &str) -> Result<bool> {
        let Some(home) = self.default_org().await? else {
            return Ok(false);
        };
        Ok(self
            .member_role(&home, user_id)
            .await?
            .is_some_and(|r| crate::service::manages(&r)))
    }

    /// `POST /admin/create-user`: an account in the caller's active organization, as a member
    /// (`role: user`, the default) or an admin (`role: admin`). The user record belongs to that
    /// organization, so its administrators can assign permission sets to it.
    ///
    /// Platform administrators only: anyone else gets `403 YOU_ARE_NOT_ALLOWED_TO_CREATE_USERS`
    /// before the address is read, so the route neither plants accounts for addresses the
    /// caller does not control nor says which addresses have accounts. Organization admins
    /// invite people instead (`organization/invite-member`).
    pub async fn admin_create_user(
        &self,
        who: &Resolved,
        email: &str,
        password: &str,
        name: Option<&str>,
        role: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Json> {
        let org = admin_org(who)?;
        if !self.is_platform_admin(who).await? {
            return Err(AuthError::CreateUserNotAllowed);
        }
        let admin = match role.map(str::trim).unwrap_or("") {
            "" | "user" | "member" => false,
            "admin" => true,
            other => {
                return Err(AuthError::InvalidBody(format!(
                    "`role` must be `user` or `admin`, not `{other}`"
                )));
            }
        };
        self.check_policy(password)?;
        let (user_id, _) = self
            .create_account_with(NewAccount {
                email,
                password: Some(password),
                name,
                admin,
                org: Some(&org),
                ..NewAccount::default()
            })
            .await?;
        let user = self.user_view(&user_id, Some(&org)).await?;
        self.publish(
            events::USER_CREATED,
            Some(&who.user_id),
            Some(&who.email),
            Some(&org),
            meta,
            AuthDetails {
                target_user_id: Some(user_id.to_string()),
                target_email: user.get("email").and_then(Json::as_str).map(str::to_owned),
                role: Some(if admin { "admin" } else { "member" }.to_owned()),
                ..AuthDetails::default()
            },
        )
        .await;
        Ok(json!({ "user": user }))
    }

    /// `GET /admin/list-users`: the members of the active organization, oldest first;
    /// `search` matches part of the email.
    pub async fn admin_list_users(
        &self,
        who: &Resolved,
        limit: u64,
        offset: u64,
        search: Option<&str>,
    ) -> Result<Json> {
        let org = admin_org(who)?;
        let limit = limit.min(MAX_PAGE);
        let pattern = format!(
            "%{}%",
            like_escape(&search.unwrap_or("").trim().to_lowercase())
        );
        let rows = self
            .db()
            .all(
                r#"SELECT m."user_id", m."role", c."is_admin" FROM "_objectos_auth_member" m JOIN "_objectos_auth_credential" c ON c."user_id" = m."user_id" WHERE m."org_id" = ? AND c."email" LIKE ? ESCAPE '\' ORDER BY m."created_at", m."user_id" LIMIT ? OFFSET ?"#,
                vec![
                    s(&org),
                    s(&pattern),
                    i(i64::try_from(limit).unwrap_or(100)),
                    i(i64::try_from(offset).unwrap_or(i64::MAX)),
                ],
            )
            .await?;
        let total = self
            .db()
            .one(
                r#"SELECT COUNT(*) FROM "_objectos_auth_member" m JOIN "_objectos_auth_credential" c ON c."user_id" = m."user_id" WHERE m."org_id" = ? AND c."email" LIKE ? ESCAPE '\'"#,
                vec![s(&org), s(&pattern)],
            )
            .await?
            .map(|r| get_i(&r, 0))
            .transpose()?
            .unwrap_or(0);
        let mut members = Vec::with_capacity(rows.len());
        for r in &rows {
            members.push((get_s(r, 0)?, get_s(r, 1)?, get_i(r, 2)? != 0));
        }
        let ids: Vec<String> = members.iter().map(|m| m.0.clone()).collect();
        let users = self.records_by_id("user", &ids).await?;
        let two_factor = self.totp_enabled_among(&ids).await?;
        let empty = Record::new();
        let list: Vec<Json> = members
            .iter()
            .map(|(id, role, platform)| {
                user_json(
                    id,
                    users.get(id).unwrap_or(&empty),
                    Some(role),
                    *platform,
                    two_factor.contains(id),
                )
            })
            .collect();
        Ok(json!({"users": list, "total": total, "limit": limit, "offset": offset}))
    }

    /// Which of `ids` have two-factor authentication on.
    async fn totp_enabled_among(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashSet<String>> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let marks = vec!["?"; ids.len()].join(", ");
        let sql = format!(
            r#"SELECT "user_id" FROM "_objectos_auth_totp" WHERE "enabled" = 1 AND "user_id" IN ({marks})"#
        );
        let rows = self.db().all(&sql, ids.iter().map(s).collect()).await?;
        rows.iter().map(|r| get_s(r, 0)).collect()
    }

    /// `POST /admin/ban-user` and `/admin/unban-user`: sets the user record's status to
    /// `locked` (or `deactivated` for an invited user) and back to `active`. Leaving `active`
    /// revokes the user's sessions and API keys (the `user` interceptor of this plugin). Only
    /// users whose record belongs to the active organization; owners only by owners.
    pub async fn admin_set_banned(
        &self,
        who: &Resolved,
        user_id: &str,
        banned: bool,
        reason: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Json> {
        let org = admin_org(who)?;
        let user_id = user_id.trim();
        let role = match user_id.len() {
            1..=64 => self.member_role(&org, user_id).await?,
            _ => None,
        }
        .ok_or_else(|| AuthError::UserNotFound(user_id.to_owned()))?;
        if user_id == who.user_id {
            return Err(AuthError::BadRequest(
                "You cannot ban or unban yourself.".into(),
            ));
        }
        if role == "owner" && who.org_role.as_deref() != Some("owner") {
            return Err(AuthError::Forbidden(
                "Only owners may ban or unban an owner.".into(),
            ));
        }
        // A ban locks the account in every organization, so an organization's admin may only
        // ban someone who is a member of nothing else; otherwise one organization could lock a
        // person out of all the others.
        let elsewhere = self
            .db()
            .one(
                r#"SELECT 1 FROM "_objectos_auth_member" WHERE "user_id" = ? AND "org_id" <> ? LIMIT 1"#,
                vec![s(user_id), s(&org)],
            )
            .await?
            .is_some();
        if elsewhere && !self.is_platform_admin(who).await? {
            return Err(AuthError::Forbidden(format!(
                "The account of `{user_id}` is also used in other organizations; remove the member from yours instead, or ask a platform administrator."
            )));
        }
        // The administrator acts in person, so the data audit trail names them.
        let mut cx = OpContext::system("auth: ban user").with_tenant(org.clone());
        cx.principal = Principal::User {
            id: who.user_id.clone(),
            roles: Vec::new(),
            permission_sets: Vec::new(),
            is_admin: true,
        };
        cx.request_id = meta.request_id.clone();
        // The request starts the correlation its `data.user.updated` event carries.
        cx.correlation_id = meta.request_id.clone();
        let record = match self
            .engine()
            .get(&cx, "user", user_id, QueryAst::default())
            .await
        {
            Ok(r) => r,
            Err(e) if e.code() == "RECORD_NOT_FOUND" => {
                return Err(AuthError::Forbidden(format!(
                    "The account of `{user_id}` belongs to another organization; remove the member from yours instead."
                )));
            }
            Err(e) => return Err(AuthError::Data(e)),
        };
        let status = record
            .get("status")
            .and_then(Json::as_str)
            .unwrap_or("active");
        let next = match (banned, status) {
            (true, "active") => Some("locked"),
            (true, "invited") => Some("deactivated"),
            (false, "locked" | "deactivated") => Some("active"),
            _ => None,
        };
        if let Some(next) = next {
            let mut patch = Record::new();
            patch.insert("status".into(), json!(next));
            self.engine()
                .update(&cx, "user", user_id, patch, None)
                .await
                .map_err(AuthError::Data)?;
        }
        let reason: Option<String> = reason.map(|r| r.chars().take(MAX_REASON).collect());
        self.publish(
            if banned {
                events::USER_BANNED
            } else {
                events::USER_UNBANNED
            },
            Some(&who.user_id),
            Some(&who.email),
            Some(&org),
            meta,
            AuthDetails {
                target_user_id: Some(user_id.to_string()),
                reason,
                changed: Some(next.is_some()),
                ..AuthDetails::default()
            },
        )
        .await;
        Ok(json!({ "user": self.user_view(user_id, Some(&org)).await? }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_escape(r"a_b%c\d"), r"a\_b\%c\\d");
    }
}
