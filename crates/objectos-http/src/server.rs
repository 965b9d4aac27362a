//! Assembling the salvo service (hoops, core routes, contributions) and running the listener with
//! graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use objectos_spec::RuntimeMode;
use salvo::catcher::Catcher;
use salvo::conn::tcp::TcpAcceptor;
use salvo::cors::{AllowHeaders, AllowOrigin, Cors};
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
        .push(routes::data::router().hoop(hoops::require_json))
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
    let mut root = Router::new().hoop(hoops::BodyLimit(config.body_limit));
    let mut sorted: Vec<&HoopContribution> = hoop_contributions.iter().collect();
    sorted.sort_by_key(|h| h.order);
    for h in sorted {
        root = root.hoop(h.handler());
    }
    root = root
        .push(routes::system::probe_router())
        .push(routes::discovery::well_known_router())
        .push(api_router());
    for c in contributions {
        tracing::debug!(mount = %c.absolute_mount(), "Mounting contributed routes.");
        root = root.push(c.router());
    }
    let mut service = Service::new(root)
        .hoop(hoops::catch_panic)
        // The state goes in first: the request context reads its trusted proxies.
        .hoop(salvo::affix_state::inject(state.clone()))
        .hoop(hoops::request_context);
    if let Some(cors) = cors_handler(&config.cors_origins, state.mode()) {
        service = service.hoop(hoops::CorsWhenOrigin(cors));
    }
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
    let server = Server::new(acceptor);
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
