//! Cross-cutting hoops (salvo middleware): request context and id, client address (through
//! trusted proxies), tracing span, panic catching, CORS and compression that only run when the
//! request asks for them, body-size limit, JSON content-type check, and the JSON catcher for
//! unmatched routes.

use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures_util::FutureExt;
use objectos_data::{OpContext, Principal};
use salvo::http::header::{
    ACCEPT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, ORIGIN, VARY,
};
use salvo::http::{HeaderMap, Method, StatusCode};
use salvo::prelude::*;
use tracing::Instrument;

use crate::config::IpCidr;
use crate::error::HttpError;
use crate::state::ApiState;

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
    /// The client's address (see [`client_ip`]): what rate limits, sessions and audit rows use.
    /// `None` when the connection has no IP peer (a test request, a Unix socket).
    pub client_ip: Option<IpAddr>,
}

impl RequestContext {
    /// The engine operation context for this request.
    pub fn op_context(&self) -> OpContext {
        OpContext {
            principal: self.principal.clone(),
            tenant: self.tenant.clone(),
            locale: self.locale.clone(),
            request_id: Some(self.request_id.clone()),
            cascade_of: None,
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

/// One hop of a forwarding header: `203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, optionally quoted (`Forwarded`). `None` for anything else
/// (`unknown`, an obfuscated `_name`, garbage).
fn parse_hop(text: &str) -> Option<IpAddr> {
    let t = text.trim().trim_matches('"');
    let ip = if let Some(rest) = t.strip_prefix('[') {
        rest.split_once(']')?.0.parse::<IpAddr>().ok()?
    } else {
        match t.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => t.parse::<SocketAddr>().ok()?.ip(),
        }
    };
    Some(ip.to_canonical())
}

/// The hops a request's forwarding headers list, nearest last: `X-Forwarded-For` when the
/// request has one, else the `for=` of each `Forwarded` element (RFC 7239). Only one header is
/// read, so a proxy that appends to one cannot be undercut by a client-written other: a proxy
/// that sets `Forwarded` must drop a client's `X-Forwarded-For`.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| {
        headers
            .get_all(name)
            .iter()
            // A value that is not text is an unreadable hop.
            .map(|v| v.to_str().unwrap_or(""))
            .collect::<Vec<_>>()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff
            .iter()
            .flat_map(|v| v.split(','))
            .map(parse_hop)
            .collect();
    }
    values("forwarded")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim().eq_ignore_ascii_case("for").then_some(value)
            })
        })
        .map(|value| value.and_then(parse_hop))
        .collect()
}

/// The client address of a request from `peer` (the TCP peer). Unless `peer` is in `trusted`,
/// it is the client and forwarding headers are ignored (anyone can write them). From a trusted
/// proxy, the forwarding header's hops are walked from the nearest: each trusted hop is passed
/// over, and the first one that is not trusted is the client (hops further left were written by
/// that client and prove nothing). An unreadable hop stops the walk at the last trusted address;
/// all hops trusted gives the farthest.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpCidr]) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut client = peer;
    for hop in forwarded_hops(headers).into_iter().rev() {
        let Some(ip) = hop else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
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
    let trusted = depot
        .get_typed::<ApiState>()
        .map(|state| state.config().trusted_proxies.as_slice())
        .unwrap_or_default();
    let client_ip = client_ip(req.remote_addr().ip(), req.headers(), trusted);
    depot.insert_typed(RequestContext {
        request_id: request_id.clone(),
        principal: Principal::Anonymous,
        tenant: None,
        locale,
        client_ip,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn client_ip_believes_only_trusted_peers() {
        let trusted: Vec<IpCidr> = ["10.0.0.0/8", "::1"]
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        let spoof = headers(&[("x-forwarded-for", "198.51.100.1")]);
        // No trusted proxies, or an untrusted peer: the peer, whatever the header says.
        assert_eq!(
            client_ip(Some(ip("203.0.113.5")), &spoof, &[]),
            Some(ip("203.0.113.5"))
        );
        assert_eq!(
            client_ip(Some(ip("203.0.113.5")), &spoof, &trusted),
            Some(ip("203.0.113.5"))
        );
        assert_eq!(client_ip(None, &spoof, &trusted), None);
        // A trusted peer: the rightmost hop that is not a trusted proxy.
        let chain = headers(&[
            ("x-forwarded-for", "198.51.100.1, 203.0.113.9"),
            ("x-forwarded-for", "10.1.1.1"),
        ]);
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), &chain, &trusted),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_ip(Some(ip("::ffff:10.0.0.2")), &chain, &trusted),
            Some(ip("203.0.113.9"))
        );
        // No header, every hop trusted, an unreadable hop.
        assert_eq!(
            client_ip(Some(ip("::1")), &HeaderMap::new(), &trusted),
            Some(ip("::1"))
        );
        let inner = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(
            client_ip(Some(ip("::1")), &inner, &trusted),
            Some(ip("10.9.9.9"))
        );
        let junk = headers(&[("x-forwarded-for", "198.51.100.1, unknown, 10.1.1.1")]);
        assert_eq!(
            client_ip(Some(ip("::1")), &junk, &trusted),
            Some(ip("10.1.1.1"))
        );
        // Ports and brackets.
        let ported = headers(&[("x-forwarded-for", "[2001:db8::7]:4711")]);
        assert_eq!(
            client_ip(Some(ip("::1")), &ported, &trusted),
            Some(ip("2001:db8::7"))
        );
        // `Forwarded` only without `X-Forwarded-For`.
        let fwd = headers(&[(
            "forwarded",
            r#"for=198.51.100.1;proto=https, For="[2001:db8::9]:80";by=10.0.0.1"#,
        )]);
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &fwd, &trusted),
            Some(ip("2001:db8::9"))
        );
        let both = headers(&[
            ("forwarded", "for=198.51.100.1"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &both, &trusted),
            Some(ip("203.0.113.9"))
        );
        let hidden = headers(&[("forwarded", "for=_hidden, for=10.2.2.2")]);
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &hidden, &trusted),
            Some(ip("10.2.2.2"))
        );
    }
}
