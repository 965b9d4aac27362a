//! The settings of the {{title}} plugin (spec 7): the `{{camel}}:` section of `objectos.yml`
//! ([`crate::CONFIG_SECTION`]), checked by the server against [`{{Pascal}}Settings`] (every
//! problem reported with file, line and YAML path) and handed to the plugin at `init`.

use objectos_spec::settings::{PluginSettings, SettingsProblem};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The largest `maxItems` accepted.
pub const MAX_ITEMS_LIMIT: u32 = 1000;

/// The settings (camelCase keys). `default` fills what a section leaves out, and
/// `deny_unknown_fields` turns a typo into an error instead of a silently ignored key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct {{Pascal}}Settings {
    /// Most items `GET /api/v1/{{kebab}}/items` returns (1 to 1000).
    pub max_items: u32,
}

impl Default for {{Pascal}}Settings {
    fn default() -> Self {
        Self { max_items: 100 }
    }
}

impl PluginSettings for {{Pascal}}Settings {
    /// What the types cannot say: the range of `maxItems`.
    fn problems(&self) -> Vec<SettingsProblem> {
        if (1..=MAX_ITEMS_LIMIT).contains(&self.max_items) {
            Vec::new()
        } else {
            vec![SettingsProblem::at(
                "maxItems",
                format!(
                    "{} is out of range; expected 1 to {MAX_ITEMS_LIMIT}",
                    self.max_items
                ),
            )]
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::CONFIG_SECTION;
    use serde_json::json;

    #[test]
    fn the_section_fills_defaults_and_reports_every_problem() {
        let effective = (CONFIG_SECTION.check)(&serde_json::Value::Null).unwrap();
        assert_eq!(effective, json!({ "maxItems": 100 }));
        let problems = (CONFIG_SECTION.check)(&json!({ "maxItems": 0 })).unwrap_err();
        assert!(problems[0].message.contains("out of range"), "{problems:?}");
        let unknown = (CONFIG_SECTION.check)(&json!({ "maxItem": 5 })).unwrap_err();
        assert!(unknown[0].message.contains("maxItem"), "{unknown:?}");
    }
}
