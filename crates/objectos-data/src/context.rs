//! Who is asking: the principal, tenant, locale and request id every engine operation carries,
//! and what led to it (correlation and causation ids, stamped on the events it produces).

/// The identity an operation runs as: the kernel contracts' principal, so a caller built for the
/// authorization or directory contract (a flow's `runAs` user) is an engine principal as it is.
pub use objectos_kernel::contracts::Principal;

/// The record whose delete cascaded to an operation (`deleteBehavior: cascade`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadeOrigin {
    /// Object of the record being deleted that owns this one, e.g. `account`.
    pub object: String,
    /// Its id.
    pub id: String,
}

/// Context of one engine operation. `Default` is an anonymous caller with nothing else set, so
/// literals can name only what they set (`..OpContext::default()`).
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
    /// The originating request's id, copied into the metadata of every event this operation
    /// produces and kept by subscribers that write in reaction ([`OpContext::caused_by`]), so
    /// a chain of follow-ups can be traced back (and loops stopped). The HTTP layer sets it to
    /// the request id.
    pub correlation_id: Option<String>,
    /// Id of the event whose subscriber runs this operation; `None` for a request's own work.
    pub causation_id: Option<String>,
}

impl Default for OpContext {
    fn default() -> Self {
        Self::anonymous()
    }
}

impl OpContext {
    pub fn anonymous() -> Self {
        Self {
            principal: Principal::Anonymous,
            tenant: None,
            locale: None,
            request_id: None,
            cascade_of: None,
            correlation_id: None,
            causation_id: None,
        }
    }

    pub fn system(reason: impl Into<String>) -> Self {
        Self {
            principal: Principal::system(reason),
            tenant: None,
            locale: None,
            request_id: None,
            cascade_of: None,
            correlation_id: None,
            causation_id: None,
        }
    }

    /// The context of a write a subscriber makes in reaction to `event`, as `principal`: in the
    /// event's tenant, with the event's correlation id kept (the originating request's; the
    /// event's own id when it had none, so the chain starts there) and the event as the cause.
    /// No request id: no request is being served.
    pub fn caused_by(event: &objectos_spec::Event, principal: Principal) -> Self {
        let m = &event.metadata;
        Self {
            principal,
            tenant: m.tenant_id.clone(),
            correlation_id: Some(
                m.correlation_id
                    .clone()
                    .or_else(|| m.request_id.clone())
                    .unwrap_or_else(|| event.id.clone()),
            ),
            causation_id: Some(event.id.clone()),
            ..Self::anonymous()
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

    /// Sets the correlation id (the originating request's id).
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// True when the engine runs this operation as part of a cascade delete.
    pub fn is_cascade(&self) -> bool {
        self.cascade_of.is_some()
    }
}
