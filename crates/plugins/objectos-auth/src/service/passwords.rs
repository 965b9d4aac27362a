//! Passwords: the policy, the history of previous hashes, change, and the forget/reset flow.

use objectos_spec::event::auth::AuthDetails;

use super::{AuthService, RequestMeta, Resolved, events, minutes, ms, normalize_email};
use crate::crypto;
use crate::error::{AuthError, Result};
use crate::mailer::Mail;
use crate::store::{get_i, get_oi, get_s, i, s};

impl AuthService {
    pub(crate) fn check_policy(&self, password: &str) -> Result<()> {
        if password.len() > 1024 {
            return Err(AuthError::WeakPassword(vec![
                "Password must be at most 1024 bytes long.".into(),
            ]));
        }
        self.inner
            .config
            .password_policy
            .check(password)
            .map_err(AuthError::WeakPassword)
    }

    /// Refuses a password equal to the current one or to one of the last `historyCount - 1`
    /// previous ones, then keeps the current hash in the history.
    async fn check_and_rotate_history(&self, user_id: &str, password: &str) -> Result<()> {
        let keep = i64::from(self.inner.config.password_policy.history_count);
        if keep == 0 {
            return Ok(());
        }
        let mut hashes = Vec::new();
        if let Some(c) = self.credential_by("user_id", user_id).await? {
            hashes.push(c.password_hash);
        }
        let rows = self
            .db()
            .all(
                r#"SELECT "password_hash" FROM "_objectos_auth_password_history" WHERE "user_id" = ? ORDER BY "created_at" DESC LIMIT ?"#,
                vec![s(user_id), i((keep - 1).max(0))],
            )
            .await?;
        for r in &rows {
            hashes.push(get_s(r, 0)?);
        }
        if hashes.iter().any(|h| self.inner.hasher.verify(password, h)) {
            return Err(AuthError::WeakPassword(vec![format!(
                "Password must differ from the last {keep} passwords."
            )]));
        }
        if let Some(current) = hashes.first() {
            self.db()
                .exec_for(
                    user_id,
                    r#"INSERT INTO "_objectos_auth_password_history" ("user_id", "password_hash", "created_at") VALUES (?, ?, ?)"#,
                    vec![s(user_id), s(current), i(ms(self.now()))],
                )
                .await?;
        }
        Ok(())
    }

    async fn set_password(&self, user_id: &str, password: &str) -> Result<()> {
        self.check_and_rotate_history(user_id, password).await?;
        let hash = self.inner.hasher.hash(password)?;
        self.db()
            .exec_for(
                user_id,
                r#"UPDATE "_objectos_auth_credential" SET "password_hash" = ?, "failed_count" = 0, "locked_until" = NULL, "updated_at" = ? WHERE "user_id" = ?"#,
                vec![s(hash), i(ms(self.now())), s(user_id)],
            )
            .await?;
        // A new password (proved by the current one or the reset mail) lifts a sign-in lockout.
        if let Some(c) = self.credential_by("user_id", user_id).await? {
            self.clear_failures(&crypto::sha256_hex(&c.email)).await?;
        }
        Ok(())
    }

    /// `POST /change-password`: needs the current password; every other session is revoked.
    pub async fn change_password(
        &self,
        who: &Resolved,
        current: &str,
        new: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        let cred = self
            .credential_by("user_id", &who.user_id)
            .await?
            .ok_or(AuthError::Unauthenticated)?;
        if !self.inner.hasher.verify(current, &cred.password_hash) {
            return Err(AuthError::InvalidCredentials);
        }
        self.check_policy(new)?;
        self.set_password(&who.user_id, new).await?;
        let revoked = self
            .revoke_sessions(&who.user_id, who.session_id.as_deref())
            .await?;
        self.publish(
            events::PASSWORD_CHANGED,
            Some(&who.user_id),
            Some(&who.email),
            who.tenant.as_deref(),
            meta,
            AuthDetails {
                revoked_sessions: Some(revoked),
                ..AuthDetails::default()
            },
        )
        .await;
        Ok(())
    }

    /// `POST /forget-password`: mails a reset link when the email is known; silent otherwise.
    pub async fn forget_password(&self, email: &str, meta: &RequestMeta) -> Result<()> {
        let Ok(email) = normalize_email(email) else {
            return Ok(());
        };
        let cred = self.credential_by("email", &email).await?;
        // Known or not, the same work: a token, its digest, one insert and one prune, so the
        // response time does not say whether the address has an account. An unknown address
        // gets a decoy row, owned by nobody and expired on arrival, which can never reset anything.
        let token = crypto::random_token()?;
        let now = ms(self.now());
        let (owner, expires) = match &cred {
            Some(c) => (
                c.user_id.as_str(),
                now + minutes(self.inner.config.reset_token_minutes),
            ),
            None => ("", now),
        };
        self.db()
            .exec_uncached(
                r#"INSERT INTO "_objectos_auth_reset" ("token_hash", "user_id", "expires_at") VALUES (?, ?, ?)"#,
                vec![s(crypto::sha256_hex(&token)), s(owner), i(expires)],
            )
            .await?;
        self.db()
            .exec_uncached(
                r#"DELETE FROM "_objectos_auth_reset" WHERE "expires_at" < ?"#,
                vec![i(now - crate::verification::KEEP_EXPIRED_MS)],
            )
            .await?;
        if cred.is_none() {
            tracing::info!("Password reset requested for an unknown email; nothing sent.");
            return Ok(());
        }
        let base = &self.inner.config.reset_url;
        let sep = if base.contains('?') { '&' } else { '?' };
        let link = format!("{base}{sep}token={token}");
        let organization = match &cred {
            Some(c) => self.primary_org(&c.user_id).await,
            None => None,
        };
        self.mail(Mail {
            organization,
            to: email,
            subject: "Reset your password".into(),
            body: format!(
                "Someone asked to reset your password. Open this link within {} minutes to choose a new one: {link}\nIf it was not you, ignore this mail.",
                self.inner.config.reset_token_minutes
            ),
            link: Some(link),
        })?;
        let _ = meta;
        Ok(())
    }

    /// `POST /reset-password`: consumes the token once, sets the password, revokes every session.
    pub async fn reset_password(&self, token: &str, new: &str, meta: &RequestMeta) -> Result<()> {
        self.check_policy(new)?;
        let hash = crypto::sha256_hex(token);
        let now = ms(self.now());
        let Some(row) = self
            .db()
            .one(
                r#"SELECT "user_id", "expires_at", "used_at" FROM "_objectos_auth_reset" WHERE "token_hash" = ?"#,
                vec![s(&hash)],
            )
            .await?
        else {
            return Err(AuthError::InvalidResetToken);
        };
        if get_oi(&row, 2).is_some() || get_i(&row, 1)? <= now {
            return Err(AuthError::InvalidResetToken);
        }
        // The conditional update makes the token single-use even under concurrent resets.
        let claimed = self
            .db()
            .exec_uncached(
                r#"UPDATE "_objectos_auth_reset" SET "used_at" = ? WHERE "token_hash" = ? AND "used_at" IS NULL"#,
                vec![i(now), s(&hash)],
            )
            .await?;
        if claimed != 1 {
            return Err(AuthError::InvalidResetToken);
        }
        let user_id = get_s(&row, 0)?;
        self.set_password(&user_id, new).await?;
        self.revoke_sessions(&user_id, None).await?;
        let cred = self.credential_by("user_id", &user_id).await?;
        let org = self.org_of(&user_id).await?;
        self.publish(
            events::PASSWORD_RESET,
            Some(&user_id),
            cred.as_ref().map(|c| c.email.as_str()),
            org.as_deref(),
            meta,
            AuthDetails::default(),
        )
        .await;
        Ok(())
    }
}
