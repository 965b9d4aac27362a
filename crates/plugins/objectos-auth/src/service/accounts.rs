//! Accounts: the owner check, credential rows, creating accounts (the first one founds the
//! default organization), self-service sign-up, and the user view.

use objectos_data::{OpContext, Record};
use objectos_spec::event::auth::AuthDetails;
use objectos_spec::query::QueryAst;
use serde_json::{Value as Json, json};

use super::{
    AuthService, Credential, NewAccount, RequestMeta, SignedIn, ms, normalize_email, user_json,
};
use crate::crypto;
use crate::error::{AuthError, Result};
use crate::store::{get_i, get_s, i, s};

/// The stored "hash" of an account without a password (single sign-on only).
const NO_PASSWORD: &str = "!no-password";

impl AuthService {
    /// True once an owner (the first account) exists.
    pub async fn has_owner(&self) -> Result<bool> {
        Ok(self
            .db()
            .one(
                r#"SELECT "user_id" FROM "_objectos_auth_member" WHERE "role" = 'owner' LIMIT 1"#,
                vec![],
            )
            .await?
            .is_some())
    }

    pub(crate) async fn credential_by(
        &self,
        column: &str,
        value: &str,
    ) -> Result<Option<Credential>> {
        let sql = format!(
            r#"SELECT "user_id", "email", "password_hash", "is_admin" FROM "_objectos_auth_credential" WHERE "{column}" = ?"#
        );
        let Some(row) = self.db().one(&sql, vec![s(value)]).await? else {
            return Ok(None);
        };
        Ok(Some(Credential {
            user_id: get_s(&row, 0)?,
            email: get_s(&row, 1)?,
            password_hash: get_s(&row, 2)?,
            is_admin: get_i(&row, 3)? != 0,
        }))
    }

    /// Creates an account. The very first account creates the default organization and becomes
    /// its owner and an administrator; later ones join it as members (administrators when `admin`).
    /// `public` is true for self-service sign-up, which is closed after the owner unless configured.
    pub async fn create_account(
        &self,
        email: &str,
        password: &str,
        name: Option<&str>,
        admin: bool,
        public: bool,
    ) -> Result<(String, Option<String>)> {
        self.check_policy(password)?;
        self.create_account_with(NewAccount {
            email,
            password: Some(password),
            name,
            admin,
            public,
            ..NewAccount::default()
        })
        .await
    }

    /// Creates an account. Accounts without a password sign in through a single sign-on
    /// provider (they can set one later with the password reset flow).
    pub(crate) async fn create_account_with(
        &self,
        new: NewAccount<'_>,
    ) -> Result<(String, Option<String>)> {
        let NewAccount {
            email,
            password,
            name,
            admin,
            public,
            email_verified,
            org: join,
        } = new;
        let email = normalize_email(email)?;
        let name = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| email.split('@').next().unwrap_or("user").to_owned());
        let _guard = self.inner.create_lock.lock().await;
        let first = !self.has_owner().await?;
        if public && !first && !self.inner.config.allow_sign_up {
            return Err(AuthError::SignUpDisabled);
        }
        if self.credential_by("email", &email).await?.is_some() {
            return Err(AuthError::UserExists);
        }
        let hash = match password {
            Some(p) => self.inner.hasher.hash(p)?,
            // Not a PHC string, so no password ever verifies against it.
            None => NO_PASSWORD.to_owned(),
        };
        let engine = &self.inner.engine;
        let org = if first {
            let mut rec = Record::new();
            rec.insert("name".into(), json!(format!("{name}'s organization")));
            let slug = format!(
                "org-{}",
                &crypto::sha256_hex(&crypto::random_token()?)[..12]
            );
            rec.insert("slug".into(), json!(slug));
            let created = engine
                .create(
                    &OpContext::system("auth: first sign-up"),
                    "organization",
                    rec,
                )
                .await
                .map_err(AuthError::Data)?;
            created.get("id").and_then(Json::as_str).map(str::to_owned)
        } else if let Some(org) = join {
            Some(org.to_owned())
        } else {
            self.default_org().await?
        };
        let mut cx = OpContext::system("auth: create account");
        cx.tenant = org.clone();
        let mut rec = Record::new();
        rec.insert("name".into(), json!(name));
        rec.insert("email".into(), json!(email));
        if email_verified {
            rec.insert("email_verified".into(), json!(true));
        }
        let user = engine
            .create(&cx, "user", rec)
            .await
            .map_err(|e| match e.code() {
                "DUPLICATE_VALUE" => AuthError::UserExists,
                _ => AuthError::Data(e),
            })?;
        let user_id = user
            .get("id")
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or_else(|| AuthError::Internal("created user has no id".into()))?;
        let now = ms(self.now());
        self.db()
            .exec_for(
                &user_id,
                r#"INSERT INTO "_objectos_auth_credential" ("user_id", "email", "password_hash", "is_admin", "failed_count", "updated_at") VALUES (?, ?, ?, ?, 0, ?)"#,
                vec![s(&user_id), s(&email), s(hash), i(i64::from(first || admin)), i(now)],
            )
            .await?;
        if let Some(org) = &org {
            let role = if first {
                "owner"
            } else if admin {
                "admin"
            } else {
                "member"
            };
            self.db()
                .exec_for(
                    &user_id,
                    r#"INSERT INTO "_objectos_auth_member" ("org_id", "user_id", "role", "created_at") VALUES (?, ?, ?, ?)"#,
                    vec![s(org), s(&user_id), s(role), i(now)],
                )
                .await?;
        }
        tracing::info!(user_id = %user_id, owner = first, "Account created.");
        Ok((user_id, org))
    }

    /// Self-service sign-up (`POST /sign-up/email`): creates the account and signs it in.
    pub async fn sign_up(
        &self,
        email: &str,
        password: &str,
        name: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<SignedIn> {
        let (user_id, org) = self
            .create_account(email, password, name, false, true)
            .await?;
        self.open_session(
            &user_id,
            org.as_deref(),
            meta,
            AuthDetails::reason("sign_up"),
        )
        .await
    }

    /// The user record, read as the system: the auth plugin's own reads are not a caller's and
    /// pass no permission check (the data engine's error, so a caller can tell a missing record).
    pub(crate) async fn user_record(&self, user_id: &str) -> objectos_data::Result<Record> {
        self.inner
            .engine
            .get(
                &OpContext::system("auth: read user"),
                "user",
                user_id,
                QueryAst::default(),
            )
            .await
    }

    /// The `status` of the user record (`active`, `invited`, `locked`, `deactivated`).
    pub(crate) async fn user_status(&self, user_id: &str) -> Result<String> {
        let user = self.user_record(user_id).await.map_err(AuthError::Data)?;
        Ok(user
            .get("status")
            .and_then(Json::as_str)
            .unwrap_or("active")
            .to_owned())
    }

    /// The user as the official server returns it (`{id, name, email, emailVerified, image, ...}`);
    /// `role` is `admin` when the user administers `org` (the active organization).
    pub async fn user_view(&self, user_id: &str, org: Option<&str>) -> Result<Json> {
        let user = self.user_record(user_id).await.map_err(AuthError::Data)?;
        let cred = self.credential_by("user_id", user_id).await?;
        let role = match org {
            Some(org) => self.member_role(org, user_id).await?,
            None => None,
        };
        let two_factor = self.totp_enabled(user_id).await?;
        Ok(user_json(
            user_id,
            &user,
            role.as_deref(),
            cred.is_some_and(|c| c.is_admin),
            two_factor,
        ))
    }
}
