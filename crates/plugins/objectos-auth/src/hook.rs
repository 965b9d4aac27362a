//! Data interceptors on the `user` object. When a user leaves the `active` status (locked or
//! deactivated by an administrator), every session and API key of that user is revoked in the
//! same transaction, so a deactivated user cannot keep working on an old token. And the data API
//! may not create user records or change their address or its verification: accounts and
//! addresses are global and belong to the auth routes (see [`UserIdentityHook`]).

use async_trait::async_trait;
use objectos_data::store::Store;
use objectos_data::{DataError, HookContext, Interceptor, Operation, Principal};

use crate::http::ServiceCell;

/// Revokes credentials of users that stop being active.
#[derive(Clone)]
pub struct UserStatusHook {
    pub(crate) cell: ServiceCell,
}

impl std::fmt::Debug for UserStatusHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserStatusHook")
    }
}

#[async_trait]
impl Interceptor for UserStatusHook {
    fn name(&self) -> &str {
        "auth.user_status"
    }

    fn order(&self) -> i32 {
        // After validation and permissions: only a change that will commit matters.
        900
    }

    fn applies_to(&self, object: &str, op: Operation) -> bool {
        object == "user" && matches!(op, Operation::Update | Operation::Delete)
    }

    async fn after(&self, hook: &mut HookContext<'_>) -> objectos_data::Result<()> {
        let still_active = match hook.operation {
            Operation::Delete => false,
            _ => hook
                .result
                .as_deref()
                .and_then(|r| r.get("status"))
                .and_then(|s| s.as_str())
                .is_none_or(|s| s == "active"),
        };
        if still_active {
            return Ok(());
        }
        let Some(user_id) = hook
            .previous
            .and_then(|r| r.get("id"))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
        else {
            return Ok(());
        };
        let now = self
            .cell
            .get()
            .map(|s| s.now_millis())
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let tx = hook.write_tx()?;
        for table in ["_objectos_auth_session", "_objectos_auth_api_key"] {
            let mut sql = tx.sql();
            sql.push(&format!(r#"UPDATE "{table}" SET "revoked_at" = "#))
                .bind(now)
                .push(r#" WHERE "user_id" = "#)
                .bind(user_id.as_str())
                .push(r#" AND "revoked_at" IS NULL"#);
            tx.execute(sql).await?;
        }
        // Cached resolutions of this user's sessions must go. This runs just before the commit;
        // a request resolving in that instant may re-cache the session for at most
        // `sessionCacheSeconds` (documented).
        if let Some(service) = self.cell.get() {
            service.user_sessions_changed(&user_id);
        }
        tracing::info!(user_id = %user_id, "User is no longer active; sessions and API keys revoked.");
        Ok(())
    }
}

/// Keeps the identity of an account out of the data API's reach: only the auth plugin (which
/// writes as the system) creates `user` records and sets `email` and `email_verified`.
///
/// Organization administrators administer their organization's data, user records included,
/// but an address is global: a record made or renamed through the data API would answer
/// `DUPLICATE_VALUE` for an address that has an account anywhere (the address is unique across
/// organizations), which tells any self-made organization's admin who has an account, and
/// marking an address verified would let one stand in for the proof invitations ask for. The
/// refusal comes before the uniqueness check, so it is the same whatever the address.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserIdentityHook;

/// Fields of `user` that only the auth plugin writes.
const IDENTITY_FIELDS: &[&str] = &["email", "email_verified"];

#[async_trait]
impl Interceptor for UserIdentityHook {
    fn name(&self) -> &str {
        "auth.user_identity"
    }

    fn order(&self) -> i32 {
        // Before every other before-step, so nothing else answers first with something that
        // depends on the values.
        -1000
    }

    fn applies_to(&self, object: &str, op: Operation) -> bool {
        object == "user" && matches!(op, Operation::Create | Operation::Update)
    }

    async fn before(&self, hook: &mut HookContext<'_>) -> objectos_data::Result<()> {
        if matches!(hook.cx.principal, Principal::System { .. }) {
            return Ok(());
        }
        let refuse = |message: &str| {
            Err(DataError::Forbidden {
                object: "user".to_owned(),
                message: message.to_owned(),
            })
        };
        if hook.operation == Operation::Create {
            return refuse(
                "User records are created with their accounts: POST /api/v1/auth/organization/invite-member (or admin/create-user for platform administrators).",
            );
        }
        let Some(input) = hook.input.as_deref() else {
            return Ok(());
        };
        for field in IDENTITY_FIELDS {
            let Some(new) = input.get(*field) else {
                continue;
            };
            // Sending the value the record already has (a form that posts every field) is no
            // change; comparing with the caller's own record reveals nothing.
            let old = hook.previous.and_then(|p| p.get(*field));
            let same = match (old, new) {
                (Some(a), b) if a == b => true,
                (Some(serde_json::Value::String(a)), serde_json::Value::String(b)) => {
                    crate::service::fold_email(a) == crate::service::fold_email(b)
                }
                (None, serde_json::Value::Null) => true,
                _ => false,
            };
            if !same {
                return refuse(
                    "A user's email address and its verification are managed by the account itself (email verification), not through the data API.",
                );
            }
        }
        Ok(())
    }
}
