//! The `metrics:` section of `objectos.yml`: who may scrape (`token`, `tokenEnv`, `allow`) and
//! the histogram buckets of every `*_seconds` metric.

use std::net::IpAddr;

use objectos_http::config::IpCidr;
use objectos_spec::settings::{PluginSettings, Secret, SettingsProblem};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `metrics:` section of `objectos.yml`, typed as [`MetricsConfig`].
pub const CONFIG_SECTION: objectos_spec::settings::ConfigSection =
    objectos_spec::settings::ConfigSection::of::<MetricsConfig>("metrics", crate::PLUGIN_ID);

/// Environment variable read for the scrape token when `token` is not set.
pub const DEFAULT_TOKEN_ENV: &str = "OBJECTOS_METRICS_TOKEN";

/// Default latency buckets (seconds): 0.5 ms to 10 s, fine below 100 ms where API calls live.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Settings of `com.objectos.metrics` (camelCase keys).
///
/// A scrape is let in when it carries `Authorization: Bearer <token>` with the configured token,
/// or comes from an address in `allow`. With neither a token nor `allow` configured, only
/// loopback clients may scrape; with a token and no `allow`, everyone needs the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` and `/api/v1/metrics/prometheus` and record the built-in metrics.
    pub enabled: bool,
    /// The bearer token a scraper sends (`Authorization: Bearer ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// Environment variable holding the token when `token` is not set.
    pub token_env: String,
    /// Client addresses or CIDR ranges (`10.0.0.0/8`, `::1`) that may scrape without the token.
    /// The client address is the HTTP plugin's (`http.trustedProxies` decides whether forwarding
    /// headers count).
    pub allow: Vec<String>,
    /// Histogram bucket bounds, in seconds, of every metric whose name ends in `_seconds`.
    pub buckets: Vec<f64>,
    /// OpenTelemetry traces over OTLP/gRPC (off by default); read by the server when it sets up
    /// logging, before the plugins start.
    pub tracing: crate::otel::TracingConfig,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            token: None,
            token_env: DEFAULT_TOKEN_ENV.to_owned(),
            allow: Vec::new(),
            buckets: DEFAULT_BUCKETS.to_vec(),
            tracing: crate::otel::TracingConfig::default(),
        }
    }
}

impl PluginSettings for MetricsConfig {
    fn problems(&self) -> Vec<SettingsProblem> {
        let mut out = Vec::new();
        for (i, item) in self.allow.iter().enumerate() {
            if let Err(m) = item.parse::<IpCidr>() {
                out.push(SettingsProblem::at(&format!("allow.{i}"), m));
            }
        }
        if self.buckets.is_empty() {
            out.push(SettingsProblem::at(
                "buckets",
                "needs at least one bucket bound",
            ));
        }
        if self.buckets.windows(2).any(|w| w[0] >= w[1])
            || self.buckets.iter().any(|b| b.is_nan() || *b <= 0.0)
        {
            out.push(SettingsProblem::at(
                "buckets",
                "bounds must be positive and strictly increasing",
            ));
        }
        if self
            .token
            .as_ref()
            .is_some_and(|t| t.expose().trim().is_empty())
        {
            out.push(SettingsProblem::at("token", "must not be empty"));
        }
        if self.token_env.is_empty()
            || !self
                .token_env
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            out.push(SettingsProblem::at(
                "tokenEnv",
                "must be an environment variable name (letters, digits and _)",
            ));
        }
        out.extend(self.tracing.problems());
        out
    }
}

/// Who may scrape, resolved once at init from the settings and the environment.
#[derive(Clone)]
pub struct Access {
    token: Option<Secret>,
    allow: Vec<IpCidr>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("token", &self.token.is_some())
            .field("allow", &self.allow)
            .finish()
    }
}

impl Access {
    /// The token from `token`, else from the `tokenEnv` variable; the allow list parsed
    /// (defaulting to loopback when no token is configured).
    pub fn resolve(config: &MetricsConfig) -> Result<Self, String> {
        let token = config.token.clone().or_else(|| {
            std::env::var(&config.token_env)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(Secret::new)
        });
        let mut allow = config
            .allow
            .iter()
            .enumerate()
            .map(|(i, s)| s.parse::<IpCidr>().map_err(|m| format!("allow.{i}: {m}")))
            .collect::<Result<Vec<_>, _>>()?;
        if token.is_none() && allow.is_empty() {
            // Nothing configured: a sidecar or a local Prometheus still works, nobody else.
            for loopback in ["127.0.0.0/8", "::1"] {
                allow.push(loopback.parse::<IpCidr>()?);
            }
        }
        Ok(Self { token, allow })
    }

    /// Whether a token is configured.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether a scrape with this `Authorization` header from this client may read the metrics.
    pub fn permits(&self, authorization: Option<&str>, client: Option<IpAddr>) -> bool {
        if let (Some(expected), Some(given)) = (
            self.token.as_ref(),
            authorization.and_then(|h| h.strip_prefix("Bearer ")),
        ) {
            // Constant time, so the comparison leaks nothing about how much of a guess was right.
            let a = expected.expose().as_bytes();
            let b = given.trim().as_bytes();
            if a.len() == b.len() && bool::from(subtle::ConstantTimeEq::ct_eq(a, b)) {
                return true;
            }
        }
        client.is_some_and(|ip| self.allow.iter().any(|c| c.contains(ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_configured_means_loopback_only() {
        let a = Access::resolve(&MetricsConfig {
            token_env: "OBJECTOS_TEST_UNSET_METRICS_TOKEN".into(),
            ..MetricsConfig::default()
        })
        .unwrap();
        assert!(a.permits(None, Some("127.0.0.1".parse().unwrap())));
        assert!(a.permits(None, Some("::1".parse().unwrap())));
        assert!(!a.permits(None, Some("10.0.0.1".parse().unwrap())));
        assert!(!a.permits(None, None));
    }

    #[test]
    fn a_token_closes_loopback_unless_allowed() {
        let mut c = MetricsConfig {
            token: Some(Secret::new("s3cret")),
            ..MetricsConfig::default()
        };
        let a = Access::resolve(&c).unwrap();
        assert!(!a.permits(None, Some("127.0.0.1".parse().unwrap())));
        assert!(!a.permits(Some("Bearer wrong!"), Some("127.0.0.1".parse().unwrap())));
        assert!(!a.permits(Some("s3cret"), None));
        assert!(a.permits(Some("Bearer s3cret"), None));
        c.allow = vec!["10.0.0.0/8".into()];
        let a = Access::resolve(&c).unwrap();
        assert!(a.permits(None, Some("10.1.2.3".parse().unwrap())));
        assert!(!a.permits(None, Some("127.0.0.1".parse().unwrap())));
    }

    #[test]
    fn problems_name_their_key() {
        let c = MetricsConfig {
            allow: vec!["10.0.0.0/8".into(), "nope".into()],
            buckets: vec![0.1, 0.05],
            token_env: "bad name".into(),
            ..MetricsConfig::default()
        };
        let p: Vec<String> = c.problems().into_iter().map(|p| format!("{p:?}")).collect();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("nope"), "{p:?}");
    }
}
