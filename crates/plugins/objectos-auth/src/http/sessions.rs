//! Session routes: bootstrap status, sign-up, sign-in, get-session and sign-out.

use salvo::http::header::{HeaderValue, SET_COOKIE};
use salvo::prelude::*;
use serde_json::{Value as Json, json};

use super::{
    Answer, AuthCaller, Call, SignedInCall, no_store, service, session_cookie, set_session,
    success_true,
};
use crate::error::AuthError;
use crate::service::AuthService;

fn render_signed_in(res: &mut Response, service: &AuthService, signed: crate::service::SignedIn) {
    set_session(res, service, &signed.token);
    no_store(res);
    res.render(Json(json!({ "token": signed.token, "user": signed.user })));
}

#[handler]
pub(super) async fn bootstrap_status(depot: &mut Depot) -> Answer {
    let has_owner = service(depot)?.has_owner().await?;
    Ok(Json(json!({ "hasOwner": has_owner })))
}

#[handler]
pub(super) async fn sign_up(
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
pub(super) async fn sign_in(
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
pub(super) async fn get_session(depot: &mut Depot, res: &mut Response) -> Result<(), AuthError> {
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
pub(super) async fn sign_out(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Answer {
    let svc = service(depot)?;
    if let Ok(c) = SignedInCall::new(req, depot) {
        svc.sign_out(&c.who, &c.meta).await?;
    }
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&svc, "", 0)) {
        res.headers_mut().append(SET_COOKIE, v);
    }
    Ok(success_true())
}
