//! HTTP routes under `/api/v1/audit`: events, trail, field history, export; plus the hoop that
//! records the client's ip and user agent for the interceptor.
//!
//! Access: until the permissions plugin can answer, only an authenticated admin
//! (`Principal::User { is_admin: true }`) or the system principal may read; anonymous gets 401
//! and other users 403, both as `{error, code, message}`. A caller whose request carries a tenant
//! only sees that tenant's events.

use std::sync::Arc;

use objectos_http::{RequestContext, RouteOperation};
use salvo::http::StatusCode;
use salvo::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use salvo::prelude::*;
use serde_json::json;

use crate::error::AuditError;
use crate::event::format_ts;
use crate::plugin::Shared;
use crate::recorder::{ClientInfo, with_client};
use crate::store::{self, EventFilter};

/// Default page size of the list routes.
pub const DEFAULT_PAGE: u64 = 50;
/// Largest page size.
pub const MAX_PAGE: u64 = 1000;

fn error(res: &mut Response, status: StatusCode, code: &str, message: &str) {
    res.status_code(status);
    res.render(Json(
        json!({ "error": message, "code": code, "message": message }),
    ));
}

fn invalid(res: &mut Response, param: &str, message: &str) {
    res.status_code(StatusCode::BAD_REQUEST);
    res.render(Json(json!({
        "error": message, "code": "INVALID_QUERY", "message": message, "param": param,
    })));
}

/// Checks the caller (administrators and the system only, see [`objectos_http::gate`]); on
/// refusal the response is already written and `None` is returned.
fn authorize(depot: &Depot, res: &mut Response) -> Option<RequestContext> {
    match objectos_http::gate::require_admin(depot, "read the audit log") {
        Ok(cx) => Some(cx.clone()),
        Err(refusal) => {
            res.render(refusal);
            None
        }
    }
}

/// Parses `from`/`to`: RFC 3339 or `YYYY-MM-DD` (midnight UTC), normalised to the stored form.
pub fn parse_time(param: &str, raw: &str) -> Result<String, AuditError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(format_ts(t.with_timezone(&chrono::Utc)));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(format_ts(t.and_utc()));
    }
    Err(AuditError::InvalidParam {
        param: param.to_owned(),
        message: format!(
            "`{raw}` is not a time; expected RFC 3339 (2026-11-23T16:45:10Z) or a date (2026-11-23)"
        ),
    })
}

fn parse_u64(req: &Request, param: &str, default: u64, max: u64) -> Result<u64, AuditError> {
    match req.query::<String>(param) {
        None => Ok(default),
        Some(s) => {
            s.parse::<u64>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| AuditError::InvalidParam {
                    param: param.to_owned(),
                    message: format!("`{s}` is not valid; expected an integer from 0 to {max}"),
                })
        }
    }
}

/// Builds the filter from the query string, scoped to the caller's tenant.
fn filter_from(req: &Request, cx: &RequestContext) -> Result<EventFilter, AuditError> {
    let q = |k: &str| req.query::<String>(k).filter(|s| !s.is_empty());
    let mut f = EventFilter {
        event_type: q("eventType"),
        actor: q("actor"),
        object: q("object"),
        record_id: q("recordId"),
        from: q("from").map(|v| parse_time("from", &v)).transpose()?,
        to: q("to").map(|v| parse_time("to", &v)).transpose()?,
        tenant: req.query::<String>("tenant"),
        limit: parse_u64(req, "limit", DEFAULT_PAGE, MAX_PAGE)?,
        offset: parse_u64(req, "offset", 0, u64::from(u32::MAX))?,
        cursor: req.query::<String>("cursor"),
    };
    if f.limit == 0 {
        f.limit = DEFAULT_PAGE;
    }
    if let Some(own) = &cx.tenant {
        if f.tenant.as_ref().is_some_and(|t| t != own) {
            return Err(AuditError::InvalidParam {
                param: "tenant".into(),
                message: "a tenant's caller can only read its own tenant".into(),
            });
        }
        f.tenant = Some(own.clone());
    }
    Ok(f)
}

fn answer_error(res: &mut Response, e: AuditError) {
    match e {
        AuditError::InvalidParam { param, message } if param == "tenant" => {
            error(res, StatusCode::FORBIDDEN, "PERMISSION_DENIED", &message)
        }
        AuditError::InvalidParam { param, message } => {
            invalid(res, &param, &format!("Invalid `{param}`: {message}"))
        }
        AuditError::EngineUnavailable => error(
            res,
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "The audit log is not available yet",
        ),
        other => {
            tracing::error!(error = %other, "Audit route failed.");
            error(
                res,
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "Internal server error",
            )
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Events,
    Trail,
    History,
    Export,
    Verify,
}

struct AuditRoute {
    shared: Arc<Shared>,
    kind: Kind,
}

impl AuditRoute {
    async fn run(
        &self,
        req: &mut Request,
        cx: &RequestContext,
        res: &mut Response,
    ) -> Result<(), AuditError> {
        let engine = self.shared.engine().ok_or(AuditError::EngineUnavailable)?;
        let db = engine.pool();
        let mut f = filter_from(req, cx)?;
        match self.kind {
            Kind::Events | Kind::Trail => {
                if let Kind::Trail = self.kind {
                    f.object = req.param::<String>("object");
                    f.record_id = req.param::<String>("id");
                }
                let page = store::query_events(&db, &f).await?;
                res.render(Json(page));
            }
            Kind::History => {
                let object = req.param::<String>("object").unwrap_or_default();
                let id = req.param::<String>("id").unwrap_or_default();
                let rows =
                    store::query_history(&db, &object, &id, f.tenant.as_deref(), f.limit, f.offset)
                        .await?;
                res.render(Json(
                    json!({ "object": object, "recordId": id, "history": rows }),
                ));
            }
            Kind::Verify => {
                // The caller's tenant's chain (an administrator of an organization), or every
                // chain for a caller without one (the platform administrator, the system).
                let report = crate::plugin::AuditStore::from_engine(engine)
                    .verify(f.tenant.as_deref())
                    .await?;
                res.render(Json(json!({
                    "ok": report.ok(), "tenants": report.tenants, "events": report.events,
                    "broken": report.broken,
                })));
            }
            Kind::Export => {
                let format = req
                    .query::<String>("format")
                    .unwrap_or_else(|| "json".into());
                let events = store::export_all(&db, &f).await?;
                match format.as_str() {
                    "csv" => {
                        res.headers_mut().insert(
                            CONTENT_TYPE,
                            HeaderValue::from_static("text/csv; charset=utf-8"),
                        );
                        res.headers_mut().insert(
                            CONTENT_DISPOSITION,
                            HeaderValue::from_static("attachment; filename=\"audit.csv\""),
                        );
                        res.write_body(store::to_csv(&events)).ok();
                    }
                    "json" => {
                        res.headers_mut().insert(
                            CONTENT_DISPOSITION,
                            HeaderValue::from_static("attachment; filename=\"audit.json\""),
                        );
                        res.render(Json(events));
                    }
                    other => {
                        return Err(AuditError::InvalidParam {
                            param: "format".into(),
                            message: format!("`{other}` is not supported; expected csv or json"),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Handler for AuditRoute {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        let Some(cx) = authorize(depot, res) else {
            return;
        };
        if let Err(e) = self.run(req, &cx, res).await {
            answer_error(res, e);
        }
    }
}

/// The router mounted at `/api/v1/audit`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let r = |kind| AuditRoute {
        shared: shared.clone(),
        kind,
    };
    Router::new()
        .push(Router::with_path("events").get(r(Kind::Events)))
        .push(Router::with_path("trail/{object}/{id}").get(r(Kind::Trail)))
        .push(Router::with_path("history/{object}/{id}").get(r(Kind::History)))
        .push(Router::with_path("export").get(r(Kind::Export)))
        .push(Router::with_path("verify").get(r(Kind::Verify)))
}

/// The operations of [`router`], for the OpenAPI document (kept next to it so both change
/// together; a test checks every route is described). Reading the log needs an administrator.
pub fn operations() -> Vec<RouteOperation> {
    let page = json!({ "type": "object", "properties": {
        "events": { "type": "array", "items": { "type": "object" } }, "total": { "type": "integer" },
        "hasMore": { "type": "boolean" }, "nextCursor": { "type": "string" } } });
    vec![
        RouteOperation::get("events", "Audit events, filtered and paged").returns(page.clone()),
        RouteOperation::get("trail/{object}/{id}", "Audit events of one record").returns(page),
        RouteOperation::get(
            "history/{object}/{id}",
            "Field-level change history of one record",
        ),
        RouteOperation::get(
            "export",
            "Every matching event as JSON or CSV (format=json|csv)",
        ),
        RouteOperation::get(
            "verify",
            "Verifies the hash chain of the caller's organization (every chain without one)",
        )
        .returns(json!({ "type": "object", "properties": {
            "ok": { "type": "boolean" }, "tenants": { "type": "integer" },
            "events": { "type": "integer" },
            "broken": { "type": "array", "items": { "type": "object" } } } })),
    ]
}

/// The hoop that makes the client's ip and user agent visible to the audit interceptor.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientHoop;

#[async_trait]
impl Handler for ClientHoop {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        // The service-level request-context hoop has run already: its client address honours
        // `http.trustedProxies`; the socket peer is only a fallback for a bare router.
        let ip = match depot.get_typed::<objectos_http::RequestContext>() {
            Ok(rc) => rc.client_ip.map(|ip| ip.to_string()),
            Err(_) => req
                .remote_addr()
                .clone()
                .into_std()
                .map(|a| a.ip().to_string()),
        };
        let info = ClientInfo {
            ip,
            user_agent: req
                .headers()
                .get(USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        };
        with_client(info, ctrl.call_next(req, depot, res)).await;
    }
}
