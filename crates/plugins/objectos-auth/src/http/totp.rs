//! Two-factor routes: enable, verify-totp and disable.

use salvo::prelude::*;

use super::{Answer, SignedInCall, status_true, unstored};

#[handler]
pub(super) async fn totp_enable(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Answer {
    let (c, b) = SignedInCall::throttled_with_body(req, depot).await?;
    let out = c.svc.totp_enable(&c.who, b.text("password")?).await?;
    Ok(unstored(res, out))
}

#[handler]
pub(super) async fn totp_verify(req: &mut Request, depot: &mut Depot) -> Answer {
    let (c, b) = SignedInCall::throttled_with_body(req, depot).await?;
    c.svc.totp_verify(&c.who, b.text("code")?, &c.meta).await?;
    Ok(status_true())
}

#[handler]
pub(super) async fn totp_disable(req: &mut Request, depot: &mut Depot) -> Answer {
    let (c, b) = SignedInCall::throttled_with_body(req, depot).await?;
    c.svc
        .totp_disable(&c.who, b.text("password")?, &c.meta)
        .await?;
    Ok(status_true())
}
