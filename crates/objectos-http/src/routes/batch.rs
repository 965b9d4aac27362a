//! `POST /api/v1/batch`: a cross-object batch of create, update, upsert and delete operations,
//! where `{"$ref": n}` in a value (or as `id`) stands for the id of operation `n`'s record.
//!
//! Atomic by default: every operation runs in one transaction as the caller, through the same
//! engine path as its single-record route (interceptors, validation, audit, outbox). When one
//! fails nothing is written and the answer is that operation's error (its status and code) with
//! `index` naming it. With `options.atomic: false` each operation commits on its own and the answer
//! is `200 {success, total, succeeded, failed, results[]}`.

use objectos_data::{BatchOperation, CROSS_BATCH_MAX_OPERATIONS, CrossBatchRequest};
use objectos_spec::object::ApiMethod;
use salvo::prelude::*;
use serde_json::Value;

use crate::body;
use crate::error::HttpError;
use crate::hoops::op_context;
use crate::routes::data::exposed;
use crate::state::ApiState;

/// The batch router, relative to the API base.
pub fn router() -> Router {
    Router::with_path("batch").post(cross_batch)
}

const EXPECTED: &str = "{\"operations\": [{\"object\": \"account\", \"operation\": \"create\", \"data\": {...}}, ...], \"options\": {\"atomic\": true}}";

fn op_name(op: BatchOperation) -> &'static str {
    match op {
        BatchOperation::Create => "create",
        BatchOperation::Update => "update",
        BatchOperation::Upsert => "upsert",
        BatchOperation::Delete => "delete",
    }
}

/// Reads the body: `{operations, options?}` or a bare array of operations.
async fn read_request(req: &mut Request) -> Result<CrossBatchRequest, HttpError> {
    let value = body::json_value(req, None, EXPECTED).await?;
    let (ops, options) = match value {
        Value::Array(items) => (items, None),
        Value::Object(mut map) => match map.remove("operations") {
            Some(Value::Array(items)) => (items, map.remove("options")),
            _ => {
                return Err(HttpError::invalid_body(
                    None,
                    format!("The request body has no `operations` array; expected {EXPECTED}"),
                ));
            }
        },
        other => {
            return Err(HttpError::invalid_body(
                None,
                format!(
                    "The request body must be {EXPECTED}, received {}",
                    body::kind(&other)
                ),
            ));
        }
    };
    // Refused before anything is parsed further: the limit bounds the work a request can ask for.
    if ops.len() > CROSS_BATCH_MAX_OPERATIONS {
        return Err(HttpError::BatchTooLarge {
            limit: CROSS_BATCH_MAX_OPERATIONS,
            got: ops.len(),
        });
    }
    if ops.is_empty() {
        return Err(HttpError::invalid_body(
            None,
            format!("The batch has no operations; expected {EXPECTED}"),
        ));
    }
    let mut operations = Vec::with_capacity(ops.len());
    for (i, op) in ops.into_iter().enumerate() {
        operations.push(serde_json::from_value(op).map_err(|e| {
            HttpError::invalid_body(
                None,
                format!(
                    "operations[{i}]: {e}; each operation is {{\"object\", \"operation\": \"create|update|upsert|delete\", \"id\"?, \"data\"?}}"
                ),
            )
        })?);
    }
    let options = match options {
        None | Some(Value::Null) => Default::default(),
        Some(v) => serde_json::from_value(v).map_err(|e| {
            HttpError::invalid_body(
                None,
                format!(
                    "options: {e}; expected {{\"atomic\", \"returnRecords\", \"continueOnError\"}}"
                ),
            )
        })?,
    };
    Ok(CrossBatchRequest {
        operations,
        options,
    })
}

/// `POST /api/v1/batch`.
#[handler]
pub async fn cross_batch(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), HttpError> {
    let state = ApiState::from_depot(depot)?.clone();
    let request = read_request(req).await?;
    // The objects' API limits apply to each operation, as on `/data/{object}/batch`.
    for (i, op) in request.operations.iter().enumerate() {
        let method = match op.operation {
            BatchOperation::Create => ApiMethod::Create,
            BatchOperation::Update => ApiMethod::Update,
            BatchOperation::Upsert => ApiMethod::Upsert,
            BatchOperation::Delete => ApiMethod::Delete,
        };
        exposed(&state, &op.object, &[method, ApiMethod::Bulk]).map_err(|e| {
            HttpError::Operation {
                index: i,
                operation: op_name(op.operation).to_owned(),
                object: op.object.clone(),
                source: Box::new(e),
            }
        })?;
    }
    let cx = op_context(depot);
    let mut result = state
        .engine()
        .cross_batch(&cx, request)
        .await
        .map_err(HttpError::data)?;
    if let Some(f) = result.failure.take() {
        return Err(HttpError::Operation {
            index: f.index,
            operation: op_name(f.operation).to_owned(),
            object: f.object,
            source: Box::new(HttpError::data(f.error)),
        });
    }
    res.render(Json(result));
    Ok(())
}
