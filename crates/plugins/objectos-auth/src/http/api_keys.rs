//! API key routes: create, list and delete.

use salvo::http::StatusCode;
use salvo::prelude::*;
use serde_json::Value as Json;

use super::{Answer, SignedInCall, success_true, unstored};
use crate::error::AuthError;

#[handler]
pub(super) async fn api_key_create(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Answer {
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
pub(super) async fn api_key_list(req: &mut Request, depot: &mut Depot) -> Answer {
    let c = SignedInCall::new(req, depot)?;
    Ok(Json(c.svc.list_api_keys(&c.who).await?))
}

#[handler]
pub(super) async fn api_key_delete(req: &mut Request, depot: &mut Depot) -> Answer {
    let (c, b) = SignedInCall::with_body(req, depot).await?;
    c.svc
        .revoke_api_key(&c.who, b.text("keyId")?, &c.meta)
        .await?;
    Ok(success_true())
}
