//! How other plugins add HTTP routes and hoops: they contribute these values to the kernel
//! registry during `init`, and the HTTP plugin mounts them at `start`.
//!
//! A route contribution also names the spec service it serves (so discovery advertises that service
//! at its real mount) and describes its operations (so they appear in `/api/v1/openapi.json`).
//!
//! ```ignore
//! fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
//!     cx.contribute(
//!         RouteContribution::new("auth", crate::http::router)
//!             .service(services::AUTH)
//!             .operations(crate::http::operations()),
//!     )?;
//!     cx.contribute(HoopContribution::new(100, SessionHoop::new(..)))?;
//!     Ok(())
//! }
//! ```

use std::fmt;
use std::sync::Arc;

use salvo::http::Method;
use salvo::prelude::*;
use salvo::routing::filters::FilterInfo;
use serde_json::Value;

/// Which credentials an operation needs; the OpenAPI document turns it into the operation's
/// `security` (bearer session token, the session cookie, or an `X-API-Key` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteSecurity {
    /// Reachable without credentials (sign-in, sign-up, public provider lists).
    Public,
    /// Answers anonymous callers too, but differently when a session is present.
    Optional,
    /// Needs a session or an API key.
    Required,
}

/// One operation of a contributed router, described for the OpenAPI document.
#[derive(Debug, Clone)]
pub struct RouteOperation {
    pub method: Method,
    /// Path template relative to the contribution's mount, with salvo's `{param}` syntax (which is
    /// also OpenAPI's); empty for the mount itself.
    pub path: String,
    pub summary: String,
    /// Extra tags; every operation is also tagged with its contribution's service.
    pub tags: Vec<String>,
    pub security: RouteSecurity,
    /// JSON Schema of the request body, when the operation reads one.
    pub request_body: Option<Value>,
    /// JSON Schema of the success response, when it is simple enough to state.
    pub response: Option<Value>,
    /// JSON Schema of the error body, when the routes answer errors in a shape of their own
    /// (the dispatcher envelope `{success:false,error:{...}}`); unset, the server's `Error`.
    pub error_response: Option<Value>,
}

impl RouteOperation {
    /// An operation that needs credentials; see [`RouteOperation::public`].
    pub fn new(method: Method, path: impl Into<String>, summary: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            summary: summary.into(),
            tags: Vec::new(),
            security: RouteSecurity::Required,
            request_body: None,
            response: None,
            error_response: None,
        }
    }

    pub fn get(path: impl Into<String>, summary: impl Into<String>) -> Self {
        Self::new(Method::GET, path, summary)
    }

    pub fn post(path: impl Into<String>, summary: impl Into<String>) -> Self {
        Self::new(Method::POST, path, summary)
    }

    pub fn delete(path: impl Into<String>, summary: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path, summary)
    }

    /// Reachable without credentials.
    pub fn public(mut self) -> Self {
        self.security = RouteSecurity::Public;
        self
    }

    /// Reachable without credentials, with a different answer for a signed-in caller.
    pub fn optional_auth(mut self) -> Self {
        self.security = RouteSecurity::Optional;
        self
    }

    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// The JSON Schema of the request body.
    pub fn body(mut self, schema: Value) -> Self {
        self.request_body = Some(schema);
        self
    }

    /// The JSON Schema of the success response.
    pub fn returns(mut self, schema: Value) -> Self {
        self.response = Some(schema);
        self
    }

    /// The JSON Schema of the error bodies, when they are not the server's `Error` shape.
    pub fn errors(mut self, schema: Value) -> Self {
        self.error_response = Some(schema);
        self
    }
}

/// A set of routes from a plugin.
///
/// A router is built by a factory because salvo routers cannot be cloned and the registry hands
/// out shared references; building is cheap and happens once per server start.
#[derive(Clone)]
pub struct RouteContribution {
    /// Where to mount: relative to `/api/v1` (`"auth"` serves `/api/v1/auth/...`), or absolute
    /// when it starts with `/` (`"/console"`).
    pub mount: String,
    /// The spec service these routes serve (`objectos_spec::manifest::services`); discovery lists
    /// that service at this mount. Unset, the mount's last segment is taken as the service name.
    pub service: Option<String>,
    /// The operations, for the OpenAPI document.
    pub operations: Vec<RouteOperation>,
    /// True for routes mounted under another service's path for client compatibility (the
    /// ObjectStack client asks `/auth/check` for permissions): documented, but not the mount
    /// discovery advertises for the service.
    pub compat: bool,
    /// True when the routes read request bodies as streams larger than `http.bodyLimit` (file
    /// uploads): the server's body limit is not applied to them, and their handlers bound what
    /// they read themselves.
    pub streaming_body: bool,
    build: Arc<dyn Fn() -> Router + Send + Sync>,
}

impl fmt::Debug for RouteContribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteContribution")
            .field("mount", &self.mount)
            .field("service", &self.service)
            .field("operations", &self.operations.len())
            .field("compat", &self.compat)
            .field("streaming_body", &self.streaming_body)
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
            service: None,
            operations: Vec::new(),
            compat: false,
            streaming_body: false,
            build: Arc::new(build),
        }
    }

    /// Names the spec service these routes serve.
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.service = Some(name.into());
        self
    }

    /// Describes the routes' operations for the OpenAPI document.
    pub fn operations(mut self, operations: Vec<RouteOperation>) -> Self {
        self.operations = operations;
        self
    }

    /// Marks the routes as a compatibility mount under another service's path.
    pub fn compat(mut self) -> Self {
        self.compat = true;
        self
    }

    /// Exempts the routes from the server's body limit (see
    /// [`RouteContribution::streaming_body`]).
    pub fn streaming_body(mut self) -> Self {
        self.streaming_body = true;
        self
    }

    /// The service these routes serve: the declared one, else the mount's last segment (how
    /// contributions that predate `service` were matched).
    pub fn service_name(&self) -> Option<&str> {
        match &self.service {
            Some(s) => Some(s.as_str()),
            None if self.compat => None,
            None => self
                .mount
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .filter(|s| !s.is_empty()),
        }
    }

    /// Every `(method, path)` the built router answers, paths relative to the mount, so a test (or
    /// the server at mount time) can check the operation descriptions against the real routes.
    pub fn endpoints(&self) -> Vec<(Method, String)> {
        let mut out = Vec::new();
        collect_endpoints(&(self.build)(), "", &mut out);
        out
    }

    /// Endpoints the router answers that no operation describes.
    pub fn undocumented(&self) -> Vec<(Method, String)> {
        self.endpoints()
            .into_iter()
            .filter(|(m, p)| {
                !self
                    .operations
                    .iter()
                    .any(|o| o.method == *m && o.path.trim_matches('/') == p)
            })
            .collect()
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

/// Where `GET /` sends a browser instead of the built-in links page: a plugin that serves a
/// start page (the admin console at `/console`) contributes one in `init`. The HTTP plugin knows
/// no such plugin by name; with several, the first contributed wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeRedirect {
    /// An absolute path on this server (`/console/`); anything else is ignored.
    pub location: String,
}

impl HomeRedirect {
    pub fn new(location: impl Into<String>) -> Self {
        Self {
            location: location.into(),
        }
    }

    /// The location when it is a same-server absolute path (`/x`, not `//host` or a URL), so a
    /// contribution cannot turn `/` into an open redirect.
    pub fn same_server_path(&self) -> Option<&str> {
        let l = self.location.as_str();
        (l.starts_with('/') && !l.starts_with("//") && !l.contains('\\')).then_some(l)
    }
}

/// An origin other than the server's own that the browser pages it serves may connect to (the
/// console's `Content-Security-Policy` `connect-src`): a plugin that hands the browser URLs on
/// another origin (a storage backend's direct upload URLs) contributes it in `init`, and the web
/// shell reads every contribution at start. The HTTP plugin itself does nothing with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOrigin {
    /// A URL or origin (`https://s3.example.com`, `http://127.0.0.1:9000/bucket`).
    pub url: String,
}

impl ConnectOrigin {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into() }
    }

    /// The origin (`scheme://host[:port]`, lowercase) of an `http` or `https` URL, or `None`
    /// for anything else: only host and port characters pass, so a contribution cannot add
    /// another directive or source expression to the policy.
    pub fn origin(&self) -> Option<String> {
        let url = self.url.trim();
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
        if authority.is_empty() || authority.starts_with(':') || !authority.chars().all(ok) {
            return None;
        }
        Some(format!("{scheme}://{}", authority.to_ascii_lowercase()))
    }
}

/// Walks a router tree, joining path filters and recording the method of every handler.
fn collect_endpoints(router: &Router, prefix: &str, out: &mut Vec<(Method, String)>) {
    let mut path = prefix.to_owned();
    let mut methods = Vec::new();
    for filter in router.filters() {
        match filter.info() {
            FilterInfo::Path(p) => {
                let p = p.trim_matches('/');
                if !p.is_empty() {
                    if !path.is_empty() {
                        path.push('/');
                    }
                    path.push_str(p);
                }
            }
            FilterInfo::Method(m) => methods.push(m),
            _ => {}
        }
    }
    if router.goal.is_some() {
        // A handler without a method filter answers every method; GET stands for it.
        if methods.is_empty() {
            methods.push(Method::GET);
        }
        for m in methods {
            out.push((m, path.clone()));
        }
    }
    for child in router.routers() {
        collect_endpoints(child, &path, out);
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
