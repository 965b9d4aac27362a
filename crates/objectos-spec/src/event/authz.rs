//! Events the permissions plugin (`com.objectos.permissions`) publishes when a permission set
//! or role is assigned to a user or taken away, in one organization.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const PERMISSION_GRANTED: &str = "authz.permission_granted";
pub const PERMISSION_REVOKED: &str = "authz.permission_revoked";
pub const ROLE_ASSIGNED: &str = "authz.role_assigned";
pub const ROLE_REMOVED: &str = "authz.role_removed";

/// Every name above (the permissions plugin's `emits`).
pub const ALL: &[&str] = &[
    PERMISSION_GRANTED,
    PERMISSION_REVOKED,
    ROLE_ASSIGNED,
    ROLE_REMOVED,
];

/// Payload of every `authz.*` event. `userId` is the user the assignment is about (as
/// documented since the first release); the actor is `actorId`/`actorType`, so the audit trail
/// files the change under the acting administrator and the organization (`tenantId`, equal to
/// `organizationId`: assignments are per organization).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentChanged {
    pub user_id: String,
    /// The permission set (`permission_*` events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_set: Option<String>,
    /// The role (`role_*` events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The acting user, as `actorId` (kept under its first name for older consumers).
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub actor_id: Option<String>,
    /// `user`, `system` or `anonymous`.
    pub actor_type: String,
    /// The user concerned, again, as the audit trail's record id.
    pub target_id: String,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
}
