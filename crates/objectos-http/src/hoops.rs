//! Cross-cutting hoops (salvo middleware): request context and id, client address (through
//! trusted proxies), tracing span, panic catching, CORS and compression that only run when the
//! request asks for them, body-size limit, JSON content-type check, the cross-site request
//! forgery guard for cookie-authenticated writes, security response headers, and the JSON
//! catcher for unmatched routes.

use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use objectos_data::{OpContext, Principal};
use salvo::http::header::{
    ACCEPT_ENCODING, AUTHORIZATION, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE,
    HOST, HeaderName, HeaderValue, ORIGIN, REFERER, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY,
    TRANSFER_ENCODING, VARY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use salvo::http::uri::Scheme;
use salvo::http::{HeaderMap, Method, StatusCode};
use salvo::hyper::body::Body as _;
use salvo::prelude::*;
use tracing::Instrument;

use crate::config::{HttpConfig, IpCidr, parse_origin, strip_default_port};
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
    /// The engine operation context for this request. The request starts a correlation: the
    /// events its writes produce, and every write a subscriber makes in reaction, carry its id.
    pub fn op_context(&self) -> OpContext {
        OpContext {
            principal: self.principal.clone(),
            tenant: self.tenant.clone(),
            locale: self.locale.clone(),
            request_id: Some(self.request_id.clone()),
            cascade_of: None,
            correlation_id: Some(self.request_id.clone()),
            causation_id: None,
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
    // Sampling is decided before the span exists. A recorded trace (a drawn root, or a client's
    // well-formed `traceparent`, sampled or not) gets the span the OpenTelemetry layer reads:
    // Salvo has routed the request before the first hoop runs, so the route template (never the
    // raw path, which holds ids) names it through `otel.name`/`otel.kind` when it starts, and
    // the status lands in `http.response.status_code`/`otel.status_code` at its end; `trace_id`
    // is filled in so every log line of the request carries it. Every other request (tracing
    // off, or a new trace not drawn) gets a span with only what log lines use: the log layer
    // formats every field of an info span when it opens, and those extra fields cost a plain
    // GET about 4 % of its instructions (callgrind, #11). An undrawn one sits under an
    // `::untraced` target, which the trace backend never builds a span for (nor for anything
    // below it), so such a request costs what it costs with tracing off. A malformed
    // `traceparent` is ignored: a new trace starts.
    use objectos_kernel::trace::{self, RequestTrace};
    // Names parsed once: a `&str` name is parsed and checked again on every lookup.
    static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
    let header = |name: &HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    let trace = if trace::enabled() {
        trace::request_trace(header(&TRACEPARENT))
    } else {
        RequestTrace::Off
    };
    let traced = matches!(trace, RequestTrace::Root | RequestTrace::Remote(_));
    let span = match trace {
        RequestTrace::Root | RequestTrace::Remote(_) => {
            let route = format!("/{}", req.matched_path().trim_matches('/'));
            let span = tracing::info_span!(
                "http.request",
                method = %req.method(),
                path = %req.uri().path(),
                request_id = %request_id,
                trace_id = tracing::field::Empty,
                http.route = %route,
                http.response.status_code = tracing::field::Empty,
                otel.name = %format_args!("{} {route}", req.method()),
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
            );
            trace::start_request(&span, trace, header(&TRACESTATE));
            span
        }
        // The target stays under `objectos_http`, so log filters by target still match it.
        RequestTrace::Untraced => tracing::info_span!(
            target: "objectos_http::hoops::untraced",
            "http.request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = %request_id,
        ),
        RequestTrace::Off => tracing::info_span!(
            "http.request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = %request_id,
        ),
    };
    let started = Instant::now();
    async {
        ctrl.call_next(req, depot, res).await;
        let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
        if traced {
            let current = tracing::Span::current();
            current.record("http.response.status_code", status);
            if status >= 500 {
                current.record("otel.status_code", "ERROR");
            }
        }
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

/// The session cookie an auth plugin resolves: better-auth's name, which the official client
/// and the ObjectOS auth plugin use.
pub const SESSION_COOKIE: &str = "better-auth.session_token";

/// Whether a request would be authenticated by the session cookie: it carries a non-empty
/// [`SESSION_COOKIE`] and neither a bearer token nor an `X-API-Key`, which an auth hoop prefers
/// over the cookie (the same precedence as the ObjectOS auth plugin's session hoop). Only such a
/// request is one a browser adds a credential to on its own, so only it can be forged cross-site.
pub fn cookie_authenticated(headers: &HeaderMap) -> bool {
    let text = |name: HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let bearer = text(AUTHORIZATION).is_some_and(|v| {
        let mut parts = v.splitn(2, ' ');
        parts
            .next()
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer"))
            && parts.next().is_some()
    });
    if bearer || text(HeaderName::from_static("x-api-key")).is_some_and(|v| !v.is_empty()) {
        return false;
    }
    headers
        .get_all(COOKIE)
        .iter()
        // A cookie header that is not text cannot be parsed by the auth hoop either.
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| name.trim() == SESSION_COOKIE && !value.trim().is_empty())
}

/// `scheme://authority` of an `Origin` value or of a `Referer` URL, with the scheme's default
/// port dropped; `None` for `null`, a non-HTTP scheme or anything unreadable.
fn origin_parts(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.trim().split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some((scheme, strip_default_port(scheme, authority)))
}

/// The values of a forwarding header written by a trusted proxy: every comma-separated item of
/// `x-forwarded-<name>`, else the `<name>=` parameters of `Forwarded`.
fn forwarded_values<'a>(
    headers: &'a HeaderMap,
    x_name: &'static str,
    param: &'static str,
) -> impl Iterator<Item = &'a str> + 'a {
    let x: Vec<&str> = headers
        .get_all(x_name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let from_forwarded = if x.is_empty() {
        headers
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split([',', ';']))
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case(param)
                    .then(|| value.trim().trim_matches('"'))
            })
            .collect()
    } else {
        Vec::new()
    };
    x.into_iter().chain(from_forwarded)
}

/// Why a cookie-authenticated write was refused.
const NO_ORIGIN: &str = "A request authenticated by the session cookie must name its origin (Origin or Referer); other clients authenticate with a bearer token or an API key";
const FOREIGN_ORIGIN: &str = "The request's origin is neither this server nor a trusted origin; a request authenticated by the session cookie is only accepted from those";

/// Refuses cross-site request forgery: a request with an unsafe method (anything but GET, HEAD,
/// OPTIONS, TRACE) that is [`cookie_authenticated`] must come from this server's own origin or a
/// trusted one (`Origin`, or `Referer` without it; 403 `CSRF_ORIGIN_MISMATCH` otherwise,
/// including when it names none), and its body, if it has one, must be declared JSON (415
/// `UNSUPPORTED_MEDIA_TYPE`): a page elsewhere can make a browser send a form or a `text/plain`
/// body with the user's cookie and no preflight, but not an `application/json` one. Requests with
/// a bearer token or an API key, and safe methods, pass untouched.
///
/// "Own origin" is the request's `Host` (or, from a trusted proxy, a forwarded host) with the
/// default port of the origin's scheme dropped on both sides; when the request is known to have
/// arrived over HTTPS (TLS, or a trusted proxy's `X-Forwarded-Proto`/`proto=`) the origin must be
/// `https` too. Trusted origins are `http.trustedOrigins` and the CORS origins.
#[derive(Debug, Clone)]
pub struct CsrfGuard {
    /// Normalized `scheme://authority` values ([`parse_origin`]).
    trusted_origins: Arc<[String]>,
    trusted_proxies: Arc<[IpCidr]>,
}

impl CsrfGuard {
    /// The guard for `config`: its trusted origins plus every CORS origin that is a real origin
    /// (`*` trusts nothing: it only means "readable by anyone", without credentials).
    pub fn new(config: &HttpConfig) -> Self {
        let mut origins: Vec<String> = Vec::new();
        for text in config.trusted_origins.iter().chain(&config.cors_origins) {
            match parse_origin(text) {
                Ok(origin) if !origins.contains(&origin) => origins.push(origin),
                Ok(_) => {}
                Err(e) if text.trim() != "*" => {
                    tracing::warn!(origin = %text, error = %e, "An origin that is not trusted for cookie-authenticated writes.");
                }
                Err(_) => {}
            }
        }
        Self {
            trusted_origins: origins.into(),
            trusted_proxies: config.trusted_proxies.clone().into(),
        }
    }

    /// Whether `scheme://authority` is the server itself or a trusted origin.
    fn origin_allowed(&self, req: &Request, scheme: &str, authority: &str) -> bool {
        let configured = self.trusted_origins.iter().any(|o| {
            o.split_once("://").is_some_and(|(s, a)| {
                s.eq_ignore_ascii_case(scheme) && a.eq_ignore_ascii_case(authority)
            })
        });
        if configured {
            return true;
        }
        let headers = req.headers();
        let same_host =
            |host: &str| strip_default_port(scheme, host.trim()).eq_ignore_ascii_case(authority);
        let peer_trusted = req.remote_addr().ip().is_some_and(|ip| {
            let ip = ip.to_canonical();
            self.trusted_proxies.iter().any(|net| net.contains(ip))
        });
        // The scheme the client used: the proxy nearest to us wrote the last value.
        let https = *req.scheme() == Scheme::HTTPS
            || (peer_trusted
                && forwarded_values(headers, "x-forwarded-proto", "proto")
                    .last()
                    .is_some_and(|p| p.eq_ignore_ascii_case("https")));
        if https && !scheme.eq_ignore_ascii_case("https") {
            return false;
        }
        let direct = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| headers.get(HOST).and_then(|v| v.to_str().ok()))
            .is_some_and(same_host);
        direct
            || (peer_trusted
                && forwarded_values(headers, "x-forwarded-host", "host").any(same_host))
    }
}

/// Whether a request has a body: its stream is not already at its end (HTTP/2 needs no length
/// header), a non-zero (or unreadable) `Content-Length`, or a `Transfer-Encoding`.
fn has_body(req: &Request) -> bool {
    let headers = req.headers();
    !req.body().is_end_stream()
        || headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) != Some(0))
}

/// `application/json` or a `+json` type (`application/merge-patch+json`), parameters ignored.
fn is_json_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .as_bytes();
    essence.eq_ignore_ascii_case(b"application/json")
        || (essence.len() > 5 && essence[essence.len() - 5..].eq_ignore_ascii_case(b"+json"))
}

#[async_trait]
impl Handler for CsrfGuard {
    async fn handle(
        &self,
        req: &mut Request,
        _depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        // The GET path returns here, before any header is looked at.
        if matches!(
            *req.method(),
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) || !cookie_authenticated(req.headers())
        {
            return;
        }
        let headers = req.headers();
        let named = headers
            .get(ORIGIN)
            .or_else(|| headers.get(REFERER))
            .map(|v| v.to_str().ok().and_then(origin_parts));
        let refusal = match named {
            None => Some(NO_ORIGIN),
            // `Origin: null` (sandboxed frames, privacy redirects) or an unreadable value.
            Some(None) => Some(FOREIGN_ORIGIN),
            Some(Some((scheme, authority))) => {
                (!self.origin_allowed(req, scheme, authority)).then_some(FOREIGN_ORIGIN)
            }
        };
        if let Some(message) = refusal {
            res.render(HttpError::CsrfOrigin { message });
            ctrl.skip_rest();
            return;
        }
        if has_body(req) {
            let headers = req.headers();
            let content_type = headers.get(CONTENT_TYPE).map(|v| v.to_str().unwrap_or(""));
            if !content_type.is_some_and(is_json_type) {
                let received = match content_type {
                    Some(t) => format!("'{t}'"),
                    None => "no Content-Type".to_owned(),
                };
                res.render(HttpError::CookieBodyNotJson { received });
                ctrl.skip_rest();
            }
        }
    }
}

const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
/// Full URLs only to our own origin; other sites learn the origin over HTTPS and nothing over
/// a downgrade. (Not `no-referrer`: with it, browsers send `Origin: null` on same-origin form
/// posts, which the CSRF guard would have to refuse.)
const REFERRER: HeaderValue = HeaderValue::from_static("strict-origin-when-cross-origin");
const FRAME_DENY: HeaderValue = HeaderValue::from_static("DENY");
/// Only framing is restricted: the Swagger UI page runs inline script and styles, and a page
/// that needs a stricter policy sets its own, which [`html_page_headers`] keeps.
const HTML_CSP: HeaderValue =
    HeaderValue::from_static("frame-ancestors 'none'; object-src 'none'; base-uri 'self'");

/// Clickjacking protection for an HTML page: `X-Frame-Options: DENY` and a
/// `Content-Security-Policy` with `frame-ancestors 'none'`, each unless the page set its own.
/// [`SecurityHeaders`] applies it to every `text/html` response; a handler can call it directly.
pub fn html_page_headers(headers: &mut HeaderMap) {
    headers.entry(X_FRAME_OPTIONS).or_insert(FRAME_DENY);
    headers.entry(CONTENT_SECURITY_POLICY).or_insert(HTML_CSP);
}

/// Security headers on every response (unmatched routes and errors included):
/// `X-Content-Type-Options: nosniff`, a `Referrer-Policy` unless the handler chose one,
/// `Strict-Transport-Security` when `http.hstsMaxAge` is set, and [`html_page_headers`] on
/// `text/html` responses (the API docs page, a console). The values are static or built once,
/// so the hoop allocates nothing per request.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    hsts: Option<HeaderValue>,
}

impl SecurityHeaders {
    /// With HSTS when `hsts_max_age` is above 0.
    pub fn new(hsts_max_age: u64) -> Self {
        let hsts = (hsts_max_age > 0).then(|| {
            // Digits and ASCII only: always a valid header value.
            HeaderValue::from_str(&format!("max-age={hsts_max_age}"))
                .unwrap_or(HeaderValue::from_static("max-age=31536000"))
        });
        Self { hsts }
    }
}

#[async_trait]
impl Handler for SecurityHeaders {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        ctrl.call_next(req, depot, res).await;
        let headers = res.headers_mut();
        headers.insert(X_CONTENT_TYPE_OPTIONS, NOSNIFF);
        headers.entry(REFERRER_POLICY).or_insert(REFERRER);
        if let Some(hsts) = &self.hsts {
            headers.insert(STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        let html = headers.get(CONTENT_TYPE).is_some_and(|v| {
            v.as_bytes()
                .get(..9)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"text/html"))
        });
        if html {
            html_page_headers(headers);
        }
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
