//! Assembling the salvo service (hoops, core routes, contributions) and running the listener with
//! graceful shutdown; the accept loop rides out descriptor exhaustion with a back-off and a
//! throttled log.

use std::io::{ErrorKind, Result as IoResult};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use objectos_spec::RuntimeMode;
use salvo::catcher::Catcher;
use salvo::conn::tcp::TcpAcceptor;
use salvo::conn::{Accepted, Acceptor, Holding};
use salvo::cors::{AllowHeaders, AllowOrigin, Cors};
use salvo::fuse::ArcFusePolicy;
use salvo::http::header::HeaderValue;
use salvo::http::{HeaderName, Method};
use salvo::prelude::*;
use salvo::server::ServerHandle;
use tokio::task::JoinHandle;

use crate::contribution::{HoopContribution, RouteContribution};
use crate::error::HttpError;
use crate::hoops;
use crate::routes::{self, API_BASE};
use crate::state::ApiState;

/// CORS: the configured origins (with credentials); with none configured, any origin outside
/// production (convenient for local consoles) and same-origin only in production.
fn cors_handler(origins: &[String], mode: RuntimeMode) -> Option<salvo::cors::CorsHandler> {
    let expose = [
        HeaderName::from_static("x-request-id"),
        HeaderName::from_static("etag"),
        HeaderName::from_static("set-auth-token"),
    ];
    if origins.is_empty() && mode == RuntimeMode::Production {
        tracing::info!(
            "No CORS origins configured in production; cross-origin requests are not allowed."
        );
        return None;
    }
    if origins.is_empty() || origins.iter().any(|o| o == "*") {
        return Some(Cors::permissive().expose_headers(expose).into_handler());
    }
    let values: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| {
            HeaderValue::from_str(o.trim_end_matches('/'))
                .map_err(|_| tracing::warn!(origin = %o, "Ignoring a CORS origin that is not a valid header value."))
                .ok()
        })
        .collect();
    Cors::new()
        .allow_origin(AllowOrigin::list(values))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(expose)
        .into_handler()
        .into()
}

/// The `/api/v1` router with the core routes (data, meta, ui, packages, discovery, OpenAPI).
pub fn api_router() -> Router {
    Router::with_path(API_BASE.trim_start_matches('/'))
        .get(routes::discovery::discovery)
        .push(routes::discovery::router())
        .push(
            routes::data::router()
                .hoop(hoops::require_json)
                .hoop(crate::localize::translate_errors),
        )
        .push(routes::meta::router().hoop(hoops::require_json))
        .push(routes::ui::router())
        .push(routes::system::packages_router())
        .push(routes::openapi::router())
}

/// Builds the complete service: service-level hoops (so unmatched routes get them too), the core
/// routes, every contributed router and hoop, and the JSON catcher.
pub fn build_service(
    state: ApiState,
    contributions: &[RouteContribution],
    hoop_contributions: &[HoopContribution],
) -> Service {
    let config = state.config().clone();
    // The body limit covers every route but contributions that stream large bodies (uploads),
    // which are mounted beside the limited router and bound their reads themselves.
    // Public operations are marked before any contributed hoop (authentication) looks.
    let mut root = Router::new().hoop(crate::public::MarkPublic::new(contributions));
    let mut limited = Router::new().hoop(hoops::BodyLimit(config.body_limit));
    let mut sorted: Vec<&HoopContribution> = hoop_contributions.iter().collect();
    sorted.sort_by_key(|h| h.order);
    for h in sorted {
        root = root.hoop(h.handler());
    }
    // `/` itself: a browser pointed at the server's address lands on links, not a JSON 404.
    limited = limited
        .get(routes::home::home)
        .push(routes::system::probe_router())
        .push(routes::discovery::well_known_router())
        .push(api_router());
    let mut streaming = Vec::new();
    for c in contributions {
        tracing::debug!(mount = %c.absolute_mount(), service = ?c.service_name(), "Mounting contributed routes.");
        // Only described contributions are checked: an undescribed one is simply absent from the
        // OpenAPI document, while a partly described one has drifted from its routes.
        if !c.operations.is_empty() {
            for (method, path) in c.undocumented() {
                tracing::warn!(mount = %c.absolute_mount(), %method, %path, "A contributed route has no operation description; it is missing from the OpenAPI document.");
            }
        }
        if c.streaming_body {
            streaming.push(c.router());
        } else {
            limited = limited.push(c.router());
        }
    }
    root = root.push(limited);
    for r in streaming {
        root = root.push(r);
    }
    let mut service = Service::new(root)
        // Outermost, so panics, refusals and unmatched routes get the headers too.
        .hoop(hoops::SecurityHeaders::new(config.hsts_max_age))
        .hoop(hoops::catch_panic)
        // The state goes in first: the request context reads its trusted proxies.
        .hoop(salvo::affix_state::inject(state.clone()))
        .hoop(salvo::affix_state::inject(routes::openapi::Contributed(
            contributions.to_vec().into(),
        )))
        .hoop(hoops::request_context);
    if let Some(cors) = cors_handler(&config.cors_origins, state.mode()) {
        service = service.hoop(hoops::CorsWhenOrigin(cors));
    }
    // Service-level, so it covers every route, contributed ones included, and runs before any
    // handler or contributed hoop could act on a forged request.
    service = service.hoop(hoops::CsrfGuard::new(&config));
    if config.compression {
        service = service.hoop(hoops::CompressWhenAccepted(
            Compression::new()
                .enable_gzip(CompressionLevel::Default)
                .enable_brotli(CompressionLevel::Default),
        ));
    }
    service.catcher(Catcher::new(hoops::json_catcher))
}

/// A running listener.
#[derive(Debug)]
pub struct RunningServer {
    /// The bound address (the real port when 0 was asked for).
    pub local_addr: SocketAddr,
    handle: ServerHandle,
    join: JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish for up to `grace`, then waits for the server task.
    pub async fn shutdown(self, grace: Duration) {
        self.handle.stop_graceful(Some(grace));
        if let Err(e) = self.join.await {
            tracing::warn!(error = %e, "The HTTP server task ended abnormally.");
        }
    }

    /// A handle that can stop the server from elsewhere.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Waits until the server stops on its own (after a stop through a handle).
    pub async fn wait(self) {
        if let Err(e) = self.join.await {
            tracing::warn!(error = %e, "The HTTP server task ended abnormally.");
        }
    }
}

/// Binds `listen` and serves `service` on a spawned task.
pub async fn serve(service: Service, listen: &str) -> Result<RunningServer, HttpError> {
    let bind_err = |source: std::io::Error| HttpError::Bind {
        addr: listen.to_owned(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(bind_err)?;
    let local_addr = listener.local_addr().map_err(bind_err)?;
    let acceptor = TcpAcceptor::try_from(listener).map_err(bind_err)?;
    let mut server = Server::new(PatientAcceptor::new(acceptor));
    // hyper lets a connection's read buffer grow to ~408 KiB for a request head (request line
    // plus headers); 200 connections sending oversized heads held 80 MiB. 64 KiB is far above
    // what real heads need (nginx allows 8-32 KiB), and a longer head is refused with 431.
    server.http1_mut().max_buf_size(MAX_HEAD_BYTES);
    server
        .http2_mut()
        .max_header_list_size(MAX_HEAD_BYTES as u32);
    let handle = server.handle();
    let join = tokio::spawn(async move {
        server.serve(service).await;
    });
    tracing::info!(address = %local_addr, "HTTP server listening.");
    Ok(RunningServer {
        local_addr,
        handle,
        join,
    })
}

/// Largest request head (request line, query string and headers) a connection may send.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Shortest and longest pause after a failed accept.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this interval while accepts keep failing.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Wraps the TCP acceptor so a failing `accept` never reaches salvo's loop, which logs every
/// failure at ERROR and retries after 10 ms: out of descriptors (`EMFILE`, `ENFILE`) that was
/// up to 100-200 lines a second for as long as the exhaustion lasted. Here a connection that
/// died before it was accepted is skipped quietly, and any other failure pauses the loop with an
/// exponential back-off (10 ms to 1 s, reset by the next success) and is logged once per
/// [`ACCEPT_LOG_EVERY`] with the number of failures since the last line; the recovery is logged
/// too. Waiting on the listener leaves pending clients in the kernel's backlog until descriptors
/// are free again.
#[derive(Debug)]
pub(crate) struct PatientAcceptor<A> {
    inner: A,
    backoff: Duration,
    /// When the last failure line was written, and the failures since (not yet reported).
    last_log: Option<Instant>,
    unreported: u64,
    /// Failures since the last successful accept.
    failing: u64,
}

impl<A> PatientAcceptor<A> {
    pub(crate) fn new(inner: A) -> Self {
        Self {
            inner,
            backoff: ACCEPT_BACKOFF_MIN,
            last_log: None,
            unreported: 0,
            failing: 0,
        }
    }

    /// Counts a failure and logs it when the last line is old enough.
    fn note_failure(&mut self, error: &std::io::Error) {
        self.failing += 1;
        self.unreported += 1;
        let due = self
            .last_log
            .is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY);
        if due {
            tracing::error!(
                %error,
                failures = self.unreported,
                retry_in_ms = self.backoff.as_millis() as u64,
                "Cannot accept connections (out of file descriptors?); backing off, next report in 10 s at most."
            );
            self.last_log = Some(Instant::now());
            self.unreported = 0;
        }
    }
}

/// Failures that belong to one connection, which the peer gave up on before we accepted it:
/// the next accept is unaffected.
fn connection_gone(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    )
}

impl<A: Acceptor> Acceptor for PatientAcceptor<A> {
    type Coupler = A::Coupler;
    type Stream = A::Stream;

    fn holdings(&self) -> &[Holding] {
        self.inner.holdings()
    }

    async fn accept(
        &mut self,
        fuse_policy: Option<ArcFusePolicy>,
    ) -> IoResult<Accepted<Self::Coupler, Self::Stream>> {
        loop {
            match self.inner.accept(fuse_policy.clone()).await {
                Ok(accepted) => {
                    if self.failing > 0 {
                        tracing::warn!(failures = self.failing, "Accepting connections again.");
                        self.failing = 0;
                        self.unreported = 0;
                        self.last_log = None;
                    }
                    self.backoff = ACCEPT_BACKOFF_MIN;
                    return Ok(accepted);
                }
                Err(e) if connection_gone(&e) => {
                    tracing::debug!(error = %e, "A connection closed before it was accepted.");
                }
                Err(e) => {
                    self.note_failure(&e);
                    // Dropped with the rest of this future when the server stops: the pause
                    // never delays a shutdown.
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            }
        }
    }
}
