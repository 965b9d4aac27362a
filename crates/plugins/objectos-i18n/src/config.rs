//! The `i18n:` section of `objectos.yml` ([`CONFIG_SECTION`]), the spec's `TranslationConfig`:
//! the default locale, the locales served and the fallback.

use objectos_spec::settings::{ConfigSection, PluginSettings, SettingsProblem};
use serde::{Deserialize, Serialize};

use crate::bundle::canonical_locale;

/// The `i18n:` section of `objectos.yml`, typed as [`I18nSettings`].
pub const CONFIG_SECTION: ConfigSection =
    ConfigSection::of::<I18nSettings>("i18n", crate::plugin::PLUGIN_ID);

/// The `i18n:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct I18nSettings {
    /// The locale of requests that ask for none the server serves (default `en`).
    pub default_locale: String,
    /// The locales served (BCP 47 tags). Empty: the default locale and every locale a
    /// translation file provides.
    pub supported_locales: Vec<String>,
    /// Tried after the request's own locales and before the default.
    pub fallback_locale: Option<String>,
}

impl Default for I18nSettings {
    fn default() -> Self {
        Self {
            default_locale: "en".into(),
            supported_locales: Vec::new(),
            fallback_locale: None,
        }
    }
}

impl PluginSettings for I18nSettings {
    fn problems(&self) -> Vec<SettingsProblem> {
        let mut out = Vec::new();
        if let Err(e) = canonical_locale(&self.default_locale) {
            out.push(SettingsProblem::at("defaultLocale", e));
        }
        for (i, l) in self.supported_locales.iter().enumerate() {
            if let Err(e) = canonical_locale(l) {
                out.push(SettingsProblem::at(&format!("supportedLocales[{i}]"), e));
            }
        }
        if let Some(f) = &self.fallback_locale
            && let Err(e) = canonical_locale(f)
        {
            out.push(SettingsProblem::at("fallbackLocale", e));
        }
        out
    }
}

impl I18nSettings {
    /// The settings with every tag in canonical spelling; the first bad tag is the error.
    pub fn canonical(&self) -> Result<Self, String> {
        Ok(Self {
            default_locale: canonical_locale(&self.default_locale)?,
            supported_locales: self
                .supported_locales
                .iter()
                .map(|l| canonical_locale(l))
                .collect::<Result<_, _>>()?,
            fallback_locale: self
                .fallback_locale
                .as_deref()
                .map(canonical_locale)
                .transpose()?,
        })
    }
}
