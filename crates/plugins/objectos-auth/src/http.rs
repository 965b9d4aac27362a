//! The HTTP surface: the `/api/v1/auth/*` routes the official client calls, and the session hoop
//! that resolves a bearer token, API key or session cookie on every request.
//!
//! This file holds the router and its operations, the public and optional route lists, and the
//! preludes and answers the handlers share; the handlers are in a submodule per area (`sessions`,
//! `passwords`, `totp`, `api_keys`, `orgs`, `invitations`, `verification`, `admin`, `sso`) and the
//! hoop in `hoop`.

use std::sync::{Arc, OnceLock};

use objectos_http::{RequestContext, RouteOperation};
use salvo::http::StatusCode;
use salvo::http::header::{CACHE_CONTROL, HeaderValue, SET_COOKIE, USER_AGENT};
use salvo::prelude::*;
use serde_json::{Value as Json, json};

use crate::error::AuthError;
use crate::service::{AuthService, RequestMeta, Resolved};

mod admin;
mod api_keys;
mod hoop;
mod invitations;
mod orgs;
mod passwords;
mod sessions;
mod sso;
mod totp;
mod verification;

use admin::{admin_ban_user, admin_create_user, admin_list_users, admin_unban_user};
use api_keys::{api_key_create, api_key_delete, api_key_list};
pub use hoop::SessionHoop;
use invitations::{
    org_accept_invitation, org_cancel_invitation, org_invite_member, org_list_invitations,
    org_list_user_invitations, org_reject_invitation,
};
use orgs::{
    org_add_member, org_create, org_list, org_list_members, org_remove_member, org_set_active,
    org_update_member_role,
};
use passwords::{change_password, forget_password, reset_password};
use sessions::{bootstrap_status, get_session, sign_in, sign_out, sign_up};
use sso::{link_social, sign_in_social, sso_callback, sso_providers};
use totp::{totp_disable, totp_enable, totp_verify};
use verification::{send_verification_email, verify_email};

/// The cookie the official server (better-auth) uses for the session token.
pub const SESSION_COOKIE: &str = "better-auth.session_token";
/// The response header carrying a new session token (better-auth's bearer plugin).
pub const SET_AUTH_TOKEN: &str = "set-auth-token";
/// Where the routes are mounted.
pub const AUTH_BASE: &str = "/api/v1/auth";
/// The cookie binding a started single sign-on to the browser that started it.
pub const SSO_STATE_COOKIE: &str = "objectos.sso_state";
/// Its name with `cookieSecure`: the `__Host-` prefix makes browsers accept it only with
/// `Secure`, `Path=/` and no `Domain`, so a sibling subdomain or a plain-http page cannot plant
/// its own binding (cookie tossing, which would finish the attacker's flow in the victim's browser).
pub const SSO_STATE_COOKIE_SECURE: &str = "__Host-objectos.sso_state";

/// The service cell shared by the plugin, its routes and its hoop (filled at `start`).
pub type ServiceCell = Arc<OnceLock<AuthService>>;

/// The authenticated caller of this request, put in the depot by [`SessionHoop`].
#[derive(Debug, Clone)]
pub struct AuthCaller {
    pub who: Resolved,
    /// The credential the request presented (echoed by `get-session`, as the official server does).
    pub token: String,
}

#[derive(Clone)]
struct AuthState(ServiceCell);

/// Auth routes that work without a valid credential; a stale token is ignored on them.
const PUBLIC_AUTH_ROUTES: &[&str] = &[
    "bootstrap-status",
    "sign-up/email",
    "sign-in/email",
    "forget-password",
    "request-password-reset",
    "reset-password",
    "sign-out",
    "providers",
    "sign-in/social",
    "sign-in/oauth2",
    "send-verification-email",
    "verify-email",
];

/// Public auth routes with a trailing parameter (`callback/{provider}`).
const PUBLIC_AUTH_PREFIXES: &[&str] = &["callback/", "oauth2/callback/"];

/// Auth routes that answer anonymous callers (`get-session` is `null` then, as in better-auth),
/// while a presented but invalid credential is still refused.
const OPTIONAL_AUTH_ROUTES: &[&str] = &["get-session", "me"];

/// Everything under the API base needs a principal once the auth plugin is installed (routes
/// other plugins add are closed by default), except these open paths (and their sub-paths).
const API_BASE: &str = "/api/v1";
/// Plugins open their own routes through `RouteOperation::public` (the metrics plugin's
/// `/api/v1/metrics/prometheus`, guarded by its token or address list), not through this list.
const OPEN_API_PATHS: &[&str] = &["/api/v1/discovery", "/api/v1/openapi.json", "/api/v1/docs"];

fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn auth_route_in(path: &str, list: &[&str]) -> bool {
    path.strip_prefix(AUTH_BASE)
        .and_then(|r| r.strip_prefix('/'))
        .is_some_and(|r| list.contains(&r.trim_end_matches('/')))
}

fn is_public_auth(path: &str) -> bool {
    auth_route_in(path, PUBLIC_AUTH_ROUTES)
        || path
            .strip_prefix(AUTH_BASE)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|r| {
                PUBLIC_AUTH_PREFIXES.iter().any(|p| {
                    r.strip_prefix(p)
                        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
                })
            })
}

fn is_protected(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    under(path, API_BASE)
        && path != API_BASE
        && !OPEN_API_PATHS.iter().any(|p| under(path, p))
        && !is_public_auth(path)
        && !auth_route_in(path, OPTIONAL_AUTH_ROUTES)
}

/// Where the request came from. The address is the HTTP plugin's client address (the TCP
/// peer, or what a trusted proxy forwarded: `http.trustedProxies`), so rate limits, sessions and
/// events see the real client; the bare peer only for a router mounted without the plugin.
fn request_meta(req: &Request, depot: &Depot) -> RequestMeta {
    let cx = depot.get_typed::<RequestContext>().ok();
    RequestMeta {
        ip: cx
            .map_or_else(|| req.remote_addr().ip(), |c| c.client_ip)
            .map(|ip| ip.to_string()),
        user_agent: req
            .headers()
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
        request_id: cx.map(|c| c.request_id.clone()),
    }
}

/// The routes mounted at `/api/v1/auth`.
pub fn router(cell: ServiceCell) -> Router {
    Router::new()
        .hoop(salvo::affix_state::inject(AuthState(cell)))
        .push(Router::with_path("bootstrap-status").get(bootstrap_status))
        .push(Router::with_path("sign-up/email").post(sign_up))
        .push(Router::with_path("sign-in/email").post(sign_in))
        .push(Router::with_path("get-session").get(get_session))
        .push(Router::with_path("me").get(get_session))
        .push(Router::with_path("sign-out").post(sign_out))
        .push(Router::with_path("forget-password").post(forget_password))
        .push(Router::with_path("request-password-reset").post(forget_password))
        .push(Router::with_path("reset-password").post(reset_password))
        .push(Router::with_path("change-password").post(change_password))
        .push(Router::with_path("two-factor/enable").post(totp_enable))
        .push(Router::with_path("two-factor/verify-totp").post(totp_verify))
        .push(Router::with_path("two-factor/disable").post(totp_disable))
        .push(Router::with_path("api-key/create").post(api_key_create))
        .push(Router::with_path("api-key/list").get(api_key_list))
        .push(Router::with_path("api-key/delete").post(api_key_delete))
        .push(Router::with_path("organization/create").post(org_create))
        .push(Router::with_path("organization/list").get(org_list))
        .push(Router::with_path("organization/set-active").post(org_set_active))
        .push(Router::with_path("organization/add-member").post(org_add_member))
        .push(Router::with_path("organization/remove-member").post(org_remove_member))
        .push(Router::with_path("organization/list-members").get(org_list_members))
        .push(Router::with_path("organization/update-member-role").post(org_update_member_role))
        .push(Router::with_path("organization/invite-member").post(org_invite_member))
        .push(Router::with_path("organization/list-invitations").get(org_list_invitations))
        .push(
            Router::with_path("organization/list-user-invitations").get(org_list_user_invitations),
        )
        .push(Router::with_path("organization/cancel-invitation").post(org_cancel_invitation))
        .push(Router::with_path("organization/accept-invitation").post(org_accept_invitation))
        .push(Router::with_path("organization/reject-invitation").post(org_reject_invitation))
        .push(Router::with_path("send-verification-email").post(send_verification_email))
        .push(Router::with_path("verify-email").get(verify_email))
        .push(Router::with_path("admin/create-user").post(admin_create_user))
        .push(Router::with_path("admin/list-users").get(admin_list_users))
        .push(Router::with_path("admin/ban-user").post(admin_ban_user))
        .push(Router::with_path("admin/unban-user").post(admin_unban_user))
        .push(Router::with_path("providers").get(sso_providers))
        .push(Router::with_path("sign-in/social").post(sign_in_social))
        .push(Router::with_path("sign-in/oauth2").post(sign_in_social))
        .push(Router::with_path("callback/{provider}").get(sso_callback))
        .push(Router::with_path("oauth2/callback/{provider}").get(sso_callback))
        .push(Router::with_path("link-social").post(link_social))
}

/// The operations of [`router`], for the OpenAPI document; kept next to it so both change
/// together (a test checks that every route is described and that the security matches the
/// public and optional route lists above).
pub fn operations() -> Vec<RouteOperation> {
    let email_password = json!({ "type": "object", "required": ["email", "password"], "properties": {
        "email": { "type": "string", "format": "email" }, "password": { "type": "string" } } });
    let session = json!({ "type": "object", "properties": {
        "token": { "type": ["string", "null"] }, "user": { "type": "object" } } });
    let org = "organizations";
    let keys = "api-keys";
    let admin = "admin";
    vec![
        RouteOperation::get("bootstrap-status", "Whether an owner account exists yet").public(),
        RouteOperation::post(
            "sign-up/email",
            "Create an account with email and password (the first account becomes the owner)",
        )
        .public()
        .body(
            json!({ "type": "object", "required": ["email", "password"], "properties": {
                "email": { "type": "string", "format": "email" }, "password": { "type": "string" },
                "name": { "type": "string" }, "callbackURL": { "type": "string" } } }),
        )
        .returns(session.clone()),
        RouteOperation::post(
            "sign-in/email",
            "Sign in with email and password (and a TOTP code when two-factor is on)",
        )
        .public()
        .body(email_password)
        .returns(session),
        RouteOperation::get(
            "get-session",
            "The current session and user; null when anonymous",
        )
        .optional_auth(),
        RouteOperation::get("me", "Alias of get-session").optional_auth(),
        RouteOperation::post(
            "sign-out",
            "End the current session and clear the session cookie",
        )
        .public(),
        RouteOperation::post("forget-password", "Send a password reset email").public(),
        RouteOperation::post("request-password-reset", "Alias of forget-password").public(),
        RouteOperation::post("reset-password", "Set a new password with a reset token").public(),
        RouteOperation::post("change-password", "Change the signed-in user's password"),
        RouteOperation::post("two-factor/enable", "Start TOTP enrolment").tag("two-factor"),
        RouteOperation::post(
            "two-factor/verify-totp",
            "Confirm TOTP enrolment with a code",
        )
        .tag("two-factor"),
        RouteOperation::post("two-factor/disable", "Turn two-factor off").tag("two-factor"),
        RouteOperation::post(
            "api-key/create",
            "Create an API key (the secret is shown once)",
        )
        .tag(keys),
        RouteOperation::get("api-key/list", "The signed-in user's API keys").tag(keys),
        RouteOperation::post("api-key/delete", "Revoke an API key").tag(keys),
        RouteOperation::post("organization/create", "Create an organization").tag(org),
        RouteOperation::get("organization/list", "Organizations of the signed-in user").tag(org),
        RouteOperation::post(
            "organization/set-active",
            "Set the session's active organization",
        )
        .tag(org),
        RouteOperation::post("organization/add-member", "Add a member").tag(org),
        RouteOperation::post("organization/remove-member", "Remove a member").tag(org),
        RouteOperation::get("organization/list-members", "Members of an organization").tag(org),
        RouteOperation::post("organization/update-member-role", "Change a member's role").tag(org),
        RouteOperation::post("organization/invite-member", "Invite someone by email").tag(org),
        RouteOperation::get(
            "organization/list-invitations",
            "Invitations of an organization",
        )
        .tag(org),
        RouteOperation::get(
            "organization/list-user-invitations",
            "Invitations addressed to the signed-in user",
        )
        .tag(org),
        RouteOperation::post("organization/cancel-invitation", "Cancel an invitation").tag(org),
        RouteOperation::post("organization/accept-invitation", "Accept an invitation").tag(org),
        RouteOperation::post("organization/reject-invitation", "Decline an invitation").tag(org),
        RouteOperation::post("send-verification-email", "Send an email verification link").public(),
        RouteOperation::get(
            "verify-email",
            "Verify an email address with the link's token",
        )
        .public(),
        RouteOperation::post("admin/create-user", "Create a user (administrators)").tag(admin),
        RouteOperation::get("admin/list-users", "List users (administrators)").tag(admin),
        RouteOperation::post(
            "admin/ban-user",
            "Ban a user and end their sessions (administrators)",
        )
        .tag(admin),
        RouteOperation::post("admin/unban-user", "Lift a ban (administrators)").tag(admin),
        RouteOperation::get("providers", "Configured single sign-on providers").public(),
        RouteOperation::post(
            "sign-in/social",
            "Start a single sign-on sign-in; answers the provider's URL",
        )
        .public(),
        RouteOperation::post("sign-in/oauth2", "Alias of sign-in/social").public(),
        RouteOperation::get("callback/{provider}", "Single sign-on callback").public(),
        RouteOperation::get("oauth2/callback/{provider}", "Alias of callback/{provider}").public(),
        RouteOperation::post(
            "link-social",
            "Link a single sign-on account to the signed-in user",
        ),
    ]
}

fn service(depot: &Depot) -> Result<AuthService, AuthError> {
    depot
        .get_typed::<AuthState>()
        .ok()
        .and_then(|s| s.0.get().cloned())
        .ok_or(AuthError::NotReady)
}

/// The prelude of a route open to anyone: the service (503 `NOT_READY` before the plugin
/// started) and where the request came from.
struct Call {
    svc: AuthService,
    meta: RequestMeta,
}

impl Call {
    fn new(req: &Request, depot: &Depot) -> Result<Self, AuthError> {
        Ok(Self {
            svc: service(depot)?,
            meta: request_meta(req, depot),
        })
    }

    /// Takes a token from the client address's rate-limit bucket (429 when empty).
    fn throttled(self) -> Result<Self, AuthError> {
        self.svc.check_rate(&self.meta, None)?;
        Ok(self)
    }

    /// Reads the body and throttles the client address and the body's `email` (the same
    /// order of errors as everywhere: body, `email`, rate limit).
    async fn with_email(
        req: &mut Request,
        depot: &Depot,
    ) -> Result<(Self, Body, String), AuthError> {
        let call = Self::new(req, depot)?;
        let body = Body::read(req).await?;
        let email = body.text("email")?.to_owned();
        call.svc.check_rate(&call.meta, Some(&email))?;
        Ok((call, body, email))
    }
}

/// The prelude of a route that needs a signed-in caller: the service, the caller resolved by
/// [`SessionHoop`] (401 `UNAUTHORIZED` without one) and where the request came from.
struct SignedInCall {
    svc: AuthService,
    who: Resolved,
    meta: RequestMeta,
}

impl SignedInCall {
    fn new(req: &Request, depot: &Depot) -> Result<Self, AuthError> {
        let svc = service(depot)?;
        let who = depot
            .get_typed::<AuthCaller>()
            .map(|c| c.who.clone())
            .map_err(|_| AuthError::Unauthenticated)?;
        Ok(Self {
            svc,
            who,
            meta: request_meta(req, depot),
        })
    }

    /// [`SignedInCall::new`] and the JSON body.
    async fn with_body(req: &mut Request, depot: &Depot) -> Result<(Self, Body), AuthError> {
        let call = Self::new(req, depot)?;
        let body = Body::read(req).await?;
        Ok((call, body))
    }

    /// Password and code checks behind a session are throttled like sign-in (client address and
    /// the account's email), before the body is read.
    async fn throttled_with_body(
        req: &mut Request,
        depot: &Depot,
    ) -> Result<(Self, Body), AuthError> {
        let call = Self::new(req, depot)?;
        call.svc.check_rate(&call.meta, Some(&call.who.email))?;
        let body = Body::read(req).await?;
        Ok((call, body))
    }

    /// A list route's `limit` and `offset` and the named query parameter.
    fn list(
        req: &Request,
        depot: &Depot,
        filter: &str,
    ) -> Result<(Self, u64, u64, Option<String>), AuthError> {
        let call = Self::new(req, depot)?;
        let (limit, offset) = paging(req)?;
        Ok((call, limit, offset, req.query::<String>(filter)))
    }
}

/// A request's JSON object body; its readers answer `400 INVALID_BODY` naming the key at fault.
struct Body(Json);

impl Body {
    async fn read(req: &mut Request) -> Result<Self, AuthError> {
        let value: Json = req
            .parse_json()
            .await
            .map_err(|e| AuthError::InvalidBody(format!("the body must be a JSON object: {e}")))?;
        if value.is_object() {
            Ok(Self(value))
        } else {
            Err(AuthError::InvalidBody(
                "the body must be a JSON object".into(),
            ))
        }
    }

    fn get(&self, key: &str) -> Option<&Json> {
        self.0.get(key)
    }

    /// A required string.
    fn text(&self, key: &str) -> Result<&str, AuthError> {
        self.opt_text(key).ok_or_else(|| {
            AuthError::InvalidBody(format!("`{key}` is required and must be a string"))
        })
    }

    /// An optional string (anything else counts as absent).
    fn opt_text(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Json::as_str)
    }

    /// An optional boolean, false unless `true`.
    fn flag(&self, key: &str) -> bool {
        self.0.get(key).and_then(Json::as_bool).unwrap_or(false)
    }

    /// The user a member route names: the first non-blank of `keys` (`userId`, `email`, or
    /// better-auth's `memberIdOrEmail`).
    fn member_target(&self, keys: &[&str]) -> Result<&str, AuthError> {
        keys.iter()
            .find_map(|k| self.opt_text(k).filter(|v| !v.trim().is_empty()))
            .ok_or_else(|| {
                AuthError::InvalidBody(format!(
                    "give the user as {} (a string)",
                    keys.iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ))
            })
    }
}

/// A JSON answer (salvo's writer; `Json` alone is `serde_json::Value` in this file).
type JsonBody = salvo::prelude::Json<Json>;
/// What most handlers return: a JSON answer, or the error's JSON shape and status.
type Answer = Result<JsonBody, AuthError>;

/// The answer of routes that only confirm: `{status: true}`.
fn status_true() -> JsonBody {
    Json(json!({ "status": true }))
}

/// The answer of routes that only confirm the better-auth way: `{success: true}`.
fn success_true() -> JsonBody {
    Json(json!({ "success": true }))
}

fn no_store(res: &mut Response) {
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// `body` with `Cache-Control: no-store` (answers carrying secrets or personal data).
fn unstored(res: &mut Response, body: Json) -> JsonBody {
    no_store(res);
    Json(body)
}

fn session_cookie(service: &AuthService, token: &str, max_age: i64) -> String {
    let secure = if service.config().cookie_secure {
        "; Secure"
    } else {
        ""
    };
    format!("{SESSION_COOKIE}={token}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax{secure}")
}

/// Hands a new session to the client: `set-auth-token` and the session cookie.
fn set_session(res: &mut Response, service: &AuthService, token: &str) {
    if let Ok(v) = HeaderValue::from_str(token) {
        res.headers_mut().insert(SET_AUTH_TOKEN, v);
    }
    if let Ok(v) = HeaderValue::from_str(&session_cookie(
        service,
        token,
        service.session_max_age_secs(),
    )) {
        res.headers_mut().append(SET_COOKIE, v);
    }
}

/// `limit` and `offset` of a list route (defaults 100 and 0).
fn paging(req: &Request) -> Result<(u64, u64), AuthError> {
    let num = |key: &str, default: u64| -> Result<u64, AuthError> {
        match req.query::<String>(key) {
            None => Ok(default),
            Some(v) => v.trim().parse::<u64>().map_err(|_| {
                AuthError::BadRequest(format!(
                    "query parameter `{key}` must be a non-negative integer, not `{v}`"
                ))
            }),
        }
    };
    Ok((num("limit", 100)?, num("offset", 0)?))
}

fn redirect(res: &mut Response, to: &str) -> Result<(), AuthError> {
    let r = Redirect::with_status_code(StatusCode::FOUND, to)
        .map_err(|_| AuthError::Internal("the redirect target is not a valid header".into()))?;
    res.render(r);
    Ok(())
}

/// A redirect to `to` with the error's code in `error=` (how browsers learn a flow failed).
fn redirect_with_error(res: &mut Response, to: &str, error: &AuthError) -> Result<(), AuthError> {
    let sep = if to.contains('?') { '&' } else { '?' };
    redirect(res, &format!("{to}{sep}error={}", error.code()))
}

#[cfg(test)]
mod tests {
    use objectos_http::RouteSecurity;

    use super::*;

    #[test]
    fn operations_describe_every_route_with_its_security() {
        let c = objectos_http::RouteContribution::new("auth", || router(ServiceCell::default()))
            .operations(operations());
        assert_eq!(c.undocumented(), Vec::new(), "routes without a description");
        let endpoints = c.endpoints();
        for op in &c.operations {
            assert!(
                endpoints
                    .iter()
                    .any(|(m, p)| *m == op.method && *p == op.path),
                "described but not routed: {} {}",
                op.method,
                op.path
            );
            let full = format!("{AUTH_BASE}/{}", op.path.replace("{provider}", "google"));
            let expected = if is_public_auth(&full) {
                RouteSecurity::Public
            } else if auth_route_in(&full, OPTIONAL_AUTH_ROUTES) {
                RouteSecurity::Optional
            } else {
                RouteSecurity::Required
            };
            assert_eq!(op.security, expected, "security of {}", op.path);
        }
    }

    #[test]
    fn path_classes() {
        assert!(is_protected("/api/v1/data/contact"));
        assert!(is_protected("/api/v1/meta"));
        assert!(is_protected("/api/v1/database"));
        assert!(is_protected("/api/v1/packages"));
        assert!(is_protected("/api/v1/audit/events"));
        assert!(!is_protected("/api/v1"));
        assert!(!is_protected("/api/v1/"));
        assert!(!is_protected("/api/v1/openapi.json"));
        assert!(!is_protected("/api/v1/docs/index.html"));
        assert!(!is_protected("/.well-known/objectstack"));
        assert!(!is_protected("/ready"));
        assert!(!is_protected("/api/v1/discovery"));
        assert!(!is_protected("/health"));
        assert!(is_public_auth("/api/v1/auth/sign-in/email"));
        assert!(!is_protected("/api/v1/auth/bootstrap-status"));
        assert!(!is_protected("/api/v1/auth/get-session"));
        assert!(is_protected("/api/v1/auth/change-password"));
        assert!(!is_protected("/api/v1/auth/sign-in/social"));
        assert!(!is_protected("/api/v1/auth/providers"));
        assert!(!is_protected("/api/v1/auth/callback/corp"));
        assert!(!is_protected("/api/v1/auth/oauth2/callback/github"));
        assert!(is_protected("/api/v1/auth/callback/"));
        assert!(is_protected("/api/v1/auth/callback/a/b"));
        assert!(is_protected("/api/v1/auth/link-social"));
        assert!(!is_protected("/api/v1/auth/send-verification-email"));
        assert!(!is_protected("/api/v1/auth/verify-email"));
        assert!(is_protected("/api/v1/auth/organization/accept-invitation"));
    }
}
