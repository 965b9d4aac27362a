//! What the {{title}} plugin owns in the data engine, declared as data (spec 6.5 and 6.6): the
//! `{{snake}}_item` object, shipped in the crate, and the `{{snake}}` metadata kind, read from the
//! operator's `*.{{snake}}.yml` files. The plugin contributes [`schema`] at `init`; the data
//! plugin creates and migrates the object and loads the files with the other metadata, so the
//! plugin issues no DDL and never walks the metadata folders itself.

use objectos_data::{MetadataKind, PluginSchema};
use serde::{Deserialize, Serialize};

/// The object the plugin ships: an ordinary object (REST at `/api/v1/data/{{snake}}_item`,
/// permissions, audit, OpenAPI), so its records are the users' to see.
pub const OBJECT: &str = "{{snake}}_item";

/// The metadata kind: its name (`/api/v1/meta/{{snake}}`) and file suffix (`*.{{snake}}.yml`).
pub const KIND: &str = "{{snake}}";

/// One `*.{{snake}}.yml` file. Unknown keys are errors, located at their line like every other
/// metadata problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct {{Pascal}}Definition {
    /// Unique among the kind's files.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn name_of(definition: &{{Pascal}}Definition) -> String {
    definition.name.clone()
}

/// The checks serde cannot make, each as `(yaml path, message)`.
fn validate(definition: &{{Pascal}}Definition) -> Vec<(String, String)> {
    if objectos_spec::object::is_valid_name(&definition.name) {
        Vec::new()
    } else {
        vec![(
            "name".to_owned(),
            format!(
                "`{}` is not a valid name; expected lowercase letters, digits and `_`, starting with a letter",
                definition.name
            ),
        )]
    }
}

/// Everything the plugin owns, contributed at `init` (`cx.contribute(schema())`).
pub fn schema() -> PluginSchema {
    PluginSchema::new()
        .object(
            "objects/{{snake}}_item.object.yml",
            include_str!("../objects/{{snake}}_item.object.yml"),
        )
        // The item type, `{{Pascal}}Definition`, is inferred from `name_of` and `validate`.
        .kind(MetadataKind::typed(KIND, KIND, name_of, validate))
}
