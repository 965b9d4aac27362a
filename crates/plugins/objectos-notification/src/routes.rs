//! HTTP routes: the official client's `notifications` namespace under `/api/v1/notifications`
//! (dispatcher envelopes `{success, data}` / `{success: false, error: {code, message,
//! httpStatus}}`) and its `email` namespace, `POST /api/v1/email/send` (a bare
//! `{id, status, messageId}`; errors `{code, message}`), for administrators and callers holding
//! the `notify` permission set or role.

use objectos_data::Principal;
use objectos_http::{RequestContext, RouteContribution, RouteOperation};
use objectos_kernel::contracts::EmailRequest;
use objectos_spec::manifest::services;
use salvo::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::NotificationError;
use crate::prefs;
use crate::service::{InboxQuery, NotificationService, Preference};

/// Where the inbox routes are mounted, relative to `/api/v1`.
pub const MOUNT: &str = "notifications";

/// Where the email route is mounted, relative to `/api/v1`.
pub const EMAIL_MOUNT: &str = "email";

/// The permission set or role that lets a non-administrator send email.
pub const NOTIFY_CAPABILITY: &str = "notify";

/// Largest JSON body.
pub const JSON_LIMIT: usize = 256 * 1024;

/// Most ids one `markRead` call takes.
pub const MAX_IDS: usize = 1000;

/// Most preferences one `PUT preferences` call sets.
pub const MAX_PREFERENCES: usize = 100;

/// The inbox contribution (service `notification`, advertised as the `notifications` route).
pub fn contribution(service: NotificationService) -> RouteContribution {
    RouteContribution::new(MOUNT, move || inbox_router(service.clone()))
        .service(services::NOTIFICATION)
        .operations(inbox_operations())
}

/// The `email` contribution (a compatibility mount: discovery advertises `notifications`).
pub fn email_contribution(service: NotificationService) -> RouteContribution {
    RouteContribution::new(EMAIL_MOUNT, move || email_router(service.clone()))
        .compat()
        .operations(email_operations())
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    List,
    Read,
    ReadAll,
    Send,
    Preferences,
    SetPreferences,
    UnsubscribeInfo,
    Unsubscribe,
}

struct Route {
    service: NotificationService,
    kind: Kind,
}

fn inbox_router(service: NotificationService) -> Router {
    let r = |kind| Route {
        service: service.clone(),
        kind,
    };
    Router::new()
        .get(r(Kind::List))
        .push(Router::with_path("read").post(r(Kind::Read)))
        .push(Router::with_path("read/all").post(r(Kind::ReadAll)))
        .push(
            Router::with_path("preferences")
                .get(r(Kind::Preferences))
                .put(r(Kind::SetPreferences)),
        )
        .push(
            Router::with_path("unsubscribe")
                .get(r(Kind::UnsubscribeInfo))
                .post(r(Kind::Unsubscribe)),
        )
}

fn email_router(service: NotificationService) -> Router {
    Router::with_path("send").post(Route {
        service,
        kind: Kind::Send,
    })
}

fn envelope(data: Value) -> Value {
    json!({ "type": "object", "required": ["success", "data"], "properties": {
        "success": { "const": true }, "data": data } })
}

fn dispatcher_error() -> Value {
    json!({ "anyOf": [
        { "type": "object", "required": ["success", "error"], "properties": {
            "success": { "const": false },
            "error": { "type": "object", "required": ["code", "message"], "properties": {
                "code": { "type": "string" }, "message": { "type": "string" },
                "httpStatus": { "type": "integer" } } } } },
        { "$ref": "#/components/schemas/Error" }
    ] })
}

/// The inbox operations, for the OpenAPI document.
pub fn inbox_operations() -> Vec<RouteOperation> {
    let s = json!({ "type": "string" });
    let item = json!({ "type": "object", "required": ["id", "type", "title", "body", "read", "createdAt"],
        "properties": { "id": s, "type": s, "title": s, "body": s, "read": { "type": "boolean" },
            "actionUrl": s, "data": { "type": "object" }, "createdAt": s } });
    let count = json!({ "type": "object", "required": ["success", "readCount"], "properties": {
        "success": { "type": "boolean" }, "readCount": { "type": "integer", "minimum": 0 } } });
    let pref = json!({ "type": "object", "required": ["channel", "topic", "enabled"], "properties": {
        "channel": { "enum": prefs::CHANNELS }, "topic": s, "enabled": { "type": "boolean" } } });
    let prefs_schema = json!({ "type": "object", "required": ["preferences"], "properties": {
        "preferences": { "type": "array", "items": pref, "maxItems": MAX_PREFERENCES } } });
    let unsub = json!({ "type": "object", "required": ["channel", "topic", "unsubscribed"],
        "properties": { "channel": s, "topic": s, "unsubscribed": { "type": "boolean" } } });
    vec![
        RouteOperation::get(
            "",
            "The caller's notifications, newest first (query: read=true|false, type, limit)",
        )
        .returns(envelope(
            json!({ "type": "object", "required": ["notifications", "unreadCount"],
                "properties": { "notifications": { "type": "array", "items": item },
                    "unreadCount": { "type": "integer", "minimum": 0 } } }),
        )),
        RouteOperation::post("read", "Marks the caller's notifications `ids` read")
            .body(
                json!({ "type": "object", "required": ["ids"], "properties": {
                "ids": { "type": "array", "items": { "type": "string" }, "maxItems": MAX_IDS } } }),
            )
            .returns(envelope(count.clone())),
        RouteOperation::post("read/all", "Marks every notification of the caller read")
            .returns(envelope(count)),
        RouteOperation::get(
            "preferences",
            "The caller's channel and topic preferences in the current organization",
        )
        .returns(envelope(prefs_schema.clone())),
        RouteOperation::new(
            salvo::http::Method::PUT,
            "preferences",
            "Sets some of the caller's preferences (the others stay); answers them all",
        )
        .body(prefs_schema.clone())
        .returns(envelope(prefs_schema)),
        RouteOperation::get(
            "unsubscribe",
            "What the signed unsubscribe link `token` turns off (changes nothing)",
        )
        .returns(envelope(unsub.clone()))
        .public(),
        RouteOperation::post(
            "unsubscribe",
            "One-click unsubscribe (RFC 8058): turns off what the signed `token` names",
        )
        .returns(envelope(unsub))
        .public(),
    ]
    .into_iter()
    .map(|o| o.errors(dispatcher_error()))
    .collect()
}

/// The email operation, for the OpenAPI document.
pub fn email_operations() -> Vec<RouteOperation> {
    let s = json!({ "type": "string" });
    let addresses = json!({ "anyOf": [s, { "type": "array", "items": s }] });
    vec![
        RouteOperation::post(
            "send",
            "Queues an email (administrators, or the `notify` permission set or role)",
        )
        .body(
            json!({ "type": "object", "required": ["to"], "properties": {
                "to": addresses, "cc": addresses, "bcc": addresses, "subject": s, "text": s,
                "html": s, "from": s, "replyTo": s, "sentBy": s, "template": s, "locale": s,
                "variables": { "type": "object" }, "idempotencyKey": s, "topic": s,
                "recipientId": s } }),
        )
        .returns(
            json!({ "type": "object", "required": ["id", "status"], "properties": {
                "id": s, "status": { "enum": ["queued", "sent", "delivered", "failed"] },
                "messageId": s } }),
        )
        .errors(json!({ "anyOf": [
                { "type": "object", "required": ["code", "message"], "properties": {
                    "code": s, "message": s } },
                { "$ref": "#/components/schemas/Error" }
            ] })),
    ]
}

/// Who calls: user id and organization.
struct Who {
    principal: Principal,
    tenant: Option<String>,
}

fn who(depot: &Depot) -> Who {
    match depot.get_typed::<RequestContext>() {
        Ok(cx) => Who {
            principal: cx.principal.clone(),
            tenant: cx.tenant.clone(),
        },
        Err(_) => Who {
            principal: Principal::Anonymous,
            tenant: None,
        },
    }
}

fn user_of(w: &Who) -> Result<&str, NotificationError> {
    match &w.principal {
        Principal::User { id, .. } => Ok(id),
        // The inbox belongs to users; system and anonymous callers have none.
        Principal::System { .. } => Err(NotificationError::PermissionDenied(
            "only users have an inbox".into(),
        )),
        Principal::Anonymous => Err(NotificationError::Unauthenticated),
    }
}

fn may_send(w: &Who) -> Result<(), NotificationError> {
    match &w.principal {
        Principal::Anonymous => Err(NotificationError::Unauthenticated),
        Principal::System { .. } => Ok(()),
        Principal::User {
            is_admin,
            roles,
            permission_sets,
            ..
        } => {
            let capable = *is_admin
                || roles.iter().any(|r| r == NOTIFY_CAPABILITY)
                || permission_sets.iter().any(|p| p == NOTIFY_CAPABILITY);
            if capable {
                Ok(())
            } else {
                Err(NotificationError::PermissionDenied(
                    "sending email needs an administrator or the `notify` permission set".into(),
                ))
            }
        }
    }
}

async fn json_body<T: for<'de> Deserialize<'de>>(
    req: &mut Request,
) -> Result<T, NotificationError> {
    let bytes = req
        .payload_with_max_size(JSON_LIMIT)
        .await
        .map_err(|e| NotificationError::Validation(format!("the body could not be read: {e}")))?;
    serde_json::from_slice(bytes)
        .map_err(|e| NotificationError::Validation(format!("the body is not valid: {e}")))
}

/// One address or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Addresses {
    One(String),
    Many(Vec<String>),
}

impl Addresses {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SendBody {
    to: Addresses,
    #[serde(default)]
    cc: Option<Addresses>,
    #[serde(default)]
    bcc: Option<Addresses>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    html: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    reply_to: Option<String>,
    #[serde(default)]
    sent_by: Option<String>,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    variables: Option<Value>,
    #[serde(default)]
    idempotency_key: Option<String>,
    /// A topic recipients may unsubscribe from (mail sent here is never essential).
    #[serde(default)]
    topic: Option<String>,
    /// The user the mail is for (their preferences apply).
    #[serde(default)]
    recipient_id: Option<String>,
}

fn parse_inbox_query(req: &Request) -> Result<InboxQuery, NotificationError> {
    let read = match req.query::<String>("read") {
        None => None,
        Some(v) if v == "true" => Some(true),
        Some(v) if v == "false" => Some(false),
        Some(_) => return Err(NotificationError::InvalidBoolean),
    };
    let limit = match req.query::<String>("limit") {
        None => None,
        Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
            NotificationError::Validation("`limit` must be a positive whole number".into())
        })?),
    };
    Ok(InboxQuery {
        read,
        kind: req.query::<String>("type").filter(|t| !t.is_empty()),
        limit,
    })
}

impl Route {
    async fn run(&self, req: &mut Request, depot: &Depot) -> Result<Value, NotificationError> {
        let w = who(depot);
        let s = &self.service;
        match self.kind {
            Kind::List => {
                let user = user_of(&w)?;
                let q = parse_inbox_query(req)?;
                let page = s.inbox(user, w.tenant.as_deref(), &q).await?;
                Ok(serde_json::to_value(page).unwrap_or_default())
            }
            Kind::Read => {
                let user = user_of(&w)?;
                #[derive(Deserialize)]
                struct Body {
                    ids: Vec<String>,
                }
                let body: Body = json_body(req).await?;
                if body.ids.len() > MAX_IDS {
                    return Err(NotificationError::Validation(format!(
                        "`ids` takes at most {MAX_IDS} ids"
                    )));
                }
                let n = s.mark_read(user, w.tenant.as_deref(), &body.ids).await?;
                Ok(json!({ "success": true, "readCount": n }))
            }
            Kind::ReadAll => {
                let user = user_of(&w)?;
                let n = s.mark_all_read(user, w.tenant.as_deref()).await?;
                Ok(json!({ "success": true, "readCount": n }))
            }
            Kind::Preferences => {
                let user = user_of(&w)?;
                let list = s.preferences(user, w.tenant.as_deref()).await?;
                Ok(json!({ "preferences": list }))
            }
            Kind::SetPreferences => {
                let user = user_of(&w)?;
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Body {
                    preferences: Vec<Preference>,
                }
                let body: Body = json_body(req).await?;
                if body.preferences.len() > MAX_PREFERENCES {
                    return Err(NotificationError::Validation(format!(
                        "`preferences` takes at most {MAX_PREFERENCES} items"
                    )));
                }
                let list = s
                    .set_preferences(user, w.tenant.as_deref(), &body.preferences)
                    .await?;
                Ok(json!({ "preferences": list }))
            }
            Kind::UnsubscribeInfo | Kind::Unsubscribe => {
                // No session needed: the signed token is the authority (a mail client posts
                // it without cookies, RFC 8058).
                let token = req
                    .query::<String>("token")
                    .filter(|t| !t.is_empty())
                    .ok_or(NotificationError::InvalidToken)?;
                let (u, done) = if matches!(self.kind, Kind::Unsubscribe) {
                    (s.unsubscribe(&token).await?, true)
                } else {
                    (s.read_unsubscribe(&token)?, false)
                };
                Ok(json!({ "channel": u.channel, "topic": u.topic, "unsubscribed": done }))
            }
            Kind::Send => {
                may_send(&w)?;
                let body: SendBody = json_body(req).await?;
                let template = body
                    .template
                    .map(|name| objectos_kernel::contracts::TemplateRef {
                        name,
                        locale: body.locale.clone(),
                        variables: body.variables.clone().unwrap_or_else(|| json!({})),
                    });
                let sent_by = body
                    .sent_by
                    .or_else(|| w.principal.user_id().map(str::to_owned));
                let request = EmailRequest {
                    to: body.to.into_vec(),
                    cc: body.cc.map(Addresses::into_vec).unwrap_or_default(),
                    bcc: body.bcc.map(Addresses::into_vec).unwrap_or_default(),
                    subject: body.subject.unwrap_or_default(),
                    text: body.text,
                    html: body.html,
                    template,
                    from: body.from,
                    reply_to: body.reply_to,
                    tenant: w.tenant.clone(),
                    sent_by,
                    idempotency_key: body.idempotency_key,
                    topic: body.topic,
                    essential: false,
                    recipient_id: body.recipient_id,
                };
                let d = s.queue_email(request).await?;
                Ok(json!({ "id": d.id, "status": d.status.as_str(), "messageId": d.message_id }))
            }
        }
    }
}

#[async_trait]
impl Handler for Route {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        let bare = matches!(self.kind, Kind::Send);
        match self.run(req, depot).await {
            Ok(data) if bare => res.render(Json(data)),
            Ok(data) => res.render(Json(json!({ "success": true, "data": data }))),
            Err(e) => {
                let status = e.status();
                if status.is_server_error() {
                    tracing::warn!(plugin = crate::PLUGIN_ID, error = %e, "Notification request failed.");
                }
                // Server-side problems are logged, not shown: their text may name internals.
                let message = if status.is_server_error() {
                    "the request could not be completed".to_owned()
                } else {
                    e.to_string()
                };
                res.status_code(status);
                if bare {
                    res.render(Json(json!({ "code": e.code(), "message": message })));
                } else {
                    res.render(Json(json!({
                        "success": false,
                        "error": { "code": e.code(), "message": message, "httpStatus": status.as_u16() },
                    })));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operations_describe_every_route() {
        let svc = NotificationService::new(crate::NotificationSettings::default());
        assert!(contribution(svc.clone()).undocumented().is_empty());
        assert!(email_contribution(svc).undocumented().is_empty());
    }
}
