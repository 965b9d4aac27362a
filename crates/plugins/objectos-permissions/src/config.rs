//! The `permissions:` section of `objectos.yml` ([`CONFIG_SECTION`]): the operator's settings of
//! the permissions plugin, turned into the plugin's [`AuthzConfig`] by the server.

use objectos_spec::security::SharingModel;
use objectos_spec::settings::{ConfigSection, PluginSettings};
use schemars::{Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, de::Error as _};

use crate::authz::AuthzConfig;

/// The `permissions:` section of `objectos.yml`, typed as [`PermissionsSettings`].
pub const CONFIG_SECTION: ConfigSection =
    ConfigSection::of::<PermissionsSettings>("permissions", crate::plugin::PLUGIN_ID);

/// The `permissions:` section: the org-wide sharing default and the anonymous callers' set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct PermissionsSettings {
    /// The org-wide default of objects that declare no `sharingModel`: `private`,
    /// `public_read` (or `read`) or `public_read_write` (or `read_write`, the default).
    #[serde(deserialize_with = "default_sharing")]
    #[schemars(schema_with = "sharing_schema")]
    pub default_sharing: SharingModel,
    /// The permission set anonymous callers get (default `guest`). Naming one also checks
    /// anonymous callers in builds without an auth plugin, which otherwise let them through.
    #[serde(deserialize_with = "guest_set")]
    #[schemars(schema_with = "set_name_schema")]
    pub guest_set: Option<String>,
}

impl Default for PermissionsSettings {
    fn default() -> Self {
        Self {
            default_sharing: AuthzConfig::default().default_sharing,
            guest_set: None,
        }
    }
}

/// Every value the deserialisers accept is usable.
impl PluginSettings for PermissionsSettings {}

impl PermissionsSettings {
    /// The plugin's settings; `auth_present` says whether a plugin provides `auth` in this build.
    pub fn authz_config(&self, auth_present: bool) -> AuthzConfig {
        let defaults = AuthzConfig::default();
        AuthzConfig {
            default_sharing: self.default_sharing,
            // Without a plugin providing `auth` every request is anonymous; denying them all
            // would make the server unusable, so anonymous callers are let through unchecked
            // there, unless the operator names the set they should get instead.
            anonymous_unrestricted: !auth_present && self.guest_set.is_none(),
            guest_set: self.guest_set.clone().unwrap_or(defaults.guest_set),
        }
    }
}

/// The `defaultSharing` values an operator may choose, in the spelling `*.object.yml` uses.
pub fn parse_default_sharing(text: &str) -> Result<SharingModel, String> {
    match text.trim() {
        "private" => Ok(SharingModel::Private),
        "public_read" | "read" => Ok(SharingModel::PublicRead),
        "public_read_write" | "read_write" => Ok(SharingModel::PublicReadWrite),
        // It follows an object's master_detail parent, which most objects do not have; as a default
        // it would hide every record of them, so it is only accepted on the object itself.
        "controlled_by_parent" => Err(
            "`controlled_by_parent` only makes sense on an object with a master_detail field; set it as that object's sharingModel and choose private, public_read or public_read_write here"
                .to_owned(),
        ),
        other => Err(format!(
            "unknown sharing model `{other}`; expected private, public_read or public_read_write"
        )),
    }
}

/// A permission set name: what `*.permission.yml` accepts (`^[a-z_][a-z0-9_]*$`).
pub fn check_set_name(text: &str) -> Result<String, String> {
    let mut chars = text.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if first_ok
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && text.len() <= 255
    {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not a permission set name; expected lowercase letters, digits and underscores, starting with a letter or underscore"
        ))
    }
}

fn default_sharing<'de, D: Deserializer<'de>>(d: D) -> Result<SharingModel, D::Error> {
    let text = String::deserialize(d)?;
    parse_default_sharing(&text).map_err(D::Error::custom)
}

fn guest_set<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    check_set_name(&text).map(Some).map_err(D::Error::custom)
}

fn sharing_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "enum": ["private", "public_read", "public_read_write", "read", "read_write"],
        "default": "public_read_write",
        "description": "The org-wide default of objects that declare no sharingModel."
    })
}

fn set_name_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": "^[a-z_][a-z0-9_]*$",
        "maxLength": 255,
        "description": "The permission set anonymous callers get (default `guest`)."
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn section_is_checked_and_mapped() {
        let effective = (CONFIG_SECTION.check)(&json!({"defaultSharing": "read"})).unwrap();
        assert_eq!(
            effective,
            json!({"defaultSharing": "public_read", "guestSet": null})
        );
        let err =
            (CONFIG_SECTION.check)(&json!({"defaultSharing": "controlled_by_parent"})).unwrap_err();
        assert!(err[0].message.contains("only makes sense"), "{err:?}");
        let settings = PermissionsSettings {
            guest_set: Some("visitor".into()),
            ..PermissionsSettings::default()
        };
        let config = settings.authz_config(false);
        assert_eq!(config.guest_set, "visitor");
        assert!(!config.anonymous_unrestricted);
        assert!(
            PermissionsSettings::default()
                .authz_config(false)
                .anonymous_unrestricted
        );
    }
}
