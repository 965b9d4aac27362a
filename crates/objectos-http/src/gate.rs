//! The administrators' gate of plugin routes (the audit log, the job queue): an authenticated
//! administrator or the system principal passes; anyone else is refused with the same codes
//! on every route, 401 `UNAUTHENTICATED` without a session and 403 `PERMISSION_DENIED` for a
//! user who is no administrator.
//!
//! What an administrator may reach beyond that (an organization's administrator only its own
//! organization's rows, a platform administrator everything) stays the route's decision.

use objectos_data::Principal;
use salvo::http::StatusCode;
use salvo::prelude::Depot;

use crate::error::HttpError;
use crate::hoops::RequestContext;

/// The request's context when an administrator (`Principal::User { is_admin: true }`) or the
/// system sends it; otherwise the refusal to render, worded with `action` ("manage jobs":
/// "Authentication required to manage jobs", "Only administrators may manage jobs").
///
/// # Errors
/// [`HttpError::Status`] 401 without a request context or for an anonymous principal, 403 for
/// a user who is no administrator.
pub fn require_admin<'a>(depot: &'a Depot, action: &str) -> Result<&'a RequestContext, HttpError> {
    let cx = depot.get_typed::<RequestContext>().ok();
    match cx.map(|cx| &cx.principal) {
        None | Some(Principal::Anonymous) => Err(HttpError::Status {
            status: StatusCode::UNAUTHORIZED,
            message: format!("Authentication required to {action}"),
        }),
        Some(Principal::User {
            is_admin: false, ..
        }) => Err(HttpError::Status {
            status: StatusCode::FORBIDDEN,
            message: format!("Only administrators may {action}"),
        }),
        Some(_) => cx.ok_or_else(|| HttpError::Internal("the request context vanished".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depot_with(principal: Option<Principal>) -> Depot {
        let mut depot = Depot::new();
        if let Some(principal) = principal {
            depot.insert_typed(RequestContext {
                request_id: "req-1".into(),
                principal,
                tenant: None,
                locale: None,
                client_ip: None,
            });
        }
        depot
    }

    fn refusal(principal: Option<Principal>) -> Option<(u16, String, String)> {
        let depot = depot_with(principal);
        require_admin(&depot, "read the audit log")
            .err()
            .map(|e| (e.status().as_u16(), e.code().to_owned(), e.public_message()))
    }

    fn user(is_admin: bool) -> Principal {
        Principal::User {
            id: "u1".into(),
            roles: vec![],
            permission_sets: vec![],
            is_admin,
        }
    }

    #[test]
    fn only_administrators_and_the_system_pass() {
        let unauthenticated = Some((
            401,
            "UNAUTHENTICATED".to_owned(),
            "Authentication required to read the audit log".to_owned(),
        ));
        assert_eq!(refusal(None), unauthenticated);
        assert_eq!(refusal(Some(Principal::Anonymous)), unauthenticated);
        assert_eq!(
            refusal(Some(user(false))),
            Some((
                403,
                "PERMISSION_DENIED".to_owned(),
                "Only administrators may read the audit log".to_owned(),
            ))
        );
        assert_eq!(refusal(Some(user(true))), None);
        assert_eq!(refusal(Some(Principal::system("test"))), None);
    }
}
