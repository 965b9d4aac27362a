//! OIDC discovery: each provider's discovery document and signing keys, cached, fetched once at
//! a time, refreshed after a signature failure (rotated keys) and backed off after failures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{CoreClient, CoreProviderMetadata};
use openidconnect::{ClientId, ClientSecret, IssuerUrl};

use super::config::{Engine, OidcClient, Provider, Sso};
use super::{UNREACHABLE, chain};
use crate::config::provider_url;
use crate::error::{AuthError, Result};

/// How long discovered provider metadata (endpoints and signing keys) is reused.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Metadata younger than this is not fetched again after a signature failure (key rotation).
const METADATA_MIN_REFRESH: Duration = Duration::from_secs(30);
/// Upper bound of one discovery (the document and the signing keys).
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed discovery no new attempt is made for this long, doubled per further failure
/// up to [`BACKOFF_MAX`]; requests meanwhile fail at once instead of waiting on a dead provider.
const BACKOFF_FIRST: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Discovered metadata of an OIDC provider and the state of failed discoveries.
#[derive(Default)]
pub(super) struct OidcCache {
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

impl Sso {
    /// The OIDC client from the issuer's discovery document (cached for [`METADATA_TTL`];
    /// `refresh` fetches it again, as after a signature failure when the keys may have rotated).
    ///
    /// The cache lock is never held across the network: a request with fresh metadata never
    /// waits, one with stale metadata uses it while another request refreshes, and only a cold
    /// cache waits for the one discovery in flight. After a failure, requests fail at once for a
    /// growing backoff (or keep using stale metadata) instead of queueing on a dead provider.
    pub(super) async fn oidc_client(&self, p: &Provider, refresh: bool) -> Result<Arc<OidcClient>> {
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
}
