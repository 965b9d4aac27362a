//! The kernel plugin: id `com.objectos.permissions`, provides `permissions` (the kernel's
//! `Authorizer` contract); contributes its table (a `PluginSchema`), the interceptor and the
//! routes at init, loads the security metadata and the assignments at start, and takes membership
//! from the `auth` directory when a plugin provides one.

use std::sync::Arc;

use async_trait::async_trait;
use objectos_data::{DataHandle, InterceptorContribution};
use objectos_http::RouteContribution;
use objectos_kernel::contracts::Cache;
use objectos_kernel::{Authorizer, Directory, InitContext, Plugin, PluginError, StartContext};
use objectos_spec::event::auth::AuthEvent;
use objectos_spec::manifest::{PluginDependency, capabilities, services};
use objectos_spec::{Event, HealthReport, PluginManifest};

use crate::authorizer::PermissionsAuthorizer;
use crate::authz::{self, Authz, AuthzConfig, DirectoryMembership};
use crate::interceptor::PermissionInterceptor;
use crate::model::{SecurityModel, SecuritySources};
use crate::routes;

/// The plugin id.
pub const PLUGIN_ID: &str = "com.objectos.permissions";

/// The events this plugin publishes (payload `objectos_spec::event::authz::AssignmentChanged`).
pub const EVENTS: &[&str] = objectos_spec::event::authz::ALL;

/// The auth plugin's event for a user removed from an organization (`AuthEvent` with
/// `organizationId`, `targetUserId`); the user's assignments there are dropped.
pub const MEMBER_REMOVED: &str = objectos_spec::event::auth::MEMBER_REMOVED;

/// The static manifest.
pub const MANIFEST: PluginManifest = PluginManifest {
    description: "Permissions: profiles, permission sets, roles, sharing rules, row-level and field-level security enforced as data-engine interceptors",
    provides: &[services::PERMISSIONS],
    requires: &[services::DATA, services::METADATA],
    // Membership from the auth plugin's directory; without it, from user records (minimal
    // builds without auth). A cache plugin, when installed, carries assignment changes between
    // nodes.
    optional_requires: &[services::AUTH, services::CACHE],
    dependencies: &[PluginDependency {
        id: objectos_data::PLUGIN_ID,
        version: "*",
        optional: false,
    }],
    permissions: &[
        capabilities::DATA_READ,
        capabilities::DATA_WRITE,
        capabilities::METADATA_READ,
        capabilities::EVENTS_PUBLISH,
        capabilities::EVENTS_SUBSCRIBE,
        capabilities::ROUTES_MOUNT,
        capabilities::FS_READ,
    ],
    emits: EVENTS,
    subscribes: &[MEMBER_REMOVED, objectos_spec::event::metadata::RELOADED],
    ..PluginManifest::new(PLUGIN_ID, "Permissions", env!("CARGO_PKG_VERSION"))
};

/// The permissions plugin. Its security files (`*.permission.yml`, `*.role.yml`,
/// `*.sharing.yml`) are metadata kinds the data engine loads from its metadata folders with the
/// objects (see [`crate::authz::schema`]).
#[derive(Debug)]
pub struct PermissionsPlugin {
    authz: Arc<Authz>,
}

impl PermissionsPlugin {
    pub fn new(config: AuthzConfig) -> Self {
        Self {
            authz: Arc::new(Authz::new(config)),
        }
    }

    /// Recompiles the security model from the engine's current metadata (after
    /// `DataEngine::reload`); the old model stays on error.
    pub fn reload(&self) -> Result<(), crate::error::PermissionsError> {
        self.authz.reload_from_snapshot()
    }

    /// The shared authorization state (registered as service `permissions` behind the kernel's
    /// `Authorizer` contract).
    pub fn authz(&self) -> Arc<Authz> {
        self.authz.clone()
    }
}

#[async_trait]
impl Plugin for PermissionsPlugin {
    fn manifest(&self) -> &PluginManifest {
        &MANIFEST
    }

    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        // The data plugin creates the assignment table before any other plugin starts.
        cx.contribute(authz::schema())?;
        cx.register::<dyn Authorizer>(
            services::PERMISSIONS,
            Arc::new(PermissionsAuthorizer::new(self.authz.clone())),
        )?;
        cx.contribute(InterceptorContribution(Arc::new(
            PermissionInterceptor::new(self.authz.clone()),
        )))?;
        let a = self.authz.clone();
        cx.contribute(
            RouteContribution::new("permissions", move || routes::objectos_router(a.clone()))
                .service(services::PERMISSIONS)
                .operations(routes::objectos_operations()),
        )?;
        let a = self.authz.clone();
        // The ObjectStack client asks the auth mount for permission checks: documented under
        // the permissions service, but not the mount discovery advertises for it.
        cx.contribute(
            RouteContribution::new("auth", move || routes::objectstack_router(a.clone()))
                .service(services::PERMISSIONS)
                .compat()
                .operations(routes::objectstack_operations()),
        )?;
        // A reloaded snapshot carries new security files: the model is rebuilt from it (a
        // model that no longer compiles keeps the old one, and says why).
        let a = self.authz.clone();
        cx.subscribe(
            objectos_spec::event::metadata::RELOADED,
            move |_event: Arc<Event>| {
                let a = a.clone();
                async move {
                    match a.reload_from_snapshot() {
                        Ok(()) => tracing::info!("Security model rebuilt from the reloaded metadata."),
                        Err(e) => tracing::error!(error = %e, "The reloaded security metadata does not compile; the previous model stays."),
                    }
                    Ok(())
                }
            },
        )?;
        let a = self.authz.clone();
        cx.subscribe(MEMBER_REMOVED, move |event: Arc<Event>| {
            let a = a.clone();
            async move {
                // A payload that does not read as the spec's type names nobody to forget.
                let Ok(p) = serde_json::from_value::<AuthEvent>(event.payload.clone()) else {
                    return Ok(());
                };
                let (Some(org), Some(user)) = (p.details.organization_id, p.details.target_user_id)
                else {
                    return Ok(());
                };
                a.forget_member(&org, &user)
                    .await
                    .map(|_| ())
                    .map_err(|e| PluginError::msg(e.to_string()))
            }
        })?;
        Ok(())
    }

    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        let engine = DataHandle::require_engine(cx)?;
        let sources = SecuritySources::from_snapshot(&engine.metadata())
            .map_err(|e| PluginError::config(PLUGIN_ID, e))?;
        let model = SecurityModel::compile(sources, &engine.metadata())
            .map_err(|e| PluginError::config(PLUGIN_ID, e))?;
        self.authz.set_model(model);
        // Before `attach`, which installs the fallback only when no membership source is set.
        if let Ok(directory) = cx.get_named::<dyn Directory>(services::AUTH) {
            self.authz.set_directory(directory.clone());
            self.authz
                .set_membership(Arc::new(DirectoryMembership::new(directory)));
        }
        self.authz
            .attach(engine)
            .await
            .map_err(|e| PluginError::config(PLUGIN_ID, e))?;
        self.authz.set_event_handle(cx.handle());
        // Assignment changes reach the other nodes through the cache service, when one is
        // installed (see `authz/cluster.rs`); without it each node knows its own writes only.
        if let Ok(cache) = cx.get_named::<dyn Cache>(services::CACHE) {
            self.authz.attach_cache(cache);
        }
        Ok(())
    }

    async fn health(&self) -> HealthReport {
        HealthReport::healthy()
    }
}
