//! TOTP two-factor authentication: enrolment, verification, disabling, and the one-time
//! recovery codes.

use objectos_spec::event::auth::AuthDetails;
use serde_json::{Value as Json, json};

use super::{AuthService, RequestMeta, Resolved, events, ms};
use crate::crypto;
use crate::error::{AuthError, Result};
use crate::store::{get_i, get_oi, get_s, i, s};

/// Number of one-time recovery codes issued at TOTP enrolment.
const RECOVERY_CODES: usize = 10;

impl AuthService {
    async fn totp_row(&self, user_id: &str) -> Result<Option<(String, bool, Option<i64>)>> {
        Ok(match self
            .db()
            .one(
                r#"SELECT "secret", "enabled", "last_step" FROM "_objectos_auth_totp" WHERE "user_id" = ?"#,
                vec![s(user_id)],
            )
            .await?
        {
            Some(r) => Some((get_s(&r, 0)?, get_i(&r, 1)? != 0, get_oi(&r, 2))),
            None => None,
        })
    }

    pub(super) async fn totp_enabled(&self, user_id: &str) -> Result<bool> {
        // Only the flag: the (possibly encrypted) secret is read where a code is checked.
        Ok(self
            .db()
            .one(
                r#"SELECT "enabled" FROM "_objectos_auth_totp" WHERE "user_id" = ?"#,
                vec![s(user_id)],
            )
            .await?
            .map(|r| get_i(&r, 0))
            .transpose()?
            .is_some_and(|on| on != 0))
    }

    fn totp(secret_b32: &str) -> Result<totp_rs::Totp> {
        let secret = totp_rs::Secret::try_from_base32(secret_b32)
            .map_err(|e| AuthError::Internal(format!("stored TOTP secret is unreadable: {e:?}")))?;
        totp_rs::Builder::new()
            .with_secret(secret)
            .build()
            .map_err(|e| AuthError::Internal(format!("TOTP setup failed: {e:?}")))
    }

    /// Checks a TOTP code (each time step accepted once) and advances the replay guard.
    async fn check_totp(&self, user_id: &str, code: &str) -> Result<bool> {
        let Some((stored, _, last_step)) = self.totp_row(user_id).await? else {
            return Ok(false);
        };
        let secret = self.reveal_totp_secret(user_id, &stored).await?;
        let totp = Self::totp(&secret)?;
        let now = u64::try_from(self.now().timestamp()).unwrap_or(0);
        let Some(step) = totp.check(code, now) else {
            return Ok(false);
        };
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        if last_step.is_some_and(|l| step <= l) {
            return Ok(false);
        }
        let n = self
            .db()
            .exec_for(
                user_id,
                r#"UPDATE "_objectos_auth_totp" SET "last_step" = ? WHERE "user_id" = ? AND ("last_step" IS NULL OR "last_step" < ?)"#,
                vec![i(step), s(user_id), i(step)],
            )
            .await?;
        Ok(n == 1)
    }

    /// A TOTP code, or else a recovery code (consumed).
    pub(super) async fn check_second_factor(&self, user_id: &str, code: &str) -> Result<bool> {
        if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            return self.check_totp(user_id, code).await;
        }
        let normalized: String = code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_lowercase();
        let n = self
            .db()
            .exec_for(
                user_id,
                r#"UPDATE "_objectos_auth_recovery" SET "used_at" = ? WHERE "user_id" = ? AND "code_hash" = ? AND "used_at" IS NULL"#,
                vec![i(ms(self.now())), s(user_id), s(crypto::sha256_hex(&normalized))],
            )
            .await?;
        Ok(n == 1)
    }

    /// `POST /two-factor/enable`: after the password, issues a new secret and recovery codes.
    /// The secret is shown only here; it is active after the first `verify-totp`.
    pub async fn totp_enable(&self, who: &Resolved, password: &str) -> Result<Json> {
        self.verify_password_of(who, password).await?;
        let secret = totp_rs::Secret::from(crypto::random_bytes::<20>()?.to_vec());
        let secret_b32 = secret.to_base32();
        let stored = self.seal_totp_secret(&who.user_id, &secret_b32)?;
        let now = ms(self.now());
        self.db()
            .exec_for(
                &who.user_id,
                r#"DELETE FROM "_objectos_auth_totp" WHERE "user_id" = ?"#,
                vec![s(&who.user_id)],
            )
            .await?;
        self.db()
            .exec_for(
                &who.user_id,
                r#"INSERT INTO "_objectos_auth_totp" ("user_id", "secret", "enabled", "created_at") VALUES (?, ?, 0, ?)"#,
                vec![s(&who.user_id), s(stored), i(now)],
            )
            .await?;
        let codes = self.new_recovery_codes(&who.user_id).await?;
        let issuer = &self.inner.config.totp_issuer;
        let uri = format!(
            "otpauth://totp/{}:{}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits=6&period=30",
            pct(issuer),
            pct(&who.email),
            pct(issuer)
        );
        Ok(json!({ "totpURI": uri, "secret": secret_b32, "backupCodes": codes }))
    }

    async fn new_recovery_codes(&self, user_id: &str) -> Result<Vec<String>> {
        self.db()
            .exec_for(
                user_id,
                r#"DELETE FROM "_objectos_auth_recovery" WHERE "user_id" = ?"#,
                vec![s(user_id)],
            )
            .await?;
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            let raw = hex::encode(crypto::random_bytes::<5>()?);
            self.db()
                .exec_for(
                    user_id,
                    r#"INSERT INTO "_objectos_auth_recovery" ("user_id", "code_hash") VALUES (?, ?)"#,
                    vec![s(user_id), s(crypto::sha256_hex(&raw))],
                )
                .await?;
            codes.push(format!("{}-{}", &raw[..5], &raw[5..]));
        }
        Ok(codes)
    }

    /// `POST /two-factor/verify-totp`: checks a code; the first success turns two-factor on.
    pub async fn totp_verify(&self, who: &Resolved, code: &str, meta: &RequestMeta) -> Result<()> {
        let Some((_, enabled, _)) = self.totp_row(&who.user_id).await? else {
            return Err(AuthError::BadRequest(
                "Two-factor authentication is not set up; call /two-factor/enable first.".into(),
            ));
        };
        if !self.check_totp(&who.user_id, code.trim()).await? {
            return Err(AuthError::InvalidTwoFactorCode);
        }
        if !enabled {
            self.db()
                .exec_for(
                    &who.user_id,
                    r#"UPDATE "_objectos_auth_totp" SET "enabled" = 1 WHERE "user_id" = ?"#,
                    vec![s(&who.user_id)],
                )
                .await?;
            self.publish(
                events::MFA_ENABLED,
                Some(&who.user_id),
                Some(&who.email),
                who.tenant.as_deref(),
                meta,
                AuthDetails {
                    method: Some("totp".to_owned()),
                    ..AuthDetails::default()
                },
            )
            .await;
        }
        Ok(())
    }

    /// `POST /two-factor/disable`: after the password, removes the secret and recovery codes.
    pub async fn totp_disable(
        &self,
        who: &Resolved,
        password: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        self.verify_password_of(who, password).await?;
        self.db()
            .exec_for(
                &who.user_id,
                r#"DELETE FROM "_objectos_auth_totp" WHERE "user_id" = ?"#,
                vec![s(&who.user_id)],
            )
            .await?;
        self.db()
            .exec_for(
                &who.user_id,
                r#"DELETE FROM "_objectos_auth_recovery" WHERE "user_id" = ?"#,
                vec![s(&who.user_id)],
            )
            .await?;
        self.publish(
            events::MFA_DISABLED,
            Some(&who.user_id),
            Some(&who.email),
            who.tenant.as_deref(),
            meta,
            AuthDetails {
                method: Some("totp".to_owned()),
                ..AuthDetails::default()
            },
        )
        .await;
        Ok(())
    }

    async fn verify_password_of(&self, who: &Resolved, password: &str) -> Result<()> {
        let cred = self
            .credential_by("user_id", &who.user_id)
            .await?
            .ok_or(AuthError::Unauthenticated)?;
        if self.inner.hasher.verify(password, &cred.password_hash) {
            Ok(())
        } else {
            Err(AuthError::InvalidCredentials)
        }
    }
}

/// Percent-encodes a label for the otpauth URI.
fn pct(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
