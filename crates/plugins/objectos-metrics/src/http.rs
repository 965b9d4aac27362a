//! The HTTP side: the hoop that counts and times every routed request, and the scrape handler
//! behind `/metrics` and `/api/v1/metrics/prometheus`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
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
///
/// The series handles of a route template are looked up once and kept: a request then costs a
/// read lock, a hash of the template and a few atomic operations, instead of building, sorting
/// and hashing label sets and looking them up in the recorder for each of its metrics. The
/// templates come from the router, a closed set, so the cache is as large as the series are.
/// Handles stay valid for the process: the recorder is installed once and never replaced.
#[derive(Clone)]
pub struct MetricsHoop {
    series: Arc<Series>,
}

impl std::fmt::Debug for MetricsHoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsHoop").finish_non_exhaustive()
    }
}

struct Series {
    in_flight: metrics::Gauge,
    /// By the template as salvo reports it (`req.matched_path()`).
    routes: RwLock<HashMap<Box<str>, Arc<RouteSeries>>>,
}

/// One route template's series: per method, the latency histogram and a counter per status.
struct RouteSeries {
    label: String,
    methods: [MethodSeries; METHODS.len()],
}

#[derive(Default)]
struct MethodSeries {
    duration: OnceLock<metrics::Histogram>,
    statuses: RwLock<Vec<(u16, metrics::Counter)>>,
}

impl MetricsHoop {
    /// The hoop, with its handles on the recorder installed now (call after
    /// [`crate::recorder::install`]: a handle taken before would record nowhere).
    pub fn new() -> Self {
        Self {
            series: Arc::new(Series {
                in_flight: metrics::gauge!(names::HTTP_IN_FLIGHT),
                routes: RwLock::default(),
            }),
        }
    }

    fn route(&self, matched: &str) -> Arc<RouteSeries> {
        let routes = &self.series.routes;
        if let Some(r) = routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(matched)
        {
            return r.clone();
        }
        routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(matched.into())
            .or_insert_with(|| {
                Arc::new(RouteSeries {
                    label: route_label(matched),
                    methods: Default::default(),
                })
            })
            .clone()
    }
}

impl Default for MetricsHoop {
    fn default() -> Self {
        Self::new()
    }
}

impl RouteSeries {
    fn record(&self, method: usize, status: StatusCode, seconds: f64) {
        let Some(series) = self.methods.get(method) else {
            return;
        };
        let name = METHODS[method];
        series
            .duration
            .get_or_init(|| {
                metrics::histogram!(names::HTTP_DURATION, "route" => self.label.clone(), "method" => name)
            })
            .record(seconds);
        let code = status.as_u16();
        let known = series
            .statuses
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(s, _)| *s == code)
            .map(|(_, c)| c.clone());
        let counter = known.unwrap_or_else(|| {
            let mut statuses = series
                .statuses
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((_, c)) = statuses.iter().find(|(s, _)| *s == code) {
                return c.clone();
            }
            let c = metrics::counter!(
                names::HTTP_REQUESTS,
                "route" => self.label.clone(),
                "method" => name,
                "status" => status.as_str().to_owned()
            );
            statuses.push((code, c.clone()));
            c
        });
        counter.increment(1);
    }
}

/// Decrements the in-flight gauge however the request ends (a panicking handler unwinds
/// through this hoop to the HTTP plugin's catch-panic).
struct InFlight<'a>(&'a metrics::Gauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a metrics::Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The method labels, a closed set, so a client inventing methods cannot add series.
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "OTHER",
];

/// The index of a method's label in [`METHODS`].
fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        _ => 7,
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
        let guard = InFlight::enter(&self.series.in_flight);
        ctrl.call_next(req, depot, res).await;
        drop(guard);
        let elapsed = started.elapsed().as_secs_f64();
        let status = res.status_code.unwrap_or(StatusCode::OK);
        self.route(req.matched_path())
            .record(method_index(req.method()), status, elapsed);
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
