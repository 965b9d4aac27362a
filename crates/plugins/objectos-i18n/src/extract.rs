//! `objectos i18n extract`: every translatable string of a metadata folder's objects as a
//! bundle skeleton, and the translation keys a folder's bundles miss per locale (warnings of
//! `objectos validate` and `cargo xtask spec-audit`).
//!
//! The strings of an object: its label, plural label and description; each field's label, help
//! text (`inlineHelpText`) and select option labels; each validation rule's message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use objectos_spec::yaml::{self, Format};
use objectos_spec::{Diagnostic, Severity};
use serde_json::{Map, Value, json};

use crate::bundle::{canonical_locale, parse_bundle};
use crate::error::{I18nError, Result};

/// Files under `dir`, sorted, hidden entries skipped.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

fn read_doc(path: &Path) -> Result<Option<Value>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| I18nError::Extract {
        path: name.clone(),
        message: e.to_string(),
    })?;
    let parsed = yaml::parse(&name, &text, Format::from_path(&name));
    Ok(parsed.root.map(|r| r.to_json()))
}

fn is_object_file(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with(".object.yml") || n.ends_with(".object.yaml") || n.ends_with(".object.json")
}

fn is_bundle_file(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with(".translation.yml")
        || n.ends_with(".translation.yaml")
        || n.ends_with(".translation.json")
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The translatable strings of one object document, as the `objects.<name>` entry of a bundle
/// with the authored (source) texts as values.
fn object_strings(doc: &Value) -> Option<(String, Value)> {
    let name = text(doc.get("name"))?;
    let mut out = Map::new();
    for (key, src) in [
        ("label", "label"),
        ("pluralLabel", "pluralLabel"),
        ("description", "description"),
    ] {
        if let Some(t) = text(doc.get(src)) {
            out.insert(key.into(), Value::String(t));
        }
    }
    let mut fields = Map::new();
    let field_list: Vec<(String, &Value)> = match doc.get("fields") {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|f| text(f.get("name")).map(|n| (n, f)))
            .collect(),
        _ => Vec::new(),
    };
    for (fname, f) in field_list {
        let mut entry = Map::new();
        if let Some(t) = text(f.get("label")) {
            entry.insert("label".into(), Value::String(t));
        }
        if let Some(t) = text(f.get("inlineHelpText")) {
            entry.insert("help".into(), Value::String(t));
        }
        let mut options = Map::new();
        for o in f
            .get("options")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(v), Some(l)) = (text(o.get("value")), text(o.get("label"))) {
                options.insert(v, Value::String(l));
            }
        }
        if !options.is_empty() {
            entry.insert("options".into(), Value::Object(options));
        }
        if !entry.is_empty() {
            fields.insert(fname, Value::Object(entry));
        }
    }
    if !fields.is_empty() {
        out.insert("fields".into(), Value::Object(fields));
    }
    let mut rules = Map::new();
    for r in doc
        .get("validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        rule_strings(r, &mut rules);
    }
    if !rules.is_empty() {
        out.insert("_validations".into(), Value::Object(rules));
    }
    Some((name, Value::Object(out)))
}

/// A rule's message by its name, and those of a conditional rule's branches.
fn rule_strings(r: &Value, out: &mut Map<String, Value>) {
    if let (Some(n), Some(m)) = (text(r.get("name")), text(r.get("message"))) {
        out.insert(n, json!({ "message": m }));
    }
    for branch in ["then", "otherwise"] {
        if let Some(b) = r.get(branch) {
            rule_strings(b, out);
        }
    }
}

/// What a folder holds: its objects' strings, and its bundles' locales (merged) with the first
/// file of each.
struct Folder {
    objects: BTreeMap<String, Value>,
    bundles: BTreeMap<String, (String, Value)>,
}

fn read_folder(dir: &Path) -> Result<Folder> {
    let mut files = Vec::new();
    walk(dir, &mut files).map_err(|e| I18nError::Extract {
        path: dir.display().to_string(),
        message: e.to_string(),
    })?;
    let mut folder = Folder {
        objects: BTreeMap::new(),
        bundles: BTreeMap::new(),
    };
    for f in files {
        let name = f.display().to_string();
        if is_object_file(&name) {
            if let Some((o, strings)) = read_doc(&f)?.as_ref().and_then(object_strings) {
                folder.objects.insert(o, strings);
            }
        } else if is_bundle_file(&name)
            && let Some(doc) = read_doc(&f)?
            && let Ok(items) = parse_bundle(&doc)
        {
            for (locale, data) in items {
                let entry = folder
                    .bundles
                    .entry(locale)
                    .or_insert_with(|| (name.clone(), json!({})));
                overlay(&mut entry.1, &data);
            }
        }
    }
    Ok(folder)
}

fn overlay(base: &mut Value, top: &Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            for (k, v) in t {
                match b.get_mut(k) {
                    Some(e) => overlay(e, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, t) => *b = t.clone(),
    }
}

/// The dotted keys of every string leaf under `v`.
fn leaves(prefix: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, child, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

fn lookup<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    // Keys are metadata names and option values; an option value with a dot is looked up whole.
    let mut cur = v;
    let mut rest = dotted;
    'outer: while !rest.is_empty() {
        let obj = cur.as_object()?;
        if let Some(found) = obj.get(rest) {
            return Some(found);
        }
        for (i, _) in rest.match_indices('.') {
            if let Some(next) = obj.get(&rest[..i]) {
                cur = next;
                rest = &rest[i + 1..];
                continue 'outer;
            }
        }
        return None;
    }
    Some(cur)
}

/// A bundle skeleton for `locale` of every translatable string of the objects under `dir`:
/// each value is the authored text, or the translation when a bundle of `dir` already has one.
pub fn skeleton(dir: &Path, locale: &str) -> Result<String> {
    let locale = canonical_locale(locale).map_err(|message| I18nError::Extract {
        path: "--locale".into(),
        message,
    })?;
    let folder = read_folder(dir)?;
    let mut objects = Map::new();
    for (name, strings) in &folder.objects {
        let mut s = strings.clone();
        if let Some((_, existing)) = folder.bundles.get(&locale)
            && let Some(done) = existing.get("objects").and_then(|o| o.get(name))
        {
            overlay(&mut s, done);
        }
        objects.insert(name.clone(), s);
    }
    let mut data = Map::new();
    data.insert("objects".into(), Value::Object(objects));
    if let Some((_, existing)) = folder.bundles.get(&locale)
        && let Some(m) = existing.get("messages")
    {
        data.insert("messages".into(), m.clone());
    }
    let mut root = Map::new();
    root.insert(locale.clone(), Value::Object(data));
    let mut out = format!(
        "# Translation bundle skeleton for `{locale}` (objectos i18n extract): every value is the\n# authored text until it is translated.\n"
    );
    emit_yaml(&Value::Object(root), 0, &mut out);
    Ok(out)
}

/// YAML for nested maps of strings: keys plain when safe, values double-quoted (JSON escapes
/// are valid YAML).
fn emit_yaml(v: &Value, indent: usize, out: &mut String) {
    let Value::Object(m) = v else { return };
    for (k, child) in m {
        let key = if !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && !matches!(
                k.as_str(),
                "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
            )
            && !k.bytes().all(|b| b.is_ascii_digit())
        {
            k.clone()
        } else {
            Value::String(k.clone()).to_string()
        };
        out.push_str(&" ".repeat(indent));
        match child {
            Value::Object(_) => {
                out.push_str(&key);
                out.push_str(":\n");
                emit_yaml(child, indent + 2, out);
            }
            other => {
                out.push_str(&key);
                out.push_str(": ");
                out.push_str(&other.to_string());
                out.push('\n');
            }
        }
    }
}

/// The package folders under `dir`: each folder with a `manifest.yml`, else `dir` itself.
fn packages(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if walk(dir, &mut files).is_err() {
        return vec![dir.to_path_buf()];
    }
    let roots: Vec<PathBuf> = files
        .iter()
        .filter(|f| {
            f.file_name()
                .is_some_and(|n| n == "manifest.yml" || n == "manifest.yaml")
        })
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    if roots.is_empty() {
        vec![dir.to_path_buf()]
    } else {
        roots
    }
}

/// Warnings for the translatable strings each locale's bundles miss, one per object and
/// locale, at the locale's first bundle file; folders without bundles have none. Each package
/// (a folder with `manifest.yml`) is checked against its own objects.
pub fn missing_keys(dir: &Path) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for pkg in packages(dir) {
        let Ok(folder) = read_folder(&pkg) else {
            continue;
        };
        for (locale, (file, data)) in &folder.bundles {
            for (object, strings) in &folder.objects {
                let mut keys = Vec::new();
                leaves("", strings, &mut keys);
                let translated = data.get("objects").and_then(|o| o.get(object));
                let missing: Vec<&String> = keys
                    .iter()
                    .filter(|k| translated.and_then(|t| lookup(t, k)).is_none())
                    .collect();
                if missing.is_empty() {
                    continue;
                }
                let shown: Vec<&str> = missing.iter().take(8).map(|s| s.as_str()).collect();
                let more = missing.len().saturating_sub(shown.len());
                out.push(Diagnostic {
                    file: file.clone(),
                    line: 0,
                    column: 0,
                    path: format!("{locale}.objects.{object}"),
                    severity: Severity::Warning,
                    message: format!(
                        "locale {locale}: {} translatable string(s) of object `{object}` have no translation: {}{}",
                        missing.len(),
                        shown.join(", "),
                        if more > 0 {
                            format!(" and {more} more")
                        } else {
                            String::new()
                        }
                    ),
                });
            }
        }
    }
    out
}
