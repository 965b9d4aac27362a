//! ObjectOS web shell plugin: serves the admin console, the single-page app built from `apps/web`
//! and embedded at compile time, at `/console`, and makes `GET /` redirect there.
#![doc = include_str!("../README.md")]

pub mod assets;
pub mod config;
mod routes;

use objectos_http::{ConnectOrigin, HomeRedirect, RouteContribution};
use objectos_kernel::async_trait;
use objectos_kernel::{InitContext, Plugin, PluginError, StartContext};
use objectos_spec::PluginManifest;
use objectos_spec::manifest::{PluginDependency, capabilities};

pub use assets::{Asset, find};
pub use config::{CONFIG_SECTION, ConsoleConfig};
pub use routes::{
    CONSOLE_CSP, Policy, console_csp, console_router, reset_link_router, resolve, router,
};

/// The plugin id (the spec audit allows no `_` in ids, hence one word).
pub const PLUGIN_ID: &str = "com.objectos.webshell";

/// Where the console is served; the app is built with this base path (`apps/web/vite.config.ts`).
pub const MOUNT: &str = "/console";

/// The auth plugin's default password reset link (`auth.resetUrl`), sent on to the console.
pub const RESET_LINK: &str = "/reset-password";

pub const MANIFEST: PluginManifest = PluginManifest {
    description: "Admin console: the apps/web single-page app, embedded in the binary and served at /console (SPA fallback, immutable hashed assets, strict Content-Security-Policy); / and the default password reset link redirect there",
    dependencies: &[PluginDependency {
        id: objectos_http::MANIFEST.id,
        version: ">=0.1",
        optional: false,
    }],
    permissions: &[capabilities::ROUTES_MOUNT],
    ..PluginManifest::new(PLUGIN_ID, "Web Shell", env!("CARGO_PKG_VERSION"))
};

/// The plugin. Its `console:` section ([`ConsoleConfig`]) can turn the console off or rename it;
/// compiling it in (feature `plugin-web-shell` of the server) is what makes it available.
///
/// Its pages may connect to the origins other plugins contribute as [`ConnectOrigin`] (a
/// storage backend's direct upload URLs): read at `start`, once every plugin's `init` ran.
#[derive(Debug, Default)]
pub struct WebShellPlugin {
    policy: Policy,
}

impl WebShellPlugin {
    /// The policy the console's answers carry (tests read it after `start`).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

#[async_trait]
impl Plugin for WebShellPlugin {
    fn manifest(&self) -> &PluginManifest {
        &MANIFEST
    }

    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        let config = cx.settings::<ConsoleConfig>(&CONFIG_SECTION)?;
        if !config.enabled {
            return Ok(());
        }
        // The console is a page, not an API: it has no operations for the OpenAPI document and
        // no service for discovery (the `ui` service is the HTTP plugin's view endpoints).
        let title = config.title;
        let policy = self.policy.clone();
        cx.contribute(RouteContribution::new(MOUNT, move || {
            console_router(&title, policy.clone())
        }))?;
        cx.contribute(RouteContribution::new(RESET_LINK, reset_link_router))?;
        cx.contribute(HomeRedirect::new(format!("{MOUNT}/")))?;
        Ok(())
    }

    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        let mut origins = Vec::new();
        for c in cx.contributions::<ConnectOrigin>()? {
            match c.value.origin() {
                Some(o) => origins.push(o),
                None => tracing::warn!(
                    plugin = PLUGIN_ID,
                    from = %c.plugin,
                    url = %c.value.url,
                    "A contributed connect origin is not an http(s) origin; the console does not allow it."
                ),
            }
        }
        self.policy.set(&origins);
        Ok(())
    }
}
