//! The auth service: accounts, sessions, lockout, rate limits, password change and reset, TOTP,
//! recovery codes, API keys and organizations. HTTP handlers and the CLI call it; it publishes the
//! `auth.*` / `security.*` events (payloads never carry a secret).
//!
//! This file holds the service, its construction, events, rate limits and shared helpers; each
//! area is a submodule: `accounts`, `sessions`, `passwords`, `totp` and `api_keys`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use objectos_data::{DataEngine, Record};
use objectos_kernel::{Clock, PluginHandle};
use objectos_spec::event::auth::{AuthDetails, AuthEvent};
use serde_json::{Value as Json, json};

use crate::config::AuthConfig;
use crate::crypto::{self, PasswordHasher};
use crate::error::{AuthError, Result};
use crate::mailer::{Mail, Mailer};
use crate::ratelimit::RateLimiter;
use crate::secretbox::SecretKey;
use crate::session_cache::SessionCache;
use crate::sso::Sso;
use crate::store::Db;

mod accounts;
mod api_keys;
mod passwords;
mod sessions;
mod totp;

/// Event names this plugin publishes (declared in the manifest's `emits`); they and their
/// payload ([`AuthEvent`]) live in `objectos-spec`, so subscribers need not depend on this crate.
pub use objectos_spec::event::auth as events;
pub use sessions::SESSIONS_ACTIVE;

/// Prefix of API keys, so the hoop can tell them from session tokens.
pub const API_KEY_PREFIX: &str = "osk_";

/// Roles in an organization that administer it (and make the member an administrator of the
/// data while it is the active organization).
pub(crate) fn manages(role: &str) -> bool {
    matches!(role, "owner" | "admin")
}

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
        // Whether a missing key deserves a warning depends on the runtime mode, which the plugin
        // knows and a host opening the service directly may not: see `AuthPlugin::start`.
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
        let db_epoch = db.epoch_handle();
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
                sessions: SessionCache::new(config_cache_seconds, db_epoch),
            }),
        })
    }

    /// Joins the cluster's invalidation channel (the `cache` service): sessions revoked, users
    /// banned, roles changed here are dropped from the other nodes' session caches, and theirs
    /// from ours (see `session_cache.rs`). The plugin calls it at start when a cache plugin is
    /// installed; without it the cache is per node, as before. Needs a Tokio runtime.
    pub fn attach_cache(&self, cache: Arc<dyn objectos_kernel::contracts::Cache>) {
        self.inner.sessions.attach(cache);
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

    /// The organization a user's account mails belong to: the oldest membership (the one a
    /// session starts in), none for a user without one or when it cannot be read (a mail is
    /// never held back for it).
    pub(crate) async fn primary_org(&self, user_id: &str) -> Option<String> {
        let rows = self
            .db()
            .all(
                r#"SELECT "org_id" FROM "_objectos_auth_member" WHERE "user_id" = ? ORDER BY "created_at", "org_id""#,
                vec![crate::store::s(user_id)],
            )
            .await
            .ok()?;
        rows.first().and_then(|r| crate::store::get_s(r, 0).ok())
    }

    /// Hands one mail to the mailer; a refusal is an internal error (the mail's content, which
    /// carries a token, is never part of it).
    pub(crate) fn mail(&self, mail: Mail) -> Result<()> {
        self.inner
            .mailer
            .send(mail)
            .map_err(|e| AuthError::Internal(format!("the mailer refused a mail: {e}")))
    }

    /// Whether TOTP secrets are encrypted at rest (a key was configured).
    pub fn encrypts_totp_secrets(&self) -> bool {
        self.inner.secret_key.is_some()
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
        // Every sign-in outcome passes through here as its event, so the counters sit here too
        // (with or without an event bus).
        match name {
            events::LOGIN => metrics::counter!("objectos_auth_sign_ins_total").increment(1),
            events::LOGIN_FAILED => {
                metrics::counter!("objectos_auth_sign_in_failures_total").increment(1);
            }
            events::ACCOUNT_LOCKED => {
                metrics::counter!("objectos_auth_lockouts_total").increment(1)
            }
            _ => {}
        }
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
}
