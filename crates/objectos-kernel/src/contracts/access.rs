//! The authorization contract (service `permissions`): may a caller do something to an object or
//! a record, which rows and fields it reaches.
//!
//! Realtime, jobs and flows check a subscriber or a `runAs` user through it without importing
//! the permissions plugin. The caller is described with kernel types ([`Principal`], [`Caller`]);
//! the data engine uses the same [`Principal`] (it depends on the kernel, not the other way).

use std::fmt;

use async_trait::async_trait;
use objectos_spec::query::Filter;

use crate::error::PluginError;

/// Who acts. The data engine's operations carry this same type (`objectos_data::Principal` is a
/// re-export).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials.
    Anonymous,
    /// A signed-in user (or one a flow runs as).
    User {
        id: String,
        /// Role names the credential carries (assigned roles are added by the authorizer).
        roles: Vec<String>,
        /// Permission set names the credential carries.
        permission_sets: Vec<String>,
        /// Administrator of the organization it acts in: no checks inside it.
        is_admin: bool,
    },
    /// Internal work; never restricted. `reason` says why, for the audit trail.
    System { reason: String },
}

impl Principal {
    /// A plain user: no roles or sets beyond those assigned, not an administrator.
    pub fn user(id: impl Into<String>) -> Self {
        Self::User {
            id: id.into(),
            roles: Vec::new(),
            permission_sets: Vec::new(),
            is_admin: false,
        }
    }

    /// Internal work, audited as such.
    pub fn system(reason: impl Into<String>) -> Self {
        Self::System {
            reason: reason.into(),
        }
    }

    /// The user id, for users (stamped into `created_by` / `updated_by` / `owner_id`).
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Self::User { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// A principal acting in an organization (`tenant`; `None` for deployments without one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    pub tenant: Option<String>,
}

impl Caller {
    pub fn new(principal: Principal, tenant: Option<String>) -> Self {
        Self { principal, tenant }
    }
}

/// What a caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    Create,
    Update,
    Delete,
}

impl Access {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// The fields of one object a caller may read and edit, in the object's field order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldAccess {
    pub readable: Vec<String>,
    pub editable: Vec<String>,
}

/// The authorization service, registered by the permissions plugin under `permissions`.
///
/// Answers are those the data engine enforces for the same caller: an implementation must not
/// allow here what a data operation would refuse.
#[async_trait]
pub trait Authorizer: Send + Sync + fmt::Debug + 'static {
    /// Whether `caller` may do `access` on `object` and, when `record` is given, on that record
    /// (it must exist in the caller's organization and pass the row filter; for
    /// [`Access::Create`] the record is ignored). An unknown object is `false`.
    async fn allowed(
        &self,
        caller: &Caller,
        access: Access,
        object: &str,
        record: Option<&str>,
    ) -> Result<bool, PluginError>;

    /// The rows of `object` the caller reaches for `access` (for [`Access::Create`]: what a new
    /// record must satisfy), with the caller's values already bound; `Filter::True` when
    /// unrestricted, `None` when the caller may not do `access` on the object at all. The
    /// organization itself (tenant) is not part of it: the data engine adds that.
    fn row_filter(
        &self,
        caller: &Caller,
        access: Access,
        object: &str,
    ) -> Result<Option<Filter>, PluginError>;

    /// The fields of `object` the caller may read and edit; both empty for an unknown object or
    /// one the caller may not read.
    fn field_access(&self, caller: &Caller, object: &str) -> Result<FieldAccess, PluginError>;
}
