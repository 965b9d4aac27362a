//! `GET /api/v1/openapi.json`: an OpenAPI 3.1 document generated from the loaded metadata (the
//! page that shows it, `/api/v1/docs`, is in `docs.rs`).
//!
//! The document is rebuilt per request from the current metadata snapshot, so a metadata reload is
//! reflected at once; it is small (a few schemas and ten paths per object). Routes contributed by
//! other plugins are added from their operation descriptions, tagged with their service.

use std::collections::HashSet;
use std::sync::Arc;

use salvo::prelude::*;
use serde_json::{Map, Value, json};

use crate::contribution::{RouteContribution, RouteSecurity};
use crate::error::HttpError;
use crate::routes::API_BASE;
use crate::schema_view::{FieldView, ObjectView};
use crate::state::ApiState;

/// The route contributions being served, put in the depot by the server for this document.
#[derive(Clone, Debug)]
pub struct Contributed(pub Arc<[RouteContribution]>);

/// The session cookie set by the auth plugin (the ObjectStack protocol's name for it).
const SESSION_COOKIE: &str = "better-auth.session_token";

/// `openapi.json` and `docs/`, relative to the API base.
pub fn router() -> Router {
    Router::new()
        .push(Router::with_path("openapi.json").get(openapi_json))
        .push(crate::routes::docs::router())
}

/// JSON Schema of one field's values (`nullable` adds `null` to the type, OpenAPI 3.1 style).
fn field_schema(field: &FieldView, for_output: bool) -> Value {
    let mut schema = match field.kind() {
        "text" | "textarea" | "password" | "markdown" | "html" | "richtext" | "code" | "color"
        | "phone" | "autonumber" | "signature" | "qrcode" | "secret" => {
            json!({ "type": "string" })
        }
        "email" => json!({ "type": "string", "format": "email" }),
        "url" => json!({ "type": "string", "format": "uri" }),
        "number" | "currency" | "percent" | "rating" | "slider" | "progress" | "summary" => {
            json!({ "type": "number" })
        }
        "integer" => json!({ "type": "integer" }),
        "boolean" | "toggle" | "checkbox" => json!({ "type": "boolean" }),
        "date" => json!({ "type": "string", "format": "date" }),
        "datetime" => json!({ "type": "string", "format": "date-time" }),
        "time" => json!({ "type": "string", "format": "time" }),
        "select" | "radio" => {
            let values = field.option_values();
            if values.is_empty() {
                json!({ "type": "string" })
            } else {
                json!({ "enum": values })
            }
        }
        "multiselect" | "checkboxes" | "tags" => {
            let values = field.option_values();
            let items = if values.is_empty() {
                json!({ "type": "string" })
            } else {
                json!({ "enum": values })
            };
            json!({ "type": "array", "items": items })
        }
        "lookup" | "master_detail" | "tree" | "user" => {
            let reference = field.reference().unwrap_or("record");
            let id =
                json!({ "type": "string", "description": format!("Id of a {reference} record") });
            if for_output {
                // An expanded lookup comes back as the referenced record.
                json!({ "oneOf": [id, { "type": "object", "description": format!("The {reference} record (when expanded)") }] })
            } else {
                id
            }
        }
        "json" | "object" | "location" | "address" | "composite" | "record" => {
            json!({ "type": "object" })
        }
        "array" => json!({ "type": "array" }),
        "repeater" => json!({ "type": "array", "items": { "type": "object" } }),
        "vector" => json!({ "type": "array", "items": { "type": "number" } }),
        _ => json!({}),
    };
    if field.multiple()
        && !matches!(
            field.kind(),
            "multiselect" | "checkboxes" | "tags" | "array"
        )
    {
        schema = json!({ "type": "array", "items": schema });
    }
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("title".into(), Value::String(field.label()));
        if let Some(desc) = field.def.get("description").and_then(Value::as_str) {
            obj.insert("description".into(), Value::String(desc.to_owned()));
        }
        if field.readonly() || field.system() {
            obj.insert("readOnly".into(), Value::Bool(true));
        }
    }
    // A stored value may be null whatever the field says today (a field made required later,
    // a system field on a single-tenant server, a lookup left empty), so every output value is
    // nullable; input is nullable unless the field is required.
    if for_output || !field.required() {
        nullable(&mut schema);
    }
    schema
}

/// Lets `schema` also accept `null`, in the form it is written in: a `type` gains `"null"`, an
/// `enum` the value `null`, a `oneOf` a null branch; a schema without either accepts it already.
fn nullable(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::String(t)) = obj.get("type").cloned() {
        obj.insert("type".into(), json!([t, "null"]));
    } else if let Some(Value::Array(values)) = obj.get_mut("enum") {
        if !values.contains(&Value::Null) {
            values.push(Value::Null);
        }
    } else if let Some(Value::Array(branches)) = obj.get_mut("oneOf") {
        branches.push(json!({ "type": "null" }));
    }
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn error_responses(codes: &[(&str, &str)]) -> Map<String, Value> {
    codes
        .iter()
        .map(|(status, description)| {
            (
                (*status).to_owned(),
                json!({ "description": description, "content": json_content(schema_ref("Error")) }),
            )
        })
        .collect()
}

fn op(
    summary: String,
    tag: &str,
    params: Vec<Value>,
    body: Option<Value>,
    ok: (&str, Value),
    errors: &[(&str, &str)],
) -> Value {
    let mut responses = Map::new();
    responses.insert(
        ok.0.to_owned(),
        json!({ "description": "Success", "content": json_content(ok.1) }),
    );
    responses.extend(error_responses(errors));
    // What any data operation may answer besides its own errors: no credential (with an auth
    // plugin), a permission refused, a write rate exceeded, the database unavailable.
    for (status, description) in [
        ("401", "Not signed in (when an auth plugin is installed)"),
        ("403", "Not allowed for this caller"),
        ("429", "Too many requests or writes; retry later"),
        ("503", "The database is not available; retry later"),
    ] {
        responses.entry(status).or_insert_with(
            || json!({ "description": description, "content": json_content(schema_ref("Error")) }),
        );
    }
    let mut o =
        json!({ "summary": summary, "tags": [tag], "parameters": params, "responses": responses });
    if let (Some(body), Some(obj)) = (body, o.as_object_mut()) {
        obj.insert(
            "requestBody".into(),
            json!({ "required": true, "content": json_content(body) }),
        );
    }
    o
}

fn param_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{name}") })
}

/// The security schemes a request may use: a bearer session token (or API key), the session
/// cookie, or an `X-API-Key` header.
fn security_schemes() -> Value {
    json!({
        "bearerAuth": { "type": "http", "scheme": "bearer", "description": "Session token (the set-auth-token header of sign-in), or an API key" },
        "sessionCookie": { "type": "apiKey", "in": "cookie", "name": SESSION_COOKIE },
        "apiKey": { "type": "apiKey", "in": "header", "name": "X-API-Key" },
    })
}

/// An operation's `security`: any one scheme suffices; `{}` makes credentials optional.
fn security_of(security: RouteSecurity) -> Value {
    let any = [
        json!({ "bearerAuth": [] }),
        json!({ "sessionCookie": [] }),
        json!({ "apiKey": [] }),
    ];
    match security {
        RouteSecurity::Public => json!([]),
        RouteSecurity::Optional => {
            let mut v = vec![json!({})];
            v.extend(any);
            Value::Array(v)
        }
        RouteSecurity::Required => Value::Array(any.to_vec()),
    }
}

/// `{name}` segments of a salvo path template, as OpenAPI path parameters (a `{name:regex}` or
/// `{**rest}` pattern keeps only the name).
fn path_params(template: &str) -> (String, Vec<Value>) {
    let mut params = Vec::new();
    let segments: Vec<String> = template
        .split('/')
        .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(inner) => {
                let name = inner
                    .trim_start_matches('*')
                    .split(':')
                    .next()
                    .unwrap_or(inner)
                    .to_owned();
                params.push(json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }));
                format!("{{{name}}}")
            }
            None => seg.to_owned(),
        })
        .collect();
    (segments.join("/"), params)
}

/// An operationId from the method and path, made unique against `seen`.
fn operation_id(method: &str, path: &str, seen: &mut HashSet<String>) -> String {
    let mut base = method.to_owned();
    let mut prev_sep = true;
    for ch in path.chars() {
        if ch.is_ascii_alphanumeric() {
            if prev_sep {
                base.push(ch.to_ascii_uppercase());
            } else {
                base.push(ch);
            }
            prev_sep = false;
        } else {
            prev_sep = true;
        }
    }
    let mut id = base.clone();
    let mut n = 2;
    while !seen.insert(id.clone()) {
        id = format!("{base}{n}");
        n += 1;
    }
    id
}

/// Adds every described operation of `contributions` to `paths`, and a tag per service.
fn add_contributed(
    contributions: &[RouteContribution],
    paths: &mut Map<String, Value>,
    tags: &mut Vec<Value>,
) {
    let mut seen = HashSet::new();
    let mut tagged: HashSet<String> = tags
        .iter()
        .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    for c in contributions {
        if c.operations.is_empty() {
            continue;
        }
        let mount = c.absolute_mount();
        let service = c
            .service_name()
            .map(str::to_owned)
            .unwrap_or_else(|| mount.clone());
        if tagged.insert(service.clone()) {
            tags.push(json!({ "name": service, "description": format!("Routes of the '{service}' service") }));
        }
        for o in &c.operations {
            let rel = o.path.trim_matches('/');
            let full = if rel.is_empty() {
                mount.clone()
            } else {
                format!("{mount}/{rel}")
            };
            let (path, params) = path_params(&full);
            let method = o.method.as_str().to_ascii_lowercase();
            let entry = paths.entry(path.clone()).or_insert_with(|| json!({}));
            let Some(item) = entry.as_object_mut() else {
                continue;
            };
            // The first contribution mounted wins a clash, as it does in the router.
            if item.contains_key(&method) {
                continue;
            }
            let mut op_tags = vec![Value::String(service.clone())];
            op_tags.extend(o.tags.iter().cloned().map(Value::String));
            let mut ok = json!({ "description": "Success" });
            if let (Some(schema), Some(obj)) = (&o.response, ok.as_object_mut()) {
                obj.insert("content".into(), json_content(schema.clone()));
            }
            let error = o
                .error_response
                .clone()
                .unwrap_or_else(|| schema_ref("Error"));
            let mut operation = json!({
                "operationId": operation_id(&method, &path, &mut seen),
                "summary": o.summary,
                "tags": op_tags,
                "parameters": params,
                "security": security_of(o.security),
                "responses": {
                    "200": ok,
                    "default": { "description": "Error", "content": json_content(error) },
                },
            });
            if let (Some(body), Some(obj)) = (&o.request_body, operation.as_object_mut()) {
                obj.insert(
                    "requestBody".into(),
                    json!({ "required": true, "content": json_content(body.clone()) }),
                );
            }
            item.insert(method, operation);
        }
    }
}

/// The routes of `contributions` that `doc` lacks, as `METHOD /path` (empty when every mounted
/// route is documented), so a plugin's tests can check its descriptions against its real router.
pub fn missing_operations(doc: &Value, contributions: &[RouteContribution]) -> Vec<String> {
    let mut missing = Vec::new();
    for c in contributions {
        let mount = c.absolute_mount();
        for (method, rel) in c.endpoints() {
            let full = if rel.is_empty() {
                mount.clone()
            } else {
                format!("{mount}/{rel}")
            };
            let (path, _) = path_params(&full);
            let key = method.as_str().to_ascii_lowercase();
            if doc
                .pointer("/paths")
                .and_then(|p| p.get(&path))
                .and_then(|item| item.get(&key))
                .is_none()
            {
                missing.push(format!("{method} {path}"));
            }
        }
    }
    missing
}

/// Builds the document for every object in `objects` and every described contributed route.
pub fn document(
    version: &str,
    objects: &[ObjectView],
    contributions: &[RouteContribution],
) -> Value {
    let mut schemas = Map::new();
    schemas.insert(
        "FieldError".into(),
        json!({ "type": "object", "required": ["field", "code", "message"], "properties": {
            "field": { "type": "string", "description": "The field at fault; for a validation rule that reads no field, the rule's name" },
            "code": { "type": "string" }, "message": { "type": "string" }, "label": { "type": "string" },
            "rule": { "type": "string", "description": "The validation rule that failed: a rule over several fields gives one error per field, each naming it" },
            "constraint": { "description": "The violated constraint, such as {\"max\": 200}" },
            "options": { "type": "array", "items": { "type": "string" }, "description": "For choice fields: the allowed values" } } }),
    );
    schemas.insert(
        "Error".into(),
        json!({ "type": "object", "required": ["error", "code", "message"], "properties": {
            "error": { "type": "string", "description": "Human-readable message (same as message)" },
            "code": { "type": "string", "description": "Stable machine code such as RECORD_NOT_FOUND or VALIDATION_FAILED" },
            "message": { "type": "string" },
            "object": { "type": "string" },
            "param": { "type": "string", "description": "The query parameter at fault" },
            "index": { "type": "integer", "description": "The failing operation of a cross-object batch" },
            "fields": { "type": "array", "items": schema_ref("FieldError") } } }),
    );
    schemas.insert(
        "BatchResult".into(),
        json!({ "type": "object", "properties": {
            "success": { "type": "boolean" }, "total": { "type": "integer" }, "succeeded": { "type": "integer" }, "failed": { "type": "integer" },
            "results": { "type": "array", "items": { "type": "object", "properties": {
                "id": { "type": ["string", "null"] }, "success": { "type": "boolean" }, "errors": { "type": "array" }, "data": { "type": ["object", "null"] } } } } } }),
    );
    schemas.insert(
        "QueryAst".into(),
        json!({ "type": "object", "description": "ObjectStack QueryAST", "properties": {
            "where": { "description": "Filter: object form {field: value | {$op: value}} or array form [field, op, value]" },
            "fields": { "type": "array", "description": "Fields to return; a dotted path (account.name) or {field, fields} selects through a lookup (up to 3 levels) and comes back as a nested object", "items": { "oneOf": [
                { "type": "string" },
                { "type": "object", "required": ["field"], "properties": { "field": { "type": "string" }, "fields": { "type": "array" } } } ] } },
            "distinct": { "type": "boolean", "description": "Distinct rows over the selected fields (needs fields)" },
            "orderBy": { "type": "array", "items": { "type": "object", "properties": { "field": { "type": "string" }, "order": { "enum": ["asc", "desc"] } } } },
            "limit": { "type": "integer" }, "offset": { "type": "integer" }, "cursor": { "type": "string" },
            "expand": {}, "aggregations": { "type": "array", "description": "{function, field, alias, distinct, filter}; distinct applies to count, sum, avg, min, max, array_agg and string_agg" }, "groupBy": { "type": "array" } } }),
    );
    schemas.insert(
        "CrossBatchRequest".into(),
        json!({ "type": "object", "required": ["operations"], "properties": {
            "operations": { "type": "array", "minItems": 1, "maxItems": objectos_data::CROSS_BATCH_MAX_OPERATIONS, "items": { "type": "object", "required": ["object", "operation"], "properties": {
                "object": { "type": "string" },
                "operation": { "enum": ["create", "update", "upsert", "delete"] },
                "id": { "description": "Record id, or {\"$ref\": n} for the record of operation n" },
                "data": { "type": "object", "description": "Fields; any value may be {\"$ref\": n}, the id of operation n's record" },
                "externalId": { "type": "string" } } } },
            "options": { "type": "object", "properties": {
                "atomic": { "type": "boolean", "default": true }, "returnRecords": { "type": "boolean", "default": true }, "continueOnError": { "type": "boolean", "default": false } } } } }),
    );
    schemas.insert(
        "CrossBatchResult".into(),
        json!({ "type": "object", "properties": {
            "success": { "type": "boolean" }, "total": { "type": "integer" }, "succeeded": { "type": "integer" }, "failed": { "type": "integer" },
            "results": { "type": "array", "items": { "type": "object", "properties": {
                "index": { "type": "integer" }, "object": { "type": "string" }, "operation": { "type": "string" },
                "id": { "type": ["string", "null"] }, "success": { "type": "boolean" }, "errors": { "type": "array" }, "data": { "type": ["object", "null"] } } } } } }),
    );

    let mut paths = Map::new();
    let mut tags = Vec::new();
    for view in objects {
        let name = &view.name;
        let label = view.label();
        tags.push(json!({ "name": name, "description": label }));
        let fields = view.fields();
        let mut record_props = Map::new();
        let mut input_props = Map::new();
        let mut required = Vec::new();
        for f in &fields {
            record_props.insert(f.name.clone(), field_schema(f, true));
            let computed = matches!(f.kind(), "formula" | "summary" | "autonumber");
            if !f.system() && !f.readonly() && !computed {
                input_props.insert(f.name.clone(), field_schema(f, false));
                if f.required() {
                    required.push(Value::String(f.name.clone()));
                }
            }
        }
        let record = name.clone();
        let create = format!("{name}.create");
        let update = format!("{name}.update");
        let list = format!("{name}.list");
        let single = format!("{name}.single");
        schemas.insert(
            record.clone(),
            json!({ "type": "object", "title": label, "properties": record_props }),
        );
        schemas.insert(create.clone(), json!({ "type": "object", "required": required, "properties": input_props.clone(), "additionalProperties": false }));
        schemas.insert(
            update.clone(),
            json!({ "type": "object", "properties": input_props, "additionalProperties": false }),
        );
        schemas.insert(list.clone(), json!({ "type": "object", "required": ["object", "records", "hasMore"], "properties": {
            "object": { "const": name }, "records": { "type": "array", "items": schema_ref(&record) },
            "total": { "type": "integer" }, "hasMore": { "type": "boolean" }, "nextCursor": { "type": "string" } } }));
        schemas.insert(single.clone(), json!({ "type": "object", "required": ["object", "id", "record"], "properties": {
            "object": { "const": name }, "id": { "type": "string" }, "record": schema_ref(&record) } }));

        let base = format!("{API_BASE}/data/{name}");
        let list_params = [
            "top", "skip", "sort", "select", "expand", "filter", "cursor", "distinct",
        ]
        .map(param_ref)
        .to_vec();
        let read_errors: &[(&str, &str)] = &[
            ("400", "Invalid query parameter"),
            ("404", "Unknown object"),
            ("500", "Server error"),
        ];
        let write_errors: &[(&str, &str)] = &[
            ("400", "Invalid body or validation failed"),
            ("404", "Unknown object or record"),
            ("409", "Duplicate value"),
            ("413", "Body too large"),
            ("415", "Not JSON, or a file type a field refuses"),
            ("500", "Server error"),
            ("507", "The database's storage is full"),
        ];
        paths.insert(base.clone(), json!({
            "get": op(format!("List {label} records"), name, list_params, None, ("200", schema_ref(&list)), read_errors),
            "post": op(format!("Create a {label} record"), name, vec![], Some(schema_ref(&create)), ("201", schema_ref(&single)), write_errors),
        }));
        paths.insert(format!("{base}/query"), json!({
            "post": op(format!("Query {label} records with a QueryAST"), name, vec![], Some(schema_ref("QueryAst")), ("200", schema_ref(&list)), read_errors),
        }));
        let id_params = vec![param_ref("id")];
        let mut get_params = id_params.clone();
        get_params.extend([param_ref("select"), param_ref("expand")]);
        let mut update_params = id_params.clone();
        update_params.push(param_ref("ifMatch"));
        let mut update_errors = write_errors.to_vec();
        update_errors.push(("412", "If-Match did not match the record's version"));
        let update_op = op(
            format!("Update a {label} record"),
            name,
            update_params,
            Some(schema_ref(&update)),
            ("200", schema_ref(&single)),
            &update_errors,
        );
        paths.insert(format!("{base}/{{id}}"), json!({
            "get": op(format!("Get a {label} record"), name, get_params, None, ("200", schema_ref(&single)), read_errors),
            "patch": update_op.clone(),
            "put": update_op,
            "delete": op(format!("Delete a {label} record"), name, id_params, None, ("200", json!({ "type": "object", "properties": {
                "object": { "const": name }, "id": { "type": "string" }, "success": { "type": "boolean" }, "deleted": { "type": "boolean" } } })), &[("404", "Unknown object or record"), ("409", "Delete restricted by related records"), ("500", "Server error")]),
        }));
        let mut clone_op = op(
            format!(
                "Copy a {label} record (without system fields, autonumbers and unique fields); the optional body overrides fields"
            ),
            name,
            vec![param_ref("id")],
            Some(schema_ref(&update)),
            ("201", schema_ref(&single)),
            &[
                ("400", "Invalid body or validation failed"),
                ("403", "Cloning not allowed"),
                ("404", "Unknown object or record"),
                ("409", "Duplicate value"),
                ("500", "Server error"),
            ],
        );
        if let Some(body) = clone_op
            .get_mut("requestBody")
            .and_then(Value::as_object_mut)
        {
            body.insert("required".into(), Value::Bool(false));
        }
        paths.insert(format!("{base}/{{id}}/clone"), json!({ "post": clone_op }));
        paths.insert(format!("{base}/createMany"), json!({
            "post": op(format!("Create several {label} records atomically"), name, vec![], Some(json!({ "type": "array", "items": schema_ref(&create) })),
                ("201", json!({ "type": "object", "properties": { "object": { "const": name }, "count": { "type": "integer" }, "records": { "type": "array", "items": schema_ref(&record) } } })), write_errors),
        }));
        for (suffix, what) in [
            ("batch", "Run a batch of operations on"),
            ("updateMany", "Update several"),
            ("deleteMany", "Delete several"),
        ] {
            paths.insert(format!("{base}/{suffix}"), json!({
                "post": op(format!("{what} {label} records"), name, vec![], Some(json!({ "type": "object" })), ("200", schema_ref("BatchResult")), write_errors),
            }));
        }
    }
    paths.insert(format!("{API_BASE}/batch"), json!({
        "post": op("Run create, update, upsert and delete operations on several objects, atomically by default; {\"$ref\": n} stands for the id of operation n's record".into(), "batch", vec![],
            Some(schema_ref("CrossBatchRequest")), ("200", schema_ref("CrossBatchResult")),
            &[("400", "Invalid body, or the failing operation's error (with index)"), ("403", "An operation is not allowed (with index)"), ("404", "Unknown object or record (with index)"), ("409", "Duplicate value or delete restricted (with index)"), ("413", "More operations than allowed"), ("500", "Server error")]),
    }));
    tags.push(json!({ "name": "batch", "description": "Cross-object batches" }));
    paths.insert(format!("{API_BASE}/discovery"), json!({ "get": { "summary": "Discovery document", "tags": ["system"], "responses": { "200": { "description": "Routes, services and capabilities of this server" } } } }));
    paths.insert(format!("{API_BASE}/meta/{{type}}/{{name}}"), json!({ "get": { "summary": "One metadata item", "tags": ["system"], "parameters": [
        { "name": "type", "in": "path", "required": true, "schema": { "type": "string" } },
        { "name": "name", "in": "path", "required": true, "schema": { "type": "string" } } ],
        "responses": { "200": { "description": "{type, name, item}" }, "304": { "description": "Not modified (If-None-Match)" }, "404": { "description": "Unknown type or name", "content": json_content(schema_ref("Error")) } } } }));
    paths.insert("/health".into(), json!({ "get": { "summary": "Aggregated kernel health", "tags": ["system"], "responses": { "200": { "description": "Healthy or degraded" }, "503": { "description": "Unhealthy" } } } }));
    tags.push(json!({ "name": "system", "description": "Discovery, metadata and health" }));
    add_contributed(contributions, &mut paths, &mut tags);

    let q = |name: &str, description: &str, schema: Value| json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema });
    json!({
        "openapi": "3.1.0",
        "info": { "title": "ObjectOS API", "version": version, "description": "Generated from the loaded object metadata." },
        "tags": tags,
        "paths": paths,
        "components": {
            "securitySchemes": security_schemes(),
            "schemas": schemas,
            "parameters": {
                "id": { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } },
                "top": q("top", "Page size", json!({ "type": "integer", "minimum": 0 })),
                "skip": q("skip", "Rows to skip", json!({ "type": "integer", "minimum": 0 })),
                "sort": q("sort", "Comma-separated fields; prefix with - for descending", json!({ "type": "string" })),
                "select": q("select", "Comma-separated fields to return; account.name selects through a lookup (up to 3 levels) and answers a nested object", json!({ "type": "string" })),
                "distinct": q("distinct", "true: distinct rows over the selected fields", json!({ "type": "boolean" })),
                "expand": q("expand", "Comma-separated lookup fields to expand", json!({ "type": "string" })),
                "filter": q("filter", "Filter as JSON (array or object form)", json!({ "type": "string" })),
                "cursor": q("cursor", "Cursor from a previous page's nextCursor", json!({ "type": "string" })),
                "ifMatch": { "name": "If-Match", "in": "header", "required": false, "description": "ETag of the version being updated", "schema": { "type": "string" } },
            },
        },
    })
}

/// `GET /api/v1/openapi.json`.
#[handler]
pub async fn openapi_json(depot: &mut Depot, res: &mut Response) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?;
    let snapshot = state.engine().metadata();
    let views: Vec<ObjectView> = snapshot
        .objects()
        .map(|s| ObjectView::new(&s.name, &**s))
        .collect();
    let contributed = depot
        .get_typed::<Contributed>()
        .map(|c| c.0.clone())
        .unwrap_or_else(|_| Arc::from(Vec::new()));
    res.render(Json(document(state.version(), &views, &contributed)));
    Ok(())
}
