//! The flow: `POST /sign-in/social` and `POST /link-social` store a state bound to the browser
//! and answer the provider's authorization URL; `GET /callback/{provider}` claims the state once,
//! redeems the code and signs in (or links, for `link-social`).

use std::sync::atomic::Ordering;

use objectos_spec::event::auth::AuthDetails;
use serde_json::Value as Json;

use super::config::{Engine, Provider};
use super::sanitize;
use crate::crypto;
use crate::error::{AuthError, Result};
use crate::service::{AuthService, RequestMeta, Resolved, SignedIn, events, minutes};
use crate::store::{get_oi, get_os, get_s, i, os, s};

/// Expired flow states are swept at most this often (milliseconds).
const SWEEP_EVERY_MS: i64 = 60_000;

/// What `POST /sign-in/social` asks for.
#[derive(Debug, Clone, Default)]
pub struct SocialSignIn {
    pub provider: String,
    /// Where the browser lands after the sign-in (default `/`).
    pub callback_url: Option<String>,
    /// Where the browser lands when the sign-in fails after the provider answered (`?error=CODE`
    /// is appended); without it the callback answers the error as JSON.
    pub error_callback_url: Option<String>,
    /// Where a newly created user lands (default `callbackURL`).
    pub new_user_callback_url: Option<String>,
}

/// The answer to `POST /sign-in/social`.
#[derive(Clone)]
pub struct SocialRedirect {
    /// The provider's authorization URL.
    pub url: String,
    /// The value of the browser-binding cookie to set.
    pub binding: String,
    /// Its lifetime in seconds.
    pub binding_max_age: i64,
}

/// The query of `GET /callback/{provider}`.
#[derive(Clone, Default)]
pub struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// RFC 9207 `iss`, sent by providers that protect against mix-up attacks.
    pub iss: Option<String>,
}

/// A finished single sign-on.
#[derive(Clone)]
pub struct SsoSignedIn {
    /// The new session; `None` after a `link-social` flow, where the browser keeps its session.
    pub signed: Option<SignedIn>,
    /// Where to send the browser.
    pub redirect: String,
    pub new_user: bool,
}

/// Whether an optional secret is there, for `Debug` output that must not show it.
fn presence(v: Option<&str>) -> &'static str {
    if v.is_some() { "[redacted]" } else { "None" }
}

// The Debug impls below leave out codes, states, bindings and tokens: a `{:?}` in a log line
// must not hand out what redeems a sign-in or a session.
impl std::fmt::Debug for SocialRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL's query carries the state and nonce; the endpoint alone is shown.
        let endpoint = self.url.split('?').next().unwrap_or_default();
        f.debug_struct("SocialRedirect")
            .field("url", &endpoint)
            .field("binding", &"[redacted]")
            .field("binding_max_age", &self.binding_max_age)
            .finish()
    }
}

impl std::fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackParams")
            .field("state", &presence(self.state.as_deref()))
            .field("code", &presence(self.code.as_deref()))
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .field("iss", &self.iss)
            .finish()
    }
}

impl std::fmt::Debug for SsoSignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.signed.as_ref().and_then(|s| s.user.get("id").cloned());
        f.debug_struct("SsoSignedIn")
            .field("user_id", &user)
            .field(
                "token",
                &presence(self.signed.as_ref().map(|s| s.token.as_str())),
            )
            .field("redirect", &self.redirect)
            .field("new_user", &self.new_user)
            .finish()
    }
}

/// A failed callback; `redirect` is the flow's `errorCallbackURL` when the state was valid.
#[derive(Debug)]
pub struct SsoFailure {
    pub error: AuthError,
    pub redirect: Option<String>,
    /// Whether the flow's state was used up (the binding cookie has nothing left to bind).
    pub consumed: bool,
}

/// A claimed state row.
struct FlowState {
    verifier: String,
    nonce: String,
    callback_url: String,
    error_callback_url: Option<String>,
    new_user_callback_url: Option<String>,
    /// Set for `link-social` flows: the account the identity is linked to.
    link_user_id: Option<String>,
}

fn valid_binding(v: &str) -> bool {
    v.len() == 43
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl AuthService {
    /// `GET /providers`: `[{id, name, type}]`.
    pub fn sso_providers(&self) -> Json {
        self.sso().list()
    }

    /// `POST /sign-in/social`: stores a new flow and returns the provider's authorization URL.
    /// `binding` is the browser's current binding cookie, reused so parallel sign-ins in two
    /// tabs do not cancel each other.
    pub async fn sso_start(
        &self,
        req: &SocialSignIn,
        binding: Option<&str>,
    ) -> Result<SocialRedirect> {
        self.start_flow(req, binding, None).await
    }

    /// `POST /link-social`: like [`Self::sso_start`], but the callback links the identity to the
    /// signed-in caller (who must finish it in the same browser and session) instead of
    /// signing in. The way to link a provider to an account that `linkByEmail` never links to
    /// (administrators, accounts with a password or two-factor authentication).
    pub async fn sso_link_start(
        &self,
        who: &Resolved,
        req: &SocialSignIn,
        binding: Option<&str>,
    ) -> Result<SocialRedirect> {
        if who.session_id.is_none() {
            return Err(AuthError::Forbidden(
                "Linking a provider needs a signed-in session, not an API key.".into(),
            ));
        }
        self.start_flow(req, binding, Some(&who.user_id)).await
    }

    async fn start_flow(
        &self,
        req: &SocialSignIn,
        binding: Option<&str>,
        link_user: Option<&str>,
    ) -> Result<SocialRedirect> {
        let sso = self.sso();
        let p = sso.provider(&req.provider)?;
        let callback =
            sso.check_redirect("callbackURL", req.callback_url.as_deref().unwrap_or("/"))?;
        let error_callback = req
            .error_callback_url
            .as_deref()
            .map(|u| sso.check_redirect("errorCallbackURL", u))
            .transpose()?;
        let new_user_callback = req
            .new_user_callback_url
            .as_deref()
            .map(|u| sso.check_redirect("newUserCallbackURL", u))
            .transpose()?;
        let started = sso.start(p).await?;
        let binding = match binding.filter(|b| valid_binding(b)) {
            Some(b) => b.to_owned(),
            None => crypto::random_token()?,
        };
        let now = self.now_millis();
        let ttl = minutes(sso.state_minutes);
        // Rows stay an hour past their expiry so a late replay is still told apart; the sweep
        // runs at most once a minute (per process), not on every start.
        let last = sso.last_sweep.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= SWEEP_EVERY_MS
            && sso
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.db()
                .exec_uncached(
                    r#"DELETE FROM "_objectos_auth_sso_state" WHERE "expires_at" < ?"#,
                    vec![i(now - 3_600_000)],
                )
                .await?;
        }
        self.db()
            .exec_uncached(
                r#"INSERT INTO "_objectos_auth_sso_state" ("state_hash", "provider", "binding_hash", "pkce_verifier", "nonce", "callback_url", "error_callback_url", "new_user_callback_url", "created_at", "expires_at", "link_user_id") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"#,
                vec![
                    s(crypto::sha256_hex(&started.state)),
                    s(&p.cfg.id),
                    s(crypto::sha256_hex(&binding)),
                    s(started.verifier),
                    s(started.nonce),
                    s(callback),
                    os(error_callback),
                    os(new_user_callback),
                    i(now),
                    i(now + ttl),
                    os(link_user),
                ],
            )
            .await?;
        Ok(SocialRedirect {
            url: started.url,
            binding,
            binding_max_age: ttl / 1000,
        })
    }

    /// `GET /callback/{provider}`: checks the state and its browser binding, redeems the code,
    /// maps the identity to a user and opens a session. `session_user` is the user of the
    /// session the request carries, which a `link-social` flow must match.
    pub async fn sso_callback(
        &self,
        provider: &str,
        params: CallbackParams,
        binding: Option<&str>,
        session_user: Option<&str>,
        meta: &RequestMeta,
    ) -> std::result::Result<SsoSignedIn, SsoFailure> {
        let fail = |error| SsoFailure {
            error,
            redirect: None,
            consumed: false,
        };
        let p = self.sso().provider(provider).map_err(fail)?;
        let flow = self
            .claim_state(&p.cfg.id, params.state.as_deref(), binding)
            .await
            .map_err(fail)?;
        match self.finish(p, &flow, params, session_user, meta).await {
            Ok(done) => Ok(done),
            Err(error) => {
                self.publish(
                    events::LOGIN_FAILED,
                    flow.link_user_id.as_deref(),
                    None,
                    None,
                    meta,
                    AuthDetails {
                        reason: Some(error.code().to_lowercase()),
                        provider: Some(p.cfg.id.to_string()),
                        ..AuthDetails::default()
                    },
                )
                .await;
                Err(SsoFailure {
                    error,
                    redirect: flow.error_callback_url,
                    consumed: true,
                })
            }
        }
    }

    /// Finds the state, checks provider, expiry and browser binding, and marks it used.
    async fn claim_state(
        &self,
        provider: &str,
        state: Option<&str>,
        binding: Option<&str>,
    ) -> Result<FlowState> {
        let state = state
            .filter(|s| !s.is_empty() && s.len() <= 512)
            .ok_or(AuthError::InvalidState)?;
        let hash = crypto::sha256_hex(state);
        let row = self
            .db()
            .one(
                r#"SELECT "state_hash", "provider", "binding_hash", "pkce_verifier", "nonce", "callback_url", "error_callback_url", "new_user_callback_url", "expires_at", "used_at", "link_user_id" FROM "_objectos_auth_sso_state" WHERE "state_hash" = ?"#,
                vec![s(&hash)],
            )
            .await?
            .ok_or(AuthError::InvalidState)?;
        if !crypto::ct_eq(&get_s(&row, 0)?, &hash) || get_s(&row, 1)? != provider {
            return Err(AuthError::InvalidState);
        }
        if get_oi(&row, 9).is_some() {
            return Err(AuthError::StateUsed);
        }
        if get_oi(&row, 8).is_none_or(|e| e <= self.now_millis()) {
            return Err(AuthError::InvalidState);
        }
        let bound = binding.filter(|b| valid_binding(b)).is_some_and(|b| {
            crypto::ct_eq(&crypto::sha256_hex(b), &get_s(&row, 2).unwrap_or_default())
        });
        if !bound {
            return Err(AuthError::StateMismatch);
        }
        // The conditional update makes the state single-use even under concurrent callbacks;
        // the verifier and nonce are wiped, as nothing needs them again.
        let claimed = self
            .db()
            .exec_uncached(
                r#"UPDATE "_objectos_auth_sso_state" SET "used_at" = ?, "pkce_verifier" = '', "nonce" = '' WHERE "state_hash" = ? AND "used_at" IS NULL"#,
                vec![i(self.now_millis()), s(&hash)],
            )
            .await?;
        if claimed != 1 {
            return Err(AuthError::StateUsed);
        }
        Ok(FlowState {
            verifier: get_s(&row, 3)?,
            nonce: get_s(&row, 4)?,
            callback_url: get_s(&row, 5)?,
            error_callback_url: get_os(&row, 6),
            new_user_callback_url: get_os(&row, 7),
            link_user_id: get_os(&row, 10),
        })
    }

    async fn finish(
        &self,
        p: &Provider,
        flow: &FlowState,
        params: CallbackParams,
        session_user: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<SsoSignedIn> {
        // A link flow finishes only in the session that started it, so a planted binding
        // cookie cannot attach the victim's identity to the attacker's account.
        if let Some(target) = &flow.link_user_id
            && session_user != Some(target.as_str())
        {
            return Err(AuthError::StateMismatch);
        }
        if let Some(err) = params.error.as_deref() {
            let detail = params
                .error_description
                .as_deref()
                .map(|d| format!("{} ({})", sanitize(err), sanitize(d)))
                .unwrap_or_else(|| sanitize(err));
            return Err(AuthError::ProviderError(detail));
        }
        if let (Engine::Oidc { issuer, .. }, Some(iss)) = (&p.engine, params.iss.as_deref())
            && iss != issuer.as_str()
        {
            return Err(AuthError::ProviderError(
                "the answer names another issuer (`iss`) than this provider's".into(),
            ));
        }
        let code = params
            .code
            .filter(|c| !c.is_empty() && c.len() <= 4096)
            .ok_or_else(|| {
                AuthError::ProviderError("the provider sent neither a code nor an error".into())
            })?;
        let who = self
            .sso()
            .identify(p, code, flow.verifier.clone(), flow.nonce.clone())
            .await?;
        if who.subject.is_empty() || who.subject.len() > 255 {
            return Err(AuthError::UserInfo(
                "the user id (subject) is empty or longer than 255 characters".into(),
            ));
        }
        if let Some(target) = &flow.link_user_id {
            self.sso_link(p, &who, target, meta).await?;
            self.touch_identity(p, &who).await?;
            return Ok(SsoSignedIn {
                signed: None,
                redirect: flow.callback_url.clone(),
                new_user: false,
            });
        }
        let (user_id, new_user) = self.sso_user(p, &who, meta).await?;
        self.touch_identity(p, &who).await?;
        let org = self.org_of(&user_id).await?;
        let signed = self
            .open_session(
                &user_id,
                org.as_deref(),
                meta,
                AuthDetails {
                    reason: Some("sso".to_owned()),
                    provider: Some(p.cfg.id.to_string()),
                    new_user: Some(new_user),
                    ..AuthDetails::default()
                },
            )
            .await?;
        let redirect = match (&flow.new_user_callback_url, new_user) {
            (Some(u), true) => u.clone(),
            _ => flow.callback_url.clone(),
        };
        Ok(SsoSignedIn {
            signed: Some(signed),
            redirect,
            new_user,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn debug_output_hides_codes_states_bindings_and_tokens() {
        let params = CallbackParams {
            state: Some("state-secret-value".into()),
            code: Some("code-secret-value".into()),
            error: Some("access_denied".into()),
            ..CallbackParams::default()
        };
        let redirect = SocialRedirect {
            url: "https://idp.example.com/auth?state=state-secret-value&nonce=n".into(),
            binding: "binding-secret-value".into(),
            binding_max_age: 600,
        };
        let signed = SsoSignedIn {
            signed: Some(SignedIn {
                token: "token-secret-value".into(),
                user: json!({"id": "u1"}),
                session: json!({}),
            }),
            redirect: "/".into(),
            new_user: false,
        };
        let text = format!("{params:?} {redirect:?} {signed:?}");
        assert!(!text.contains("secret-value"), "{text}");
        assert!(text.contains("access_denied") && text.contains("https://idp.example.com/auth"));
        assert!(text.contains("u1"), "{text}");
    }

    #[test]
    fn a_binding_is_a_random_token() {
        assert!(valid_binding(&crypto::random_token().unwrap()));
        assert!(!valid_binding("short"));
    }
}
