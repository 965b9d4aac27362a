//! Single sign-on routes: providers, sign-in/social (and oauth2), link-social and the
//! provider callback, with the cookie binding a flow to its browser.

use salvo::http::header::{HeaderValue, SET_COOKIE};
use salvo::prelude::*;
use serde_json::json;

use super::{
    AUTH_BASE, Answer, AuthCaller, Body, Call, SSO_STATE_COOKIE, SSO_STATE_COOKIE_SECURE,
    SignedInCall, no_store, redirect, redirect_with_error, service, set_session,
};
use crate::error::AuthError;
use crate::service::AuthService;

#[handler]
pub(super) async fn sso_providers(depot: &mut Depot) -> Answer {
    Ok(Json(service(depot)?.sso_providers()))
}

/// `POST /sign-in/social` (`{provider, callbackURL?, errorCallbackURL?, newUserCallbackURL?}`)
/// and better-auth's generic-OAuth spelling `POST /sign-in/oauth2` (`{providerId, ...}`).
#[handler]
pub(super) async fn sign_in_social(
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
pub(super) async fn link_social(
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

/// `GET /callback/{provider}`: the provider sends the browser here with `code` and `state`
/// (or `error`); on success the session cookie is set and the browser goes to `callbackURL`.
#[handler]
pub(super) async fn sso_callback(
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
