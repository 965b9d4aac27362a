//! The audit of `*.permission.yml` files: the spec `PermissionSet` form and the ObjectOS profile
//! form (protocol.md section 5), recognised by `objectName`, each checked on the located tree
//! (shapes, unknown keys), then with the types' own `validate()`, every problem located by line.
//! The objects and fields a file names are kept for the cross-file check against the audited
//! objects.

use crate::diag::Diagnostic;
use crate::object::check::{Key, Kind, Pos, Sink, key, key_a, view};
use crate::security::{ObjectOsPermission, PermissionSet, Problem};
use crate::yaml::{self, Format, Located, join};

/// An object (and optionally a field of it) a permission file names, with where it is named.
#[derive(Debug, Clone)]
pub(crate) struct NamedRef {
    pub(crate) pos: Pos,
    pub(crate) path: String,
    pub(crate) object: String,
    pub(crate) field: Option<String>,
}

const TAB_VALUES: &[&str] = &["visible", "hidden", "default_on", "default_off"];
const RLS_OPERATIONS: &[&str] = &["select", "insert", "update", "delete", "all"];

const SET_KEYS: &[Key] = &[
    key("name", Kind::Str),
    key("label", Kind::Str),
    key("description", Kind::Str),
    key("isProfile", Kind::Bool),
    key("objects", Kind::Map),
    key("fields", Kind::Map),
    key("systemPermissions", Kind::StrList),
    key("tabPermissions", Kind::Map),
    key("rowLevelSecurity", Kind::Seq),
];

const OBJECT_PERMISSION_KEYS: &[Key] = &[
    key("allowCreate", Kind::Bool),
    key("allowRead", Kind::Bool),
    key("allowEdit", Kind::Bool),
    key("allowDelete", Kind::Bool),
    key("allowTransfer", Kind::Bool),
    key("allowRestore", Kind::Bool),
    key("allowPurge", Kind::Bool),
    key("viewAllRecords", Kind::Bool),
    key("modifyAllRecords", Kind::Bool),
];

const FIELD_PERMISSION_KEYS: &[Key] = &[key("readable", Kind::Bool), key("editable", Kind::Bool)];

const RLS_KEYS: &[Key] = &[
    key("name", Kind::Str),
    key("label", Kind::Str),
    key("description", Kind::Str),
    key("object", Kind::Str),
    key("operation", Kind::OneOf(RLS_OPERATIONS)),
    key("using", Kind::Str),
    key("check", Kind::Str),
    key("roles", Kind::StrList),
    key("enabled", Kind::Bool),
    key("priority", Kind::Num),
];

const PROFILE_FILE_KEYS: &[Key] = &[
    key("name", Kind::Str),
    key_a("objectName", &["object_name"], Kind::Str),
    key("label", Kind::Str),
    key("description", Kind::Str),
    key("profiles", Kind::Map),
    key("fieldPermissions", Kind::Map),
];

const PROFILE_KEYS: &[Key] = &[
    key("allowRead", Kind::Bool),
    key("allowCreate", Kind::Bool),
    key("allowEdit", Kind::Bool),
    key("allowDelete", Kind::Bool),
    key("viewFilters", Kind::Map),
];

const PROFILE_FIELD_KEYS: &[Key] = &[
    key("visibleTo", Kind::StrList),
    key("editableBy", Kind::StrList),
];

/// Checks one permission file; returns its diagnostics and the objects and fields it names.
pub(crate) fn check_permission_file(
    file: &str,
    text: &str,
    format: Format,
) -> (Vec<Diagnostic>, Vec<NamedRef>) {
    let parsed = yaml::parse(file, text, format);
    let mut sink = Sink::new(file);
    sink.diagnostics.extend(parsed.diagnostics);
    let mut refs = Vec::new();
    let Some(root) = parsed.root else {
        return (sink.diagnostics, refs);
    };
    let top = Pos::from(&root);
    if root.get("objectName").is_some() || root.get("object_name").is_some() {
        check_profile_form(&mut sink, &root, top, &mut refs);
    } else {
        check_set_form(&mut sink, &root, top, &mut refs);
    }
    (sink.diagnostics, refs)
}

/// Checks that every value of a mapping is a mapping with `keys`.
fn each_entry(sink: &mut Sink, node: Option<&Located>, path: &str, what: &str, keys: &[Key]) {
    let Some(entries) = node.and_then(Located::entries) else {
        return;
    };
    for (k, v) in entries {
        let _ = view(
            sink,
            v,
            Pos::from(k),
            &join(path, &k.name),
            what,
            keys,
            true,
        );
    }
}

fn check_set_form(sink: &mut Sink, root: &Located, top: Pos, refs: &mut Vec<NamedRef>) {
    let Some(m) = view(sink, root, top, "", "a permission set", SET_KEYS, true) else {
        return;
    };
    m.require(
        sink,
        "name",
        "the permission set's name, such as `sales_rep`",
    );
    let objects = m.get("objects");
    each_entry(
        sink,
        objects,
        "objects",
        "an object permission",
        OBJECT_PERMISSION_KEYS,
    );
    for (k, _) in objects.and_then(Located::entries).unwrap_or_default() {
        refs.push(NamedRef {
            pos: Pos::from(k),
            path: join("objects", &k.name),
            object: k.name.clone(),
            field: None,
        });
    }
    let fields = m.get("fields");
    each_entry(
        sink,
        fields,
        "fields",
        "a field permission",
        FIELD_PERMISSION_KEYS,
    );
    for (k, _) in fields.and_then(Located::entries).unwrap_or_default() {
        if let Some((object, field)) = k.name.split_once('.') {
            refs.push(NamedRef {
                pos: Pos::from(k),
                path: join("fields", &k.name),
                object: object.to_owned(),
                field: Some(field.to_owned()),
            });
        }
    }
    if let Some(tabs) = m.get("tabPermissions").and_then(Located::entries) {
        for (k, v) in tabs {
            crate::object::check::check_kind(
                sink,
                v,
                &join("tabPermissions", &k.name),
                Kind::OneOf(TAB_VALUES),
            );
        }
    }
    if let Some(items) = m.get("rowLevelSecurity").and_then(Located::items) {
        for (i, item) in items.iter().enumerate() {
            let path = format!("rowLevelSecurity[{i}]");
            let Some(p) = view(
                sink,
                item,
                Pos::from(item),
                &path,
                "an RLS policy",
                RLS_KEYS,
                true,
            ) else {
                continue;
            };
            p.require(sink, "name", "the policy's name");
            p.require(sink, "operation", "select, insert, update, delete or all");
            if let Some(name) = p
                .require(sink, "object", "the object the policy restricts")
                .and_then(Located::as_str)
            {
                refs.push(NamedRef {
                    pos: p.key_pos("object"),
                    path: p.path_of("object"),
                    object: name.to_owned(),
                    field: None,
                });
            }
        }
    }
    if sink.has_shape_errors() {
        return;
    }
    match serde_json::from_value::<PermissionSet>(root.to_json()) {
        Ok(set) => locate_problems(sink, root, set.validate()),
        Err(e) => sink.error(top, "", format!("not a permission set: {e}")),
    }
}

fn check_profile_form(sink: &mut Sink, root: &Located, top: Pos, refs: &mut Vec<NamedRef>) {
    let Some(m) = view(
        sink,
        root,
        top,
        "",
        "an ObjectOS profile permission",
        PROFILE_FILE_KEYS,
        true,
    ) else {
        return;
    };
    m.require(sink, "name", "the permission's name");
    m.require(
        sink,
        "profiles",
        "profile name -> {allowRead, allowCreate, allowEdit, allowDelete, viewFilters}",
    );
    each_entry(
        sink,
        m.get("profiles"),
        "profiles",
        "a profile permission",
        PROFILE_KEYS,
    );
    let fields = m.get("fieldPermissions");
    each_entry(
        sink,
        fields,
        "fieldPermissions",
        "a field permission",
        PROFILE_FIELD_KEYS,
    );
    if let Some(object) = m.str("objectName") {
        refs.push(NamedRef {
            pos: m.key_pos("objectName"),
            path: m.path_of("objectName"),
            object: object.to_owned(),
            field: None,
        });
        for (k, _) in fields.and_then(Located::entries).unwrap_or_default() {
            refs.push(NamedRef {
                pos: Pos::from(k),
                path: join("fieldPermissions", &k.name),
                object: object.to_owned(),
                field: Some(k.name.clone()),
            });
        }
    }
    if sink.has_shape_errors() {
        return;
    }
    let mut json = root.to_json();
    // The snake_case spelling is accepted like the camelCase one.
    if let Some(obj) = json.as_object_mut()
        && let Some(v) = obj.remove("object_name")
    {
        obj.insert("objectName".to_owned(), v);
    }
    match serde_json::from_value::<ObjectOsPermission>(json) {
        Ok(p) => locate_problems(sink, root, p.validate()),
        Err(e) => sink.error(top, "", format!("not an ObjectOS profile permission: {e}")),
    }
}

/// Reports each `validate()` problem as an error at the node its path names.
fn locate_problems(sink: &mut Sink, root: &Located, problems: Vec<Problem>) {
    for (path, message) in problems {
        let pos = locate(root, &path);
        sink.error(pos, &path, message);
    }
}

/// The position of the node `path` names (see [`Located::position_of`]).
fn locate(root: &Located, path: &str) -> Pos {
    let (line, column) = root.position_of(path);
    Pos { line, column }
}
