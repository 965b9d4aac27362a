//! Validation of object files on the located tree: every problem of a file at once, with YAML path and line.

use super::check::{
    Kind, MapView, Pos, Sink, check_kind, describe, key, key_a, list, suggest, to_snake, view,
};
use super::{
    ApiMethod, FieldType, ObjectSchema, RuleKind, SharingModel, is_system_field, is_valid_name,
};
use crate::yaml::{self, Format, Loaded, Located, LocatedKey, join};

/// What the audit needs to know about one object file for its cross-file checks.
#[derive(Debug, Clone, Default)]
pub(crate) struct ObjectFacts {
    /// The object name and where it is written.
    pub(crate) name: Option<(String, Pos)>,
    /// Declared field names.
    pub(crate) fields: Vec<String>,
    /// References to other objects.
    pub(crate) references: Vec<Reference>,
}

/// One reference from a field to another object.
#[derive(Debug, Clone)]
pub(crate) struct Reference {
    pub(crate) pos: Pos,
    pub(crate) path: String,
    pub(crate) target: String,
    /// For summaries: the aggregated child field, its position and path.
    pub(crate) summary_field: Option<(String, Pos, String)>,
}

/// Parses and validates one object file (`*.object.yml` or `*.object.json`).
///
/// Reports every problem at once; `value` is `None` when any of them is an error.
pub fn load_object(file: &str, text: &str, format: Format) -> Loaded<ObjectSchema> {
    load_object_with_facts(file, text, format).0
}

pub(crate) fn load_object_with_facts(
    file: &str,
    text: &str,
    format: Format,
) -> (Loaded<ObjectSchema>, ObjectFacts) {
    let parsed = yaml::parse(file, text, format);
    let mut sink = Sink::new(file);
    sink.diagnostics = parsed.diagnostics;
    let Some(root) = parsed.root else {
        return (
            Loaded {
                value: None,
                diagnostics: sink.diagnostics,
            },
            ObjectFacts::default(),
        );
    };
    let facts = check_object(&mut sink, &root);
    let value = if sink.has_errors() {
        None
    } else {
        match serde_json::from_value::<ObjectSchema>(root.to_json()) {
            Ok(v) => Some(v),
            Err(e) => {
                // The checks above should catch everything serde refuses; this is the safety net.
                sink.error(&root, "", format!("cannot read object definition: {e}"));
                None
            }
        }
    };
    (
        Loaded {
            value,
            diagnostics: sink.diagnostics,
        },
        facts,
    )
}

const OBJECT_KEYS: &[super::check::Key] = &[
    key("name", Kind::Str),
    key("label", Kind::Str),
    key_a("pluralLabel", &["plural_label"], Kind::Str),
    key("description", Kind::Str),
    key("icon", Kind::Str),
    key("tags", Kind::StrList),
    key("active", Kind::Bool),
    key_a("isSystem", &["is_system"], Kind::Bool),
    key("abstract", Kind::Bool),
    key("datasource", Kind::Str),
    key_a("tableName", &["table_name"], Kind::Str),
    key("fields", Kind::Map),
    key("indexes", Kind::Seq),
    key("validations", Kind::Seq),
    key_a("stateMachines", &["state_machines"], Kind::Any),
    key_a("fieldGroups", &["field_groups"], Kind::Any),
    key_a("displayNameField", &["display_name_field"], Kind::Str),
    key_a("titleFormat", &["title_format"], Kind::Str),
    key_a("recordName", &["record_name"], Kind::Map),
    key_a("compactLayout", &["compact_layout"], Kind::StrList),
    key_a("recordTypes", &["record_types"], Kind::Any),
    key_a("keyPrefix", &["key_prefix"], Kind::Str),
    key("search", Kind::Any),
    key_a(
        "sharingModel",
        &["sharing_model"],
        Kind::OneOf(SharingModel::NAMES),
    ),
    key("enable", Kind::Map),
    key("tenancy", Kind::Map),
    key_a("softDelete", &["soft_delete"], Kind::BoolOrMap),
    key("versioning", Kind::Any),
    key("partitioning", Kind::Any),
    key("cdc", Kind::Any),
    key("hidden", Kind::Bool),
    key("actions", Kind::Any),
    // Keys of the ObjectStack 17.x object schema that ObjectOS does not act on. Left out, so
    // errors: `access`, `requiredPermissions`, `publicSharing`, `externalSharingModel` (who may
    // see what) and `external` (where the data lives), which it cannot honour.
    key("managedBy", Kind::Unused),
    key("ownership", Kind::Unused),
    key("userActions", Kind::Unused),
    key("systemFields", Kind::Unused),
    key("lifecycle", Kind::Unused),
    key("fileAccessDelegate", Kind::Unused),
    key("activityMilestones", Kind::Unused),
    key("nameField", Kind::Unused),
    key("highlightFields", Kind::Unused),
    key("stageField", Kind::Unused),
    key("editMode", Kind::Unused),
    key("listViews", Kind::Unused),
    key("searchableFields", Kind::Unused),
    key("protection", Kind::Unused),
    key("_lock", Kind::Unused),
    key("_lockReason", Kind::Unused),
    key("_lockSource", Kind::Unused),
    key("_provenance", Kind::Unused),
    key("_packageId", Kind::Unused),
    key("_packageVersion", Kind::Unused),
    key("_lockDocsUrl", Kind::Unused),
];

const DELETE_BEHAVIORS: &[&str] = &["set_null", "cascade", "restrict"];

const FIELD_KEYS: &[super::check::Key] = &[
    key("name", Kind::Str),
    key("label", Kind::Str),
    key("type", Kind::Str),
    key("description", Kind::Str),
    key("format", Kind::Str),
    key("required", Kind::Bool),
    key("searchable", Kind::Bool),
    key("multiple", Kind::Bool),
    key("unique", Kind::Bool),
    key("hidden", Kind::Bool),
    key_a("readonly", &["read_only"], Kind::Bool),
    key("index", Kind::Bool),
    key_a("externalId", &["external_id"], Kind::Bool),
    key("sortable", Kind::Bool),
    key_a("defaultValue", &["default", "default_value"], Kind::Any),
    key_a("maxLength", &["max_length"], Kind::Int),
    key_a("minLength", &["min_length"], Kind::Int),
    key("precision", Kind::Int),
    key("scale", Kind::Int),
    key("min", Kind::Num),
    key("max", Kind::Num),
    key("step", Kind::Num),
    key("options", Kind::Seq),
    key_a("reference", &["reference_to"], Kind::Str),
    key_a("referenceFilters", &["reference_filters"], Kind::Seq),
    key_a(
        "deleteBehavior",
        &["delete_behavior"],
        Kind::OneOf(DELETE_BEHAVIORS),
    ),
    key("expression", Kind::Str),
    key_a("summaryOperations", &["summary_operations"], Kind::Map),
    key_a("autonumberFormat", &["autonumber_format"], Kind::Str),
    key("blackbox", Kind::Bool),
    key("group", Kind::Str),
    key_a("inlineHelpText", &["inline_help_text"], Kind::Str),
    key_a("conditionalRequired", &["conditional_required"], Kind::Str),
    key_a("auditTrail", &["audit_trail"], Kind::Bool),
    key("dependencies", Kind::StrList),
    key_a("currencyConfig", &["currency_config"], Kind::Any),
    key_a("vectorConfig", &["vector_config"], Kind::Map),
    key_a(
        "fileAttachmentConfig",
        &["file_attachment_config"],
        Kind::Any,
    ),
    key_a("encryptionConfig", &["encryption_config"], Kind::Any),
    key_a("maskingRule", &["masking_rule"], Kind::Any),
    // Keys of the ObjectStack 17.x field schema that ObjectOS does not act on (UI hints, package
    // provenance). Keys whose meaning it cannot honour without changing who may see or write what
    // (`requiredWhen`, `readonlyWhen`, `requiredPermissions`) are left out, so they are errors.
    key("storage", Kind::Unused),
    key("valueDomain", Kind::Unused),
    key("rows", Kind::Unused),
    key("useGrouping", Kind::Unused),
    key("accept", Kind::Unused),
    key("maxSize", Kind::Unused),
    key("referenceVia", Kind::Unused),
    key("inlineEdit", Kind::Unused),
    key("inlineTitle", Kind::Unused),
    key("inlineColumns", Kind::Unused),
    key("inlineAmountField", Kind::Unused),
    key("relatedList", Kind::Unused),
    key("relatedListTitle", Kind::Unused),
    key("relatedListColumns", Kind::Unused),
    key("relatedListFilter", Kind::Unused),
    key("displayField", Kind::Unused),
    key("descriptionField", Kind::Unused),
    key("lookupColumns", Kind::Unused),
    key("lookupPageSize", Kind::Unused),
    key("lookupFilters", Kind::Unused),
    key("dependsOn", Kind::Unused),
    key("allowCreate", Kind::Unused),
    key("returnType", Kind::Unused),
    key("language", Kind::Unused),
    key("dimensions", Kind::Unused),
    key("trackHistory", Kind::Unused),
    key("visibleWhen", Kind::Unused),
    key("widget", Kind::Unused),
    key("internal", Kind::Unused),
    key("ackPlaintextMasking", Kind::Unused),
    key("system", Kind::Unused),
    key("placeholder", Kind::Unused),
    key("_lock", Kind::Unused),
    key("_lockReason", Kind::Unused),
    key("_lockSource", Kind::Unused),
    key("_provenance", Kind::Unused),
    key("_packageId", Kind::Unused),
    key("_packageVersion", Kind::Unused),
    key("_lockDocsUrl", Kind::Unused),
];

const OPTION_KEYS: &[super::check::Key] = &[
    key("label", Kind::Str),
    key("value", Kind::Str),
    key("color", Kind::Str),
    key("default", Kind::Bool),
];

const SUMMARY_FUNCTIONS: &[&str] = &["count", "sum", "min", "max", "avg"];

const SUMMARY_KEYS: &[super::check::Key] = &[
    key("object", Kind::Str),
    key("field", Kind::Str),
    key("function", Kind::OneOf(SUMMARY_FUNCTIONS)),
    // ObjectOS extension (`SummaryScope`): `visible` (default) or `all`.
    key("scope", Kind::OneOf(&["visible", "all"])),
];

const VECTOR_KEYS: &[super::check::Key] = &[
    key("dimensions", Kind::Int),
    key_a(
        "distanceMetric",
        &["distance_metric"],
        Kind::OneOf(&["cosine", "euclidean", "dot_product"]),
    ),
];

const INDEX_TYPES: &[&str] = &["btree", "hash", "gin", "gist", "fulltext"];

const INDEX_KEYS: &[super::check::Key] = &[
    key("name", Kind::Str),
    key("fields", Kind::StrList),
    key("type", Kind::OneOf(INDEX_TYPES)),
    key("unique", Kind::Bool),
    key("partial", Kind::Str),
];

const ENABLE_KEYS: &[super::check::Key] = &[
    key_a("trackHistory", &["track_history"], Kind::Bool),
    key("files", Kind::Bool),
    key("feeds", Kind::Bool),
    key("activities", Kind::Bool),
    key("searchable", Kind::Bool),
    key_a("apiEnabled", &["api_enabled"], Kind::Bool),
    key("trash", Kind::Bool),
    key("mru", Kind::Bool),
    key("clone", Kind::Bool),
    key_a("apiMethods", &["api_methods"], Kind::StrList),
];

const TENANCY_KEYS: &[super::check::Key] = &[
    key("strategy", Kind::OneOf(&["shared", "isolated", "hybrid"])),
    key_a("tenantField", &["tenant_field"], Kind::Str),
];

const SOFT_DELETE_KEYS: &[super::check::Key] =
    &[key("enabled", Kind::Bool), key("field", Kind::Str)];

const RECORD_NAME_KEYS: &[super::check::Key] = &[
    key("type", Kind::OneOf(&["text", "autonumber"])),
    key_a("displayFormat", &["display_format"], Kind::Str),
    key_a("startNumber", &["start_number"], Kind::Int),
];

const RULE_BASE_KEYS: &[super::check::Key] = &[
    key("name", Kind::Str),
    key("label", Kind::Str),
    key("description", Kind::Str),
    key("type", Kind::Str),
    key("message", Kind::Str),
    key("active", Kind::Bool),
    key("events", Kind::StrList),
    key("priority", Kind::Int),
    key("severity", Kind::OneOf(&["error", "warning", "info"])),
    key("tags", Kind::StrList),
];

/// Keys of each rule type beyond the shared ones.
fn rule_type_keys(kind: &str) -> &'static [super::check::Key] {
    const SCRIPT: &[super::check::Key] = &[key("condition", Kind::Str)];
    const UNIQUE: &[super::check::Key] = &[
        key("fields", Kind::StrList),
        key("scope", Kind::Str),
        key_a("caseSensitive", &["case_sensitive"], Kind::Bool),
    ];
    const STATE_MACHINE: &[super::check::Key] =
        &[key("field", Kind::Str), key("transitions", Kind::Map)];
    const FORMAT: &[super::check::Key] = &[
        key("field", Kind::Str),
        key("regex", Kind::Str),
        key("format", Kind::OneOf(&["email", "url", "phone", "json"])),
    ];
    const CROSS_FIELD: &[super::check::Key] =
        &[key("condition", Kind::Str), key("fields", Kind::StrList)];
    const JSON_SCHEMA: &[super::check::Key] = &[key("field", Kind::Str), key("schema", Kind::Map)];
    const ASYNC: &[super::check::Key] = &[
        key("field", Kind::Str),
        key_a("validatorUrl", &["validator_url"], Kind::Str),
        key_a("validatorFunction", &["validator_function"], Kind::Str),
        key("method", Kind::OneOf(&["GET", "POST"])),
        key("timeout", Kind::Int),
        key("debounce", Kind::Int),
        key("headers", Kind::Map),
        key("params", Kind::Any),
    ];
    const CUSTOM: &[super::check::Key] = &[key("handler", Kind::Str), key("params", Kind::Any)];
    const CONDITIONAL: &[super::check::Key] = &[
        key("when", Kind::Str),
        key("then", Kind::Map),
        key("otherwise", Kind::Map),
    ];
    match kind {
        "script" => SCRIPT,
        "unique" => UNIQUE,
        "state_machine" => STATE_MACHINE,
        "format" => FORMAT,
        "cross_field" => CROSS_FIELD,
        "json_schema" => JSON_SCHEMA,
        "async" => ASYNC,
        "custom" => CUSTOM,
        "conditional" => CONDITIONAL,
        _ => &[],
    }
}

/// What the rule and index checks need to know about the object's fields.
struct Ctx {
    fields: Vec<FieldInfo>,
}

struct FieldInfo {
    name: String,
    kind: Option<FieldType>,
    options: Vec<String>,
}

impl Ctx {
    fn field(&self, name: &str) -> Option<&FieldInfo> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Reports `name` when it is neither a declared nor a system field.
    fn check_field_ref(&self, sink: &mut Sink, name: &str, node: &Located, path: &str) -> bool {
        if self.field(name).is_some() || is_system_field(name) {
            return true;
        }
        let hint = suggest(name, self.fields.iter().map(|f| f.name.as_str()))
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_else(|| {
                if self.fields.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; fields are {}",
                        list(self.fields.iter().map(|f| f.name.as_str()))
                    )
                }
            });
        sink.error(
            node,
            path,
            format!("`{name}` is not a field of this object{hint}"),
        );
        false
    }
}

/// Checks a whole object document; returns what cross-file checks need.
pub(crate) fn check_object(sink: &mut Sink, root: &Located) -> ObjectFacts {
    let mut facts = ObjectFacts::default();
    let Some(obj) = view(
        sink,
        root,
        Pos::from(root),
        "",
        "an object file",
        OBJECT_KEYS,
        true,
    ) else {
        return facts;
    };

    if let Some(node) = obj.require(sink, "name", "the object's API name, such as `invoice`")
        && let Some(name) = node.as_str()
    {
        check_name(sink, node, &obj.path_of("name"), "object name", name);
        facts.name = Some((name.to_owned(), Pos::from(node)));
    }

    let mut ctx = Ctx { fields: Vec::new() };
    let fields_node = obj.require(
        sink,
        "fields",
        "a mapping from field name to field definition, such as `fields: { title: { type: text } }`",
    );
    if let Some(entries) = fields_node.and_then(Located::entries) {
        // Names, types and options first, so fields and rules can refer to any field.
        for (k, v) in entries {
            let kind = v
                .get("type")
                .and_then(Located::as_str)
                .and_then(FieldType::parse);
            let options = v
                .get("options")
                .and_then(Located::items)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|o| o.as_str().or_else(|| o.get("value")?.as_str()))
                        .fold(Vec::<String>::new(), |mut acc, v| {
                            if !acc.iter().any(|a| a == v) {
                                acc.push(v.to_owned());
                            }
                            acc
                        })
                })
                .unwrap_or_default();
            ctx.fields.push(FieldInfo {
                name: k.name.clone(),
                kind,
                options,
            });
            facts.fields.push(k.name.clone());
        }
        let fields_path = obj.path_of("fields");
        if entries.is_empty() && obj.bool("abstract") != Some(true) {
            sink.warning(
                obj.key_pos("fields"),
                &fields_path,
                "`fields` is empty; records will only have the system fields",
            );
        }
        for (k, v) in entries {
            check_field(sink, &ctx, k, v, &join(&fields_path, &k.name), &mut facts);
        }
    }

    if let Some(items) = obj.get("indexes").and_then(Located::items) {
        let path = obj.path_of("indexes");
        let mut names: Vec<(&str, usize)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            let Some(ix) = view(
                sink,
                item,
                Pos::from(item),
                &ipath,
                "an index",
                INDEX_KEYS,
                true,
            ) else {
                continue;
            };
            if let Some(name_node) = ix.get("name")
                && let Some(name) = name_node.as_str()
            {
                check_name(sink, name_node, &ix.path_of("name"), "index name", name);
                if let Some((_, line)) = names.iter().find(|(n, _)| *n == name) {
                    sink.error(
                        name_node,
                        &ix.path_of("name"),
                        format!("duplicate index name `{name}` (first used at line {line})"),
                    );
                } else {
                    names.push((name, name_node.line));
                }
            }
            if ix
                .require(sink, "fields", "the list of fields the index covers")
                .is_some()
            {
                let fields = ix.strs("fields");
                if fields.is_empty() {
                    sink.error(
                        ix.key_pos("fields"),
                        &ix.path_of("fields"),
                        "an index needs at least one field",
                    );
                }
                for (j, (f, node)) in fields.iter().enumerate() {
                    ctx.check_field_ref(sink, f, node, &format!("{}[{j}]", ix.path_of("fields")));
                }
            }
        }
    }

    if let Some(items) = obj.get("validations").and_then(Located::items) {
        let path = obj.path_of("validations");
        let mut names: Vec<(String, usize)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let rpath = format!("{path}[{i}]");
            if let Some((name, line)) = check_rule(sink, &ctx, item, &rpath, true) {
                if let Some((_, first)) = names.iter().find(|(n, _)| *n == name) {
                    sink.error(
                        Pos { line, column: 0 },
                        &format!("{rpath}.name"),
                        format!(
                            "duplicate validation rule name `{name}` (first used at line {first}); rule names must be unique within an object"
                        ),
                    );
                } else {
                    names.push((name, line));
                }
            }
        }
    }

    if let Some(node) = obj.get("displayNameField")
        && let Some(name) = node.as_str()
    {
        ctx.check_field_ref(sink, name, node, &obj.path_of("displayNameField"));
    }
    if let Some(node) = obj.get("titleFormat")
        && let Some(format) = node.as_str()
    {
        for placeholder in placeholders(format) {
            ctx.check_field_ref(sink, placeholder, node, &obj.path_of("titleFormat"));
        }
    }
    for (i, (name, node)) in obj.strs("compactLayout").iter().enumerate() {
        ctx.check_field_ref(
            sink,
            name,
            node,
            &format!("{}[{i}]", obj.path_of("compactLayout")),
        );
    }
    check_object_settings(sink, &obj, &ctx);
    facts
}

/// `enable`, `tenancy`, `softDelete` and `recordName`.
fn check_object_settings(sink: &mut Sink, obj: &MapView<'_>, ctx: &Ctx) {
    if let Some(node) = obj.get("enable")
        && let Some(enable) = view(
            sink,
            node,
            obj.key_pos("enable"),
            &obj.path_of("enable"),
            "`enable`",
            ENABLE_KEYS,
            true,
        )
    {
        for (i, (method, node)) in enable.strs("apiMethods").iter().enumerate() {
            if !ApiMethod::NAMES.contains(method) {
                let hint = suggest(method, ApiMethod::NAMES.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                sink.error(
                    *node,
                    &format!("{}[{i}]", enable.path_of("apiMethods")),
                    format!(
                        "unknown API method `{method}`{hint}; expected one of {}",
                        list(ApiMethod::NAMES.iter().copied())
                    ),
                );
            }
        }
    }
    if let Some(node) = obj.get("tenancy")
        && let Some(t) = view(
            sink,
            node,
            obj.key_pos("tenancy"),
            &obj.path_of("tenancy"),
            "`tenancy`",
            TENANCY_KEYS,
            true,
        )
        && let Some(f) = t.get("tenantField")
        && let Some(name) = f.as_str()
    {
        check_name(sink, f, &t.path_of("tenantField"), "tenant field", name);
    }
    if let Some(node) = obj.get("softDelete")
        && node.entries().is_some()
        && let Some(s) = view(
            sink,
            node,
            obj.key_pos("softDelete"),
            &obj.path_of("softDelete"),
            "`softDelete`",
            SOFT_DELETE_KEYS,
            true,
        )
        && let Some(f) = s.get("field")
        && let Some(name) = f.as_str()
    {
        check_name(sink, f, &s.path_of("field"), "soft-delete field", name);
        if ctx.field(name).is_some() {
            sink.warning(
                f,
                &s.path_of("field"),
                format!("`{name}` is also declared in `fields`; the soft-delete column is managed by the engine"),
            );
        }
    }
    if let Some(node) = obj.get("recordName")
        && let Some(r) = view(
            sink,
            node,
            obj.key_pos("recordName"),
            &obj.path_of("recordName"),
            "`recordName`",
            RECORD_NAME_KEYS,
            true,
        )
        && r.str("type") == Some("autonumber")
    {
        match r.get("displayFormat") {
            Some(f) => {
                if let Some(format) = f.as_str()
                    && let Err(e) = check_autonumber_format(format)
                {
                    sink.error(f, &r.path_of("displayFormat"), e);
                }
            }
            None => sink.error(
                r.pos,
                &r.path,
                "an autonumber record name needs `displayFormat`, such as `INV-{0000}`",
            ),
        }
    }
}

/// Reports a name that does not match `^[a-z_][a-z0-9_]*$`.
fn check_name(sink: &mut Sink, node: &Located, path: &str, what: &str, name: &str) -> bool {
    if is_valid_name(name) {
        return true;
    }
    sink.error(
        node,
        path,
        format!(
            "{what} `{name}` is invalid: use lowercase letters, digits and `_`, starting with a letter or `_` (pattern ^[a-z_][a-z0-9_]*$), e.g. `{}`",
            to_snake(name)
        ),
    );
    false
}

/// Rule types people reach for under another name.
fn rule_type_alias_hint(t: &str) -> Option<&'static str> {
    Some(match t {
        "regex" | "pattern" | "email" | "url" => "format",
        "expression" | "formula" | "condition" | "required" => "script",
        "uniqueness" | "distinct" => "unique",
        "transition" | "workflow" | "states" => "state_machine",
        "schema" | "jsonschema" => "json_schema",
        "remote" | "http" => "async",
        "if" | "when" => "conditional",
        _ => return None,
    })
}

/// Common misnamings of field types, from other schema languages.
fn type_alias_hint(t: &str) -> Option<&'static str> {
    Some(match t {
        "string" | "str" | "varchar" | "char" => "text",
        "int" | "integer" | "float" | "double" | "decimal" | "numeric" | "money" => "number",
        "bool" => "boolean",
        "reference" | "ref" | "foreign_key" | "relation" | "belongs_to" => "lookup",
        "enum" | "picklist" | "dropdown" | "choice" => "select",
        "array" | "list" => "tags",
        "timestamp" | "date_time" => "datetime",
        "long_text" | "longtext" => "textarea",
        _ => return None,
    })
}

fn check_field(
    sink: &mut Sink,
    ctx: &Ctx,
    key: &LocatedKey,
    node: &Located,
    path: &str,
    facts: &mut ObjectFacts,
) {
    let name = key.name.as_str();
    if is_system_field(name) || name == "_id" {
        sink.error(
            key,
            path,
            format!(
                "`{name}` is a system field that every object gets automatically ({}); remove it or choose another name",
                list(super::SYSTEM_FIELDS.iter().copied())
            ),
        );
    } else if !is_valid_name(name) {
        sink.error(
            key,
            path,
            format!(
                "field name `{name}` is invalid: use lowercase letters, digits and `_`, starting with a letter or `_` (pattern ^[a-z_][a-z0-9_]*$), e.g. `{}`",
                to_snake(name)
            ),
        );
    }
    if node.is_null() {
        sink.error(key, path, "field has no definition; expected a mapping with at least `type`, such as `{ type: text }`");
        return;
    }
    let what = format!("field `{name}`");
    let Some(f) = view(sink, node, Pos::from(key), path, &what, FIELD_KEYS, true) else {
        return;
    };
    if let Some(n) = f.get("name")
        && let Some(inner) = n.as_str()
        && inner != name
    {
        sink.error(
            n,
            &f.path_of("name"),
            format!("`name: {inner}` differs from the field's key `{name}`; the key is the field name, so remove `name` or make them equal"),
        );
    }

    let kind = match f.require(
        sink,
        "type",
        "the field type, such as `text`, `number`, `select` or `lookup`",
    ) {
        Some(t) => match t.as_str() {
            Some(s) => match FieldType::parse(s) {
                Some(k) => Some(k),
                None => {
                    let guess = suggest(s, FieldType::ALL.iter().map(|t| t.as_str()))
                        .or_else(|| type_alias_hint(&s.to_ascii_lowercase()));
                    let hint = guess
                        .map(|g| format!("did you mean `{g}`? "))
                        .unwrap_or_default();
                    sink.error(
                        t,
                        &f.path_of("type"),
                        format!(
                            "unknown field type `{s}`; {hint}expected one of {}",
                            list(FieldType::ALL.iter().map(|t| t.as_str()))
                        ),
                    );
                    None
                }
            },
            None => None,
        },
        None => None,
    };

    check_ranges(sink, &f);
    for (i, (dep, dnode)) in f.strs("dependencies").iter().enumerate() {
        ctx.check_field_ref(
            sink,
            dep,
            dnode,
            &format!("{}[{i}]", f.path_of("dependencies")),
        );
    }
    let Some(kind) = kind else { return };
    let tname = kind.as_str();

    // Choices.
    if kind.is_choice() {
        check_options(sink, &f, kind);
    } else if f.has("options") {
        sink.warning(
            f.key_pos("options"),
            &f.path_of("options"),
            format!("`options` has no effect on a `{tname}` field; only select, multiselect, radio and checkboxes use it"),
        );
    }

    // References.
    if kind.requires_reference() {
        let hint = format!(
            "a `{tname}` field needs `reference`: the name of the object it points to, such as `account`"
        );
        if let Some(r) = f.require_or(sink, "reference", &hint) {
            push_reference(sink, facts, &f, r);
        }
    } else if kind.is_reference() {
        if let Some(r) = f.get("reference") {
            push_reference(sink, facts, &f, r);
        }
    } else if f.has("reference") {
        sink.warning(
            f.key_pos("reference"),
            &f.path_of("reference"),
            format!("`reference` has no effect on a `{tname}` field; only lookup, master_detail, tree and user fields point at other objects"),
        );
    }
    if f.has("deleteBehavior") && !kind.is_reference() {
        sink.warning(
            f.key_pos("deleteBehavior"),
            &f.path_of("deleteBehavior"),
            format!("`deleteBehavior` has no effect on a `{tname}` field; it applies to reference fields"),
        );
    }

    // Computed values.
    match kind {
        FieldType::Formula => {
            if let Some(e) = f.require_or(sink, "expression", "a `formula` field needs `expression`, such as `ROUND(total * 0.2, 2)`")
                && e.as_str().is_some_and(|s| s.trim().is_empty())
            {
                sink.error(e, &f.path_of("expression"), "`expression` is empty; expected a formula such as `ROUND(total * 0.2, 2)`");
            }
        }
        FieldType::Summary => {
            if let Some(s) = f.require_or(
                sink,
                "summaryOperations",
                "a `summary` field needs `summaryOperations: { object, field, function }`, such as `{ object: invoice_line, field: amount, function: sum }`",
            ) {
                check_summary(sink, facts, &f, s);
            }
        }
        FieldType::Autonumber => {
            if let Some(node) = f.get("autonumberFormat")
                && let Some(format) = node.as_str()
                && let Err(e) = check_autonumber_format(format)
            {
                sink.error(node, &f.path_of("autonumberFormat"), e);
            }
        }
        FieldType::Vector => {
            if let Some(node) = f.get("vectorConfig")
                && let Some(v) = view(sink, node, f.key_pos("vectorConfig"), &f.path_of("vectorConfig"), "`vectorConfig`", VECTOR_KEYS, true)
            {
                v.require(sink, "dimensions", "the number of dimensions of the embedding, such as 1536");
            }
        }
        _ => {}
    }
    if kind != FieldType::Formula && f.has("expression") {
        sink.warning(
            f.key_pos("expression"),
            &f.path_of("expression"),
            format!("`expression` has no effect on a `{tname}` field; use `type: formula` for a computed field"),
        );
    }
    if kind != FieldType::Summary && f.has("summaryOperations") {
        sink.warning(
            f.key_pos("summaryOperations"),
            &f.path_of("summaryOperations"),
            format!("`summaryOperations` has no effect on a `{tname}` field; use `type: summary` for a roll-up"),
        );
    }
    if kind != FieldType::Autonumber && f.has("autonumberFormat") {
        sink.warning(
            f.key_pos("autonumberFormat"),
            &f.path_of("autonumberFormat"),
            format!(
                "`autonumberFormat` has no effect on a `{tname}` field; use `type: autonumber`"
            ),
        );
    }
    check_default(
        sink,
        &f,
        kind,
        ctx.field(&key.name)
            .map(|i| i.options.as_slice())
            .unwrap_or(&[]),
    );
}

fn push_reference(sink: &mut Sink, facts: &mut ObjectFacts, f: &MapView<'_>, r: &Located) {
    let Some(target) = r.as_str() else { return };
    if check_name(
        sink,
        r,
        &f.path_of("reference"),
        "referenced object name",
        target,
    ) {
        facts.references.push(Reference {
            pos: Pos::from(r),
            path: f.path_of("reference"),
            target: target.to_owned(),
            summary_field: None,
        });
    }
}

fn check_summary(sink: &mut Sink, facts: &mut ObjectFacts, f: &MapView<'_>, node: &Located) {
    let path = f.path_of("summaryOperations");
    let Some(s) = view(
        sink,
        node,
        f.key_pos("summaryOperations"),
        &path,
        "`summaryOperations`",
        SUMMARY_KEYS,
        true,
    ) else {
        return;
    };
    let object = s.require(
        sink,
        "object",
        "the child object whose records are aggregated, such as `invoice_line`",
    );
    let function = s.require(
        sink,
        "function",
        "one of `count`, `sum`, `min`, `max` or `avg`",
    );
    let field = s.get("field");
    if function
        .and_then(Located::as_str)
        .is_some_and(|f| f != "count")
        && !s.has("field")
    {
        s.require(
            sink,
            "field",
            "the child field to aggregate (only `count` needs none)",
        );
    }
    if let Some(o) = object
        && let Some(target) = o.as_str()
        && check_name(
            sink,
            o,
            &s.path_of("object"),
            "summarised object name",
            target,
        )
    {
        facts.references.push(Reference {
            pos: Pos::from(o),
            path: s.path_of("object"),
            target: target.to_owned(),
            summary_field: field.and_then(|n| {
                n.as_str()
                    .map(|name| (name.to_owned(), Pos::from(n), s.path_of("field")))
            }),
        });
    }
}

fn check_options(sink: &mut Sink, f: &MapView<'_>, kind: FieldType) {
    let tname = kind.as_str();
    let needs = format!(
        "a `{tname}` field needs `options`: a list of choices such as `[{{ label: Open, value: open }}, {{ label: Closed, value: closed }}]`"
    );
    let Some(node) = f.require_or(sink, "options", &needs) else {
        return;
    };
    let Some(items) = node.items() else { return };
    let path = f.path_of("options");
    if items.is_empty() {
        sink.error(
            f.key_pos("options"),
            &path,
            format!("`options` is empty; {needs}"),
        );
        return;
    }
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut defaults: Vec<usize> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ipath = format!("{path}[{i}]");
        let (value, vnode, vpath) = match item.as_str() {
            Some(s) => (s, item, ipath.clone()),
            None if item.entries().is_none() => {
                sink.error(
                    item,
                    &ipath,
                    format!("expected an option: a string or a mapping such as `{{ label: Open, value: open }}`, found {}", describe(item)),
                );
                continue;
            }
            None => {
                let Some(o) = view(
                    sink,
                    item,
                    Pos::from(item),
                    &ipath,
                    "an option",
                    OPTION_KEYS,
                    true,
                ) else {
                    continue;
                };
                o.require(sink, "label", "the text shown for this choice");
                if o.bool("default") == Some(true) {
                    defaults.push(item.line);
                }
                let Some(v) = o.require(
                    sink,
                    "value",
                    "the stored value of this choice, lowercase, such as `open`",
                ) else {
                    continue;
                };
                let Some(s) = v.as_str() else { continue };
                (s, v, o.path_of("value"))
            }
        };
        if value.is_empty() {
            sink.error(
                vnode,
                &vpath,
                "option value is empty; expected a lowercase value such as `open`",
            );
            continue;
        }
        if value != value.to_lowercase() {
            sink.error(
                vnode,
                &vpath,
                format!(
                    "option value `{value}` must be lowercase; write `{{ label: {value}, value: {} }}` (the label keeps its capitals)",
                    value.to_lowercase()
                ),
            );
        }
        if let Some((_, line)) = seen.iter().find(|(v, _)| v == value) {
            sink.error(vnode, &vpath, format!("duplicate option value `{value}` (first used at line {line}); option values must be unique"));
        } else {
            seen.push((value.to_owned(), vnode.line));
        }
    }
    let multiple = kind.is_multi_choice() || f.bool("multiple") == Some(true);
    if defaults.len() > 1 && !multiple {
        sink.error(
            f.key_pos("options"),
            &path,
            format!(
                "{} options are marked `default: true` (lines {}); a single-choice `{tname}` field can have one default",
                defaults.len(),
                defaults.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ),
        );
    }
}

/// min/max, minLength/maxLength, precision/scale.
fn check_ranges(sink: &mut Sink, f: &MapView<'_>) {
    if let (Some(min), Some(max)) = (f.f64("min"), f.f64("max"))
        && min > max
    {
        sink.error(
            f.key_pos("min"),
            &f.path_of("min"),
            format!("`min` ({min}) is greater than `max` ({max}); expected min <= max"),
        );
    }
    if let (Some(min), Some(max)) = (f.u64("minLength"), f.u64("maxLength"))
        && min > max
    {
        sink.error(
            f.key_pos("minLength"),
            &f.path_of("minLength"),
            format!("`minLength` ({min}) is greater than `maxLength` ({max}); expected minLength <= maxLength"),
        );
    }
    if f.u64("maxLength") == Some(0) {
        sink.error(
            f.key_pos("maxLength"),
            &f.path_of("maxLength"),
            "`maxLength` is 0; expected at least 1",
        );
    }
    if let (Some(precision), Some(scale)) = (f.u64("precision"), f.u64("scale"))
        && scale > precision
    {
        sink.error(
            f.key_pos("scale"),
            &f.path_of("scale"),
            format!("`scale` ({scale}) is greater than `precision` ({precision}); the digits after the point are part of the total"),
        );
    }
    if let Some(p) = f.u64("precision")
        && !(1..=38).contains(&p)
    {
        sink.error(
            f.key_pos("precision"),
            &f.path_of("precision"),
            format!("`precision` is {p}; expected 1 to 38 digits"),
        );
    }
    if let Some(step) = f.f64("step")
        && step <= 0.0
    {
        sink.error(
            f.key_pos("step"),
            &f.path_of("step"),
            format!("`step` is {step}; expected a number greater than 0"),
        );
    }
}

/// `defaultValue` must suit the field type.
fn check_default(sink: &mut Sink, f: &MapView<'_>, kind: FieldType, options: &[String]) {
    let Some(d) = f.get("defaultValue") else {
        return;
    };
    if d.is_null() {
        return;
    }
    let path = f.path_of("defaultValue");
    let tname = kind.as_str();
    if kind.is_computed() {
        sink.warning(
            d,
            &path,
            format!("a default has no effect on a `{tname}` field; its value is computed"),
        );
        return;
    }
    let multiple = kind.is_multi_choice() || f.bool("multiple") == Some(true);
    match kind {
        _ if kind.is_choice() && !options.is_empty() => {
            let values: Vec<&Located> = match (d.items(), multiple) {
                (Some(items), true) => items.iter().collect(),
                _ => vec![d],
            };
            for v in values {
                match v.as_str() {
                    Some(s) if options.iter().any(|o| o == s) => {}
                    Some(s) => sink.error(
                        v,
                        &path,
                        format!(
                            "default `{s}` is not one of the option values {}",
                            list(options.iter().map(String::as_str))
                        ),
                    ),
                    None => sink.error(
                        v,
                        &path,
                        format!(
                            "expected an option value such as `{}`, found {}",
                            options[0],
                            describe(v)
                        ),
                    ),
                }
            }
        }
        FieldType::Boolean | FieldType::Toggle => {
            check_kind(sink, d, &path, Kind::Bool);
        }
        _ if kind.is_numeric() => {
            check_kind(sink, d, &path, Kind::Num);
        }
        _ if kind.is_text() => {
            check_kind(sink, d, &path, Kind::Str);
        }
        _ => {}
    }
}

/// `{name}` placeholders of a template.
fn placeholders(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        let inner = after[..end].trim();
        if !inner.is_empty() {
            out.push(inner);
        }
        rest = &after[end + 1..];
    }
    out
}

/// An autonumber pattern has exactly one counter `{0000}` and only date placeholders besides.
fn check_autonumber_format(format: &str) -> Result<(), String> {
    let mut depth = 0i32;
    for c in format.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(format!(
                "autonumber format `{format}` has unbalanced `{{` and `}}`; expected a pattern such as `CASE-{{0000}}`"
            ));
        }
    }
    if depth != 0 {
        return Err(format!(
            "autonumber format `{format}` has an unclosed `{{`; expected a pattern such as `CASE-{{0000}}`"
        ));
    }
    let mut counters = 0;
    for p in placeholders(format) {
        if p.chars().all(|c| c == '0') {
            counters += 1;
        } else if !matches!(p, "YYYY" | "YY" | "MM" | "DD") {
            return Err(format!(
                "autonumber format `{format}` has an unknown placeholder `{{{p}}}`; use `{{0000}}` for the counter (one 0 per digit) and `{{YYYY}}`, `{{YY}}`, `{{MM}}`, `{{DD}}` for the date"
            ));
        }
    }
    match counters {
        1 => Ok(()),
        0 => Err(format!(
            "autonumber format `{format}` has no counter; add one such as `{{0000}}` (one 0 per digit), e.g. `CASE-{{0000}}`"
        )),
        n => Err(format!(
            "autonumber format `{format}` has {n} counters; expected exactly one such as `{{0000}}`"
        )),
    }
}

/// Checks one validation rule; returns its name and line for the duplicate check.
fn check_rule(
    sink: &mut Sink,
    ctx: &Ctx,
    node: &Located,
    path: &str,
    top_level: bool,
) -> Option<(String, usize)> {
    let declared = node.get("type").and_then(Located::as_str);
    let known_type = declared.filter(|t| RuleKind::TYPES.contains(t));
    let keys: Vec<super::check::Key> = match known_type {
        Some(t) => RULE_BASE_KEYS
            .iter()
            .chain(rule_type_keys(t))
            .copied()
            .collect(),
        None => RULE_BASE_KEYS
            .iter()
            .copied()
            .chain(
                RuleKind::TYPES
                    .iter()
                    .flat_map(|t| rule_type_keys(t).iter().copied()),
            )
            .collect(),
    };
    let r = view(
        sink,
        node,
        Pos::from(node),
        path,
        "a validation rule",
        &keys,
        known_type.is_some(),
    )?;
    let mut result = None;
    if top_level {
        if let Some(n) = r.require(sink, "name", "a unique rule name such as `amount_positive`")
            && let Some(name) = n.as_str()
        {
            check_name(sink, n, &r.path_of("name"), "rule name", name);
            result = Some((name.to_owned(), n.line));
        }
        r.require(
            sink,
            "message",
            "the text shown to the user when the rule fails",
        );
    }
    for (i, (event, enode)) in r.strs("events").iter().enumerate() {
        if !matches!(*event, "insert" | "update" | "delete") {
            sink.error(
                *enode,
                &format!("{}[{i}]", r.path_of("events")),
                format!("unknown event `{event}`; expected `insert`, `update` or `delete`"),
            );
        }
    }
    let types = list(RuleKind::TYPES.iter().copied());
    let Some(t) = r.require(sink, "type", &format!("the rule type: {types}")) else {
        return result;
    };
    let Some(t) = t.as_str().map(|s| (s, t)).and_then(|(s, n)| {
        if known_type.is_some() {
            Some(s)
        } else {
            let hint = suggest(s, RuleKind::TYPES.iter().copied())
                .or_else(|| rule_type_alias_hint(s))
                .map(|g| format!("did you mean `{g}`? "))
                .unwrap_or_default();
            sink.error(
                n,
                &r.path_of("type"),
                format!("unknown validation rule type `{s}`; {hint}expected one of {types}"),
            );
            None
        }
    }) else {
        return result;
    };
    let field_ref = |sink: &mut Sink, key: &str| -> Option<(&str, &Located)> {
        let n = r.require(sink, key, "the field this rule checks")?;
        let name = n.as_str()?;
        ctx.check_field_ref(sink, name, n, &r.path_of(key))
            .then_some((name, n))
    };
    let fields_ref = |sink: &mut Sink, what: &str| {
        if r.require(sink, "fields", what).is_some() {
            let fields = r.strs("fields");
            if fields.is_empty() {
                sink.error(
                    r.key_pos("fields"),
                    &r.path_of("fields"),
                    "`fields` is empty; expected at least one field name",
                );
            }
            for (i, (name, n)) in fields.iter().enumerate() {
                ctx.check_field_ref(sink, name, n, &format!("{}[{i}]", r.path_of("fields")));
            }
        }
    };
    let non_empty = |sink: &mut Sink, key: &str, hint: &str| {
        if let Some(n) = r.require(sink, key, hint)
            && n.as_str().is_some_and(|s| s.trim().is_empty())
        {
            sink.error(
                n,
                &r.path_of(key),
                format!("`{key}` is empty; expected {hint}"),
            );
        }
    };
    match t {
        "script" => non_empty(
            sink,
            "condition",
            "a formula that is TRUE when the record is invalid, such as `amount < 0`",
        ),
        "unique" => fields_ref(sink, "the fields whose combination must be unique"),
        "state_machine" => {
            let field = field_ref(sink, "field");
            if let Some(tr) = r.require(sink, "transitions", "a mapping from each state to the states it may move to, such as `{ draft: [sent], sent: [paid] }`")
                && let Some(entries) = tr.entries()
            {
                let options: &[String] = field
                    .and_then(|(name, _)| ctx.field(name))
                    .filter(|i| i.kind.is_some_and(FieldType::is_choice))
                    .map(|i| i.options.as_slice())
                    .unwrap_or(&[]);
                let tpath = r.path_of("transitions");
                for (from, targets) in entries {
                    let from_path = join(&tpath, &from.name);
                    let field_name = field.map_or("", |(n, _)| n);
                    check_state(sink, options, field_name, &from.name, from.line, from.column, &from_path);
                    if check_kind(sink, targets, &from_path, Kind::StrList) {
                        for (i, to) in targets.items().unwrap_or(&[]).iter().enumerate() {
                            if let Some(s) = to.as_str() {
                                check_state(sink, options, field_name, s, to.line, to.column, &format!("{from_path}[{i}]"));
                            }
                        }
                    }
                }
            }
        }
        "format" => {
            field_ref(sink, "field");
            match (r.get("regex"), r.has("format")) {
                (None, false) if !r.has("regex") => sink.error(
                    r.pos,
                    &r.path,
                    "a `format` rule needs `regex` (a regular expression) or `format` (`email`, `url`, `phone` or `json`)",
                ),
                (Some(re), _) => {
                    if let Some(pattern) = re.as_str()
                        && let Err(e) = regex::Regex::new(pattern)
                    {
                        let text = e.to_string();
                        let last = text.lines().last().unwrap_or("").trim();
                        let msg = last.strip_prefix("error: ").unwrap_or(last).to_owned();
                        sink.error(re, &r.path_of("regex"), format!("`regex` is not a valid regular expression: {msg}"));
                    }
                }
                _ => {}
            }
        }
        "cross_field" => {
            non_empty(
                sink,
                "condition",
                "a formula over several fields that is TRUE when the record is invalid, such as `end_date < start_date`",
            );
            fields_ref(sink, "the fields the condition reads");
        }
        "json_schema" => {
            field_ref(sink, "field");
            r.require(
                sink,
                "schema",
                "a JSON Schema mapping the field's value must match",
            );
        }
        "async" => {
            field_ref(sink, "field");
            if !r.has("validatorUrl") && !r.has("validatorFunction") {
                sink.error(r.pos, &r.path, "an `async` rule needs `validatorUrl` (the URL that validates the value) or `validatorFunction`");
            }
        }
        "custom" => non_empty(
            sink,
            "handler",
            "the name of a registered validation handler",
        ),
        "conditional" => {
            non_empty(
                sink,
                "when",
                "a formula selecting when `then` applies, such as `type == 'business'`",
            );
            if let Some(then) = r.require(sink, "then", "the rule applied when `when` is true") {
                check_rule(sink, ctx, then, &r.path_of("then"), false);
            }
            if let Some(otherwise) = r.get("otherwise") {
                check_rule(sink, ctx, otherwise, &r.path_of("otherwise"), false);
            }
        }
        _ => {}
    }
    result
}

/// A state of a state machine must be one of the select field's option values, when it has options.
fn check_state(
    sink: &mut Sink,
    options: &[String],
    field: &str,
    state: &str,
    line: usize,
    column: usize,
    path: &str,
) {
    if options.is_empty() || options.iter().any(|o| o == state) {
        return;
    }
    let hint = suggest(state, options.iter().map(String::as_str))
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    sink.error(
        Pos { line, column },
        path,
        format!(
            "state `{state}` is not an option value of field `{field}`{hint}; expected one of {}",
            list(options.iter().map(String::as_str))
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autonumber_formats() {
        assert!(check_autonumber_format("CASE-{0000}").is_ok());
        assert!(check_autonumber_format("{YYYY}{MM}-{000000}").is_ok());
        assert!(
            check_autonumber_format("CASE")
                .unwrap_err()
                .contains("no counter")
        );
        assert!(
            check_autonumber_format("CASE-{0000")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(
            check_autonumber_format("CASE-{00}-{00}")
                .unwrap_err()
                .contains("2 counters")
        );
        assert!(
            check_autonumber_format("{X}{0}")
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(
            check_autonumber_format("}{0}")
                .unwrap_err()
                .contains("unbalanced")
        );
    }

    #[test]
    fn placeholders_of_templates() {
        assert_eq!(placeholders("{name} - {stage}"), ["name", "stage"]);
        assert_eq!(placeholders("{ unclosed"), Vec::<&str>::new());
    }
}
