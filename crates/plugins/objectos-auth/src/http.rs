//! The HTTP surface: the `/api/v1/auth/*` routes the official client calls, and the session hoop
//! that resolves a bearer token, API key or session cookie on every request.

use std::sync::{Arc, OnceLock};

use objectos_data::Principal;
use objectos_http::{RequestContext, RouteOperation};
use salvo::http::header::{AUTHORIZATION, CACHE_CONTROL, HeaderValue, SET_COOKIE, USER_AGENT};
use salvo::http::{Method, StatusCode};
use salvo::prelude::*;
use serde_json::{Value as Json, json};

use crate::error::AuthError;
use crate::service::{AuthService, RequestMeta, Resolved};

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
        let protected = is_protected(&path);
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

fn render_signed_in(res: &mut Response, service: &AuthService, signed: crate::service::SignedIn) {
    set_session(res, service, &signed.token);
    no_store(res);
    res.render(Json(json!({ "token": signed.token, "user": signed.user })));
}

#[handler]
async fn bootstrap_status(depot: &mut Depot) -> Answer {
    let has_owner = service(depot)?.has_owner().await?;
    Ok(Json(json!({ "hasOwner": has_owner })))
}

#[handler]
async fn sign_up(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let (Call { svc, meta }, b, email) = Call::with_email(req, depot).await?;
    if svc.config().email_verification.required {
        // better-auth's answer when verification is required: the account, no session.
        let user = svc
            .sign_up_unverified(
                &email,
                b.text("password")?,
                b.opt_text("name"),
                b.opt_text("callbackURL"),
            )
            .await?;
        no_store(res);
        res.render(Json(json!({ "token": null, "user": user })));
        return Ok(());
    }
    let signed = svc
        .sign_up(&email, b.text("password")?, b.opt_text("name"), &meta)
        .await?;
    render_signed_in(res, &svc, signed);
    Ok(())
}

#[handler]
async fn sign_in(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let (Call { svc, meta }, b, email) = Call::with_email(req, depot).await?;
    let code = b.opt_text("code").or_else(|| b.opt_text("totpCode"));
    let signed = svc
        .sign_in(&email, b.text("password")?, code, &meta)
        .await?;
    render_signed_in(res, &svc, signed);
    Ok(())
}

#[handler]
async fn get_session(depot: &mut Depot, res: &mut Response) -> Result<(), AuthError> {
    let svc = service(depot)?;
    no_store(res);
    match depot.get_typed::<AuthCaller>().ok().cloned() {
        Some(c) => res.render(Json(svc.session_view(&c.who, &c.token).await?)),
        // better-auth answers an anonymous get-session with 200 and `null`.
        None => res.render(Json(Json::Null)),
    }
    Ok(())
}

#[handler]
async fn sign_out(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Answer {
    let svc = service(depot)?;
    if let Ok(c) = SignedInCall::new(req, depot) {
        svc.sign_out(&c.who, &c.meta).await?;
    }
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&svc, "", 0)) {
        res.headers_mut().append(SET_COOKIE, v);
    }
    Ok(success_true())
}

#[handler]
async fn forget_password(req: &mut Request, depot: &mut Depot) -> Answer {
    let (Call { svc, meta }, _, email) = Call::with_email(req, depot).await?;
    svc.forget_password(&email, &meta).await?;
    // The same answer whether or not the email exists, so the route does not reveal accounts.
    Ok(status_true())
}

#[handler]
async fn reset_password(req: &mut Request, depot: &mut Depot) -> Answer {
    let Call { svc, meta } = Call::new(req, depot)?.throttled()?;
    let b = Body::read(req).await?;
    svc.reset_password(b.text("token")?, b.text("newPassword")?, &meta)
        .await?;
    Ok(status_true())
}

#[handler]
async fn change_password(req: &mut Request, depot: &mut Depot) -> Answer {
    let (c, b) = SignedInCall::throttled_with_body(req, depot).await?;
    c.svc
        .change_password(
            &c.who,
            b.text("currentPassword")?,
            b.text("newPassword")?,
            &c.meta,
        )
        .await?;
    Ok(status_true())
}

#[handler]
async fn totp_enable(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Answer {
    let (c, b) = SignedInCall::throttled_with_body(req, depot).await?;
    let out = c.svc.totp_enable(&c.who, b.text("password")?).await?;
    Ok(unstored(res, out))
}

#[handler]
async fn totp_verify(req: &mut Request, depot: &mut Depot) -> Answer {
    let (c, b) = SignedInCall::throttled_with_body(req, depot).await?;
    c.svc.totp_verify(&c.who, b.text("code")?, &c.meta).await?;
    Ok(status_true())
}

#[handler]
async fn totp_disable(req: &mut Request, depot: &mut Depot) -> Answer {
    let (c, b) = SignedInCall::throttled_with_body(req, depot).await?;
    c.svc
        .totp_disable(&c.who, b.text("password")?, &c.meta)
        .await?;
    Ok(status_true())
}

#[handler]
async fn api_key_create(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Answer {
    let (c, b) = SignedInCall::with_body(req, depot).await?;
    let scopes = match b.get("scopes") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    AuthError::InvalidBody("`scopes` must be an array of strings".into())
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(AuthError::InvalidBody(
                "`scopes` must be an array of strings".into(),
            ));
        }
    };
    let days = match b.get("expiresInDays") {
        None | Some(Json::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|d| u32::try_from(d).ok())
                .filter(|d| *d > 0)
                .ok_or_else(|| {
                    AuthError::InvalidBody("`expiresInDays` must be a positive integer".into())
                })?,
        ),
    };
    let out = c
        .svc
        .create_api_key(&c.who, b.text("name")?, scopes, days, &c.meta)
        .await?;
    res.status_code(StatusCode::CREATED);
    Ok(unstored(res, out))
}

#[handler]
async fn api_key_list(req: &mut Request, depot: &mut Depot) -> Answer {
    let c = SignedInCall::new(req, depot)?;
    Ok(Json(c.svc.list_api_keys(&c.who).await?))
}

#[handler]
async fn api_key_delete(req: &mut Request, depot: &mut Depot) -> Answer {
    let (c, b) = SignedInCall::with_body(req, depot).await?;
    c.svc
        .revoke_api_key(&c.who, b.text("keyId")?, &c.meta)
        .await?;
    Ok(success_true())
}

#[handler]
async fn org_list(req: &mut Request, depot: &mut Depot) -> Answer {
    let c = SignedInCall::new(req, depot)?;
    Ok(Json(c.svc.organizations(&c.who).await?))
}

/// `POST /organization/set-active` `{organizationId? | organizationSlug?}`.
#[handler]
async fn org_set_active(req: &mut Request, depot: &mut Depot) -> Answer {
    let (c, b) = SignedInCall::with_body(req, depot).await?;
    let out = c
        .svc
        .set_active_organization(
            &c.who,
            b.opt_text("organizationId"),
            b.opt_text("organizationSlug"),
            &c.meta,
        )
        .await?;
    Ok(Json(out))
}

/// `POST /organization/create` `{name, slug?, logo?, keepCurrentActiveOrganization?}`.
#[handler]
async fn org_create(req: &mut Request, depot: &mut Depot) -> Answer {
    let (c, b) = SignedInCall::with_body(req, depot).await?;
    let out = c
        .svc
        .create_organization(
            &c.who,
            b.text("name")?,
            b.opt_text("slug"),
            b.opt_text("logo"),
            b.flag("keepCurrentActiveOrganization"),
            &c.meta,
        )
        .await?;
    Ok(Json(out))
}

/// `POST /organization/add-member` `{userId | email, role?, organizationId?}`.
#[handler]
async fn org_add_member(req: &mut Request, depot: &mut Depot) -> Answer {
    let (c, b) = SignedInCall::with_body(req, depot).await?;
    let target = b.member_target(&["userId", "email"])?;
    let out = c
        .svc
        .add_member(
            &c.who,
            target,
            b.opt_text("role"),
            b.opt_text("organizationId"),
            &c.meta,
        )
        .await?;
    Ok(Json(out))
}

/// `POST /organization/remove-member` `{memberIdOrEmail | userId | email, organizationId?}`.
#[handler]
async fn org_remove_member(req: &mut Request, depot: &mut Depot) -> Answer {
    let (c, b) = SignedInCall::with_body(req, depot).await?;
    let target = b.member_target(&["memberIdOrEmail", "userId", "email"])?;
    let out = c
        .svc
        .remove_member(&c.who, target, b.opt_text("organizationId"), &c.meta)
        .await?;
    Ok(Json(out))
}

/// `POST /organization/update-member-role` `{memberId | userId, role, organizationId?}`.
#[handler]
async fn org_update_member_role(req: &mut Request, depot: &mut Depot) -> Answer {
    let (c, b) = SignedInCall::with_body(req, depot).await?;
    let target = b.member_target(&["memberId", "userId"])?;
    let out = c
        .svc
        .update_member_role(
            &c.who,
            target,
            b.text("role")?,
            b.opt_text("organizationId"),
            &c.meta,
        )
        .await?;
    Ok(Json(out))
}

/// `POST /organization/invite-member` `{email, role?, organizationId?, resend?}`.
#[handler]
async fn org_invite_member(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Answer {
    let (c, b) = SignedInCall::with_body(req, depot).await?;
    let out = c
        .svc
        .invite_member(
            &c.who,
            b.text("email")?,
            b.opt_text("role"),
            b.opt_text("organizationId"),
            b.flag("resend"),
            &c.meta,
        )
        .await?;
    Ok(unstored(res, out))
}

/// `GET /organization/list-invitations?organizationId=&limit=&offset=`.
#[handler]
async fn org_list_invitations(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Answer {
    let (c, limit, offset, org) = SignedInCall::list(req, depot, "organizationId")?;
    let out = c
        .svc
        .list_invitations(&c.who, org.as_deref(), limit, offset)
        .await?;
    Ok(unstored(res, out))
}

/// `GET /organization/list-user-invitations`.
#[handler]
async fn org_list_user_invitations(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Answer {
    let c = SignedInCall::new(req, depot)?;
    let out = c.svc.list_user_invitations(&c.who).await?;
    Ok(unstored(res, out))
}

/// `POST /organization/cancel-invitation` `{invitationId}`.
#[handler]
async fn org_cancel_invitation(req: &mut Request, depot: &mut Depot) -> Answer {
    let (c, b) = SignedInCall::with_body(req, depot).await?;
    let out = c
        .svc
        .cancel_invitation(&c.who, b.text("invitationId")?, &c.meta)
        .await?;
    Ok(Json(out))
}

async fn answer_invitation(req: &mut Request, depot: &mut Depot, accept: bool) -> Answer {
    let (c, b) = SignedInCall::with_body(req, depot).await?;
    let out = c
        .svc
        .answer_invitation(
            &c.who,
            b.text("invitationId")?,
            b.opt_text("token"),
            accept,
            &c.meta,
        )
        .await?;
    Ok(Json(out))
}

/// `POST /organization/accept-invitation` `{invitationId, token?}`.
#[handler]
async fn org_accept_invitation(req: &mut Request, depot: &mut Depot) -> Answer {
    answer_invitation(req, depot, true).await
}

/// `POST /organization/reject-invitation` `{invitationId, token?}`.
#[handler]
async fn org_reject_invitation(req: &mut Request, depot: &mut Depot) -> Answer {
    answer_invitation(req, depot, false).await
}

/// `POST /send-verification-email` `{email, callbackURL?}`: `{status: true}` whether or not
/// the address has an account (a signed-in caller may only ask for its own address).
#[handler]
async fn send_verification_email(req: &mut Request, depot: &mut Depot) -> Answer {
    let (Call { svc, .. }, b, email) = Call::with_email(req, depot).await?;
    let who = depot.get_typed::<AuthCaller>().ok().map(|c| c.who.clone());
    svc.send_verification_email(who.as_ref(), &email, b.opt_text("callbackURL"))
        .await?;
    Ok(status_true())
}

/// `GET /verify-email?token=&callbackURL=`: `{status: true, user: null}`, or a redirect to
/// `callbackURL` (with `?error=INVALID_TOKEN` when the token is refused).
#[handler]
async fn verify_email(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let Call { svc, meta } = Call::new(req, depot)?.throttled()?;
    no_store(res);
    let callback = match req
        .query::<String>("callbackURL")
        .filter(|c| !c.trim().is_empty())
    {
        Some(c) => Some(svc.sso().check_redirect("callbackURL", c.trim())?),
        None => None,
    };
    let token = req.query::<String>("token").unwrap_or_default();
    match (svc.verify_email(&token, &meta).await, callback) {
        (Ok(()), Some(to)) => redirect(res, &to),
        (Ok(()), None) => {
            res.render(Json(json!({ "status": true, "user": null })));
            Ok(())
        }
        (Err(e), Some(to)) if e.status().is_client_error() => redirect_with_error(res, &to, &e),
        (Err(e), _) => Err(e),
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

/// `GET /organization/list-members?organizationId=&limit=&offset=`.
#[handler]
async fn org_list_members(req: &mut Request, depot: &mut Depot) -> Answer {
    let (c, limit, offset, org) = SignedInCall::list(req, depot, "organizationId")?;
    let out = c
        .svc
        .list_members(&c.who, org.as_deref(), limit, offset)
        .await?;
    Ok(Json(out))
}

/// `POST /admin/create-user` `{email, password, name?, role?: user | admin}`.
#[handler]
async fn admin_create_user(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Answer {
    let (c, b) = SignedInCall::with_body(req, depot).await?;
    let out = c
        .svc
        .admin_create_user(
            &c.who,
            b.text("email")?,
            b.text("password")?,
            b.opt_text("name"),
            b.opt_text("role"),
            &c.meta,
        )
        .await?;
    Ok(unstored(res, out))
}

/// `GET /admin/list-users?limit=&offset=&searchValue=`.
#[handler]
async fn admin_list_users(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Answer {
    let (c, limit, offset, search) = SignedInCall::list(req, depot, "searchValue")?;
    let out = c
        .svc
        .admin_list_users(&c.who, limit, offset, search.as_deref())
        .await?;
    Ok(unstored(res, out))
}

async fn set_banned(req: &mut Request, depot: &mut Depot, banned: bool) -> Answer {
    let (c, b) = SignedInCall::with_body(req, depot).await?;
    let out = c
        .svc
        .admin_set_banned(
            &c.who,
            b.text("userId")?,
            banned,
            b.opt_text("banReason"),
            &c.meta,
        )
        .await?;
    Ok(Json(out))
}

/// `POST /admin/ban-user` `{userId, banReason?}`.
#[handler]
async fn admin_ban_user(req: &mut Request, depot: &mut Depot) -> Answer {
    set_banned(req, depot, true).await
}

/// `POST /admin/unban-user` `{userId}`.
#[handler]
async fn admin_unban_user(req: &mut Request, depot: &mut Depot) -> Answer {
    set_banned(req, depot, false).await
}

#[handler]
async fn sso_providers(depot: &mut Depot) -> Answer {
    Ok(Json(service(depot)?.sso_providers()))
}

/// `POST /sign-in/social` (`{provider, callbackURL?, errorCallbackURL?, newUserCallbackURL?}`)
/// and better-auth's generic-OAuth spelling `POST /sign-in/oauth2` (`{providerId, ...}`).
#[handler]
async fn sign_in_social(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let Call { svc, .. } = Call::new(req, depot)?.throttled()?;
    let binding = sso_binding(req, &svc);
    let start = social_body(&Body::read(req).await?)?;
    let out = svc.sso_start(&start, binding.as_deref()).await?;
    render_social_redirect(res, &svc, &out);
    Ok(())
}

/// `POST /link-social` (`{provider, callbackURL?, errorCallbackURL?}`, better-auth's
/// `linkSocial`): a signed-in user links a provider identity to the account; the callback then
/// redirects to `callbackURL` without a new session.
#[handler]
async fn link_social(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let c = SignedInCall::new(req, depot)?;
    c.svc.check_rate(&c.meta, None)?;
    let binding = sso_binding(req, &c.svc);
    let start = social_body(&Body::read(req).await?)?;
    let out = c
        .svc
        .sso_link_start(&c.who, &start, binding.as_deref())
        .await?;
    render_social_redirect(res, &c.svc, &out);
    Ok(())
}

fn social_body(b: &Body) -> Result<crate::sso::SocialSignIn, AuthError> {
    let provider = match b.opt_text("provider") {
        Some(p) => p,
        None => b.text("providerId").map_err(|_| {
            AuthError::InvalidBody("`provider` is required and must be a string".into())
        })?,
    };
    let owned = |key: &str| b.opt_text(key).map(str::to_owned);
    Ok(crate::sso::SocialSignIn {
        provider: provider.to_owned(),
        callback_url: owned("callbackURL"),
        error_callback_url: owned("errorCallbackURL"),
        new_user_callback_url: owned("newUserCallbackURL"),
    })
}

/// The binding cookie's `Set-Cookie` value (`max_age` 0 clears it). Lax: the provider sends the
/// browser back with a top-level GET, which carries Lax cookies.
fn sso_cookie(svc: &AuthService, value: &str, max_age: i64) -> String {
    if svc.config().cookie_secure {
        format!(
            "{SSO_STATE_COOKIE_SECURE}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax; Secure"
        )
    } else {
        format!(
            "{SSO_STATE_COOKIE}={value}; Max-Age={max_age}; Path={AUTH_BASE}; HttpOnly; SameSite=Lax"
        )
    }
}

/// The browser's binding cookie; with `cookieSecure` only the `__Host-` one counts.
fn sso_binding(req: &Request, svc: &AuthService) -> Option<String> {
    let name = if svc.config().cookie_secure {
        SSO_STATE_COOKIE_SECURE
    } else {
        SSO_STATE_COOKIE
    };
    req.cookie(name).map(|c| c.value().to_owned())
}

fn render_social_redirect(res: &mut Response, svc: &AuthService, out: &crate::sso::SocialRedirect) {
    if let Ok(v) = HeaderValue::from_str(&sso_cookie(svc, &out.binding, out.binding_max_age)) {
        res.headers_mut().append(SET_COOKIE, v);
    }
    no_store(res);
    res.render(Json(json!({ "url": out.url, "redirect": true })));
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

/// `GET /callback/{provider}`: the provider sends the browser here with `code` and `state`
/// (or `error`); on success the session cookie is set and the browser goes to `callbackURL`.
#[handler]
async fn sso_callback(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let Call { svc, meta } = Call::new(req, depot)?.throttled()?;
    let provider = req.param::<String>("provider").unwrap_or_default();
    let q = |key: &str| req.query::<String>(key);
    let params = crate::sso::CallbackParams {
        state: q("state"),
        code: q("code"),
        error: q("error"),
        error_description: q("error_description"),
        iss: q("iss"),
    };
    let binding = sso_binding(req, &svc);
    // The session the browser already has (a `link-social` flow must finish in it).
    let session_user = depot
        .get_typed::<AuthCaller>()
        .ok()
        .filter(|c| c.who.session_id.is_some())
        .map(|c| c.who.user_id.clone());
    no_store(res);
    let outcome = svc
        .sso_callback(
            &provider,
            params,
            binding.as_deref(),
            session_user.as_deref(),
            &meta,
        )
        .await;
    // Once the state is used the binding has nothing left to bind; a callback whose state was
    // refused leaves it, as it may belong to another flow still under way in this browser.
    let consumed = match &outcome {
        Ok(_) => true,
        Err(f) => f.consumed,
    };
    if consumed && let Ok(v) = HeaderValue::from_str(&sso_cookie(&svc, "", 0)) {
        res.headers_mut().append(SET_COOKIE, v);
    }
    match outcome {
        Ok(done) => {
            if let Some(signed) = &done.signed {
                set_session(res, &svc, &signed.token);
            }
            redirect(res, &done.redirect)
        }
        Err(crate::sso::SsoFailure {
            error,
            redirect: Some(to),
            ..
        }) => redirect_with_error(res, &to, &error),
        Err(failure) => Err(failure.error),
    }
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
