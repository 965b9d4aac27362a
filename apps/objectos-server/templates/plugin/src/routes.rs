//! HTTP routes under `/api/v1/{{kebab}}` (spec 6.3), contributed at `init` as a
//! [`RouteContribution`] the HTTP plugin mounts at start. The operations are described next to
//! the router, so the OpenAPI document and the real routes change together; the tests check
//! that nothing is left undocumented.
//!
//! Access: the operations need credentials (`RouteOperation::get` is `Required`), which the auth
//! plugin's session hoop enforces when it is compiled in; a plugin with finer rules checks the
//! caller's `RequestContext` in the handler, as the audit plugin's routes do.

use std::sync::Arc;

use objectos_http::{RouteContribution, RouteOperation};
use salvo::http::StatusCode;
use salvo::prelude::*;
use serde_json::json;

use crate::plugin::{{Pascal}}Service;

/// Where the routes are mounted, relative to `/api/v1`.
pub const MOUNT: &str = "{{kebab}}";

/// The contribution: the router (built by a factory, since salvo routers cannot be cloned), the
/// service it serves (its OpenAPI tag, and its route in discovery once the name is a known
/// service), and the operations.
pub fn contribution(service: Arc<{{Pascal}}Service>) -> RouteContribution {
    RouteContribution::new(MOUNT, move || router(service.clone()))
        .service(crate::SERVICE)
        .operations(operations())
}

fn router(service: Arc<{{Pascal}}Service>) -> Router {
    Router::with_path("items").get(ListItems { service })
}

/// The operations of [`router`], for the OpenAPI document.
pub fn operations() -> Vec<RouteOperation> {
    let page = json!({
        "type": "object",
        "properties": {
            "items": { "type": "array", "items": { "type": "object" } },
            "total": { "type": "integer" }
        }
    });
    vec![RouteOperation::get("items", "The loaded definitions").returns(page)]
}

/// `GET /api/v1/{{kebab}}/items`.
struct ListItems {
    service: Arc<{{Pascal}}Service>,
}

#[async_trait]
impl Handler for ListItems {
    async fn handle(
        &self,
        _req: &mut Request,
        _depot: &mut Depot,
        res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        match self.service.items() {
            Some(page) => res.render(Json(page)),
            // The service gets the engine at this plugin's start; the HTTP plugin may start
            // (and listen) first, and this plugin's start may fail: either way the caller is
            // told to come back, not handed an empty list.
            None => {
                let message = "The {{title}} plugin is not started";
                res.status_code(StatusCode::SERVICE_UNAVAILABLE);
                res.render(Json(json!({
                    "error": message, "code": "SERVICE_UNAVAILABLE", "message": message,
                })));
            }
        }
    }
}
