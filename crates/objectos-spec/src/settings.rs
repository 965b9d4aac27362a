//! Typed plugin settings: the `objectos.yml` section a plugin reads, its JSON Schema, and secrets.
//!
//! A plugin crate exports a [`ConfigSection`] naming its top-level section and its settings type
//! (serde, camelCase, `deny_unknown_fields`, [`JsonSchema`]). The server collects the sections of
//! the plugins compiled in, checks each section of the file against its type (every problem with
//! its path inside the section, so the server can add file and line), prints the schema of the
//! whole file, and shows the effective settings with every [`Secret`] replaced by [`REDACTED`].
//! This is plain data and functions: nothing here does I/O.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a secret setting shows instead of its value (`--print-config`, logs, `Debug`).
pub const REDACTED: &str = "***";

/// Most problems collected from one section before giving up; a file this wrong needs fixing
/// from the top anyway, and each retry deserialises the section again.
const MAX_PROBLEMS: usize = 32;

/// A secret setting (a client secret, a password, a key). It deserialises from a plain string;
/// `Debug` and `Serialize` show [`REDACTED`], and its schema is marked `writeOnly`, so the
/// effective configuration a plugin's settings serialise to never contains it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl JsonSchema for Secret {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "writeOnly": true,
            "description": "A secret: never printed (`objectos serve --print-config` shows ***)."
        })
    }
}

/// One step of a path inside a section: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// Parses a dotted path such as `sso.providers[0].issuer` (empty text: the section itself).
pub fn parse_path(text: &str) -> Vec<PathSegment> {
    let mut out = Vec::new();
    for part in text.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(PathSegment::Key(key.to_owned()));
        }
        while let Some(open) = rest.strip_prefix('[') {
            let Some(close) = open.find(']') else { break };
            match open[..close].parse() {
                Ok(i) => out.push(PathSegment::Index(i)),
                // Not an index: keep the text as a key rather than losing it.
                Err(_) => out.push(PathSegment::Key(open[..close].to_owned())),
            }
            rest = &open[close + 1..];
        }
    }
    out
}

/// Writes `path` after `prefix` the way diagnostics show it: `auth.sso.providers[0].issuer`.
pub fn format_path(prefix: &str, path: &[PathSegment]) -> String {
    let mut out = prefix.to_owned();
    for seg in path {
        match seg {
            PathSegment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSegment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A problem of a section's settings: where (relative to the section) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsProblem {
    pub path: Vec<PathSegment>,
    pub message: String,
}

impl SettingsProblem {
    /// A problem at a dotted path (`lockout.lockMinutes`; empty: the section itself).
    pub fn at(path: &str, message: impl Into<String>) -> Self {
        Self {
            path: parse_path(path),
            message: message.into(),
        }
    }

    /// A `"path: message"` line as plugins' own checks write them; without `": "` the
    /// problem is the section's.
    pub fn from_line(line: &str) -> Self {
        match line.split_once(": ") {
            Some((path, message)) if !path.contains(' ') => Self::at(path, message),
            _ => Self::at("", line),
        }
    }
}

/// A plugin's settings type: what one section of `objectos.yml` deserialises into. Implement it
/// with `#[serde(rename_all = "camelCase", default, deny_unknown_fields)]` and
/// `#[derive(JsonSchema)]`; mark secrets with [`Secret`].
pub trait PluginSettings: Serialize + DeserializeOwned + JsonSchema + Default {
    /// Checks the types cannot express (ranges, combinations), every problem at once.
    fn problems(&self) -> Vec<SettingsProblem> {
        Vec::new()
    }
}

/// The `objectos.yml` section a plugin reads: its top-level key, the plugin (kernel
/// configuration id) that receives it, its schema and its check.
#[derive(Debug, Clone, Copy)]
pub struct ConfigSection {
    /// The top-level key in `objectos.yml` (`auth`, `audit`, `permissions`).
    pub name: &'static str,
    /// The plugin id whose kernel configuration the section becomes.
    pub plugin: &'static str,
    /// The section's JSON Schema, its definitions added to `generator`.
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    /// Checks a section's JSON (`null`: not given) and returns the effective settings, defaults
    /// filled in and secrets redacted; or every problem found.
    pub check: fn(&Value) -> Result<Value, Vec<SettingsProblem>>,
}

impl ConfigSection {
    /// The section `name` of plugin `plugin`, typed as `T`.
    pub const fn of<T: PluginSettings>(name: &'static str, plugin: &'static str) -> Self {
        Self {
            name,
            plugin,
            schema: schema_of::<T>,
            check: check_as::<T>,
        }
    }
}

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

fn check_as<T: PluginSettings>(value: &Value) -> Result<Value, Vec<SettingsProblem>> {
    let settings: T = deserialize_all(value)?;
    let problems = settings.problems();
    if !problems.is_empty() {
        return Err(problems);
    }
    serde_json::to_value(&settings).map_err(|e| vec![SettingsProblem::at("", e.to_string())])
}

/// Deserialises `value` (`null` counts as an empty mapping) into `T`, collecting every problem
/// with its path: after a problem at a key, the key is dropped (its default applies) and the rest
/// is tried again, so one run reports every typo and bad value of the section.
pub fn deserialize_all<T: DeserializeOwned>(value: &Value) -> Result<T, Vec<SettingsProblem>> {
    let mut value = match value {
        Value::Null => Value::Object(serde_json::Map::new()),
        other => other.clone(),
    };
    let mut problems: Vec<SettingsProblem> = Vec::new();
    while problems.len() < MAX_PROBLEMS {
        let error = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(settings) if problems.is_empty() => return Ok(settings),
            Ok(_) => break,
            Err(e) => e,
        };
        let path: Vec<PathSegment> = error
            .path()
            .iter()
            .filter_map(|seg| match seg {
                serde_path_to_error::Segment::Seq { index } => Some(PathSegment::Index(*index)),
                serde_path_to_error::Segment::Map { key } => Some(PathSegment::Key(key.clone())),
                serde_path_to_error::Segment::Enum { variant } => {
                    Some(PathSegment::Key(variant.clone()))
                }
                serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        let repeated = problems.iter().any(|p| p.path == path);
        if !repeated {
            problems.push(SettingsProblem {
                path: path.clone(),
                message: friendly(&error.inner().to_string()),
            });
        }
        // Only a key can be dropped without shifting the paths of later problems.
        if repeated
            || !matches!(path.last(), Some(PathSegment::Key(_)))
            || !remove(&mut value, &path)
        {
            break;
        }
    }
    Err(problems)
}

/// Removes the entry at `path` (ending in a key); false when there is none.
fn remove(value: &mut Value, path: &[PathSegment]) -> bool {
    let Some((PathSegment::Key(last), parents)) = path.split_last() else {
        return false;
    };
    let mut at = value;
    for seg in parents {
        let next = match (seg, at) {
            (PathSegment::Key(k), Value::Object(map)) => map.get_mut(k),
            (PathSegment::Index(i), Value::Array(items)) => items.get_mut(*i),
            _ => None,
        };
        match next {
            Some(v) => at = v,
            None => return false,
        }
    }
    match at {
        Value::Object(map) => map.shift_remove(last).is_some(),
        _ => false,
    }
}

/// serde's unknown-field message in the words the rest of the configuration uses, naming the
/// known keys; other messages are kept.
fn friendly(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    let Some((_, expected)) = rest.split_once("`, ") else {
        return message.to_owned();
    };
    if expected.starts_with("there are no fields") {
        return "unknown key; this section takes no keys".to_owned();
    }
    let known: Vec<&str> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|k| !k.is_empty())
        .collect();
    if known.is_empty() {
        message.to_owned()
    } else {
        format!("unknown key; known keys here: {}", known.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase", default, deny_unknown_fields)]
    struct Inner {
        limit: u32,
        token: Option<Secret>,
    }

    impl Default for Inner {
        fn default() -> Self {
            Self {
                limit: 5,
                token: None,
            }
        }
    }

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase", default, deny_unknown_fields)]
    struct Sample {
        name: String,
        inner: Inner,
        items: Vec<Inner>,
    }

    impl PluginSettings for Sample {
        fn problems(&self) -> Vec<SettingsProblem> {
            if self.inner.limit > 10 {
                vec![SettingsProblem::from_line("inner.limit: at most 10")]
            } else {
                Vec::new()
            }
        }
    }

    const SECTION: ConfigSection = ConfigSection::of::<Sample>("sample", "com.example.sample");

    #[test]
    fn every_problem_with_its_path() {
        let err = (SECTION.check)(&json!({
            "nme": "x",
            "inner": {"limit": "many", "extra": 1},
            "items": [{"limit": 1}, {"limt": 2}]
        }))
        .unwrap_err();
        let shown: Vec<String> = err
            .iter()
            .map(|p| format!("{}: {}", format_path("sample", &p.path), p.message))
            .collect();
        assert_eq!(shown.len(), 4, "{shown:?}");
        assert_eq!(
            shown[0],
            "sample.nme: unknown key; known keys here: name, inner, items"
        );
        assert!(
            shown[1].starts_with("sample.inner.limit: invalid type"),
            "{shown:?}"
        );
        assert_eq!(
            shown[2],
            "sample.inner.extra: unknown key; known keys here: limit, token"
        );
        assert!(
            shown[3].starts_with("sample.items[1].limt: unknown key"),
            "{shown:?}"
        );
        let err = (SECTION.check)(&json!({"inner": {"limit": 11}})).unwrap_err();
        assert_eq!(err, vec![SettingsProblem::at("inner.limit", "at most 10")]);
    }

    #[test]
    fn effective_settings_fill_defaults_and_redact_secrets() {
        let effective = (SECTION.check)(&json!({"inner": {"token": "hunter2"}})).unwrap();
        assert_eq!(
            effective,
            json!({"name": "", "inner": {"limit": 5, "token": "***"}, "items": []})
        );
        assert_eq!((SECTION.check)(&Value::Null).unwrap()["inner"]["limit"], 5);
        let mut generator = SchemaGenerator::default();
        let schema = (SECTION.schema)(&mut generator).to_value();
        assert!(schema.to_string().contains("Sample"), "{schema}");
        let defs = serde_json::to_string(generator.definitions()).unwrap();
        assert!(defs.contains("\"writeOnly\":true"), "{defs}");
        assert_eq!(format!("{:?}", Secret::new("x")), "Secret(***)");
    }

    #[test]
    fn paths_round_trip() {
        let p = parse_path("sso.providers[0].issuer");
        assert_eq!(format_path("auth", &p), "auth.sso.providers[0].issuer");
        assert!(parse_path("").is_empty());
        assert_eq!(
            SettingsProblem::from_line("lockout: must be at least 1").path,
            vec![PathSegment::Key("lockout".into())]
        );
    }
}
