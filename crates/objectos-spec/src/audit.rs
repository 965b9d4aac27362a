//! The spec audit: every problem of a manifest or metadata file, located.
//!
//! [`Auditor`] takes file texts (the caller does the I/O), dispatches on the file name, checks each
//! file on its located tree and then runs the cross-file checks (dangling references, objects defined
//! twice). `cargo xtask spec-audit`, `objectos validate` and the server's metadata loader all use it.

mod permission;

use serde::Serialize;

use crate::diag::{Diagnostic, Severity};
use crate::event::validate_event_name;
use crate::manifest::{ObjectStackManifest, PluginManifest, capabilities, services};
use crate::object::check::{Kind, Pos, Sink, key, key_a, list, suggest, view};
use crate::object::{ObjectFacts, ObjectSchema, load_object_with_facts};
use crate::yaml::{self, Format, Loaded, Located, join};

/// The system objects every ObjectOS instance has (`presets/base/objects`), compiled in so the audit
/// can resolve references to them and the server can install them without reading files.
pub const BASE_OBJECT_FILES: &[(&str, &str)] = &[
    (
        "presets/base/objects/user.object.yml",
        include_str!("../../../presets/base/objects/user.object.yml"),
    ),
    (
        "presets/base/objects/organization.object.yml",
        include_str!("../../../presets/base/objects/organization.object.yml"),
    ),
    (
        "presets/base/objects/role.object.yml",
        include_str!("../../../presets/base/objects/role.object.yml"),
    ),
];

/// The base preset's objects, parsed. A base file with errors is skipped (a test keeps them clean).
pub fn base_objects() -> Vec<ObjectSchema> {
    BASE_OBJECT_FILES
        .iter()
        .filter_map(|(file, text)| crate::object::load_object(file, text, Format::Yaml).value)
        .collect()
}

/// What the cross-file checks know about the base preset, parsed once per process.
fn base_facts() -> &'static [ObjectFacts] {
    static BASE: std::sync::OnceLock<Vec<ObjectFacts>> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        BASE_OBJECT_FILES
            .iter()
            .map(|(file, text)| load_object_with_facts(file, text, Format::Yaml).1)
            .collect()
    })
}

/// The order diagnostics are reported in: files that cannot be read first (their syntax error is
/// the cause of whatever else goes wrong), then by file and line. Stable, so one line's
/// problems keep the order they were found in.
pub fn sort_diagnostics(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (!yaml::is_unreadable(a), &a.file, a.line).cmp(&(!yaml::is_unreadable(b), &b.file, b.line))
    });
}

/// The kinds of file the audit understands.
///
/// This is the dispatch seam: `*.permission.yml`, `*.workflow.yml` and `*.flow.yml` get a variant
/// here, a case in [`FileKind::of`] and a checker in [`Auditor::add_file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileKind {
    /// `*.object.yml`, `*.object.yaml`, `*.object.json`.
    Object,
    /// `manifest.yml|yaml|json`, `objectstack.yml|yaml|json`.
    Manifest,
    /// `*.permission.yml|yaml|json`: a spec `PermissionSet`, or the ObjectOS profile form
    /// (recognised by `objectName`).
    Permission,
}

impl FileKind {
    /// The kind of the file at `path` (only the file name matters), if the audit checks it.
    pub fn of(path: &str) -> Option<Self> {
        let name = path
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(path)
            .to_ascii_lowercase();
        let stem = name
            .strip_suffix(".yml")
            .or_else(|| name.strip_suffix(".yaml"))
            .or_else(|| name.strip_suffix(".json"))?;
        if stem.len() > ".object".len() && stem.ends_with(".object") {
            Some(Self::Object)
        } else if stem.len() > ".permission".len() && stem.ends_with(".permission") {
            Some(Self::Permission)
        } else if stem == "manifest" || stem == "objectstack" {
            Some(Self::Manifest)
        } else {
            None
        }
    }
}

/// True when [`Auditor::add_file`] checks files with this name.
pub fn is_auditable(path: &str) -> bool {
    FileKind::of(path).is_some()
}

/// The outcome of an audit.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    /// Every problem, sorted by file then line.
    pub diagnostics: Vec<Diagnostic>,
    pub files_checked: usize,
    /// Object definitions found (valid or not).
    pub objects: usize,
    /// The objects of files without errors, in the order the files were added.
    #[serde(skip)]
    pub object_schemas: Vec<ObjectSchema>,
    /// The manifests of files without errors.
    #[serde(skip)]
    pub manifests: Vec<ObjectStackManifest>,
}

impl AuditReport {
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn warning_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count()
    }

    /// True when nothing is an error.
    pub fn is_ok(&self) -> bool {
        self.error_count() == 0
    }
}

#[derive(Debug)]
struct AuditedObject {
    file: String,
    facts: ObjectFacts,
    value: Option<ObjectSchema>,
    /// Added with [`Auditor::add_context_file`].
    context: bool,
}

/// The object names an unreadable object file may define: its top-level `name:` (or `"name":`)
/// line, read as plain text since the file cannot be parsed, and the file name's stem
/// (`account.object.yml` defines `account` by convention).
fn guess_object_names(path: &str, text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let file = path.rsplit(['/', '\\']).next().unwrap_or(path);
    if let Some(stem) = file.split('.').next()
        && !stem.is_empty()
    {
        names.push(stem.to_owned());
    }
    for line in text.lines() {
        // YAML: the top-level key, at column 1. JSON: which level a `"name":` is on cannot be
        // known without parsing, so any counts (a field's name too: at worst a real dangling
        // reference to it waits until the syntax error is fixed).
        let rest = line
            .strip_prefix("name:")
            .or_else(|| line.trim_start().strip_prefix("\"name\":"));
        if let Some(rest) = rest {
            let value = rest
                .trim()
                .trim_end_matches(',')
                .trim_matches(|c| c == '"' || c == '\'')
                .to_owned();
            if !value.is_empty() && !names.contains(&value) {
                names.push(value);
            }
        }
    }
    names
}

/// Collects files and compiled-in manifests, then checks them together.
#[derive(Debug, Default)]
pub struct Auditor {
    diagnostics: Vec<Diagnostic>,
    files_checked: usize,
    objects: Vec<AuditedObject>,
    manifests: Vec<(String, ObjectStackManifest)>,
    /// Objects and fields named by permission files, checked once every object is known.
    permission_refs: Vec<(String, permission::NamedRef)>,
    /// Object names that files which could not be read (syntax errors) may have defined: a
    /// reference to one of them is a consequence of the syntax error, not reported on its own.
    unreadable_names: Vec<String>,
    /// Files added with [`Auditor::add_context_file`]: checked so references resolve, not reported.
    context: std::collections::HashSet<String>,
}

impl Auditor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks one file. `path` is used as given in diagnostics (pass a relative path for stable
    /// output); files that [`is_auditable`] rejects are ignored.
    pub fn add_file(&mut self, path: &str, text: &str) {
        let Some(kind) = FileKind::of(path) else {
            return;
        };
        let format = Format::from_path(path);
        self.files_checked += 1;
        match kind {
            FileKind::Object => {
                let (loaded, facts) = load_object_with_facts(path, text, format);
                if loaded.diagnostics.iter().any(yaml::is_unreadable) {
                    self.unreadable_names.extend(guess_object_names(path, text));
                }
                self.diagnostics.extend(loaded.diagnostics);
                self.objects.push(AuditedObject {
                    file: path.to_owned(),
                    facts,
                    value: loaded.value,
                    context: false,
                });
            }
            FileKind::Manifest => {
                let loaded = load_manifest(path, text, format);
                self.diagnostics.extend(loaded.diagnostics);
                if let Some(m) = loaded.value {
                    self.manifests.push((path.to_owned(), m));
                }
            }
            FileKind::Permission => {
                let (diagnostics, refs) = permission::check_permission_file(path, text, format);
                self.diagnostics.extend(diagnostics);
                self.permission_refs
                    .extend(refs.into_iter().map(|r| (path.to_owned(), r)));
            }
        }
    }

    /// Checks a file only so that what it defines is known to the cross-file checks: none of its
    /// own problems is reported and it is not counted. `objectos validate FILE` adds the file's
    /// neighbours this way, so a single file does not report the objects it refers to as missing.
    pub fn add_context_file(&mut self, path: &str, text: &str) {
        if FileKind::of(path).is_none() {
            return;
        }
        let counted = (self.files_checked, self.objects.len());
        self.add_file(path, text);
        self.files_checked = counted.0;
        for o in self.objects.iter_mut().skip(counted.1) {
            o.context = true;
        }
        self.context.insert(path.to_owned());
    }

    /// Checks a compiled-in plugin manifest.
    pub fn add_manifest(&mut self, m: &PluginManifest) {
        self.diagnostics.extend(validate_manifest(m));
    }

    /// Runs the cross-file checks and returns the report.
    pub fn finish(mut self) -> AuditReport {
        self.check_duplicate_objects();
        self.check_references();
        self.check_permission_refs();
        let mut diagnostics = self.diagnostics;
        let context = self.context;
        diagnostics.retain(|d| !context.contains(&d.file));
        sort_diagnostics(&mut diagnostics);
        let failed = |file: &str| diagnostics.iter().any(|d| d.is_error() && d.file == file);
        let objects = self
            .objects
            .iter()
            .filter(|o| o.facts.name.is_some() && !o.context)
            .count();
        let object_schemas = self
            .objects
            .into_iter()
            .filter(|o| !o.context && !failed(&o.file))
            .filter_map(|o| o.value)
            .collect();
        let manifests = self
            .manifests
            .into_iter()
            .filter(|(f, _)| !failed(f))
            .map(|(_, m)| m)
            .collect();
        AuditReport {
            diagnostics,
            files_checked: self.files_checked,
            objects,
            object_schemas,
            manifests,
        }
    }

    fn check_duplicate_objects(&mut self) {
        for (i, o) in self.objects.iter().enumerate() {
            let Some((name, pos)) = &o.facts.name else {
                continue;
            };
            let others: Vec<String> = self
                .objects
                .iter()
                .enumerate()
                .filter(|(j, other)| {
                    *j != i && other.facts.name.as_ref().is_some_and(|(n, _)| n == name)
                })
                .map(|(_, other)| {
                    let line = other.facts.name.as_ref().map_or(0, |(_, p)| p.line);
                    format!("{}:{line}", other.file)
                })
                .collect();
            if !others.is_empty() {
                self.diagnostics.push(Diagnostic {
                    file: o.file.clone(),
                    line: pos.line,
                    column: pos.column,
                    path: "name".to_owned(),
                    severity: Severity::Error,
                    message: format!(
                        "object `{name}` is also defined in {}; object names must be unique",
                        others.join(", ")
                    ),
                });
            }
        }
    }

    /// Objects and fields named by permission files must exist (the permissions plugin refuses
    /// to start otherwise).
    fn check_permission_refs(&mut self) {
        let known: Vec<(&str, &ObjectFacts)> = self
            .objects
            .iter()
            .map(|o| &o.facts)
            .chain(base_facts().iter())
            .filter_map(|f| f.name.as_ref().map(|(n, _)| (n.as_str(), f)))
            .collect();
        let mut found = Vec::new();
        // An unknown object is reported once per file, where it is first named.
        let mut unknown: Vec<(&str, &str)> = Vec::new();
        for (file, r) in &self.permission_refs {
            let diag = |message: String| Diagnostic {
                file: file.clone(),
                line: r.pos.line,
                column: r.pos.column,
                path: r.path.clone(),
                severity: Severity::Error,
                message,
            };
            let Some((_, target)) = known.iter().find(|(n, _)| *n == r.object) else {
                if unknown.contains(&(file.as_str(), r.object.as_str()))
                    || self.unreadable_names.contains(&r.object)
                {
                    continue;
                }
                unknown.push((file.as_str(), r.object.as_str()));
                let hint = suggest(&r.object, known.iter().map(|(n, _)| *n))
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                found.push(diag(format!(
                    "no object named `{}`: neither the audited files nor the base preset define it; {hint}known objects include {}",
                    r.object,
                    list(known.iter().map(|(n, _)| *n).take(8))
                )));
                continue;
            };
            let Some(field) = &r.field else { continue };
            // A dotted field path is checked at its first hop.
            let head = field.split('.').next().unwrap_or(field);
            if !target.fields.iter().any(|f| f == head) && !crate::object::is_system_field(head) {
                let hint = suggest(head, target.fields.iter().map(String::as_str))
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                found.push(diag(format!(
                    "`{head}` is not a field of object `{}`{hint}",
                    r.object
                )));
            }
        }
        self.diagnostics.extend(found);
    }

    fn check_references(&mut self) {
        let known: Vec<(&str, &ObjectFacts)> = self
            .objects
            .iter()
            .map(|o| &o.facts)
            .chain(base_facts().iter())
            .filter_map(|f| f.name.as_ref().map(|(n, _)| (n.as_str(), f)))
            .collect();
        let mut found = Vec::new();
        for o in &self.objects {
            for r in &o.facts.references {
                let diag = |pos: Pos, path: &str, message: String| Diagnostic {
                    file: o.file.clone(),
                    line: pos.line,
                    column: pos.column,
                    path: path.to_owned(),
                    severity: Severity::Error,
                    message,
                };
                match known.iter().find(|(n, _)| *n == r.target) {
                    // The object's file has a syntax error, reported (first) on its own.
                    None if self.unreadable_names.contains(&r.target) => {}
                    None => {
                        let hint = suggest(&r.target, known.iter().map(|(n, _)| *n))
                            .map(|s| format!("did you mean `{s}`? "))
                            .unwrap_or_default();
                        found.push(diag(
                            r.pos,
                            &r.path,
                            format!(
                                "no object named `{}`: neither the audited files nor the base preset define it; {hint}known objects include {}",
                                r.target,
                                list(known.iter().map(|(n, _)| *n).take(8))
                            ),
                        ));
                    }
                    Some((_, target)) => {
                        if let Some((field, pos, path)) = &r.summary_field
                            && !target.fields.iter().any(|f| f == field)
                            && !crate::object::is_system_field(field)
                        {
                            let hint = suggest(field, target.fields.iter().map(String::as_str))
                                .map(|s| format!("; did you mean `{s}`?"))
                                .unwrap_or_default();
                            found.push(diag(
                                *pos,
                                path,
                                format!("`{field}` is not a field of object `{}`{hint}", r.target),
                            ));
                        }
                    }
                }
            }
        }
        self.diagnostics.extend(found);
    }
}

/// Every `type` a manifest may declare.
const PACKAGE_TYPES: &[&str] = &[
    "plugin", "ui", "driver", "server", "app", "theme", "agent", "objectql", "module", "gateway",
    "adapter",
];

const CONFIG_TYPES: &[&str] = &["string", "number", "integer", "boolean", "object", "array"];

const MANIFEST_KEYS: &[crate::object::check::Key] = &[
    key("id", Kind::Str),
    key("name", Kind::Str),
    key("version", Kind::Str),
    key("description", Kind::Str),
    key("type", Kind::OneOf(PACKAGE_TYPES)),
    key("namespace", Kind::Str),
    key("scope", Kind::OneOf(&["cloud", "system", "project"])),
    key("permissions", Kind::StrList),
    key("objects", Kind::StrList),
    key("dependencies", Kind::Map),
    key("provides", Kind::StrList),
    key("requires", Kind::StrList),
    key("emits", Kind::StrList),
    key("subscribes", Kind::StrList),
    key("configuration", Kind::Map),
    key("contributes", Kind::Any),
    key("data", Kind::Any),
    key("capabilities", Kind::Any),
    key("engine", Kind::Any),
    key("datasources", Kind::Any),
    key_a("defaultDatasource", &["default_datasource"], Kind::Str),
    key("extensions", Kind::Any),
    key("loading", Kind::Any),
    key("author", Kind::Any),
    key("license", Kind::Str),
    key("homepage", Kind::Str),
    key("repository", Kind::Any),
    key("keywords", Kind::StrList),
];

const CONFIG_PROPERTY_KEYS: &[crate::object::check::Key] = &[
    key("type", Kind::OneOf(CONFIG_TYPES)),
    key("description", Kind::Str),
    key("default", Kind::Any),
    key("required", Kind::Bool),
    key("secret", Kind::Bool),
    key("enum", Kind::Seq),
];

/// A check of one manifest value: why it is wrong, if it is.
type Problem = fn(&str) -> Option<String>;

/// Why `id` is not a reverse-domain id (`^[a-z][a-z0-9-]*(\.[a-z0-9-]+)+$`), if it is not.
fn id_problem(id: &str) -> Option<String> {
    let segments: Vec<&str> = id.split('.').collect();
    let first_ok = segments
        .first()
        .is_some_and(|s| s.starts_with(|c: char| c.is_ascii_lowercase()));
    let all_ok = segments.iter().all(|s| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    });
    (segments.len() < 2 || !first_ok || !all_ok).then(|| {
        format!(
            "plugin id `{id}` is not a reverse-domain id; expected at least two dot-separated segments of lowercase letters, digits and `-`, starting with a letter, such as `com.acme.crm`"
        )
    })
}

fn version_problem(version: &str) -> Option<String> {
    semver::Version::parse(version).err().map(|e| {
        format!("version `{version}` is not a semantic version ({e}); expected MAJOR.MINOR.PATCH such as `1.0.0`")
    })
}

fn range_problem(dep: &str, range: &str) -> Option<String> {
    semver::VersionReq::parse(range).err().map(|e| {
        format!("version range `{range}` of dependency `{dep}` is invalid ({e}); expected a semver requirement such as `^1.2` or `>=1.0, <2`")
    })
}

fn namespace_problem(ns: &str) -> Option<String> {
    let mut chars = ns.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && (2..=20).contains(&ns.len())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    (!ok).then(|| {
        format!("namespace `{ns}` is invalid; expected 2 to 20 lowercase letters, digits or `_`, starting with a letter (pattern ^[a-z][a-z0-9_]{{1,19}}$)")
    })
}

fn name_problem(known: &[&str], what: &str, name: &str) -> Option<String> {
    if known.contains(&name) {
        return None;
    }
    let hint = suggest(name, known.iter().copied())
        .map(|s| format!("did you mean `{s}`? "))
        .unwrap_or_default();
    Some(format!(
        "unknown {what} `{name}`; {hint}expected one of {}",
        list(known.iter().copied())
    ))
}

fn capability_problem(c: &str) -> Option<String> {
    name_problem(capabilities::ALL, "capability", c)
}

fn service_problem(s: &str) -> Option<String> {
    name_problem(services::ALL, "service", s)
}

fn event_problem(e: &str) -> Option<String> {
    validate_event_name(e, true).err()
}

/// Parses and validates a `manifest.yml` / `objectstack.yml` (or `.json`).
pub fn load_manifest(file: &str, text: &str, format: Format) -> Loaded<ObjectStackManifest> {
    let parsed = yaml::parse(file, text, format);
    let mut sink = Sink::new(file);
    sink.diagnostics = parsed.diagnostics;
    let Some(root) = parsed.root else {
        return Loaded {
            value: None,
            diagnostics: sink.diagnostics,
        };
    };
    check_manifest_tree(&mut sink, &root);
    let value = if sink.has_errors() {
        None
    } else {
        match serde_json::from_value::<ObjectStackManifest>(root.to_json()) {
            Ok(m) => Some(m),
            Err(e) => {
                sink.error(&root, "", format!("cannot read manifest: {e}"));
                None
            }
        }
    };
    Loaded {
        value,
        diagnostics: sink.diagnostics,
    }
}

fn check_manifest_tree(sink: &mut Sink, root: &Located) {
    let Some(m) = view(
        sink,
        root,
        Pos::from(root),
        "",
        "a manifest",
        MANIFEST_KEYS,
        true,
    ) else {
        return;
    };
    let check = |sink: &mut Sink, key: &str, hint: &str, problem: Problem| {
        if let Some(n) = m.require(sink, key, hint)
            && let Some(s) = n.as_str()
            && let Some(p) = problem(s)
        {
            sink.error(n, &m.path_of(key), p);
        }
    };
    check(
        sink,
        "id",
        "the plugin's reverse-domain id, such as `com.acme.crm`",
        id_problem,
    );
    check(sink, "name", "a human-readable name", |_| None);
    check(
        sink,
        "version",
        "the semantic version, such as `1.0.0`",
        version_problem,
    );
    m.require(
        sink,
        "type",
        &format!(
            "the package type: one of {}",
            list(PACKAGE_TYPES.iter().copied())
        ),
    );
    if let Some(n) = m.get("namespace")
        && let Some(s) = n.as_str()
        && let Some(p) = namespace_problem(s)
    {
        sink.error(n, &m.path_of("namespace"), p);
    }
    let lists: [(&str, Problem); 5] = [
        ("permissions", capability_problem),
        ("provides", service_problem),
        ("requires", service_problem),
        ("emits", event_problem),
        ("subscribes", event_problem),
    ];
    for (key, problem) in lists {
        for (i, (s, n)) in m.strs(key).iter().enumerate() {
            if let Some(p) = problem(s) {
                sink.error(*n, &format!("{}[{i}]", m.path_of(key)), p);
            }
        }
    }
    for (i, (glob, n)) in m.strs("objects").iter().enumerate() {
        if glob.trim().is_empty() {
            sink.error(
                *n,
                &format!("{}[{i}]", m.path_of("objects")),
                "object glob is empty; expected a pattern such as `objects/*.object.yml`",
            );
        }
    }
    let own_id = m.str("id");
    if let Some(deps) = m.get("dependencies").and_then(Located::entries) {
        let path = m.path_of("dependencies");
        for (k, v) in deps {
            let dpath = join(&path, &k.name);
            if let Some(p) = id_problem(&k.name) {
                sink.error(k, &dpath, p);
            }
            if own_id == Some(k.name.as_str()) {
                sink.error(k, &dpath, "a plugin cannot depend on itself");
            }
            match v.as_str() {
                Some(range) => {
                    if let Some(p) = range_problem(&k.name, range) {
                        sink.error(v, &dpath, p);
                    }
                }
                None => sink.error(
                    v,
                    &dpath,
                    format!(
                        "expected a version range string such as \"^1.0\", found {}",
                        crate::object::check::describe(v)
                    ),
                ),
            }
        }
    }
    if let Some(c) = m.get("configuration")
        && let Some(cv) = view(
            sink,
            c,
            m.key_pos("configuration"),
            &m.path_of("configuration"),
            "`configuration`",
            &[key("properties", Kind::Map)],
            true,
        )
        && let Some(props) = cv.get("properties").and_then(Located::entries)
    {
        let path = cv.path_of("properties");
        for (k, v) in props {
            let ppath = join(&path, &k.name);
            if let Some(p) = view(
                sink,
                v,
                Pos::from(k),
                &ppath,
                &format!("configuration property `{}`", k.name),
                CONFIG_PROPERTY_KEYS,
                true,
            ) {
                p.require(
                    sink,
                    "type",
                    &format!(
                        "the JSON type: one of {}",
                        list(CONFIG_TYPES.iter().copied())
                    ),
                );
            }
        }
    }
}

/// Checks a compiled-in manifest with the same rules as `manifest.yml` files.
///
/// Diagnostics name the file `<manifest ID>` and line 0; paths are the spec keys (`dependencies.com.x`, `provides[1]`).
pub fn validate_manifest(m: &PluginManifest) -> Vec<Diagnostic> {
    let file = format!("<manifest {}>", m.id);
    let mut out = Vec::new();
    let mut push = |path: String, message: String| {
        out.push(Diagnostic {
            file: file.clone(),
            line: 0,
            column: 0,
            path,
            severity: Severity::Error,
            message,
        });
    };
    if let Some(p) = id_problem(m.id) {
        push("id".into(), p);
    }
    if m.name.trim().is_empty() {
        push(
            "name".into(),
            "name is empty; expected a human-readable name".into(),
        );
    }
    if let Some(p) = version_problem(m.version) {
        push("version".into(), p);
    }
    for d in m.dependencies {
        let path = format!("dependencies.{}", d.id);
        if let Some(p) = id_problem(d.id) {
            push(path.clone(), p);
        }
        if d.id == m.id {
            push(path.clone(), "a plugin cannot depend on itself".into());
        }
        if let Some(p) = range_problem(d.id, d.version) {
            push(path, p);
        }
    }
    let lists: [(&str, &[&str], Problem); 7] = [
        ("permissions", m.permissions, capability_problem),
        ("provides", m.provides, service_problem),
        ("requires", m.requires, service_problem),
        ("optional_requires", m.optional_requires, service_problem),
        ("lazy_requires", m.lazy_requires, service_problem),
        ("emits", m.emits, event_problem),
        ("subscribes", m.subscribes, event_problem),
    ];
    for (key, values, problem) in lists {
        for (i, v) in values.iter().enumerate() {
            if let Some(p) = problem(v) {
                push(format!("{key}[{i}]"), p);
            }
        }
    }
    for (i, glob) in m.objects.iter().enumerate() {
        if glob.trim().is_empty() {
            push(
                format!("objects[{i}]"),
                "object glob is empty; expected a pattern such as `objects/*.object.yml`".into(),
            );
        }
    }
    for c in m.configuration {
        let path = format!("configuration.properties.{}", c.key);
        if c.key.trim().is_empty() {
            push(path.clone(), "configuration key is empty".into());
        }
        if !CONFIG_TYPES.contains(&c.kind) {
            push(
                path.clone(),
                format!(
                    "configuration type `{}` is not allowed; expected one of {}",
                    c.kind,
                    list(CONFIG_TYPES.iter().copied())
                ),
            );
        }
        if let Some(d) = c.default
            && let Err(e) = serde_json::from_str::<serde_json::Value>(d)
        {
            push(
                path,
                format!(
                    "default `{d}` is not valid JSON ({e}); write strings with quotes, such as \"\\\"info\\\"\""
                ),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_kinds() {
        assert_eq!(
            FileKind::of("a/b/invoice.object.yml"),
            Some(FileKind::Object)
        );
        assert_eq!(FileKind::of("invoice.object.JSON"), Some(FileKind::Object));
        assert_eq!(FileKind::of("x/objectstack.yaml"), Some(FileKind::Manifest));
        assert_eq!(FileKind::of("manifest.json"), Some(FileKind::Manifest));
        assert_eq!(FileKind::of(".object.yml"), None);
        assert_eq!(
            FileKind::of("x/sales_rep.permission.yml"),
            Some(FileKind::Permission)
        );
        assert_eq!(FileKind::of(".permission.yml"), None);
        assert_eq!(FileKind::of("x.role.yml"), None);
        assert_eq!(FileKind::of("Cargo.toml"), None);
    }

    #[test]
    fn ids() {
        assert!(id_problem("com.acme.crm").is_none());
        assert!(id_problem("com.objectos-x.a1").is_none());
        assert!(id_problem("acme").is_some());
        assert!(id_problem("Com.acme").is_some());
        assert!(id_problem("1com.acme").is_some());
        assert!(id_problem("com..acme").is_some());
        assert!(namespace_problem("objectos").is_none());
        assert!(namespace_problem("o").is_some());
    }

    #[test]
    fn base_preset_is_clean() {
        for (file, text) in BASE_OBJECT_FILES {
            let loaded = crate::object::load_object(file, text, Format::Yaml);
            assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
            assert!(loaded.value.unwrap().is_system);
        }
        assert_eq!(base_objects().len(), BASE_OBJECT_FILES.len());
    }

    #[test]
    fn static_manifest() {
        use crate::manifest::{ConfigProperty, PluginDependency};
        const OK: PluginManifest = PluginManifest {
            provides: &["data"],
            permissions: &["data.read"],
            subscribes: &["data.*.*"],
            ..PluginManifest::new("com.objectos.data", "Data", "0.1.0")
        };
        assert!(validate_manifest(&OK).is_empty());
        const BAD: PluginManifest = PluginManifest {
            dependencies: &[PluginDependency {
                id: "com.objectos.x",
                version: "^^1",
                optional: false,
            }],
            provides: &["dta"],
            permissions: &["data.reed"],
            emits: &["Record.Created"],
            configuration: &[ConfigProperty {
                key: "level",
                kind: "text",
                description: "",
                required: false,
                secret: false,
                default: Some("info"),
            }],
            ..PluginManifest::new("objectos", "", "1.0")
        };
        let text: Vec<String> = validate_manifest(&BAD)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(text.len(), 9, "{text:#?}");
        assert!(text[0].starts_with("<manifest objectos>:0: id: plugin id `objectos`"));
    }
}
