//! ObjectOS metrics plugin: the Prometheus recorder behind the `metrics` facade, scraped at
//! `/metrics` and `/api/v1/metrics/prometheus` with a bearer token or from allowed addresses,
//! and the built-in HTTP, data, outbox and plugin-health metrics.
#![doc = include_str!("../README.md")]

pub mod collect;
pub mod config;
pub mod error;
pub mod http;
pub mod names;
pub mod otel;
pub mod plugin;
pub mod recorder;

pub use config::{Access, CONFIG_SECTION, MetricsConfig};
pub use error::{MetricsError, Result};
pub use http::{MetricsHoop, Scrape};
pub use otel::{Tracing, TracingConfig};
pub use plugin::{MANIFEST, MetricsPlugin, MetricsService};

/// The plugin id.
pub const PLUGIN_ID: &str = "com.objectos.metrics";
