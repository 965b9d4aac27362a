//! Events the data plugin (`com.objectos.data`) publishes about the metadata snapshot: a reload
//! (`objectos serve --watch`, or a host calling `MetadataHandle::reload`) swapped in new objects
//! and metadata-kind items. Plugins that compile something from metadata (the permissions
//! model, flows, jobs) subscribe and rebuild from the new snapshot.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A new snapshot is in place (every object and kind item swapped together).
pub const RELOADED: &str = "metadata.reloaded";

/// Every name above (part of the data plugin's `emits`).
pub const ALL: &[&str] = &[RELOADED];

/// Payload of `metadata.reloaded`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetadataReloaded {
    /// The objects of the new snapshot.
    pub objects: usize,
    /// Items per metadata kind, by kind name.
    pub items: std::collections::BTreeMap<String, usize>,
    /// Schema steps the reload applied (additive: tables, columns, indexes).
    pub migration_steps: usize,
}
