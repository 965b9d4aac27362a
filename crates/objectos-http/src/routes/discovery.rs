//! Discovery: `GET /api/v1/discovery`, `GET /.well-known/objectstack` and `GET /api/v1`.
//!
//! The body follows transcript exchange 1: the client reads `routes.<key>` for every later call,
//! so a route is listed only when the service behind it is present.

use objectos_spec::health::detail;
use objectos_spec::manifest::services;
use objectos_spec::{HealthStatus, KernelHealth};
use salvo::prelude::*;
use serde_json::{Map, Value, json};

use crate::error::HttpError;
use crate::routes::API_BASE;
use crate::state::ApiState;

/// Id of the HTTP plugin, the provider of the routes it serves itself.
const HTTP_PROVIDER: &str = crate::MANIFEST.id;

/// Discovery routes: the well-known one is absolute, the others are under the API base.
pub fn well_known_router() -> Router {
    Router::with_path(".well-known/objectstack").get(discovery)
}

/// `/discovery` (and the bare API base, registered by the server).
pub fn router() -> Router {
    Router::with_path("discovery").get(discovery)
}

/// Route key in `routes` and default path, per service name.
fn route_of(service: &str) -> Option<(&'static str, String)> {
    let (key, path) = match service {
        services::DATA => ("data", "data"),
        services::METADATA => ("metadata", "meta"),
        services::UI => ("ui", "ui"),
        services::AUTH => ("auth", "auth"),
        services::ANALYTICS => ("analytics", "analytics"),
        services::NOTIFICATION => ("notifications", "notifications"),
        services::I18N => ("i18n", "i18n"),
        services::FILE_STORAGE => ("storage", "storage"),
        services::JOB => ("jobs", "jobs"),
        services::REALTIME => ("realtime", "realtime"),
        services::WORKFLOW => ("workflow", "workflow"),
        services::AUTOMATION => ("automation", "automation"),
        services::AI => ("ai", "ai"),
        services::GRAPHQL => ("graphql", "graphql"),
        services::AUDIT_LOG => ("audit", "audit"),
        services::PERMISSIONS => ("permissions", "permissions"),
        // The Prometheus text is at `/api/v1/metrics/prometheus` (and `/metrics`).
        services::METRICS => ("metrics", "metrics"),
        _ => return None,
    };
    Some((key, format!("{API_BASE}/{path}")))
}

/// Builds the discovery document for the services present (no backend states: see
/// [`document_with_health`]).
pub fn document(state: &ApiState) -> Value {
    document_with_health(state, None)
}

/// Where a facility runs and how it is doing, as its provider's health report says
/// (`details.backend`, `details.state`; spec `HealthReport::backend`).
struct Backend {
    backend: String,
    state: String,
    degraded: bool,
    provider: String,
}

/// The backend carrying `facility` (a spec service, or `events` for the event bus): taken from
/// the health report of `provider` when given, else from any plugin whose report says it
/// serves the facility.
fn backend_of(
    health: &KernelHealth,
    state: &ApiState,
    facility: &str,
    provider: Option<&str>,
) -> Option<Backend> {
    health.plugins.iter().find_map(|p| {
        if provider.is_some_and(|id| id != p.id) {
            return None;
        }
        let provides: Vec<&str> = state
            .services()
            .iter()
            .filter(|s| s.provider == p.id)
            .map(|s| s.name.as_str())
            .collect();
        if !p.report.serves(facility, &provides) {
            return None;
        }
        let (backend, st) = p.report.backend_state()?;
        Some(Backend {
            backend: backend.to_owned(),
            state: st.to_owned(),
            degraded: p.report.status > HealthStatus::Healthy,
            provider: p.id.clone(),
        })
    })
}

/// Builds the discovery document; with the kernel's health, every service whose provider
/// reports a backend shows `backend` and `state` (and `status: degraded` while it is), and
/// `eventBus` says what carries events between nodes.
pub fn document_with_health(state: &ApiState, health: Option<&KernelHealth>) -> Value {
    let mut routes = Map::new();
    let mut service_map = Map::new();
    for &name in services::ALL {
        if name == services::HTTP_SERVER {
            continue;
        }
        let present = state.service(name);
        let entry = match present {
            Some(entry) => {
                // Data and metadata are served by this plugin; any other service has a route
                // only when its plugin contributed one.
                let served_here = name == services::DATA || name == services::METADATA;
                let route = entry.route.clone().or_else(|| {
                    served_here
                        .then(|| route_of(name).map(|(_, p)| p))
                        .flatten()
                });
                match (route, route_of(name)) {
                    (Some(route), Some((key, _))) => {
                        routes.insert(key.to_owned(), Value::String(route.clone()));
                        json!({
                            "enabled": true,
                            "status": "available",
                            "handlerReady": true,
                            "route": route,
                            "provider": entry.provider,
                        })
                    }
                    _ => json!({
                        "enabled": true,
                        "status": "available",
                        "handlerReady": false,
                        "provider": entry.provider,
                        "message": format!("Kernel-internal service, consumed in-process through the service registry; no HTTP surface exists for the '{name}' slot"),
                    }),
                }
            }
            None if name == services::AUTH => json!({
                "enabled": false,
                "status": "unavailable",
                "message": "authentication is not installed; all requests are anonymous",
            }),
            None => json!({
                "enabled": false,
                "status": "unavailable",
                "message": format!("No plugin providing the '{name}' service is installed in this server"),
            }),
        };
        let mut entry = entry;
        if let (Some(health), Some(present)) = (health, present)
            && let Some(b) = backend_of(health, state, name, Some(&present.provider))
            && let Some(obj) = entry.as_object_mut()
        {
            obj.insert("backend".into(), Value::String(b.backend));
            obj.insert("state".into(), Value::String(b.state));
            if b.degraded {
                obj.insert("status".into(), Value::String("degraded".into()));
            }
        }
        service_map.insert(name.to_owned(), entry);
    }
    // The UI view endpoints and the package list are served by this plugin itself.
    routes.insert("ui".into(), Value::String(format!("{API_BASE}/ui")));
    service_map.insert(
        services::UI.to_owned(),
        json!({
            "enabled": true,
            "status": "available",
            "handlerReady": true,
            "route": format!("{API_BASE}/ui"),
            "provider": HTTP_PROVIDER,
        }),
    );
    routes.insert(
        "packages".into(),
        Value::String(format!("{API_BASE}/packages")),
    );
    routes.insert(
        "openapi".into(),
        Value::String(format!("{API_BASE}/openapi.json")),
    );
    let has = |name: &str| state.service(name).is_some();
    // The locales a translation plugin serves; English alone without one.
    let (default_locale, supported) = match state.i18n() {
        Some(i18n) => (
            i18n.default_locale(),
            i18n.locales().into_iter().map(|l| l.code).collect(),
        ),
        None => ("en".to_owned(), vec!["en".to_owned()]),
    };
    let mut doc = json!({
        "name": "ObjectOS",
        "apiName": "ObjectOS API",
        "version": state.version(),
        "environment": state.mode().as_str(),
        "routes": routes,
        "locale": { "default": default_locale, "supported": supported, "timezone": "UTC" },
        "services": service_map,
        "capabilities": {
            "comments": { "enabled": false },
            "automation": { "enabled": has(services::AUTOMATION) },
            "cron": { "enabled": has(services::JOB) },
            "search": { "enabled": false },
            "export": { "enabled": false },
            "chunkedUpload": { "enabled": false },
            // POST /api/v1/batch (routes/batch.rs): all-or-nothing by default, `{"$ref": n}`.
            "transactionalBatch": {
                "enabled": true,
                "description": "Atomic cross-object batch endpoint (POST /api/v1/batch): all-or-nothing create/update/delete across objects in one transaction, with intra-batch {\"$ref\": <opIndex>} references; options.atomic=false commits each operation on its own."
            },
            "websockets": { "enabled": has(services::REALTIME) },
            "files": { "enabled": has(services::FILE_STORAGE) },
            "analytics": { "enabled": has(services::ANALYTICS) },
            "ai": { "enabled": has(services::AI) },
            "notifications": { "enabled": has(services::NOTIFICATION) },
            "openapi": { "enabled": true },
        },
    });
    if let Some(health) = health
        && let Some(obj) = doc.as_object_mut()
    {
        // No plugin reporting the event bus means it stays inside this process.
        let bus = match backend_of(health, state, detail::EVENTS, None) {
            Some(b) => json!({
                "backend": b.backend,
                "state": b.state,
                "status": if b.degraded { "degraded" } else { "available" },
                "provider": b.provider,
            }),
            None => json!({ "backend": "local", "state": "in-process", "status": "available" }),
        };
        obj.insert("eventBus".into(), bus);
    }
    doc
}

/// `GET /api/v1/discovery` and its aliases.
#[handler]
pub async fn discovery(depot: &mut Depot, res: &mut Response) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?;
    // Health probes answer from state the plugins hold (plugin spec 3.6), so asking them per
    // discovery request is cheap.
    let health = match state.probe() {
        Some(probe) => Some(probe.health().await),
        None => None,
    };
    res.render(Json(document_with_health(state, health.as_ref())));
    Ok(())
}
