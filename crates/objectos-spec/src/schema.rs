//! JSON Schema export (schemars) for each top-level spec type.
//!
//! `cargo xtask` and the HTTP crate publish these; names match the spec's `json-schema/<ns>/<Name>.json`
//! files where the type has a spec counterpart.

use schemars::{JsonSchema, schema_for};

use crate::context::KernelContext;
use crate::event::Event;
use crate::health::{HealthReport, StartupReport};
use crate::manifest::ObjectStackManifest;
use crate::object::{Field, ObjectSchema, ValidationRule};
use crate::query::QueryAst;
use crate::security::{PermissionSet, RlsPolicy, Role, SharingRule};

fn schema<T: JsonSchema>() -> serde_json::Value {
    schema_for!(T).to_value()
}

/// `(name, schema)` for every exported type, in a stable order.
pub fn json_schemas() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("ObjectSchema", schema::<ObjectSchema>()),
        ("Field", schema::<Field>()),
        ("ValidationRule", schema::<ValidationRule>()),
        ("ObjectStackManifest", schema::<ObjectStackManifest>()),
        ("Event", schema::<Event>()),
        ("HealthReport", schema::<HealthReport>()),
        ("StartupReport", schema::<StartupReport>()),
        ("KernelContext", schema::<KernelContext>()),
        ("QueryAst", schema::<QueryAst>()),
        ("PermissionSet", schema::<PermissionSet>()),
        ("RlsPolicy", schema::<RlsPolicy>()),
        ("SharingRule", schema::<SharingRule>()),
        ("Role", schema::<Role>()),
    ]
}

/// The schema named `name` (as listed by [`json_schemas`]).
pub fn json_schema(name: &str) -> Option<serde_json::Value> {
    json_schemas()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s)
}
