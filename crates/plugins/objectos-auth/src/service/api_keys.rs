//! API keys: create, list, revoke, and resolving a presented key.

use objectos_spec::event::auth::AuthDetails;
use serde_json::{Value as Json, json};

use super::{API_KEY_PREFIX, AuthService, RequestMeta, Resolved, events, iso, manages, ms};
use crate::crypto;
use crate::error::{AuthError, Result};
use crate::store::{get_i, get_oi, get_os, get_s, i, oi, os, s};

impl AuthService {
    /// Creates an API key; the key is returned only here and stored as its SHA-256.
    pub async fn create_api_key(
        &self,
        who: &Resolved,
        name: &str,
        scopes: Vec<String>,
        expires_in_days: Option<u32>,
        meta: &RequestMeta,
    ) -> Result<Json> {
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(AuthError::InvalidBody(
                "`name` must be 1 to 200 characters".into(),
            ));
        }
        let scopes = if scopes.is_empty() {
            vec!["read".to_owned(), "write".to_owned()]
        } else {
            scopes
        };
        if let Some(bad) = scopes
            .iter()
            .find(|s| !matches!(s.as_str(), "read" | "write" | "admin"))
        {
            return Err(AuthError::InvalidBody(format!(
                "unknown scope `{bad}` in `scopes`; expected read, write or admin"
            )));
        }
        if scopes.iter().any(|s| s == "admin") && !who.is_admin {
            return Err(AuthError::Forbidden(
                "Only administrators may create admin-scoped keys.".into(),
            ));
        }
        if who.api_key_id.is_some() {
            return Err(AuthError::Forbidden(
                "API keys cannot create API keys; sign in.".into(),
            ));
        }
        let key = format!("{API_KEY_PREFIX}{}", crypto::random_token()?);
        let id = uuid::Uuid::now_v7().simple().to_string();
        let prefix: String = key.chars().take(API_KEY_PREFIX.len() + 6).collect();
        let now = ms(self.now());
        let expires = expires_in_days.map(|d| now + i64::from(d) * 86_400_000);
        let scopes_json =
            serde_json::to_string(&scopes).map_err(|e| AuthError::Internal(e.to_string()))?;
        self.db()
            .exec_for(
                &who.user_id,
                r#"INSERT INTO "_objectos_auth_api_key" ("id", "user_id", "name", "prefix", "key_hash", "scopes", "org_id", "created_at", "expires_at") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"#,
                vec![s(&id), s(&who.user_id), s(name), s(&prefix), s(crypto::sha256_hex(&key)), s(scopes_json), os(who.tenant.clone()), i(now), oi(expires)],
            )
            .await?;
        self.publish(
            events::API_KEY_CREATED,
            Some(&who.user_id),
            Some(&who.email),
            who.tenant.as_deref(),
            meta,
            AuthDetails {
                api_key_id: Some(id.to_string()),
                scopes: Some(scopes.clone()),
                ..AuthDetails::default()
            },
        )
        .await;
        Ok(json!({
            "id": id, "name": name, "key": key, "start": prefix, "scopes": scopes,
            "createdAt": iso(now), "expiresAt": expires.map(iso),
        }))
    }

    /// The caller's keys (never the key itself).
    pub async fn list_api_keys(&self, who: &Resolved) -> Result<Json> {
        let rows = self
            .db()
            .all(
                r#"SELECT "id", "name", "prefix", "scopes", "created_at", "last_used_at", "expires_at", "revoked_at" FROM "_objectos_auth_api_key" WHERE "user_id" = ? ORDER BY "created_at", "id""#,
                vec![s(&who.user_id)],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(json!({
                "id": get_s(&r, 0)?,
                "name": get_s(&r, 1)?,
                "start": get_s(&r, 2)?,
                "scopes": serde_json::from_str::<Json>(&get_s(&r, 3)?).unwrap_or(Json::Null),
                "createdAt": iso(get_i(&r, 4)?),
                "lastUsedAt": get_oi(&r, 5).map(iso),
                "expiresAt": get_oi(&r, 6).map(iso),
                "revoked": get_oi(&r, 7).is_some(),
            }));
        }
        Ok(Json::Array(out))
    }

    /// Revokes one of the caller's keys (administrators may revoke any key of their active
    /// organization; another organization's key is answered like an unknown one).
    pub async fn revoke_api_key(&self, who: &Resolved, id: &str, meta: &RequestMeta) -> Result<()> {
        let n = if let (true, Some(org)) = (who.is_admin, who.tenant.as_deref()) {
            self.db()
                .exec_for(
                    &who.user_id,
                    r#"UPDATE "_objectos_auth_api_key" SET "revoked_at" = ? WHERE "id" = ? AND ("org_id" = ? OR "user_id" = ?) AND "revoked_at" IS NULL"#,
                    vec![i(ms(self.now())), s(id), s(org), s(&who.user_id)],
                )
                .await?
        } else {
            self.db()
                .exec_for(
                    &who.user_id,
                    r#"UPDATE "_objectos_auth_api_key" SET "revoked_at" = ? WHERE "id" = ? AND "user_id" = ? AND "revoked_at" IS NULL"#,
                    vec![i(ms(self.now())), s(id), s(&who.user_id)],
                )
                .await?
        };
        if n == 0 {
            return Err(AuthError::NotFound(format!(
                "API key {id} not found (or already revoked)"
            )));
        }
        self.publish(
            events::API_KEY_REVOKED,
            Some(&who.user_id),
            Some(&who.email),
            who.tenant.as_deref(),
            meta,
            AuthDetails {
                api_key_id: Some(id.to_string()),
                ..AuthDetails::default()
            },
        )
        .await;
        Ok(())
    }

    pub(super) async fn resolve_api_key(
        &self,
        key: &str,
        meta: &RequestMeta,
    ) -> Result<Option<Resolved>> {
        let hash = crypto::sha256_hex(key);
        // One query: the key, the owner's email, and the owner's role in the key's organization.
        let Some(row) = self
            .db()
            .one(
                r#"SELECT k."id", k."key_hash", k."user_id", k."scopes", k."org_id", k."expires_at", k."revoked_at", c."email", m."role" FROM "_objectos_auth_api_key" k JOIN "_objectos_auth_credential" c ON c."user_id" = k."user_id" LEFT JOIN "_objectos_auth_member" m ON m."org_id" = k."org_id" AND m."user_id" = k."user_id" WHERE k."key_hash" = ?"#,
                vec![s(&hash)],
            )
            .await?
        else {
            return Ok(None);
        };
        let now = ms(self.now());
        if !crypto::ct_eq(&get_s(&row, 1)?, &hash)
            || get_oi(&row, 6).is_some()
            || get_oi(&row, 5).is_some_and(|e| e <= now)
        {
            return Ok(None);
        }
        // A key acts in the organization it was created in, and stops working once its owner
        // is no longer a member there.
        let (Some(tenant), Some(role)) = (get_os(&row, 4), get_os(&row, 8)) else {
            return Ok(None);
        };
        let id = get_s(&row, 0)?;
        let user_id = get_s(&row, 2)?;
        let email = get_s(&row, 7)?;
        let scopes: Vec<String> = serde_json::from_str(&get_s(&row, 3)?).unwrap_or_default();
        self.db()
            .exec_uncached(
                r#"UPDATE "_objectos_auth_api_key" SET "last_used_at" = ? WHERE "id" = ?"#,
                vec![i(now), s(&id)],
            )
            .await?;
        self.publish(
            events::API_KEY_USED,
            Some(&user_id),
            Some(&email),
            Some(&tenant),
            meta,
            AuthDetails {
                api_key_id: Some(id.to_string()),
                ..AuthDetails::default()
            },
        )
        .await;
        Ok(Some(Resolved {
            // Without the `admin` scope an administrator's key carries no administrator rights.
            is_admin: manages(&role) && scopes.iter().any(|s| s == "admin"),
            user_id,
            email,
            tenant: Some(tenant),
            org_role: Some(role),
            session_id: None,
            api_key_id: Some(id),
            scopes,
        }))
    }
}
