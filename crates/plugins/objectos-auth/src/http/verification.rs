//! Email verification routes: send-verification-email and verify-email.

use salvo::prelude::*;
use serde_json::json;

use super::{Answer, AuthCaller, Call, no_store, redirect, redirect_with_error, status_true};
use crate::error::AuthError;

/// `POST /send-verification-email` `{email, callbackURL?}`: `{status: true}` whether or not
/// the address has an account (a signed-in caller may only ask for its own address).
#[handler]
pub(super) async fn send_verification_email(req: &mut Request, depot: &mut Depot) -> Answer {
    let (Call { svc, .. }, b, email) = Call::with_email(req, depot).await?;
    let who = depot.get_typed::<AuthCaller>().ok().map(|c| c.who.clone());
    svc.send_verification_email(who.as_ref(), &email, b.opt_text("callbackURL"))
        .await?;
    Ok(status_true())
}

/// `GET /verify-email?token=&callbackURL=`: `{status: true, user: null}`, or a redirect to
/// `callbackURL` (with `?error=INVALID_TOKEN` when the token is refused).
#[handler]
pub(super) async fn verify_email(
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
