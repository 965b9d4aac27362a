//! Password routes: forget/request-password-reset, reset-password and change-password.

use salvo::prelude::*;

use super::{Answer, Body, Call, SignedInCall, status_true};

#[handler]
pub(super) async fn forget_password(req: &mut Request, depot: &mut Depot) -> Answer {
    let (Call { svc, meta }, _, email) = Call::with_email(req, depot).await?;
    svc.forget_password(&email, &meta).await?;
    // The same answer whether or not the email exists, so the route does not reveal accounts.
    Ok(status_true())
}

#[handler]
pub(super) async fn reset_password(req: &mut Request, depot: &mut Depot) -> Answer {
    let Call { svc, meta } = Call::new(req, depot)?.throttled()?;
    let b = Body::read(req).await?;
    svc.reset_password(b.text("token")?, b.text("newPassword")?, &meta)
        .await?;
    Ok(status_true())
}

#[handler]
pub(super) async fn change_password(req: &mut Request, depot: &mut Depot) -> Answer {
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
