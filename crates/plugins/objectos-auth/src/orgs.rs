//! Organizations (tenants) and their members, shaped like better-auth's organization plugin:
//! create, list, set the session's active one, add, remove and list members.
//!
//! The session's active organization is the tenant of every data operation (the session hoop
//! reads it on each request), so `set-active` really switches the data a user sees.
//! Organizations the caller does not belong to do not exist for the caller: every route
//! answers `404 ORGANIZATION_NOT_FOUND` for them, worded the same whether they exist or not.

use std::collections::HashMap;

use objectos_data::{OpContext, Record};
use objectos_spec::event::auth::AuthDetails;
use objectos_spec::query::{Filter, FilterValue, Operator, QueryAst};
use serde_json::{Value as Json, json};

use crate::crypto;
use crate::error::{AuthError, Result};
use crate::service::{AuthService, Credential, RequestMeta, Resolved, events, manages, ms};
use crate::store::{Tx, get_i, get_os, get_s, i, s};

/// Roles a member can have.
pub(crate) const ROLES: &[&str] = &["owner", "admin", "member"];

/// Upper bound of a page of members or users.
pub(crate) const MAX_PAGE: u64 = 500;

/// Whether `who` may administer an organization where its role is `role` (an API key only
/// with the `admin` scope).
pub(crate) fn can_manage(who: &Resolved, role: &str) -> bool {
    manages(role) && (who.api_key_id.is_none() || who.scopes.iter().any(|s| s == "admin"))
}

/// `role` when it is one of [`ROLES`], else `400 INVALID_BODY`.
fn check_role(role: &str) -> Result<&str> {
    if ROLES.contains(&role) {
        Ok(role)
    } else {
        Err(AuthError::InvalidBody(format!(
            "`role` must be owner, admin or member, not `{role}`"
        )))
    }
}

/// The role a new member gets (`member` when none is given); only owners `verb` (add, invite)
/// another owner.
pub(crate) fn new_member_role<'a>(
    role: Option<&'a str>,
    my_role: &str,
    verb: &str,
) -> Result<&'a str> {
    let role = check_role(
        role.map(str::trim)
            .filter(|r| !r.is_empty())
            .unwrap_or("member"),
    )?;
    if role == "owner" && my_role != "owner" {
        return Err(AuthError::Forbidden(format!(
            "Only owners may {verb} another owner."
        )));
    }
    Ok(role)
}

/// [`can_manage`], or `403 PERMISSION_DENIED` saying who may `action`.
pub(crate) fn check_manages(who: &Resolved, role: &str, action: &str) -> Result<()> {
    if can_manage(who, role) {
        Ok(())
    } else {
        Err(AuthError::Forbidden(format!(
            "Only the organization's owners and admins may {action}."
        )))
    }
}

pub(crate) fn iso(millis: i64) -> Json {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(millis)
        .map(|t| Json::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Json::Null)
}

/// The memberships a role change or a removal decides on, as they are inside its transaction.
struct Decided {
    /// How many owners the organization has.
    owners: usize,
    /// The caller's role, `None` once no longer a member.
    caller: Option<String>,
    /// The target's role and when it joined, `None` when not a member.
    target: Option<(String, i64)>,
}

/// Reads, in `tx`, every owner's membership of `org` and the caller's and the target's, and
/// keeps them from changing until `tx` ends (row locks on PostgreSQL, in user-id order so two
/// such transactions cannot deadlock; SQLite's transaction holds the write lock already). Two
/// owners demoting or removing each other at once are thereby decided one after the other, and
/// the second sees the first's outcome: the organization never loses its last owner.
async fn decide_on(tx: &Tx, org: &str, caller: &str, target: &str) -> Result<Decided> {
    let sql = format!(
        r#"SELECT "user_id", "role", "created_at" FROM "_objectos_auth_member" WHERE "org_id" = ? AND ("role" = 'owner' OR "user_id" = ? OR "user_id" = ?) ORDER BY "user_id"{}"#,
        tx.for_update()
    );
    let rows = tx.all(&sql, vec![s(org), s(caller), s(target)]).await?;
    let mut out = Decided {
        owners: 0,
        caller: None,
        target: None,
    };
    for r in &rows {
        let (user, role) = (get_s(r, 0)?, get_s(r, 1)?);
        if user == target {
            out.target = Some((role.clone(), get_i(r, 2)?));
        }
        if user == caller {
            out.caller = Some(role.clone());
        }
        if role == "owner" {
            out.owners += 1;
        }
    }
    Ok(out)
}

/// `ids` as an `id IN (...)` filter.
fn ids_filter(ids: &[String]) -> Filter {
    Filter::condition(
        "id",
        Operator::In,
        FilterValue::Value(Json::Array(ids.iter().map(|i| json!(i)).collect())),
    )
}

/// A URL-safe slug from a name, with a random suffix so two organizations named alike differ.
fn slug_from(name: &str) -> Result<String> {
    let mut base = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            base.push(c);
        } else if !base.ends_with('-') && !base.is_empty() {
            base.push('-');
        }
        if base.len() >= 40 {
            break;
        }
    }
    let base = base.trim_end_matches('-');
    let base = if base.is_empty() { "org" } else { base };
    let suffix = &crypto::sha256_hex(&crypto::random_token()?)[..6];
    Ok(format!("{base}-{suffix}"))
}

/// The slug rule of the base preset's `organization` object.
fn valid_slug(slug: &str) -> bool {
    let b = slug.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

pub(crate) fn org_json(id: &str, rec: Option<&Record>, role: Option<&str>) -> Json {
    let field = |k: &str| rec.and_then(|r| r.get(k)).cloned().unwrap_or(Json::Null);
    json!({
        "id": id,
        "name": field("name"),
        "slug": field("slug"),
        "logo": field("logo"),
        "createdAt": field("created_at"),
        "metadata": null,
        "role": role,
    })
}

pub(crate) fn member_json(
    org: &str,
    user_id: &str,
    role: &str,
    created_at: i64,
    user: Option<&Record>,
) -> Json {
    let field = |k: &str| user.and_then(|r| r.get(k)).cloned().unwrap_or(Json::Null);
    json!({
        // A user is a member of an organization at most once, so the user id names the member.
        "id": user_id,
        "organizationId": org,
        "userId": user_id,
        "role": role,
        "createdAt": iso(created_at),
        "user": {"id": user_id, "name": field("name"), "email": field("email"), "image": field("avatar")},
    })
}

impl AuthService {
    /// Publishes an event the signed-in caller `who` caused in `org`.
    pub(crate) async fn publish_by(
        &self,
        name: &str,
        who: &Resolved,
        org: Option<&str>,
        meta: &RequestMeta,
        extra: AuthDetails,
    ) {
        self.publish(name, Some(&who.user_id), Some(&who.email), org, meta, extra)
            .await;
    }

    /// better-auth's member shape of `user_id` in `org`, with the user's name and email.
    pub(crate) async fn member_view(
        &self,
        org: &str,
        user_id: &str,
        role: &str,
        created_at: i64,
    ) -> Result<Json> {
        let users = self
            .records_by_id("user", std::slice::from_ref(&user_id.to_owned()))
            .await?;
        Ok(member_json(
            org,
            user_id,
            role,
            created_at,
            users.get(user_id),
        ))
    }

    /// `user`'s role in `org`, if a member.
    pub(crate) async fn member_role(&self, org: &str, user: &str) -> Result<Option<String>> {
        match self
            .db()
            .one(
                r#"SELECT "role" FROM "_objectos_auth_member" WHERE "org_id" = ? AND "user_id" = ?"#,
                vec![s(org), s(user)],
            )
            .await?
        {
            Some(r) => Ok(Some(get_s(&r, 0)?)),
            None => Ok(None),
        }
    }

    /// The deployment's own organization, which new members join and whose owners and admins
    /// can be platform administrators: the first one created. Organization ids grow with time,
    /// so it is the smallest id with a member (it always keeps its last owner). Ordering by the
    /// owner memberships' times instead would hand the title to a user-made organization once
    /// the first owner were demoted.
    pub(crate) async fn default_org(&self) -> Result<Option<String>> {
        Ok(self
            .db()
            .one(
                r#"SELECT "org_id" FROM "_objectos_auth_member" ORDER BY "org_id" LIMIT 1"#,
                vec![],
            )
            .await?
            .and_then(|r| get_os(&r, 0)))
    }

    pub(crate) async fn org_of(&self, user_id: &str) -> Result<Option<String>> {
        Ok(self
            .db()
            .one(
                r#"SELECT "org_id" FROM "_objectos_auth_member" WHERE "user_id" = ? ORDER BY "created_at", "org_id" LIMIT 1"#,
                vec![s(user_id)],
            )
            .await?
            .and_then(|r| get_os(&r, 0)))
    }

    /// The user's oldest membership: `(organization, role)`.
    pub(crate) async fn first_membership(&self, user_id: &str) -> Result<Option<(String, String)>> {
        let Some(row) = self
            .db()
            .one(
                r#"SELECT "org_id", "role" FROM "_objectos_auth_member" WHERE "user_id" = ? ORDER BY "created_at", "org_id" LIMIT 1"#,
                vec![s(user_id)],
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(Some((get_s(&row, 0)?, get_s(&row, 1)?)))
    }

    /// The organization a request acts on (`requested`, else the active one) and the caller's
    /// role there; one answer for an unknown organization and one the caller is not in.
    pub(crate) async fn acting_org(
        &self,
        who: &Resolved,
        requested: Option<&str>,
    ) -> Result<(String, String)> {
        let org = match requested.map(str::trim).filter(|o| !o.is_empty()) {
            Some(o) => o.to_owned(),
            None => who
                .tenant
                .clone()
                .ok_or_else(|| AuthError::OrganizationNotFound("(none active)".into()))?,
        };
        // An API key acts only in the organization it was created in.
        if who.api_key_id.is_some() && who.tenant.as_deref() != Some(org.as_str()) {
            return Err(AuthError::OrganizationNotFound(org));
        }
        match self.member_role(&org, &who.user_id).await? {
            Some(role) => Ok((org, role)),
            None => Err(AuthError::OrganizationNotFound(org)),
        }
    }

    /// Records of `object` by id, read as the system (users and organizations are not tenant
    /// rows of the caller).
    pub(crate) async fn records_by_id(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Record>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let found = self
            .engine()
            .find(
                &OpContext::system("auth: read users and organizations"),
                object,
                QueryAst {
                    filter: ids_filter(ids),
                    limit: Some(ids.len() as u64),
                    ..QueryAst::default()
                },
            )
            .await
            .map_err(AuthError::Data)?;
        Ok(found
            .records
            .into_iter()
            .filter_map(|r| {
                let id = r.get("id").and_then(Json::as_str)?.to_owned();
                Some((id, r))
            })
            .collect())
    }

    /// A user by id, or by email when `target` contains `@`.
    pub(crate) async fn find_user(&self, target: &str) -> Result<Option<Credential>> {
        let target = target.trim();
        if target.contains('@') {
            match crate::service::normalize_email(target) {
                Ok(email) => self.credential_by("email", &email).await,
                Err(_) => Ok(None),
            }
        } else if target.is_empty() || target.len() > 64 {
            Ok(None)
        } else {
            self.credential_by("user_id", target).await
        }
    }

    /// `GET /organization/list`: the caller's organizations with the caller's role in each.
    pub async fn organizations(&self, who: &Resolved) -> Result<Json> {
        let rows = self
            .db()
            .all(
                r#"SELECT "org_id", "role" FROM "_objectos_auth_member" WHERE "user_id" = ? ORDER BY "created_at", "org_id""#,
                vec![s(&who.user_id)],
            )
            .await?;
        let mut members = Vec::with_capacity(rows.len());
        for r in &rows {
            members.push((get_s(r, 0)?, get_s(r, 1)?));
        }
        // An API key sees only its own organization.
        if who.api_key_id.is_some() {
            members.retain(|(org, _)| who.tenant.as_deref() == Some(org.as_str()));
        }
        let ids: Vec<String> = members.iter().map(|(o, _)| o.clone()).collect();
        let recs = self.records_by_id("organization", &ids).await?;
        Ok(Json::Array(
            members
                .iter()
                .map(|(org, role)| org_json(org, recs.get(org), Some(role)))
                .collect(),
        ))
    }

    /// `POST /organization/create`: a new organization owned by the caller, which becomes the
    /// session's active organization unless `keep_active`.
    pub async fn create_organization(
        &self,
        who: &Resolved,
        name: &str,
        slug: Option<&str>,
        logo: Option<&str>,
        keep_active: bool,
        meta: &RequestMeta,
    ) -> Result<Json> {
        let Some(session) = who.session_id.as_deref() else {
            return Err(AuthError::Forbidden(
                "API keys cannot create organizations; sign in.".into(),
            ));
        };
        self.check_may_create_organization(who).await?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 255 {
            return Err(AuthError::InvalidBody(
                "`name` must be 1 to 255 characters".into(),
            ));
        }
        let slug = match slug.map(str::trim).filter(|s| !s.is_empty()) {
            Some(given) if valid_slug(given) => given.to_owned(),
            Some(given) => {
                return Err(AuthError::InvalidBody(format!(
                    "`slug` `{given}` may contain only lowercase letters, digits and dashes (1 to 63, not starting with a dash)"
                )));
            }
            None => slug_from(name)?,
        };
        let mut rec = Record::new();
        rec.insert("name".into(), json!(name));
        rec.insert("slug".into(), json!(slug));
        if let Some(logo) = logo.filter(|l| !l.trim().is_empty()) {
            rec.insert("logo".into(), json!(logo));
        }
        // Created by the system without a tenant, like the first organization: an organization's
        // own record is no row of any tenant, so no organization's data routes can reach it.
        let created = self
            .engine()
            .create(
                &OpContext::system("auth: create organization"),
                "organization",
                rec,
            )
            .await
            .map_err(|e| match e.code() {
                "DUPLICATE_VALUE" => AuthError::SlugTaken(slug.clone()),
                _ => AuthError::Data(e),
            })?;
        let org = created
            .get("id")
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or_else(|| AuthError::Internal("created organization has no id".into()))?;
        let now = ms(self.now());
        self.db()
            .exec_for(
                &who.user_id,
                r#"INSERT INTO "_objectos_auth_member" ("org_id", "user_id", "role", "created_at") VALUES (?, ?, 'owner', ?)"#,
                vec![s(&org), s(&who.user_id), i(now)],
            )
            .await?;
        // Checked again now the organization exists, so concurrent creations (in any server
        // process) cannot together pass the limit: whichever went over takes its own back.
        let limit = self.config().organization.limit_per_user;
        if self.owned_organizations(&who.user_id).await? > i64::from(limit) {
            self.db()
                .exec_for(
                    &who.user_id,
                    r#"DELETE FROM "_objectos_auth_member" WHERE "org_id" = ? AND "user_id" = ?"#,
                    vec![s(&org), s(&who.user_id)],
                )
                .await?;
            if let Err(e) = self
                .engine()
                .delete(
                    &OpContext::system("auth: undo organization over the limit"),
                    "organization",
                    &org,
                )
                .await
            {
                tracing::warn!(organization = %org, error = %e, "Could not delete an organization created over the limit; it has no members.");
            }
            return Err(AuthError::OrganizationLimitReached(limit));
        }
        if !keep_active {
            self.db()
                .exec_for(
                    &who.user_id,
                    r#"UPDATE "_objectos_auth_session" SET "active_org" = ? WHERE "id" = ?"#,
                    vec![s(&org), s(session)],
                )
                .await?;
        }
        self.publish_by(
            events::ORGANIZATION_CREATED,
            who,
            Some(&org),
            meta,
            AuthDetails {
                organization_id: Some(org.to_string()),
                slug: Some(slug.to_string()),
                ..AuthDetails::default()
            },
        )
        .await;
        tracing::info!(organization = %org, user_id = %who.user_id, "Organization created.");
        let mut out = org_json(&org, Some(&created), Some("owner"));
        out["members"] = json!([self.member_view(&org, &who.user_id, "owner", now).await?]);
        Ok(out)
    }

    /// How many organizations the user owns.
    async fn owned_organizations(&self, user_id: &str) -> Result<i64> {
        Ok(self
            .db()
            .one(
                r#"SELECT COUNT(*) FROM "_objectos_auth_member" WHERE "user_id" = ? AND "role" = 'owner'"#,
                vec![s(user_id)],
            )
            .await?
            .map(|r| get_i(&r, 0))
            .transpose()?
            .unwrap_or(0))
    }

    /// `organization.allowUserToCreate` and `organization.limitPerUser` (owned organizations).
    async fn check_may_create_organization(&self, who: &Resolved) -> Result<()> {
        let cfg = &self.config().organization;
        if !cfg.allow_user_to_create {
            return Err(AuthError::OrganizationCreationDisabled);
        }
        if self.owned_organizations(&who.user_id).await? >= i64::from(cfg.limit_per_user) {
            return Err(AuthError::OrganizationLimitReached(cfg.limit_per_user));
        }
        Ok(())
    }

    /// `POST /organization/set-active`: makes one of the caller's organizations (by id or
    /// slug) the session's active one, so every later request works on its data.
    pub async fn set_active_organization(
        &self,
        who: &Resolved,
        org_id: Option<&str>,
        slug: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Json> {
        let session = who.session_id.as_deref().ok_or_else(|| {
            AuthError::BadRequest("API keys are bound to one organization.".into())
        })?;
        let org = match (org_id.map(str::trim).filter(|o| !o.is_empty()), slug) {
            (Some(id), _) => id.to_owned(),
            (None, Some(slug)) => {
                let found = self
                    .engine()
                    .find(
                        &OpContext::system("auth: organization by slug"),
                        "organization",
                        QueryAst {
                            filter: Filter::eq("slug", json!(slug.trim())),
                            limit: Some(1),
                            ..QueryAst::default()
                        },
                    )
                    .await
                    .map_err(AuthError::Data)?;
                found
                    .records
                    .first()
                    .and_then(|r| r.get("id"))
                    .and_then(Json::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| AuthError::OrganizationNotFound(slug.trim().to_owned()))?
            }
            (None, None) => {
                return Err(AuthError::InvalidBody(
                    "`organizationId` (or `organizationSlug`) is required and must be a string"
                        .into(),
                ));
            }
        };
        // Named by slug or id, a non-member gets the same answer as for an unknown one.
        let shown = org_id.or(slug).unwrap_or(&org).trim().to_owned();
        let Some(role) = self.member_role(&org, &who.user_id).await? else {
            return Err(AuthError::OrganizationNotFound(shown));
        };
        self.db()
            .exec_for(
                &who.user_id,
                r#"UPDATE "_objectos_auth_session" SET "active_org" = ? WHERE "id" = ?"#,
                vec![s(&org), s(session)],
            )
            .await?;
        if who.tenant.as_deref() != Some(org.as_str()) {
            self.publish_by(
                events::ORGANIZATION_SWITCHED,
                who,
                Some(&org),
                meta,
                AuthDetails {
                    organization_id: Some(org.to_string()),
                    previous_organization_id: who.tenant.clone(),
                    ..AuthDetails::default()
                },
            )
            .await;
        }
        let recs = self
            .records_by_id("organization", std::slice::from_ref(&org))
            .await?;
        Ok(json!({
            "success": true,
            "activeOrganizationId": org,
            "organization": org_json(&org, recs.get(&org), Some(&role)),
        }))
    }

    /// `POST /organization/add-member`: the organization's owners and admins add a user who is
    /// already a member of an organization they administer (new people get an account through
    /// `admin/create-user`). Anyone else is answered like an unknown user, so the route cannot
    /// probe which emails have accounts.
    pub async fn add_member(
        &self,
        who: &Resolved,
        target: &str,
        role: Option<&str>,
        org: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Json> {
        let (org, my_role) = self.acting_org(who, org).await?;
        check_manages(who, &my_role, "add members")?;
        let role = new_member_role(role, &my_role, "add")?;
        let not_found = || AuthError::UserNotFound(target.trim().to_owned());
        let cred = self.find_user(target).await?.ok_or_else(not_found)?;
        // Within reach: a member of an organization the caller administers (a key: its own).
        let reachable = self
            .db()
            .one(
                r#"SELECT t."org_id" FROM "_objectos_auth_member" t JOIN "_objectos_auth_member" c ON c."org_id" = t."org_id" WHERE t."user_id" = ? AND c."user_id" = ? AND c."role" IN ('owner', 'admin') AND (? = 0 OR c."org_id" = ?) LIMIT 1"#,
                vec![
                    s(&cred.user_id),
                    s(&who.user_id),
                    i(i64::from(who.api_key_id.is_some())),
                    s(who.tenant.clone().unwrap_or_default()),
                ],
            )
            .await?
            .is_some();
        if !reachable {
            return Err(not_found());
        }
        let now = ms(self.now());
        let added = self
            .db()
            .exec_for(
                &cred.user_id,
                r#"INSERT INTO "_objectos_auth_member" ("org_id", "user_id", "role", "created_at") VALUES (?, ?, ?, ?) ON CONFLICT ("org_id", "user_id") DO NOTHING"#,
                vec![s(&org), s(&cred.user_id), s(role), i(now)],
            )
            .await?;
        if added == 0 {
            return Err(AuthError::BadRequest(format!(
                "User `{}` is already a member of this organization.",
                target.trim()
            )));
        }
        self.publish_by(
            events::MEMBER_ADDED,
            who,
            Some(&org),
            meta,
            AuthDetails {
                organization_id: Some(org.to_string()),
                target_user_id: Some(cred.user_id.clone()),
                role: Some(role.to_string()),
                ..AuthDetails::default()
            },
        )
        .await;
        self.member_view(&org, &cred.user_id, role, now).await
    }

    /// `POST /organization/update-member-role` `{memberId | userId, role, organizationId?}`:
    /// owners and admins change a member's role. Only owners make someone an owner or change an
    /// owner's role, and the last owner stays an owner. A member of another organization, like an
    /// unknown id, is `404 USER_NOT_FOUND`.
    pub async fn update_member_role(
        &self,
        who: &Resolved,
        target: &str,
        role: &str,
        org: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Json> {
        let (org, my_role) = self.acting_org(who, org).await?;
        check_manages(who, &my_role, "change member roles")?;
        let role = check_role(role.trim())?;
        let not_found = || AuthError::UserNotFound(target.trim().to_owned());
        let cred = self.find_user(target).await?.ok_or_else(not_found)?;
        // The checks and the write in one transaction over the memberships they read.
        let mut tx = self.db().begin().await?;
        // Only the member's role changes: only their cached sessions go stale.
        tx.concerns_user(&cred.user_id);
        let held = decide_on(&tx, &org, &who.user_id, &cred.user_id).await?;
        // The caller's role as it is now: a concurrent change may have taken it away.
        let my_role = held
            .caller
            .ok_or_else(|| AuthError::OrganizationNotFound(org.clone()))?;
        check_manages(who, &my_role, "change member roles")?;
        let (previous, created) = held.target.ok_or_else(not_found)?;
        if my_role != "owner" && (previous == "owner" || role == "owner") {
            return Err(AuthError::Forbidden(
                "Only owners may make a member an owner or change an owner's role.".into(),
            ));
        }
        if previous == "owner" && role != "owner" && held.owners <= 1 {
            return Err(AuthError::BadRequest(
                "This is the organization's last owner; make another member an owner first.".into(),
            ));
        }
        tx.exec(
            r#"UPDATE "_objectos_auth_member" SET "role" = ? WHERE "org_id" = ? AND "user_id" = ?"#,
            vec![s(role), s(&org), s(&cred.user_id)],
        )
        .await?;
        tx.commit().await?;
        self.publish_by(
            events::MEMBER_ROLE_UPDATED,
            who,
            Some(&org),
            meta,
            AuthDetails {
                organization_id: Some(org.to_string()),
                target_user_id: Some(cred.user_id.clone()),
                role: Some(role.to_string()),
                previous_role: Some(previous.to_string()),
                ..AuthDetails::default()
            },
        )
        .await;
        self.member_view(&org, &cred.user_id, role, created).await
    }

    /// `POST /organization/remove-member`: owners and admins remove a member (only owners
    /// remove owners), anyone may remove themselves (leave). The last owner stays, and so does
    /// a user's last organization (ban the account instead). A user whose record belongs to
    /// the organization moves to their next one, so the organization they left no longer
    /// administers their profile; their sessions there move too and their keys there are revoked.
    pub async fn remove_member(
        &self,
        who: &Resolved,
        target: &str,
        org: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Json> {
        let (org, _) = self.acting_org(who, org).await?;
        let not_found = || AuthError::UserNotFound(target.trim().to_owned());
        let cred = self.find_user(target).await?.ok_or_else(not_found)?;
        let user_id = cred.user_id;
        let leaving = user_id == who.user_id;
        // Every check and write in one transaction over the memberships the checks read, so a
        // concurrent removal or demotion cannot take the last owner away in between.
        let mut tx = self.db().begin().await?;
        // The membership, sessions and keys of the member removed: only their cached sessions
        // go stale.
        tx.concerns_user(&user_id);
        let held = decide_on(&tx, &org, &who.user_id, &user_id).await?;
        let (role, _) = held.target.ok_or_else(not_found)?;
        let my_role = held
            .caller
            .ok_or_else(|| AuthError::OrganizationNotFound(org.clone()))?;
        // Leaving needs no role, but an API key changes memberships only with the `admin` scope.
        if !can_manage(who, &my_role) && (!leaving || who.api_key_id.is_some()) {
            return Err(AuthError::Forbidden(
                "Only the organization's owners and admins may remove members.".into(),
            ));
        }
        if role == "owner" {
            if !leaving && my_role != "owner" {
                return Err(AuthError::Forbidden(
                    "Only owners may remove an owner.".into(),
                ));
            }
            if held.owners <= 1 {
                return Err(AuthError::BadRequest(
                    "This is the organization's last owner; add another owner first.".into(),
                ));
            }
        }
        let Some(next) = tx
            .one(
                r#"SELECT "org_id" FROM "_objectos_auth_member" WHERE "user_id" = ? AND "org_id" <> ? ORDER BY "created_at", "org_id" LIMIT 1"#,
                vec![s(&user_id), s(&org)],
            )
            .await?
            .map(|r| get_s(&r, 0))
            .transpose()?
        else {
            return Err(AuthError::BadRequest(format!(
                "User `{}` belongs to no other organization; ban the account instead (POST /api/v1/auth/admin/ban-user).",
                target.trim()
            )));
        };
        tx.exec(
            r#"DELETE FROM "_objectos_auth_member" WHERE "org_id" = ? AND "user_id" = ?"#,
            vec![s(&org), s(&user_id)],
        )
        .await?;
        let now = ms(self.now());
        tx.exec(
            r#"UPDATE "_objectos_auth_session" SET "active_org" = ? WHERE "user_id" = ? AND "active_org" = ?"#,
            vec![s(&next), s(&user_id), s(&org)],
        )
        .await?;
        tx.exec(
            r#"UPDATE "_objectos_auth_api_key" SET "revoked_at" = ? WHERE "user_id" = ? AND "org_id" = ? AND "revoked_at" IS NULL"#,
            vec![i(now), s(&user_id), s(&org)],
        )
        .await?;
        let moved = self.rehome_user(&tx, &user_id, &org, &next).await?;
        tx.commit().await?;
        self.publish_by(
            events::MEMBER_REMOVED,
            who,
            Some(&org),
            meta,
            AuthDetails {
                organization_id: Some(org.to_string()),
                target_user_id: Some(user_id.to_string()),
                role: Some(role.to_string()),
                // Whether the profile moved; not where to: that organization is none of this one's business.
                profile_moved: Some(moved),
                ..AuthDetails::default()
            },
        )
        .await;
        Ok(json!({"member": self.member_view(&org, &user_id, &role, now).await?}))
    }

    /// Moves the user record from `from` to `to` when it is `from`'s (the record's
    /// `organization_id` is read-only through the data engine, hence the direct update).
    async fn rehome_user(&self, tx: &Tx, user_id: &str, from: &str, to: &str) -> Result<bool> {
        let meta = self.engine().metadata();
        let Some(table) = meta.object("user").map(|o| o.table_name().to_owned()) else {
            return Ok(false);
        };
        if table.contains('"') {
            return Err(AuthError::Internal(format!(
                "the user table name `{table}` cannot be quoted"
            )));
        }
        let sql = format!(
            r#"UPDATE "{table}" SET "organization_id" = ? WHERE "id" = ? AND "organization_id" = ?"#
        );
        let n = tx.exec(&sql, vec![s(to), s(user_id), s(from)]).await?;
        Ok(n > 0)
    }

    /// `GET /organization/list-members`: any member sees the organization's members.
    pub async fn list_members(
        &self,
        who: &Resolved,
        org: Option<&str>,
        limit: u64,
        offset: u64,
    ) -> Result<Json> {
        let (org, _) = self.acting_org(who, org).await?;
        let rows = self
            .db()
            .all(
                r#"SELECT "user_id", "role", "created_at" FROM "_objectos_auth_member" WHERE "org_id" = ? ORDER BY "created_at", "user_id" LIMIT ? OFFSET ?"#,
                vec![
                    s(&org),
                    i(i64::try_from(limit.min(MAX_PAGE)).unwrap_or(100)),
                    i(i64::try_from(offset).unwrap_or(i64::MAX)),
                ],
            )
            .await?;
        let total = self
            .db()
            .one(
                r#"SELECT COUNT(*) FROM "_objectos_auth_member" WHERE "org_id" = ?"#,
                vec![s(&org)],
            )
            .await?
            .map(|r| get_i(&r, 0))
            .transpose()?
            .unwrap_or(0);
        let mut members = Vec::with_capacity(rows.len());
        for r in &rows {
            members.push((get_s(r, 0)?, get_s(r, 1)?, get_i(r, 2)?));
        }
        let ids: Vec<String> = members.iter().map(|m| m.0.clone()).collect();
        let users = self.records_by_id("user", &ids).await?;
        let list: Vec<Json> = members
            .iter()
            .map(|(u, role, at)| member_json(&org, u, role, *at, users.get(u)))
            .collect();
        Ok(json!({"members": list, "total": total, "limit": limit.min(MAX_PAGE), "offset": offset}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        let s = slug_from("Beta Inc. (EU)").unwrap();
        assert!(s.starts_with("beta-inc-eu-"), "{s}");
        assert!(valid_slug(&s), "{s}");
        assert!(slug_from("   ").unwrap().starts_with("org-"));
        assert!(valid_slug("acme"));
        for bad in ["", "-acme", "Acme", "ac me", "a_b", &"a".repeat(64)] {
            assert!(!valid_slug(bad), "{bad}");
        }
    }
}
