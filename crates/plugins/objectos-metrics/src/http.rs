//! The HTTP side: the hoop that counts and times every routed request, and the scrape handler
//! behind `/metrics` and `/api/v1/metrics/prometheus`.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use objectos_http::{ApiState, HttpError, RequestContext};
use salvo::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use salvo::http::{HeaderValue, Method, StatusCode};
use salvo::prelude::*;

use crate::names;
use crate::plugin::Shared;

/// Counts, times and tracks in flight every request that matched a route. Labels are the
/// matched route template (`/api/v1/data/{object}/{id}`), never the raw path: ids in a label
/// would give every record its own series.
#[derive(Debug, Clone, Copy)]
pub struct MetricsHoop;

/// Decrements the in-flight gauge however the request ends (a panicking handler unwinds
/// through this hoop to the HTTP plugin's catch-panic).
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        metrics::gauge!(names::HTTP_IN_FLIGHT).increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(names::HTTP_IN_FLIGHT).decrement(1.0);
    }
}

/// A method label from a closed set, so a client inventing methods cannot add series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The route label: the template salvo matched, rooted (`/` for the root itself).
pub fn route_label(matched: &str) -> String {
    format!("/{}", matched.trim_matches('/'))
}

#[async_trait]
impl Handler for MetricsHoop {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        let started = Instant::now();
        let guard = InFlight::enter();
        ctrl.call_next(req, depot, res).await;
        drop(guard);
        let elapsed = started.elapsed().as_secs_f64();
        let route = route_label(req.matched_path());
        let method = method_label(req.method());
        let status = res.status_code.unwrap_or(StatusCode::OK);
        metrics::counter!(
            names::HTTP_REQUESTS,
            "route" => route.clone(),
            "method" => method,
            "status" => status.as_str().to_owned()
        )
        .increment(1);
        metrics::histogram!(names::HTTP_DURATION, "route" => route, "method" => method)
            .record(elapsed);
    }
}

/// `GET /metrics` and `GET /api/v1/metrics/prometheus`: the Prometheus text format, for a
/// caller with the token or from an allowed address; 401 otherwise.
#[derive(Debug, Clone)]
pub struct Scrape(pub(crate) Arc<Shared>);

#[async_trait]
impl Handler for Scrape {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        let client = match depot.get_typed::<RequestContext>() {
            Ok(cx) => cx.client_ip,
            Err(_) => req.remote_addr().ip(),
        };
        let authorization = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !self.0.access.permits(authorization, client) {
            metrics::counter!(names::SCRAPES_REFUSED).increment(1);
            res.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"metrics\""),
            );
            res.render(HttpError::Status {
                status: StatusCode::UNAUTHORIZED,
                message: "Scraping the metrics needs the metrics token (Authorization: Bearer ...) or an address in metrics.allow".into(),
            });
            return;
        }
        let probe = depot
            .get_typed::<ApiState>()
            .ok()
            .and_then(|s| s.probe().cloned());
        if let Some(probe) = probe {
            crate::collect::plugin_health(&probe.health().await);
        }
        let text = self.0.render().await;
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        res.write_body(text).ok();
    }
}
