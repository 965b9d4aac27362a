//! Bulk writes on one object: `batch` (create, update, upsert, delete; atomic or per item),
//! `createMany`, `updateMany` and `deleteMany`, each item through the single-record write path.

use objectos_spec::query::Filter;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{DataEngine, WriteScope, id_filter, limits};
use crate::Record;
use crate::context::OpContext;
use crate::error::{DataError, FieldError, Result};

/// What a batch does with each item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BatchOperation {
    Create,
    Update,
    Upsert,
    Delete,
}

/// One item of a batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BatchItem {
    pub id: Option<String>,
    pub data: Record,
    pub external_id: Option<String>,
}

/// Options of a batch; `atomic` defaults to true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BatchOptions {
    pub atomic: bool,
    pub return_records: bool,
    pub continue_on_error: bool,
    pub validate_only: bool,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            atomic: true,
            return_records: true,
            continue_on_error: false,
            validate_only: false,
        }
    }
}

/// A batch request (spec `BatchUpdateRequest` shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRequest {
    pub operation: BatchOperation,
    #[serde(default)]
    pub records: Vec<BatchItem>,
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default)]
    pub options: BatchOptions,
}

/// The outcome of one batch item.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemResult {
    pub id: Option<String>,
    pub success: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<BatchItemError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Record>,
}

/// Why a batch item failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchItemError {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

impl From<&DataError> for BatchItemError {
    fn from(e: &DataError) -> Self {
        Self {
            code: e.code().to_owned(),
            message: e.public_message(),
            fields: e.field_errors().to_vec(),
        }
    }
}

/// The outcome of a batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResult {
    pub success: bool,
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub results: Vec<BatchItemResult>,
}

impl DataEngine {
    /// Creates several records atomically: all or none.
    #[tracing::instrument(name = "data.create_many", level = "debug", skip_all, fields(object = object))]
    pub async fn create_many(
        &self,
        cx: &OpContext,
        object: &str,
        data: Vec<Record>,
    ) -> Result<Vec<Record>> {
        let _timer = crate::observe::OpTimer::start(crate::observe::Op::Batch);
        let snap = self.metadata();
        let plan = snap.plan(object)?.clone();
        limits::check_batch_size(&self.inner.limits.load(), object, data.len())?;
        self.admit_writes(cx, data.len())?;
        let unit = self.begin_write(cx).await?;
        let scope = WriteScope {
            tx: unit.tx(),
            cx,
            snap: &snap,
            plan: &plan,
        };
        let r = unit
            .run(async {
                let mut out = Vec::with_capacity(data.len());
                for d in data {
                    out.push(self.create_in(scope, d).await?);
                }
                Ok(out)
            })
            .await;
        unit.finish(r).await
    }

    /// Runs a batch: atomic (one transaction, all or nothing) unless `continueOnError`, which
    /// gives each item its own transaction and per-item results.
    #[tracing::instrument(name = "data.batch", level = "debug", skip_all, fields(object = object))]
    pub async fn batch(
        &self,
        cx: &OpContext,
        object: &str,
        req: BatchRequest,
    ) -> Result<BatchResult> {
        let _timer = crate::observe::OpTimer::start(crate::observe::Op::Batch);
        let snap = self.metadata();
        let plan = snap.plan(object)?.clone();
        let mut items: Vec<BatchItem> = req.records;
        if req.operation == BatchOperation::Delete {
            items.extend(req.ids.into_iter().map(|id| BatchItem {
                id: Some(id),
                ..BatchItem::default()
            }));
        }
        let total = items.len();
        limits::check_batch_size(&self.inner.limits.load(), object, total)?;
        let opts = req.options;
        if !opts.validate_only {
            self.admit_writes(cx, total)?;
        }
        let mut results = Vec::with_capacity(total);
        if opts.atomic && !opts.continue_on_error {
            let unit = self.begin_write(cx).await?;
            let scope = WriteScope {
                tx: unit.tx(),
                cx,
                snap: &snap,
                plan: &plan,
            };
            let mut failed = false;
            for item in items {
                if failed {
                    results.push(BatchItemResult {
                        id: item.id,
                        success: false,
                        errors: vec![BatchItemError {
                            code: "NOT_APPLIED".into(),
                            message: "Not applied: an earlier item of this atomic batch failed"
                                .into(),
                            fields: Vec::new(),
                        }],
                        data: None,
                    });
                    continue;
                }
                let id = item.id.clone();
                match unit.run(self.batch_item(scope, req.operation, item)).await {
                    Ok(rec) => results.push(ok_item(id, rec, opts.return_records)),
                    Err(e) => {
                        failed = true;
                        results.push(BatchItemResult {
                            id,
                            success: false,
                            errors: vec![(&e).into()],
                            data: None,
                        });
                    }
                }
            }
            if failed || opts.validate_only {
                unit.discard().await;
                if failed {
                    for r in &mut results {
                        if r.success {
                            r.success = false;
                            r.data = None;
                            r.errors.push(BatchItemError {
                                code: "ROLLED_BACK".into(),
                                message: "Rolled back: another item of this atomic batch failed"
                                    .into(),
                                fields: Vec::new(),
                            });
                        }
                    }
                }
            } else {
                unit.finish(Ok(())).await?;
            }
        } else {
            for item in items {
                let id = item.id.clone();
                let unit = self.begin_write(cx).await?;
                let scope = WriteScope {
                    tx: unit.tx(),
                    cx,
                    snap: &snap,
                    plan: &plan,
                };
                let r = unit.run(self.batch_item(scope, req.operation, item)).await;
                let r = if opts.validate_only {
                    unit.discard().await;
                    r
                } else {
                    unit.finish(r).await
                };
                let stop = r.is_err() && !opts.continue_on_error;
                results.push(match r {
                    Ok(rec) => ok_item(id, rec, opts.return_records),
                    Err(e) => BatchItemResult {
                        id,
                        success: false,
                        errors: vec![(&e).into()],
                        data: None,
                    },
                });
                if stop {
                    break;
                }
            }
        }
        let succeeded = results.iter().filter(|r| r.success).count();
        let failed = total - succeeded;
        Ok(BatchResult {
            success: failed == 0,
            total,
            succeeded,
            failed,
            results,
        })
    }

    /// Updates several records (`records[].id` + `data`), as a batch.
    pub async fn update_many(
        &self,
        cx: &OpContext,
        object: &str,
        mut req: BatchRequest,
    ) -> Result<BatchResult> {
        req.operation = BatchOperation::Update;
        self.batch(cx, object, req).await
    }

    /// Deletes several records (`ids`, or `records[].id`), as a batch.
    pub async fn delete_many(
        &self,
        cx: &OpContext,
        object: &str,
        mut req: BatchRequest,
    ) -> Result<BatchResult> {
        req.operation = BatchOperation::Delete;
        self.batch(cx, object, req).await
    }

    /// One item of a batch (or of a cross-object batch) in `scope`'s transaction, through the
    /// single-record write of its operation; an upsert finds its record by id or externalId.
    pub(super) async fn batch_item(
        &self,
        scope: WriteScope<'_>,
        op: BatchOperation,
        item: BatchItem,
    ) -> Result<Record> {
        let plan = scope.plan;
        let need_id = |id: Option<String>| {
            id.ok_or_else(|| DataError::InvalidBody {
                object: plan.name.clone(),
                message: "Each batch item needs an 'id' for this operation".into(),
            })
        };
        match op {
            BatchOperation::Create => self.create_in(scope, item.data).await,
            BatchOperation::Update => {
                self.update_in(scope, &need_id(item.id)?, item.data, None)
                    .await
            }
            BatchOperation::Delete => self.delete_in(scope, &need_id(item.id)?, 0).await,
            BatchOperation::Upsert => {
                let existing = match (&item.id, &item.external_id) {
                    (Some(id), _) => Some(id.clone()),
                    (None, Some(ext)) => {
                        let field = plan.schema.fields.values().find(|f| f.external_id).ok_or_else(|| DataError::InvalidBody {
                            object: plan.name.clone(),
                            message: format!("Object '{}' has no externalId field, so externalId cannot be used", plan.name),
                        })?;
                        let found = self
                            .select(
                                scope.read(),
                                &Filter::eq(field.name.clone(), ext.clone()),
                                Some(1),
                                "filter",
                            )
                            .await?;
                        found
                            .first()
                            .and_then(|r| r.get("id"))
                            .and_then(Json::as_str)
                            .map(str::to_owned)
                    }
                    _ => None,
                };
                let exists = match &existing {
                    Some(id) => !self
                        .select(scope.read(), &id_filter(id), Some(1), "filter")
                        .await?
                        .is_empty(),
                    None => false,
                };
                match existing {
                    Some(id) if exists => self.update_in(scope, &id, item.data, None).await,
                    _ => {
                        let mut data = item.data;
                        if let (Some(ext), Some(f)) = (
                            &item.external_id,
                            plan.schema.fields.values().find(|f| f.external_id),
                        ) {
                            data.entry(f.name.clone())
                                .or_insert(Json::String(ext.clone()));
                        }
                        self.create_in(scope, data).await
                    }
                }
            }
        }
    }
}

fn ok_item(id: Option<String>, rec: Record, return_records: bool) -> BatchItemResult {
    let id = rec
        .get("id")
        .and_then(Json::as_str)
        .map(str::to_owned)
        .or(id);
    BatchItemResult {
        id,
        success: true,
        errors: Vec::new(),
        data: return_records.then_some(rec),
    }
}
