//! The compiled translations of one metadata snapshot: per locale, the bundles merged in file
//! order and one Fluent bundle of every `*.ftl` file, with the lookups of the `I18n` contract.
//!
//! A catalog is immutable; a reload compiles a new one and swaps it in whole.

use std::collections::BTreeMap;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use objectos_data::MetadataSnapshot;
use objectos_kernel::contracts::{I18nArg, LabelPart};
use serde_json::{Map, Value};
use unic_langid::LanguageIdentifier;

use crate::bundle::{BUNDLE_KIND, FLUENT_KIND};
use crate::error::I18nError;

/// One locale's translations.
pub(crate) struct LocaleData {
    /// The merged `TranslationData` (JSON, as the spec spells it).
    pub(crate) data: Value,
    pub(crate) fluent: Option<FluentBundle<FluentResource>>,
    /// The ids of the Fluent messages, in file order.
    pub(crate) fluent_ids: Vec<String>,
}

impl std::fmt::Debug for LocaleData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocaleData")
            .field("fluent", &self.fluent.is_some())
            .finish_non_exhaustive()
    }
}

/// Every locale's translations.
#[derive(Debug, Default)]
pub struct Catalog {
    pub(crate) locales: BTreeMap<String, LocaleData>,
    /// Changes with any translation file.
    pub(crate) revision: String,
}

/// Overlays `top` on `base`: objects merge key by key, anything else is replaced.
fn merge(base: &mut Value, top: &Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            for (k, v) in t {
                match b.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, t) => *b = t.clone(),
    }
}

/// FNV-1a, for a revision tag that is the same on every node for the same files.
fn fnv(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl Catalog {
    /// Compiles the translation items of `snapshot`. Two Fluent files defining one message id
    /// for a locale is an error naming both.
    pub fn compile(snapshot: &MetadataSnapshot) -> Result<Self, I18nError> {
        let mut locales: BTreeMap<String, LocaleData> = BTreeMap::new();
        let mut tags = Vec::new();
        for item in snapshot.items(BUNDLE_KIND) {
            tags.push(item.etag.clone());
            let entry = locales
                .entry(item.name.clone())
                .or_insert_with(|| LocaleData {
                    data: Value::Object(Map::new()),
                    fluent: None,
                    fluent_ids: Vec::new(),
                });
            merge(&mut entry.data, &item.value);
        }
        let mut problems = Vec::new();
        for item in snapshot.items(FLUENT_KIND) {
            tags.push(item.etag.clone());
            let source = item
                .value
                .get("source")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let Ok(resource) = FluentResource::try_new(source) else {
                // Checked at load; a snapshot only holds files that parsed.
                problems.push(format!("{}: not valid Fluent", item.file));
                continue;
            };
            let entry = locales
                .entry(item.name.clone())
                .or_insert_with(|| LocaleData {
                    data: Value::Object(Map::new()),
                    fluent: None,
                    fluent_ids: Vec::new(),
                });
            for e in resource.entries() {
                if let fluent_syntax::ast::Entry::Message(m) = e {
                    entry.fluent_ids.push(m.id.name.to_owned());
                }
            }
            let bundle = entry.fluent.get_or_insert_with(|| {
                let lang: LanguageIdentifier = item.name.parse().unwrap_or_default();
                let mut b = FluentBundle::new_concurrent(vec![lang]);
                // Isolation marks (U+2068/U+2069) would end up in JSON answers and mail subjects.
                b.set_use_isolating(false);
                b
            });
            if let Err(errors) = bundle.add_resource(resource) {
                for e in errors {
                    problems.push(format!(
                        "{}: {e} (a message id is defined twice for locale {})",
                        item.file, item.name
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(I18nError::Compile(problems.join("; ")));
        }
        Ok(Self {
            locales,
            revision: fnv(&tags.join(",")),
        })
    }

    /// The locales that have any translation.
    pub fn translated_locales(&self) -> impl Iterator<Item = &str> {
        self.locales.keys().map(String::as_str)
    }

    /// One locale's merged bundle data (`{}` when it has none).
    pub fn data(&self, locale: &str) -> Option<&Value> {
        self.locales.get(locale).map(|l| &l.data)
    }

    fn first<'a, T>(
        &'a self,
        chain: &[String],
        f: impl Fn(&'a LocaleData) -> Option<T>,
    ) -> Option<T> {
        chain.iter().filter_map(|l| self.locales.get(l)).find_map(f)
    }

    fn object<'a>(data: &'a LocaleData, object: &str) -> Option<&'a Value> {
        data.data.get("objects")?.get(object)
    }

    fn text(v: Option<&Value>) -> Option<String> {
        v.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    pub fn object_label(&self, chain: &[String], object: &str, part: LabelPart) -> Option<String> {
        let key = match part {
            LabelPart::Label => "label",
            LabelPart::PluralLabel => "pluralLabel",
            LabelPart::Description => "description",
            LabelPart::Help | LabelPart::Placeholder => return None,
        };
        self.first(chain, |d| Self::text(Self::object(d, object)?.get(key)))
    }

    pub fn field_label(
        &self,
        chain: &[String],
        object: &str,
        field: &str,
        part: LabelPart,
    ) -> Option<String> {
        let key = match part {
            LabelPart::Label => "label",
            LabelPart::Help => "help",
            LabelPart::Placeholder => "placeholder",
            LabelPart::PluralLabel | LabelPart::Description => return None,
        };
        self.first(chain, |d| {
            Self::text(Self::object(d, object)?.get("fields")?.get(field)?.get(key))
        })
    }

    pub fn option_label(
        &self,
        chain: &[String],
        object: &str,
        field: &str,
        value: &str,
    ) -> Option<String> {
        self.first(chain, |d| {
            Self::text(
                Self::object(d, object)?
                    .get("fields")?
                    .get(field)?
                    .get("options")?
                    .get(value),
            )
        })
    }

    pub fn validation_message(&self, chain: &[String], object: &str, rule: &str) -> Option<String> {
        self.first(chain, |d| {
            Self::text(
                Self::object(d, object)?
                    .get("_validations")?
                    .get(rule)?
                    .get("message"),
            )
        })
    }

    /// A message: the first locale of the chain with a Fluent message of that id (rendered with
    /// `args`) or a bundle message (taken as written).
    pub fn translate(
        &self,
        chain: &[String],
        key: &str,
        args: &[(&str, I18nArg)],
    ) -> Option<String> {
        self.first(chain, |d| {
            if let Some(bundle) = &d.fluent
                && let Some(pattern) = bundle.get_message(key).and_then(|m| m.value())
            {
                let mut fargs = FluentArgs::new();
                for (name, value) in args {
                    match value {
                        I18nArg::Text(t) => fargs.set(*name, FluentValue::from(t.clone())),
                        I18nArg::Number(n) => fargs.set(*name, FluentValue::from(*n)),
                    }
                }
                let mut errors = Vec::new();
                let text = bundle.format_pattern(pattern, Some(&fargs), &mut errors);
                if errors.is_empty() {
                    return Some(text.into_owned());
                }
                tracing::warn!(message = key, errors = ?errors, "A Fluent message could not be rendered with the given arguments.");
                return None;
            }
            Self::text(d.data.get("messages")?.get(key))
        })
    }

    /// The Fluent messages of a locale that need no argument, rendered (for `/translations`).
    pub fn plain_fluent_messages(&self, locale: &str) -> Map<String, Value> {
        let mut out = Map::new();
        let Some(bundle) = self.locales.get(locale).and_then(|l| l.fluent.as_ref()) else {
            return out;
        };
        for id in self.fluent_ids(locale) {
            if let Some(pattern) = bundle.get_message(&id).and_then(|m| m.value()) {
                let mut errors = Vec::new();
                let text = bundle.format_pattern(pattern, None, &mut errors);
                if errors.is_empty() {
                    out.insert(id, Value::String(text.into_owned()));
                }
            }
        }
        out
    }

    /// The message ids the Fluent files of a locale define.
    fn fluent_ids(&self, locale: &str) -> Vec<String> {
        self.locales
            .get(locale)
            .map(|l| l.fluent_ids.clone())
            .unwrap_or_default()
    }
}
