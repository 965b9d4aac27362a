//! ObjectStack protocol types for ObjectOS: manifests, object metadata, queries, security, events and reports.
//!
//! Everything here is plain data with serde, validation and JSON Schema export; nothing does I/O.

pub mod audit;
pub mod context;
pub mod diag;
pub mod event;
pub mod health;
pub mod manifest;
pub mod object;
pub mod query;
pub mod schema;
pub mod security;
pub mod yaml;

pub use context::{KernelContext, RuntimeMode};
pub use diag::{Diagnostic, Severity};
pub use event::{Event, EventMetadata, EventPriority};
pub use health::{HealthReport, HealthStatus, KernelHealth, PluginStartupResult, StartupReport};
pub use manifest::{PackageType, PluginDependency, PluginManifest};
