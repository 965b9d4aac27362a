//! The kernel plugin: id `com.objectos.auth`, provides the `auth` service (the kernel's
//! `Directory` contract), contributes the `/api/v1/auth` routes and the session hoop, sends mail
//! through a registered `notification` mailer when there is one, and publishes the `auth.*` /
//! `security.*` events.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use objectos_data::{DataHandle, InterceptorContribution};
use objectos_http::{HoopContribution, RouteContribution};
use objectos_kernel::contracts::Cache;
use objectos_kernel::{Directory, InitContext, Plugin, PluginError, StartContext};
use objectos_spec::manifest::{capabilities, services};
use objectos_spec::{HealthReport, HealthStatus, PluginManifest, RuntimeMode};

use crate::config::{AuthConfig, CONFIG_SECTION};
use crate::directory::AuthDirectory;
use crate::hook::{UserIdentityHook, UserStatusHook};
use crate::http::{self, ServiceCell, SessionHoop};
use crate::mailer::{LoggingMailer, Mailer};
use crate::secretbox::SecretKey;
use crate::service::{AuthService, events};

/// The plugin id (also the key of its kernel configuration).
pub const PLUGIN_ID: &str = "com.objectos.auth";

/// Order of the session hoop among contributed hoops (low: it must run before authorization).
pub const SESSION_HOOP_ORDER: i32 = 100;

/// The static manifest.
pub const MANIFEST: PluginManifest = PluginManifest {
    description: "Authentication: email/password sign-up and sign-in, sessions (bearer, cookie), lockout, rate limits, password reset, TOTP two-factor, API keys, organizations",
    provides: &[services::AUTH],
    requires: &[services::DATA],
    // A notification plugin's mailer, when one is installed; the logging mailer otherwise.
    // A cache plugin, when installed, carries session invalidations between nodes.
    optional_requires: &[services::NOTIFICATION, services::CACHE],
    permissions: &[
        capabilities::DATA_READ,
        capabilities::DATA_WRITE,
        capabilities::EVENTS_PUBLISH,
        capabilities::ROUTES_MOUNT,
    ],
    emits: events::ALL,
    ..PluginManifest::new(PLUGIN_ID, "ObjectOS Auth", env!("CARGO_PKG_VERSION"))
};

/// The [`AuthService`] once the plugin has started, for hosts that wire without the registry
/// (other plugins use the `auth` service, the kernel's `Directory` contract).
#[derive(Debug, Default)]
pub struct AuthHandle {
    cell: ServiceCell,
}

impl AuthHandle {
    pub fn service(&self) -> Option<&AuthService> {
        self.cell.get()
    }
}

/// The auth plugin; its public fields are its settings. A kernel configuration under
/// `com.objectos.auth` (the `auth:` section of `objectos.yml`, even an empty one) replaces
/// `config`; no configuration keeps it.
pub struct AuthPlugin {
    pub config: AuthConfig,
    /// The mailer used when no plugin registers one under `notification` (default: the
    /// logging mailer, which never logs links or tokens).
    pub mailer: Arc<dyn Mailer>,
    /// The TOTP encryption key; `None` reads it from the variable `secretKeyEnv` names.
    pub secret_key: Option<SecretKey>,
    effective: OnceLock<AuthConfig>,
    cell: ServiceCell,
}

impl std::fmt::Debug for AuthPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthPlugin")
            .field("config", &self.config)
            .field("mailer", &self.mailer)
            .field("secret_key", &self.secret_key)
            .finish_non_exhaustive()
    }
}

impl Default for AuthPlugin {
    fn default() -> Self {
        Self::new(AuthConfig::default())
    }
}

impl AuthPlugin {
    pub fn new(config: AuthConfig) -> Self {
        Self {
            config,
            mailer: Arc::new(LoggingMailer::new()),
            secret_key: None,
            effective: OnceLock::new(),
            cell: Arc::default(),
        }
    }

    /// Sends mail through `mailer` when no plugin registers one under `notification`.
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    /// Encrypts TOTP secrets with `key` instead of the one in the environment (a host that
    /// keeps its keys in a vault).
    pub fn with_secret_key(mut self, key: SecretKey) -> Self {
        self.secret_key = Some(key);
        self
    }

    /// The service cell (filled at start), for hosts that wire without looking up the registry.
    pub fn handle(&self) -> AuthHandle {
        AuthHandle {
            cell: self.cell.clone(),
        }
    }
}

#[async_trait]
impl Plugin for AuthPlugin {
    fn manifest(&self) -> &PluginManifest {
        &MANIFEST
    }

    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        // No section (`null`): the settings the host built the plugin with. A section, even
        // `{}`, is read as written (missing keys take their defaults), and every unknown key,
        // bad value and failed check comes back at once, each with its path under `auth`.
        let config = cx.settings_or(&CONFIG_SECTION, self.config.clone())?;
        let _ = self.effective.set(config);
        cx.register::<dyn Directory>(
            services::AUTH,
            Arc::new(AuthDirectory::new(self.cell.clone())),
        )?;
        let cell = self.cell.clone();
        cx.contribute(
            RouteContribution::new("auth", move || http::router(cell.clone()))
                .service(services::AUTH)
                .operations(http::operations()),
        )?;
        cx.contribute(InterceptorContribution(Arc::new(UserStatusHook {
            cell: self.cell.clone(),
        })))?;
        cx.contribute(InterceptorContribution(Arc::new(UserIdentityHook)))?;
        // The private tables, created by the data plugin's migration before any start.
        cx.contribute(crate::store::schema())?;
        cx.contribute(HoopContribution::new(
            SESSION_HOOP_ORDER,
            SessionHoop::new(self.cell.clone()),
        ))?;
        Ok(())
    }

    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        let engine = DataHandle::require_engine(cx)?;
        let config = self
            .effective
            .get()
            .cloned()
            .unwrap_or_else(|| self.config.clone());
        let startup = |e: crate::error::AuthError| PluginError::Startup {
            plugin: PLUGIN_ID.to_owned(),
            message: e.to_string(),
        };
        // Registered mailer first; an absent (or failed) notification plugin leaves ours.
        // The notification plugin registers its `Notifier`, which is also a mailer; a plain
        // `Mailer` under the name (a test's, a host's) is taken as well.
        let registered = cx
            .get_named::<dyn objectos_kernel::contracts::Notifier>(services::NOTIFICATION)
            .map(objectos_kernel::contracts::mailer_of)
            .or_else(|_| cx.get_named::<dyn Mailer>(services::NOTIFICATION));
        let mailer = match registered {
            Ok(m) => {
                tracing::info!(
                    plugin = PLUGIN_ID,
                    "Mail goes through the registered notification mailer."
                );
                m
            }
            Err(_) => self.mailer.clone(),
        };
        let key_variable = config.secret_key_env.trim().to_owned();
        let service = AuthService::open_with_key(
            engine,
            config,
            cx.clock().clone(),
            mailer,
            Some(cx.handle()),
            self.secret_key.clone(),
        )
        .await
        .map_err(startup)?;
        service.check_secret_key().await.map_err(startup)?;
        if !service.encrypts_totp_secrets() {
            // Unencrypted seeds matter where real second factors live: production gets the
            // warning; a development or test server, which usually has no key on purpose,
            // gets one informational line instead of a warning at every start.
            if cx.kernel().mode == RuntimeMode::Production {
                tracing::warn!(
                    variable = %key_variable,
                    "No encryption key is configured: two-factor (TOTP) secrets are stored unencrypted. Set the variable to 32 random bytes (64 hex digits or base64) to encrypt them."
                );
            } else {
                tracing::info!(
                    variable = %key_variable,
                    "TOTP secrets are stored unencrypted (no key set); set the variable before production."
                );
            }
        }
        // Revocations reach the other nodes' session caches through the cache service, when
        // one is installed (absent: the session cache is per node, as without a cluster).
        if let Ok(cache) = cx.get_named::<dyn Cache>(services::CACHE) {
            service.attach_cache(cache);
        }
        // `objectos_auth_sessions_active`, recounted now and every 30 s (and after each
        // session change).
        service.spawn_sessions_gauge();
        let _ = self.cell.set(service);
        Ok(())
    }

    async fn health(&self) -> HealthReport {
        if self.cell.get().is_some() {
            HealthReport::healthy()
        } else {
            HealthReport::with_status(HealthStatus::Unhealthy, "the auth service has not started")
        }
    }
}
