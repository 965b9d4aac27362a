//! Turning engine operations and bus events into audit events: the data interceptor, the
//! request-scoped client info (ip, user agent) and the bus event mapping.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use objectos_data::{DataError, HookContext, Interceptor, Operation, Principal};
use objectos_spec::Event;
use serde_json::Value;

use crate::event::{Actor, AuditEvent};
use crate::redact::Redactor;
use crate::store;

/// Where a request came from; set per request by the plugin's HTTP hoop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

tokio::task_local! {
    static CLIENT: ClientInfo;
}

/// Runs `f` with `info` as the client of every engine operation it performs (the HTTP hoop wraps
/// each request in this; engine calls run inside the request's task, so the interceptor sees it).
pub async fn with_client<F: Future>(info: ClientInfo, f: F) -> F::Output {
    CLIENT.scope(info, f).await
}

fn current_client() -> ClientInfo {
    CLIENT.try_with(Clone::clone).unwrap_or_default()
}

/// The actor of a principal.
pub fn actor_of(p: &Principal) -> Actor {
    match p {
        Principal::Anonymous => Actor {
            kind: "anonymous".into(),
            ..Actor::default()
        },
        Principal::User { id, .. } => Actor {
            kind: "user".into(),
            id: Some(id.clone()),
            ..Actor::default()
        },
        Principal::System { reason } => Actor {
            kind: "system".into(),
            reason: Some(reason.clone()),
            ..Actor::default()
        },
    }
}

/// The after-interceptor on create, update and delete that writes the audit event (and field
/// history) through the operation's transaction.
#[derive(Debug, Clone)]
pub struct AuditInterceptor {
    redactor: Arc<Redactor>,
    /// Chain heads this process wrote: one statement per audited write while they hold.
    heads: Arc<store::HeadCache>,
}

/// The interceptor's order: late, so hooks that change the result run first; a hook ordered after
/// it that fails still rolls the audit row back with the change.
pub const INTERCEPTOR_ORDER: i32 = 10_000;

impl AuditInterceptor {
    pub fn new(redactor: Arc<Redactor>) -> Self {
        Self {
            redactor,
            heads: Arc::new(store::HeadCache::default()),
        }
    }

    /// The event for one write, not yet chained.
    pub fn event_for(&self, hook: &HookContext<'_>) -> AuditEvent {
        let op = hook.operation;
        let result = hook.result.as_deref();
        let (before, after) = match op {
            Operation::Create => (None, result),
            Operation::Delete => (hook.previous, None),
            _ => (hook.previous, result),
        };
        let record_id = after
            .or(before)
            .and_then(|r| r.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let client = current_client();
        let mut actor = actor_of(&hook.cx.principal);
        actor.ip_address = client.ip;
        actor.user_agent = client.user_agent;
        let mut ev = AuditEvent::new(format!("data.{}", op.as_str()), actor);
        ev.tenant_id = hook.cx.tenant.clone();
        ev.object = Some(hook.object.name.clone());
        ev.record_id = record_id;
        ev.operation = Some(op.as_str().to_owned());
        ev.changes = self.redactor.diff(hook.object, before, after);
        ev.request_id = hook.cx.request_id.clone();
        // A delete the engine ran because its parent was deleted (deleteBehavior: cascade)
        // says so, so the trail shows why a record the actor never named disappeared.
        if let Some(origin) = &hook.cx.cascade_of {
            ev.details = serde_json::json!({
                "cascadeOf": {"object": origin.object, "recordId": origin.id}
            });
        }
        // A write a subscriber made in reaction to an event says which event and which request
        // it goes back to, so the trail shows causation. A request's own writes have neither
        // (their correlation is their request id), which keeps their rows as before.
        let cx = hook.cx;
        trace_details(
            &mut ev.details,
            cx.correlation_id.as_deref(),
            cx.causation_id.as_deref(),
            cx.request_id.as_deref(),
        );
        ev
    }
}

#[async_trait]
impl Interceptor for AuditInterceptor {
    fn name(&self) -> &str {
        "audit"
    }

    fn order(&self) -> i32 {
        INTERCEPTOR_ORDER
    }

    fn applies_to(&self, _object: &str, op: Operation) -> bool {
        op.is_write()
    }

    async fn after(&self, hook: &mut HookContext<'_>) -> objectos_data::Result<()> {
        let ev = self.event_for(hook);
        // The tables exist: the data plugin created them from the contributed schema before
        // it installed this interceptor.
        let tx = hook.write_tx()?;
        let ev = store::append_cached(&tx, ev, &self.heads)
            .await
            .map_err(|e| DataError::Internal(format!("audit: {e}")))?;
        // Field history covers the whole life of a record: the values it was created with
        // (old value null), every change, and the values it had when deleted (new value null).
        if hook.object.enable.track_history && !ev.changes.is_empty() {
            store::insert_history(&tx, &ev)
                .await
                .map_err(|e| DataError::Internal(format!("audit field history: {e}")))?;
        }
        Ok(())
    }
}

/// Adds `correlationId` (when it is not simply the row's own request id) and `causationId` to
/// `details`. New keys only in rows written from now on: existing rows, and their hashes, are
/// untouched, so chains recorded before still verify.
fn trace_details(
    details: &mut Value,
    correlation: Option<&str>,
    causation: Option<&str>,
    request_id: Option<&str>,
) {
    let correlation = correlation.filter(|c| Some(*c) != request_id);
    if correlation.is_none() && causation.is_none() {
        return;
    }
    if !details.is_object() {
        *details = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(m) = details {
        if let Some(c) = correlation {
            m.insert("correlationId".into(), Value::String(c.to_owned()));
        }
        if let Some(c) = causation {
            m.insert("causationId".into(), Value::String(c.to_owned()));
        }
    }
}

fn payload_str(p: &Value, key: &str) -> Option<String> {
    p.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Maps a bus event (`auth.*`, `authz.*`, `security.*`) to an audit event. The payload is
/// `{userId, email, tenantId, ip, userAgent, requestId, reason?, ...}`; unknown keys are kept in
/// `details` after redaction.
pub fn event_from_bus(redactor: &Redactor, event: &Event) -> AuditEvent {
    let p = &event.payload;
    let user = payload_str(p, "actorId")
        .or_else(|| payload_str(p, "userId"))
        .or_else(|| event.metadata.user_id.clone());
    let actor = Actor {
        kind: payload_str(p, "actorType").unwrap_or_else(|| {
            if user.is_some() {
                "user".into()
            } else {
                "anonymous".into()
            }
        }),
        id: user,
        reason: None,
        ip_address: payload_str(p, "ip").or_else(|| payload_str(p, "ipAddress")),
        user_agent: payload_str(p, "userAgent"),
    };
    let mut ev = AuditEvent::new(event.name.clone(), actor);
    // The organization an event belongs to: `tenantId`, or `organizationId` (permission
    // assignments are made per organization and name it), or the bus metadata's tenant.
    ev.tenant_id = payload_str(p, "tenantId")
        .or_else(|| payload_str(p, "organizationId"))
        .or_else(|| event.metadata.tenant_id.clone());
    ev.request_id = payload_str(p, "requestId")
        .or_else(|| event.metadata.request_id.clone())
        .or_else(|| event.metadata.correlation_id.clone());
    ev.description = payload_str(p, "reason");
    ev.object = payload_str(p, "object");
    ev.record_id = payload_str(p, "recordId").or_else(|| payload_str(p, "targetId"));
    let failed = ["failed", "denied", "locked", "suspicious", "breach"]
        .iter()
        .any(|w| event.name.contains(w));
    if failed {
        ev.result = "failure".into();
        ev.severity = "warning".into();
    }
    let mut details = p.clone();
    redactor.redact_value(&mut details);
    if let Value::Object(m) = &mut details {
        m.insert("sourceEventId".into(), Value::String(event.id.clone()));
        m.insert(
            "source".into(),
            Value::String(event.metadata.source.clone()),
        );
    }
    trace_details(
        &mut details,
        event.metadata.correlation_id.as_deref(),
        event.metadata.causation_id.as_deref(),
        ev.request_id.as_deref(),
    );
    ev.details = details;
    ev
}
