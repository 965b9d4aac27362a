//! `/api/v1/meta`: metadata types, items of a type, and one item with `ETag` / `If-None-Match`.
//!
//! Metadata is file-based, so writes (`PUT`) answer 405 with `Allow: GET`. Singular and plural
//! type names are the same type (`object` / `objects`).

use salvo::http::StatusCode;
use salvo::http::header::{CACHE_CONTROL, ETAG, HeaderValue, IF_NONE_MATCH};
use salvo::prelude::*;
use serde_json::{Map, Value, json};

use crate::error::HttpError;
use crate::localize;
use crate::routes::path_param;
use crate::schema_view::ObjectView;
use crate::state::ApiState;

/// Metadata types of the spec; `object` and `package` have items here, the others are empty.
pub const METADATA_TYPES: &[&str] = &[
    "object",
    "package",
    "app",
    "view",
    "page",
    "dashboard",
    "report",
    "action",
    "flow",
    "workflow",
    "approval",
    "hook",
    "trigger",
    "validation",
    "permission",
    "profile",
    "role",
    "datasource",
    "translation",
    "field",
    "router",
    "function",
    "service",
    "agent",
    "tool",
    "skill",
    "plugin",
];

/// The metadata router, relative to the API base.
pub fn router() -> Router {
    Router::with_path("meta").get(list_types).push(
        Router::with_path("{type}")
            .get(list_items)
            .push(Router::with_path("{name}").get(get_item).put(put_item)),
    )
}

/// Canonical (singular) name of a type, accepting plurals.
pub fn canonical_type(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let singular = lower
        .strip_suffix("ies")
        .map(|stem| format!("{stem}y"))
        .filter(|s| METADATA_TYPES.contains(&s.as_str()))
        .or_else(|| lower.strip_suffix('s').map(str::to_owned))
        .filter(|s| METADATA_TYPES.contains(&s.as_str()))
        .unwrap_or(lower);
    METADATA_TYPES.iter().copied().find(|t| *t == singular)
}

fn unknown_type(name: &str) -> HttpError {
    HttpError::NotFound {
        code: "METADATA_TYPE_NOT_FOUND",
        message: format!(
            "Metadata type '{name}' is not known; known types: {}",
            METADATA_TYPES.join(", ")
        ),
    }
}

/// Items of a type, as `(name, item)` pairs.
fn items_of(state: &ApiState, kind: &str) -> Vec<(String, Value)> {
    match kind {
        "object" => {
            let snapshot = state.engine().metadata();
            snapshot
                .objects()
                .map(|schema| {
                    let view = ObjectView::new(&schema.name, &**schema);
                    (view.name, view.item)
                })
                .collect()
        }
        "package" | "plugin" => state
            .packages()
            .iter()
            .map(|p| (p.id.clone(), serde_json::to_value(p).unwrap_or(Value::Null)))
            .collect(),
        // A metadata kind a plugin contributed (the spec's `flow`, `role`, ... or its own).
        other => state
            .engine()
            .metadata()
            .items(other)
            .iter()
            .map(|i| (i.name.clone(), i.value.clone()))
            .collect(),
    }
}

/// The type a path names: a spec type (singular or plural), or a kind a plugin contributed.
fn resolve_type(state: &ApiState, raw: &str) -> Result<String, HttpError> {
    if let Some(t) = canonical_type(raw) {
        return Ok(t.to_owned());
    }
    let snapshot = state.engine().metadata();
    let lower = raw.to_ascii_lowercase();
    snapshot
        .kinds()
        .find(|k| *k == lower || format!("{k}s") == lower)
        .map(str::to_owned)
        .ok_or_else(|| unknown_type(raw))
}

/// `GET /api/v1/meta` -> `{types}`: the spec's types, then the kinds plugins contributed.
#[handler]
pub async fn list_types(depot: &mut Depot, res: &mut Response) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?;
    let mut types: Vec<String> = METADATA_TYPES.iter().map(|t| (*t).to_owned()).collect();
    for kind in state.engine().metadata().kinds() {
        if !types.iter().any(|t| t == kind) {
            types.push(kind.to_owned());
        }
    }
    res.render(Json(json!({ "types": types })));
    Ok(())
}

/// `GET /api/v1/meta/{type}` -> `{type, items}`.
#[handler]
pub async fn list_items(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?;
    let raw = path_param(req, "type")?;
    let kind = resolve_type(state, &raw)?;
    let mut items = items_of(state, &kind);
    // Object labels in the request's locale, when a plugin provides translations.
    if kind == "object"
        && let Some(i18n) = state.i18n()
    {
        let chain = localize::request_chain(&**i18n, req, depot).await;
        for (name, item) in &mut items {
            localize::object_item(&**i18n, &chain, name, item);
        }
        localize::vary_accept_language(res);
    }
    let items: Vec<Value> = items.into_iter().map(|(_, v)| v).collect();
    res.render(Json(json!({ "type": kind, "items": items })));
    Ok(())
}

/// `sortability` block of transcript exchange 6: which fields the list routes can sort on.
fn sortability(view: &ObjectView) -> Value {
    let mut fields = Map::new();
    for f in view.fields() {
        let declared = f
            .def
            .get("sortable")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let sortable = declared
            && !matches!(
                f.kind(),
                "json"
                    | "object"
                    | "array"
                    | "textarea"
                    | "markdown"
                    | "html"
                    | "richtext"
                    | "file"
                    | "image"
            )
            && !f.multiple();
        fields.insert(f.name.clone(), json!({ "sortable": sortable }));
    }
    json!({ "fields": fields })
}

/// `GET /api/v1/meta/{type}/{name}` -> `{type, name, item}` with `ETag`; 304 on a matching `If-None-Match`.
#[handler]
pub async fn get_item(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?;
    let raw = path_param(req, "type")?;
    let name = path_param(req, "name")?;
    let kind = resolve_type(state, &raw)?;
    let kind = kind.as_str();
    let not_found = || HttpError::NotFound {
        code: "METADATA_NOT_FOUND",
        message: format!("No {kind} named '{name}' is registered"),
    };
    let (body, etag) = if kind == "object" {
        let snapshot = state.engine().metadata();
        let schema = snapshot.object(&name).ok_or_else(not_found)?;
        let view = ObjectView::new(&name, &**schema);
        let mut etag = snapshot.etag(&name).map(str::to_owned);
        let mut item = view.item.clone();
        if let Some(i18n) = state.i18n() {
            // A translated item is another representation: its ETag names the locale chain
            // and the translations' revision, and caches key on Accept-Language.
            let chain = localize::request_chain(&**i18n, req, depot).await;
            localize::object_item(&**i18n, &chain, &name, &mut item);
            if item != view.item {
                etag = etag.map(|e| format!("{e}.{}.{}", chain.join("+"), i18n.revision()));
            }
            localize::vary_accept_language(res);
        }
        let body =
            json!({ "type": kind, "name": name, "sortability": sortability(&view), "item": item });
        (body, etag)
    } else if let Some(item) = state.engine().metadata().item(kind, &name) {
        // A plugin kind's item carries its own ETag, like an object.
        let body = json!({ "type": kind, "name": name, "item": item.value });
        (body, Some(item.etag.clone()))
    } else {
        let (_, item) = items_of(state, kind)
            .into_iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(not_found)?;
        (json!({ "type": kind, "name": name, "item": item }), None)
    };
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    if let Some(tag) = etag {
        let quoted = format!("\"{tag}\"");
        let matches = req
            .headers()
            .get(IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .map(str::trim)
                    .any(|c| c == "*" || c.strip_prefix("W/").unwrap_or(c) == quoted)
            });
        if let Ok(value) = HeaderValue::from_str(&quoted) {
            res.headers_mut().insert(ETAG, value);
        }
        if matches {
            res.status_code(StatusCode::NOT_MODIFIED);
            return Ok(());
        }
    }
    res.render(Json(body));
    Ok(())
}

/// `PUT /api/v1/meta/{type}/{name}`: metadata is file-based and read-only over HTTP, so the
/// answer is 405 with `Allow: GET` and a message saying where to edit it (the route exists so the
/// official client's `saveItem` gets that message instead of a bare 404). Not a 5xx: nothing is
/// wrong with the server.
#[handler]
pub async fn put_item(req: &mut Request, res: &mut Response) -> Result<(), HttpError> {
    let raw = path_param(req, "type")?;
    let name = path_param(req, "name")?;
    res.headers_mut()
        .insert(salvo::http::header::ALLOW, HeaderValue::from_static("GET"));
    Err(HttpError::Status {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: format!(
            "Saving metadata over HTTP is not supported: {raw} '{name}' comes from the metadata folder; edit its file and reload the server"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::canonical_type;

    #[test]
    fn plural_and_singular_types() {
        assert_eq!(canonical_type("objects"), Some("object"));
        assert_eq!(canonical_type("object"), Some("object"));
        assert_eq!(canonical_type("Apps"), Some("app"));
        assert_eq!(canonical_type("policies"), None);
        assert_eq!(canonical_type("nope"), None);
    }
}
