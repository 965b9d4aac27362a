//! The directory contract (service `auth`): users, organizations, memberships and their roles,
//! and the principal a user acts as.
//!
//! The auth plugin implements it over its own tables; the permissions plugin checks membership
//! through it, and flows or approvals build the principal of the user they act for.

use std::fmt;

use async_trait::async_trait;

use crate::contracts::access::Caller;
use crate::error::PluginError;

/// One user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub id: String,
    /// Folded (NFKC, lowercase) email address.
    pub email: String,
    pub name: Option<String>,
    /// False once an administrator locked or deactivated the account.
    pub active: bool,
    /// A platform administrator: created as one (the first account, `--admin`) and an owner
    /// or admin of the deployment's own organization (the first one). Whether a request acts
    /// as one also needs an administrator's credential (a session, an API key with the
    /// `admin` scope): `Principal::User { is_admin: true, .. }`.
    pub platform_admin: bool,
}

/// One organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: String,
    pub name: Option<String>,
    pub slug: Option<String>,
}

/// A user's membership of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub organization_id: String,
    pub user_id: String,
    /// The role in the organization: `owner`, `admin` or `member`.
    pub role: String,
}

/// Who exists and who belongs where, registered by the auth plugin under `auth`.
#[async_trait]
pub trait Directory: Send + Sync + fmt::Debug + 'static {
    /// A user by id.
    async fn user(&self, id: &str) -> Result<Option<DirectoryUser>, PluginError>;

    /// An organization by id.
    async fn organization(&self, id: &str) -> Result<Option<Organization>, PluginError>;

    /// Every organization `user_id` belongs to, oldest membership first.
    async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>, PluginError>;

    /// `user_id`'s membership of `org`, if any.
    async fn membership(&self, org: &str, user_id: &str)
    -> Result<Option<Membership>, PluginError>;

    /// How many of `user_ids` (distinct) belong to `org`. The default asks
    /// [`Directory::membership`] for each; implementations answer in one query.
    async fn members_among(&self, org: &str, user_ids: &[String]) -> Result<usize, PluginError> {
        let mut seen: Vec<&str> = Vec::with_capacity(user_ids.len());
        for id in user_ids {
            if !seen.contains(&id.as_str()) && self.membership(org, id).await?.is_some() {
                seen.push(id);
            }
        }
        Ok(seen.len())
    }

    /// The caller `user_id` acts as in organization `org` (its oldest membership when `None`),
    /// exactly as a session of that user would: `None` when the user does not exist, is not
    /// active, or is not a member of `org`.
    async fn principal_for(
        &self,
        user_id: &str,
        org: Option<&str>,
    ) -> Result<Option<Caller>, PluginError>;
}
