//! Upload sessions: presigned uploads (a signed raw `PUT`, then complete), chunked and
//! resumable uploads (parts with a resume token, progress, complete), and the removal of
//! expired sessions. Sessions and parts are the plugin's private tables.
//!
//! Both kinds complete through one path ([`StorageService::complete_session`]): the session is
//! claimed (`in_progress` to `completing`, one caller wins), its contents become the file
//! (measured, sniffed and checked against the field's types), the record turns `ready`, and the
//! session stays as `completed` until it expires, so completing again answers the same file.
//! On the local backend a chunked upload's parts are written at their offsets of one file, the
//! parts that come in order continue the file's SHA-256 as they arrive (`state.rs`), and
//! completion sniffs the head, hashes only what came out of order and renames the file into
//! place; other backends store parts as objects and join them.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use futures_util::{StreamExt, TryStreamExt};
use objectos_data::Record;
use objectos_data::store::{Row, Sql, Store};
use objectos_kernel::KernelError;
use objectos_kernel::contracts::{ByteStream, Caller};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest as _;

use super::{
    FileInfo, RAW_PATH, StorageService, download_url_path, file_key, i, iso, now_ms, safe_name,
    sha_hex, tenant_segment, text, u,
};
use crate::config::MIN_CHUNK_SIZE;
use crate::error::StorageError;
use crate::meter::{Meter, Rules, judge, metered};
use crate::schema::{FILE_OBJECT, PARTS_TABLE, UPLOADS_TABLE};
use crate::sign::{Claims, Op};
use crate::sniff::SNIFF_LEN;

mod state;

pub(crate) use state::UploadLocks;
use state::UploadState;

/// Kinds of upload session.
const PRESIGNED: &str = "presigned";
const CHUNKED: &str = "chunked";

/// Sessions' status values (the wire's `status` of progress).
const IN_PROGRESS: &str = "in_progress";
const COMPLETING: &str = "completing";
const COMPLETED: &str = "completed";

/// What both upload requests name: the file and what it is for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadTarget {
    pub filename: String,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub bucket: Option<String>,
    /// The object and field the file is for: their `fileAttachmentConfig` limits apply.
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// `POST /upload/presigned`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PresignRequest {
    #[serde(flatten)]
    pub target: UploadTarget,
    #[serde(default)]
    pub size: Option<u64>,
}

/// `POST /upload/chunked`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkedInit {
    #[serde(flatten)]
    pub target: UploadTarget,
    pub total_size: u64,
    #[serde(default)]
    pub chunk_size: Option<u64>,
}

/// One part named in `POST /upload/chunked/:id/complete`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartRef {
    pub chunk_index: u64,
    #[serde(default)]
    pub e_tag: Option<String>,
}

/// What differs between the kinds of session when one is opened.
struct Shape {
    kind: &'static str,
    /// 0 for a presigned upload (one part).
    chunk_size: u64,
    resume_token_hash: Option<String>,
    /// How long the session lives.
    ttl_seconds: u64,
}

/// A fresh meter for [`metered`].
fn meter() -> Arc<Mutex<Meter>> {
    Arc::new(Mutex::new(Meter::default()))
}

/// What a metered transfer measured, or why it failed: the meter's reason (413, 415, a short
/// part) before the backend's.
fn outcome<T>(
    meter: &Mutex<Meter>,
    result: Result<T, StorageError>,
) -> Result<(Meter, T), StorageError> {
    let taken = std::mem::take(
        &mut *meter
            .lock()
            .map_err(|_| StorageError::Backend("meter lock poisoned".into()))?,
    );
    match result {
        Ok(v) => Ok((taken, v)),
        Err(e) => Err(taken.failure.unwrap_or(e)),
    }
}

fn backend(e: KernelError) -> StorageError {
    StorageError::Backend(e.to_string())
}

/// One upload session row.
#[derive(Debug, Clone)]
struct Session {
    id: String,
    file_id: String,
    kind: String,
    tenant: Option<String>,
    user: Option<String>,
    filename: String,
    declared_mime: Option<String>,
    total_size: u64,
    chunk_size: u64,
    total_chunks: u64,
    resume_token_hash: Option<String>,
    status: String,
    object_name: Option<String>,
    field_name: Option<String>,
    received_size: Option<u64>,
    checksum: Option<String>,
    mime_type: Option<String>,
    created_at: i64,
    expires_at: i64,
}

const SESSION_COLUMNS: &str = "id, file_id, kind, tenant_id, user_id, filename, declared_mime, total_size, chunk_size, total_chunks, resume_token_hash, status, object_name, field_name, received_size, checksum, mime_type, created_at, expires_at";

impl Session {
    fn from_row(r: &Row) -> Result<Self, StorageError> {
        Ok(Self {
            id: r.get(0)?,
            file_id: r.get(1)?,
            kind: r.get(2)?,
            tenant: r.get(3)?,
            user: r.get(4)?,
            filename: r.get(5)?,
            declared_mime: r.get(6)?,
            total_size: u(r.get(7)?),
            chunk_size: u(r.get(8)?),
            total_chunks: u(r.get(9)?),
            resume_token_hash: r.get(10)?,
            status: r.get(11)?,
            object_name: r.get(12)?,
            field_name: r.get(13)?,
            received_size: r.get::<Option<i64>>(14)?.map(u),
            checksum: r.get(15)?,
            mime_type: r.get(16)?,
            created_at: r.get(17)?,
            expires_at: r.get(18)?,
        })
    }
}

fn part_key(upload_id: &str, index: u64) -> String {
    format!("parts/{}/{index}", tenant_segment(Some(upload_id)))
}

impl StorageService {
    // ---- sessions ----

    async fn insert_session(&self, s: &Session) -> Result<(), StorageError> {
        let st = self.s()?;
        let w = st.engine.writer();
        let sql = Sql::with(
            w.dialect(),
            &format!(
                "INSERT INTO {UPLOADS_TABLE} ({SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            vec![
                s.id.clone().into(),
                s.file_id.clone().into(),
                s.kind.clone().into(),
                s.tenant.clone().into(),
                s.user.clone().into(),
                s.filename.clone().into(),
                s.declared_mime.clone().into(),
                i(s.total_size).into(),
                i(s.chunk_size).into(),
                i(s.total_chunks).into(),
                s.resume_token_hash.clone().into(),
                s.status.clone().into(),
                s.object_name.clone().into(),
                s.field_name.clone().into(),
                s.received_size.map(i).into(),
                s.checksum.clone().into(),
                s.mime_type.clone().into(),
                s.created_at.into(),
                s.expires_at.into(),
            ],
        )?;
        w.execute(sql).await?;
        Ok(())
    }

    async fn session_where(
        &self,
        column: &str,
        value: &str,
    ) -> Result<Option<Session>, StorageError> {
        let st = self.s()?;
        let pool = st.engine.writer();
        // `column` is one of the plugin's own column names, never input.
        let sql = Sql::with(
            pool.dialect(),
            &format!("SELECT {SESSION_COLUMNS} FROM {UPLOADS_TABLE} WHERE {column} = ?"),
            vec![value.into()],
        )?;
        pool.fetch_optional(sql)
            .await?
            .map(|r| Session::from_row(&r))
            .transpose()
    }

    /// Moves session `id` from status `from` to `to`; whether it was in `from` (only one of
    /// callers racing for the same move gets `true`).
    async fn transition(&self, id: &str, from: &str, to: &str) -> Result<bool, StorageError> {
        let w = self.s()?.engine.writer();
        let sql = Sql::with(
            w.dialect(),
            &format!("UPDATE {UPLOADS_TABLE} SET status = ? WHERE id = ? AND status = ?"),
            vec![to.into(), id.into(), from.into()],
        )?;
        Ok(w.execute(sql).await? == 1)
    }

    /// Records what a presigned `PUT` stored, unless the session left `in_progress` meanwhile.
    async fn record_received(
        &self,
        id: &str,
        size: u64,
        checksum: &str,
        mime: &str,
    ) -> Result<bool, StorageError> {
        let w = self.s()?.engine.writer();
        let sql = Sql::with(
            w.dialect(),
            &format!(
                "UPDATE {UPLOADS_TABLE} SET received_size = ?, checksum = ?, mime_type = ? WHERE id = ? AND status = ?"
            ),
            vec![
                i(size).into(),
                checksum.into(),
                mime.into(),
                id.into(),
                IN_PROGRESS.into(),
            ],
        )?;
        Ok(w.execute(sql).await? == 1)
    }

    /// Removes the stored parts of `s` (objects, or the local assembly file).
    async fn drop_parts(&self, s: &Session) -> Result<(), StorageError> {
        let st = self.s()?;
        if let Some(local) = &st.local {
            return local.discard_assembly(&s.id).await.map_err(backend);
        }
        for idx in self.part_indexes(&s.id).await?.into_iter().map(|p| p.0) {
            st.blobs.delete(&part_key(&s.id, idx)).await?;
        }
        Ok(())
    }

    async fn drop_session(&self, s: &Session) -> Result<(), StorageError> {
        self.drop_parts(s).await?;
        let w = self.s()?.engine.writer();
        for (table, column) in [(PARTS_TABLE, "upload_id"), (UPLOADS_TABLE, "id")] {
            let sql = Sql::with(
                w.dialect(),
                &format!("DELETE FROM {table} WHERE {column} = ?"),
                vec![s.id.as_str().into()],
            )?;
            w.execute(sql).await?;
        }
        self.upload_locks.forget(&s.id);
        Ok(())
    }

    /// `(index, size, etag)` of the received parts, by index.
    async fn part_indexes(&self, upload: &str) -> Result<Vec<(u64, u64, String)>, StorageError> {
        let pool = self.s()?.engine.writer();
        let sql = Sql::with(
            pool.dialect(),
            &format!("SELECT idx, size, etag FROM {PARTS_TABLE} WHERE upload_id = ? ORDER BY idx"),
            vec![upload.into()],
        )?;
        pool.fetch_all(sql)
            .await?
            .iter()
            .map(|r| Ok((u(r.get(0)?), u(r.get(1)?), r.get::<String>(2)?)))
            .collect()
    }

    /// The session `id` for `caller`: someone else's is not found, an expired one is gone.
    async fn own_session(
        &self,
        caller: &Caller,
        column: &str,
        id: &str,
        kind: &str,
    ) -> Result<Session, StorageError> {
        let user = Self::user_of(caller)?;
        let not_found = || StorageError::SessionNotFound(id.to_owned());
        let s = self
            .session_where(column, id)
            .await?
            .filter(|s| s.kind == kind && s.tenant == caller.tenant)
            .ok_or_else(not_found)?;
        if user.is_some() && s.user != user && !Self::is_privileged(caller) {
            return Err(not_found());
        }
        if s.expires_at <= now_ms() {
            return Err(StorageError::SessionExpired(s.id));
        }
        Ok(s)
    }

    // ---- files ----

    async fn create_pending(
        &self,
        caller: &Caller,
        name: &str,
        size: u64,
        declared: Option<&str>,
        scope: &str,
    ) -> Result<String, StorageError> {
        let st = self.s()?;
        let mut rec = Record::new();
        rec.insert("name".into(), json!(name));
        rec.insert("size".into(), json!(size));
        if let Some(d) = declared {
            rec.insert("mime_type".into(), json!(d));
        }
        rec.insert("status".into(), json!("pending"));
        rec.insert("scope".into(), json!(scope));
        let created = st
            .engine
            .create(&Self::writer_cx(caller), FILE_OBJECT, rec)
            .await?;
        text(&created, "id")
            .ok_or_else(|| StorageError::Backend("the file record has no id".into()))
    }

    /// Checks and opens a session of `shape` for `size` bytes: a pending file record and the
    /// session row.
    async fn open_session(
        &self,
        caller: &Caller,
        target: &UploadTarget,
        size: u64,
        shape: Shape,
    ) -> Result<Session, StorageError> {
        let Shape {
            kind,
            chunk_size,
            resume_token_hash,
            ttl_seconds,
        } = shape;
        let user = Self::user_of(caller)?;
        if target.filename.trim().is_empty() {
            return Err(StorageError::InvalidRequest(
                "`filename` is required".into(),
            ));
        }
        self.check_size(size)?;
        self.check_quota(caller.tenant.as_deref(), size).await?;
        self.allowed_types(target.object.as_deref(), target.field.as_deref())?;
        let name = safe_name(&target.filename);
        let scope = target.scope.as_deref().unwrap_or("user");
        let file_id = self
            .create_pending(caller, &name, size, target.mime_type.as_deref(), scope)
            .await?;
        let now = now_ms();
        let session = Session {
            id: uuid::Uuid::new_v4().to_string(),
            file_id,
            kind: kind.into(),
            tenant: caller.tenant.clone(),
            user,
            filename: name,
            declared_mime: target.mime_type.clone(),
            total_size: size,
            chunk_size,
            total_chunks: if chunk_size == 0 {
                1
            } else {
                size.div_ceil(chunk_size)
            },
            resume_token_hash,
            status: IN_PROGRESS.into(),
            object_name: target.object.clone(),
            field_name: target.field.clone(),
            received_size: None,
            checksum: None,
            mime_type: None,
            created_at: now,
            expires_at: now.saturating_add(i(ttl_seconds).saturating_mul(1000)),
        };
        self.insert_session(&session).await?;
        Ok(session)
    }

    /// The rules a whole file of session `s` is measured under.
    fn file_rules(
        &self,
        s: &Session,
        exact: Option<u64>,
        limit: u64,
    ) -> Result<Rules, StorageError> {
        Ok(Rules {
            limit,
            exact,
            declared: s.declared_mime.clone(),
            allowed: self.allowed_types(s.object_name.as_deref(), s.field_name.as_deref())?,
            no_sniff: false,
        })
    }

    // ---- presigned upload ----

    /// `POST /upload/presigned`: a pending file and a signed `PUT` URL for its contents.
    pub async fn presign(
        &self,
        caller: &Caller,
        req: PresignRequest,
    ) -> Result<Value, StorageError> {
        let s = self
            .open_session(
                caller,
                &req.target,
                req.size.unwrap_or(0),
                Shape {
                    kind: PRESIGNED,
                    chunk_size: 0,
                    resume_token_hash: None,
                    ttl_seconds: self.settings.url_ttl_seconds,
                },
            )
            .await?;
        let token = self.signer.sign(&Claims {
            file: s.file_id.clone(),
            op: Op::Put,
            expires: s.expires_at / 1000,
        });
        let content_type = req
            .target
            .mime_type
            .unwrap_or_else(|| "application/octet-stream".into());
        Ok(json!({
            "uploadUrl": format!("{RAW_PATH}{token}"),
            "method": "PUT",
            "headers": { "content-type": content_type },
            "fileId": s.file_id,
            "expiresIn": self.settings.url_ttl_seconds,
            "downloadUrl": download_url_path(&s.file_id),
        }))
    }

    /// `PUT /_local/raw/:token`: the contents of a presigned upload. `length` is the request's
    /// `Content-Length`, checked before anything is read.
    pub async fn put_raw(
        &self,
        token: &str,
        length: Option<u64>,
        body: ByteStream,
    ) -> Result<Value, StorageError> {
        let claims = self
            .signer
            .verify(token, Op::Put, Utc::now().timestamp())
            .ok_or(StorageError::InvalidToken)?;
        let s = self
            .session_where("file_id", &claims.file)
            .await?
            .filter(|s| s.kind == PRESIGNED)
            .ok_or(StorageError::InvalidToken)?;
        let not_open = |s: &Session| {
            StorageError::Conflict(format!("file `{}` is already {}", s.file_id, s.status))
        };
        if s.status != IN_PROGRESS {
            return Err(not_open(&s));
        }
        let limit = if s.total_size > 0 {
            s.total_size.min(self.settings.max_file_size)
        } else {
            self.settings.max_file_size
        };
        if let Some(len) = length
            && len > limit
        {
            return Err(StorageError::TooLarge(format!(
                "the body has {len} bytes; at most {limit} are accepted for this upload"
            )));
        }
        self.check_quota(s.tenant.as_deref(), length.unwrap_or(0))
            .await?;
        let rules = self.file_rules(&s, None, limit)?;
        let key = file_key(s.tenant.as_deref(), &s.file_id);
        let m = meter();
        let stored = self
            .s()?
            .blobs
            .put(&key, metered(body, m.clone(), rules))
            .await;
        let (mut meter, _) = outcome(&m, stored.map_err(backend))?;
        let checksum = meter.checksum().await?;
        let mime = meter
            .mime
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into());
        if !self
            .record_received(&s.id, meter.size, &checksum, &mime)
            .await?
        {
            // Completed while the body arrived: the answer of the completion stands.
            return Err(not_open(&s));
        }
        Ok(json!({ "key": key }))
    }

    /// `POST /upload/complete`: the uploaded contents become the ready file.
    pub async fn complete(&self, caller: &Caller, file_id: &str) -> Result<FileInfo, StorageError> {
        let s = match self
            .own_session(caller, "file_id", file_id, PRESIGNED)
            .await
        {
            Err(StorageError::SessionNotFound(_)) => {
                return Err(StorageError::FileNotFound(file_id.to_owned()));
            }
            other => other?,
        };
        self.complete_session(caller, s, &[]).await
    }

    // ---- chunked upload ----

    /// `POST /upload/chunked`.
    pub async fn chunked_init(
        &self,
        caller: &Caller,
        req: ChunkedInit,
    ) -> Result<Value, StorageError> {
        if req.total_size == 0 {
            return Err(StorageError::InvalidRequest(
                "`totalSize` must be at least 1; upload an empty file with a presigned URL".into(),
            ));
        }
        let chunk = req.chunk_size.unwrap_or(MIN_CHUNK_SIZE).max(MIN_CHUNK_SIZE);
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| {
            StorageError::Backend(format!("no randomness for the resume token: {e}"))
        })?;
        let resume = hex::encode(raw);
        let s = self
            .open_session(
                caller,
                &req.target,
                req.total_size,
                Shape {
                    kind: CHUNKED,
                    chunk_size: chunk,
                    resume_token_hash: Some(sha_hex(&resume)),
                    ttl_seconds: self.settings.upload_session_ttl_seconds,
                },
            )
            .await?;
        Ok(json!({
            "uploadId": s.id,
            "resumeToken": resume,
            "fileId": s.file_id,
            "totalChunks": s.total_chunks,
            "chunkSize": chunk,
            "expiresAt": iso(s.expires_at),
        }))
    }

    /// `PUT /upload/chunked/:id/chunk/:index`.
    pub async fn put_chunk(
        &self,
        caller: &Caller,
        upload: &str,
        index: u64,
        resume_token: Option<&str>,
        length: Option<u64>,
        body: ByteStream,
    ) -> Result<Value, StorageError> {
        let s = self.own_session(caller, "id", upload, CHUNKED).await?;
        let token_ok = resume_token
            .zip(s.resume_token_hash.as_deref())
            .is_some_and(|(t, h)| sha_hex(t) == h);
        if !token_ok {
            return Err(StorageError::InvalidResumeToken(s.id));
        }
        if index >= s.total_chunks {
            return Err(StorageError::InvalidRequest(format!(
                "chunk {index} is out of range; upload `{}` has chunks 0 to {}",
                s.id,
                s.total_chunks - 1
            )));
        }
        let offset = s.chunk_size * index;
        let expected = s.chunk_size.min(s.total_size - offset);
        if let Some(len) = length
            && len != expected
        {
            let e = format!("chunk {index} has {len} bytes; expected {expected}");
            return Err(if len > expected {
                StorageError::TooLarge(e)
            } else {
                StorageError::InvalidRequest(e)
            });
        }
        // Held while the part is written; the status is read again under it, since a
        // completion may have claimed the session in between.
        let upload = self.upload_locks.of(&s.id);
        let _shared = upload.lock.read().await;
        let status = self
            .session_where("id", &s.id)
            .await?
            .map(|now| now.status)
            .unwrap_or_default();
        if status != IN_PROGRESS {
            return Err(StorageError::Conflict(format!(
                "upload `{}` is {status}",
                s.id
            )));
        }
        let st = self.s()?;
        let w = st.engine.writer();
        // The part's row goes first: a part sent again (a retry after a lost answer) that is
        // cut off half-way leaves the part missing, never recorded over half-written bytes.
        let sql = Sql::with(
            w.dialect(),
            &format!("DELETE FROM {PARTS_TABLE} WHERE upload_id = ? AND idx = ?"),
            vec![s.id.as_str().into(), i(index).into()],
        )?;
        w.execute(sql).await?;
        let rules = Rules {
            limit: expected,
            exact: Some(expected),
            no_sniff: true,
            ..Rules::default()
        };
        // On the local backend a part that comes next in order also continues the file's hash
        // (on a thread of its own), so completion need not read it back. The part's own eTag is
        // a CRC, so no part is hashed with SHA-256 twice.
        let feeding = st.local.as_ref().map(|_| upload.feed(offset, expected));
        let start = feeding.as_ref().and_then(|f| f.start.clone());
        let m = Arc::new(Mutex::new(Meter::part(start)));
        let body = metered(body, m.clone(), rules);
        let written = match &st.local {
            Some(local) => local
                .write_part(&s.id, s.total_size, offset, body)
                .await
                .map(drop),
            None => st.blobs.put(&part_key(&s.id, index), body).await.map(drop),
        };
        let (mut meter, ()) = outcome(&m, written.map_err(backend))?;
        let etag = meter
            .part_etag()
            .ok_or_else(|| StorageError::Backend("the part's eTag was not computed".into()))?;
        if let (Some(feeding), Some(state)) = (feeding, meter.continued().await?) {
            feeding.advance(state);
        }
        let sql = Sql::with(
            w.dialect(),
            &format!("INSERT INTO {PARTS_TABLE} (upload_id, idx, size, etag) VALUES (?, ?, ?, ?)"),
            vec![
                s.id.as_str().into(),
                i(index).into(),
                i(meter.size).into(),
                etag.as_str().into(),
            ],
        )?;
        w.execute(sql).await?;
        let received: u64 = self.part_indexes(&s.id).await?.iter().map(|p| p.1).sum();
        Ok(json!({ "chunkIndex": index, "eTag": etag, "bytesReceived": received }))
    }

    /// `GET /upload/chunked/:id/progress`; an expired session answers with `status: expired`.
    pub async fn progress(&self, caller: &Caller, upload: &str) -> Result<Value, StorageError> {
        let s = match self.own_session(caller, "id", upload, CHUNKED).await {
            Err(StorageError::SessionExpired(_)) => self
                .session_where("id", upload)
                .await?
                .ok_or_else(|| StorageError::SessionNotFound(upload.to_owned()))?,
            other => other?,
        };
        let parts = self.part_indexes(&s.id).await?;
        let uploaded: u64 = parts.iter().map(|p| p.1).sum();
        let status = if s.expires_at <= now_ms() {
            "expired"
        } else {
            s.status.as_str()
        };
        let percent = if s.total_size == 0 {
            0.0
        } else {
            (uploaded as f64 * 100.0 / s.total_size as f64 * 100.0).round() / 100.0
        };
        Ok(json!({
            "uploadId": s.id,
            "fileId": s.file_id,
            "filename": s.filename,
            "totalSize": s.total_size,
            "uploadedSize": uploaded,
            "totalChunks": s.total_chunks,
            "uploadedChunks": parts.len(),
            "uploadedChunkIndexes": parts.iter().map(|p| p.0).collect::<Vec<_>>(),
            "percentComplete": percent,
            "status": status,
            "startedAt": iso(s.created_at),
            "expiresAt": iso(s.expires_at),
        }))
    }

    /// `POST /upload/chunked/:id/complete`: the parts become the file.
    pub async fn chunked_complete(
        &self,
        caller: &Caller,
        upload: &str,
        named: &[PartRef],
    ) -> Result<Value, StorageError> {
        let s = self.own_session(caller, "id", upload, CHUNKED).await?;
        let info = self.complete_session(caller, s, named).await?;
        Ok(json!({
            "fileId": info.file_id,
            "key": info.path,
            "size": info.size,
            "mimeType": info.mime_type,
            "url": download_url_path(&info.file_id),
        }))
    }

    // ---- completion ----

    /// Completes session `s` (both kinds): see the module's documentation. A session already
    /// completed answers its file again; a failure puts the session back to `in_progress`, so
    /// the client may fix what is missing and complete again.
    async fn complete_session(
        &self,
        caller: &Caller,
        s: Session,
        named: &[PartRef],
    ) -> Result<FileInfo, StorageError> {
        if s.status == COMPLETED {
            return self.completed(caller, &s).await;
        }
        if s.kind == PRESIGNED && s.received_size.is_none() {
            return Err(StorageError::InvalidRequest(format!(
                "nothing was uploaded for file `{}`; PUT its contents to the upload URL first",
                s.file_id
            )));
        }
        if !self.transition(&s.id, IN_PROGRESS, COMPLETING).await? {
            // Another completion got there first: its answer, once it has one.
            return match self.session_where("id", &s.id).await? {
                Some(now) if now.status == COMPLETED => self.completed(caller, &now).await,
                _ => Err(StorageError::Conflict(format!(
                    "upload `{}` is being completed",
                    s.id
                ))),
            };
        }
        let upload = self.upload_locks.of(&s.id);
        let exclusive = upload.lock.write().await;
        let result = match s.kind.as_str() {
            CHUNKED => self.assemble(&s, named, &upload).await,
            _ => Ok((
                s.received_size.unwrap_or(0),
                s.mime_type.clone().unwrap_or_default(),
                s.checksum.clone().unwrap_or_default(),
            )),
        };
        let result = match result {
            Ok((size, mime, checksum)) => {
                self.finish_file(caller, &s.file_id, size, &mime, &checksum)
                    .await
            }
            Err(e) => Err(e),
        };
        drop(exclusive);
        match result {
            Ok(info) => {
                self.transition(&s.id, COMPLETING, COMPLETED).await?;
                self.drop_parts(&s).await?;
                self.upload_locks.forget(&s.id);
                Ok(info)
            }
            Err(e) => {
                self.transition(&s.id, COMPLETING, IN_PROGRESS).await?;
                Err(e)
            }
        }
    }

    /// The file of completed session `s`, as its completion answered it.
    async fn completed(&self, caller: &Caller, s: &Session) -> Result<FileInfo, StorageError> {
        let rec = self.file_record(s.tenant.as_deref(), &s.file_id).await?;
        Ok(self.info(caller.tenant.as_deref(), &rec))
    }

    /// Checks the parts of chunked session `s` (all received; the eTags the client names match)
    /// and makes them the file's contents: `(size, mime, checksum)`. Called under the upload's
    /// exclusive lock.
    async fn assemble(
        &self,
        s: &Session,
        named: &[PartRef],
        upload: &UploadState,
    ) -> Result<(u64, String, String), StorageError> {
        let parts = self.part_indexes(&s.id).await?;
        let missing: Vec<u64> = (0..s.total_chunks)
            .filter(|i| !parts.iter().any(|p| p.0 == *i))
            .collect();
        if !missing.is_empty() {
            return Err(StorageError::InvalidRequest(format!(
                "chunks {missing:?} of upload `{}` have not been received",
                s.id
            )));
        }
        for p in named {
            match (parts.iter().find(|q| q.0 == p.chunk_index), &p.e_tag) {
                (None, _) => {
                    return Err(StorageError::InvalidRequest(format!(
                        "chunk {} is not part of upload `{}`",
                        p.chunk_index, s.id
                    )));
                }
                (Some(q), Some(tag)) if tag.trim_matches('"') != q.2 => {
                    return Err(StorageError::InvalidRequest(format!(
                        "chunk {}'s eTag `{tag}` does not match the received part",
                        p.chunk_index
                    )));
                }
                _ => {}
            }
        }
        let st = self.s()?;
        let rules = self.file_rules(s, Some(s.total_size), s.total_size)?;
        let key = file_key(s.tenant.as_deref(), &s.file_id);
        if let Some(local) = &st.local {
            // The parts are in place in one file: its head is sniffed and what the running
            // hash does not cover yet (normally nothing) hashed, then it is renamed into place.
            let (state, from) = upload.hashed().unwrap_or_default();
            let measured = local
                .measure_assembly(&s.id, &key, state, from, SNIFF_LEN)
                .await
                .map_err(backend)?;
            if measured.size != s.total_size {
                return Err(StorageError::Backend(format!(
                    "the assembled file has {} bytes; {} were announced",
                    measured.size, s.total_size
                )));
            }
            let mime = judge(&measured.head, &rules)?;
            if !measured.moved {
                local.commit_assembly(&s.id, &key).await.map_err(backend)?;
            }
            let checksum = hex::encode(measured.state.finalize());
            return Ok((measured.size, mime, checksum));
        }
        let blobs = st.blobs.clone();
        let id = s.id.clone();
        // Each part is opened only when the previous one is consumed.
        let joined = futures_util::stream::iter(0..s.total_chunks)
            .then(move |idx| {
                let blobs = blobs.clone();
                let key = part_key(&id, idx);
                async move {
                    match blobs.get(&key, None).await {
                        Ok(Some(read)) => Ok(read.body),
                        Ok(None) => Err(std::io::Error::other(format!("part {idx} is missing"))),
                        Err(e) => Err(std::io::Error::other(e.to_string())),
                    }
                }
            })
            .try_flatten();
        let m = meter();
        let stored = st
            .blobs
            .put(&key, metered(Box::pin(joined), m.clone(), rules))
            .await;
        let mut meter = outcome(&m, stored.map_err(backend))?.0;
        let checksum = meter.checksum().await?;
        let mime = meter
            .mime
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into());
        Ok((meter.size, mime, checksum))
    }

    // ---- cleanup ----

    /// Removes upload sessions that expired (their parts, uploaded contents and pending file
    /// records); returns how many.
    pub async fn cleanup_expired(&self) -> Result<usize, StorageError> {
        let st = self.s()?;
        let pool = st.engine.writer();
        let sql = Sql::with(
            pool.dialect(),
            &format!("SELECT {SESSION_COLUMNS} FROM {UPLOADS_TABLE} WHERE expires_at <= ?"),
            vec![now_ms().into()],
        )?;
        let rows = pool.fetch_all(sql).await?;
        let mut n = 0;
        for r in rows {
            let s = Session::from_row(&r)?;
            self.drop_session(&s).await?;
            let rec = self.file_record(s.tenant.as_deref(), &s.file_id).await;
            if let Ok(rec) = rec
                && text(&rec, "status").as_deref() == Some("pending")
            {
                st.blobs
                    .delete(&file_key(s.tenant.as_deref(), &s.file_id))
                    .await?;
                st.engine
                    .delete(
                        &Self::system_cx(s.tenant.as_deref()),
                        FILE_OBJECT,
                        &s.file_id,
                    )
                    .await?;
            }
            n += 1;
        }
        if let Some(local) = &st.local {
            // What a crash left in the temporary folder: untouched longer than any session lives.
            let age = self
                .settings
                .upload_session_ttl_seconds
                .max(self.settings.url_ttl_seconds);
            local
                .sweep_temporary(std::time::Duration::from_secs(age))
                .await;
        }
        Ok(n)
    }
}
