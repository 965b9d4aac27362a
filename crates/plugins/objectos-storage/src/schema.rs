//! What the storage plugin owns in the data engine (docs/specs/plugin.md 6.5): the `sys_file`
//! object (one record per file) and two private tables for upload sessions and their parts.

use objectos_data::{ColumnType, PluginSchema, TableDef};

/// The object holding one record per file; its id is the file id of the wire.
pub const FILE_OBJECT: &str = "sys_file";

/// Upload sessions (presigned and chunked), until completed or expired.
pub const UPLOADS_TABLE: &str = "_objectos_storage_upload";

/// The received parts of chunked uploads.
pub const PARTS_TABLE: &str = "_objectos_storage_part";

/// Everything the plugin owns, contributed at `init`.
pub fn schema() -> PluginSchema {
    use ColumnType::{BigInt, Text};
    let uploads = TableDef::new(UPLOADS_TABLE)
        .required("id", Text)
        .required("file_id", Text)
        .required("kind", Text)
        .column("tenant_id", Text)
        .column("user_id", Text)
        .required("filename", Text)
        .column("declared_mime", Text)
        .required("total_size", BigInt)
        .required("chunk_size", BigInt)
        .required("total_chunks", BigInt)
        .column("resume_token_hash", Text)
        .required("status", Text)
        .column("object_name", Text)
        .column("field_name", Text)
        .column("received_size", BigInt)
        .column("checksum", Text)
        .column("mime_type", Text)
        .required("created_at", BigInt)
        .required("expires_at", BigInt)
        .primary_key(&["id"])
        .index("ix_objectos_storage_upload_file", &["file_id"])
        .index("ix_objectos_storage_upload_expires", &["expires_at"]);
    let parts = TableDef::new(PARTS_TABLE)
        .required("upload_id", Text)
        .required("idx", BigInt)
        .required("size", BigInt)
        .required("etag", Text)
        .primary_key(&["upload_id", "idx"]);
    PluginSchema::new()
        .object(
            "objects/sys_file.object.yml",
            include_str!("../objects/sys_file.object.yml"),
        )
        .table(uploads)
        .table(parts)
}
