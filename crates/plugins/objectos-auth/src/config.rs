//! The plugin's settings: the `auth:` section of `objectos.yml` ([`CONFIG_SECTION`]), handed to
//! the plugin as its kernel configuration (`com.objectos.auth`), camelCase keys.

use objectos_spec::security::{PasswordPolicy, SessionPolicy};
use objectos_spec::settings::{ConfigSection, PluginSettings, SettingsProblem};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::AuthError;

/// A client secret: `Debug`, `Serialize` and `--print-config` never show it.
pub use objectos_spec::settings::Secret;

/// The `auth:` section of `objectos.yml`, typed as [`AuthConfig`].
pub const CONFIG_SECTION: ConfigSection =
    ConfigSection::of::<AuthConfig>("auth", crate::plugin::PLUGIN_ID);

/// Account lockout after repeated failed sign-ins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

/// Organizations (`organization` in the auth configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct OrganizationConfig {
    /// Whether signed-in users may create organizations (`POST /organization/create`).
    pub allow_user_to_create: bool,
    /// How many organizations one user may own (be an `owner` of) before creating more is refused.
    pub limit_per_user: u32,
    /// How long an invitation stays open, in hours.
    pub invitation_expires_hours: u32,
    /// The page the invitation mail links to; `?invitationId=` is appended.
    pub invitation_url: String,
    /// Accepting an invitation needs a verified email address (`emailVerified`), so an account
    /// registered with someone else's address cannot take their invitations.
    pub require_email_verification_on_invitation: bool,
}

impl Default for OrganizationConfig {
    fn default() -> Self {
        Self {
            allow_user_to_create: true,
            limit_per_user: 10,
            invitation_expires_hours: 48,
            invitation_url: "/accept-invitation".to_owned(),
            require_email_verification_on_invitation: false,
        }
    }
}

/// Email verification (`emailVerification` in the auth configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct EmailVerificationConfig {
    /// Email/password sign-in needs a verified address (`403 EMAIL_NOT_VERIFIED` otherwise), and
    /// public sign-up mails a verification link instead of opening a session.
    pub required: bool,
    /// Lifetime of a verification link, in minutes.
    pub token_minutes: u32,
    /// Where the verification link points; `?token=` (and `callbackURL`) are appended.
    pub url: String,
}

impl Default for EmailVerificationConfig {
    fn default() -> Self {
        Self {
            required: false,
            token_minutes: 24 * 60,
            url: "/api/v1/auth/verify-email".to_owned(),
        }
    }
}

/// All settings of the auth plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
    /// Single sign-on through OpenID Connect and OAuth2 providers (none by default).
    pub sso: SsoConfig,
    /// Organization creation limits and invitations.
    pub organization: OrganizationConfig,
    /// Email verification links and whether sign-in needs a verified address.
    pub email_verification: EmailVerificationConfig,
    /// The environment variable holding the 32-byte key (hex or base64) that encrypts TOTP
    /// secrets at rest. Unset: secrets are stored unencrypted, with a warning at start in
    /// production mode (an info line in development and test).
    pub secret_key_env: String,
    /// Seconds a resolved session token is kept in memory (0 turns the cache off). Sign-out,
    /// revocation, bans, role and membership changes made through this node take effect at
    /// once; made on another node, or by editing the auth tables directly, within this time.
    pub session_cache_seconds: u32,
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
            sso: SsoConfig::default(),
            organization: OrganizationConfig::default(),
            email_verification: EmailVerificationConfig::default(),
            secret_key_env: "OBJECTOS_SECRET_KEY".to_owned(),
            session_cache_seconds: 5,
        }
    }
}

impl PluginSettings for AuthConfig {
    fn problems(&self) -> Vec<SettingsProblem> {
        self.problem_lines()
            .iter()
            .map(|line| SettingsProblem::from_line(line))
            .collect()
    }
}

impl AuthConfig {
    /// Every problem of the configuration at once, each naming its key.
    pub fn validate(&self) -> Result<(), AuthError> {
        let problems = self.problem_lines();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(AuthError::Config(problems.join("; ")))
        }
    }

    /// Every problem as `key: message`, the key relative to the section.
    fn problem_lines(&self) -> Vec<String> {
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
        if self.session_cache_seconds > 300 {
            problems.push(
                "sessionCacheSeconds: at most 300 (it bounds how long a revocation made on another node goes unseen)"
                    .into(),
            );
        }
        if let Err(e) = crate::crypto::PasswordHasher::new(&self.argon2) {
            problems.push(format!("argon2: {e}"));
        }
        let org = &self.organization;
        if org.limit_per_user == 0 {
            problems.push(
                "organization.limitPerUser: must be at least 1 (set allowUserToCreate: false to stop users creating organizations)".into(),
            );
        }
        if !(1..=24 * 365).contains(&org.invitation_expires_hours) {
            problems.push("organization.invitationExpiresHours: must be 1 to 8760".into());
        }
        if org.invitation_url.trim().is_empty() {
            problems.push("organization.invitationUrl: must not be empty".into());
        }
        let ev = &self.email_verification;
        if !(1..=30 * 24 * 60).contains(&ev.token_minutes) {
            problems.push("emailVerification.tokenMinutes: must be 1 to 43200".into());
        }
        if ev.url.trim().is_empty() {
            problems.push("emailVerification.url: must not be empty".into());
        }
        let var = self.secret_key_env.trim();
        if var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            problems.push(
                "secretKeyEnv: must be an environment variable name (letters, digits and _)".into(),
            );
        }
        self.sso.check(&mut problems);
        problems
    }
}

/// How a single sign-on provider is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenID Connect: endpoints and signing keys come from the issuer's discovery document, and
    /// the ID token is verified (signature, issuer, audience, nonce, expiry).
    Oidc,
    /// Plain OAuth2 (social providers such as GitHub): explicit endpoints, and the user comes from
    /// the user-info endpoint called with the access token.
    Oauth2,
}

/// Where an OAuth2 provider's user-info answer keeps the user's fields (top-level keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ClaimMapping {
    /// The stable user id (a string or a number, as GitHub's `id`).
    pub subject: String,
    pub email: String,
    /// The boolean saying the provider verified the email; `null` when the provider has none.
    pub email_verified: Option<String>,
    pub name: String,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            subject: "sub".to_owned(),
            email: "email".to_owned(),
            email_verified: Some("email_verified".to_owned()),
            name: "name".to_owned(),
        }
    }
}

/// One single sign-on provider (`sso.providers[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SsoProvider {
    /// The id in routes (`/callback/{id}`) and in `POST /sign-in/social {provider}`: lowercase
    /// letters, digits, `-` and `_`.
    pub id: String,
    /// The label a sign-in page shows (defaults to the id).
    pub name: Option<String>,
    pub kind: Option<ProviderKind>,
    /// `oidc`: the issuer URL, exactly as the provider's discovery document states it.
    pub issuer: Option<String>,
    /// `oauth2`: the authorization endpoint.
    pub authorization_url: Option<String>,
    /// `oauth2`: the token endpoint.
    pub token_url: Option<String>,
    /// `oauth2`: the user-info endpoint (called with the access token).
    pub user_info_url: Option<String>,
    pub client_id: String,
    /// The client secret in the file; prefer `clientSecretEnv`.
    pub client_secret: Option<Secret>,
    /// The name of an environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// Scopes to request. Default: `openid email profile` for `oidc` (`openid` is always sent),
    /// none for `oauth2`.
    pub scopes: Option<Vec<String>>,
    /// The redirect URI registered at the provider; default `{sso.baseUrl}/api/v1/auth/callback/{id}`.
    pub redirect_uri: Option<String>,
    /// Whether a sign-in with an unknown identity and email creates a user (off by default).
    pub allow_sign_up: bool,
    /// Whether a sign-in with an unknown identity whose verified email belongs to an existing
    /// user links the identity to that user (off by default).
    pub link_by_email: bool,
    /// Treats the provider's email as verified even without an `email_verified` claim (only for
    /// providers that hand out verified addresses only).
    pub trust_email: bool,
    /// `oauth2`: where the user-info answer keeps the fields (default: the OIDC claim names).
    pub claims: Option<ClaimMapping>,
    /// When set, sign-up and linking (by email or `link-social`) need a verified email whose
    /// domain is one of these (exact match, case-insensitive: `example.com` does not admit
    /// `sub.example.com`). Unset: every domain.
    pub allowed_email_domains: Option<Vec<String>>,
}

impl SsoProvider {
    /// The label for sign-in pages.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    /// The scopes to request.
    pub fn effective_scopes(&self) -> Vec<String> {
        match (&self.scopes, self.kind) {
            (Some(s), _) => s.clone(),
            (None, Some(ProviderKind::Oidc)) => {
                vec!["openid".into(), "email".into(), "profile".into()]
            }
            (None, _) => Vec::new(),
        }
    }

    /// The client secret from the file or the environment (`None` for a public client).
    pub fn resolve_secret(&self) -> Result<Option<Secret>, String> {
        match (&self.client_secret, &self.client_secret_env) {
            (Some(_), Some(_)) => {
                Err("clientSecret and clientSecretEnv: give one, not both".into())
            }
            (Some(s), None) => Ok(Some(s.clone())),
            (None, Some(var)) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(Secret::new(v.trim()))),
                _ => Err(format!(
                    "clientSecretEnv: the environment variable `{var}` is not set or empty"
                )),
            },
            (None, None) => Ok(None),
        }
    }

    /// The redirect URI registered at the provider.
    pub fn effective_redirect_uri(&self, base_url: Option<&str>) -> Option<String> {
        self.redirect_uri.clone().or_else(|| {
            base_url.map(|b| {
                format!(
                    "{}{}/callback/{}",
                    b.trim_end_matches('/'),
                    crate::http::AUTH_BASE,
                    self.id
                )
            })
        })
    }
}

/// Single sign-on (`sso` in the auth configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SsoConfig {
    /// The public URL of this server as browsers reach it (`https://crm.example.com`); the
    /// default redirect URIs hang off it, and `callbackURL`s on its origin are allowed.
    pub base_url: Option<String>,
    /// Further origins `callbackURL` may point at (a front end served elsewhere).
    pub trusted_origins: Vec<String>,
    /// How long a started sign-in may take before its state expires.
    pub state_minutes: u32,
    pub providers: Vec<SsoProvider>,
}

impl Default for SsoConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            trusted_origins: Vec::new(),
            state_minutes: 10,
            providers: Vec::new(),
        }
    }
}

/// A provider endpoint (issuer, authorization, token, user-info, JWKS): an [`http_url`] that is
/// `https`, or plain `http` only on a loopback host (127.0.0.1, ::1, localhost), where nothing
/// on the network can read or change the traffic.
pub(crate) fn provider_url(raw: &str) -> Result<openidconnect::url::Url, String> {
    let url = http_url(raw)?;
    let loopback = match url.host() {
        Some(openidconnect::url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(openidconnect::url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(openidconnect::url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if url.scheme() == "https" || loopback {
        Ok(url)
    } else {
        Err(format!(
            "`{raw}` must use https (plain http only on 127.0.0.1, ::1 or localhost)"
        ))
    }
}

/// An absolute `http(s)` URL without credentials or fragment.
pub(crate) fn http_url(raw: &str) -> Result<openidconnect::url::Url, String> {
    let url =
        openidconnect::url::Url::parse(raw).map_err(|e| format!("`{raw}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{raw}` must be an http or https URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(format!("`{raw}` must not carry credentials or a fragment"));
    }
    Ok(url)
}

impl SsoConfig {
    /// Adds every problem to `problems`, each prefixed with its key (`sso.providers[0].issuer`).
    pub(crate) fn check(&self, problems: &mut Vec<String>) {
        let mut bad = |key: String, msg: String| problems.push(format!("sso.{key}: {msg}"));
        if let Some(base) = &self.base_url
            && let Err(e) = http_url(base)
        {
            bad("baseUrl".into(), e);
        }
        if self.base_url.is_none() && self.providers.iter().any(|p| p.redirect_uri.is_none()) {
            bad(
                "baseUrl".into(),
                "required when a provider has no redirectUri: the public URL of this server, such as https://crm.example.com".into(),
            );
        }
        for (i, origin) in self.trusted_origins.iter().enumerate() {
            match http_url(origin) {
                Ok(u) if u.path() == "/" && u.query().is_none() => {}
                Ok(_) => bad(
                    format!("trustedOrigins[{i}]"),
                    format!("`{origin}` must be an origin (scheme, host and port, no path)"),
                ),
                Err(e) => bad(format!("trustedOrigins[{i}]"), e),
            }
        }
        if self.state_minutes == 0 {
            bad("stateMinutes".into(), "must be at least 1".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let at = |key: &str| format!("providers[{i}].{key}");
            let id_ok = !p.id.is_empty()
                && p.id.len() <= 64
                && p.id.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !id_ok {
                bad(
                    at("id"),
                    format!(
                        "`{}` must be 1 to 64 lowercase letters, digits, `-` or `_`",
                        p.id
                    ),
                );
            } else if !seen.insert(p.id.as_str()) {
                bad(at("id"), format!("`{}` is used by another provider", p.id));
            }
            if p.client_id.trim().is_empty() {
                bad(at("clientId"), "required".into());
            }
            if let Err(e) = p.resolve_secret() {
                bad(format!("providers[{i}]"), e);
            }
            if let Some(r) = &p.redirect_uri
                && let Err(e) = http_url(r)
            {
                bad(at("redirectUri"), e);
            }
            if let Some(scopes) = &p.scopes
                && let Some(s) = scopes.iter().find(|s| {
                    s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control())
                })
            {
                bad(
                    at("scopes"),
                    format!("`{s}` is not a scope (one word per entry)"),
                );
            }
            if let Some(domains) = &p.allowed_email_domains {
                if domains.is_empty() {
                    bad(
                        at("allowedEmailDomains"),
                        "empty: list at least one domain, or remove the key to admit every domain"
                            .into(),
                    );
                }
                if let Some(d) = domains.iter().find(|d| {
                    d.is_empty()
                        || d.len() > 253
                        || d.starts_with('.')
                        || !d.contains('.')
                        || d.chars()
                            .any(|c| c == '@' || c.is_whitespace() || c.is_control())
                }) {
                    bad(
                        at("allowedEmailDomains"),
                        format!("`{d}` is not a domain such as example.com"),
                    );
                }
            }
            let endpoints = [
                ("authorizationUrl", &p.authorization_url),
                ("tokenUrl", &p.token_url),
                ("userInfoUrl", &p.user_info_url),
            ];
            match p.kind {
                None => bad(at("kind"), "required: `oidc` or `oauth2`".into()),
                Some(ProviderKind::Oidc) => {
                    match &p.issuer {
                        None => bad(at("issuer"), "required for kind `oidc`".into()),
                        Some(iss) => {
                            if let Err(e) = provider_url(iss) {
                                bad(at("issuer"), e);
                            }
                        }
                    }
                    for (key, value) in endpoints {
                        if value.is_some() {
                            bad(
                                at(key),
                                "not used with kind `oidc` (the endpoints come from the issuer's discovery document)".into(),
                            );
                        }
                    }
                    if p.claims.is_some() {
                        bad(
                            at("claims"),
                            "only for kind `oauth2` (OIDC uses the standard claims)".into(),
                        );
                    }
                }
                Some(ProviderKind::Oauth2) => {
                    if p.issuer.is_some() {
                        bad(at("issuer"), "only for kind `oidc`".into());
                    }
                    for (key, value) in endpoints {
                        match value {
                            None => bad(at(key), "required for kind `oauth2`".into()),
                            Some(u) => {
                                if let Err(e) = provider_url(u) {
                                    bad(at(key), e);
                                }
                            }
                        }
                    }
                    if let Some(c) = &p.claims
                        && (c.subject.is_empty() || c.email.is_empty())
                    {
                        bad(at("claims"), "subject and email must name a field".into());
                    }
                }
            }
        }
    }
}
