//! A data interceptor on the `user` object: when a user leaves the `active` status (locked or
//! deactivated by an administrator), every session and API key of that user is revoked in the
//! same transaction, so a deactivated user cannot keep working on an old token.

use async_trait::async_trait;
use objectos_data::{HookContext, Interceptor, Operation};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

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
        let backend = tx.get_database_backend();
        for table in ["_objectos_auth_session", "_objectos_auth_api_key"] {
            let sql = match backend {
                DbBackend::Postgres => format!(
                    r#"UPDATE "{table}" SET "revoked_at" = $1 WHERE "user_id" = $2 AND "revoked_at" IS NULL"#
                ),
                _ => format!(
                    r#"UPDATE "{table}" SET "revoked_at" = ? WHERE "user_id" = ? AND "revoked_at" IS NULL"#
                ),
            };
            tx.execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                vec![
                    Value::BigInt(Some(now)),
                    Value::String(Some(user_id.clone())),
                ],
            ))
            .await
            .map_err(|e| objectos_data::DataError::Database(e.to_string()))?;
        }
        // Cached resolutions of this user's sessions must go. This runs just before the commit;
        // a request resolving in that instant may re-cache the session for at most
        // `sessionCacheSeconds` (documented).
        if let Some(service) = self.cell.get() {
            service.sessions_changed();
        }
        tracing::info!(user_id = %user_id, "User is no longer active; sessions and API keys revoked.");
        Ok(())
    }
}
