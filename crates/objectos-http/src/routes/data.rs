//! `/api/v1/data/{object}`: list, query, get, create, update, delete, clone and the bulk
//! operations; `/api/v1/batch` (cross-object batches) is mounted with them (see `batch`).
//!
//! Each handler parses the request into an engine call, runs it with the request's [`OpContext`],
//! and writes the reference server's body shapes (reference transcript exchanges 8-26).

use objectos_data::{BatchRequest, DataEngine, DataError, Record};
use objectos_spec::object::ApiMethod;
use objectos_spec::query::{QueryAst, parse_list_params};
use salvo::http::StatusCode;
use salvo::http::header::{ETAG, HeaderValue, IF_MATCH};
use salvo::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::body;
use crate::error::HttpError;
use crate::hoops::op_context;
use crate::routes::{path_param, query_pairs};
use crate::state::ApiState;

/// The data router, relative to the API base: `data/{object}/...` and the cross-object `batch`.
pub fn router() -> Router {
    Router::new()
        .push(object_router())
        .push(super::batch::router())
}

fn object_router() -> Router {
    Router::with_path("data/{object}")
        .get(list_records)
        .post(create_record)
        .push(Router::with_path("query").post(query_records))
        .push(Router::with_path("createMany").post(create_many))
        .push(Router::with_path("batch").post(batch_records))
        .push(Router::with_path("updateMany").post(update_many))
        .push(Router::with_path("deleteMany").post(delete_many))
        .push(
            Router::with_path("{id}")
                .get(get_record)
                .patch(update_record)
                .put(update_record)
                .delete(delete_record)
                .push(Router::with_path("clone").post(clone_record)),
        )
}

/// `{object, records, total, hasMore, nextCursor?}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ListBody {
    object: String,
    records: Vec<Record>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// `{object, id, record}`.
#[derive(Debug, Serialize)]
struct RecordBody<'a> {
    object: &'a str,
    id: String,
    record: &'a Record,
}

/// Expected serialized size of one record, for sizing response buffers (a CRM contact is ~450 bytes).
const RECORD_BYTES: usize = 512;

/// Message sent when a GET asks for aggregations (transcript exchange 21).
fn aggregations_refused(received: &str) -> String {
    format!(
        "Query parameter 'aggregations' must be an array of {{ function, field?, alias }} entries, received {received}. \
         Aggregations are not read from the query string. Send e.g. {{ \"aggregations\": [{{ \"function\": \"sum\", \"field\": \"amount\", \"alias\": \"total\" }}] }} \
         in the 'POST /data/:object/query' body."
    )
}

/// Maps a query-parameter problem to a 400 naming the parameter.
fn query_error(object: &str, err: objectos_spec::query::QueryError) -> HttpError {
    HttpError::InvalidQuery {
        object: Some(object.to_owned()),
        param: err.param().to_owned(),
        message: err.to_string(),
    }
}

fn record_id(record: &Record) -> String {
    match record.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Sets `ETag` from the record's version, when the engine can tell one.
fn set_etag(res: &mut Response, record: &Record) {
    if let Some(version) = DataEngine::version_of(record)
        && let Ok(value) = HeaderValue::from_str(&format!("\"{version}\""))
    {
        res.headers_mut().insert(ETAG, value);
    }
}

/// The version an `If-Match` header asks for: quotes and a weak prefix are stripped; `*` means any.
fn if_match(req: &Request) -> Result<Option<String>, HttpError> {
    let Some(raw) = req.headers().get(IF_MATCH) else {
        return Ok(None);
    };
    let text = raw.to_str().map_err(|_| HttpError::InvalidQuery {
        object: None,
        param: "If-Match".into(),
        message: "The If-Match header is not valid text; send the ETag of the record, e.g. \"2026-11-23T16:45:10.709Z\"".into(),
    })?;
    let text = text.trim();
    if text == "*" || text.is_empty() {
        return Ok(None);
    }
    let text = text.strip_prefix("W/").unwrap_or(text);
    Ok(Some(text.trim_matches('"').to_owned()))
}

fn write_record(res: &mut Response, status: StatusCode, object: &str, record: &Record) {
    set_etag(res, record);
    res.status_code(status);
    res.render(body::JsonBody::new(
        RecordBody {
            object,
            id: record_id(record),
            record,
        },
        RECORD_BYTES,
    ));
}

/// Refuses an operation the object does not expose (`enable.apiEnabled` / `enable.apiMethods`)
/// with 403 `OPERATION_NOT_ALLOWED`. Only the API is limited: plugins calling the engine directly
/// (auth creating users, jobs, flows) are not. An unknown object is left to the engine's 404.
pub(crate) fn exposed(
    state: &ApiState,
    object: &str,
    methods: &[ApiMethod],
) -> Result<(), HttpError> {
    let meta = state.engine().metadata();
    let Some(schema) = meta.object(object) else {
        return Ok(());
    };
    match methods.iter().find(|m| !schema.enable.allows(**m)) {
        None => Ok(()),
        Some(m) => Err(HttpError::data(DataError::OperationNotAllowed {
            object: object.to_owned(),
            operation: format!("{m:?}").to_lowercase(),
        })),
    }
}

/// The API methods a find needs: `list`, plus `search` and `aggregate` when it uses them.
fn find_methods(query: &QueryAst) -> Vec<ApiMethod> {
    let mut methods = vec![ApiMethod::List];
    if query.search.is_some() {
        methods.push(ApiMethod::Search);
    }
    if !query.aggregations.is_empty() || !query.group_by.is_empty() {
        methods.push(ApiMethod::Aggregate);
    }
    methods
}

/// `GET /data/{object}`: query-string list (`top skip sort select expand filter(s) <field>=<value>`).
#[handler]
pub async fn list_records(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?.clone();
    let object = path_param(req, "object")?;
    let pairs = query_pairs(req);
    if let Some((_, value)) = pairs
        .iter()
        .find(|(k, _)| k == "aggregations" || k == "$aggregations")
    {
        let received = if value.trim_start().starts_with('[') {
            "string (JSON text)"
        } else {
            "string"
        };
        return Err(HttpError::InvalidQuery {
            object: Some(object),
            param: "aggregations".into(),
            message: aggregations_refused(received),
        });
    }
    let query = parse_list_params(&pairs).map_err(|e| query_error(&object, e))?;
    exposed(&state, &object, &find_methods(&query))?;
    run_find(&state, depot, res, object, query).await
}

/// `POST /data/{object}/query`: a QueryAST body.
#[handler]
pub async fn query_records(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?.clone();
    let object = path_param(req, "object")?;
    let value = Value::Object(body::json_object(req, Some(&object), "a QueryAST object").await?);
    let query = QueryAst::from_json(&value).map_err(|e| query_error(&object, e))?;
    exposed(&state, &object, &find_methods(&query))?;
    run_find(&state, depot, res, object, query).await
}

async fn run_find(
    state: &ApiState,
    depot: &Depot,
    res: &mut Response,
    object: String,
    query: QueryAst,
) -> Result<(), HttpError> {
    let cx = op_context(depot);
    let found = state
        .engine()
        .find(&cx, &object, query)
        .await
        .map_err(HttpError::data)?;
    let capacity = 128 + found.records.len() * RECORD_BYTES;
    res.render(body::JsonBody::new(
        ListBody {
            object,
            records: found.records,
            total: found.total,
            has_more: found.has_more,
            next_cursor: found.next_cursor,
        },
        capacity,
    ));
    Ok(())
}

/// `GET /data/{object}/{id}`: one record; `select`/`fields` and `expand` are honoured.
#[handler]
pub async fn get_record(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?.clone();
    let object = path_param(req, "object")?;
    exposed(&state, &object, &[ApiMethod::Get])?;
    let id = path_param(req, "id")?;
    // Only projection parameters apply to a single record; anything else would turn into a filter.
    let pairs: Vec<(String, String)> = query_pairs(req)
        .into_iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "select" | "$select" | "fields" | "expand" | "$expand" | "populate"
            )
        })
        .collect();
    let query = parse_list_params(&pairs).map_err(|e| query_error(&object, e))?;
    let cx = op_context(depot);
    let record = state
        .engine()
        .get(&cx, &object, &id, query)
        .await
        .map_err(HttpError::data)?;
    write_record(res, StatusCode::OK, &object, &record);
    Ok(())
}

/// `POST /data/{object}` -> 201 `{object, id, record}`.
#[handler]
pub async fn create_record(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?.clone();
    let object = path_param(req, "object")?;
    exposed(&state, &object, &[ApiMethod::Create])?;
    let data =
        body::json_object(req, Some(&object), "the record's fields as a JSON object").await?;
    let cx = op_context(depot);
    let record = state
        .engine()
        .create(&cx, &object, data)
        .await
        .map_err(HttpError::data)?;
    write_record(res, StatusCode::CREATED, &object, &record);
    Ok(())
}

/// `PATCH` (or `PUT`) `/data/{object}/{id}`; `If-Match` makes it conditional (412 on mismatch).
#[handler]
pub async fn update_record(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?.clone();
    let object = path_param(req, "object")?;
    exposed(&state, &object, &[ApiMethod::Update])?;
    let id = path_param(req, "id")?;
    let expected = if_match(req)?;
    let patch =
        body::json_object(req, Some(&object), "the fields to change as a JSON object").await?;
    let cx = op_context(depot);
    let record = state
        .engine()
        .update(&cx, &object, &id, patch, expected.as_deref())
        .await
        .map_err(HttpError::data)?;
    write_record(res, StatusCode::OK, &object, &record);
    Ok(())
}

/// `DELETE /data/{object}/{id}` -> `{object, id, success: true, deleted: true}`.
#[handler]
pub async fn delete_record(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?.clone();
    let object = path_param(req, "object")?;
    exposed(&state, &object, &[ApiMethod::Delete])?;
    let id = path_param(req, "id")?;
    let cx = op_context(depot);
    state
        .engine()
        .delete(&cx, &object, &id)
        .await
        .map_err(HttpError::data)?;
    res.render(Json(
        json!({ "object": object, "id": id, "success": true, "deleted": true }),
    ));
    Ok(())
}

/// `POST /data/{object}/{id}/clone` -> 201 `{object, id, record}`: a copy of the record without
/// system fields, computed fields, autonumbers and unique fields; an optional body of fields
/// overrides the copied values. Needs `get` and `create` in `enable.apiMethods` and `enable.clone`.
#[handler]
pub async fn clone_record(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?.clone();
    let object = path_param(req, "object")?;
    exposed(&state, &object, &[ApiMethod::Get, ApiMethod::Create])?;
    if state
        .engine()
        .metadata()
        .object(&object)
        .is_some_and(|s| !s.enable.clone)
    {
        return Err(HttpError::data(DataError::OperationNotAllowed {
            object,
            operation: "clone".into(),
        }));
    }
    let id = path_param(req, "id")?;
    let overrides = body::json_object_or_empty(
        req,
        Some(&object),
        "fields to set on the copy as a JSON object (or no body)",
    )
    .await?;
    let cx = op_context(depot);
    let record = state
        .engine()
        .clone_record(&cx, &object, &id, overrides)
        .await
        .map_err(HttpError::data)?;
    write_record(res, StatusCode::CREATED, &object, &record);
    Ok(())
}

/// `POST /data/{object}/createMany`: a bare array (or `{records: [...]}`) -> 201 `{object, records, count}`.
#[handler]
pub async fn create_many(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?.clone();
    let object = path_param(req, "object")?;
    exposed(&state, &object, &[ApiMethod::Create, ApiMethod::Bulk])?;
    let expected = "an array of records (or {\"records\": [...]})";
    let items = match body::json_value(req, Some(&object), expected).await? {
        Value::Array(items) => items,
        Value::Object(mut map) => match map.remove("records") {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(HttpError::invalid_body(
                    Some(&object),
                    format!(
                        "The request body must be {expected}; the object has no `records` array"
                    ),
                ));
            }
        },
        other => {
            return Err(HttpError::invalid_body(
                Some(&object),
                format!(
                    "The request body must be {expected}, received {}",
                    body::kind(&other)
                ),
            ));
        }
    };
    let mut records = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::Object(map) => records.push(map),
            other => {
                return Err(HttpError::invalid_body(
                    Some(&object),
                    format!(
                        "records[{i}] must be a JSON object, received {}",
                        body::kind(&other)
                    ),
                ));
            }
        }
    }
    let cx = op_context(depot);
    let created = state
        .engine()
        .create_many(&cx, &object, records)
        .await
        .map_err(HttpError::data)?;
    res.status_code(StatusCode::CREATED);
    res.render(Json(
        json!({ "object": object, "count": created.len(), "records": created }),
    ));
    Ok(())
}

/// Which bulk endpoint a body is for: fills in `operation` where the route implies it.
#[derive(Debug, Clone, Copy)]
enum Bulk {
    Batch,
    UpdateMany,
    DeleteMany,
}

async fn bulk_request(
    req: &mut Request,
    object: &str,
    kind: Bulk,
) -> Result<BatchRequest, HttpError> {
    let expected = match kind {
        Bulk::Batch => {
            "{\"operation\": \"create|update|upsert|delete\", \"records\": [...], \"options\": {...}}"
        }
        Bulk::UpdateMany => "{\"records\": [{\"id\": ..., \"data\": {...}}], \"options\": {...}}",
        Bulk::DeleteMany => "{\"ids\": [...], \"options\": {...}}",
    };
    let mut map: Map<String, Value> = body::json_object(req, Some(object), expected).await?;
    match kind {
        Bulk::Batch => {}
        Bulk::UpdateMany => {
            map.entry("operation")
                .or_insert_with(|| Value::String("update".into()));
        }
        Bulk::DeleteMany => {
            map.entry("operation")
                .or_insert_with(|| Value::String("delete".into()));
            // `records: [{id}]` is accepted as well as `ids`.
            if !map.contains_key("records") {
                map.insert("records".into(), Value::Array(Vec::new()));
            }
        }
    }
    serde_json::from_value(Value::Object(map)).map_err(|e| {
        HttpError::invalid_body(
            Some(object),
            format!("Invalid bulk request body: {e}; expected {expected}"),
        )
    })
}

/// Runs one bulk route: parse the body for `kind`, call the matching engine operation, render the batch result.
async fn run_bulk(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    kind: Bulk,
) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?.clone();
    let object = path_param(req, "object")?;
    let methods: &[ApiMethod] = match kind {
        Bulk::Batch => &[ApiMethod::Bulk],
        Bulk::UpdateMany => &[ApiMethod::Update, ApiMethod::Bulk],
        Bulk::DeleteMany => &[ApiMethod::Delete, ApiMethod::Bulk],
    };
    exposed(&state, &object, methods)?;
    let request = bulk_request(req, &object, kind).await?;
    let cx = op_context(depot);
    let engine = state.engine();
    let result = match kind {
        Bulk::Batch => engine.batch(&cx, &object, request).await,
        Bulk::UpdateMany => engine.update_many(&cx, &object, request).await,
        Bulk::DeleteMany => engine.delete_many(&cx, &object, request).await,
    }
    .map_err(HttpError::data)?;
    res.render(Json(result));
    Ok(())
}

/// `POST /data/{object}/batch`.
#[handler]
pub async fn batch_records(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), HttpError> {
    run_bulk(req, depot, res, Bulk::Batch).await
}

/// `POST /data/{object}/updateMany`.
#[handler]
pub async fn update_many(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), HttpError> {
    run_bulk(req, depot, res, Bulk::UpdateMany).await
}

/// `POST /data/{object}/deleteMany`.
#[handler]
pub async fn delete_many(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), HttpError> {
    run_bulk(req, depot, res, Bulk::DeleteMany).await
}
