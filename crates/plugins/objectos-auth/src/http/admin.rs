//! User administration routes: create-user, list-users, ban-user and unban-user.

use salvo::prelude::*;

use super::{Answer, SignedInCall, unstored};

/// `POST /admin/create-user` `{email, password, name?, role?: user | admin}`.
#[handler]
pub(super) async fn admin_create_user(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Answer {
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
pub(super) async fn admin_list_users(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Answer {
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
pub(super) async fn admin_ban_user(req: &mut Request, depot: &mut Depot) -> Answer {
    set_banned(req, depot, true).await
}

/// `POST /admin/unban-user` `{userId}`.
#[handler]
pub(super) async fn admin_unban_user(req: &mut Request, depot: &mut Depot) -> Answer {
    set_banned(req, depot, false).await
}
