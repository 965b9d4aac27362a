//! Cross-object batches (`POST /api/v1/batch`): create, update, upsert and delete operations on
//! any objects, in one transaction by default, where `{"$ref": n}` in a value stands for the id of
//! operation `n`'s record; and record clones.

use objectos_spec::query::QueryAst;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{BatchItem, BatchItemError, BatchOperation, DataEngine, WriteScope};
use crate::Record;
use crate::context::OpContext;
use crate::error::{DataError, Result};
use crate::meta;

/// Most operations one cross-object batch may hold.
pub const CROSS_BATCH_MAX_OPERATIONS: usize = 200;

/// One operation of a cross-object batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrossBatchOperation {
    pub object: String,
    pub operation: BatchOperation,
    /// The record to update or delete (or upsert): an id, or `{"$ref": n}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Json>,
    /// The fields to write; any value (nested ones included) may be `{"$ref": n}`.
    #[serde(default)]
    pub data: Record,
    /// Upsert by the object's `externalId` field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// Options of a cross-object batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CrossBatchOptions {
    /// One transaction for every operation: all are written or none (the default).
    pub atomic: bool,
    /// Return each written record in its result (the default).
    pub return_records: bool,
    /// Without `atomic`: go on after a failed operation (operations that `$ref` it fail too).
    pub continue_on_error: bool,
}

impl Default for CrossBatchOptions {
    fn default() -> Self {
        Self {
            atomic: true,
            return_records: true,
            continue_on_error: false,
        }
    }
}

/// A cross-object batch request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrossBatchRequest {
    pub operations: Vec<CrossBatchOperation>,
    #[serde(default)]
    pub options: CrossBatchOptions,
}

/// The outcome of one operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrossBatchItemResult {
    pub index: usize,
    pub object: String,
    pub operation: BatchOperation,
    pub id: Option<String>,
    pub success: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<BatchItemError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Record>,
}

/// The operation that failed an atomic batch (nothing was written), and why.
#[derive(Debug)]
pub struct CrossBatchFailure {
    pub index: usize,
    pub object: String,
    pub operation: BatchOperation,
    pub error: DataError,
}

/// The outcome of a cross-object batch.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrossBatchResult {
    pub success: bool,
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub results: Vec<CrossBatchItemResult>,
    /// Set when an atomic batch failed: the first failing operation.
    #[serde(skip)]
    pub failure: Option<CrossBatchFailure>,
}

/// `{"$ref": n}` (exactly that key, a non-negative integer): the index it refers to.
fn as_ref(v: &Json) -> Option<std::result::Result<usize, ()>> {
    let Json::Object(m) = v else { return None };
    if m.len() != 1 {
        return None;
    }
    let r = m.get("$ref")?;
    Some(r.as_u64().map(|n| n as usize).ok_or(()))
}

/// Checks every `$ref` in `v` names an operation before `index`.
fn check_refs(v: &Json, index: usize, path: &str) -> std::result::Result<(), String> {
    match as_ref(v) {
        Some(Ok(n)) if n < index => Ok(()),
        Some(Ok(n)) => Err(format!(
            "operations[{index}].{path}: {{\"$ref\": {n}}} must name an earlier operation (0 to {})",
            index as i64 - 1
        )),
        Some(Err(())) => Err(format!(
            "operations[{index}].{path}: $ref must be the index of an earlier operation, a non-negative integer"
        )),
        None => match v {
            Json::Object(m) => m
                .iter()
                .try_for_each(|(k, x)| check_refs(x, index, &format!("{path}.{k}"))),
            Json::Array(a) => a
                .iter()
                .enumerate()
                .try_for_each(|(i, x)| check_refs(x, index, &format!("{path}[{i}]"))),
            _ => Ok(()),
        },
    }
}

/// Replaces every `$ref` in `v` by the id of the operation it names.
fn resolve(v: &mut Json, ids: &[Option<String>], index: usize) -> Result<()> {
    if let Some(Ok(n)) = as_ref(v) {
        return match ids.get(n).cloned().flatten() {
            Some(id) => {
                *v = Json::String(id);
                Ok(())
            }
            None => Err(DataError::InvalidBody {
                object: String::new(),
                message: format!(
                    "operations[{index}]: {{\"$ref\": {n}}} names an operation that did not produce a record"
                ),
            }),
        };
    }
    match v {
        Json::Object(m) => m.values_mut().try_for_each(|x| resolve(x, ids, index)),
        Json::Array(a) => a.iter_mut().try_for_each(|x| resolve(x, ids, index)),
        _ => Ok(()),
    }
}

impl DataEngine {
    /// Runs a cross-object batch as the caller (`cx`): every operation goes through the same
    /// path as its single-record call (interceptors, validation, outbox). Atomic by default: on
    /// the first failure nothing is written and [`CrossBatchResult::failure`] names the operation.
    /// Without `atomic`, each operation has its own transaction. The request is checked as a
    /// whole first (size, objects, ids, `$ref`s naming earlier operations), so a malformed one
    /// writes nothing in either mode.
    #[tracing::instrument(name = "data.cross_batch", level = "debug", skip_all)]
    pub async fn cross_batch(
        &self,
        cx: &OpContext,
        req: CrossBatchRequest,
    ) -> Result<CrossBatchResult> {
        let _timer = crate::observe::OpTimer::start(crate::observe::Op::Batch);
        let total = req.operations.len();
        if total == 0 || total > CROSS_BATCH_MAX_OPERATIONS {
            return Err(DataError::InvalidBody {
                object: String::new(),
                message: format!(
                    "A batch holds 1 to {CROSS_BATCH_MAX_OPERATIONS} operations, this one has {total}"
                ),
            });
        }
        let snap = self.metadata();
        let opts = req.options;
        let fail_early = |index: usize, op: &CrossBatchOperation, error: DataError| {
            let result = CrossBatchItemResult {
                index,
                object: op.object.clone(),
                operation: op.operation,
                id: None,
                success: false,
                errors: vec![(&error).into()],
                data: None,
            };
            CrossBatchResult {
                success: false,
                total,
                succeeded: 0,
                failed: total,
                results: vec![result],
                failure: Some(CrossBatchFailure {
                    index,
                    object: op.object.clone(),
                    operation: op.operation,
                    error,
                }),
            }
        };
        for (i, op) in req.operations.iter().enumerate() {
            if let Err(e) = snap.plan(&op.object) {
                return Ok(fail_early(i, op, e));
            }
            let mut checked = check_refs(&Json::Object(op.data.clone()), i, "data");
            if let (Ok(()), Some(id)) = (&checked, &op.id) {
                checked = match id {
                    Json::String(_) => Ok(()),
                    other if as_ref(other).is_some() => check_refs(other, i, "id"),
                    _ => Err(format!(
                        "operations[{i}].id: expected a record id or {{\"$ref\": n}}"
                    )),
                };
            }
            if let Err(message) = checked {
                let error = DataError::InvalidBody {
                    object: op.object.clone(),
                    message,
                };
                return Ok(fail_early(i, op, error));
            }
        }
        let mut ids: Vec<Option<String>> = Vec::with_capacity(total);
        let mut results: Vec<CrossBatchItemResult> = Vec::with_capacity(total);
        let mut failure = None;
        self.admit_writes(cx, total)?;
        if opts.atomic {
            let unit = self.begin_write(cx).await?;
            let tx = unit.tx();
            for (i, op) in req.operations.into_iter().enumerate() {
                let (object, operation) = (op.object.clone(), op.operation);
                match unit.run(self.cross_item(tx, cx, &snap, op, &ids, i)).await {
                    Ok(rec) => {
                        let id = record_id(&rec);
                        results.push(ok_result(i, object, operation, &id, rec, &opts));
                        ids.push(id);
                    }
                    Err(error) => {
                        results.push(err_result(i, object.clone(), operation, &error));
                        failure = Some(CrossBatchFailure {
                            index: i,
                            object,
                            operation,
                            error,
                        });
                        break;
                    }
                }
            }
            if failure.is_some() {
                unit.discard().await;
                for r in results.iter_mut().filter(|r| r.success) {
                    r.success = false;
                    r.data = None;
                    r.errors.push(BatchItemError {
                        code: "ROLLED_BACK".into(),
                        message: "Rolled back: another operation of this atomic batch failed"
                            .into(),
                        fields: Vec::new(),
                    });
                }
            } else {
                unit.finish(Ok(())).await?;
            }
        } else {
            for (i, op) in req.operations.into_iter().enumerate() {
                let (object, operation) = (op.object.clone(), op.operation);
                let unit = self.begin_write(cx).await?;
                let r = unit
                    .run(self.cross_item(unit.tx(), cx, &snap, op, &ids, i))
                    .await;
                let r = unit.finish(r).await;
                match r {
                    Ok(rec) => {
                        let id = record_id(&rec);
                        results.push(ok_result(i, object, operation, &id, rec, &opts));
                        ids.push(id);
                    }
                    Err(error) => {
                        results.push(err_result(i, object, operation, &error));
                        ids.push(None);
                        if !opts.continue_on_error {
                            break;
                        }
                    }
                }
            }
        }
        let succeeded = results.iter().filter(|r| r.success).count();
        Ok(CrossBatchResult {
            success: succeeded == total,
            total,
            succeeded,
            failed: total - succeeded,
            results,
            failure,
        })
    }

    async fn cross_item(
        &self,
        tx: &sea_orm::DatabaseTransaction,
        cx: &OpContext,
        snap: &meta::MetadataSnapshot,
        op: CrossBatchOperation,
        ids: &[Option<String>],
        index: usize,
    ) -> Result<Record> {
        let plan = snap.plan(&op.object)?.clone();
        let mut data = Json::Object(op.data);
        resolve(&mut data, ids, index).map_err(|e| with_object(e, &plan.name))?;
        let id = match op.id {
            Some(mut v) => {
                resolve(&mut v, ids, index).map_err(|e| with_object(e, &plan.name))?;
                v.as_str().map(str::to_owned)
            }
            None => None,
        };
        let Json::Object(data) = data else {
            return Err(DataError::Internal(
                "batch data stopped being an object".into(),
            ));
        };
        let item = BatchItem {
            id,
            data,
            external_id: op.external_id,
        };
        let scope = WriteScope {
            tx,
            cx,
            snap,
            plan: &plan,
        };
        self.batch_item(scope, op.operation, item).await
    }

    /// Creates a copy of record `id` of `object`: its fields as the caller reads them (so the
    /// read interceptors apply), without system fields, computed fields, autonumbers (the copy
    /// gets its own) and unique fields (a copy cannot keep them), then `overrides` on top, written
    /// through the normal create path.
    pub async fn clone_record(
        &self,
        cx: &OpContext,
        object: &str,
        id: &str,
        overrides: Record,
    ) -> Result<Record> {
        let source = self.get(cx, object, id, QueryAst::default()).await?;
        let snap = self.metadata();
        let plan = snap.plan(object)?.clone();
        let mut data = Record::new();
        for (k, v) in source {
            if meta::SYSTEM_FIELD_ORDER.contains(&k.as_str()) {
                continue;
            }
            match plan.field(&k) {
                Some(f)
                    if plan.column(&k).is_some()
                        && !f.unique
                        && f.kind != objectos_spec::object::FieldType::Autonumber =>
                {
                    data.insert(k, v);
                }
                _ => {}
            }
        }
        data.extend(overrides);
        self.create(cx, object, data).await
    }
}

fn with_object(e: DataError, object: &str) -> DataError {
    match e {
        DataError::InvalidBody { message, .. } => DataError::InvalidBody {
            object: object.to_owned(),
            message,
        },
        other => other,
    }
}

fn record_id(rec: &Record) -> Option<String> {
    rec.get("id").and_then(Json::as_str).map(str::to_owned)
}

fn ok_result(
    index: usize,
    object: String,
    operation: BatchOperation,
    id: &Option<String>,
    rec: Record,
    opts: &CrossBatchOptions,
) -> CrossBatchItemResult {
    CrossBatchItemResult {
        index,
        object,
        operation,
        id: id.clone(),
        success: true,
        errors: Vec::new(),
        data: opts.return_records.then_some(rec),
    }
}

fn err_result(
    index: usize,
    object: String,
    operation: BatchOperation,
    error: &DataError,
) -> CrossBatchItemResult {
    CrossBatchItemResult {
        index,
        object,
        operation,
        id: None,
        success: false,
        errors: vec![error.into()],
        data: None,
    }
}
