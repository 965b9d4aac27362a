//! Security metadata: loading `*.permission.yml`, `*.role.yml` and `*.sharing.yml` files, and
//! compiling them (with every RLS predicate parsed and checked against the loaded objects) into
//! the immutable [`SecurityModel`] the interceptor consults.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use objectos_data::{MetadataKind, MetadataSnapshot, ParseResult};
use objectos_spec::object::ObjectSchema;
use objectos_spec::security::{
    ObjectOsPermission, PermissionSet, RlsOperation, Role, SharingModel, SharingRule,
    check_role_hierarchy,
};
use objectos_spec::yaml::{self, Format};

use crate::error::PermissionsError;
use crate::rls::{self, Predicate};

/// Security metadata as read from files (or built by tests), before compilation.
#[derive(Debug, Clone, Default)]
pub struct SecuritySources {
    /// Permission sets and profiles; sets with the same name are merged.
    pub permission_sets: Vec<PermissionSet>,
    pub roles: Vec<Role>,
    pub sharing_rules: Vec<SharingRule>,
}

/// An RLS policy with its predicates parsed.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub name: String,
    pub set: String,
    pub object: String,
    pub operation: RlsOperation,
    pub using: Option<Predicate>,
    pub check: Option<Predicate>,
    pub roles: Vec<String>,
}

/// A sharing rule with its condition parsed.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub rule: SharingRule,
    pub condition: Option<Predicate>,
}

/// The compiled, validated security model.
#[derive(Debug, Default)]
pub struct SecurityModel {
    pub sets: HashMap<String, PermissionSet>,
    pub policies: Vec<CompiledPolicy>,
    pub roles: HashMap<String, Role>,
    pub rules: Vec<CompiledRule>,
}

fn file_kind(path: &Path) -> Option<(&'static str, Format)> {
    let name = path.file_name()?.to_str()?;
    for (suffix, kind) in [
        (".permission", "permission"),
        (".role", "role"),
        (".sharing", "sharing"),
    ] {
        for (ext, format) in [
            (".yml", Format::Yaml),
            (".yaml", Format::Yaml),
            (".json", Format::Json),
        ] {
            if name.ends_with(&format!("{suffix}{ext}")) {
                return Some((kind, format));
            }
        }
    }
    None
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), PermissionsError> {
    let io = |source| PermissionsError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out)?;
        } else if file_kind(&path).is_some() {
            out.push(path);
        }
    }
    Ok(())
}

impl SecuritySources {
    /// Reads every security file under `dirs` (recursively). Missing folders are skipped.
    /// Every problem is collected and reported with file and YAML path.
    pub fn load(dirs: &[PathBuf]) -> Result<Self, PermissionsError> {
        let mut files = Vec::new();
        for dir in dirs.iter().filter(|d| d.is_dir()) {
            walk(dir, &mut files)?;
        }
        let mut out = Self::default();
        let mut problems = Vec::new();
        for path in files {
            let Some((kind, format)) = file_kind(&path) else {
                continue;
            };
            let file = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|source| PermissionsError::Io {
                path: file.clone(),
                source,
            })?;
            out.add_document(&file, kind, &text, format, &mut problems);
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(PermissionsError::Metadata(problems))
        }
    }

    /// Adds one document's content (`kind` is `permission`, `role` or `sharing`).
    pub fn add_document(
        &mut self,
        file: &str,
        kind: &str,
        text: &str,
        format: Format,
        problems: &mut Vec<String>,
    ) {
        let parsed = yaml::parse(file, text, format);
        for d in parsed.diagnostics.iter().filter(|d| d.is_error()) {
            problems.push(d.to_string());
        }
        let Some(root) = parsed.root else { return };
        match Self::from_document(kind, &root.to_json()) {
            Ok(found) => self.extend(found),
            Err(found) => problems.extend(found.iter().map(|(path, message)| {
                if path.is_empty() {
                    format!("{file}: {message}")
                } else {
                    format!("{file}: {path}: {message}")
                }
            })),
        }
    }

    /// One document of `kind` as JSON: what it defines, or every problem as (YAML path,
    /// message). The parser behind both [`SecuritySources::add_document`] and the plugin's
    /// metadata kinds.
    pub fn from_document(
        kind: &str,
        json: &serde_json::Value,
    ) -> Result<Self, Vec<(String, String)>> {
        let decode = |e: serde_json::Error| vec![(String::new(), e.to_string())];
        let checked = |found: Vec<(String, String)>| {
            if found.is_empty() { Ok(()) } else { Err(found) }
        };
        let mut out = Self::default();
        match kind {
            "permission" if json.get("objectName").is_some() => {
                let p: ObjectOsPermission = serde_json::from_value(json.clone()).map_err(decode)?;
                checked(p.validate())?;
                out.permission_sets.extend(p.to_permission_sets());
            }
            "permission" => {
                let set: PermissionSet = serde_json::from_value(json.clone()).map_err(decode)?;
                checked(set.validate())?;
                out.permission_sets.push(set);
            }
            "role" => {
                let role: Role = serde_json::from_value(json.clone()).map_err(decode)?;
                checked(role.validate())?;
                out.roles.push(role);
            }
            _ => {
                let rule: SharingRule = serde_json::from_value(json.clone()).map_err(decode)?;
                checked(rule.validate())?;
                out.sharing_rules.push(rule);
            }
        }
        Ok(out)
    }

    fn extend(&mut self, other: Self) {
        self.permission_sets.extend(other.permission_sets);
        self.roles.extend(other.roles);
        self.sharing_rules.extend(other.sharing_rules);
    }

    /// The security metadata of a snapshot: the items of the plugin's metadata kinds, which the
    /// engine loaded and validated with the objects (see [`metadata_kinds`]).
    pub fn from_snapshot(snap: &MetadataSnapshot) -> Result<Self, PermissionsError> {
        fn items<T: serde::de::DeserializeOwned>(
            snap: &MetadataSnapshot,
            kind: &str,
        ) -> Result<Vec<T>, PermissionsError> {
            snap.items(kind)
                .iter()
                .map(|i| {
                    serde_json::from_value(i.value.clone())
                        .map_err(|e| PermissionsError::Metadata(vec![format!("{}: {e}", i.file)]))
                })
                .collect()
        }
        Ok(Self {
            permission_sets: items(snap, KIND_PERMISSION)?,
            roles: items(snap, KIND_ROLE)?,
            sharing_rules: items(snap, KIND_SHARING)?,
        })
    }
}

/// The metadata kinds of the security files: `*.permission.yml` (a spec `PermissionSet`, or the
/// ObjectOS profile form, one file per object, whose files merge by set name), `*.role.yml`
/// and `*.sharing.yml`. Items are kept as the spec types' JSON.
pub fn metadata_kinds() -> Vec<MetadataKind> {
    /// Each definition under its `name` (a serialisation failure is reported, not hidden).
    fn named<T: serde::Serialize>(all: Vec<T>) -> ParseResult {
        all.into_iter()
            .map(|item| {
                let value =
                    serde_json::to_value(item).map_err(|e| vec![(String::new(), e.to_string())])?;
                let name = value["name"].as_str().unwrap_or_default().to_owned();
                Ok((name, value))
            })
            .collect()
    }
    vec![
        MetadataKind::new(KIND_PERMISSION, KIND_PERMISSION, |doc| {
            named(SecuritySources::from_document(KIND_PERMISSION, doc)?.permission_sets)
        })
        .merging(),
        MetadataKind::new(KIND_ROLE, KIND_ROLE, |doc| {
            named(SecuritySources::from_document(KIND_ROLE, doc)?.roles)
        }),
        MetadataKind::new(KIND_SHARING, KIND_SHARING, |doc| {
            named(SecuritySources::from_document(KIND_SHARING, doc)?.sharing_rules)
        }),
    ]
}

/// The metadata kind names (also their file suffixes).
pub const KIND_PERMISSION: &str = "permission";
pub const KIND_ROLE: &str = "role";
pub const KIND_SHARING: &str = "sharing";

/// Whether `path` (possibly dotted through lookups) names a field of `schema`.
fn field_exists(snap: &MetadataSnapshot, schema: &ObjectSchema, path: &str) -> bool {
    let mut current: Arc<ObjectSchema>;
    let mut schema = schema;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let name = if part == "_id" { "id" } else { part };
        let Some(field) = schema.field(name) else {
            return false;
        };
        if parts.peek().is_some() {
            let Some(target) = field.reference.as_deref().and_then(|t| snap.object(t)) else {
                return false;
            };
            current = target.clone();
            schema = &current;
        }
    }
    true
}

impl SecurityModel {
    /// Compiles `sources` against the loaded objects: every RLS predicate and sharing condition
    /// is parsed and its fields checked, objects and field keys must exist, the role hierarchy
    /// must be acyclic. All problems are reported at once.
    pub fn compile(
        sources: SecuritySources,
        snap: &MetadataSnapshot,
    ) -> Result<Self, PermissionsError> {
        let mut problems = Vec::new();
        let mut sets: HashMap<String, PermissionSet> = HashMap::new();
        for set in sources.permission_sets {
            match sets.get_mut(&set.name) {
                Some(existing) => existing.merge(&set),
                None => {
                    sets.insert(set.name.clone(), set);
                }
            }
        }
        let mut policies = Vec::new();
        let mut names: Vec<&String> = sets.keys().collect();
        names.sort();
        for name in names {
            let set = &sets[name];
            for object in set.objects.keys() {
                if snap.object(object).is_none() {
                    problems.push(format!(
                        "permission set {name}: objects.{object}: object {object} is not defined"
                    ));
                }
            }
            for key in set.fields.keys() {
                let ok = key
                    .split_once('.')
                    .is_some_and(|(o, f)| snap.object(o).is_some_and(|s| s.field(f).is_some()));
                if !ok {
                    problems.push(format!(
                        "permission set {name}: fields.{key}: no such object field"
                    ));
                }
            }
            for (i, policy) in set.row_level_security.iter().enumerate() {
                let at = format!("permission set {name}: rowLevelSecurity[{i}]");
                let Some(schema) = snap.object(&policy.object) else {
                    problems.push(format!(
                        "{at}.object: object {} is not defined",
                        policy.object
                    ));
                    continue;
                };
                let mut compile = |key: &str, text: &Option<String>| -> Option<Predicate> {
                    let text = text.as_ref()?;
                    match rls::parse(text) {
                        Ok(p) => {
                            for f in p.fields() {
                                if !field_exists(snap, schema, f) {
                                    problems.push(format!(
                                        "{at}.{key}: field {f} does not exist on {}",
                                        policy.object
                                    ));
                                }
                            }
                            Some(p)
                        }
                        Err(e) => {
                            problems.push(format!("{at}.{key}: {e}"));
                            None
                        }
                    }
                };
                let using = compile("using", &policy.using);
                let check = compile("check", &policy.check);
                if policy.enabled {
                    policies.push(CompiledPolicy {
                        name: policy.name.clone(),
                        set: name.clone(),
                        object: policy.object.clone(),
                        operation: policy.operation,
                        using,
                        check,
                        roles: policy.roles.clone(),
                    });
                }
            }
        }
        problems.extend(
            check_role_hierarchy(&sources.roles)
                .into_iter()
                .map(|m| format!("roles: {m}")),
        );
        let mut rules = Vec::new();
        for rule in sources.sharing_rules {
            let common = rule.common();
            let at = format!("sharing rule {}", common.name);
            let Some(schema) = snap.object(&common.object) else {
                problems.push(format!("{at}: object {} is not defined", common.object));
                continue;
            };
            let condition = match &rule {
                SharingRule::Criteria { condition, .. } => match rls::parse(condition) {
                    Ok(p) => {
                        for f in p.fields() {
                            if !field_exists(snap, schema, f) {
                                problems.push(format!(
                                    "{at}: condition: field {f} does not exist on {}",
                                    common.object
                                ));
                            }
                        }
                        Some(p)
                    }
                    Err(e) => {
                        problems.push(format!("{at}: condition: {e}"));
                        None
                    }
                },
                SharingRule::Owner { .. } => None,
            };
            if common.active {
                rules.push(CompiledRule { rule, condition });
            }
        }
        if !problems.is_empty() {
            return Err(PermissionsError::Metadata(problems));
        }
        Ok(Self {
            sets,
            policies,
            roles: sources
                .roles
                .into_iter()
                .map(|r| (r.name.clone(), r))
                .collect(),
            rules,
        })
    }

    /// `role` and every role above it.
    pub fn ancestors(&self, role: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut current = Some(role.to_owned());
        while let Some(r) = current {
            if !seen.insert(r.clone()) {
                break;
            }
            current = self.roles.get(&r).and_then(|x| x.parent.clone());
            out.push(r);
        }
        out
    }

    /// Every role strictly below `role`.
    pub fn subordinates(&self, role: &str) -> HashSet<String> {
        let mut out = HashSet::new();
        let mut frontier = vec![role.to_owned()];
        while let Some(r) = frontier.pop() {
            for child in self.roles.values() {
                if child.parent.as_deref() == Some(r.as_str()) && out.insert(child.name.clone()) {
                    frontier.push(child.name.clone());
                }
            }
        }
        out
    }

    /// The org-wide default of `object`: the object's own `sharingModel`, else `fallback`.
    pub fn sharing_model(
        snap: &MetadataSnapshot,
        object: &str,
        fallback: SharingModel,
    ) -> SharingModel {
        use objectos_spec::object::SharingModel as Declared;
        match snap.object(object).and_then(|o| o.sharing_model) {
            None => fallback,
            Some(Declared::Private) => SharingModel::Private,
            Some(Declared::Read | Declared::PublicRead) => SharingModel::PublicRead,
            Some(Declared::ReadWrite | Declared::Full | Declared::PublicReadWrite) => {
                SharingModel::PublicReadWrite
            }
            Some(Declared::ControlledByParent) => SharingModel::ControlledByParent,
        }
    }
}
