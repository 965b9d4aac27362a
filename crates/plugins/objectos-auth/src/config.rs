//! The plugin's settings (`com.objectos.auth` in the kernel configuration, camelCase keys).

use objectos_spec::security::{PasswordPolicy, SessionPolicy};
use serde::{Deserialize, Serialize};

use crate::error::AuthError;

/// Account lockout after repeated failed sign-ins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct LockoutConfig {
    /// Failed sign-ins in a row that lock the account.
    pub max_failed_attempts: u32,
    /// How long the account stays locked.
    pub lock_minutes: u32,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self {
            max_failed_attempts: 5,
            lock_minutes: 15,
        }
    }
}

/// Token buckets on the public auth routes (sign-in, sign-up, forget/reset password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Requests per minute (and burst size) per client IP.
    pub per_ip_per_minute: u32,
    /// Requests per minute (and burst size) per email address.
    pub per_email_per_minute: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            per_ip_per_minute: 30,
            per_email_per_minute: 10,
        }
    }
}

/// Argon2id cost parameters (OWASP's recommended minimum by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Argon2Config {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// All settings of the auth plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct AuthConfig {
    pub password_policy: PasswordPolicy,
    /// Idle and absolute session timeouts, in minutes.
    pub session_policy: SessionPolicy,
    pub lockout: LockoutConfig,
    pub rate_limit: RateLimitConfig,
    pub argon2: Argon2Config,
    /// Whether anyone may sign up once the owner exists (new users join the owner's organization
    /// as members). Off by default: administrators create accounts.
    pub allow_sign_up: bool,
    /// Adds `Secure` to the session cookie (set it behind HTTPS).
    pub cookie_secure: bool,
    /// Lifetime of a password reset link, in minutes.
    pub reset_token_minutes: u32,
    /// The page the reset link points at; `?token=` is appended.
    pub reset_url: String,
    /// Issuer shown by authenticator apps.
    pub totp_issuer: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            password_policy: PasswordPolicy::default(),
            session_policy: SessionPolicy::default(),
            lockout: LockoutConfig::default(),
            rate_limit: RateLimitConfig::default(),
            argon2: Argon2Config::default(),
            allow_sign_up: false,
            cookie_secure: false,
            reset_token_minutes: 30,
            reset_url: "/reset-password".to_owned(),
            totp_issuer: "ObjectOS".to_owned(),
        }
    }
}

impl AuthConfig {
    /// Every problem of the configuration at once, each naming its key.
    pub fn validate(&self) -> Result<(), AuthError> {
        let mut problems: Vec<String> = self
            .session_policy
            .validate()
            .into_iter()
            .map(|(k, m)| format!("sessionPolicy.{k}: {m}"))
            .collect();
        if self.password_policy.min_length == 0 {
            problems.push("passwordPolicy.minLength: must be at least 1".into());
        }
        if self.lockout.max_failed_attempts == 0 || self.lockout.lock_minutes == 0 {
            problems
                .push("lockout: maxFailedAttempts and lockMinutes must both be at least 1".into());
        }
        if self.rate_limit.enabled
            && (self.rate_limit.per_ip_per_minute == 0 || self.rate_limit.per_email_per_minute == 0)
        {
            problems.push(
                "rateLimit: perIpPerMinute and perEmailPerMinute must be at least 1 when enabled"
                    .into(),
            );
        }
        if self.reset_token_minutes == 0 {
            problems.push("resetTokenMinutes: must be at least 1".into());
        }
        if let Err(e) = crate::crypto::PasswordHasher::new(&self.argon2) {
            problems.push(format!("argon2: {e}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(AuthError::Config(problems.join("; ")))
        }
    }
}
