//! ObjectOS authentication plugin: email/password accounts (argon2id), opaque session tokens
//! stored as SHA-256 digests (bearer, `better-auth.session_token` cookie, `set-auth-token`),
//! idle and absolute session timeouts, account lockout, rate limits, password change and reset
//! through the kernel's mail contract, TOTP two-factor with one-time recovery codes, scoped API keys,
//! organizations with the active one on the session (create, members, roles, invitations,
//! switch), user administration in the active organization, email verification, TOTP secrets
//! encrypted at rest (AES-256-GCM), and single sign-on through OpenID Connect and OAuth2
//! providers (authorization code + PKCE; see [`sso`]).

mod admin;
pub mod config;
mod crypto;
pub mod directory;
pub mod error;
pub mod hook;
pub mod http;
mod invitations;
mod lockout;
pub mod mailer;
mod orgs;
pub mod plugin;
mod ratelimit;
pub mod secretbox;
pub mod service;
mod session_cache;
pub mod sso;
mod store;
mod verification;

pub use config::{
    Argon2Config, AuthConfig, ClaimMapping, EmailVerificationConfig, LockoutConfig,
    OrganizationConfig, ProviderKind, RateLimitConfig, Secret, SsoConfig, SsoProvider,
};
pub use directory::AuthDirectory;
pub use error::{AuthError, Result};
pub use http::{
    AuthCaller, SESSION_COOKIE, SET_AUTH_TOKEN, SSO_STATE_COOKIE, SSO_STATE_COOKIE_SECURE,
    SessionHoop,
};
pub use mailer::{LoggingMailer, Mail, Mailer};
pub use plugin::{AuthHandle, AuthPlugin, MANIFEST, PLUGIN_ID};
pub use secretbox::SecretKey;
pub use service::{API_KEY_PREFIX, AuthService, RequestMeta, Resolved, SignedIn, events};
pub use sso::{CallbackParams, SocialRedirect, SocialSignIn, SsoFailure, SsoSignedIn};
pub use store::schema;
