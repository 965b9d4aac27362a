//! ObjectStack protocol types for ObjectOS: manifests, object metadata, queries, security, events and reports.
//!
//! Everything here is plain data with serde, validation and JSON Schema export; nothing does I/O.
#![doc = ""]
#![doc = include_str!("../README.md")]

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
pub mod settings;
pub mod yaml;

pub use audit::{AuditReport, Auditor, load_manifest, validate_manifest};
pub use context::{KernelContext, RuntimeMode};
pub use diag::{Diagnostic, Severity};
pub use event::{Event, EventMetadata, EventPriority};
pub use health::{
    BackendCheck, BackendState, HealthReport, HealthStatus, KernelHealth, PluginStartupResult,
    StartupReport,
};
pub use manifest::ObjectStackManifest;
pub use manifest::{PackageType, PluginDependency, PluginManifest};
pub use object::{
    Field, FieldType, Index, ObjectSchema, RuleKind, SYSTEM_FIELDS, SelectOption, Storage,
    ValidationRule, is_system_field, load_object,
};
pub use query::{
    Condition, Filter, FilterValue, Operator, QueryAst, QueryError, QueryErrorKind, SortNode,
    SortOrder, parse_list_params,
};
pub use security::{
    FieldPermission, ObjectOsPermission, ObjectPermission, PasswordPolicy, PermissionSet,
    RlsConfig, RlsPolicy, Role, SessionPolicy, SharingModel, SharingRule, check_role_hierarchy,
};
pub use yaml::{Format, Loaded};
