//! The `console:` section of `objectos.yml` ([`CONFIG_SECTION`]): whether the binary serves the
//! admin console, and the name it shows.

use objectos_spec::settings::{ConfigSection, PluginSettings, SettingsProblem};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `console:` section of `objectos.yml`, typed as [`ConsoleConfig`].
pub const CONFIG_SECTION: ConfigSection =
    ConfigSection::of::<ConsoleConfig>("console", crate::PLUGIN_ID);

/// Longest title, in characters: it has to fit the console's header.
pub const MAX_TITLE: usize = 80;

/// Settings, deserialised from the kernel configuration of `com.objectos.webshell` (camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve the console at `/console` and redirect `/` there (default true). Off, `/` shows the
    /// HTTP plugin's links page and `/console` is not found, as in a build without the console.
    pub enabled: bool,
    /// The name in the console's header and the browser tab (default `ObjectOS`), 1 to 80
    /// characters.
    pub title: String,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            title: "ObjectOS".to_owned(),
        }
    }
}

impl PluginSettings for ConsoleConfig {
    fn problems(&self) -> Vec<SettingsProblem> {
        let n = self.title.trim().chars().count();
        if n == 0 || self.title.chars().count() > MAX_TITLE {
            return vec![SettingsProblem::at(
                "title",
                format!("must be 1 to {MAX_TITLE} characters"),
            )];
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_a_bad_title_is_named() {
        assert!(ConsoleConfig::default().problems().is_empty());
        let c: ConsoleConfig = serde_json::from_value(serde_json::json!({"title": "  "})).unwrap();
        assert!(c.enabled);
        assert_eq!(
            c.problems(),
            vec![SettingsProblem::at("title", "must be 1 to 80 characters")]
        );
        let long = ConsoleConfig {
            title: "x".repeat(81),
            ..ConsoleConfig::default()
        };
        assert_eq!(long.problems().len(), 1);
        assert!(
            serde_json::from_value::<ConsoleConfig>(serde_json::json!({"titel": "x"})).is_err()
        );
    }
}
