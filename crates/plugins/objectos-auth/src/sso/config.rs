//! Provider configuration: the `sso` settings turned into ready clients at start (no network),
//! the `GET /providers` list, and the check that keeps `callbackURL`s on allowed origins.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use oauth2::basic::BasicClient;
use openidconnect::core::CoreClient;
use openidconnect::url::Url;
use openidconnect::{
    AuthUrl, ClientId, ClientSecret, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    RedirectUrl, TokenUrl, reqwest,
};
use serde_json::{Value as Json, json};

use super::discovery::OidcCache;
use super::sanitize;
use crate::config::{
    ClaimMapping, ProviderKind, Secret, SsoConfig, SsoProvider, http_url, provider_url,
};
use crate::crypto;
use crate::error::{AuthError, Result};

/// Upper bound of a `callbackURL`.
const MAX_REDIRECT_LEN: usize = 2048;

pub(super) type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;
pub(super) type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

pub(super) enum Engine {
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
pub(super) struct Provider {
    pub(super) cfg: SsoProvider,
    pub(super) secret: Option<Secret>,
    pub(super) redirect: RedirectUrl,
    pub(super) scopes: Vec<String>,
    pub(super) engine: Engine,
    /// Whose subjects these are: the issuer (oidc) or a digest of the token and user-info
    /// endpoints (oauth2). Stored with each identity and compared at sign-in, so a provider id
    /// pointed at another server cannot sign in to the accounts linked through the old one.
    pub(super) issuer_key: String,
    /// `allowedEmailDomains`, lowercased; empty when every domain is allowed.
    pub(super) domains: Option<Vec<String>>,
}

/// The configured providers and the outgoing HTTP client (built once at start, no network).
pub(crate) struct Sso {
    pub(super) http: reqwest::Client,
    providers: Vec<Provider>,
    /// The origin of `sso.baseUrl` (`https://crm.example.com`), where `callbackURL`s may point.
    base_origin: Option<String>,
    trusted_origins: Vec<String>,
    pub(super) state_minutes: u32,
    /// When expired flow states were last swept (clock milliseconds).
    pub(super) last_sweep: AtomicI64,
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

fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
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

    pub(super) fn provider(&self, id: &str) -> Result<&Provider> {
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
}
