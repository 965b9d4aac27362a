//! Account linking: the account an external identity signs in to (linked earlier, linked by
//! verified email, or created), `link-social` for a signed-in account, and the identity rows.

use objectos_spec::event::auth::AuthDetails;

use super::ExternalIdentity;
use super::config::Provider;
use crate::crypto;
use crate::error::{AuthError, Result};
use crate::service::{AuthService, NewAccount, RequestMeta, events, normalize_email};
use crate::store::{get_i, get_os, get_s, i, os, s};

/// What the callback does with an identity no account is linked to.
enum Plan {
    /// Link it to this existing account (`linkByEmail`).
    Link(String),
    /// Create an account (`allowSignUp`).
    Create,
}

impl AuthService {
    /// Records the sign-in on the identity: the time, the provider's current email (normalised
    /// as at insert; an unusable one keeps the stored one) and the issuer key (fills it in on
    /// rows linked before it was kept; [`Self::linked_user`] has checked any stored one).
    pub(super) async fn touch_identity(&self, p: &Provider, who: &ExternalIdentity) -> Result<()> {
        let email = who.email.as_deref().and_then(|e| normalize_email(e).ok());
        self.db()
            .exec_uncached(
                r#"UPDATE "_objectos_auth_identity" SET "last_login_at" = ?, "email" = COALESCE(?, "email"), "issuer" = ? WHERE "provider" = ? AND "subject" = ?"#,
                vec![
                    i(self.now_millis()),
                    os(email),
                    s(&p.issuer_key),
                    s(&p.cfg.id),
                    s(&who.subject),
                ],
            )
            .await?;
        Ok(())
    }

    /// The account an identity is linked to. An identity stored with another issuer key is
    /// refused; one whose account is gone is removed (and `None` returned).
    async fn linked_user(&self, p: &Provider, who: &ExternalIdentity) -> Result<Option<String>> {
        let Some(row) = self
            .db()
            .one(
                r#"SELECT "user_id", "issuer" FROM "_objectos_auth_identity" WHERE "provider" = ? AND "subject" = ?"#,
                vec![s(&p.cfg.id), s(&who.subject)],
            )
            .await?
        else {
            return Ok(None);
        };
        let user_id = get_s(&row, 0)?;
        if self.credential_by("user_id", &user_id).await?.is_none() {
            self.db()
                .exec_uncached(
                    r#"DELETE FROM "_objectos_auth_identity" WHERE "provider" = ? AND "subject" = ?"#,
                    vec![s(&p.cfg.id), s(&who.subject)],
                )
                .await?;
            return Ok(None);
        }
        if let Some(stored) = get_os(&row, 1)
            && !crypto::ct_eq(&stored, &p.issuer_key)
        {
            tracing::warn!(provider = %p.cfg.id, user_id = %user_id, "An SSO identity was refused: it was linked under another issuer or other endpoints.");
            return Err(AuthError::IssuerMismatch);
        }
        Ok(Some(user_id))
    }

    /// The provider's email, normalised, verified and in `allowedEmailDomains`: what creating
    /// or linking an account needs. None of these checks depends on whether an account exists.
    fn usable_email(&self, p: &Provider, who: &ExternalIdentity) -> Result<String> {
        let email = who
            .email
            .as_deref()
            .and_then(|e| normalize_email(e).ok())
            .ok_or(AuthError::EmailRequired)?;
        if !(who.email_verified || p.cfg.trust_email) {
            return Err(AuthError::EmailNotVerified);
        }
        if let Some(domains) = &p.domains {
            let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
            if !domains.iter().any(|d| d == domain) {
                return Err(AuthError::EmailDomainNotAllowed);
            }
        }
        Ok(email)
    }

    /// Whether the account has an identity at this provider with another subject.
    async fn has_other_identity(&self, p: &Provider, user_id: &str, subject: &str) -> Result<bool> {
        Ok(self
            .db()
            .one(
                r#"SELECT "subject" FROM "_objectos_auth_identity" WHERE "provider" = ? AND "user_id" = ? AND "subject" <> ?"#,
                vec![s(&p.cfg.id), s(user_id), s(subject)],
            )
            .await?
            .is_some())
    }

    /// Whether `linkByEmail` may attach an identity to this account: an active plain member
    /// without a password, two-factor authentication or an identity at this provider. A
    /// verified email at one provider is weaker than any of those, so such accounts are linked
    /// only by their signed-in owner (`link-social`).
    async fn auto_linkable(&self, p: &Provider, user_id: &str, subject: &str) -> Result<bool> {
        let Some(cred) = self
            .db()
            .one(
                r#"SELECT "password_hash", "is_admin" FROM "_objectos_auth_credential" WHERE "user_id" = ?"#,
                vec![s(user_id)],
            )
            .await?
        else {
            return Ok(false);
        };
        // Accounts without a password carry a marker starting with `!`; anything else (a PHC
        // string) may verify a password.
        let has_password = !get_s(&cred, 0)?.starts_with('!');
        if has_password || get_i(&cred, 1)? != 0 {
            return Ok(false);
        }
        let privileged = self
            .db()
            .one(
                r#"SELECT "role" FROM "_objectos_auth_member" WHERE "user_id" = ? AND "role" IN ('owner', 'admin')"#,
                vec![s(user_id)],
            )
            .await?
            .is_some();
        let totp = self
            .db()
            .one(
                r#"SELECT "enabled" FROM "_objectos_auth_totp" WHERE "user_id" = ? AND "enabled" <> 0"#,
                vec![s(user_id)],
            )
            .await?
            .is_some();
        if privileged || totp || self.has_other_identity(p, user_id, subject).await? {
            return Ok(false);
        }
        Ok(self.user_status(user_id).await? == "active")
    }

    /// Stores the link; `false` when a concurrent callback stored one for this identity first.
    async fn insert_identity(
        &self,
        p: &Provider,
        who: &ExternalIdentity,
        user_id: &str,
        email: Option<&str>,
    ) -> Result<bool> {
        let n = self
            .db()
            .exec_for(
                user_id,
                r#"INSERT INTO "_objectos_auth_identity" ("provider", "subject", "user_id", "email", "issuer", "created_at") VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT ("provider", "subject") DO NOTHING"#,
                vec![
                    s(&p.cfg.id),
                    s(&who.subject),
                    s(user_id),
                    os(email),
                    s(&p.issuer_key),
                    i(self.now_millis()),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn identity_linked(
        &self,
        p: &Provider,
        user_id: &str,
        email: Option<&str>,
        via: &str,
        meta: &RequestMeta,
    ) {
        let org = self.org_of(user_id).await.ok().flatten();
        self.publish(
            events::IDENTITY_LINKED,
            Some(user_id),
            email,
            org.as_deref(),
            meta,
            AuthDetails {
                provider: Some(p.cfg.id.to_string()),
                via: Some(via.to_owned()),
                ..AuthDetails::default()
            },
        )
        .await;
        tracing::info!(user_id = %user_id, provider = %p.cfg.id, via, "External identity linked.");
    }

    /// The user of an external identity: the linked one, else the one with the same verified
    /// email (`linkByEmail`, plain accounts only), else a new one (`allowSignUp`). Every check
    /// runs before anything is written; the refusals that depend on whether an account with
    /// the email exists are one error. Returns whether the user was created.
    pub(super) async fn sso_user(
        &self,
        p: &Provider,
        who: &ExternalIdentity,
        meta: &RequestMeta,
    ) -> Result<(String, bool)> {
        if let Some(user_id) = self.linked_user(p, who).await? {
            let status = self.user_status(&user_id).await?;
            if status != "active" {
                return Err(AuthError::AccountDisabled(status));
            }
            return Ok((user_id, false));
        }
        let email = self.usable_email(p, who)?;
        let plan = match self.credential_by("email", &email).await? {
            Some(cred) => {
                if !p.cfg.link_by_email
                    || !self.auto_linkable(p, &cred.user_id, &who.subject).await?
                {
                    return Err(AuthError::AccountNotLinked);
                }
                Plan::Link(cred.user_id)
            }
            None => {
                if !p.cfg.allow_sign_up {
                    return Err(AuthError::AccountNotLinked);
                }
                // The first account becomes the owner and administrator; that must not be
                // whoever reaches a provider first.
                if !self.has_owner().await? {
                    return Err(AuthError::OwnerRequired);
                }
                Plan::Create
            }
        };
        let (user_id, created) = match plan {
            Plan::Link(user_id) => (user_id, false),
            Plan::Create => {
                let (user_id, _) = self
                    .create_account_with(NewAccount {
                        email: &email,
                        name: who.name.as_deref(),
                        email_verified: true,
                        ..NewAccount::default()
                    })
                    .await?;
                (user_id, true)
            }
        };
        if !self.insert_identity(p, who, &user_id, Some(&email)).await? {
            // A concurrent callback linked this identity first; it stands if it agrees.
            return match self.linked_user(p, who).await? {
                Some(other) if other == user_id => Ok((user_id, created)),
                _ => Err(AuthError::AccountNotLinked),
            };
        }
        if created {
            tracing::info!(user_id = %user_id, provider = %p.cfg.id, "Account created through single sign-on.");
        } else {
            self.identity_linked(p, &user_id, Some(&email), "email", meta)
                .await;
        }
        Ok((user_id, created))
    }

    /// Links an identity to a signed-in account (`link-social`), checking first that the
    /// identity is free, the account has no other identity at this provider, the email's domain
    /// is allowed (when the provider restricts it) and the account is active.
    pub(super) async fn sso_link(
        &self,
        p: &Provider,
        who: &ExternalIdentity,
        user_id: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        if let Some(owner) = self.linked_user(p, who).await? {
            return if owner == user_id {
                Ok(())
            } else {
                Err(AuthError::IdentityInUse)
            };
        }
        let email = match &p.domains {
            Some(_) => Some(self.usable_email(p, who)?),
            None => who.email.as_deref().and_then(|e| normalize_email(e).ok()),
        };
        if self.has_other_identity(p, user_id, &who.subject).await? {
            return Err(AuthError::ProviderAlreadyLinked);
        }
        let status = self.user_status(user_id).await?;
        if status != "active" {
            return Err(AuthError::AccountDisabled(status));
        }
        if !self
            .insert_identity(p, who, user_id, email.as_deref())
            .await?
        {
            return match self.linked_user(p, who).await? {
                Some(other) if other == user_id => Ok(()),
                _ => Err(AuthError::IdentityInUse),
            };
        }
        self.identity_linked(p, user_id, email.as_deref(), "link-social", meta)
            .await;
        Ok(())
    }
}
