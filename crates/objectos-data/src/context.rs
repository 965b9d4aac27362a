//! Who is asking: the principal, tenant, locale and request id every engine operation carries.

/// The identity an operation runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials. Served only while no auth plugin is installed (discovery says so).
    Anonymous,
    /// A signed-in user.
    User {
        id: String,
        /// Role names, for permission checks.
        roles: Vec<String>,
        /// Permission set names assigned directly or through a profile.
        permission_sets: Vec<String>,
        is_admin: bool,
    },
    /// Internal work (migrations, jobs, workflows running as system). Audited as such; `reason` says why.
    System { reason: String },
}

impl Principal {
    pub fn system(reason: impl Into<String>) -> Self {
        Self::System {
            reason: reason.into(),
        }
    }

    /// The user id stamped into `created_by` / `updated_by` / `owner_id`.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Self::User { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// The record whose delete cascaded to an operation (`deleteBehavior: cascade`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadeOrigin {
    /// Object of the record being deleted that owns this one, e.g. `account`.
    pub object: String,
    /// Its id.
    pub id: String,
}

/// Context of one engine operation.
#[derive(Debug, Clone)]
pub struct OpContext {
    pub principal: Principal,
    /// Tenant (organization) id; stamped into `organization_id` and ANDed into every query when set.
    pub tenant: Option<String>,
    pub locale: Option<String>,
    pub request_id: Option<String>,
    /// Set by the engine on the child deletes a cascade runs (same principal, the parent's
    /// tenant), so interceptors can tell them from the caller's own requests; `None` otherwise.
    pub cascade_of: Option<CascadeOrigin>,
}

impl OpContext {
    pub fn anonymous() -> Self {
        Self {
            principal: Principal::Anonymous,
            tenant: None,
            locale: None,
            request_id: None,
            cascade_of: None,
        }
    }

    pub fn system(reason: impl Into<String>) -> Self {
        Self {
            principal: Principal::system(reason),
            tenant: None,
            locale: None,
            request_id: None,
            cascade_of: None,
        }
    }

    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// True when the engine runs this operation as part of a cascade delete.
    pub fn is_cascade(&self) -> bool {
        self.cascade_of.is_some()
    }
}
