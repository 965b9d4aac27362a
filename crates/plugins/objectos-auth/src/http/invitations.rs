//! Invitation routes: invite, list (an organization's and the caller's), cancel, accept and
//! reject.

use salvo::prelude::*;

use super::{Answer, SignedInCall, unstored};

/// `POST /organization/invite-member` `{email, role?, organizationId?, resend?}`.
#[handler]
pub(super) async fn org_invite_member(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Answer {
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
pub(super) async fn org_list_invitations(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Answer {
    let (c, limit, offset, org) = SignedInCall::list(req, depot, "organizationId")?;
    let out = c
        .svc
        .list_invitations(&c.who, org.as_deref(), limit, offset)
        .await?;
    Ok(unstored(res, out))
}

/// `GET /organization/list-user-invitations`.
#[handler]
pub(super) async fn org_list_user_invitations(
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
pub(super) async fn org_cancel_invitation(req: &mut Request, depot: &mut Depot) -> Answer {
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
pub(super) async fn org_accept_invitation(req: &mut Request, depot: &mut Depot) -> Answer {
    answer_invitation(req, depot, true).await
}

/// `POST /organization/reject-invitation` `{invitationId, token?}`.
#[handler]
pub(super) async fn org_reject_invitation(req: &mut Request, depot: &mut Depot) -> Answer {
    answer_invitation(req, depot, false).await
}
