//! Metadata kinds plugins contribute: a file pattern (`*.<suffix>.yml|yaml|json`), a parser and
//! validator with located errors, and the loaded items, which live in the same snapshot as the
//! objects, so they load, validate and swap together (a broken file of any kind keeps the whole
//! old snapshot).
//!
//! A plugin declares its kinds in its [`crate::PluginSchema`] (contributed at `init`); the
//! engine loads every matching file of the metadata folders with the objects. The plugin reads its
//! items from [`crate::MetadataSnapshot::items`]; `/api/v1/meta/<kind>` serves them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use objectos_spec::yaml::{self, Format};
use objectos_spec::{Diagnostic, Severity};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{DataError, Result};

/// What a kind's parser makes of one document: its items as `(name, item)`, or every problem
/// as `(yaml path, message)`.
pub type ParseResult = std::result::Result<Vec<(String, Value)>, Vec<(String, String)>>;

type Parser = Arc<dyn Fn(&Value) -> ParseResult + Send + Sync>;

/// What a text kind's parser makes of one file: its items as `(name, item)`, or every problem
/// as `(line, column, message)` (1-based; 0 when the problem has no position).
pub type TextParseResult = std::result::Result<Vec<(String, Value)>, Vec<(usize, usize, String)>>;

type TextParser = Arc<dyn Fn(&str, &str) -> TextParseResult + Send + Sync>;

/// How a kind reads its files: as a YAML/JSON document, or as text in its own syntax.
#[derive(Clone)]
enum Reader {
    Document(Parser),
    Text(TextParser),
}

/// A metadata kind: the files it reads and how.
#[derive(Clone)]
pub struct MetadataKind {
    name: String,
    suffix: String,
    plugin: String,
    /// Items of one name may come from several files (the plugin merges them).
    merging: bool,
    reader: Reader,
}

impl fmt::Debug for MetadataKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataKind")
            .field("name", &self.name)
            .field("suffix", &self.suffix)
            .field("plugin", &self.plugin)
            .finish()
    }
}

impl PartialEq for MetadataKind {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.suffix == other.suffix && self.plugin == other.plugin
    }
}

impl Eq for MetadataKind {}

impl MetadataKind {
    /// A kind named `name` (its `/api/v1/meta/<name>` type) reading `*.<suffix>.yml|yaml|json`,
    /// with a parser over the document as JSON.
    pub fn new(
        name: impl Into<String>,
        suffix: impl Into<String>,
        parse: impl Fn(&Value) -> ParseResult + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            suffix: suffix.into(),
            plugin: String::new(),
            merging: false,
            reader: Reader::Document(Arc::new(parse)),
        }
    }

    /// A kind named `name` reading text files `*.<extension>` in a syntax of its own (Fluent's
    /// `*.ftl`), not YAML: `parse` gets the file's path and text, and locates each problem by
    /// line and column.
    pub fn text(
        name: impl Into<String>,
        extension: impl Into<String>,
        parse: impl Fn(&str, &str) -> TextParseResult + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            suffix: extension.into(),
            plugin: String::new(),
            merging: false,
            reader: Reader::Text(Arc::new(parse)),
        }
    }

    /// A kind whose documents are one `T` each: deserialised (an error names the key that does
    /// not fit), checked by `validate` (problems as `(yaml path, message)`), named by `name_of`,
    /// and kept as `T`'s JSON, which is what plugins and `/api/v1/meta` read back.
    pub fn typed<T>(
        name: impl Into<String>,
        suffix: impl Into<String>,
        name_of: fn(&T) -> String,
        validate: fn(&T) -> Vec<(String, String)>,
    ) -> Self
    where
        T: DeserializeOwned + Serialize + 'static,
    {
        Self::new(name, suffix, move |doc| {
            let item: T = serde_path_to_error::deserialize(doc.clone()).map_err(|e| {
                let path = e.path().to_string();
                let path = if path == "." { String::new() } else { path };
                vec![(path, e.into_inner().to_string())]
            })?;
            let problems = validate(&item);
            if !problems.is_empty() {
                return Err(problems);
            }
            let value =
                serde_json::to_value(&item).map_err(|e| vec![(String::new(), e.to_string())])?;
            Ok(vec![(name_of(&item), value)])
        })
    }

    /// Lets several files define items of one name, for kinds whose plugin merges them (a
    /// permission set spread over one file per object); otherwise a second item of a name is an
    /// error naming both files.
    pub fn merging(mut self) -> Self {
        self.merging = true;
        self
    }

    /// The same kind, owned by `plugin` (the data plugin sets it from the contribution).
    pub fn owned_by(mut self, plugin: impl Into<String>) -> Self {
        self.plugin = plugin.into();
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn suffix(&self) -> &str {
        &self.suffix
    }

    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// Whether the file at `path` is of this kind (only the file name counts).
    pub fn matches(&self, path: &str) -> bool {
        let name = path
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(path)
            .to_ascii_lowercase();
        if matches!(self.reader, Reader::Text(_)) {
            // `x.ftl`: any non-hidden stem.
            return name
                .strip_suffix(&self.suffix)
                .and_then(|stem| stem.strip_suffix('.'))
                .is_some_and(|stem| !stem.is_empty() && !stem.starts_with('.'));
        }
        let Some(stem) = name
            .strip_suffix(".yml")
            .or_else(|| name.strip_suffix(".yaml"))
            .or_else(|| name.strip_suffix(".json"))
        else {
            return false;
        };
        stem.len() > self.suffix.len() + 1
            && stem.ends_with(&self.suffix)
            && stem[..stem.len() - self.suffix.len()].ends_with('.')
    }

    /// Parses one file: its items, or every problem located at its line.
    pub fn parse_file(
        &self,
        file: &str,
        text: &str,
    ) -> std::result::Result<Vec<MetaItem>, Vec<Diagnostic>> {
        let parse = match &self.reader {
            Reader::Document(parse) => parse,
            Reader::Text(parse) => {
                return match parse(file, text) {
                    Ok(items) => Ok(items
                        .into_iter()
                        .map(|(name, value)| MetaItem::new(&self.name, name, file, value))
                        .collect()),
                    Err(problems) => Err(problems
                        .into_iter()
                        .map(|(line, column, message)| Diagnostic {
                            file: file.to_owned(),
                            line,
                            column,
                            path: String::new(),
                            severity: Severity::Error,
                            message: format!("{} ({}): {message}", self.name, self.plugin),
                        })
                        .collect()),
                };
            }
        };
        let parsed = yaml::parse(file, text, Format::from_path(file));
        let errors: Vec<Diagnostic> = parsed
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        let Some(root) = parsed.root.filter(|_| errors.is_empty()) else {
            return Err(errors);
        };
        match parse(&root.to_json()) {
            Ok(items) => Ok(items
                .into_iter()
                .map(|(name, value)| MetaItem::new(&self.name, name, file, value))
                .collect()),
            Err(problems) => Err(problems
                .into_iter()
                .map(|(path, message)| {
                    let (line, column) = root.position_of(&path);
                    Diagnostic {
                        file: file.to_owned(),
                        line,
                        column,
                        path,
                        severity: Severity::Error,
                        message: format!("{} ({}): {message}", self.name, self.plugin),
                    }
                })
                .collect()),
        }
    }
}

/// One loaded item of a kind.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaItem {
    pub kind: String,
    pub name: String,
    /// The file it came from.
    pub file: String,
    pub value: Value,
    /// A stable hash of `value`, usable as an HTTP ETag.
    pub etag: String,
}

impl MetaItem {
    fn new(kind: &str, name: String, file: &str, value: Value) -> Self {
        let etag = crate::meta::stable_hash(&value.to_string());
        Self {
            kind: kind.to_owned(),
            name,
            file: file.to_owned(),
            value,
            etag,
        }
    }
}

/// The items of every contributed kind, by kind name.
pub(crate) type Items = BTreeMap<String, Vec<MetaItem>>;

/// Every problem of the kinds themselves: two plugins claiming one name or one file pattern,
/// or a kind that would shadow objects.
pub(crate) fn check_kinds(kinds: &[MetadataKind]) -> Result<()> {
    let mut problems = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        let valid = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if !valid(&k.name) || !valid(&k.suffix) {
            problems.push(format!(
                "plugin {}: metadata kind `{}` (files *.{}.yml): names and suffixes are lowercase letters, digits and underscores",
                k.plugin, k.name, k.suffix
            ));
        }
        if k.name == "object" || k.suffix == "object" {
            problems.push(format!(
                "plugin {}: metadata kind `{}` would shadow objects (`*.object.yml`)",
                k.plugin, k.name
            ));
        }
        for other in &kinds[..i] {
            if other.name == k.name {
                problems.push(format!(
                    "metadata kind `{}` is contributed by plugin {} and by plugin {}; a kind has one owner",
                    k.name, other.plugin, k.plugin
                ));
            }
            if other.suffix == k.suffix {
                problems.push(format!(
                    "files *.{}.yml are claimed by plugin {} (kind `{}`) and by plugin {} (kind `{}`)",
                    k.suffix, other.plugin, other.name, k.plugin, k.name
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DataError::Config(problems.join("; ")))
    }
}

/// Loads every file of every kind under `dirs`: the items, or every problem of every file.
pub(crate) fn load(
    dirs: &[PathBuf],
    kinds: &[MetadataKind],
) -> std::result::Result<Items, Vec<Diagnostic>> {
    let mut items: Items = kinds.iter().map(|k| (k.name.clone(), Vec::new())).collect();
    if kinds.is_empty() {
        return Ok(items);
    }
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for dir in dirs {
        if let Err(e) = walk(dir, &mut files) {
            errors.push(error(
                &dir.display().to_string(),
                format!("cannot read metadata folder: {e}"),
            ));
        }
    }
    for path in files {
        let file = path.display().to_string();
        let Some(kind) = kinds.iter().find(|k| k.matches(&file)) else {
            continue;
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(error(&file, format!("cannot read file: {e}")));
                continue;
            }
        };
        match kind.parse_file(&file, &text) {
            Ok(found) => {
                let list = items.entry(kind.name.clone()).or_default();
                for item in found {
                    if let Some(prev) = list
                        .iter()
                        .find(|p| p.name == item.name)
                        .filter(|_| !kind.merging)
                    {
                        errors.push(error(
                            &file,
                            format!(
                                "{} `{}` is already defined in {}; names must be unique",
                                kind.name, item.name, prev.file
                            ),
                        ));
                    } else {
                        list.push(item);
                    }
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(items)
    } else {
        Err(errors)
    }
}

fn error(file: &str, message: String) -> Diagnostic {
    Diagnostic {
        file: file.to_owned(),
        line: 0,
        column: 0,
        path: String::new(),
        severity: Severity::Error,
        message,
    }
}

/// Files under `dir`, sorted, hidden entries skipped; a missing folder has none.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    if !dir.exists() {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    struct Flow {
        name: String,
        steps: Vec<String>,
    }

    fn flows() -> MetadataKind {
        MetadataKind::typed::<Flow>(
            "flow",
            "flow",
            |f| f.name.clone(),
            |f| {
                if f.steps.is_empty() {
                    vec![("steps".into(), "a flow needs at least one step".into())]
                } else {
                    Vec::new()
                }
            },
        )
        .owned_by("com.example.flows")
    }

    #[test]
    fn files_match_by_suffix_only() {
        let k = flows();
        assert!(k.matches("a/b/nightly.flow.yml"));
        assert!(k.matches("X.FLOW.JSON"));
        assert!(!k.matches(".flow.yml"));
        assert!(!k.matches("a/workflow.yml"));
        assert!(!k.matches("a/x.workflow.yml"));
    }

    #[test]
    fn problems_are_located_and_items_typed() {
        let k = flows();
        let ok = k
            .parse_file("f.flow.yml", "name: nightly\nsteps: [a, b]\n")
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(ok[0].name, "nightly");
        assert_eq!(ok[0].value["steps"][1], "b");
        let bad = k
            .parse_file("f.flow.yml", "name: nightly\nsteps: []\n")
            .err()
            .unwrap_or_default();
        assert_eq!((bad[0].line, bad[0].path.as_str()), (2, "steps"), "{bad:?}");
        let unknown = k
            .parse_file("f.flow.yml", "name: n\nsteps: [a]\nstepz: 1\n")
            .err()
            .unwrap_or_default();
        assert!(unknown[0].message.contains("stepz"), "{unknown:?}");
        let syntax = k
            .parse_file("f.flow.yml", "name: [\n")
            .err()
            .unwrap_or_default();
        assert!(syntax[0].line > 0, "{syntax:?}");
    }

    #[test]
    fn text_kinds_match_their_extension_and_locate_problems() {
        let k = MetadataKind::text("note", "note", |file, text| {
            if text.starts_with('!') {
                Err(vec![(1, 1, format!("{file}: bang"))])
            } else {
                Ok(vec![(file.to_owned(), Value::String(text.to_owned()))])
            }
        })
        .owned_by("com.example.notes");
        assert!(k.matches("a/b/x.note") && k.matches("X.NOTE"));
        assert!(!k.matches("a/.note") && !k.matches("x.note.yml") && !k.matches("xnote"));
        let ok = k.parse_file("a.note", "hi").unwrap_or_default();
        assert_eq!(ok[0].value, "hi");
        let bad = k.parse_file("a.note", "!").err().unwrap_or_default();
        assert_eq!(
            (bad[0].line, bad[0].file.as_str()),
            (1, "a.note"),
            "{bad:?}"
        );
    }

    #[test]
    fn two_owners_of_a_name_or_pattern_are_named() {
        let a = flows();
        let b = MetadataKind::new("flow", "flows", |_| Ok(Vec::new())).owned_by("com.example.b");
        let c = MetadataKind::new("pipeline", "flow", |_| Ok(Vec::new())).owned_by("com.example.c");
        let err = check_kinds(&[a, b, c])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("com.example.flows") && err.contains("com.example.b"),
            "{err}"
        );
        assert!(
            err.contains("com.example.c") && err.contains("*.flow.yml"),
            "{err}"
        );
        let shadow = MetadataKind::new("object", "object", |_| Ok(Vec::new()));
        assert!(check_kinds(&[shadow]).is_err());
    }
}
