//! [`StorageService`]: the `file-storage` service. It implements the [`BlobStore`] contract
//! (delegating to the configured backend) and everything the routes do, one submodule per area:
//! upload sessions ([`uploads`]: presigned, chunked and resumable uploads, their cleanup),
//! reading ([`access`]: the read check that ties a file to the records that reference it, signed
//! URLs, and the check of file values written into records), and limits ([`quota`]: size,
//! organization quota, the types a field accepts). This file keeps the service itself, the file
//! records and the helpers they share.

mod access;
mod quota;
mod uploads;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use objectos_data::{DataEngine, OpContext, Principal, Record};
use objectos_kernel::KernelError;
use objectos_kernel::contracts::{Authorizer, BlobMeta, BlobRead, BlobStore, ByteStream, Caller};
use objectos_spec::query::QueryAst;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::StorageSettings;
use crate::error::StorageError;
use crate::local::LocalBlobStore;
use crate::schema::FILE_OBJECT;
use crate::sign::Signer;

pub(crate) use quota::allowed_types_of;
pub use uploads::{ChunkedInit, PartRef, PresignRequest, UploadTarget};

/// Where the signed raw transfers are served, under `/api/v1/storage` (the official local
/// driver's path, kept for every backend: contents always pass through the server, which
/// checks the token and streams).
pub const RAW_PATH: &str = "/api/v1/storage/_local/raw/";

/// The public URL of a file's signed-URL route.
pub fn download_url_path(file_id: &str) -> String {
    format!("/api/v1/storage/files/{file_id}/url")
}

/// What the service needs once started.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) engine: DataEngine,
    pub(crate) blobs: Arc<dyn BlobStore>,
    /// The same store as `blobs` when it is the local folder: chunked uploads are assembled in
    /// place there instead of being stored as parts and joined.
    pub(crate) local: Option<Arc<LocalBlobStore>>,
    pub(crate) authorizer: Option<Arc<dyn Authorizer>>,
}

/// The `file-storage` service.
#[derive(Debug)]
pub struct StorageService {
    settings: StorageSettings,
    signer: Signer,
    started: OnceLock<Started>,
    upload_locks: uploads::UploadLocks,
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn sha_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A file name safe to store and to send back in `Content-Disposition`: the last path segment
/// (so `../x` and `/etc/passwd` lose their folders), without NUL, control characters, quotes or
/// backslashes, at most 255 bytes; `file` when nothing is left.
pub fn safe_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\\' | '/'))
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let mut out = String::new();
    for c in trimmed.chars() {
        if out.len() + c.len_utf8() > 255 {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        "file".to_owned()
    } else {
        out
    }
}

/// A key segment for a tenant id: itself when it is plain, else a hash of it.
fn tenant_segment(tenant: Option<&str>) -> String {
    match tenant {
        None => "_".to_owned(),
        Some(t)
            if !t.is_empty()
                && t.len() <= 64
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            t.to_owned()
        }
        Some(t) => sha_hex(t)[..32].to_owned(),
    }
}

fn file_key(tenant: Option<&str>, file_id: &str) -> String {
    format!(
        "files/{}/{}",
        tenant_segment(tenant),
        tenant_segment(Some(file_id))
    )
}

fn number(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().map(|f| f.max(0.0) as u64))
            .unwrap_or(0),
        Some(Value::String(s)) => s.parse::<f64>().map_or(0, |f| f.max(0.0) as u64),
        _ => 0,
    }
}

fn text(r: &Record, k: &str) -> Option<String> {
    r.get(k).and_then(Value::as_str).map(str::to_owned)
}

/// A stored file, as the routes answer it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileInfo {
    pub file_id: String,
    pub path: String,
    pub name: String,
    pub size: u64,
    pub mime_type: String,
    pub last_modified: String,
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// A signed download, ready to stream.
#[derive(Debug)]
pub struct Download {
    pub name: String,
    pub mime_type: String,
    pub read: BlobRead,
}

impl StorageService {
    pub(crate) fn new(settings: StorageSettings, signer: Signer) -> Self {
        Self {
            settings,
            signer,
            started: OnceLock::new(),
            upload_locks: uploads::UploadLocks::default(),
        }
    }

    pub fn settings(&self) -> &StorageSettings {
        &self.settings
    }

    pub(crate) fn set_started(&self, started: Started) {
        let _ = self.started.set(started);
    }

    fn s(&self) -> Result<&Started, StorageError> {
        self.started.get().ok_or(StorageError::NotStarted)
    }

    /// The configured backend (`local` or `s3`) once started.
    pub fn blobs(&self) -> Option<Arc<dyn BlobStore>> {
        self.started.get().map(|s| s.blobs.clone())
    }

    /// The context the plugin writes `sys_file` records with: the acting user as an
    /// administrator of its organization. Files are system records users cannot create through
    /// the data API; stamping the user keeps `owner_id` and the audit trail right.
    fn writer_cx(caller: &Caller) -> OpContext {
        let mut cx = OpContext::system("file storage");
        if let Principal::User { id, .. } = &caller.principal {
            cx.principal = Principal::User {
                id: id.clone(),
                roles: Vec::new(),
                permission_sets: Vec::new(),
                is_admin: true,
            };
        }
        cx.tenant = caller.tenant.clone();
        cx
    }

    fn system_cx(tenant: Option<&str>) -> OpContext {
        let mut cx = OpContext::system("file storage");
        cx.tenant = tenant.map(str::to_owned);
        cx
    }

    fn user_of(caller: &Caller) -> Result<Option<String>, StorageError> {
        match &caller.principal {
            Principal::Anonymous => Err(StorageError::AuthRequired),
            Principal::User { id, .. } => Ok(Some(id.clone())),
            Principal::System { .. } => Ok(None),
        }
    }

    fn is_privileged(caller: &Caller) -> bool {
        matches!(
            caller.principal,
            Principal::System { .. } | Principal::User { is_admin: true, .. }
        )
    }

    // ---- files ----

    async fn file_record(&self, tenant: Option<&str>, id: &str) -> Result<Record, StorageError> {
        let st = self.s()?;
        match st
            .engine
            .get(
                &Self::system_cx(tenant),
                FILE_OBJECT,
                id,
                QueryAst::default(),
            )
            .await
        {
            Ok(r) => Ok(r),
            Err(e) if e.http_status() == 404 || e.code() == "INVALID_QUERY" => {
                Err(StorageError::FileNotFound(id.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn finish_file(
        &self,
        caller: &Caller,
        file_id: &str,
        size: u64,
        mime: &str,
        checksum: &str,
    ) -> Result<FileInfo, StorageError> {
        let st = self.s()?;
        let mut patch = Record::new();
        patch.insert("size".into(), json!(size));
        patch.insert("mime_type".into(), json!(mime));
        patch.insert("checksum".into(), json!(checksum));
        patch.insert("status".into(), json!("ready"));
        let rec = st
            .engine
            .update(&Self::writer_cx(caller), FILE_OBJECT, file_id, patch, None)
            .await?;
        Ok(self.info(caller.tenant.as_deref(), &rec))
    }

    fn info(&self, tenant: Option<&str>, rec: &Record) -> FileInfo {
        let id = text(rec, "id").unwrap_or_default();
        FileInfo {
            path: file_key(tenant, &id),
            file_id: id,
            name: text(rec, "name").unwrap_or_default(),
            size: number(rec.get("size")),
            mime_type: text(rec, "mime_type").unwrap_or_else(|| "application/octet-stream".into()),
            last_modified: text(rec, "updated_at").unwrap_or_default(),
            created: text(rec, "created_at").unwrap_or_default(),
            etag: text(rec, "checksum"),
        }
    }
}

#[async_trait]
impl BlobStore for StorageService {
    fn backend(&self) -> &str {
        match self.started.get() {
            Some(s) => s.blobs.backend(),
            None => "none",
        }
    }

    async fn put(&self, key: &str, body: ByteStream) -> Result<BlobMeta, KernelError> {
        self.inner(key)?.put(key, body).await
    }

    async fn get(
        &self,
        key: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Option<BlobRead>, KernelError> {
        self.inner(key)?.get(key, range).await
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, KernelError> {
        self.inner(key)?.head(key).await
    }

    async fn delete(&self, key: &str) -> Result<(), KernelError> {
        self.inner(key)?.delete(key).await
    }
}

impl StorageService {
    fn inner(&self, key: &str) -> Result<Arc<dyn BlobStore>, KernelError> {
        self.blobs().ok_or_else(|| KernelError::Blob {
            backend: "none".into(),
            key: key.to_owned(),
            message: "the storage plugin is not started".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn unsafe_names_become_safe() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("/abs/path.pdf"), "path.pdf");
        assert_eq!(safe_name("C:\\Users\\x\\doc.pdf"), "doc.pdf");
        assert_eq!(safe_name("a\0b.txt"), "ab.txt");
        assert_eq!(safe_name(".."), "file");
        assert_eq!(safe_name(".hidden"), "hidden");
        assert_eq!(safe_name("rapport \"final\".pdf"), "rapport final.pdf");
        assert_eq!(safe_name(&"é".repeat(300)).len(), 254);
    }
}
