//! Discovery: `GET /api/v1/discovery`, `GET /.well-known/objectstack` and `GET /api/v1`.
//!
//! The body follows transcript exchange 1: the client reads `routes.<key>` for every later call,
//! so a route is listed only when the service behind it is present.

use objectos_spec::manifest::services;
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
        _ => return None,
    };
    Some((key, format!("{API_BASE}/{path}")))
}

/// Builds the discovery document for the services present.
pub fn document(state: &ApiState) -> Value {
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
    json!({
        "name": "ObjectOS",
        "apiName": "ObjectOS API",
        "version": state.version(),
        "environment": state.mode().as_str(),
        "routes": routes,
        "locale": { "default": "en", "supported": ["en"], "timezone": "UTC" },
        "services": service_map,
        "capabilities": {
            "comments": { "enabled": false },
            "automation": { "enabled": has(services::AUTOMATION) },
            "cron": { "enabled": has(services::JOB) },
            "search": { "enabled": false },
            "export": { "enabled": false },
            "chunkedUpload": { "enabled": false },
            "transactionalBatch": { "enabled": false },
            "websockets": { "enabled": has(services::REALTIME) },
            "files": { "enabled": has(services::FILE_STORAGE) },
            "analytics": { "enabled": has(services::ANALYTICS) },
            "ai": { "enabled": has(services::AI) },
            "notifications": { "enabled": has(services::NOTIFICATION) },
            "openapi": { "enabled": true },
        },
    })
}

/// `GET /api/v1/discovery` and its aliases.
#[handler]
pub async fn discovery(depot: &mut Depot, res: &mut Response) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?;
    res.render(Json(document(state)));
    Ok(())
}
