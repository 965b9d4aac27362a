//! The auth crate's one error enum and its JSON rendering (`{error, code, message}`), with stable
//! codes and statuses; secrets never appear in a message.

use objectos_data::DataError;
use salvo::http::StatusCode;
use salvo::http::header::{HeaderValue, RETRY_AFTER};
use salvo::prelude::{Json, Response, Scribe};
use serde_json::json;

/// Everything the auth plugin can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No valid session or API key.
    #[error("Authentication is required to access this endpoint.")]
    Unauthenticated,
    /// Unknown email or wrong password (deliberately not saying which).
    #[error("Invalid email or password.")]
    InvalidCredentials,
    /// Too many failed sign-ins for this email address (counted whether or not an account has
    /// it, so the answer does not reveal that either).
    #[error(
        "Too many failed sign-ins for this email address; try again in {retry_after_secs} seconds."
    )]
    AccountLocked { retry_after_secs: u64 },
    /// The token bucket of this IP or email is empty.
    #[error("Too many requests; retry in {retry_after_secs} seconds.")]
    RateLimited { retry_after_secs: u64 },
    /// The body is not the JSON the route expects.
    #[error("{0}")]
    InvalidBody(String),
    /// The new password breaks the password policy; every broken rule is listed.
    #[error("{}", .0.join(" "))]
    WeakPassword(Vec<String>),
    /// The email is taken.
    #[error("A user with this email already exists.")]
    UserExists,
    /// `admin/create-user` by an administrator who is not a platform administrator: choosing the
    /// password of a global account is for platform administrators only (better-auth's code).
    /// Refused before the address is looked at, so the answer says nothing about it.
    #[error(
        "Only platform administrators may create accounts; invite the person instead (POST /api/v1/auth/organization/invite-member)."
    )]
    CreateUserNotAllowed,
    /// Public sign-up is closed once the owner exists (unless `allowSignUp`).
    #[error("Sign-up is closed; ask an administrator to create your account.")]
    SignUpDisabled,
    /// The user record is not active (an administrator locked or deactivated it).
    #[error("This account is {0}; ask an administrator to reactivate it.")]
    AccountDisabled(String),
    /// The account has two-factor authentication; the sign-in needs `code`.
    #[error(
        "Two-factor authentication is enabled for this account; send the authenticator or recovery code as `code`."
    )]
    TwoFactorRequired,
    /// The TOTP or recovery code is wrong or already used.
    #[error("The two-factor code is invalid or was already used.")]
    InvalidTwoFactorCode,
    /// The reset token is unknown, used or expired.
    #[error("The password reset token is invalid or has expired.")]
    InvalidResetToken,
    /// A request that is well-formed but not applicable (two-factor not enrolled...).
    #[error("{0}")]
    BadRequest(String),
    /// A named thing does not exist (or is not the caller's).
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The organization does not exist or the caller is not a member: one answer for both, so
    /// other organizations cannot be discovered.
    #[error("Organization `{0}` not found among your organizations.")]
    OrganizationNotFound(String),
    /// The user is unknown or out of the caller's reach (not in an organization the caller
    /// administers): one answer for both.
    #[error("User `{0}` not found among the members of your organizations.")]
    UserNotFound(String),
    /// The organization slug is taken (slugs are unique across the deployment).
    #[error("The organization slug `{0}` is already taken; choose another.")]
    SlugTaken(String),
    /// Email/password sign-in of an account whose address is not verified while
    /// `emailVerification.required` is on (better-auth's code); no session is created.
    #[error(
        "Email not verified: open the link mailed to you, or ask for a new one with POST /api/v1/auth/send-verification-email."
    )]
    EmailUnverified,
    /// The email verification token is unknown, used, expired, or for an address the account
    /// no longer has.
    #[error("The email verification token is invalid or has expired.")]
    InvalidVerificationToken,
    /// The invitation does not exist, or is not the caller's to see (another organization, or
    /// addressed to someone else): one answer for all.
    #[error("Invitation `{0}` not found.")]
    InvitationNotFound(String),
    /// Answering an invitation needs proof that the caller controls the invited address: a
    /// verified address, or the token only the invitation mail carries.
    #[error(
        "Answering this invitation needs proof that the address is yours: open the link from the invitation mail (it carries the `token`), or verify your email address first."
    )]
    InvitationProofRequired,
    /// The invitation is no longer open (accepted, rejected, canceled or expired).
    #[error("This invitation is {0}; ask for a new one.")]
    InvitationNotPending(String),
    /// `organization.allowUserToCreate` is off (better-auth's code).
    #[error("Creating organizations is disabled on this server.")]
    OrganizationCreationDisabled,
    /// The caller owns `organization.limitPerUser` organizations already (better-auth's code).
    #[error(
        "You have reached the maximum number of organizations you may own ({0}); delete or hand over one first."
    )]
    OrganizationLimitReached(u32),
    /// The service has not started yet.
    #[error("The authentication service is not ready yet.")]
    NotReady,
    /// A database failure; the detail is logged, never sent.
    #[error("auth storage error: {0}")]
    Database(String),
    /// An error from the data engine (user and organization records).
    #[error("{0}")]
    Data(DataError),
    /// A bug or an unexpected failure (random source, hashing); logged, never sent.
    #[error("internal auth error: {0}")]
    Internal(String),
    /// The plugin configuration is invalid.
    #[error("invalid auth configuration: {0}")]
    Config(String),
    /// Single sign-on: no provider with this id is configured.
    #[error("No sign-in provider `{0}` is configured; GET /api/v1/auth/providers lists them.")]
    UnknownProvider(String),
    /// Single sign-on: a `callbackURL` (or another redirect target) is not allowed.
    #[error("{0}")]
    InvalidRedirect(String),
    /// Single sign-on: the `state` is unknown, expired, for another provider, or was altered.
    #[error("The sign-in state is unknown or expired; start the sign-in again.")]
    InvalidState,
    /// Single sign-on: the `state` was already used (a replayed callback).
    #[error("This sign-in was already completed or abandoned; start the sign-in again.")]
    StateUsed,
    /// Single sign-on: the browser finishing the sign-in is not the one that started it.
    #[error(
        "The sign-in was started in another browser (the state cookie is missing or different); start the sign-in again."
    )]
    StateMismatch,
    /// Single sign-on: the provider sent the user back with an `error` (refused, cancelled...).
    #[error("The identity provider did not sign you in: {0}")]
    ProviderError(String),
    /// Single sign-on: the provider could not be reached or answered something unreadable.
    #[error("The identity provider is unavailable: {0}")]
    ProviderUnavailable(String),
    /// Single sign-on: the provider refused to exchange the authorization code.
    #[error("The identity provider did not accept the authorization code: {0}")]
    TokenExchange(String),
    /// Single sign-on: the ID token failed verification (signature, issuer, audience, nonce, expiry).
    #[error("The identity provider's ID token is invalid: {0}")]
    InvalidIdToken(String),
    /// Single sign-on: the provider's user info could not be read or lacks the user id.
    #[error("The identity provider's user information is unusable: {0}")]
    UserInfo(String),
    /// Single sign-on: the provider gave no usable email, which a new link or account needs.
    #[error(
        "The identity provider did not share a usable email address, which ObjectOS needs to find or create the account."
    )]
    EmailRequired,
    /// Single sign-on: the provider did not verify the email, so it cannot create or link accounts.
    #[error(
        "The identity provider has not verified your email address, so it cannot be used to create or link an account."
    )]
    EmailNotVerified,
    /// Single sign-on: no account is linked to this identity and none may be created or linked
    /// automatically. One answer whether or not an account with the email exists, so the
    /// callback does not reveal accounts.
    #[error(
        "No account is linked to this sign-in, and this provider may not create or link one automatically. If you already have an account, sign in to it and link the provider from there (POST /api/v1/auth/link-social); otherwise ask an administrator."
    )]
    AccountNotLinked,
    /// Single sign-on: the email's domain is not in the provider's `allowedEmailDomains`.
    #[error("The identity provider's email address is not in a domain this provider may sign in.")]
    EmailDomainNotAllowed,
    /// Single sign-on: the identity was linked while the provider pointed at another issuer or
    /// other endpoints, so its subject may name someone else.
    #[error(
        "This sign-in was linked while the provider was configured with another issuer or other endpoints; an administrator must check the provider's configuration."
    )]
    IssuerMismatch,
    /// Single sign-on: no owner exists yet, and a provider may not create the first account.
    #[error(
        "This server has no owner account yet; create it with the email sign-up or `objectos user create --admin` before signing in with a provider."
    )]
    OwnerRequired,
    /// Single sign-on (`link-social`): the identity is linked to another account.
    #[error("This provider identity is already linked to another account.")]
    IdentityInUse,
    /// Single sign-on (`link-social`): the account has another identity at this provider.
    #[error(
        "Your account is already linked to another identity at this provider; one identity per provider."
    )]
    ProviderAlreadyLinked,
}

/// Result alias of this crate.
pub type Result<T, E = AuthError> = std::result::Result<T, E>;

impl From<DataError> for AuthError {
    fn from(e: DataError) -> Self {
        // The data engine's classification: a full disk or a lost database answers 507/503
        // (retryable), a storage failure of the plugin's own tables stays this crate's 500.
        match e {
            DataError::Database(message) => Self::Database(message),
            other => Self::Data(other),
        }
    }
}

impl AuthError {
    /// Stable wire code.
    pub fn code(&self) -> &str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::AccountLocked { .. } => "ACCOUNT_LOCKED",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::InvalidBody(_) => "INVALID_BODY",
            Self::WeakPassword(_) => "WEAK_PASSWORD",
            Self::UserExists => "USER_ALREADY_EXISTS",
            Self::CreateUserNotAllowed => "YOU_ARE_NOT_ALLOWED_TO_CREATE_USERS",
            Self::SignUpDisabled => "SIGN_UP_DISABLED",
            Self::AccountDisabled(_) => "ACCOUNT_DISABLED",
            Self::TwoFactorRequired => "TWO_FACTOR_REQUIRED",
            Self::InvalidTwoFactorCode => "INVALID_TWO_FACTOR_CODE",
            Self::InvalidResetToken => "INVALID_TOKEN",
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Forbidden(_) => "PERMISSION_DENIED",
            Self::OrganizationNotFound(_) => "ORGANIZATION_NOT_FOUND",
            Self::UserNotFound(_) => "USER_NOT_FOUND",
            Self::SlugTaken(_) => "ORGANIZATION_SLUG_TAKEN",
            Self::EmailUnverified | Self::InvitationProofRequired => "EMAIL_NOT_VERIFIED",
            Self::InvalidVerificationToken => "INVALID_TOKEN",
            Self::InvitationNotFound(_) => "INVITATION_NOT_FOUND",
            Self::InvitationNotPending(_) => "INVITATION_NOT_PENDING",
            Self::OrganizationCreationDisabled => {
                "YOU_ARE_NOT_ALLOWED_TO_CREATE_A_NEW_ORGANIZATION"
            }
            Self::OrganizationLimitReached(_) => {
                "YOU_HAVE_REACHED_THE_MAXIMUM_NUMBER_OF_ORGANIZATIONS"
            }
            Self::NotReady => "SERVICE_UNAVAILABLE",
            Self::Data(e) => e.code(),
            Self::Database(_) | Self::Internal(_) | Self::Config(_) => "INTERNAL_ERROR",
            Self::UnknownProvider(_) => "SSO_UNKNOWN_PROVIDER",
            Self::InvalidRedirect(_) => "SSO_INVALID_REDIRECT",
            Self::InvalidState => "SSO_INVALID_STATE",
            Self::StateUsed => "SSO_STATE_USED",
            Self::StateMismatch => "SSO_STATE_MISMATCH",
            Self::ProviderError(_) => "SSO_PROVIDER_ERROR",
            Self::ProviderUnavailable(_) => "SSO_PROVIDER_UNAVAILABLE",
            Self::TokenExchange(_) => "SSO_TOKEN_EXCHANGE_FAILED",
            Self::InvalidIdToken(_) => "SSO_INVALID_ID_TOKEN",
            Self::UserInfo(_) => "SSO_USERINFO_FAILED",
            Self::EmailRequired => "SSO_EMAIL_REQUIRED",
            Self::EmailNotVerified => "SSO_EMAIL_NOT_VERIFIED",
            Self::AccountNotLinked => "SSO_ACCOUNT_NOT_LINKED",
            Self::EmailDomainNotAllowed => "SSO_EMAIL_DOMAIN_NOT_ALLOWED",
            Self::IssuerMismatch => "SSO_ISSUER_MISMATCH",
            Self::OwnerRequired => "SSO_OWNER_REQUIRED",
            Self::IdentityInUse => "SSO_IDENTITY_IN_USE",
            Self::ProviderAlreadyLinked => "SSO_PROVIDER_ALREADY_LINKED",
        }
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated
            | Self::InvalidCredentials
            | Self::TwoFactorRequired
            | Self::InvalidTwoFactorCode => StatusCode::UNAUTHORIZED,
            // 429 like the rate limit: the client should wait `Retry-After`.
            Self::AccountLocked { .. } | Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::InvalidBody(_)
            | Self::WeakPassword(_)
            | Self::InvalidResetToken
            | Self::InvalidVerificationToken
            | Self::InvitationNotPending(_)
            | Self::BadRequest(_)
            | Self::InvalidRedirect(_)
            | Self::InvalidState
            | Self::StateUsed
            | Self::StateMismatch
            | Self::SlugTaken(_)
            | Self::ProviderError(_)
            | Self::TokenExchange(_)
            | Self::InvalidIdToken(_)
            | Self::UserInfo(_)
            | Self::EmailRequired => StatusCode::BAD_REQUEST,
            Self::EmailNotVerified
            | Self::EmailUnverified
            | Self::InvitationProofRequired
            | Self::CreateUserNotAllowed
            | Self::OrganizationCreationDisabled
            | Self::OrganizationLimitReached(_)
            | Self::AccountNotLinked
            | Self::EmailDomainNotAllowed
            | Self::IssuerMismatch
            | Self::OwnerRequired => StatusCode::FORBIDDEN,
            Self::IdentityInUse | Self::ProviderAlreadyLinked => StatusCode::CONFLICT,
            Self::ProviderUnavailable(_) => StatusCode::BAD_GATEWAY,
            Self::UserExists => StatusCode::UNPROCESSABLE_ENTITY,
            Self::SignUpDisabled | Self::Forbidden(_) | Self::AccountDisabled(_) => {
                StatusCode::FORBIDDEN
            }
            Self::NotFound(_)
            | Self::UnknownProvider(_)
            | Self::OrganizationNotFound(_)
            | Self::InvitationNotFound(_)
            | Self::UserNotFound(_) => StatusCode::NOT_FOUND,
            Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Self::Data(e) => {
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Self::Database(_) | Self::Internal(_) | Self::Config(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The message safe to show a client.
    pub fn public_message(&self) -> String {
        match self {
            Self::Data(e) => e.public_message(),
            Self::Database(_) | Self::Internal(_) | Self::Config(_) => {
                "An internal error occurred; the server log has the details".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// The JSON body; `UNAUTHENTICATED` is exactly the transcript's body (exchange 2).
    pub fn body(&self) -> serde_json::Value {
        let message = self.public_message();
        let error = match self {
            Self::Unauthenticated => "UNAUTHENTICATED".to_owned(),
            _ => message.clone(),
        };
        json!({ "error": error, "code": self.code(), "message": message })
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_secs } | Self::AccountLocked { retry_after_secs } => {
                Some((*retry_after_secs).max(1))
            }
            Self::Data(e) => e.retry_after_secs(),
            _ => None,
        }
    }
}

impl Scribe for AuthError {
    fn render(self, res: &mut Response) {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, code = self.code(), "Auth request failed with a server error.");
        }
        if let Some(secs) = self.retry_after()
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut().insert(RETRY_AFTER, v);
        }
        res.status_code(status);
        res.render(Json(self.body()));
    }
}
