//! The kernel's authorization contract (`objectos_kernel::Authorizer`, service `permissions`)
//! implemented over [`Authz`]: the same subject, object permissions, row filters and field-level
//! security the interceptor enforces, for callers that are not a data operation (realtime
//! subscribers, jobs and flows running as a user).

use std::sync::Arc;

use async_trait::async_trait;
use objectos_data::{OpContext, Principal};
use objectos_kernel::contracts::{Access, Caller, FieldAccess};
use objectos_kernel::{Authorizer, PluginError};
use objectos_spec::query::Filter;
use objectos_spec::security::{AccessLevel, RlsOperation};
use tracing::Instrument as _;

use crate::authz::{Authz, Subject};

/// [`Authz`] as the `permissions` service.
#[derive(Debug, Clone)]
pub struct PermissionsAuthorizer {
    authz: Arc<Authz>,
}

impl PermissionsAuthorizer {
    pub fn new(authz: Arc<Authz>) -> Self {
        Self { authz }
    }
}

/// The data engine's context for a contract caller (the engine's principal is the contract's).
pub fn op_context(caller: &Caller) -> OpContext {
    let mut cx = OpContext::anonymous();
    cx.principal = caller.principal.clone();
    cx.tenant = caller.tenant.clone();
    cx
}

impl PermissionsAuthorizer {
    /// The row filter, or `None` when the object is unknown or not allowed at all.
    fn filter(&self, cx: &OpContext, access: Access, object: &str) -> Option<Filter> {
        let engine = self.authz.engine()?;
        engine.metadata().object(object)?;
        // As the interceptor: a user outside any organization reaches nothing.
        if matches!(cx.principal, Principal::User { .. }) && cx.tenant.is_none() {
            return None;
        }
        let eff = match self.authz.subject(cx) {
            Subject::Bypass => return Some(Filter::True),
            Subject::User(eff) => eff,
        };
        let p = eff.object(object);
        let allowed = match access {
            Access::Read => p.allow_read,
            Access::Create => p.allow_create,
            Access::Update => p.allow_edit,
            Access::Delete => p.allow_delete,
        };
        if !allowed {
            return None;
        }
        Some(match access {
            Access::Read => self.authz.read_filter(&eff, cx, object),
            Access::Update => self.authz.write_filter(&eff, cx, object, AccessLevel::Edit),
            Access::Delete => self.authz.write_filter(&eff, cx, object, AccessLevel::Full),
            Access::Create => self
                .authz
                .check_filter(&eff, cx, object, RlsOperation::Insert),
        })
    }

    /// Whether `caller` may do `access` on `object` (and on `record`, when given).
    async fn decide(
        &self,
        caller: &Caller,
        access: Access,
        object: &str,
        record: Option<&str>,
    ) -> Result<bool, PluginError> {
        let cx = op_context(caller);
        let Some(filter) = self.filter(&cx, access, object) else {
            return Ok(false);
        };
        let Some(id) = record.filter(|_| access != Access::Create) else {
            return Ok(true);
        };
        let Some(engine) = self.authz.engine() else {
            return Ok(false);
        };
        // Counted as the system within the caller's organization, with the caller's row filter:
        // the answer is "this record exists for the caller" and nothing more.
        let mut sys = OpContext::system("permissions.authorizer");
        sys.tenant = caller.tenant.clone();
        let n = engine
            .count(&sys, object, Filter::eq("id", id.to_owned()).and(filter))
            .await
            .map_err(PluginError::other)?;
        Ok(n > 0)
    }
}

#[async_trait]
impl Authorizer for PermissionsAuthorizer {
    async fn allowed(
        &self,
        caller: &Caller,
        access: Access,
        object: &str,
        record: Option<&str>,
    ) -> Result<bool, PluginError> {
        // A span per decision, as the interceptor's: object, access and outcome, no ids.
        let span = tracing::debug_span!(
            "permissions.check",
            object = %object,
            operation = access.as_str(),
            record = record.is_some(),
            outcome = tracing::field::Empty,
        );
        if span.is_disabled() {
            return self.decide(caller, access, object, record).await;
        }
        let result = self
            .decide(caller, access, object, record)
            .instrument(span.clone())
            .await;
        span.record(
            "outcome",
            match &result {
                Ok(true) => "allow",
                Ok(false) => "deny",
                Err(_) => "error",
            },
        );
        result
    }

    fn row_filter(
        &self,
        caller: &Caller,
        access: Access,
        object: &str,
    ) -> Result<Option<Filter>, PluginError> {
        Ok(self.filter(&op_context(caller), access, object))
    }

    fn field_access(&self, caller: &Caller, object: &str) -> Result<FieldAccess, PluginError> {
        let cx = op_context(caller);
        if self.filter(&cx, Access::Read, object).is_none() {
            return Ok(FieldAccess::default());
        }
        let Some(engine) = self.authz.engine() else {
            return Ok(FieldAccess::default());
        };
        let snap = engine.metadata();
        let Some(schema) = snap.object(object) else {
            return Ok(FieldAccess::default());
        };
        let names = schema.fields.keys();
        Ok(match self.authz.subject(&cx) {
            Subject::Bypass => FieldAccess {
                readable: names.clone().cloned().collect(),
                editable: names.cloned().collect(),
            },
            Subject::User(eff) => {
                let mut out = FieldAccess::default();
                for name in names {
                    let f = eff.field(object, name);
                    if f.readable {
                        out.readable.push(name.clone());
                    }
                    if f.editable {
                        out.editable.push(name.clone());
                    }
                }
                out
            }
        })
    }
}
