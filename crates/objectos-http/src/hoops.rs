//! Cross-cutting hoops (salvo middleware): request context and id, tracing span, panic catching,
//! CORS and compression that only run when the request asks for them, body-size limit, JSON
//! content-type check, and the JSON catcher for unmatched routes.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures_util::FutureExt;
use objectos_data::{OpContext, Principal};
use salvo::http::header::{
    ACCEPT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, ORIGIN, VARY,
};
use salvo::http::{Method, StatusCode};
use salvo::prelude::*;
use tracing::Instrument;

use crate::error::HttpError;

/// Header carrying the request id in both directions.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Request-scoped identity, stored in the [`Depot`] by type.
///
/// The HTTP plugin inserts it with an anonymous principal; an auth plugin's hoop (mounted after
/// the request-context hoop) replaces `principal`, `tenant` and `locale` once it has resolved
/// the session.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub principal: Principal,
    pub tenant: Option<String>,
    pub locale: Option<String>,
}

impl RequestContext {
    /// The engine operation context for this request.
    pub fn op_context(&self) -> OpContext {
        OpContext {
            principal: self.principal.clone(),
            tenant: self.tenant.clone(),
            locale: self.locale.clone(),
            request_id: Some(self.request_id.clone()),
        }
    }
}

/// Reads the request context from the depot, falling back to an anonymous one for handlers
/// mounted outside the root router (tests that build a bare router).
pub fn op_context(depot: &Depot) -> OpContext {
    depot
        .get_typed::<RequestContext>()
        .map(RequestContext::op_context)
        .unwrap_or_else(|_| OpContext::anonymous())
}

/// A client-supplied id is echoed only when it is short and printable, so it cannot forge log lines.
fn acceptable_request_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Assigns the request id (client's `X-Request-Id` when acceptable, else a fresh UUID v7), echoes it,
/// stores the [`RequestContext`], and runs the rest of the chain inside a tracing span.
#[handler]
pub async fn request_context(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let locale = req
        .headers()
        .get("accept-language")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split([',', ';']).next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty() && v != "*");
    depot.insert_typed(RequestContext {
        request_id: request_id.clone(),
        principal: Principal::Anonymous,
        tenant: None,
        locale,
    });
    let span = tracing::info_span!(
        "http.request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %request_id,
    );
    let started = Instant::now();
    async {
        ctrl.call_next(req, depot, res).await;
        let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
        tracing::debug!(
            status,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "Request served."
        );
    }
    .instrument(span)
    .await;
}

/// Turns a panic anywhere below into a 500 JSON error instead of a dropped connection.
#[handler]
pub async fn catch_panic(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let outcome = AssertUnwindSafe(ctrl.call_next(req, depot, res))
        .catch_unwind()
        .await;
    if let Err(payload) = outcome {
        let detail = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
        // Whatever the handler had written is discarded: a half-built response must not escape.
        res.take_body();
        res.headers_mut().remove(CONTENT_LENGTH);
        res.headers_mut()
            .remove(salvo::http::header::CONTENT_ENCODING);
        res.render(HttpError::Internal(format!("handler panicked: {detail}")));
        ctrl.skip_rest();
    }
}

/// CORS only for requests that carry an `Origin` header: requests without one (same-origin
/// pages, servers, scripts) are not CORS requests, so the CORS handler's header work is skipped
/// for them. They still get the `Vary` the handler would have added, so a shared cache never
/// answers a cross-origin request with a response built without CORS headers.
pub struct CorsWhenOrigin(pub salvo::cors::CorsHandler);

impl std::fmt::Debug for CorsWhenOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CorsWhenOrigin")
    }
}

/// What salvo's CORS handler puts in `Vary` (its default selectors).
const CORS_VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

#[async_trait]
impl Handler for CorsWhenOrigin {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        if req.headers().contains_key(ORIGIN) {
            self.0.handle(req, depot, res, ctrl).await;
            return;
        }
        ctrl.call_next(req, depot, res).await;
        res.headers_mut().append(VARY, CORS_VARY);
    }
}

/// Compression only for requests that send `Accept-Encoding` (without it the handler could only
/// negotiate "identity"); the wrapped handler keeps its minimum size, so small bodies such as a
/// single record go out as they are.
pub struct CompressWhenAccepted(pub salvo::compression::Compression);

impl std::fmt::Debug for CompressWhenAccepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompressWhenAccepted")
    }
}

#[async_trait]
impl Handler for CompressWhenAccepted {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        if req.headers().contains_key(ACCEPT_ENCODING) {
            self.0.handle(req, depot, res, ctrl).await;
        } else {
            ctrl.call_next(req, depot, res).await;
        }
    }
}

/// Enforces the body-size limit: a declared `Content-Length` over the limit is refused at once,
/// and the body stream is capped so an undeclared (chunked) body fails when read.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub u64);

#[async_trait]
impl Handler for BodyLimit {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.0) {
            res.render(HttpError::PayloadTooLarge { limit: self.0 });
            ctrl.skip_rest();
            return;
        }
        let limit = usize::try_from(self.0).unwrap_or(usize::MAX);
        req.limit_body(limit);
        ctrl.call_next(req, depot, res).await;
    }
}

/// Refuses bodies that declare a non-JSON content type on methods that carry a body.
#[handler]
pub async fn require_json(req: &mut Request, res: &mut Response, ctrl: &mut FlowCtrl) {
    if !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
        return;
    }
    let Some(content_type) = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        // No declared type: the body is tried as JSON, which is what curl users expect.
        return;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_json = essence == "application/json" || essence.ends_with("+json");
    // Browsers' `text/plain` CORS-simple requests are accepted as JSON too, like the reference server.
    if !is_json && essence != "text/plain" && !essence.is_empty() {
        res.render(HttpError::UnsupportedMediaType {
            content_type: content_type.to_owned(),
        });
        ctrl.skip_rest();
    }
}

/// Catcher goal: every error status without a body (no route, wrong method, salvo's own errors)
/// gets the JSON error shape.
#[handler]
pub async fn json_catcher(req: &Request, res: &mut Response) {
    let status = res.status_code.unwrap_or(StatusCode::NOT_FOUND);
    let path = req.uri().path().to_owned();
    let err = match status {
        StatusCode::NOT_FOUND => HttpError::NotFound {
            code: "ROUTE_NOT_FOUND",
            message: format!("No route for {} {path}", req.method()),
        },
        StatusCode::METHOD_NOT_ALLOWED => HttpError::MethodNotAllowed {
            method: req.method().to_string(),
            path,
        },
        StatusCode::PAYLOAD_TOO_LARGE => HttpError::PayloadTooLarge {
            limit: req.secure_max_size() as u64,
        },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => HttpError::UnsupportedMediaType {
            content_type: "unknown".to_owned(),
        },
        other if other.is_server_error() => {
            HttpError::Internal(format!("status {other} without a body"))
        }
        other => HttpError::Status {
            status: other,
            message: format!(
                "Request failed with status {}{}",
                other.as_u16(),
                other
                    .canonical_reason()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
        },
    };
    let body = err.body();
    res.take_body();
    res.status_code(status);
    res.render(Json(body));
}
