//! The HTTP surface: the `/api/v1/auth/*` routes the official client calls, and the session hoop
//! that resolves a bearer token, API key or session cookie on every request.

use std::sync::{Arc, OnceLock};

use objectos_data::Principal;
use objectos_http::RequestContext;
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

fn request_meta(req: &Request, depot: &Depot) -> RequestMeta {
    RequestMeta {
        ip: req
            .remote_addr()
            .clone()
            .into_std()
            .map(|a| a.ip().to_string()),
        user_agent: req
            .headers()
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
        request_id: depot
            .get_typed::<RequestContext>()
            .ok()
            .map(|c| c.request_id.clone()),
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

fn service(depot: &Depot) -> Result<AuthService, AuthError> {
    depot
        .get_typed::<AuthState>()
        .ok()
        .and_then(|s| s.0.get().cloned())
        .ok_or(AuthError::NotReady)
}

fn caller(depot: &Depot) -> Result<AuthCaller, AuthError> {
    depot
        .get_typed::<AuthCaller>()
        .cloned()
        .map_err(|_| AuthError::Unauthenticated)
}

async fn body(req: &mut Request) -> Result<Json, AuthError> {
    let value: Json = req
        .parse_json()
        .await
        .map_err(|e| AuthError::InvalidBody(format!("the body must be a JSON object: {e}")))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(AuthError::InvalidBody(
            "the body must be a JSON object".into(),
        ))
    }
}

fn text<'a>(body: &'a Json, key: &str) -> Result<&'a str, AuthError> {
    body.get(key)
        .and_then(Json::as_str)
        .ok_or_else(|| AuthError::InvalidBody(format!("`{key}` is required and must be a string")))
}

fn opt_text<'a>(body: &'a Json, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Json::as_str)
}

fn no_store(res: &mut Response) {
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn session_cookie(service: &AuthService, token: &str, max_age: i64) -> String {
    let secure = if service.config().cookie_secure {
        "; Secure"
    } else {
        ""
    };
    format!("{SESSION_COOKIE}={token}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax{secure}")
}

fn render_signed_in(res: &mut Response, service: &AuthService, signed: crate::service::SignedIn) {
    if let Ok(v) = HeaderValue::from_str(&signed.token) {
        res.headers_mut().insert(SET_AUTH_TOKEN, v);
    }
    if let Ok(v) = HeaderValue::from_str(&session_cookie(
        service,
        &signed.token,
        service.session_max_age_secs(),
    )) {
        res.headers_mut().append(SET_COOKIE, v);
    }
    no_store(res);
    res.render(Json(json!({ "token": signed.token, "user": signed.user })));
}

#[handler]
async fn bootstrap_status(depot: &mut Depot, res: &mut Response) -> Result<(), AuthError> {
    let has_owner = service(depot)?.has_owner().await?;
    res.render(Json(json!({ "hasOwner": has_owner })));
    Ok(())
}

#[handler]
async fn sign_up(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let meta = request_meta(req, depot);
    let b = body(req).await?;
    let email = text(&b, "email")?;
    svc.check_rate(&meta, Some(email))?;
    let signed = svc
        .sign_up(email, text(&b, "password")?, opt_text(&b, "name"), &meta)
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
    let svc = service(depot)?;
    let meta = request_meta(req, depot);
    let b = body(req).await?;
    let email = text(&b, "email")?;
    svc.check_rate(&meta, Some(email))?;
    let code = opt_text(&b, "code").or_else(|| opt_text(&b, "totpCode"));
    let signed = svc
        .sign_in(email, text(&b, "password")?, code, &meta)
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
async fn sign_out(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    if let Ok(c) = caller(depot) {
        let meta = request_meta(req, depot);
        svc.sign_out(&c.who, &meta).await?;
    }
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&svc, "", 0)) {
        res.headers_mut().append(SET_COOKIE, v);
    }
    res.render(Json(json!({ "success": true })));
    Ok(())
}

#[handler]
async fn forget_password(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let meta = request_meta(req, depot);
    let b = body(req).await?;
    let email = text(&b, "email")?;
    svc.check_rate(&meta, Some(email))?;
    svc.forget_password(email, &meta).await?;
    // The same answer whether or not the email exists, so the route does not reveal accounts.
    res.render(Json(json!({ "status": true })));
    Ok(())
}

#[handler]
async fn reset_password(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let meta = request_meta(req, depot);
    svc.check_rate(&meta, None)?;
    let b = body(req).await?;
    svc.reset_password(text(&b, "token")?, text(&b, "newPassword")?, &meta)
        .await?;
    res.render(Json(json!({ "status": true })));
    Ok(())
}

#[handler]
async fn change_password(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let c = caller(depot)?;
    // Password and code checks behind a session are throttled like sign-in.
    svc.check_rate(&request_meta(req, depot), Some(&c.who.email))?;
    let meta = request_meta(req, depot);
    let b = body(req).await?;
    svc.change_password(
        &c.who,
        text(&b, "currentPassword")?,
        text(&b, "newPassword")?,
        &meta,
    )
    .await?;
    res.render(Json(json!({ "status": true })));
    Ok(())
}

#[handler]
async fn totp_enable(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let c = caller(depot)?;
    // Password and code checks behind a session are throttled like sign-in.
    svc.check_rate(&request_meta(req, depot), Some(&c.who.email))?;
    let b = body(req).await?;
    let out = svc.totp_enable(&c.who, text(&b, "password")?).await?;
    no_store(res);
    res.render(Json(out));
    Ok(())
}

#[handler]
async fn totp_verify(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let c = caller(depot)?;
    // Password and code checks behind a session are throttled like sign-in.
    svc.check_rate(&request_meta(req, depot), Some(&c.who.email))?;
    let meta = request_meta(req, depot);
    let b = body(req).await?;
    svc.totp_verify(&c.who, text(&b, "code")?, &meta).await?;
    res.render(Json(json!({ "status": true })));
    Ok(())
}

#[handler]
async fn totp_disable(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let c = caller(depot)?;
    // Password and code checks behind a session are throttled like sign-in.
    svc.check_rate(&request_meta(req, depot), Some(&c.who.email))?;
    let meta = request_meta(req, depot);
    let b = body(req).await?;
    svc.totp_disable(&c.who, text(&b, "password")?, &meta)
        .await?;
    res.render(Json(json!({ "status": true })));
    Ok(())
}

#[handler]
async fn api_key_create(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let c = caller(depot)?;
    let meta = request_meta(req, depot);
    let b = body(req).await?;
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
    let out = svc
        .create_api_key(&c.who, text(&b, "name")?, scopes, days, &meta)
        .await?;
    no_store(res);
    res.status_code(StatusCode::CREATED);
    res.render(Json(out));
    Ok(())
}

#[handler]
async fn api_key_list(depot: &mut Depot, res: &mut Response) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let c = caller(depot)?;
    res.render(Json(svc.list_api_keys(&c.who).await?));
    Ok(())
}

#[handler]
async fn api_key_delete(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let c = caller(depot)?;
    let meta = request_meta(req, depot);
    let b = body(req).await?;
    svc.revoke_api_key(&c.who, text(&b, "keyId")?, &meta)
        .await?;
    res.render(Json(json!({ "success": true })));
    Ok(())
}

#[handler]
async fn org_list(depot: &mut Depot, res: &mut Response) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let c = caller(depot)?;
    res.render(Json(svc.organizations(&c.who).await?));
    Ok(())
}

#[handler]
async fn org_set_active(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let c = caller(depot)?;
    let meta = request_meta(req, depot);
    let b = body(req).await?;
    let out = svc
        .set_active_organization(
            &c.who,
            opt_text(&b, "organizationId"),
            opt_text(&b, "organizationSlug"),
            &meta,
        )
        .await?;
    res.render(Json(out));
    Ok(())
}

/// `POST /organization/create` `{name, slug?, logo?, keepCurrentActiveOrganization?}`.
#[handler]
async fn org_create(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let c = caller(depot)?;
    let meta = request_meta(req, depot);
    let b = body(req).await?;
    let keep = b
        .get("keepCurrentActiveOrganization")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let out = svc
        .create_organization(
            &c.who,
            text(&b, "name")?,
            opt_text(&b, "slug"),
            opt_text(&b, "logo"),
            keep,
            &meta,
        )
        .await?;
    res.render(Json(out));
    Ok(())
}

/// The user a member route names: `userId`, `email`, or better-auth's `memberIdOrEmail`.
fn member_target<'a>(b: &'a Json, keys: &[&str]) -> Result<&'a str, AuthError> {
    keys.iter()
        .find_map(|k| opt_text(b, k).filter(|v| !v.trim().is_empty()))
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

/// `POST /organization/add-member` `{userId | email, role?, organizationId?}`.
#[handler]
async fn org_add_member(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let c = caller(depot)?;
    let meta = request_meta(req, depot);
    let b = body(req).await?;
    let target = member_target(&b, &["userId", "email"])?;
    let out = svc
        .add_member(
            &c.who,
            target,
            opt_text(&b, "role"),
            opt_text(&b, "organizationId"),
            &meta,
        )
        .await?;
    res.render(Json(out));
    Ok(())
}

/// `POST /organization/remove-member` `{memberIdOrEmail | userId | email, organizationId?}`.
#[handler]
async fn org_remove_member(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let c = caller(depot)?;
    let meta = request_meta(req, depot);
    let b = body(req).await?;
    let target = member_target(&b, &["memberIdOrEmail", "userId", "email"])?;
    let out = svc
        .remove_member(&c.who, target, opt_text(&b, "organizationId"), &meta)
        .await?;
    res.render(Json(out));
    Ok(())
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
async fn org_list_members(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let c = caller(depot)?;
    let (limit, offset) = paging(req)?;
    let org = req.query::<String>("organizationId");
    let out = svc
        .list_members(&c.who, org.as_deref(), limit, offset)
        .await?;
    res.render(Json(out));
    Ok(())
}

/// `POST /admin/create-user` `{email, password, name?, role?: user | admin}`.
#[handler]
async fn admin_create_user(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let c = caller(depot)?;
    let meta = request_meta(req, depot);
    let b = body(req).await?;
    let out = svc
        .admin_create_user(
            &c.who,
            text(&b, "email")?,
            text(&b, "password")?,
            opt_text(&b, "name"),
            opt_text(&b, "role"),
            &meta,
        )
        .await?;
    no_store(res);
    res.render(Json(out));
    Ok(())
}

/// `GET /admin/list-users?limit=&offset=&searchValue=`.
#[handler]
async fn admin_list_users(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let c = caller(depot)?;
    let (limit, offset) = paging(req)?;
    let search = req.query::<String>("searchValue");
    let out = svc
        .admin_list_users(&c.who, limit, offset, search.as_deref())
        .await?;
    no_store(res);
    res.render(Json(out));
    Ok(())
}

async fn set_banned(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    banned: bool,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let c = caller(depot)?;
    let meta = request_meta(req, depot);
    let b = body(req).await?;
    let out = svc
        .admin_set_banned(
            &c.who,
            text(&b, "userId")?,
            banned,
            opt_text(&b, "banReason"),
            &meta,
        )
        .await?;
    res.render(Json(out));
    Ok(())
}

/// `POST /admin/ban-user` `{userId, banReason?}`.
#[handler]
async fn admin_ban_user(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    set_banned(req, depot, res, true).await
}

/// `POST /admin/unban-user` `{userId}`.
#[handler]
async fn admin_unban_user(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    set_banned(req, depot, res, false).await
}

#[handler]
async fn sso_providers(depot: &mut Depot, res: &mut Response) -> Result<(), AuthError> {
    let svc = service(depot)?;
    res.render(Json(svc.sso_providers()));
    Ok(())
}

/// `POST /sign-in/social` (`{provider, callbackURL?, errorCallbackURL?, newUserCallbackURL?}`)
/// and better-auth's generic-OAuth spelling `POST /sign-in/oauth2` (`{providerId, ...}`).
#[handler]
async fn sign_in_social(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let meta = request_meta(req, depot);
    svc.check_rate(&meta, None)?;
    let binding = sso_binding(req, &svc);
    let b = body(req).await?;
    let start = social_body(&b)?;
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
    let svc = service(depot)?;
    let c = caller(depot)?;
    let meta = request_meta(req, depot);
    svc.check_rate(&meta, None)?;
    let binding = sso_binding(req, &svc);
    let b = body(req).await?;
    let start = social_body(&b)?;
    let out = svc
        .sso_link_start(&c.who, &start, binding.as_deref())
        .await?;
    render_social_redirect(res, &svc, &out);
    Ok(())
}

fn social_body(b: &Json) -> Result<crate::sso::SocialSignIn, AuthError> {
    let provider = match opt_text(b, "provider") {
        Some(p) => p,
        None => text(b, "providerId").map_err(|_| {
            AuthError::InvalidBody("`provider` is required and must be a string".into())
        })?,
    };
    Ok(crate::sso::SocialSignIn {
        provider: provider.to_owned(),
        callback_url: opt_text(b, "callbackURL").map(str::to_owned),
        error_callback_url: opt_text(b, "errorCallbackURL").map(str::to_owned),
        new_user_callback_url: opt_text(b, "newUserCallbackURL").map(str::to_owned),
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

/// `GET /callback/{provider}`: the provider sends the browser here with `code` and `state`
/// (or `error`); on success the session cookie is set and the browser goes to `callbackURL`.
#[handler]
async fn sso_callback(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AuthError> {
    let svc = service(depot)?;
    let meta = request_meta(req, depot);
    svc.check_rate(&meta, None)?;
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
                if let Ok(v) = HeaderValue::from_str(&signed.token) {
                    res.headers_mut().insert(SET_AUTH_TOKEN, v);
                }
                if let Ok(v) = HeaderValue::from_str(&session_cookie(
                    &svc,
                    &signed.token,
                    svc.session_max_age_secs(),
                )) {
                    res.headers_mut().append(SET_COOKIE, v);
                }
            }
            redirect(res, &done.redirect)
        }
        Err(crate::sso::SsoFailure {
            error,
            redirect: Some(to),
            ..
        }) => {
            let sep = if to.contains('?') { '&' } else { '?' };
            redirect(res, &format!("{to}{sep}error={}", error.code()))
        }
        Err(failure) => Err(failure.error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
