//! Sessions: creating them, sign-in (lockout, password, second factor), resolving a token
//! into a [`Resolved`] caller (through the session cache), the session view, sign-out and
//! revocation, and the session timeouts.

use chrono::TimeDelta;
use objectos_spec::event::auth::AuthDetails;
use serde_json::{Value as Json, json};

use super::{
    API_KEY_PREFIX, AuthService, Credential, RequestMeta, Resolved, SignedIn, events, iso, manages,
    minutes, ms, normalize_email,
};
use crate::crypto;
use crate::error::{AuthError, Result};
use crate::session_cache;
use crate::store::{get_i, get_oi, get_os, get_s, i, os, s};

/// Gauge: sessions that can be used now (not revoked, not past their absolute or idle timeout),
/// counted in the shared session table, so every node of a cluster reports the same total.
pub const SESSIONS_ACTIVE: &str = "objectos_auth_sessions_active";

/// How often the gauge is recounted besides after each sign-in, sign-out and revocation: what
/// expires between them drops off within this long.
pub(crate) const SESSIONS_GAUGE_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

impl AuthService {
    pub(crate) async fn create_session(
        &self,
        user_id: &str,
        org: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<(String, Json)> {
        let token = crypto::random_token()?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let now = ms(self.now());
        let expires = now + minutes(self.inner.config.session_policy.absolute_timeout);
        // A fresh random token: no cached resolution can be about it (misses are not cached).
        self.db()
            .exec_uncached(
                r#"INSERT INTO "_objectos_auth_session" ("id", "token_hash", "user_id", "active_org", "created_at", "last_seen_at", "expires_at", "ip", "user_agent") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"#,
                vec![
                    s(&id),
                    s(crypto::sha256_hex(&token)),
                    s(user_id),
                    os(org),
                    i(now),
                    i(now),
                    i(expires),
                    os(meta.ip.clone()),
                    os(meta.user_agent.clone()),
                ],
            )
            .await?;
        self.refresh_sessions_gauge().await;
        let session = json!({
            "id": id,
            "userId": user_id,
            "expiresAt": iso(expires),
            "createdAt": iso(now),
            "updatedAt": iso(now),
            "ipAddress": meta.ip.clone().unwrap_or_default(),
            "userAgent": meta.user_agent.clone().unwrap_or_default(),
            "activeOrganizationId": org,
        });
        Ok((token, session))
    }

    /// Starts a session for a user who has just proved who they are (sign-up, password, SSO):
    /// creates it, builds the user view and publishes `auth.login` with `details`.
    pub(crate) async fn open_session(
        &self,
        user_id: &str,
        org: Option<&str>,
        meta: &RequestMeta,
        details: AuthDetails,
    ) -> Result<SignedIn> {
        let (token, session) = self.create_session(user_id, org, meta).await?;
        let user = self.user_view(user_id, org).await?;
        let email = user.get("email").and_then(Json::as_str).map(str::to_owned);
        self.publish(
            events::LOGIN,
            Some(user_id),
            email.as_deref(),
            org,
            meta,
            details,
        )
        .await;
        Ok(SignedIn {
            token,
            user,
            session,
        })
    }

    /// Counts a failed sign-in for the email (known or not), publishes `auth.login_failed`, and
    /// locks the email once the failures reach `lockout.maxFailedAttempts`.
    async fn record_failure(
        &self,
        email_key: &str,
        email: &str,
        cred: Option<&Credential>,
        meta: &RequestMeta,
        reason: &str,
    ) -> Result<AuthError> {
        let org = match cred {
            Some(c) => self.org_of(&c.user_id).await?,
            None => None,
        };
        let user_id = cred.map(|c| c.user_id.as_str());
        self.publish(
            events::LOGIN_FAILED,
            user_id,
            Some(email),
            org.as_deref(),
            meta,
            AuthDetails::reason(reason),
        )
        .await;
        if let Some(retry_after_secs) = self.count_failure(email_key).await? {
            tracing::warn!(user_id = ?user_id, "Sign-ins locked for an email after repeated failures.");
            self.publish(
                events::ACCOUNT_LOCKED,
                user_id,
                Some(email),
                org.as_deref(),
                meta,
                AuthDetails::reason("too_many_failed_sign_ins"),
            )
            .await;
            return Ok(AuthError::AccountLocked { retry_after_secs });
        }
        Ok(match reason {
            "invalid_two_factor_code" => AuthError::InvalidTwoFactorCode,
            _ => AuthError::InvalidCredentials,
        })
    }

    /// `POST /sign-in/email`: checks lockout, the password and (when enrolled) the second factor.
    ///
    /// An unknown email goes through the same steps as a wrong password: one argon2 run, one
    /// failure counted for that email, the same lockout, so neither the answers nor their timing
    /// say whether an account exists.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        code: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<SignedIn> {
        let email = normalize_email(email).map_err(|_| AuthError::InvalidCredentials)?;
        let email_key = crypto::sha256_hex(&email);
        let cred = self.credential_by("email", &email).await?;
        let attempts = self.attempt_row(&email_key).await?;
        let now = ms(self.now());
        if let Some(until) = attempts.and_then(|a| a.locked_until).filter(|u| *u > now) {
            let user_id = cred.as_ref().map(|c| c.user_id.as_str());
            self.publish(
                events::LOGIN_FAILED,
                user_id,
                Some(&email),
                None,
                meta,
                AuthDetails::reason("account_locked"),
            )
            .await;
            return Err(AuthError::AccountLocked {
                retry_after_secs: u64::try_from((until - now + 999) / 1000).unwrap_or(1),
            });
        }
        // Accounts without a password (single sign-on only) and unknown emails are checked
        // against the dummy hash, so every path costs exactly one argon2 run.
        let real = cred
            .as_ref()
            .map(|c| c.password_hash.as_str())
            .filter(|h| h.starts_with("$argon2"));
        let verified = self
            .inner
            .hasher
            .verify(password, real.unwrap_or(&self.inner.dummy_hash))
            && real.is_some();
        let cred = match cred {
            Some(c) if verified => c,
            other => {
                let reason = if other.is_some() {
                    "invalid_password"
                } else {
                    "unknown_user"
                };
                return Err(self
                    .record_failure(&email_key, &email, other.as_ref(), meta, reason)
                    .await?);
            }
        };
        let status = self.user_status(&cred.user_id).await?;
        if status != "active" {
            self.publish(
                events::LOGIN_FAILED,
                Some(&cred.user_id),
                Some(&email),
                None,
                meta,
                AuthDetails::reason(format!("user_{status}")),
            )
            .await;
            return Err(AuthError::AccountDisabled(status));
        }
        if self.totp_enabled(&cred.user_id).await? {
            let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
                return Err(AuthError::TwoFactorRequired);
            };
            if !self.check_second_factor(&cred.user_id, code).await? {
                return Err(self
                    .record_failure(
                        &email_key,
                        &email,
                        Some(&cred),
                        meta,
                        "invalid_two_factor_code",
                    )
                    .await?);
            }
        }
        if attempts.is_some() {
            self.clear_failures(&email_key).await?;
        }
        // Only after the password (and second factor): the answer says nothing to a guesser.
        if self.inner.config.email_verification.required
            && !self.email_verified(&cred.user_id).await?
        {
            self.publish(
                events::LOGIN_FAILED,
                Some(&cred.user_id),
                Some(&email),
                None,
                meta,
                AuthDetails::reason("email_not_verified"),
            )
            .await;
            return Err(AuthError::EmailUnverified);
        }
        let Some(org) = self.org_of(&cred.user_id).await? else {
            // Every session acts within an organization; a user removed from all of them has
            // no data to work on.
            return Err(AuthError::AccountDisabled("without an organization".into()));
        };
        self.open_session(&cred.user_id, Some(&org), meta, AuthDetails::default())
            .await
    }

    /// Resolves a bearer token, cookie value or API key; `None` when unknown, expired or revoked.
    pub async fn resolve(&self, token: &str, meta: &RequestMeta) -> Result<Option<Resolved>> {
        if token.is_empty() || token.len() > 512 {
            return Ok(None);
        }
        if token.starts_with(API_KEY_PREFIX) {
            return self.resolve_api_key(token, meta).await;
        }
        let hash = crypto::sha256_hex(token);
        let now = ms(self.now());
        let policy = &self.inner.config.session_policy;
        // Read before the rows: a write committed after this point makes the entry stale.
        let sequence = self.inner.sessions.read_sequence();
        if let Some(hit) = self.inner.sessions.get(&hash) {
            if !hit.alive(now, policy) {
                return Ok(None);
            }
            if hit.touch(now, policy)
                && let Some(id) = &hit.resolved.session_id
            {
                self.record_activity(id, now).await?;
            }
            return Ok(Some(hit.resolved.clone()));
        }
        // One query: the session, the user's email, and the role in the active organization.
        let Some(row) = self
            .db()
            .one(
                r#"SELECT s."id", s."token_hash", s."user_id", s."active_org", s."created_at", s."last_seen_at", s."expires_at", s."revoked_at", c."email", m."role" FROM "_objectos_auth_session" s JOIN "_objectos_auth_credential" c ON c."user_id" = s."user_id" LEFT JOIN "_objectos_auth_member" m ON m."org_id" = s."active_org" AND m."user_id" = s."user_id" WHERE s."token_hash" = ?"#,
                vec![s(&hash)],
            )
            .await?
        else {
            return Ok(None);
        };
        if !crypto::ct_eq(&get_s(&row, 1)?, &hash) || get_oi(&row, 7).is_some() {
            return Ok(None);
        }
        let created = get_i(&row, 4)?;
        let last_seen = get_i(&row, 5)?;
        let expires = get_i(&row, 6)?;
        if !session_cache::alive(now, created, last_seen, expires, policy) {
            return Ok(None);
        }
        let id = get_s(&row, 0)?;
        let user_id = get_s(&row, 2)?;
        let (tenant, role) = match (get_os(&row, 3), get_os(&row, 9)) {
            (Some(org), Some(role)) => (org, role),
            // No longer a member of the active organization (removed since): the session moves
            // to another of the user's organizations, and without one it no longer works (a
            // session without a tenant would see every organization's rows).
            _ => {
                let Some((org, role)) = self.first_membership(&user_id).await? else {
                    return Ok(None);
                };
                self.db()
                    .exec_for(
                        &user_id,
                        r#"UPDATE "_objectos_auth_session" SET "active_org" = ? WHERE "id" = ?"#,
                        vec![s(&org), s(&id)],
                    )
                    .await?;
                (org, role)
            }
        };
        let mut stored_last_seen = last_seen;
        if now - last_seen >= session_cache::activity_interval(policy) {
            self.record_activity(&id, now).await?;
            stored_last_seen = now;
        }
        let resolved = Resolved {
            user_id,
            email: get_s(&row, 8)?,
            is_admin: manages(&role),
            tenant: Some(tenant),
            org_role: Some(role),
            session_id: Some(id),
            api_key_id: None,
            scopes: Vec::new(),
        };
        self.inner.sessions.insert(
            hash,
            session_cache::CachedSession::new(
                resolved.clone(),
                created,
                expires,
                stored_last_seen,
                sequence,
            ),
        );
        Ok(Some(resolved))
    }

    /// Writes a session's activity time (see [`session_cache::activity_interval`]).
    async fn record_activity(&self, session_id: &str, now: i64) -> Result<()> {
        self.db()
            .exec_uncached(
                r#"UPDATE "_objectos_auth_session" SET "last_seen_at" = ? WHERE "id" = ?"#,
                vec![i(now), s(session_id)],
            )
            .await?;
        Ok(())
    }

    /// Counts the usable sessions (see [`SESSIONS_ACTIVE`]): one `COUNT(*)` over the session
    /// table: it runs after a session changes and every
    /// [`SESSIONS_GAUGE_EVERY`], never per request.
    pub async fn active_sessions(&self) -> Result<i64> {
        let now = ms(self.now());
        let policy = &self.inner.config.session_policy;
        let row = self
            .db()
            .one(
                r#"SELECT COUNT(*) FROM "_objectos_auth_session" WHERE "revoked_at" IS NULL AND "expires_at" > ? AND "created_at" > ? AND "last_seen_at" > ?"#,
                vec![
                    i(now),
                    i(now - minutes(policy.absolute_timeout)),
                    i(now - minutes(policy.idle_timeout)),
                ],
            )
            .await?;
        match row {
            Some(row) => get_i(&row, 0),
            None => Ok(0),
        }
    }

    /// Sets [`SESSIONS_ACTIVE`] from [`AuthService::active_sessions`]; a failed count keeps the
    /// last value (the gauge is a report, not a reason to fail a sign-in).
    pub(crate) async fn refresh_sessions_gauge(&self) {
        match self.active_sessions().await {
            Ok(n) => metrics::gauge!(SESSIONS_ACTIVE).set(n as f64),
            Err(e) => tracing::debug!(error = %e, "Active sessions not counted for the gauge."),
        }
    }

    /// Marks `user_id`'s cached session resolutions stale (here and on the other nodes): for
    /// writes to the auth tables made inside a data-engine transaction (see [`crate::hook`]),
    /// which [`crate::store::Db`] cannot see.
    pub(crate) fn user_sessions_changed(&self, user_id: &str) {
        self.db().bump_user(user_id);
    }

    /// `GET /get-session`: the user and the session (`token` echoed from the request).
    pub async fn session_view(&self, who: &Resolved, token: &str) -> Result<Json> {
        let user = self.user_view(&who.user_id, who.tenant.as_deref()).await?;
        let session = match &who.session_id {
            Some(id) => {
                let row = self
                    .db()
                    .one(
                        r#"SELECT "created_at", "last_seen_at", "expires_at", "ip", "user_agent", "active_org" FROM "_objectos_auth_session" WHERE "id" = ?"#,
                        vec![s(id)],
                    )
                    .await?
                    .ok_or(AuthError::Unauthenticated)?;
                json!({
                    "id": id,
                    "token": token,
                    "userId": who.user_id,
                    "expiresAt": iso(get_i(&row, 2)?),
                    "createdAt": iso(get_i(&row, 0)?),
                    "updatedAt": iso(get_i(&row, 1)?),
                    "ipAddress": get_os(&row, 3).unwrap_or_default(),
                    "userAgent": get_os(&row, 4).unwrap_or_default(),
                    "activeOrganizationId": get_os(&row, 5),
                    "activeOrganizationRole": who.org_role,
                    "activeTeamId": null,
                    "impersonatedBy": null,
                })
            }
            None => json!({
                "id": who.api_key_id,
                "userId": who.user_id,
                "activeOrganizationId": who.tenant,
                "activeOrganizationRole": who.org_role,
                "apiKey": true,
                "scopes": who.scopes,
            }),
        };
        Ok(json!({ "user": user, "session": session }))
    }

    /// `POST /sign-out`: revokes the session.
    pub async fn sign_out(&self, who: &Resolved, meta: &RequestMeta) -> Result<()> {
        if let Some(id) = &who.session_id {
            self.db()
                .exec_for(
                    &who.user_id,
                    r#"UPDATE "_objectos_auth_session" SET "revoked_at" = ? WHERE "id" = ? AND "revoked_at" IS NULL"#,
                    vec![i(ms(self.now())), s(id)],
                )
                .await?;
            self.refresh_sessions_gauge().await;
        }
        self.publish(
            events::LOGOUT,
            Some(&who.user_id),
            Some(&who.email),
            who.tenant.as_deref(),
            meta,
            AuthDetails::default(),
        )
        .await;
        Ok(())
    }

    pub(super) async fn revoke_sessions(&self, user_id: &str, except: Option<&str>) -> Result<u64> {
        let n = self
            .db()
            .exec_for(
                user_id,
                r#"UPDATE "_objectos_auth_session" SET "revoked_at" = ? WHERE "user_id" = ? AND "revoked_at" IS NULL AND "id" <> ?"#,
                vec![i(ms(self.now())), s(user_id), s(except.unwrap_or(""))],
            )
            .await?;
        if n > 0 {
            self.refresh_sessions_gauge().await;
        }
        Ok(n)
    }

    /// Recounts [`SESSIONS_ACTIVE`] every [`SESSIONS_GAUGE_EVERY`] until the service is
    /// dropped (the task holds it weakly) or the runtime ends.
    pub fn spawn_sessions_gauge(&self) {
        let weak = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SESSIONS_GAUGE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                AuthService { inner }.refresh_sessions_gauge().await;
            }
        });
    }

    /// Session timeouts in seconds (`Max-Age` of the cookie).
    pub fn session_max_age_secs(&self) -> i64 {
        i64::from(self.inner.config.session_policy.absolute_timeout) * 60
    }

    /// A short pause-free hint for tests: the idle timeout as a duration.
    pub fn idle_timeout(&self) -> TimeDelta {
        TimeDelta::minutes(i64::from(self.inner.config.session_policy.idle_timeout))
    }
}
