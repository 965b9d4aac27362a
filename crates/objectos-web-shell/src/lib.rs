//! ObjectOS web shell plugin: serves the admin console, the single-page app built from `apps/web`
//! and embedded at compile time, at `/console`, and makes `GET /` redirect there.
#![doc = include_str!("../README.md")]

pub mod assets;
mod routes;

use objectos_http::{HomeRedirect, RouteContribution};
use objectos_kernel::async_trait;
use objectos_kernel::{InitContext, Plugin, PluginError};
use objectos_spec::PluginManifest;
use objectos_spec::manifest::{PluginDependency, capabilities};

pub use assets::{Asset, find};
pub use routes::{CONSOLE_CSP, resolve, router};

/// The plugin id (the spec audit allows no `_` in ids, hence one word).
pub const PLUGIN_ID: &str = "com.objectos.webshell";

/// Where the console is served; the app is built with this base path (`apps/web/vite.config.ts`).
pub const MOUNT: &str = "/console";

pub const MANIFEST: PluginManifest = PluginManifest {
    description: "Admin console: the apps/web single-page app, embedded in the binary and served at /console (SPA fallback, immutable hashed assets, strict Content-Security-Policy); / redirects there",
    dependencies: &[PluginDependency {
        id: objectos_http::MANIFEST.id,
        version: ">=0.1",
        optional: false,
    }],
    permissions: &[capabilities::ROUTES_MOUNT],
    ..PluginManifest::new(PLUGIN_ID, "Web Shell", env!("CARGO_PKG_VERSION"))
};

/// The plugin: no settings; compiling it in (feature `plugin-web-shell` of the server) turns the
/// console on.
#[derive(Debug, Default)]
pub struct WebShellPlugin;

#[async_trait]
impl Plugin for WebShellPlugin {
    fn manifest(&self) -> &PluginManifest {
        &MANIFEST
    }

    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        // The console is a page, not an API: it has no operations for the OpenAPI document and
        // no service for discovery (the `ui` service is the HTTP plugin's view endpoints).
        cx.contribute(RouteContribution::new(MOUNT, router))?;
        cx.contribute(HomeRedirect::new(format!("{MOUNT}/")))?;
        Ok(())
    }
}
