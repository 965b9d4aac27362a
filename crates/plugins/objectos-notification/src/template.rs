//! Message templates: the `template` metadata kind (`*.template.yml`), one file per template
//! with a subject, a text body and an HTML body in handlebars per locale.
//!
//! Every part is compiled at load, so a syntax error refuses the file with its YAML path (the
//! engine adds the file and line), and so does a `defaultLocale` the file does not translate.
//! Rendering is strict (a variable the template names but the caller did not give is an error,
//! never an empty string) and HTML-escapes values in the HTML body; subject and text are plain
//! text and are not escaped.

use std::collections::BTreeMap;

use handlebars::Handlebars;
use objectos_data::{MetadataKind, MetadataSnapshot};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::NotificationError;

/// The kind's name (`/api/v1/meta/template`).
pub const KIND: &str = "template";

/// Files `*.template.yml|yaml|json`.
pub const SUFFIX: &str = "template";

/// One locale's parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocaleParts {
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

/// A template file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The locale used when the wanted one is not translated.
    pub default_locale: String,
    /// Parts per locale tag (`en`, `de`, `de-CH`).
    pub locales: BTreeMap<String, LocaleParts>,
}

/// The kind, contributed in the plugin's schema.
pub fn kind() -> MetadataKind {
    MetadataKind::typed::<TemplateDef>(KIND, SUFFIX, |t| t.name.clone(), validate)
}

fn compile_problem(path: String, source: &str) -> Option<(String, String)> {
    handlebars::Template::compile(source)
        .err()
        .map(|e| (path, format!("handlebars syntax error: {e}")))
}

/// Adds a problem at `name` when `name` is not letters, digits, `_`, `.` or `-` (the file
/// kinds of this plugin name their items alike).
pub(crate) fn check_name(out: &mut Vec<(String, String)>, kind: &str, name: &str) {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        out.push((
            "name".to_owned(),
            format!("`{name}` is not a {kind} name; expected letters, digits, `_`, `.` or `-`"),
        ));
    }
}

/// Every problem of a template file as `(yaml path, message)`.
pub fn validate(t: &TemplateDef) -> Vec<(String, String)> {
    let mut out = Vec::new();
    check_name(&mut out, "template", &t.name);
    if t.locales.is_empty() {
        out.push((
            "locales".to_owned(),
            "a template needs at least one locale".to_owned(),
        ));
    } else if !t.locales.contains_key(&t.default_locale) {
        out.push((
            "defaultLocale".to_owned(),
            format!(
                "locale `{}` is not among the template's locales ({})",
                t.default_locale,
                t.locales.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    for (locale, parts) in &t.locales {
        let at = |part: &str| format!("locales.{locale}.{part}");
        if parts.text.is_none() && parts.html.is_none() {
            out.push((
                format!("locales.{locale}"),
                "a locale needs a `text` or an `html` body".to_owned(),
            ));
        }
        out.extend(compile_problem(at("subject"), &parts.subject));
        if let Some(text) = &parts.text {
            out.extend(compile_problem(at("text"), text));
        }
        if let Some(html) = &parts.html {
            out.extend(compile_problem(at("html"), html));
        }
    }
    out
}

/// A rendered message.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    /// The locale actually used.
    pub locale: String,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Rendered bodies may carry secrets (a reset link).
        f.debug_struct("Rendered")
            .field("subject", &self.subject)
            .field("locale", &self.locale)
            .finish_non_exhaustive()
    }
}

/// Renders templates: strict, HTML-escaping for HTML bodies only.
#[derive(Debug)]
pub struct Renderer {
    html: Handlebars<'static>,
    plain: Handlebars<'static>,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

impl Renderer {
    pub fn new() -> Self {
        let mut html = Handlebars::new();
        html.set_strict_mode(true);
        let mut plain = Handlebars::new();
        plain.set_strict_mode(true);
        // A subject and a text body are not HTML: escaping would show `&amp;` to the reader.
        plain.register_escape_fn(handlebars::no_escape);
        Self { html, plain }
    }

    /// The locale of `t` to use for `wanted`: itself, then its language (`de-CH` to `de`),
    /// then `fallback`, then the template's default.
    pub fn pick_locale<'a>(
        t: &'a TemplateDef,
        wanted: Option<&str>,
        fallback: Option<&str>,
    ) -> &'a str {
        let mut candidates: Vec<String> = Vec::new();
        for w in [wanted, fallback].into_iter().flatten() {
            let w = w.trim();
            if w.is_empty() {
                continue;
            }
            candidates.push(w.to_owned());
            if let Some((lang, _)) = w.split_once(['-', '_']) {
                candidates.push(lang.to_owned());
            }
        }
        for c in candidates {
            if let Some((k, _)) = t.locales.iter().find(|(k, _)| k.eq_ignore_ascii_case(&c)) {
                return k;
            }
        }
        &t.default_locale
    }

    fn one(
        hb: &Handlebars<'static>,
        name: &str,
        part: &str,
        source: &str,
        vars: &Value,
    ) -> Result<String, NotificationError> {
        hb.render_template(source, vars)
            .map_err(|e| NotificationError::Render {
                name: name.to_owned(),
                message: format!("{part}: {}", e.reason()),
            })
    }

    /// Renders `t` for `wanted` (see [`Renderer::pick_locale`]) with `vars`.
    pub fn render(
        &self,
        t: &TemplateDef,
        wanted: Option<&str>,
        fallback: Option<&str>,
        vars: &Value,
    ) -> Result<Rendered, NotificationError> {
        let locale = Self::pick_locale(t, wanted, fallback);
        let parts = t
            .locales
            .get(locale)
            .ok_or_else(|| NotificationError::TemplateNotFound(format!("{}@{locale}", t.name)))?;
        let subject = Self::one(&self.plain, &t.name, "subject", &parts.subject, vars)?;
        // A header cannot hold a line break; a variable must not be able to add headers.
        let subject = subject.replace(['\r', '\n'], " ");
        let text = parts
            .text
            .as_deref()
            .map(|s| Self::one(&self.plain, &t.name, "text", s, vars))
            .transpose()?;
        let html = parts
            .html
            .as_deref()
            .map(|s| Self::one(&self.html, &t.name, "html", s, vars))
            .transpose()?;
        Ok(Rendered {
            subject,
            text,
            html,
            locale: locale.to_owned(),
        })
    }

    /// Renders the template `name` of `snapshot`.
    pub fn render_named(
        &self,
        snapshot: &MetadataSnapshot,
        name: &str,
        wanted: Option<&str>,
        fallback: Option<&str>,
        vars: &Value,
    ) -> Result<Rendered, NotificationError> {
        let item = snapshot
            .item(KIND, name)
            .ok_or_else(|| NotificationError::TemplateNotFound(name.to_owned()))?;
        let t: TemplateDef = serde_json::from_value(item.value.clone())
            .map_err(|_| NotificationError::TemplateNotFound(name.to_owned()))?;
        self.render(&t, wanted, fallback, vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(yaml_like: Value) -> TemplateDef {
        serde_json::from_value(yaml_like).unwrap()
    }

    fn welcome() -> TemplateDef {
        def(json!({
            "name": "welcome", "defaultLocale": "en",
            "locales": {
                "en": { "subject": "Welcome {{name}}", "text": "Hi {{name}} & co", "html": "<p>Hi {{name}}</p>" },
                "de": { "subject": "Willkommen {{name}}", "text": "Hallo {{name}}" }
            }
        }))
    }

    #[test]
    fn renders_per_locale_with_fallback_and_escaping() {
        let r = Renderer::new();
        let t = welcome();
        let vars = json!({ "name": "<Ann & Bob>" });
        let en = r.render(&t, None, None, &vars).unwrap();
        assert_eq!(en.subject, "Welcome <Ann & Bob>");
        assert_eq!(en.text.as_deref(), Some("Hi <Ann & Bob> & co"));
        assert_eq!(en.html.as_deref(), Some("<p>Hi &lt;Ann &amp; Bob&gt;</p>"));
        let de = r.render(&t, Some("de-CH"), None, &vars).unwrap();
        assert_eq!(de.locale, "de");
        assert_eq!(de.subject, "Willkommen <Ann & Bob>");
        assert_eq!(de.html, None);
        let fr = r.render(&t, Some("fr"), Some("de"), &vars).unwrap();
        assert_eq!(fr.locale, "de");
    }

    #[test]
    fn a_missing_variable_is_an_error() {
        let r = Renderer::new();
        let e = r.render(&welcome(), None, None, &json!({})).unwrap_err();
        assert_eq!(e.code(), "TEMPLATE_RENDER_FAILED");
        assert!(e.to_string().contains("subject"), "{e}");
    }

    #[test]
    fn a_subject_cannot_add_headers() {
        let r = Renderer::new();
        let out = r
            .render(
                &welcome(),
                None,
                None,
                &json!({ "name": "x\r\nBcc: evil@example.com" }),
            )
            .unwrap();
        assert!(!out.subject.contains('\n'), "{}", out.subject);
    }

    #[test]
    fn syntax_errors_and_missing_locales_are_located() {
        let t = def(json!({
            "name": "bad", "defaultLocale": "fr",
            "locales": { "en": { "subject": "Hi {{#if x}}", "text": "ok" }, "de": { "subject": "x" } }
        }));
        let problems = validate(&t);
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert!(paths.contains(&"defaultLocale"), "{problems:?}");
        assert!(paths.contains(&"locales.en.subject"), "{problems:?}");
        assert!(paths.contains(&"locales.de"), "{problems:?}");
    }
}
