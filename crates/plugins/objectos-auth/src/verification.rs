//! Email verification, shaped like better-auth's: `POST /send-verification-email` mails a link
//! with a random token (stored only as its SHA-256, single use, expiring), `GET /verify-email`
//! consumes it and sets the user record's `email_verified`. With `emailVerification.required`,
//! email/password sign-in needs a verified address and public sign-up mails the link instead of
//! opening a session.
//!
//! Asking for a link reveals nothing: a known unverified address and an unknown (or already
//! verified) one do the same work (a token, its digest, one insert and one prune) and get the
//! same answer; only the first gets a mail.

use objectos_data::{OpContext, Record};
use objectos_spec::event::auth::AuthDetails;
use serde_json::{Value as Json, json};

use crate::crypto;
use crate::error::{AuthError, Result};
use crate::mailer::Mail;
use crate::service::{
    AuthService, RequestMeta, Resolved, events, fold_email, minutes, normalize_email,
};
use crate::store::{get_i, get_oi, get_s, i, s};

/// Expired reset and verification rows (and decoys) are deleted once this old.
pub(crate) const KEEP_EXPIRED_MS: i64 = 24 * 60 * 60 * 1000;

/// Percent-encodes a query value.
fn query_value(text: &str) -> String {
    openidconnect::url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

impl AuthService {
    /// Whether the user record's email is verified (`false` for an unknown id, after the same
    /// read, so callers can use it on a made-up id to keep timings alike).
    pub(crate) async fn email_verified(&self, user_id: &str) -> Result<bool> {
        match self.user_record(user_id).await {
            Ok(user) => Ok(user
                .get("email_verified")
                .and_then(Json::as_bool)
                .unwrap_or(false)),
            Err(e) if e.code() == "RECORD_NOT_FOUND" => Ok(false),
            Err(e) => Err(AuthError::Data(e)),
        }
    }

    /// Stores a verification token for `target` (user id and address) and mails the link; with
    /// no target, stores a decoy (owned by nobody, expired on arrival) and mails nothing.
    async fn issue_verification(
        &self,
        target: Option<(&str, &str)>,
        callback: Option<&str>,
    ) -> Result<()> {
        let cfg = &self.config().email_verification;
        let token = crypto::random_token()?;
        let now = self.now_millis();
        let (owner, email, expires) = match target {
            Some((user, email)) => (user, email, now + minutes(cfg.token_minutes)),
            None => ("", "", now),
        };
        self.db()
            .exec_uncached(
                r#"INSERT INTO "_objectos_auth_verification" ("token_hash", "user_id", "email", "expires_at") VALUES (?, ?, ?, ?)"#,
                vec![s(crypto::sha256_hex(&token)), s(owner), s(email), i(expires)],
            )
            .await?;
        self.db()
            .exec_uncached(
                r#"DELETE FROM "_objectos_auth_verification" WHERE "expires_at" < ?"#,
                vec![i(now - KEEP_EXPIRED_MS)],
            )
            .await?;
        let Some((_, email)) = target else {
            return Ok(());
        };
        let base = cfg.url.trim();
        let sep = if base.contains('?') { '&' } else { '?' };
        let mut link = format!("{base}{sep}token={token}");
        if let Some(cb) = callback {
            link.push_str("&callbackURL=");
            link.push_str(&query_value(cb));
        }
        let organization = self.primary_org(owner).await;
        self.mail(Mail {
            organization,
            to: email.to_owned(),
            subject: "Verify your email address".into(),
            body: format!(
                "Open this link within {} minutes to confirm that this address is yours: {link}\nIf you did not ask for it, ignore this mail.",
                cfg.token_minutes
            ),
            link: Some(link),
        })
    }

    /// `POST /send-verification-email` `{email, callbackURL?}`. Signed in: only to the caller's
    /// own unverified address (400 otherwise). Anonymous: `Ok` whatever the address, and a mail
    /// only when an account with that unverified address exists.
    pub async fn send_verification_email(
        &self,
        caller: Option<&Resolved>,
        email: &str,
        callback_url: Option<&str>,
    ) -> Result<()> {
        let callback = callback_url
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| self.sso().check_redirect("callbackURL", c))
            .transpose()?;
        let email = normalize_email(email)?;
        if let Some(who) = caller {
            if fold_email(&who.email) != email {
                return Err(AuthError::BadRequest(
                    "You can only send a verification email to your own address.".into(),
                ));
            }
            if self.email_verified(&who.user_id).await? {
                return Err(AuthError::BadRequest(
                    "Your email address is already verified.".into(),
                ));
            }
            return self
                .issue_verification(Some((&who.user_id, &email)), callback.as_deref())
                .await;
        }
        let cred = self.credential_by("email", &email).await?;
        // The same record read whether or not the address has an account.
        let probe = cred.as_ref().map_or("0", |c| c.user_id.as_str());
        let verified = self.email_verified(probe).await?;
        let target = match &cred {
            Some(c) if !verified => Some((c.user_id.as_str(), email.as_str())),
            _ => None,
        };
        self.issue_verification(target, callback.as_deref()).await
    }

    /// `GET /verify-email?token=`: marks the address verified. The token is single use, expires,
    /// and is refused when the account's address changed since it was sent.
    pub async fn verify_email(&self, token: &str, meta: &RequestMeta) -> Result<()> {
        let token = token.trim();
        if token.is_empty() || token.len() > 512 {
            return Err(AuthError::InvalidVerificationToken);
        }
        let hash = crypto::sha256_hex(token);
        let now = self.now_millis();
        let row = self
            .db()
            .one(
                r#"SELECT "user_id", "email", "expires_at", "used_at" FROM "_objectos_auth_verification" WHERE "token_hash" = ?"#,
                vec![s(&hash)],
            )
            .await?
            .ok_or(AuthError::InvalidVerificationToken)?;
        let user_id = get_s(&row, 0)?;
        let email = get_s(&row, 1)?;
        if user_id.is_empty() || get_oi(&row, 3).is_some() || get_i(&row, 2)? <= now {
            return Err(AuthError::InvalidVerificationToken);
        }
        let cred = self
            .credential_by("user_id", &user_id)
            .await?
            .ok_or(AuthError::InvalidVerificationToken)?;
        if !crypto::ct_eq(&fold_email(&cred.email), &email) {
            return Err(AuthError::InvalidVerificationToken);
        }
        // The flag first, then the token: a failed write leaves the link usable, and two
        // concurrent uses both set the same flag. The claim below makes it single use.
        if !self.email_verified(&user_id).await? {
            let mut patch = Record::new();
            patch.insert("email_verified".into(), json!(true));
            self.engine()
                .update(
                    &OpContext::system("auth: verify email"),
                    "user",
                    &user_id,
                    patch,
                    None,
                )
                .await
                .map_err(AuthError::Data)?;
        }
        let claimed = self
            .db()
            .exec_uncached(
                r#"UPDATE "_objectos_auth_verification" SET "used_at" = ? WHERE "token_hash" = ? AND "used_at" IS NULL"#,
                vec![i(now), s(&hash)],
            )
            .await?;
        if claimed != 1 {
            return Err(AuthError::InvalidVerificationToken);
        }
        let org = self.org_of(&user_id).await?;
        self.publish(
            events::EMAIL_VERIFIED,
            Some(&user_id),
            Some(&cred.email),
            org.as_deref(),
            meta,
            AuthDetails::default(),
        )
        .await;
        Ok(())
    }

    /// Public sign-up while `emailVerification.required`: creates the account and mails the
    /// verification link; no session (the answer is better-auth's `{token: null, user}`).
    pub async fn sign_up_unverified(
        &self,
        email: &str,
        password: &str,
        name: Option<&str>,
        callback_url: Option<&str>,
    ) -> Result<Json> {
        let callback = callback_url
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| self.sso().check_redirect("callbackURL", c))
            .transpose()?;
        let (user_id, org) = self
            .create_account(email, password, name, false, true)
            .await?;
        let email = normalize_email(email)?;
        self.issue_verification(Some((&user_id, &email)), callback.as_deref())
            .await?;
        self.user_view(&user_id, org.as_deref()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_urls_are_query_encoded() {
        assert_eq!(query_value("/done?x=1&y=2"), "%2Fdone%3Fx%3D1%26y%3D2");
    }
}
