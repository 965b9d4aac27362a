//! Organization routes: create, list, set-active, and the members (add, remove, list, role).

use salvo::prelude::*;

use super::{Answer, SignedInCall};

#[handler]
pub(super) async fn org_list(req: &mut Request, depot: &mut Depot) -> Answer {
    let c = SignedInCall::new(req, depot)?;
    Ok(Json(c.svc.organizations(&c.who).await?))
}

/// `POST /organization/set-active` `{organizationId? | organizationSlug?}`.
#[handler]
pub(super) async fn org_set_active(req: &mut Request, depot: &mut Depot) -> Answer {
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
pub(super) async fn org_create(req: &mut Request, depot: &mut Depot) -> Answer {
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
pub(super) async fn org_add_member(req: &mut Request, depot: &mut Depot) -> Answer {
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
pub(super) async fn org_remove_member(req: &mut Request, depot: &mut Depot) -> Answer {
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
pub(super) async fn org_update_member_role(req: &mut Request, depot: &mut Depot) -> Answer {
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

/// `GET /organization/list-members?organizationId=&limit=&offset=`.
#[handler]
pub(super) async fn org_list_members(req: &mut Request, depot: &mut Depot) -> Answer {
    let (c, limit, offset, org) = SignedInCall::list(req, depot, "organizationId")?;
    let out = c
        .svc
        .list_members(&c.who, org.as_deref(), limit, offset)
        .await?;
    Ok(Json(out))
}
