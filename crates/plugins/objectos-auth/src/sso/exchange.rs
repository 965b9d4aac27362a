//! The conversation with a provider: the authorization URL (state, nonce, PKCE), the code
//! exchange, the verified ID token (`oidc`) or the user-info answer (`oauth2`).

use openidconnect::core::{CoreAuthenticationFlow, CoreUserInfoClaims};
use openidconnect::url::Url;
use openidconnect::{
    AccessToken, AccessTokenHash, AuthorizationCode, ClaimsVerificationError, CsrfToken,
    ErrorResponse, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RequestTokenError, Scope, TokenResponse, reqwest,
};
use serde_json::Value as Json;

use super::config::{Engine, Provider, Sso};
use super::{ExternalIdentity, UNREACHABLE, chain, sanitize};
use crate::config::ClaimMapping;
use crate::crypto;
use crate::error::{AuthError, Result};

/// Upper bound of a user-info answer.
const MAX_USERINFO_BYTES: usize = 1 << 20;

/// A started flow: the provider's authorization URL and what the callback needs.
pub(super) struct Started {
    pub(super) url: String,
    pub(super) state: String,
    pub(super) verifier: String,
    pub(super) nonce: String,
}

fn token_error<RE, T>(provider: &str, e: RequestTokenError<RE, T>) -> AuthError
where
    RE: std::error::Error + 'static,
    T: ErrorResponse + 'static,
{
    match e {
        RequestTokenError::ServerResponse(r) => AuthError::TokenExchange(sanitize(&r.to_string())),
        RequestTokenError::Request(err) => {
            tracing::warn!(provider, error = %chain(&err), "The SSO token endpoint could not be reached.");
            AuthError::ProviderUnavailable("the token endpoint could not be reached".into())
        }
        // The body of an unreadable answer may hold tokens, so it is neither logged nor sent.
        RequestTokenError::Parse(..) => AuthError::TokenExchange(
            "the token response is not the JSON an OAuth2 token endpoint answers".into(),
        ),
        RequestTokenError::Other(m) => AuthError::TokenExchange(sanitize(&m)),
    }
}

/// A field of a JSON object as text (strings as is, numbers printed: GitHub's `id`).
fn field_text(obj: &serde_json::Map<String, Json>, key: &str) -> Option<String> {
    match obj.get(key)? {
        Json::String(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Sso {
    /// The provider's authorization URL with a fresh state, nonce and PKCE challenge.
    pub(super) async fn start(&self, p: &Provider) -> Result<Started> {
        let state = crypto::random_token()?;
        let nonce = crypto::random_token()?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let url = match &p.engine {
            Engine::Oidc { .. } => {
                let client = self.oidc_client(p, false).await?;
                let (st, nc) = (state.clone(), nonce.clone());
                let mut req = client.authorize_url(
                    CoreAuthenticationFlow::AuthorizationCode,
                    move || CsrfToken::new(st),
                    move || Nonce::new(nc),
                );
                // The client always sends `openid`; listing it again would duplicate it.
                for scope in p.scopes.iter().filter(|s| *s != "openid") {
                    req = req.add_scope(Scope::new(scope.clone()));
                }
                req.set_pkce_challenge(challenge).url().0
            }
            Engine::OAuth2 { client, .. } => {
                let st = state.clone();
                let mut req = client.authorize_url(move || CsrfToken::new(st));
                for scope in &p.scopes {
                    req = req.add_scope(Scope::new(scope.clone()));
                }
                req.set_pkce_challenge(challenge).url().0
            }
        };
        Ok(Started {
            url: url.to_string(),
            state,
            verifier: verifier.secret().clone(),
            nonce,
        })
    }

    /// Redeems the code and returns the verified identity.
    pub(super) async fn identify(
        &self,
        p: &Provider,
        code: String,
        verifier: String,
        nonce: String,
    ) -> Result<ExternalIdentity> {
        match &p.engine {
            Engine::Oidc { .. } => self.identify_oidc(p, code, verifier, nonce).await,
            Engine::OAuth2 {
                client,
                user_info,
                claims,
            } => {
                let token = client
                    .exchange_code(AuthorizationCode::new(code))
                    .set_pkce_verifier(PkceCodeVerifier::new(verifier))
                    .request_async(&self.http)
                    .await
                    .map_err(|e| token_error(&p.cfg.id, e))?;
                self.user_info(user_info, token.access_token(), claims)
                    .await
            }
        }
    }

    async fn identify_oidc(
        &self,
        p: &Provider,
        code: String,
        verifier: String,
        nonce: String,
    ) -> Result<ExternalIdentity> {
        let mut client = self.oidc_client(p, false).await?;
        let token = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| {
                tracing::warn!(provider = %p.cfg.id, error = %e, "The OIDC provider has no token endpoint.");
                AuthError::ProviderUnavailable("it has no token endpoint".into())
            })?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| token_error(&p.cfg.id, e))?;
        let id_token = token.id_token().ok_or_else(|| {
            AuthError::InvalidIdToken("the token response carries no id_token".into())
        })?;
        let nonce = Nonce::new(nonce);
        let invalid = |e: ClaimsVerificationError| AuthError::InvalidIdToken(chain(&e));
        let first = id_token
            .claims(&client.id_token_verifier(), &nonce)
            .cloned();
        let claims = match first {
            Ok(c) => c,
            // The provider may have rotated its keys since discovery: fetch them once more.
            Err(ClaimsVerificationError::SignatureVerification(_)) => {
                client = self.oidc_client(p, true).await?;
                id_token
                    .claims(&client.id_token_verifier(), &nonce)
                    .cloned()
                    .map_err(invalid)?
            }
            Err(e) => return Err(invalid(e)),
        };
        if let Some(expected) = claims.access_token_hash() {
            let verifier = client.id_token_verifier();
            let alg = id_token
                .signing_alg()
                .map_err(|e| AuthError::InvalidIdToken(chain(&e)))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| AuthError::InvalidIdToken(chain(&e)))?;
            let actual = AccessTokenHash::from_token(token.access_token(), alg, key)
                .map_err(|e| AuthError::InvalidIdToken(chain(&e)))?;
            if actual != *expected {
                return Err(AuthError::InvalidIdToken(
                    "the access token does not match the ID token's at_hash".into(),
                ));
            }
        }
        let mut who = ExternalIdentity {
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned()),
        };
        // With the code flow many providers put the profile claims only in the user-info answer.
        if who.email.is_none() && client.user_info_url().is_some() {
            let failed = |e: &(dyn std::error::Error + 'static)| {
                tracing::warn!(provider = %p.cfg.id, error = %chain(e), "The OIDC user-info request failed.");
                AuthError::UserInfo("the user-info request failed".into())
            };
            let info: CoreUserInfoClaims = client
                .user_info(token.access_token().clone(), Some(claims.subject().clone()))
                .map_err(|e| failed(&e))?
                .request_async(&self.http)
                .await
                .map_err(|e| failed(&e))?;
            who.email = info.email().map(|e| e.as_str().to_owned());
            who.email_verified = info.email_verified().unwrap_or(false);
            if who.name.is_none() {
                who.name = info
                    .name()
                    .and_then(|n| n.get(None))
                    .map(|n| n.as_str().to_owned());
            }
        }
        Ok(who)
    }

    /// `oauth2` providers: the user from the user-info endpoint, called with the access token.
    async fn user_info(
        &self,
        url: &Url,
        token: &AccessToken,
        claims: &ClaimMapping,
    ) -> Result<ExternalIdentity> {
        let res = self
            .http
            .get(url.clone())
            .bearer_auth(token.secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %chain(&e), "The SSO user-info endpoint could not be reached.");
                AuthError::ProviderUnavailable(UNREACHABLE.into())
            })?;
        if !res.status().is_success() {
            return Err(AuthError::UserInfo(format!(
                "the user-info endpoint answered HTTP {}",
                res.status().as_u16()
            )));
        }
        if res
            .content_length()
            .is_some_and(|n| n > MAX_USERINFO_BYTES as u64)
        {
            return Err(AuthError::UserInfo("the answer is too large".into()));
        }
        let body = res.bytes().await.map_err(|e| {
            tracing::warn!(error = %chain(&e), "The SSO user-info answer could not be read.");
            AuthError::UserInfo("the answer could not be read".into())
        })?;
        if body.len() > MAX_USERINFO_BYTES {
            return Err(AuthError::UserInfo("the answer is too large".into()));
        }
        let value: Json = serde_json::from_slice(&body)
            .map_err(|_| AuthError::UserInfo("the answer is not JSON".into()))?;
        let Json::Object(obj) = value else {
            return Err(AuthError::UserInfo(
                "the answer is not a JSON object".into(),
            ));
        };
        let subject = field_text(&obj, &claims.subject).ok_or_else(|| {
            AuthError::UserInfo(format!(
                "the answer has no `{}` (the user id; set claims.subject)",
                claims.subject
            ))
        })?;
        let email_verified = claims.email_verified.as_deref().is_some_and(|k| {
            match obj.get(k) {
                Some(Json::Bool(b)) => *b,
                // Some providers send the flag as a string.
                Some(Json::String(v)) => v.eq_ignore_ascii_case("true"),
                _ => false,
            }
        });
        Ok(ExternalIdentity {
            subject,
            email: field_text(&obj, &claims.email),
            email_verified,
            name: field_text(&obj, &claims.name),
        })
    }
}
