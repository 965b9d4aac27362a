//! Limits: the size of one file, the organization's quota of stored bytes, and the MIME types
//! a file field (`file`, `image`, `avatar`, `video`, `audio`) accepts.

use objectos_spec::object::{Field, FieldType};
use objectos_spec::query::{AggregateFunction, Aggregation, Filter, QueryAst};
use serde_json::Value;

use super::{StorageService, number};
use crate::error::StorageError;
use crate::schema::FILE_OBJECT;

impl StorageService {
    pub(crate) fn check_size(&self, size: u64) -> Result<(), StorageError> {
        if size > self.settings.max_file_size {
            return Err(StorageError::TooLarge(format!(
                "the file has {size} bytes; the limit is {} bytes (storage.maxFileSize)",
                self.settings.max_file_size
            )));
        }
        Ok(())
    }

    /// Bytes the organization's ready files take.
    pub async fn used_bytes(&self, tenant: Option<&str>) -> Result<u64, StorageError> {
        let s = self.s()?;
        let query = QueryAst {
            filter: Filter::eq("status", "ready"),
            aggregations: vec![Aggregation {
                function: AggregateFunction::Sum,
                field: Some("size".into()),
                alias: "used".into(),
                distinct: false,
                filter: None,
            }],
            ..QueryAst::default()
        };
        let found = s
            .engine
            .find(&Self::system_cx(tenant), FILE_OBJECT, query)
            .await?;
        Ok(number(found.records.first().and_then(|r| r.get("used"))))
    }

    pub(crate) async fn check_quota(
        &self,
        tenant: Option<&str>,
        adding: u64,
    ) -> Result<(), StorageError> {
        let Some(quota) = self.settings.organization_quota else {
            return Ok(());
        };
        let used = self.used_bytes(tenant).await?;
        if used.saturating_add(adding) > quota {
            return Err(StorageError::QuotaExceeded(format!(
                "the organization stores {used} bytes; {adding} more would pass its quota of {quota} bytes (storage.organizationQuota)"
            )));
        }
        Ok(())
    }

    /// The MIME types `object.field` accepts ([`allowed_types_of`]) for an upload that names
    /// it, checking that the field exists and holds files.
    pub(crate) fn allowed_types(
        &self,
        object: Option<&str>,
        field: Option<&str>,
    ) -> Result<Option<Vec<String>>, StorageError> {
        let (Some(object), Some(field)) = (object, field) else {
            if object.is_some() || field.is_some() {
                return Err(StorageError::InvalidRequest(
                    "`object` and `field` go together: name both or neither".into(),
                ));
            }
            return Ok(None);
        };
        let snap = self.s()?.engine.metadata();
        let f = snap
            .object(object)
            .and_then(|o| o.fields.get(field))
            .ok_or_else(|| {
                StorageError::InvalidRequest(format!("`{object}.{field}` is not a field"))
            })?;
        if !f.kind.is_media() {
            return Err(StorageError::InvalidRequest(format!(
                "`{object}.{field}` is a `{}` field, not a file field (`file`, `image`, `avatar`, `video` or `audio`)",
                f.kind.as_str()
            )));
        }
        Ok(allowed_types_of(f))
    }
}

/// The MIME types a file field accepts: its `fileAttachmentConfig`'s `allowedMimeTypes` (or
/// `allowedTypes`; entries without a `/`, such as extensions, are not types and are left out),
/// else the family its type names ([`default_types_of`]); `None` when any type goes.
pub(crate) fn allowed_types_of(f: &Field) -> Option<Vec<String>> {
    let config = f.file_attachment_config.as_ref();
    let list = config
        .and_then(|c| c.get("allowedMimeTypes").or_else(|| c.get("allowedTypes")))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter(|s| s.contains('/'))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.is_empty());
    list.or_else(|| default_types_of(f.kind).map(|t| vec![t.to_owned()]))
}

/// The MIME family a media field takes unless configured otherwise: an `image` or `avatar`
/// field takes images, a `video` field videos, an `audio` field sound; a `file` field anything.
pub(crate) fn default_types_of(kind: FieldType) -> Option<&'static str> {
    match kind {
        FieldType::Image | FieldType::Avatar => Some("image/*"),
        FieldType::Video => Some("video/*"),
        FieldType::Audio => Some("audio/*"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use objectos_spec::object::FieldType;

    use super::default_types_of;

    #[test]
    fn every_media_type_names_its_family() {
        assert_eq!(default_types_of(FieldType::Image), Some("image/*"));
        assert_eq!(default_types_of(FieldType::Avatar), Some("image/*"));
        assert_eq!(default_types_of(FieldType::Video), Some("video/*"));
        assert_eq!(default_types_of(FieldType::Audio), Some("audio/*"));
        assert_eq!(default_types_of(FieldType::File), None);
        assert!(FieldType::Avatar.is_media() && FieldType::Video.is_media());
    }
}
