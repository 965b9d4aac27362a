//! The metadata registry: loading object files, validating them all at once, injecting system fields,
//! and the immutable [`MetadataSnapshot`] the engine swaps atomically on reload.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use objectos_spec::object::{
    DeleteBehavior, Field, FieldType, ObjectSchema, Storage, SummaryFunction,
};
use objectos_spec::{Diagnostic, Severity};

use crate::db::Dialect;
use crate::error::{DataError, Result};

/// System fields in wire order (the reference server's order), with their types.
pub(crate) const SYSTEM_FIELD_ORDER: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "organization_id",
    "created_by",
    "updated_by",
    "owner_id",
];

/// The system objects shipped in `presets/base/objects`, embedded at build time: `(path, text)`.
const BASE_OBJECTS: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/base_objects.rs"));

/// An immutable view of every registered object. Readers hold an `Arc` to it; a reload builds a
/// new one and swaps it in, so a request never sees half-loaded metadata.
#[derive(Debug)]
pub struct MetadataSnapshot {
    objects: IndexMap<String, Arc<ObjectSchema>>,
    /// The items of the plugins' metadata kinds, by kind (every contributed kind has an entry).
    pub(crate) items: crate::kinds::Items,
    etags: HashMap<String, String>,
    pub(crate) plans: HashMap<String, Arc<ObjectPlan>>,
    warnings: Vec<Diagnostic>,
}

impl MetadataSnapshot {
    /// The object `name`, with system fields injected.
    pub fn object(&self, name: &str) -> Option<&Arc<ObjectSchema>> {
        self.objects.get(name)
    }

    /// Every object, in load order.
    pub fn objects(&self) -> impl Iterator<Item = &Arc<ObjectSchema>> {
        self.objects.values()
    }

    /// A stable hash of the object's JSON, usable as an HTTP ETag.
    pub fn etag(&self, name: &str) -> Option<&str> {
        self.etags.get(name).map(String::as_str)
    }

    /// The loaded items of a plugin's metadata kind (empty for an unknown kind).
    pub fn items(&self, kind: &str) -> &[crate::kinds::MetaItem] {
        self.items.get(kind).map_or(&[], Vec::as_slice)
    }

    /// One item of a kind.
    pub fn item(&self, kind: &str, name: &str) -> Option<&crate::kinds::MetaItem> {
        self.items(kind).iter().find(|i| i.name == name)
    }

    /// The names of the contributed metadata kinds.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.items.keys().map(String::as_str)
    }

    /// Warnings found while loading (unknown keys and the like).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    pub(crate) fn plan(&self, name: &str) -> Result<&Arc<ObjectPlan>> {
        self.plans
            .get(name)
            .ok_or_else(|| DataError::ObjectNotFound {
                object: name.to_owned(),
            })
    }
}

/// One stored column of an object.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) storage: Storage,
    /// PostgreSQL `NUMERIC(p,s)` (currency): read back through a cast to double precision.
    pub(crate) numeric: Option<(u32, u32)>,
}

/// A summary (roll-up) field: aggregate of a child object's column grouped by the child's reference to us.
#[derive(Debug, Clone)]
pub(crate) struct SummaryPlan {
    pub(crate) field: String,
    /// The child object, whose read interceptors narrow the aggregate to what the reader sees.
    pub(crate) child_object: String,
    pub(crate) child_table: String,
    pub(crate) fk_column: String,
    pub(crate) function: SummaryFunction,
    /// The aggregated child column; `None` for `count`.
    pub(crate) child_column: Option<String>,
    /// `scope: all`: every child in the organization, without the reader's row and field rules.
    pub(crate) all_children: bool,
}

/// A field of another object (or this one) that references this object.
#[derive(Debug, Clone)]
pub(crate) struct ChildRef {
    pub(crate) object: String,
    pub(crate) table: String,
    pub(crate) column: String,
    pub(crate) behavior: DeleteBehavior,
    pub(crate) multiple: bool,
}

/// Everything the engine precomputes about one object, so no request parses metadata.
#[derive(Debug)]
pub(crate) struct ObjectPlan {
    pub(crate) name: String,
    pub(crate) table: String,
    pub(crate) schema: Arc<ObjectSchema>,
    /// True when the object's records belong to one organization each: it stores
    /// `organization_id` and is not a system object (`isSystem`). Its unique fields and unique
    /// indexes hold per organization, and its indexes lead with `organization_id`. System objects
    /// (user, organization, role) are shared by every tenant, so their uniqueness stays global: a
    /// sign-in email or an organization slug must not repeat anywhere.
    pub(crate) tenant_scoped: bool,
    /// Stored columns, system fields first, then declared fields in order.
    pub(crate) columns: Vec<Column>,
    pub(crate) col_index: HashMap<String, usize>,
    /// Output order of a full record (stored and virtual fields, system fields first), each with
    /// its index in `columns` (`None` for virtual fields), so turning a row into a record looks
    /// nothing up by name.
    pub(crate) output_cols: Vec<(String, Option<usize>)>,
    pub(crate) summaries: Vec<SummaryPlan>,
    pub(crate) autonumbers: Vec<(String, Option<String>)>,
    pub(crate) children: Vec<ChildRef>,
    /// Defaults, coercion, field checks, rules and formulas, compiled once per snapshot.
    pub(crate) rules: crate::validate::CompiledRules,
    /// `SELECT <all columns> FROM "table"` for this dialect, prebuilt.
    pub(crate) select_all: String,
    /// `SELECT <all columns>` without the FROM, for selects that add a column.
    pub(crate) select_cols: String,
    /// ` RETURNING <all columns>` (same order and reading as `select_all`), so an INSERT or UPDATE
    /// hands back the stored row without a second query.
    pub(crate) returning: String,
}

impl ObjectPlan {
    pub(crate) fn column(&self, name: &str) -> Option<&Column> {
        self.col_index.get(name).map(|i| &self.columns[*i])
    }

    pub(crate) fn field(&self, name: &str) -> Option<&Field> {
        self.schema.fields.get(name)
    }
}

fn system_field(name: &str, has_user: bool) -> Field {
    let kind = match name {
        "created_at" | "updated_at" => FieldType::Datetime,
        "created_by" | "updated_by" | "owner_id" if has_user => FieldType::Lookup,
        _ => FieldType::Text,
    };
    let mut f = Field::new(name, kind);
    f.readonly = true;
    f.label = Some(
        match name {
            "id" => "ID",
            "created_at" => "Created At",
            "updated_at" => "Updated At",
            "organization_id" => "Organization",
            "created_by" => "Created By",
            "updated_by" => "Updated By",
            _ => "Owner",
        }
        .to_owned(),
    );
    if kind == FieldType::Lookup {
        f.reference = Some("user".to_owned());
    }
    if matches!(
        name,
        "created_at" | "updated_at" | "owner_id" | "organization_id"
    ) {
        f.index = true;
    }
    f
}

/// Puts the system fields first (keeping a declared system field's own definition).
fn inject_system_fields(mut schema: ObjectSchema, has_user: bool) -> ObjectSchema {
    let mut fields = IndexMap::with_capacity(schema.fields.len() + SYSTEM_FIELD_ORDER.len());
    for name in SYSTEM_FIELD_ORDER {
        let f = schema
            .fields
            .shift_remove(*name)
            .unwrap_or_else(|| system_field(name, has_user));
        fields.insert((*name).to_owned(), f);
    }
    for (k, v) in std::mem::take(&mut schema.fields) {
        fields.insert(k, v);
    }
    schema.fields = fields;
    schema
}

/// FNV-1a 64: a hash that stays the same across builds and Rust versions (stored in `_objectos_schema`).
pub(crate) fn stable_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn diag(file: &str, path: &str, message: String) -> Diagnostic {
    Diagnostic {
        file: file.to_owned(),
        line: 0,
        column: 0,
        path: path.to_owned(),
        severity: Severity::Error,
        message,
    }
}

/// Builds a snapshot from schemas, checking the cross-object facts (references, roll-ups) that no
/// single file can check. `sources` names the file of each object for diagnostics.
pub(crate) fn build_snapshot(
    dialect: Dialect,
    schemas: Vec<(String, ObjectSchema)>,
    warnings: Vec<Diagnostic>,
) -> Result<MetadataSnapshot> {
    let mut errors = Vec::new();
    let has_user = schemas.iter().any(|(_, s)| s.name == "user");
    let mut objects: IndexMap<String, Arc<ObjectSchema>> = IndexMap::new();
    let mut files: HashMap<String, String> = HashMap::new();
    for (file, schema) in schemas {
        if let Some(prev) = files.get(&schema.name) {
            errors.push(diag(
                &file,
                "name",
                format!(
                    "object `{}` is already defined in {prev}; object names must be unique",
                    schema.name
                ),
            ));
            continue;
        }
        files.insert(schema.name.clone(), file);
        let schema = inject_system_fields(schema, has_user);
        objects.insert(schema.name.clone(), Arc::new(schema));
    }
    // Cross-object checks.
    for (name, schema) in &objects {
        let file = files.get(name).map(String::as_str).unwrap_or("<memory>");
        for f in schema.fields.values() {
            if let Some(target) = f.reference_target(name)
                && !objects.contains_key(target)
                && (target != "user" || has_user)
            {
                errors.push(diag(
                    file,
                    &format!("fields.{}.reference", f.name),
                    format!("references object `{target}`, which is not defined; define it or fix the name"),
                ));
            }
            if f.kind == FieldType::Summary {
                match &f.summary_operations {
                    None => errors.push(diag(
                        file,
                        &format!("fields.{}.summaryOperations", f.name),
                        "a summary field needs summaryOperations {object, field, function}"
                            .to_owned(),
                    )),
                    Some(op) => match objects.get(&op.object) {
                        None => errors.push(diag(
                            file,
                            &format!("fields.{}.summaryOperations.object", f.name),
                            format!("child object `{}` is not defined", op.object),
                        )),
                        Some(child) => {
                            if !child.fields.values().any(|cf| {
                                cf.reference_target(&child.name) == Some(name.as_str())
                                    && !cf.multiple
                            }) {
                                errors.push(diag(
                                    file,
                                    &format!("fields.{}.summaryOperations.object", f.name),
                                    format!("object `{}` has no lookup or master_detail field referencing `{name}`", op.object),
                                ));
                            }
                            if let Some(cf) = &op.field
                                && op.function != SummaryFunction::Count
                                && child.fields.get(cf).and_then(|x| x.storage()).is_none()
                            {
                                errors.push(diag(
                                    file,
                                    &format!("fields.{}.summaryOperations.field", f.name),
                                    format!("object `{}` has no stored field `{cf}`", op.object),
                                ));
                            }
                        }
                    },
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(metadata_error(errors, warnings));
    }
    let mut plans = HashMap::with_capacity(objects.len());
    let mut etags = HashMap::with_capacity(objects.len());
    for (name, schema) in &objects {
        let json = serde_json::to_string(schema.as_ref()).unwrap_or_default();
        etags.insert(name.clone(), stable_hash(&json));
        let (rules, problems) = crate::validate::CompiledRules::compile_lenient(schema);
        let file = files.get(name).map(String::as_str).unwrap_or("<memory>");
        for p in problems {
            errors.push(diag(file, "", p));
        }
        plans.insert(
            name.clone(),
            Arc::new(make_plan(dialect, schema, &objects, rules)),
        );
    }
    if !errors.is_empty() {
        return Err(metadata_error(errors, warnings));
    }
    Ok(MetadataSnapshot {
        objects,
        items: crate::kinds::Items::new(),
        etags,
        plans,
        warnings,
    })
}

fn make_plan(
    dialect: Dialect,
    schema: &Arc<ObjectSchema>,
    all: &IndexMap<String, Arc<ObjectSchema>>,
    rules: crate::validate::CompiledRules,
) -> ObjectPlan {
    let table = schema.table_name().to_owned();
    let mut columns = Vec::new();
    let mut output = Vec::new();
    let mut summaries = Vec::new();
    let mut autonumbers = Vec::new();
    for f in schema.fields.values() {
        output.push(f.name.clone());
        if let Some(storage) = f.storage() {
            let numeric =
                (f.kind == FieldType::Currency && storage == Storage::Decimal).then(|| {
                    (
                        f.precision.unwrap_or(18).clamp(1, 38),
                        f.scale
                            .unwrap_or(2)
                            .min(f.precision.unwrap_or(18).clamp(1, 38)),
                    )
                });
            columns.push(Column {
                name: f.name.clone(),
                storage,
                numeric,
            });
        }
        match f.kind {
            FieldType::Autonumber => {
                autonumbers.push((f.name.clone(), f.autonumber_format.clone()))
            }
            FieldType::Summary => {
                if let Some(op) = &f.summary_operations
                    && let Some(child) = all.get(&op.object)
                    && let Some(fk) = child.fields.values().find(|cf| {
                        cf.reference_target(&child.name) == Some(schema.name.as_str())
                            && !cf.multiple
                    })
                {
                    summaries.push(SummaryPlan {
                        field: f.name.clone(),
                        child_object: child.name.clone(),
                        child_table: child.table_name().to_owned(),
                        fk_column: fk.name.clone(),
                        function: op.function,
                        child_column: op
                            .field
                            .clone()
                            .filter(|_| op.function != SummaryFunction::Count),
                        all_children: op.scope == objectos_spec::object::SummaryScope::All,
                    });
                }
            }
            _ => {}
        }
    }
    let mut children = Vec::new();
    for other in all.values() {
        for cf in other.fields.values() {
            if cf.reference_target(&other.name) == Some(schema.name.as_str())
                && cf.storage().is_some()
                && !SYSTEM_FIELD_ORDER.contains(&cf.name.as_str())
            {
                children.push(ChildRef {
                    object: other.name.clone(),
                    table: other.table_name().to_owned(),
                    column: cf.name.clone(),
                    behavior: cf.delete_behavior(),
                    multiple: cf.multiple,
                });
            }
        }
    }
    let col_index: HashMap<String, usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.clone(), i))
        .collect();
    let mut select_all = String::from("SELECT ");
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            select_all.push_str(", ");
        }
        select_all.push_str(&column_expr(dialect, &table, c));
    }
    let select_cols = select_all.clone();
    select_all.push_str(" FROM ");
    select_all.push_str(&dialect.quote(&table));
    // RETURNING names the modified table's columns unqualified (SQLite refuses `"t"."c"` there).
    let mut returning = String::from(" RETURNING ");
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            returning.push_str(", ");
        }
        let q = dialect.quote(&c.name);
        if dialect == Dialect::Postgres && c.numeric.is_some() {
            returning.push_str(&format!("CAST({q} AS DOUBLE PRECISION)"));
        } else {
            returning.push_str(&q);
        }
    }
    let output_cols = output
        .into_iter()
        .map(|name| {
            let col = col_index.get(&name).copied();
            (name, col)
        })
        .collect();
    let tenant_scoped = !schema.is_system && col_index.contains_key("organization_id");
    ObjectPlan {
        name: schema.name.clone(),
        table,
        schema: schema.clone(),
        tenant_scoped,
        columns,
        col_index,
        output_cols,
        summaries,
        autonumbers,
        children,
        rules,
        select_all,
        select_cols,
        returning,
    }
}

/// The select-list expression of a column (a cast for PostgreSQL NUMERIC so it reads as f64).
pub(crate) fn column_expr(dialect: Dialect, table: &str, c: &Column) -> String {
    let q = format!("{}.{}", dialect.quote(table), dialect.quote(&c.name));
    if dialect == Dialect::Postgres && c.numeric.is_some() {
        format!("CAST({q} AS DOUBLE PRECISION)")
    } else {
        q
    }
}

/// Schemas with the file each came from, plus the warnings found while loading.
pub(crate) type Loaded = (Vec<(String, ObjectSchema)>, Vec<Diagnostic>);

/// Files under `dir` (recursively) named `*.object.yml|yaml|json`, sorted.
fn object_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            object_files(&path, out)?;
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str())
            && (name.ends_with(".object.yml")
                || name.ends_with(".object.yaml")
                || name.ends_with(".object.json"))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Parses one file with the spec loader: the schema plus its warnings, or every error.
fn parse_object(
    file: &str,
    text: &str,
) -> std::result::Result<(ObjectSchema, Vec<Diagnostic>), Vec<Diagnostic>> {
    let loaded = objectos_spec::object::load_object(
        file,
        text,
        objectos_spec::yaml::Format::from_path(file),
    );
    let (errors, warnings): (Vec<Diagnostic>, Vec<Diagnostic>) = loaded
        .diagnostics
        .into_iter()
        .partition(Diagnostic::is_error);
    match loaded.value {
        Some(schema) if errors.is_empty() => Ok((schema, warnings)),
        _ if errors.is_empty() => Err(vec![diag(
            file,
            "",
            "the file does not define an object".to_owned(),
        )]),
        _ => Err(errors.into_iter().chain(warnings).collect()),
    }
}

/// The name of the object a file defines (`None` when it does not parse).
pub(crate) fn object_name(file: &str, text: &str) -> Option<String> {
    parse_object(file, text).ok().map(|(schema, _)| schema.name)
}

/// Reads the configured folders (and the embedded base objects), validating everything and
/// reporting all errors at once.
pub(crate) fn load_schemas(
    dirs: &[PathBuf],
    include_base: bool,
    owned: &[crate::owned::PluginSchema],
) -> Result<Loaded> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut schemas = Vec::new();
    let mut sources: Vec<(String, String)> = Vec::new();
    if include_base {
        for (path, text) in BASE_OBJECTS {
            sources.push(((*path).to_owned(), (*text).to_owned()));
        }
    }
    // Plugins' objects come before the user's folders, so an object a user defines again is
    // reported in the user's file, naming the plugin that owns it.
    for schema in owned {
        for (path, text) in schema.objects() {
            sources.push((schema.object_label(path), text.clone()));
        }
    }
    for dir in dirs {
        let mut files = Vec::new();
        if let Err(e) = object_files(dir, &mut files) {
            errors.push(diag(
                &dir.display().to_string(),
                "",
                format!("cannot read metadata folder: {e}"),
            ));
            continue;
        }
        for file in files {
            let name = file.display().to_string();
            match std::fs::read_to_string(&file) {
                Ok(text) => sources.push((name, text)),
                Err(e) => errors.push(diag(&name, "", format!("cannot read file: {e}"))),
            }
        }
    }
    for (file, text) in sources {
        match parse_object(&file, &text) {
            Ok((schema, mut w)) => {
                warnings.append(&mut w);
                schemas.push((file, schema));
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok((schemas, warnings))
    } else {
        Err(metadata_error(errors, warnings))
    }
}

/// The error of a metadata load: errors before warnings, each in report order (a file that could
/// not be read first: its syntax error is the cause of whatever else goes wrong; then by file
/// and line), the order `objectos validate` prints them in.
pub(crate) fn metadata_error(
    mut errors: Vec<Diagnostic>,
    mut warnings: Vec<Diagnostic>,
) -> DataError {
    objectos_spec::audit::sort_diagnostics(&mut errors);
    objectos_spec::audit::sort_diagnostics(&mut warnings);
    errors.append(&mut warnings);
    DataError::Metadata {
        diagnostics: errors,
    }
}
