//! Events the auth plugin (`com.objectos.auth`) publishes: sign-ins, passwords, two-factor,
//! API keys, organizations, members, invitations, verification. Names are `auth.<what>` and,
//! for API keys, `security.<what>`; the audit plugin records both namespaces.
//!
//! Every one carries the same payload, [`AuthEvent`]: who (user id and email), the tenant, the
//! client (ip, user agent), the request id, and the event's own facts ([`AuthDetails`], only
//! the fields that event sets; each constant below says which).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Sign-in succeeded (`reason`: `sign_up` or `sso`, with `provider` and `newUser`; none for a
/// password sign-in).
pub const LOGIN: &str = "auth.login";
/// Sign-in failed (`reason`; `provider` for SSO).
pub const LOGIN_FAILED: &str = "auth.login_failed";
pub const LOGOUT: &str = "auth.logout";
/// `revokedSessions`: other sessions ended with the change.
pub const PASSWORD_CHANGED: &str = "auth.password_changed";
pub const PASSWORD_RESET: &str = "auth.password_reset";
/// `method`: `totp`.
pub const MFA_ENABLED: &str = "auth.mfa_enabled";
/// `method`: `totp`.
pub const MFA_DISABLED: &str = "auth.mfa_disabled";
/// Sign-ins locked for an email after repeated failures (`reason`).
pub const ACCOUNT_LOCKED: &str = "auth.account_locked";
/// `apiKeyId`, `scopes`.
pub const API_KEY_CREATED: &str = "security.api_key_created";
/// `apiKeyId`.
pub const API_KEY_REVOKED: &str = "security.api_key_revoked";
/// `apiKeyId`.
pub const API_KEY_USED: &str = "security.api_key_used";
/// An external (SSO) identity was linked to an existing account by its verified email
/// (`provider`, `via`).
pub const IDENTITY_LINKED: &str = "auth.identity_linked";
/// An administrator created an account (`targetUserId`, `targetEmail`, `role`).
pub const USER_CREATED: &str = "auth.user_created";
/// An administrator banned (locked) an account (`targetUserId`, `reason`, `changed`).
pub const USER_BANNED: &str = "auth.user_banned";
/// An administrator unbanned an account (`targetUserId`, `reason`, `changed`).
pub const USER_UNBANNED: &str = "auth.user_unbanned";
/// `organizationId`, `slug`.
pub const ORGANIZATION_CREATED: &str = "auth.organization_created";
/// `organizationId`, `targetUserId`, `role`, `via` (`invitation` when an invitee accepted).
pub const MEMBER_ADDED: &str = "auth.member_added";
/// `organizationId`, `targetUserId`, `role`, `profileMoved`. The permissions plugin drops the
/// user's assignments in that organization when it sees it.
pub const MEMBER_REMOVED: &str = "auth.member_removed";
/// The session's active organization changed (`organizationId`, `previousOrganizationId`).
pub const ORGANIZATION_SWITCHED: &str = "auth.organization_switched";
/// `organizationId`, `targetUserId`, `role`, `previousRole`.
pub const MEMBER_ROLE_UPDATED: &str = "auth.member_role_updated";
/// An invitation was sent or re-sent (`organizationId`, `inviteeEmail`, `role`, `resent`).
/// Invitation payloads never carry the invitation id: the accept link does.
pub const MEMBER_INVITED: &str = "auth.member_invited";
/// `organizationId`, `inviteeEmail`, `role`.
pub const INVITATION_CANCELED: &str = "auth.invitation_canceled";
/// `organizationId`, `role`.
pub const INVITATION_ACCEPTED: &str = "auth.invitation_accepted";
/// `organizationId`, `role`.
pub const INVITATION_REJECTED: &str = "auth.invitation_rejected";
/// An email address was verified through its link.
pub const EMAIL_VERIFIED: &str = "auth.email_verified";

/// Every name above (the auth plugin's `emits`).
pub const ALL: &[&str] = &[
    LOGIN,
    LOGIN_FAILED,
    LOGOUT,
    PASSWORD_CHANGED,
    PASSWORD_RESET,
    MFA_ENABLED,
    MFA_DISABLED,
    ACCOUNT_LOCKED,
    API_KEY_CREATED,
    API_KEY_REVOKED,
    API_KEY_USED,
    IDENTITY_LINKED,
    USER_CREATED,
    USER_BANNED,
    USER_UNBANNED,
    ORGANIZATION_CREATED,
    MEMBER_ADDED,
    MEMBER_REMOVED,
    ORGANIZATION_SWITCHED,
    MEMBER_ROLE_UPDATED,
    MEMBER_INVITED,
    INVITATION_CANCELED,
    INVITATION_ACCEPTED,
    INVITATION_REJECTED,
    EMAIL_VERIFIED,
];

/// Payload of every auth event. The common facts are always present (`null` when unknown); the
/// event's own facts follow at the same level.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthEvent {
    /// The user the event is about, or who acted (administrator and organization events).
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(flatten)]
    pub details: AuthDetails,
}

/// The facts particular to one auth event; each event sets the fields its name constant lists
/// and leaves the rest out of the JSON.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// SSO provider id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// How a link or membership came about (`email`, `invitation`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_user: Option<bool>,
    /// Two-factor method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_sessions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_organization_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// The user an administrator or organization event acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitee_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resent: Option<bool>,
    /// Whether the removed member's profile moved to another organization (never where to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_moved: Option<bool>,
    /// Whether a ban or unban changed the account's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<bool>,
}

impl AuthDetails {
    /// Details with only a `reason`.
    pub fn reason(reason: impl Into<String>) -> Self {
        Self {
            reason: Some(reason.into()),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::validate_event_name;

    #[test]
    fn names_are_valid_and_payloads_flat() {
        for n in ALL {
            assert_eq!(validate_event_name(n, false), Ok(()), "{n}");
        }
        let e = AuthEvent {
            user_id: Some("u1".into()),
            details: AuthDetails {
                organization_id: Some("o1".into()),
                target_user_id: Some("u2".into()),
                ..AuthDetails::default()
            },
            ..AuthEvent::default()
        };
        let v = serde_json::to_value(&e).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({"userId": "u1", "email": null, "tenantId": null, "ip": null,
                "userAgent": null, "requestId": null, "organizationId": "o1", "targetUserId": "u2"})
        );
        let back: AuthEvent = serde_json::from_value(v).unwrap_or_default();
        assert_eq!(back, e);
    }
}
