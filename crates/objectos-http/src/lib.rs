//! The ObjectOS HTTP server plugin (salvo): discovery, `/api/v1/data`, `/api/v1/meta`, UI views,
//! OpenAPI, health and readiness, plus the routes other plugins contribute.
#![doc = include_str!("../README.md")]

pub mod body;
pub mod config;
pub mod contribution;
pub mod error;
pub mod gate;
pub mod hoops;
pub mod localize;
pub mod plugin;
pub mod public;
pub mod routes;
pub mod schema_view;
pub mod server;
pub mod state;

pub use config::HttpConfig;
pub use contribution::{
    ConnectOrigin, HomeRedirect, HoopContribution, RouteContribution, RouteOperation, RouteSecurity,
};
pub use error::{HttpError, Result};
pub use hoops::RequestContext;
pub use plugin::{HttpControl, HttpPlugin, MANIFEST};
pub use public::{PublicRoute, is_public_route};
pub use server::{RunningServer, build_service, serve};
pub use state::{ApiState, ApiStateBuilder, HealthProbe, ServiceEntry};
