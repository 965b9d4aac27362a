//! ObjectOS jobs plugin (`com.objectos.jobs`, services `job` and `queue`): background jobs
//! stored in the application database, with leases, retries with backoff, timeouts,
//! cancellation, priorities, per-queue concurrency, idempotency keys, dead letters with
//! replay, transactional enqueue, and `*.job.yml` schedules run once per cluster.
#![doc = include_str!("../README.md")]

pub mod admin;
pub mod amqp;
pub mod config;
pub mod core;
pub mod delivery;
pub mod error;
pub mod http;
pub mod metrics;
pub mod plugin;
pub mod routes;
pub mod schedule;
pub mod schema;
pub mod service;
pub mod table;

pub use admin::JobsAdmin;
pub use config::{Backend, CONFIG_SECTION, JobsSettings, QueueSettings, RetrySettings};
pub use error::{JobsError, Result};
pub use http::{HttpHandler, HttpSettings};
pub use plugin::{JobsPlugin, MANIFEST, PLUGIN_ID};
pub use schedule::{JobDefinition, KIND};
pub use schema::{OBJECT, schema};
pub use service::JobsService;
