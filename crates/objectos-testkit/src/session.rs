//! Signing test requests in without an auth plugin: a hoop that reads the `x-test-*` headers
//! into the request's principal and organization, and [`Who`], which writes them.
//!
//! Plugins under test see an ordinary [`RequestContext`], exactly as the auth plugin's session
//! hoop would leave it, so their routes run unchanged; a test of the auth plugin itself signs in
//! for real instead.

use objectos_data::{OpContext, Principal};
use objectos_http::{HoopContribution, RequestContext};
use salvo::prelude::*;

/// The user id; without it the request stays anonymous.
pub const USER: &str = "x-test-user";
/// Present: the user is an administrator.
pub const ADMIN: &str = "x-test-admin";
/// Comma-separated permission sets.
pub const SETS: &str = "x-test-sets";
/// Comma-separated roles.
pub const ROLES: &str = "x-test-roles";
/// The organization (tenant) the request acts in.
pub const TENANT: &str = "x-test-tenant";
/// Older spelling of [`TENANT`], still read.
pub const ORG: &str = "x-test-org";

fn list(req: &Request, name: &str) -> Vec<String> {
    req.header::<String>(name)
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the `x-test-*` headers into the request context: the principal when `x-test-user` is
/// set, and the organization (none without `x-test-tenant` or `x-test-org`).
#[handler]
pub async fn test_session(req: &mut Request, depot: &mut Depot) {
    let user = req.header::<String>(USER);
    let admin = req.header::<String>(ADMIN).is_some();
    let sets = list(req, SETS);
    let roles = list(req, ROLES);
    let tenant = req
        .header::<String>(TENANT)
        .or_else(|| req.header::<String>(ORG));
    if let Ok(cx) = depot.get_typed::<RequestContext>() {
        let mut cx = cx.clone();
        if let Some(id) = user {
            cx.principal = Principal::User {
                id,
                roles,
                permission_sets: sets,
                is_admin: admin,
            };
        }
        cx.tenant = tenant;
        depot.insert_typed(cx);
    }
}

/// The [`test_session`] hoop, first in line (order 0).
pub fn hoop() -> HoopContribution {
    HoopContribution::new(0, test_session)
}

/// Who a request or an operation acts as: nobody, an administrator or a restricted user, with
/// permission sets, roles and an organization.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Who {
    pub user: Option<String>,
    pub admin: bool,
    pub sets: Vec<String>,
    pub roles: Vec<String>,
    pub tenant: Option<String>,
}

impl Who {
    /// No principal: what a request without a session is.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// The administrator `root`.
    pub fn admin() -> Self {
        Self {
            user: Some("root".into()),
            admin: true,
            ..Self::default()
        }
    }

    /// An administrator of organization `tenant` acting in it: `is_admin`, but (unlike `root`
    /// in a [`crate::TestDirectory`]) no platform administrator.
    pub fn org_admin(id: &str, tenant: &str) -> Self {
        Self {
            user: Some(id.into()),
            admin: true,
            tenant: Some(tenant.into()),
            ..Self::default()
        }
    }

    /// A user with no rights beyond what the test grants (sets, roles).
    pub fn user(id: &str) -> Self {
        Self {
            user: Some(id.into()),
            ..Self::default()
        }
    }

    /// With these permission sets.
    pub fn sets(mut self, sets: &[&str]) -> Self {
        self.sets = sets.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// With these roles.
    pub fn roles(mut self, roles: &[&str]) -> Self {
        self.roles = roles.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Acting in organization `tenant`.
    pub fn tenant(mut self, tenant: &str) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// The `x-test-*` headers that sign a request in as this principal.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(id) = &self.user {
            out.push((USER.to_owned(), id.clone()));
            if self.admin {
                out.push((ADMIN.to_owned(), "1".to_owned()));
            }
            if !self.sets.is_empty() {
                out.push((SETS.to_owned(), self.sets.join(",")));
            }
            if !self.roles.is_empty() {
                out.push((ROLES.to_owned(), self.roles.join(",")));
            }
        }
        if let Some(t) = &self.tenant {
            out.push((TENANT.to_owned(), t.clone()));
        }
        out
    }

    /// The principal the hoop builds from [`Who::headers`].
    pub fn principal(&self) -> Principal {
        match &self.user {
            None => Principal::Anonymous,
            Some(id) => Principal::User {
                id: id.clone(),
                roles: self.roles.clone(),
                permission_sets: self.sets.clone(),
                is_admin: self.admin,
            },
        }
    }

    /// An operation context for calling the engine directly as this principal; its request id
    /// is `req-<user>`.
    pub fn op_context(&self) -> OpContext {
        OpContext {
            principal: self.principal(),
            tenant: self.tenant.clone(),
            locale: None,
            request_id: self.user.as_ref().map(|id| format!("req-{id}")),
            cascade_of: None,
            correlation_id: None,
            causation_id: None,
        }
    }
}
