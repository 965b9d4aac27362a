//! Single sign-on through OpenID Connect and OAuth2 providers.
//!
//! `POST /sign-in/social` starts an authorization code flow with PKCE (S256), a random `state`
//! and (OIDC) a `nonce`, all kept server-side in `_objectos_auth_sso_state` for `stateMinutes` and
//! usable once, and bound to the starting browser by the `objectos.sso_state` cookie (so a
//! callback link cannot sign a victim into the attacker's account). `GET /callback/{provider}`
//! redeems the code; for `oidc` providers the ID token is verified by the `openidconnect` crate
//! (signature with the discovered JWKS, issuer, audience, nonce, expiry, `at_hash`), for `oauth2`
//! providers the user-info endpoint is read with the access token. The identity
//! (provider, subject) maps to a user through `_objectos_auth_identity`; unknown identities
//! create a user (`allowSignUp`) or link to the user with the same verified email
//! (`linkByEmail`), and the result is the same session as an email sign-in.
//!
//! Codes, tokens, verifiers and secrets are never logged; messages from the provider are
//! shortened to printable text before they reach a client.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use oauth2::basic::BasicClient;
use objectos_spec::event::auth::AuthDetails;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::url::Url;
use openidconnect::{
    AccessToken, AccessTokenHash, AuthUrl, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, ErrorResponse,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, TokenResponse, TokenUrl, reqwest,
};
use serde_json::{Value as Json, json};

use crate::config::{
    ClaimMapping, ProviderKind, Secret, SsoConfig, SsoProvider, http_url, provider_url,
};
use crate::crypto;
use crate::error::{AuthError, Result};
use crate::service::{
    AuthService, NewAccount, RequestMeta, Resolved, SignedIn, events, minutes, normalize_email,
};
use crate::store::{get_i, get_oi, get_os, get_s, i, os, s};

/// How long discovered provider metadata (endpoints and signing keys) is reused.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Metadata younger than this is not fetched again after a signature failure (key rotation).
const METADATA_MIN_REFRESH: Duration = Duration::from_secs(30);
/// Upper bound of a user-info answer.
const MAX_USERINFO_BYTES: usize = 1 << 20;
/// Upper bound of a `callbackURL`.
const MAX_REDIRECT_LEN: usize = 2048;
/// Upper bound of one discovery (the document and the signing keys).
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed discovery no new attempt is made for this long, doubled per further failure
/// up to [`BACKOFF_MAX`]; requests meanwhile fail at once instead of waiting on a dead provider.
const BACKOFF_FIRST: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Expired flow states are swept at most this often (milliseconds).
const SWEEP_EVERY_MS: i64 = 60_000;
/// What a client is told when a provider cannot be reached; the cause is only logged.
const UNREACHABLE: &str = "it could not be reached; try again later";

type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;
type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Discovered metadata of an OIDC provider and the state of failed discoveries.
#[derive(Default)]
struct OidcCache {
    client: Option<(Instant, Arc<OidcClient>)>,
    failures: u32,
    retry_at: Option<Instant>,
}

impl OidcCache {
    fn stale(&self) -> Option<Arc<OidcClient>> {
        self.client.as_ref().map(|(_, c)| c.clone())
    }

    fn backing_off(&self) -> bool {
        self.retry_at.is_some_and(|at| Instant::now() < at)
    }
}

enum Engine {
    Oidc {
        issuer: IssuerUrl,
        /// Held only for reads and writes, never across a network call.
        cache: parking_lot::Mutex<OidcCache>,
        /// One discovery at a time per provider.
        flight: tokio::sync::Mutex<()>,
    },
    OAuth2 {
        client: Box<OAuthClient>,
        user_info: Url,
        claims: ClaimMapping,
    },
}

/// One configured provider, ready to use.
struct Provider {
    cfg: SsoProvider,
    secret: Option<Secret>,
    redirect: RedirectUrl,
    scopes: Vec<String>,
    engine: Engine,
    /// Whose subjects these are: the issuer (oidc) or a digest of the token and user-info
    /// endpoints (oauth2). Stored with each identity and compared at sign-in, so a provider id
    /// pointed at another server cannot sign in to the accounts linked through the old one.
    issuer_key: String,
    /// `allowedEmailDomains`, lowercased; empty when every domain is allowed.
    domains: Option<Vec<String>>,
}

/// The configured providers and the outgoing HTTP client (built once at start, no network).
pub(crate) struct Sso {
    http: reqwest::Client,
    providers: Vec<Provider>,
    /// The origin of `sso.baseUrl` (`https://crm.example.com`), where `callbackURL`s may point.
    base_origin: Option<String>,
    trusted_origins: Vec<String>,
    state_minutes: u32,
    /// When expired flow states were last swept (clock milliseconds).
    last_sweep: AtomicI64,
}

impl std::fmt::Debug for Sso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sso")
            .field(
                "providers",
                &self.providers.iter().map(|p| &p.cfg.id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Who the provider says signed in.
#[derive(Debug, Clone)]
struct ExternalIdentity {
    subject: String,
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
}

/// A started flow: the provider's authorization URL and what the callback needs.
struct Started {
    url: String,
    state: String,
    verifier: String,
    nonce: String,
}

fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Provider-supplied text, reduced to printable ASCII and shortened.
fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(200)
        .collect()
}

/// An error and its sources on one line (the first lines of a network error name the cause).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        out.push_str(": ");
        out.push_str(&src.to_string());
        cur = src.source();
    }
    sanitize(&out)
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
    pub(crate) fn new(cfg: &SsoConfig) -> Result<Self> {
        let http = reqwest::Client::builder()
            // The openidconnect docs require this: following redirects would let a provider
            // answer (or an attacker-controlled URL) steer our requests elsewhere (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("ObjectOS/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                AuthError::Internal(format!("the SSO HTTP client failed to build: {e}"))
            })?;
        let base_origin = match &cfg.base_url {
            Some(b) => {
                Some(origin_of(&http_url(b).map_err(|e| {
                    AuthError::Config(format!("sso.baseUrl: {e}"))
                })?))
            }
            None => None,
        };
        let trusted_origins = cfg
            .trusted_origins
            .iter()
            .filter_map(|o| http_url(o).ok().map(|u| origin_of(&u)))
            .collect();
        let mut providers = Vec::with_capacity(cfg.providers.len());
        for (idx, p) in cfg.providers.iter().enumerate() {
            let bad = |key: &str, msg: String| {
                AuthError::Config(format!("sso.providers[{idx}].{key}: {msg}"))
            };
            let secret = p
                .resolve_secret()
                .map_err(|e| AuthError::Config(format!("sso.providers[{idx}]: {e}")))?;
            let redirect = p
                .effective_redirect_uri(cfg.base_url.as_deref())
                .ok_or_else(|| bad("redirectUri", "set it or sso.baseUrl".into()))?;
            let redirect =
                RedirectUrl::new(redirect).map_err(|e| bad("redirectUri", e.to_string()))?;
            let engine = match p.kind {
                Some(ProviderKind::Oidc) => {
                    let issuer = p
                        .issuer
                        .clone()
                        .ok_or_else(|| bad("issuer", "required for kind `oidc`".into()))?;
                    provider_url(&issuer).map_err(|e| bad("issuer", e))?;
                    Engine::Oidc {
                        issuer: IssuerUrl::new(issuer).map_err(|e| bad("issuer", e.to_string()))?,
                        cache: parking_lot::Mutex::new(OidcCache::default()),
                        flight: tokio::sync::Mutex::new(()),
                    }
                }
                Some(ProviderKind::Oauth2) => {
                    let url = |key: &str, v: &Option<String>| {
                        v.clone()
                            .ok_or_else(|| bad(key, "required for kind `oauth2`".into()))
                    };
                    let checked = |key: &str, v: &Option<String>| {
                        let raw = url(key, v)?;
                        provider_url(&raw).map_err(|e| bad(key, e))?;
                        Ok::<_, AuthError>(raw)
                    };
                    let auth = AuthUrl::new(checked("authorizationUrl", &p.authorization_url)?)
                        .map_err(|e| bad("authorizationUrl", e.to_string()))?;
                    let token = TokenUrl::new(checked("tokenUrl", &p.token_url)?)
                        .map_err(|e| bad("tokenUrl", e.to_string()))?;
                    let user_info = provider_url(&checked("userInfoUrl", &p.user_info_url)?)
                        .map_err(|e| bad("userInfoUrl", e))?;
                    let mut client = BasicClient::new(ClientId::new(p.client_id.clone()))
                        .set_auth_uri(auth)
                        .set_token_uri(token)
                        .set_redirect_uri(redirect.clone());
                    if let Some(sec) = &secret {
                        client =
                            client.set_client_secret(ClientSecret::new(sec.expose().to_owned()));
                    }
                    Engine::OAuth2 {
                        client: Box::new(client),
                        user_info,
                        claims: p.claims.clone().unwrap_or_default(),
                    }
                }
                None => return Err(bad("kind", "required: `oidc` or `oauth2`".into())),
            };
            let issuer_key = match &engine {
                Engine::Oidc { issuer, .. } => issuer.as_str().to_owned(),
                Engine::OAuth2 {
                    client, user_info, ..
                } => format!(
                    "oauth2:{}",
                    crypto::sha256_hex(&format!(
                        "{}\n{}",
                        client.token_uri().as_str(),
                        user_info.as_str()
                    ))
                ),
            };
            let domains = p.allowed_email_domains.as_ref().map(|d| {
                d.iter()
                    // Folded like the addresses they are compared with.
                    .map(|d| crate::service::fold_email(d))
                    .collect::<Vec<_>>()
            });
            providers.push(Provider {
                scopes: p.effective_scopes(),
                cfg: p.clone(),
                secret,
                redirect,
                engine,
                issuer_key,
                domains,
            });
        }
        Ok(Self {
            http,
            providers,
            base_origin,
            trusted_origins,
            state_minutes: cfg.state_minutes.max(1),
            last_sweep: AtomicI64::new(i64::MIN),
        })
    }

    fn provider(&self, id: &str) -> Result<&Provider> {
        self.providers
            .iter()
            .find(|p| p.cfg.id == id)
            .ok_or_else(|| AuthError::UnknownProvider(sanitize(id)))
    }

    /// `GET /providers`: what a sign-in page needs to show buttons.
    pub(crate) fn list(&self) -> Json {
        Json::Array(
            self.providers
                .iter()
                .map(|p| {
                    json!({
                        "id": p.cfg.id,
                        "name": p.cfg.display_name(),
                        "type": match p.cfg.kind {
                            Some(ProviderKind::Oauth2) => "oauth2",
                            _ => "oidc",
                        },
                    })
                })
                .collect(),
        )
    }

    /// Checks a redirect target given by the client: a path on this server, or an absolute
    /// URL on `sso.baseUrl`'s origin or a trusted origin. Anything else would make the callback
    /// an open redirect.
    pub(crate) fn check_redirect(&self, key: &str, raw: &str) -> Result<String> {
        let refuse = || {
            AuthError::InvalidRedirect(format!(
                "`{key}` must be a path on this server (such as /dashboard) or a URL on this server's origin or on one of sso.trustedOrigins"
            ))
        };
        if raw.is_empty()
            || raw.len() > MAX_REDIRECT_LEN
            || raw
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        {
            return Err(refuse());
        }
        if raw.starts_with('/') {
            // `//host` is a scheme-relative URL to another host, not a path.
            return if raw.starts_with("//") {
                Err(refuse())
            } else {
                Ok(raw.to_owned())
            };
        }
        let url = http_url(raw).map_err(|_| refuse())?;
        let origin = origin_of(&url);
        if self.base_origin.as_deref() == Some(origin.as_str())
            || self.trusted_origins.contains(&origin)
        {
            Ok(url.to_string())
        } else {
            Err(refuse())
        }
    }

    /// The OIDC client from the issuer's discovery document (cached for [`METADATA_TTL`];
    /// `refresh` fetches it again, as after a signature failure when the keys may have rotated).
    ///
    /// The cache lock is never held across the network: a request with fresh metadata never
    /// waits, one with stale metadata uses it while another request refreshes, and only a cold
    /// cache waits for the one discovery in flight. After a failure, requests fail at once for a
    /// growing backoff (or keep using stale metadata) instead of queueing on a dead provider.
    async fn oidc_client(&self, p: &Provider, refresh: bool) -> Result<Arc<OidcClient>> {
        let Engine::Oidc {
            issuer,
            cache,
            flight,
        } = &p.engine
        else {
            return Err(AuthError::Internal("not an OIDC provider".into()));
        };
        let usable = |c: &OidcCache| {
            c.client.as_ref().and_then(|(at, client)| {
                let age = at.elapsed();
                (age < METADATA_TTL && (!refresh || age < METADATA_MIN_REFRESH))
                    .then(|| client.clone())
            })
        };
        let unreachable = || AuthError::ProviderUnavailable(UNREACHABLE.into());
        let seen = {
            let c = cache.lock();
            if let Some(client) = usable(&c) {
                return Ok(client);
            }
            if c.backing_off() {
                return c.stale().ok_or_else(unreachable);
            }
            c.client.as_ref().map(|(at, _)| *at)
        };
        let _flight = match flight.try_lock() {
            Ok(g) => g,
            Err(_) => {
                // Another request is discovering: use what is cached rather than queue, unless
                // nothing is (or the caller needs new keys).
                if !refresh && let Some(client) = cache.lock().stale() {
                    return Ok(client);
                }
                flight.lock().await
            }
        };
        {
            let c = cache.lock();
            // The discovery this request waited for has settled it.
            if c.client.as_ref().map(|(at, _)| *at) != seen
                && let Some(client) = c.stale()
            {
                return Ok(client);
            }
            if c.backing_off() {
                return c.stale().ok_or_else(unreachable);
            }
        }
        let found = tokio::time::timeout(DISCOVERY_TIMEOUT, self.discover(p, issuer))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {DISCOVERY_TIMEOUT:?}")));
        let mut c = cache.lock();
        match found {
            Ok(client) => {
                let client = Arc::new(client);
                *c = OidcCache {
                    client: Some((Instant::now(), client.clone())),
                    failures: 0,
                    retry_at: None,
                };
                Ok(client)
            }
            Err(cause) => {
                c.failures = c.failures.saturating_add(1);
                let backoff = BACKOFF_FIRST
                    .saturating_mul(1 << c.failures.saturating_sub(1).min(6))
                    .min(BACKOFF_MAX);
                c.retry_at = Some(Instant::now() + backoff);
                tracing::warn!(
                    provider = %p.cfg.id,
                    issuer = %issuer.as_str(),
                    error = %cause,
                    failures = c.failures,
                    retry_in_secs = backoff.as_secs(),
                    "OIDC discovery failed."
                );
                c.stale().ok_or_else(unreachable)
            }
        }
    }

    /// Reads the discovery document and the signing keys, and checks that every endpoint is
    /// https (or loopback). The error is for the log only.
    async fn discover(
        &self,
        p: &Provider,
        issuer: &IssuerUrl,
    ) -> std::result::Result<OidcClient, String> {
        let metadata = CoreProviderMetadata::discover_async(issuer.clone(), &self.http)
            .await
            .map_err(|e| chain(&e))?;
        let mut endpoints = vec![
            (
                "authorization_endpoint",
                metadata.authorization_endpoint().url(),
            ),
            ("jwks_uri", metadata.jwks_uri().url()),
        ];
        if let Some(u) = metadata.token_endpoint() {
            endpoints.push(("token_endpoint", u.url()));
        }
        if let Some(u) = metadata.userinfo_endpoint() {
            endpoints.push(("userinfo_endpoint", u.url()));
        }
        for (key, url) in endpoints {
            provider_url(url.as_str()).map_err(|e| format!("the discovered {key}: {e}"))?;
        }
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(p.cfg.client_id.clone()),
            p.secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().to_owned())),
        )
        .set_redirect_uri(p.redirect.clone()))
    }

    /// The provider's authorization URL with a fresh state, nonce and PKCE challenge.
    async fn start(&self, p: &Provider) -> Result<Started> {
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
    async fn identify(
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

/// What the callback does with an identity no account is linked to.
enum Plan {
    /// Link it to this existing account (`linkByEmail`).
    Link(String),
    /// Create an account (`allowSignUp`).
    Create,
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

    /// Records the sign-in on the identity: the time, the provider's current email (normalised
    /// as at insert; an unusable one keeps the stored one) and the issuer key (fills it in on
    /// rows linked before it was kept; [`Self::linked_user`] has checked any stored one).
    async fn touch_identity(&self, p: &Provider, who: &ExternalIdentity) -> Result<()> {
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
    async fn sso_user(
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
    async fn sso_link(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sso(base: Option<&str>, trusted: &[&str]) -> Sso {
        Sso::new(&SsoConfig {
            base_url: base.map(str::to_owned),
            trusted_origins: trusted.iter().map(|s| (*s).to_owned()).collect(),
            ..SsoConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn redirects_stay_on_allowed_origins() {
        let s = sso(
            Some("https://crm.example.com/"),
            &["https://app.example.com"],
        );
        assert_eq!(s.check_redirect("callbackURL", "/").unwrap(), "/");
        assert_eq!(
            s.check_redirect("callbackURL", "/dashboard?tab=1").unwrap(),
            "/dashboard?tab=1"
        );
        assert!(
            s.check_redirect("callbackURL", "https://crm.example.com/x")
                .is_ok()
        );
        assert!(
            s.check_redirect("callbackURL", "https://app.example.com/y")
                .is_ok()
        );
        for bad in [
            "//evil.example.com/",
            "/\\evil.example.com",
            "https://evil.example.com/",
            "https://crm.example.com.evil.com/",
            "http://crm.example.com/",
            "javascript:alert(1)",
            "https://user@crm.example.com/",
            "evil.example.com",
            "/a b",
            "",
        ] {
            let e = s.check_redirect("callbackURL", bad).unwrap_err();
            assert_eq!(e.code(), "SSO_INVALID_REDIRECT", "{bad}");
        }
        // Without a base URL only paths are allowed.
        let s = sso(None, &[]);
        assert!(s.check_redirect("callbackURL", "/ok").is_ok());
        assert!(
            s.check_redirect("callbackURL", "https://crm.example.com/")
                .is_err()
        );
    }

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
    fn provider_text_is_sanitised() {
        assert_eq!(
            sanitize("access_denied\r\n<script>"),
            "access_denied<script>"
        );
        assert_eq!(sanitize(&"x".repeat(500)).len(), 200);
        assert!(valid_binding(&crypto::random_token().unwrap()));
        assert!(!valid_binding("short"));
    }
}
