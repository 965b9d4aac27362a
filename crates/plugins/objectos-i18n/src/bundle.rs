//! The two metadata kinds this plugin reads: the spec's TranslationBundle (`*.translation.yml`,
//! `{<locale>: TranslationData}`) and Fluent resources (`*.ftl`), each checked at load so a
//! broken file names its line and path and keeps the previous snapshot.
//!
//! A bundle's items are one per locale (the item name is the canonical tag), so several files
//! may translate one locale (the kind merges); the catalog overlays them in file order.

use std::collections::BTreeMap;

use fluent_bundle::FluentResource;
use objectos_data::{MetadataKind, ParseResult, TextParseResult};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use unic_langid::LanguageIdentifier;

/// The kind of `*.translation.yml` files (spec type `translation`).
pub const BUNDLE_KIND: &str = "translation";
/// The kind of `*.ftl` files.
pub const FLUENT_KIND: &str = "fluent";

/// A locale tag checked and in canonical spelling (`de-ch` becomes `de-CH`): a BCP 47 tag whose
/// language is two or three letters. The longer language subtags BCP 47 reserves are refused,
/// so a language name (`deutsch`, `german`) is caught instead of passing as a tag.
pub fn canonical_locale(tag: &str) -> Result<String, String> {
    let tag = tag.trim();
    let parsed: LanguageIdentifier = tag
        .parse()
        .map_err(|_| format!("`{tag}` is not a BCP 47 locale tag (such as `de` or `de-CH`)"))?;
    let language = parsed.language.as_str();
    if !(2..=3).contains(&language.len()) {
        return Err(format!(
            "`{tag}` is not a known locale: the language must be a two- or three-letter code (ISO 639), such as `de` or `fr-CA`"
        ));
    }
    Ok(parsed.to_string())
}

/// One field's translation (spec `FieldTranslation`, closed: an unknown key is an error).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FieldTranslation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    /// Option value to its translated label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// A validation rule's translated message.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTranslation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One object's translation (spec `ObjectTranslationData`). Views, actions, sections and tabs
/// are kept as written and served to clients; ObjectOS itself reads the rest.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectTranslation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plural_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldTranslation>,
    #[serde(default, rename = "_views", skip_serializing_if = "BTreeMap::is_empty")]
    pub views: BTreeMap<String, Value>,
    #[serde(
        default,
        rename = "_actions",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub actions: BTreeMap<String, Value>,
    #[serde(
        default,
        rename = "_sections",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub sections: BTreeMap<String, Value>,
    #[serde(default, rename = "_tabs", skip_serializing_if = "BTreeMap::is_empty")]
    pub tabs: BTreeMap<String, Value>,
    #[serde(
        default,
        rename = "_validations",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub validations: BTreeMap<String, RuleTranslation>,
}

/// An app's translation.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppTranslation {
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub navigation: BTreeMap<String, Value>,
}

/// One locale of a bundle (spec `TranslationData`, closed). The groups for consoles
/// (dashboards, pages, flows, settings, ...) are kept as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TranslationData {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub objects: BTreeMap<String, ObjectTranslation>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub apps: BTreeMap<String, AppTranslation>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub messages: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub global_actions: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dashboards: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub datasets: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pages: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flows: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata_forms: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings_common: Option<Value>,
}

/// Keys the spec retired, with where their content goes now (the spec's own guidance).
const RETIRED: &[(&str, &str)] = &[
    (
        "validationMessages",
        "`validationMessages` was removed in @objectstack/spec 17.0.0: translate a rule's message under `objects.<object>._validations.<rule>.message`",
    ),
    (
        "o",
        "`o` is the retired object-first dialect: use `objects.<object>`",
    ),
    ("app", "`app` is the retired dialect: use `apps.<app>`"),
    (
        "errors",
        "`errors` is retired: translate rule messages under `objects.<object>._validations.<rule>.message`",
    ),
];

/// Parses one `*.translation.yml` document: one item per locale, or every problem with its path.
pub fn parse_bundle(doc: &Value) -> ParseResult {
    let Some(map) = doc.as_object() else {
        return Err(vec![(
            String::new(),
            "a translation bundle maps locale tags to their translations (`de: {objects: ...}`)"
                .into(),
        )]);
    };
    let mut items = Vec::new();
    let mut problems = Vec::new();
    for (tag, data) in map {
        let locale = match canonical_locale(tag) {
            Ok(l) => l,
            Err(e) => {
                problems.push((tag.clone(), e));
                continue;
            }
        };
        if let Some(obj) = data.as_object() {
            let mut retired = false;
            for (key, message) in RETIRED {
                if obj.contains_key(*key) {
                    problems.push((format!("{tag}.{key}"), (*message).to_owned()));
                    retired = true;
                }
            }
            if retired {
                continue;
            }
        }
        match serde_path_to_error::deserialize::<_, TranslationData>(data.clone()) {
            Ok(parsed) => match serde_json::to_value(&parsed) {
                Ok(value) => items.push((locale, value)),
                Err(e) => problems.push((tag.clone(), e.to_string())),
            },
            Err(e) => {
                let inner = e.path().to_string();
                let path = if inner == "." {
                    tag.clone()
                } else {
                    format!("{tag}.{inner}")
                };
                problems.push((path, e.into_inner().to_string()));
            }
        }
    }
    if problems.is_empty() {
        Ok(items)
    } else {
        Err(problems)
    }
}

/// The locale of a Fluent file: the last dotted part of its name (`crm.de-CH.ftl`), else its
/// folder (`de/crm.ftl`).
pub fn fluent_locale(file: &str) -> Result<String, String> {
    let mut parts = file.rsplit(['/', '\\']);
    let name = parts.next().unwrap_or(file);
    let stem = name
        .strip_suffix(".ftl")
        .or_else(|| name.strip_suffix(".FTL"))
        .unwrap_or(name);
    if let Some((_, last)) = stem.rsplit_once('.')
        && let Ok(locale) = canonical_locale(last)
    {
        return Ok(locale);
    }
    if let Some(dir) = parts.next()
        && let Ok(locale) = canonical_locale(dir)
    {
        return Ok(locale);
    }
    Err(format!(
        "cannot tell the locale of `{name}`: name it `<name>.<locale>.ftl` (crm.de.ftl) or put it in a folder named after the locale (de/crm.ftl)"
    ))
}

/// Line and column (1-based) of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Parses one `*.ftl` file: one item `{locale, source}`, or every syntax error at its line.
pub fn parse_fluent(file: &str, text: &str) -> TextParseResult {
    let locale = fluent_locale(file).map_err(|e| vec![(0, 0, e)])?;
    match FluentResource::try_new(text.to_owned()) {
        Ok(_) => Ok(vec![(
            locale.clone(),
            json!({ "locale": locale, "source": text }),
        )]),
        Err((_, errors)) => Err(errors
            .into_iter()
            .map(|e| {
                let (line, column) = position(text, e.pos.start);
                (line, column, format!("Fluent syntax error: {}", e.kind))
            })
            .collect()),
    }
}

/// The kinds, to contribute in the plugin's `PluginSchema`.
pub fn metadata_kinds() -> Vec<MetadataKind> {
    vec![
        MetadataKind::new(BUNDLE_KIND, BUNDLE_KIND, parse_bundle).merging(),
        MetadataKind::text(FLUENT_KIND, "ftl", parse_fluent).merging(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_tags_are_checked_and_canonical() {
        assert_eq!(canonical_locale("de-ch").as_deref(), Ok("de-CH"));
        assert_eq!(canonical_locale("fr").as_deref(), Ok("fr"));
        assert!(canonical_locale("deutsch").is_err());
        assert!(canonical_locale("de_CH!").is_err());
        assert!(canonical_locale("").is_err());
    }

    #[test]
    fn fluent_locale_from_name_or_folder() {
        assert_eq!(fluent_locale("a/crm.de.ftl").as_deref(), Ok("de"));
        assert_eq!(fluent_locale("a/fr-CA/crm.ftl").as_deref(), Ok("fr-CA"));
        assert!(fluent_locale("a/crm.ftl").is_err());
    }

    #[test]
    fn bundle_problems_carry_their_path() {
        let doc = json!({ "de": { "objects": { "account": { "fields": { "name": { "lable": "x" } } } } } });
        let e = parse_bundle(&doc).err().unwrap_or_default();
        assert_eq!(e[0].0, "de.objects.account.fields.name.lable", "{e:?}");
        assert!(e[0].1.contains("lable"), "{e:?}");
        let e = parse_bundle(&json!({ "german": {} }))
            .err()
            .unwrap_or_default();
        assert_eq!(e[0].0, "german", "{e:?}");
        let e = parse_bundle(&json!({ "de": { "validationMessages": {} } }))
            .err()
            .unwrap_or_default();
        assert!(e[0].1.contains("_validations"), "{e:?}");
    }

    #[test]
    fn fluent_errors_are_located() {
        let e = parse_fluent("x.de.ftl", "hello = Hallo\nbroken = {\n")
            .err()
            .unwrap_or_default();
        assert!(e[0].0 >= 2, "{e:?}");
    }
}
