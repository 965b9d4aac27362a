//! The auth service: accounts, sessions, lockout, rate limits, password change and reset, TOTP,
//! recovery codes, API keys and organizations. HTTP handlers and the CLI call it; it publishes the
//! `auth.*` / `security.*` events (payloads never carry a secret).

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use objectos_data::{DataEngine, OpContext, Record};
use objectos_kernel::{Clock, PluginHandle};
use objectos_spec::event::auth::{AuthDetails, AuthEvent};
use objectos_spec::query::QueryAst;
use serde_json::{Value as Json, json};

use crate::config::AuthConfig;
use crate::crypto::{self, PasswordHasher};
use crate::error::{AuthError, Result};
use crate::mailer::{Mail, Mailer};
use crate::ratelimit::RateLimiter;
use crate::secretbox::SecretKey;
use crate::session_cache::{self, SessionCache};
use crate::sso::Sso;
use crate::store::{Db, get_i, get_oi, get_os, get_s, i, oi, os, s};

/// Event names this plugin publishes (declared in the manifest's `emits`); they and their
/// payload ([`AuthEvent`]) live in `objectos-spec`, so subscribers need not depend on this crate.
pub use objectos_spec::event::auth as events;

/// Prefix of API keys, so the hoop can tell them from session tokens.
pub const API_KEY_PREFIX: &str = "osk_";

/// The stored "hash" of an account without a password (single sign-on only).
const NO_PASSWORD: &str = "!no-password";

/// Roles in an organization that administer it (and make the member an administrator of the
/// data while it is the active organization).
pub(crate) fn manages(role: &str) -> bool {
    matches!(role, "owner" | "admin")
}

/// Number of one-time recovery codes issued at TOTP enrolment.
const RECOVERY_CODES: usize = 10;

/// Where a request came from (for events and session rows).
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// What a valid token resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub user_id: String,
    pub email: String,
    /// Administrator of the active organization (its owner or an admin); for an API key only
    /// with the `admin` scope.
    pub is_admin: bool,
    /// Active organization (the tenant of every data operation); always one the user is a
    /// member of.
    pub tenant: Option<String>,
    /// The user's role in the active organization (`owner`, `admin` or `member`).
    pub org_role: Option<String>,
    /// Set for session tokens.
    pub session_id: Option<String>,
    /// Set for API keys.
    pub api_key_id: Option<String>,
    /// API key scopes (`read`, `write`, `admin`); empty for sessions.
    pub scopes: Vec<String>,
}

/// A new session and the only copy of its token.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub token: String,
    pub user: Json,
    pub session: Json,
}

/// An account's credential row.
#[derive(Debug, Clone)]
pub(crate) struct Credential {
    pub(crate) user_id: String,
    pub(crate) email: String,
    pub(crate) password_hash: String,
    /// Created as an administrator (the first account, `--admin`, or `role: admin`); shown as
    /// `isPlatformAdmin`. What a session may do comes from the role in its organization.
    pub(crate) is_admin: bool,
}

/// A new account (see [`AuthService::create_account_with`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NewAccount<'a> {
    pub(crate) email: &'a str,
    /// `None` for accounts that sign in through a single sign-on provider only.
    pub(crate) password: Option<&'a str>,
    pub(crate) name: Option<&'a str>,
    /// Joins as `admin` rather than `member`.
    pub(crate) admin: bool,
    /// Self-service sign-up, closed after the owner unless `allowSignUp`.
    pub(crate) public: bool,
    pub(crate) email_verified: bool,
    /// The organization to join; the owner's when `None`.
    pub(crate) org: Option<&'a str>,
}

struct Inner {
    engine: DataEngine,
    db: Db,
    config: AuthConfig,
    clock: Arc<dyn Clock>,
    hasher: PasswordHasher,
    mailer: Arc<dyn Mailer>,
    events: Option<PluginHandle>,
    limiter: RateLimiter,
    /// A hash verified against when the email is unknown, so both paths cost one argon2 run.
    dummy_hash: String,
    /// Failed sign-ins counted (stale attempt rows are pruned every so many).
    failures: std::sync::atomic::AtomicU64,
    /// Serialises account creation so two concurrent first sign-ups cannot both become owner.
    create_lock: tokio::sync::Mutex<()>,
    /// The configured single sign-on providers.
    sso: Sso,
    /// Encrypts TOTP secrets at rest (`secretKeyEnv`); `None` keeps them unencrypted.
    secret_key: Option<SecretKey>,
    /// Resolved session tokens (`sessionCacheSeconds`).
    sessions: SessionCache,
}

/// The auth service (cheap to clone).
#[derive(Clone)]
pub struct AuthService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

/// Folds an email address into the one form it is stored and compared in: trimmed, NFKC
/// (full-width letters, ligatures and signs such as the Kelvin sign become plain letters),
/// lowercased, and NFKC again (lowercasing can leave a sequence NFKC would change), so every
/// spelling of an address is one account, one lockout key and one invitation.
pub(crate) fn fold_email(email: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let nfkc: String = email.trim().nfkc().collect();
    let folded: String = nfkc.to_lowercase().nfkc().collect();
    folded.trim().to_owned()
}

pub(crate) fn normalize_email(email: &str) -> Result<String> {
    let e = fold_email(email);
    let valid = e.len() <= 255
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.contains(char::is_whitespace)
        && !e.contains('\0'); // PostgreSQL refuses NUL in text: a 500 before this check
    if valid {
        Ok(e)
    } else {
        Err(AuthError::InvalidBody(
            "`email` must be an email address such as ada@example.com".into(),
        ))
    }
}

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn iso(millis: i64) -> Json {
    DateTime::<Utc>::from_timestamp_millis(millis)
        .map(|t| Json::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Json::Null)
}

pub(crate) fn minutes(n: u32) -> i64 {
    i64::from(n) * 60_000
}

/// The wire form of a user record: `role` is the role in the organization the view is for
/// (`admin` for its owner and admins), `banned` says an administrator locked or deactivated it.
pub(crate) fn user_json(
    user_id: &str,
    user: &Record,
    org_role: Option<&str>,
    platform_admin: bool,
    two_factor: bool,
) -> Json {
    let field = |k: &str| user.get(k).cloned().unwrap_or(Json::Null);
    let status = user
        .get("status")
        .and_then(Json::as_str)
        .unwrap_or("active");
    let admin = org_role.map_or(platform_admin, manages);
    json!({
        "id": user_id,
        "name": field("name"),
        "email": field("email"),
        "emailVerified": user.get("email_verified").and_then(Json::as_bool).unwrap_or(false),
        "image": field("avatar"),
        "createdAt": field("created_at"),
        "updatedAt": field("updated_at"),
        "role": if admin { "admin" } else { "user" },
        "organizationRole": org_role,
        "status": status,
        "banned": matches!(status, "locked" | "deactivated"),
        "banReason": null,
        "banExpires": null,
        "twoFactorEnabled": two_factor,
        "isPlatformAdmin": platform_admin,
        "tenantId": field("organization_id"),
    })
}

impl AuthService {
    /// Builds the service on an open engine and creates the private tables.
    pub async fn open(
        engine: DataEngine,
        config: AuthConfig,
        clock: Arc<dyn Clock>,
        mailer: Arc<dyn Mailer>,
        events: Option<PluginHandle>,
    ) -> Result<Self> {
        Self::open_with_key(engine, config, clock, mailer, events, None).await
    }

    /// [`AuthService::open`] with the TOTP encryption key given by the host (a vault, a test)
    /// instead of read from the environment variable `secretKeyEnv` names.
    pub async fn open_with_key(
        engine: DataEngine,
        config: AuthConfig,
        clock: Arc<dyn Clock>,
        mailer: Arc<dyn Mailer>,
        events: Option<PluginHandle>,
        secret_key: Option<SecretKey>,
    ) -> Result<Self> {
        config.validate()?;
        let secret_key = match secret_key {
            Some(k) => Some(k),
            None => SecretKey::from_env(config.secret_key_env.trim())?,
        };
        if secret_key.is_none() {
            tracing::warn!(
                variable = %config.secret_key_env.trim(),
                "No encryption key is configured: two-factor (TOTP) secrets are stored unencrypted. Set the variable to 32 random bytes (64 hex digits or base64) to encrypt them."
            );
        }
        if engine.metadata().object("user").is_none()
            || engine.metadata().object("organization").is_none()
        {
            return Err(AuthError::Config(
                "the `user` and `organization` objects of the base preset are not loaded; enable include_base".into(),
            ));
        }
        let hasher = PasswordHasher::new(&config.argon2)?;
        let dummy_hash = hasher.hash(&crypto::random_token()?)?;
        let sso = Sso::new(&config.sso)?;
        let db = Db::new(engine.clone());
        db.create_tables().await?;
        let config_cache_seconds = config.session_cache_seconds;
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                db,
                config,
                clock,
                hasher,
                mailer,
                events,
                limiter: RateLimiter::new(),
                dummy_hash,
                failures: std::sync::atomic::AtomicU64::new(0),
                create_lock: tokio::sync::Mutex::new(()),
                sso,
                secret_key,
                sessions: SessionCache::new(config_cache_seconds),
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The clock's time in epoch milliseconds.
    pub(crate) fn now_millis(&self) -> i64 {
        ms(self.now())
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    pub(crate) fn engine(&self) -> &DataEngine {
        &self.inner.engine
    }

    pub(crate) fn inner_failures(&self) -> &std::sync::atomic::AtomicU64 {
        &self.inner.failures
    }

    pub(crate) fn sso(&self) -> &Sso {
        &self.inner.sso
    }

    /// Hands one mail to the mailer; a refusal is an internal error (the mail's content, which
    /// carries a token, is never part of it).
    pub(crate) fn mail(&self, mail: Mail) -> Result<()> {
        self.inner
            .mailer
            .send(mail)
            .map_err(|e| AuthError::Internal(format!("the mailer refused a mail: {e}")))
    }

    /// The key TOTP secrets are encrypted with, if configured.
    pub(crate) fn secret_key(&self) -> Option<&SecretKey> {
        self.inner.secret_key.as_ref()
    }

    // ----- events -----

    pub(crate) async fn publish(
        &self,
        name: &str,
        user_id: Option<&str>,
        email: Option<&str>,
        tenant: Option<&str>,
        meta: &RequestMeta,
        details: AuthDetails,
    ) {
        let Some(handle) = &self.inner.events else {
            return;
        };
        let payload = AuthEvent {
            user_id: user_id.map(str::to_owned),
            email: email.map(str::to_owned),
            tenant_id: tenant.map(str::to_owned),
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            request_id: meta.request_id.clone(),
            details,
        };
        // Strings, numbers and flags only: encoding cannot fail.
        let payload = serde_json::to_value(&payload).unwrap_or_default();
        let mut event = handle.event(name, payload);
        event.metadata.user_id = user_id.map(str::to_owned);
        event.metadata.tenant_id = tenant.map(str::to_owned);
        // A request starts its own correlation (auth events are nobody's follow-up).
        event.metadata.request_id = meta.request_id.clone();
        event.metadata.correlation_id = meta.request_id.clone();
        if let Err(e) = handle.publish(event).await {
            tracing::warn!(event = name, error = %e, "Could not publish an auth event.");
        }
    }

    // ----- rate limits -----

    /// One token from the IP's and the email's bucket (when rate limiting is on).
    pub fn check_rate(&self, meta: &RequestMeta, email: Option<&str>) -> Result<()> {
        let rl = &self.inner.config.rate_limit;
        if !rl.enabled {
            return Ok(());
        }
        let now = self.now();
        let ip = meta.ip.as_deref().unwrap_or("unknown");
        self.inner
            .limiter
            .take(&format!("ip:{ip}"), rl.per_ip_per_minute, now)
            .map_err(|secs| AuthError::RateLimited {
                retry_after_secs: secs,
            })?;
        if let Some(email) = email {
            let email = fold_email(email);
            self.inner
                .limiter
                .take(&format!("email:{email}"), rl.per_email_per_minute, now)
                .map_err(|secs| AuthError::RateLimited {
                    retry_after_secs: secs,
                })?;
        }
        Ok(())
    }

    // ----- accounts -----

    /// True once an owner (the first account) exists.
    pub async fn has_owner(&self) -> Result<bool> {
        Ok(self
            .db()
            .one(
                r#"SELECT "user_id" FROM "_objectos_auth_member" WHERE "role" = 'owner' LIMIT 1"#,
                vec![],
            )
            .await?
            .is_some())
    }

    pub(crate) async fn credential_by(
        &self,
        column: &str,
        value: &str,
    ) -> Result<Option<Credential>> {
        let sql = format!(
            r#"SELECT "user_id", "email", "password_hash", "is_admin" FROM "_objectos_auth_credential" WHERE "{column}" = ?"#
        );
        let Some(row) = self.db().one(&sql, vec![s(value)]).await? else {
            return Ok(None);
        };
        Ok(Some(Credential {
            user_id: get_s(&row, 0)?,
            email: get_s(&row, 1)?,
            password_hash: get_s(&row, 2)?,
            is_admin: get_i(&row, 3)? != 0,
        }))
    }

    pub(crate) fn check_policy(&self, password: &str) -> Result<()> {
        if password.len() > 1024 {
            return Err(AuthError::WeakPassword(vec![
                "Password must be at most 1024 bytes long.".into(),
            ]));
        }
        self.inner
            .config
            .password_policy
            .check(password)
            .map_err(AuthError::WeakPassword)
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

    /// Creates an account. The very first account creates the default organization and becomes
    /// its owner and an administrator; later ones join it as members (administrators when `admin`).
    /// `public` is true for self-service sign-up, which is closed after the owner unless configured.
    pub async fn create_account(
        &self,
        email: &str,
        password: &str,
        name: Option<&str>,
        admin: bool,
        public: bool,
    ) -> Result<(String, Option<String>)> {
        self.check_policy(password)?;
        self.create_account_with(NewAccount {
            email,
            password: Some(password),
            name,
            admin,
            public,
            ..NewAccount::default()
        })
        .await
    }

    /// Creates an account. Accounts without a password sign in through a single sign-on
    /// provider (they can set one later with the password reset flow).
    pub(crate) async fn create_account_with(
        &self,
        new: NewAccount<'_>,
    ) -> Result<(String, Option<String>)> {
        let NewAccount {
            email,
            password,
            name,
            admin,
            public,
            email_verified,
            org: join,
        } = new;
        let email = normalize_email(email)?;
        let name = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| email.split('@').next().unwrap_or("user").to_owned());
        let _guard = self.inner.create_lock.lock().await;
        let first = !self.has_owner().await?;
        if public && !first && !self.inner.config.allow_sign_up {
            return Err(AuthError::SignUpDisabled);
        }
        if self.credential_by("email", &email).await?.is_some() {
            return Err(AuthError::UserExists);
        }
        let hash = match password {
            Some(p) => self.inner.hasher.hash(p)?,
            // Not a PHC string, so no password ever verifies against it.
            None => NO_PASSWORD.to_owned(),
        };
        let engine = &self.inner.engine;
        let org = if first {
            let mut rec = Record::new();
            rec.insert("name".into(), json!(format!("{name}'s organization")));
            let slug = format!(
                "org-{}",
                &crypto::sha256_hex(&crypto::random_token()?)[..12]
            );
            rec.insert("slug".into(), json!(slug));
            let created = engine
                .create(
                    &OpContext::system("auth: first sign-up"),
                    "organization",
                    rec,
                )
                .await
                .map_err(AuthError::Data)?;
            created.get("id").and_then(Json::as_str).map(str::to_owned)
        } else if let Some(org) = join {
            Some(org.to_owned())
        } else {
            self.default_org().await?
        };
        let mut cx = OpContext::system("auth: create account");
        cx.tenant = org.clone();
        let mut rec = Record::new();
        rec.insert("name".into(), json!(name));
        rec.insert("email".into(), json!(email));
        if email_verified {
            rec.insert("email_verified".into(), json!(true));
        }
        let user = engine
            .create(&cx, "user", rec)
            .await
            .map_err(|e| match e.code() {
                "DUPLICATE_VALUE" => AuthError::UserExists,
                _ => AuthError::Data(e),
            })?;
        let user_id = user
            .get("id")
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or_else(|| AuthError::Internal("created user has no id".into()))?;
        let now = ms(self.now());
        self.db()
            .exec(
                r#"INSERT INTO "_objectos_auth_credential" ("user_id", "email", "password_hash", "is_admin", "failed_count", "updated_at") VALUES (?, ?, ?, ?, 0, ?)"#,
                vec![s(&user_id), s(&email), s(hash), i(i64::from(first || admin)), i(now)],
            )
            .await?;
        if let Some(org) = &org {
            let role = if first {
                "owner"
            } else if admin {
                "admin"
            } else {
                "member"
            };
            self.db()
                .exec(
                    r#"INSERT INTO "_objectos_auth_member" ("org_id", "user_id", "role", "created_at") VALUES (?, ?, ?, ?)"#,
                    vec![s(org), s(&user_id), s(role), i(now)],
                )
                .await?;
        }
        tracing::info!(user_id = %user_id, owner = first, "Account created.");
        Ok((user_id, org))
    }

    /// The `status` of the user record (`active`, `invited`, `locked`, `deactivated`).
    pub(crate) async fn user_status(&self, user_id: &str) -> Result<String> {
        let user = self
            .inner
            .engine
            .get(
                &OpContext::system("auth: read user"),
                "user",
                user_id,
                QueryAst::default(),
            )
            .await
            .map_err(AuthError::Data)?;
        Ok(user
            .get("status")
            .and_then(Json::as_str)
            .unwrap_or("active")
            .to_owned())
    }

    /// The user as the official server returns it (`{id, name, email, emailVerified, image, ...}`);
    /// `role` is `admin` when the user administers `org` (the active organization).
    pub async fn user_view(&self, user_id: &str, org: Option<&str>) -> Result<Json> {
        let user = self
            .inner
            .engine
            .get(
                &OpContext::system("auth: read user"),
                "user",
                user_id,
                QueryAst::default(),
            )
            .await
            .map_err(AuthError::Data)?;
        let cred = self.credential_by("user_id", user_id).await?;
        let role = match org {
            Some(org) => self.member_role(org, user_id).await?,
            None => None,
        };
        let two_factor = self.totp_enabled(user_id).await?;
        Ok(user_json(
            user_id,
            &user,
            role.as_deref(),
            cred.is_some_and(|c| c.is_admin),
            two_factor,
        ))
    }

    // ----- sessions -----

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
        self.db()
            .exec(
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

    /// Self-service sign-up (`POST /sign-up/email`): creates the account and signs it in.
    pub async fn sign_up(
        &self,
        email: &str,
        password: &str,
        name: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<SignedIn> {
        let (user_id, org) = self
            .create_account(email, password, name, false, true)
            .await?;
        self.open_session(
            &user_id,
            org.as_deref(),
            meta,
            AuthDetails::reason("sign_up"),
        )
        .await
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
        let epoch = self.db().epoch();
        if let Some(hit) = self.inner.sessions.get(&hash, epoch) {
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
                    .exec(
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
                epoch,
            ),
        );
        Ok(Some(resolved))
    }

    /// Writes a session's activity time (see [`session_cache::activity_interval`]).
    async fn record_activity(&self, session_id: &str, now: i64) -> Result<()> {
        self.db()
            .exec_activity(
                r#"UPDATE "_objectos_auth_session" SET "last_seen_at" = ? WHERE "id" = ?"#,
                vec![i(now), s(session_id)],
            )
            .await?;
        Ok(())
    }

    /// Marks every cached session resolution stale: for writes to the auth tables made inside
    /// a data-engine transaction (see [`crate::hook`]), which [`crate::store::Db`] cannot see.
    pub(crate) fn sessions_changed(&self) {
        self.db().bump_epoch();
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
                .exec(
                    r#"UPDATE "_objectos_auth_session" SET "revoked_at" = ? WHERE "id" = ? AND "revoked_at" IS NULL"#,
                    vec![i(ms(self.now())), s(id)],
                )
                .await?;
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

    async fn revoke_sessions(&self, user_id: &str, except: Option<&str>) -> Result<u64> {
        self.db()
            .exec(
                r#"UPDATE "_objectos_auth_session" SET "revoked_at" = ? WHERE "user_id" = ? AND "revoked_at" IS NULL AND "id" <> ?"#,
                vec![i(ms(self.now())), s(user_id), s(except.unwrap_or(""))],
            )
            .await
    }

    /// Refuses a password equal to the current one or to one of the last `historyCount - 1`
    /// previous ones, then keeps the current hash in the history.
    async fn check_and_rotate_history(&self, user_id: &str, password: &str) -> Result<()> {
        let keep = i64::from(self.inner.config.password_policy.history_count);
        if keep == 0 {
            return Ok(());
        }
        let mut hashes = Vec::new();
        if let Some(c) = self.credential_by("user_id", user_id).await? {
            hashes.push(c.password_hash);
        }
        let rows = self
            .db()
            .all(
                r#"SELECT "password_hash" FROM "_objectos_auth_password_history" WHERE "user_id" = ? ORDER BY "created_at" DESC LIMIT ?"#,
                vec![s(user_id), i((keep - 1).max(0))],
            )
            .await?;
        for r in &rows {
            hashes.push(get_s(r, 0)?);
        }
        if hashes.iter().any(|h| self.inner.hasher.verify(password, h)) {
            return Err(AuthError::WeakPassword(vec![format!(
                "Password must differ from the last {keep} passwords."
            )]));
        }
        if let Some(current) = hashes.first() {
            self.db()
                .exec(
                    r#"INSERT INTO "_objectos_auth_password_history" ("user_id", "password_hash", "created_at") VALUES (?, ?, ?)"#,
                    vec![s(user_id), s(current), i(ms(self.now()))],
                )
                .await?;
        }
        Ok(())
    }

    async fn set_password(&self, user_id: &str, password: &str) -> Result<()> {
        self.check_and_rotate_history(user_id, password).await?;
        let hash = self.inner.hasher.hash(password)?;
        self.db()
            .exec(
                r#"UPDATE "_objectos_auth_credential" SET "password_hash" = ?, "failed_count" = 0, "locked_until" = NULL, "updated_at" = ? WHERE "user_id" = ?"#,
                vec![s(hash), i(ms(self.now())), s(user_id)],
            )
            .await?;
        // A new password (proved by the current one or the reset mail) lifts a sign-in lockout.
        if let Some(c) = self.credential_by("user_id", user_id).await? {
            self.clear_failures(&crypto::sha256_hex(&c.email)).await?;
        }
        Ok(())
    }

    /// `POST /change-password`: needs the current password; every other session is revoked.
    pub async fn change_password(
        &self,
        who: &Resolved,
        current: &str,
        new: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        let cred = self
            .credential_by("user_id", &who.user_id)
            .await?
            .ok_or(AuthError::Unauthenticated)?;
        if !self.inner.hasher.verify(current, &cred.password_hash) {
            return Err(AuthError::InvalidCredentials);
        }
        self.check_policy(new)?;
        self.set_password(&who.user_id, new).await?;
        let revoked = self
            .revoke_sessions(&who.user_id, who.session_id.as_deref())
            .await?;
        self.publish(
            events::PASSWORD_CHANGED,
            Some(&who.user_id),
            Some(&who.email),
            who.tenant.as_deref(),
            meta,
            AuthDetails {
                revoked_sessions: Some(revoked),
                ..AuthDetails::default()
            },
        )
        .await;
        Ok(())
    }

    /// `POST /forget-password`: mails a reset link when the email is known; silent otherwise.
    pub async fn forget_password(&self, email: &str, meta: &RequestMeta) -> Result<()> {
        let Ok(email) = normalize_email(email) else {
            return Ok(());
        };
        let cred = self.credential_by("email", &email).await?;
        // Known or not, the same work: a token, its digest, one insert and one prune, so the
        // response time does not say whether the address has an account. An unknown address
        // gets a decoy row, owned by nobody and expired on arrival, which can never reset anything.
        let token = crypto::random_token()?;
        let now = ms(self.now());
        let (owner, expires) = match &cred {
            Some(c) => (
                c.user_id.as_str(),
                now + minutes(self.inner.config.reset_token_minutes),
            ),
            None => ("", now),
        };
        self.db()
            .exec(
                r#"INSERT INTO "_objectos_auth_reset" ("token_hash", "user_id", "expires_at") VALUES (?, ?, ?)"#,
                vec![s(crypto::sha256_hex(&token)), s(owner), i(expires)],
            )
            .await?;
        self.db()
            .exec(
                r#"DELETE FROM "_objectos_auth_reset" WHERE "expires_at" < ?"#,
                vec![i(now - crate::verification::KEEP_EXPIRED_MS)],
            )
            .await?;
        if cred.is_none() {
            tracing::info!("Password reset requested for an unknown email; nothing sent.");
            return Ok(());
        }
        let base = &self.inner.config.reset_url;
        let sep = if base.contains('?') { '&' } else { '?' };
        let link = format!("{base}{sep}token={token}");
        self.mail(Mail {
            to: email,
            subject: "Reset your password".into(),
            body: format!(
                "Someone asked to reset your password. Open this link within {} minutes to choose a new one: {link}\nIf it was not you, ignore this mail.",
                self.inner.config.reset_token_minutes
            ),
            link: Some(link),
        })?;
        let _ = meta;
        Ok(())
    }

    /// `POST /reset-password`: consumes the token once, sets the password, revokes every session.
    pub async fn reset_password(&self, token: &str, new: &str, meta: &RequestMeta) -> Result<()> {
        self.check_policy(new)?;
        let hash = crypto::sha256_hex(token);
        let now = ms(self.now());
        let Some(row) = self
            .db()
            .one(
                r#"SELECT "user_id", "expires_at", "used_at" FROM "_objectos_auth_reset" WHERE "token_hash" = ?"#,
                vec![s(&hash)],
            )
            .await?
        else {
            return Err(AuthError::InvalidResetToken);
        };
        if get_oi(&row, 2).is_some() || get_i(&row, 1)? <= now {
            return Err(AuthError::InvalidResetToken);
        }
        // The conditional update makes the token single-use even under concurrent resets.
        let claimed = self
            .db()
            .exec(
                r#"UPDATE "_objectos_auth_reset" SET "used_at" = ? WHERE "token_hash" = ? AND "used_at" IS NULL"#,
                vec![i(now), s(&hash)],
            )
            .await?;
        if claimed != 1 {
            return Err(AuthError::InvalidResetToken);
        }
        let user_id = get_s(&row, 0)?;
        self.set_password(&user_id, new).await?;
        self.revoke_sessions(&user_id, None).await?;
        let cred = self.credential_by("user_id", &user_id).await?;
        let org = self.org_of(&user_id).await?;
        self.publish(
            events::PASSWORD_RESET,
            Some(&user_id),
            cred.as_ref().map(|c| c.email.as_str()),
            org.as_deref(),
            meta,
            AuthDetails::default(),
        )
        .await;
        Ok(())
    }

    // ----- two-factor -----

    async fn totp_row(&self, user_id: &str) -> Result<Option<(String, bool, Option<i64>)>> {
        Ok(match self
            .db()
            .one(
                r#"SELECT "secret", "enabled", "last_step" FROM "_objectos_auth_totp" WHERE "user_id" = ?"#,
                vec![s(user_id)],
            )
            .await?
        {
            Some(r) => Some((get_s(&r, 0)?, get_i(&r, 1)? != 0, get_oi(&r, 2))),
            None => None,
        })
    }

    async fn totp_enabled(&self, user_id: &str) -> Result<bool> {
        // Only the flag: the (possibly encrypted) secret is read where a code is checked.
        Ok(self
            .db()
            .one(
                r#"SELECT "enabled" FROM "_objectos_auth_totp" WHERE "user_id" = ?"#,
                vec![s(user_id)],
            )
            .await?
            .map(|r| get_i(&r, 0))
            .transpose()?
            .is_some_and(|on| on != 0))
    }

    fn totp(secret_b32: &str) -> Result<totp_rs::Totp> {
        let secret = totp_rs::Secret::try_from_base32(secret_b32)
            .map_err(|e| AuthError::Internal(format!("stored TOTP secret is unreadable: {e:?}")))?;
        totp_rs::Builder::new()
            .with_secret(secret)
            .build()
            .map_err(|e| AuthError::Internal(format!("TOTP setup failed: {e:?}")))
    }

    /// Checks a TOTP code (each time step accepted once) and advances the replay guard.
    async fn check_totp(&self, user_id: &str, code: &str) -> Result<bool> {
        let Some((stored, _, last_step)) = self.totp_row(user_id).await? else {
            return Ok(false);
        };
        let secret = self.reveal_totp_secret(user_id, &stored).await?;
        let totp = Self::totp(&secret)?;
        let now = u64::try_from(self.now().timestamp()).unwrap_or(0);
        let Some(step) = totp.check(code, now) else {
            return Ok(false);
        };
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        if last_step.is_some_and(|l| step <= l) {
            return Ok(false);
        }
        let n = self
            .db()
            .exec(
                r#"UPDATE "_objectos_auth_totp" SET "last_step" = ? WHERE "user_id" = ? AND ("last_step" IS NULL OR "last_step" < ?)"#,
                vec![i(step), s(user_id), i(step)],
            )
            .await?;
        Ok(n == 1)
    }

    /// A TOTP code, or else a recovery code (consumed).
    async fn check_second_factor(&self, user_id: &str, code: &str) -> Result<bool> {
        if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            return self.check_totp(user_id, code).await;
        }
        let normalized: String = code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_lowercase();
        let n = self
            .db()
            .exec(
                r#"UPDATE "_objectos_auth_recovery" SET "used_at" = ? WHERE "user_id" = ? AND "code_hash" = ? AND "used_at" IS NULL"#,
                vec![i(ms(self.now())), s(user_id), s(crypto::sha256_hex(&normalized))],
            )
            .await?;
        Ok(n == 1)
    }

    /// `POST /two-factor/enable`: after the password, issues a new secret and recovery codes.
    /// The secret is shown only here; it is active after the first `verify-totp`.
    pub async fn totp_enable(&self, who: &Resolved, password: &str) -> Result<Json> {
        self.verify_password_of(who, password).await?;
        let secret = totp_rs::Secret::from(crypto::random_bytes::<20>()?.to_vec());
        let secret_b32 = secret.to_base32();
        let stored = self.seal_totp_secret(&who.user_id, &secret_b32)?;
        let now = ms(self.now());
        self.db()
            .exec(
                r#"DELETE FROM "_objectos_auth_totp" WHERE "user_id" = ?"#,
                vec![s(&who.user_id)],
            )
            .await?;
        self.db()
            .exec(
                r#"INSERT INTO "_objectos_auth_totp" ("user_id", "secret", "enabled", "created_at") VALUES (?, ?, 0, ?)"#,
                vec![s(&who.user_id), s(stored), i(now)],
            )
            .await?;
        let codes = self.new_recovery_codes(&who.user_id).await?;
        let issuer = &self.inner.config.totp_issuer;
        let uri = format!(
            "otpauth://totp/{}:{}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits=6&period=30",
            pct(issuer),
            pct(&who.email),
            pct(issuer)
        );
        Ok(json!({ "totpURI": uri, "secret": secret_b32, "backupCodes": codes }))
    }

    async fn new_recovery_codes(&self, user_id: &str) -> Result<Vec<String>> {
        self.db()
            .exec(
                r#"DELETE FROM "_objectos_auth_recovery" WHERE "user_id" = ?"#,
                vec![s(user_id)],
            )
            .await?;
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            let raw = hex::encode(crypto::random_bytes::<5>()?);
            self.db()
                .exec(
                    r#"INSERT INTO "_objectos_auth_recovery" ("user_id", "code_hash") VALUES (?, ?)"#,
                    vec![s(user_id), s(crypto::sha256_hex(&raw))],
                )
                .await?;
            codes.push(format!("{}-{}", &raw[..5], &raw[5..]));
        }
        Ok(codes)
    }

    /// `POST /two-factor/verify-totp`: checks a code; the first success turns two-factor on.
    pub async fn totp_verify(&self, who: &Resolved, code: &str, meta: &RequestMeta) -> Result<()> {
        let Some((_, enabled, _)) = self.totp_row(&who.user_id).await? else {
            return Err(AuthError::BadRequest(
                "Two-factor authentication is not set up; call /two-factor/enable first.".into(),
            ));
        };
        if !self.check_totp(&who.user_id, code.trim()).await? {
            return Err(AuthError::InvalidTwoFactorCode);
        }
        if !enabled {
            self.db()
                .exec(
                    r#"UPDATE "_objectos_auth_totp" SET "enabled" = 1 WHERE "user_id" = ?"#,
                    vec![s(&who.user_id)],
                )
                .await?;
            self.publish(
                events::MFA_ENABLED,
                Some(&who.user_id),
                Some(&who.email),
                who.tenant.as_deref(),
                meta,
                AuthDetails {
                    method: Some("totp".to_owned()),
                    ..AuthDetails::default()
                },
            )
            .await;
        }
        Ok(())
    }

    /// `POST /two-factor/disable`: after the password, removes the secret and recovery codes.
    pub async fn totp_disable(
        &self,
        who: &Resolved,
        password: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        self.verify_password_of(who, password).await?;
        self.db()
            .exec(
                r#"DELETE FROM "_objectos_auth_totp" WHERE "user_id" = ?"#,
                vec![s(&who.user_id)],
            )
            .await?;
        self.db()
            .exec(
                r#"DELETE FROM "_objectos_auth_recovery" WHERE "user_id" = ?"#,
                vec![s(&who.user_id)],
            )
            .await?;
        self.publish(
            events::MFA_DISABLED,
            Some(&who.user_id),
            Some(&who.email),
            who.tenant.as_deref(),
            meta,
            AuthDetails {
                method: Some("totp".to_owned()),
                ..AuthDetails::default()
            },
        )
        .await;
        Ok(())
    }

    async fn verify_password_of(&self, who: &Resolved, password: &str) -> Result<()> {
        let cred = self
            .credential_by("user_id", &who.user_id)
            .await?
            .ok_or(AuthError::Unauthenticated)?;
        if self.inner.hasher.verify(password, &cred.password_hash) {
            Ok(())
        } else {
            Err(AuthError::InvalidCredentials)
        }
    }

    // ----- API keys -----

    /// Creates an API key; the key is returned only here and stored as its SHA-256.
    pub async fn create_api_key(
        &self,
        who: &Resolved,
        name: &str,
        scopes: Vec<String>,
        expires_in_days: Option<u32>,
        meta: &RequestMeta,
    ) -> Result<Json> {
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(AuthError::InvalidBody(
                "`name` must be 1 to 200 characters".into(),
            ));
        }
        let scopes = if scopes.is_empty() {
            vec!["read".to_owned(), "write".to_owned()]
        } else {
            scopes
        };
        if let Some(bad) = scopes
            .iter()
            .find(|s| !matches!(s.as_str(), "read" | "write" | "admin"))
        {
            return Err(AuthError::InvalidBody(format!(
                "unknown scope `{bad}` in `scopes`; expected read, write or admin"
            )));
        }
        if scopes.iter().any(|s| s == "admin") && !who.is_admin {
            return Err(AuthError::Forbidden(
                "Only administrators may create admin-scoped keys.".into(),
            ));
        }
        if who.api_key_id.is_some() {
            return Err(AuthError::Forbidden(
                "API keys cannot create API keys; sign in.".into(),
            ));
        }
        let key = format!("{API_KEY_PREFIX}{}", crypto::random_token()?);
        let id = uuid::Uuid::now_v7().simple().to_string();
        let prefix: String = key.chars().take(API_KEY_PREFIX.len() + 6).collect();
        let now = ms(self.now());
        let expires = expires_in_days.map(|d| now + i64::from(d) * 86_400_000);
        let scopes_json =
            serde_json::to_string(&scopes).map_err(|e| AuthError::Internal(e.to_string()))?;
        self.db()
            .exec(
                r#"INSERT INTO "_objectos_auth_api_key" ("id", "user_id", "name", "prefix", "key_hash", "scopes", "org_id", "created_at", "expires_at") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"#,
                vec![s(&id), s(&who.user_id), s(name), s(&prefix), s(crypto::sha256_hex(&key)), s(scopes_json), os(who.tenant.clone()), i(now), oi(expires)],
            )
            .await?;
        self.publish(
            events::API_KEY_CREATED,
            Some(&who.user_id),
            Some(&who.email),
            who.tenant.as_deref(),
            meta,
            AuthDetails {
                api_key_id: Some(id.to_string()),
                scopes: Some(scopes.clone()),
                ..AuthDetails::default()
            },
        )
        .await;
        Ok(json!({
            "id": id, "name": name, "key": key, "start": prefix, "scopes": scopes,
            "createdAt": iso(now), "expiresAt": expires.map(iso),
        }))
    }

    /// The caller's keys (never the key itself).
    pub async fn list_api_keys(&self, who: &Resolved) -> Result<Json> {
        let rows = self
            .db()
            .all(
                r#"SELECT "id", "name", "prefix", "scopes", "created_at", "last_used_at", "expires_at", "revoked_at" FROM "_objectos_auth_api_key" WHERE "user_id" = ? ORDER BY "created_at", "id""#,
                vec![s(&who.user_id)],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(json!({
                "id": get_s(&r, 0)?,
                "name": get_s(&r, 1)?,
                "start": get_s(&r, 2)?,
                "scopes": serde_json::from_str::<Json>(&get_s(&r, 3)?).unwrap_or(Json::Null),
                "createdAt": iso(get_i(&r, 4)?),
                "lastUsedAt": get_oi(&r, 5).map(iso),
                "expiresAt": get_oi(&r, 6).map(iso),
                "revoked": get_oi(&r, 7).is_some(),
            }));
        }
        Ok(Json::Array(out))
    }

    /// Revokes one of the caller's keys (administrators may revoke any key of their active
    /// organization; another organization's key is answered like an unknown one).
    pub async fn revoke_api_key(&self, who: &Resolved, id: &str, meta: &RequestMeta) -> Result<()> {
        let n = if let (true, Some(org)) = (who.is_admin, who.tenant.as_deref()) {
            self.db()
                .exec(
                    r#"UPDATE "_objectos_auth_api_key" SET "revoked_at" = ? WHERE "id" = ? AND ("org_id" = ? OR "user_id" = ?) AND "revoked_at" IS NULL"#,
                    vec![i(ms(self.now())), s(id), s(org), s(&who.user_id)],
                )
                .await?
        } else {
            self.db()
                .exec(
                    r#"UPDATE "_objectos_auth_api_key" SET "revoked_at" = ? WHERE "id" = ? AND "user_id" = ? AND "revoked_at" IS NULL"#,
                    vec![i(ms(self.now())), s(id), s(&who.user_id)],
                )
                .await?
        };
        if n == 0 {
            return Err(AuthError::NotFound(format!(
                "API key {id} not found (or already revoked)"
            )));
        }
        self.publish(
            events::API_KEY_REVOKED,
            Some(&who.user_id),
            Some(&who.email),
            who.tenant.as_deref(),
            meta,
            AuthDetails {
                api_key_id: Some(id.to_string()),
                ..AuthDetails::default()
            },
        )
        .await;
        Ok(())
    }

    async fn resolve_api_key(&self, key: &str, meta: &RequestMeta) -> Result<Option<Resolved>> {
        let hash = crypto::sha256_hex(key);
        // One query: the key, the owner's email, and the owner's role in the key's organization.
        let Some(row) = self
            .db()
            .one(
                r#"SELECT k."id", k."key_hash", k."user_id", k."scopes", k."org_id", k."expires_at", k."revoked_at", c."email", m."role" FROM "_objectos_auth_api_key" k JOIN "_objectos_auth_credential" c ON c."user_id" = k."user_id" LEFT JOIN "_objectos_auth_member" m ON m."org_id" = k."org_id" AND m."user_id" = k."user_id" WHERE k."key_hash" = ?"#,
                vec![s(&hash)],
            )
            .await?
        else {
            return Ok(None);
        };
        let now = ms(self.now());
        if !crypto::ct_eq(&get_s(&row, 1)?, &hash)
            || get_oi(&row, 6).is_some()
            || get_oi(&row, 5).is_some_and(|e| e <= now)
        {
            return Ok(None);
        }
        // A key acts in the organization it was created in, and stops working once its owner
        // is no longer a member there.
        let (Some(tenant), Some(role)) = (get_os(&row, 4), get_os(&row, 8)) else {
            return Ok(None);
        };
        let id = get_s(&row, 0)?;
        let user_id = get_s(&row, 2)?;
        let email = get_s(&row, 7)?;
        let scopes: Vec<String> = serde_json::from_str(&get_s(&row, 3)?).unwrap_or_default();
        self.db()
            .exec(
                r#"UPDATE "_objectos_auth_api_key" SET "last_used_at" = ? WHERE "id" = ?"#,
                vec![i(now), s(&id)],
            )
            .await?;
        self.publish(
            events::API_KEY_USED,
            Some(&user_id),
            Some(&email),
            Some(&tenant),
            meta,
            AuthDetails {
                api_key_id: Some(id.to_string()),
                ..AuthDetails::default()
            },
        )
        .await;
        Ok(Some(Resolved {
            // Without the `admin` scope an administrator's key carries no administrator rights.
            is_admin: manages(&role) && scopes.iter().any(|s| s == "admin"),
            user_id,
            email,
            tenant: Some(tenant),
            org_role: Some(role),
            session_id: None,
            api_key_id: Some(id),
            scopes,
        }))
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

/// Percent-encodes a label for the otpauth URI.
fn pct(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
