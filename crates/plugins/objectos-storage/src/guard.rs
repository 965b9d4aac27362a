//! [`FileFieldGuard`]: the data-engine interceptor that checks every file id written into a
//! file field (`file`, `image`, `avatar`, `video`, `audio`; create and update, single values
//! and `multiple` lists).
//!
//! Reading a file follows the records that hold it, so writing a file id into a record is a
//! grant: without this check, a user who learned another user's file id could put it into a
//! record they may edit and download the file through that record. A user may therefore attach
//! only a file they may read already (the download rule, [`StorageService::may_read`]: their own
//! unattached upload, or a file held by a record and field they read; any file of their
//! organization for its administrators), and only one whose sniffed MIME type the field
//! accepts. A refusal aborts the whole write (the engine rolls the transaction back), so nothing
//! is written in part.

use std::sync::Weak;

use async_trait::async_trait;
use objectos_data::{DataError, FieldError, HookContext, Interceptor, Operation, Principal};
use objectos_kernel::contracts::Caller;
use objectos_spec::object::{Field, ObjectSchema};
use serde_json::Value;

use crate::error::StorageError;
use crate::meter::mime_allowed;
use crate::schema::FILE_OBJECT;
use crate::service::{StorageService, allowed_types_of};

/// After the permissions interceptor (-1000): a caller who may not write the record or the
/// field is refused for that first, and the file check runs on input it left.
pub const ORDER: i32 = -900;

/// The interceptor. It holds the service weakly: the service holds the engine, which holds its
/// interceptors.
#[derive(Debug)]
pub struct FileFieldGuard {
    service: Weak<StorageService>,
}

impl FileFieldGuard {
    pub fn new(service: Weak<StorageService>) -> Self {
        Self { service }
    }
}

/// The file ids a file field's value names: a text value, the `id` or `fileId` of an object
/// value, or a list of either. A text holding `/` or `:` is a link or a path (a logo URL), not a
/// file id (ids never hold either, and reads only ever match a field's value with a file id
/// exactly), so it grants nothing and is left as it is.
pub fn file_ids(value: &Value) -> Vec<String> {
    fn one(v: &Value) -> Option<String> {
        match v {
            Value::String(s) if !s.trim().is_empty() && !s.contains(['/', ':']) => Some(s.clone()),
            Value::Object(m) => m
                .get("fileId")
                .or_else(|| m.get("id"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            _ => None,
        }
    }
    match value {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        other => one(other).into_iter().collect(),
    }
}

fn label(field: &Field) -> String {
    field.label.clone().unwrap_or_else(|| field.name.clone())
}

/// The refusal of a file the writer may not read. It is the same for a file that does not
/// exist, is still being uploaded, belongs to another organization or to someone else, and does
/// not repeat the id, so file ids cannot be probed through record writes.
fn not_attachable(schema: &ObjectSchema, field: &Field) -> DataError {
    let label = label(field);
    let message = format!(
        "{label} must refer to an uploaded file you can read (field `{}`)",
        field.name
    );
    DataError::Validation {
        object: schema.name.clone(),
        message: message.clone(),
        fields: vec![FieldError::new(&field.name, "invalid_reference", message).with_label(label)],
    }
}

fn wrong_type(schema: &ObjectSchema, field: &Field, mime: &str, allowed: &[String]) -> DataError {
    let label = label(field);
    let message = format!(
        "{label} does not accept `{mime}` files (field `{}` accepts {})",
        field.name,
        allowed.join(", ")
    );
    DataError::UnsupportedMediaType {
        object: schema.name.clone(),
        message: message.clone(),
        fields: vec![
            FieldError::new(&field.name, "unsupported_media_type", message)
                .with_label(label)
                .with_constraint(serde_json::json!({ "allowed": allowed })),
        ],
    }
}

/// A failure of the check itself (not a refusal): the engine's own error when it is one.
fn failed(e: StorageError) -> DataError {
    match e {
        StorageError::Data(e) => e,
        StorageError::NotStarted => DataError::Unavailable(
            "the storage plugin has not started; file fields cannot be checked yet".into(),
        ),
        other => DataError::Internal(format!("storage: {other}")),
    }
}

#[async_trait]
impl Interceptor for FileFieldGuard {
    fn name(&self) -> &str {
        "storage.file-fields"
    }

    fn order(&self) -> i32 {
        ORDER
    }

    fn applies_to(&self, object: &str, op: Operation) -> bool {
        matches!(op, Operation::Create | Operation::Update) && object != FILE_OBJECT
    }

    async fn before(&self, hook: &mut HookContext<'_>) -> Result<(), DataError> {
        // Internal writes (seeds, the auth plugin's organization logo) are trusted code.
        if matches!(hook.cx.principal, Principal::System { .. }) {
            return Ok(());
        }
        let Some(input) = hook.input.as_deref() else {
            return Ok(());
        };
        let schema = hook.object;
        let mut wanted: Vec<(&Field, Vec<String>)> = Vec::new();
        for (name, value) in input {
            let Some(field) = schema.field(name) else {
                continue;
            };
            if !field.kind.is_media() {
                continue;
            }
            // A file an update leaves in place was checked when it was written; echoing a
            // record back must not fail because of it.
            let before = hook
                .previous
                .and_then(|p| p.get(name))
                .map(file_ids)
                .unwrap_or_default();
            let mut ids: Vec<String> = file_ids(value)
                .into_iter()
                .filter(|id| !before.contains(id))
                .collect();
            ids.sort();
            ids.dedup();
            if !ids.is_empty() {
                wanted.push((field, ids));
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let service = self
            .service
            .upgrade()
            .ok_or_else(|| failed(StorageError::NotStarted))?;
        let tx = hook.write_tx()?;
        let caller = Caller::new(hook.cx.principal.clone(), hook.cx.tenant.clone());
        for (field, ids) in wanted {
            let allowed = allowed_types_of(field);
            for id in ids {
                let Some(file) = service.attachable(tx, &caller, &id).await.map_err(failed)? else {
                    return Err(not_attachable(schema, field));
                };
                if let Some(allowed) = &allowed {
                    let mime = file
                        .mime_type
                        .as_deref()
                        .unwrap_or("application/octet-stream");
                    if !mime_allowed(mime, allowed) {
                        return Err(wrong_type(schema, field, mime, allowed));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::file_ids;

    #[test]
    fn file_ids_of_every_value_shape() {
        assert_eq!(file_ids(&json!("01abc")), vec!["01abc"]);
        assert_eq!(file_ids(&json!(["a", "b"])), vec!["a", "b"]);
        assert_eq!(file_ids(&json!({ "id": "a", "name": "x.pdf" })), vec!["a"]);
        assert_eq!(file_ids(&json!([{ "fileId": "a" }, "b"])), vec!["a", "b"]);
        // Links and paths name no stored file.
        assert!(file_ids(&json!("https://example.com/logo.png")).is_empty());
        assert!(file_ids(&json!("files/1.png")).is_empty());
        assert!(file_ids(&json!({ "url": "https://x/y" })).is_empty());
        assert!(file_ids(&json!("")).is_empty());
        assert!(file_ids(&json!(null)).is_empty());
        assert!(file_ids(&json!(3)).is_empty());
    }
}
