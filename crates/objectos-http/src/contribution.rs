//! How other plugins add HTTP routes and hoops: they contribute these values to the kernel
//! registry during `init`, and the HTTP plugin mounts them at `start`.
//!
//! ```ignore
//! fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
//!     cx.contribute(RouteContribution::new("auth", crate::http::router))?;
//!     cx.contribute(HoopContribution::new(100, SessionHoop::new(..)))?;
//!     Ok(())
//! }
//! ```

use std::fmt;
use std::sync::Arc;

use salvo::prelude::*;

/// A set of routes from a plugin.
///
/// A router is built by a factory because salvo routers cannot be cloned and the registry hands
/// out shared references; building is cheap and happens once per server start.
#[derive(Clone)]
pub struct RouteContribution {
    /// Where to mount: relative to `/api/v1` (`"auth"` serves `/api/v1/auth/...`), or absolute
    /// when it starts with `/` (`"/console"`).
    pub mount: String,
    build: Arc<dyn Fn() -> Router + Send + Sync>,
}

impl fmt::Debug for RouteContribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteContribution")
            .field("mount", &self.mount)
            .finish_non_exhaustive()
    }
}

impl RouteContribution {
    /// Routes built by `build`, mounted at `mount`.
    pub fn new(
        mount: impl Into<String>,
        build: impl Fn() -> Router + Send + Sync + 'static,
    ) -> Self {
        Self {
            mount: mount.into(),
            build: Arc::new(build),
        }
    }

    /// The absolute mount path, without a trailing slash.
    pub fn absolute_mount(&self) -> String {
        let m = self.mount.trim_end_matches('/');
        if m.starts_with('/') {
            m.to_owned()
        } else {
            format!("{}/{}", crate::routes::API_BASE, m)
        }
    }

    /// Builds a fresh router for this contribution, nested under its mount path.
    pub fn router(&self) -> Router {
        let mount = self.absolute_mount();
        Router::with_path(mount.trim_start_matches('/')).push((self.build)())
    }
}

/// A hoop that runs for every API request (after the request context is set up and before any
/// handler), such as session resolution by an auth plugin. Lower `order` runs first.
#[derive(Clone)]
pub struct HoopContribution {
    pub order: i32,
    hoop: Arc<dyn Handler>,
}

impl fmt::Debug for HoopContribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HoopContribution")
            .field("order", &self.order)
            .finish_non_exhaustive()
    }
}

impl HoopContribution {
    pub fn new(order: i32, hoop: impl Handler) -> Self {
        Self {
            order,
            hoop: Arc::new(hoop),
        }
    }

    pub(crate) fn handler(&self) -> SharedHoop {
        SharedHoop(self.hoop.clone())
    }
}

/// A shared hoop, so one contribution can be mounted on a freshly built router.
#[derive(Clone)]
pub(crate) struct SharedHoop(Arc<dyn Handler>);

#[async_trait]
impl Handler for SharedHoop {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        self.0.handle(req, depot, res, ctrl).await;
    }
}
