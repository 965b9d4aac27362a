//! The session hoop: reads the credential a request carries, resolves it into the caller and
//! refuses protected paths without one.

use objectos_data::Principal;
use objectos_http::RequestContext;
use salvo::http::Method;
use salvo::http::header::AUTHORIZATION;
use salvo::prelude::*;

use super::{
    AUTH_BASE, AuthCaller, OPTIONAL_AUTH_ROUTES, SESSION_COOKIE, ServiceCell, auth_route_in,
    is_protected, request_meta, under,
};
use crate::error::AuthError;

/// The credential a request carries: `Authorization: Bearer`, `X-API-Key`, or the session cookie.
fn credential(req: &Request) -> Option<String> {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if let Some(auth) = header(AUTHORIZATION.as_str()) {
        let mut parts = auth.splitn(2, ' ');
        let scheme = parts.next().unwrap_or("");
        if scheme.eq_ignore_ascii_case("bearer") {
            return parts.next().map(|t| t.trim().to_owned());
        }
    }
    if let Some(key) = header("x-api-key") {
        return Some(key.to_owned());
    }
    req.cookie(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// Resolves the caller on every request and enforces authentication on protected paths.
#[derive(Clone)]
pub struct SessionHoop {
    cell: ServiceCell,
}

impl std::fmt::Debug for SessionHoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionHoop")
    }
}

impl SessionHoop {
    pub fn new(cell: ServiceCell) -> Self {
        Self { cell }
    }
}

fn refuse(res: &mut Response, ctrl: &mut FlowCtrl, err: AuthError) {
    res.render(err);
    ctrl.skip_rest();
}

#[async_trait]
impl Handler for SessionHoop {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        if req.method() == Method::OPTIONS {
            return;
        }
        let path = req.uri().path().to_owned();
        // Operations a plugin declared public (`RouteOperation::public`) need no credential.
        let protected = is_protected(&path) && !objectos_http::is_public_route(depot);
        let Some(service) = self.cell.get() else {
            if protected {
                refuse(res, ctrl, AuthError::NotReady);
            }
            return;
        };
        let Some(token) = credential(req) else {
            if protected {
                refuse(res, ctrl, AuthError::Unauthenticated);
            }
            return;
        };
        let meta = request_meta(req, depot);
        match service.resolve(&token, &meta).await {
            Ok(Some(who)) => {
                let read_only = matches!(*req.method(), Method::GET | Method::HEAD);
                if who.api_key_id.is_some()
                    && !read_only
                    && !who.scopes.iter().any(|s| s == "write" || s == "admin")
                    && !under(&path, AUTH_BASE)
                {
                    refuse(
                        res,
                        ctrl,
                        AuthError::Forbidden("This API key is read-only (scope `read`).".into()),
                    );
                    return;
                }
                if let Ok(cx) = depot.get_typed::<RequestContext>() {
                    let mut cx = cx.clone();
                    cx.principal = Principal::User {
                        id: who.user_id.clone(),
                        roles: Vec::new(),
                        permission_sets: Vec::new(),
                        is_admin: who.is_admin,
                    };
                    cx.tenant = who.tenant.clone();
                    depot.insert_typed(cx);
                }
                depot.insert_typed(AuthCaller { who, token });
            }
            // A stale credential on an open path (discovery, health, sign-in...) is ignored, so a
            // browser with an expired cookie can still connect and sign in again.
            Ok(None) if !protected && !auth_route_in(&path, OPTIONAL_AUTH_ROUTES) => {}
            Ok(None) => refuse(res, ctrl, AuthError::Unauthenticated),
            Err(e) => refuse(res, ctrl, e),
        }
    }
}
