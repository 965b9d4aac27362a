//! Upload sessions: presigned uploads (a signed raw `PUT`, then complete), chunked and
//! resumable uploads (parts with a resume token, progress, complete), and the removal of
//! expired sessions. Sessions and parts are the plugin's private tables.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use futures_util::{StreamExt, TryStreamExt};
use objectos_data::Record;
use objectos_data::store::{Row, Sql, Store};
use objectos_kernel::contracts::{BlobMeta, ByteStream, Caller};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    FileInfo, RAW_PATH, StorageService, download_url_path, file_key, i, iso, now_ms, safe_name,
    sha_hex, tenant_segment, text, u,
};
use crate::config::MIN_CHUNK_SIZE;
use crate::error::StorageError;
use crate::meter::{Meter, Rules, metered};
use crate::schema::{FILE_OBJECT, PARTS_TABLE, UPLOADS_TABLE};
use crate::sign::{Claims, Op};

/// Kinds of upload session.
const PRESIGNED: &str = "presigned";
const CHUNKED: &str = "chunked";

/// Sessions' status values (the wire's `status` of progress).
const IN_PROGRESS: &str = "in_progress";
const COMPLETING: &str = "completing";

/// `POST /upload/presigned`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresignRequest {
    pub filename: String,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
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

/// `POST /upload/chunked`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkedInit {
    pub filename: String,
    #[serde(default)]
    pub mime_type: Option<String>,
    pub total_size: u64,
    #[serde(default)]
    pub chunk_size: Option<u64>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub bucket: Option<String>,
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// One part named in `POST /upload/chunked/:id/complete`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartRef {
    pub chunk_index: u64,
    #[serde(default)]
    pub e_tag: Option<String>,
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

    async fn set_session(
        &self,
        id: &str,
        status: &str,
        received: Option<(u64, &str, &str)>,
    ) -> Result<(), StorageError> {
        let w = self.s()?.engine.writer();
        let sql = match received {
            Some((size, checksum, mime)) => Sql::with(
                w.dialect(),
                &format!(
                    "UPDATE {UPLOADS_TABLE} SET status = ?, received_size = ?, checksum = ?, mime_type = ? WHERE id = ?"
                ),
                vec![
                    status.into(),
                    i(size).into(),
                    checksum.into(),
                    mime.into(),
                    id.into(),
                ],
            )?,
            None => Sql::with(
                w.dialect(),
                &format!("UPDATE {UPLOADS_TABLE} SET status = ? WHERE id = ?"),
                vec![status.into(), id.into()],
            )?,
        };
        w.execute(sql).await?;
        Ok(())
    }

    async fn drop_session(&self, s: &Session) -> Result<(), StorageError> {
        let st = self.s()?;
        for idx in self.part_indexes(&s.id).await?.into_iter().map(|p| p.0) {
            st.blobs.delete(&part_key(&s.id, idx)).await?;
        }
        let w = st.engine.writer();
        for table in [PARTS_TABLE, UPLOADS_TABLE] {
            let column = if table == PARTS_TABLE {
                "upload_id"
            } else {
                "id"
            };
            let sql = Sql::with(
                w.dialect(),
                &format!("DELETE FROM {table} WHERE {column} = ?"),
                vec![s.id.as_str().into()],
            )?;
            w.execute(sql).await?;
        }
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

    // ---- presigned upload ----

    /// `POST /upload/presigned`: a pending file and a signed `PUT` URL for its contents.
    pub async fn presign(
        &self,
        caller: &Caller,
        req: PresignRequest,
    ) -> Result<Value, StorageError> {
        let user = Self::user_of(caller)?;
        if req.filename.trim().is_empty() {
            return Err(StorageError::InvalidRequest(
                "`filename` is required".into(),
            ));
        }
        let declared_size = req.size.unwrap_or(0);
        self.check_size(declared_size)?;
        self.check_quota(caller.tenant.as_deref(), declared_size)
            .await?;
        self.allowed_types(req.object.as_deref(), req.field.as_deref())?;
        let name = safe_name(&req.filename);
        let scope = req.scope.clone().unwrap_or_else(|| "user".into());
        let file_id = self
            .create_pending(
                caller,
                &name,
                declared_size,
                req.mime_type.as_deref(),
                &scope,
            )
            .await?;
        let now = now_ms();
        let ttl = i(self.settings.url_ttl_seconds);
        let expires_at = now.saturating_add(ttl.saturating_mul(1000));
        self.insert_session(&Session {
            id: uuid::Uuid::new_v4().to_string(),
            file_id: file_id.clone(),
            kind: PRESIGNED.into(),
            tenant: caller.tenant.clone(),
            user,
            filename: name,
            declared_mime: req.mime_type.clone(),
            total_size: declared_size,
            chunk_size: 0,
            total_chunks: 1,
            resume_token_hash: None,
            status: IN_PROGRESS.into(),
            object_name: req.object.clone(),
            field_name: req.field.clone(),
            received_size: None,
            checksum: None,
            mime_type: None,
            created_at: now,
            expires_at,
        })
        .await?;
        let token = self.signer.sign(&Claims {
            file: file_id.clone(),
            op: Op::Put,
            expires: expires_at / 1000,
        });
        let content_type = req
            .mime_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into());
        Ok(json!({
            "uploadUrl": format!("{RAW_PATH}{token}"),
            "method": "PUT",
            "headers": { "content-type": content_type },
            "fileId": file_id,
            "expiresIn": self.settings.url_ttl_seconds,
            "downloadUrl": download_url_path(&file_id),
        }))
    }

    /// Streams `body` to `key` under `rules`, answering the meter's findings.
    async fn store(
        &self,
        key: &str,
        body: ByteStream,
        rules: Rules,
    ) -> Result<(Meter, BlobMeta), StorageError> {
        let st = self.s()?;
        let meter = Arc::new(Mutex::new(Meter::default()));
        let result = st.blobs.put(key, metered(body, meter.clone(), rules)).await;
        let mut m = meter
            .lock()
            .map_err(|_| StorageError::Backend("meter lock poisoned".into()))?;
        let taken = std::mem::take(&mut *m);
        drop(m);
        match result {
            Ok(meta) => Ok((taken, meta)),
            Err(e) => Err(match taken.failure {
                Some(reason) => reason,
                None => e.into(),
            }),
        }
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
        if s.status != IN_PROGRESS {
            return Err(StorageError::Conflict(format!(
                "file `{}` is already {}",
                s.file_id, s.status
            )));
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
        let rules = Rules {
            limit,
            exact: None,
            declared: s.declared_mime.clone(),
            allowed: self.allowed_types(s.object_name.as_deref(), s.field_name.as_deref())?,
            no_sniff: false,
        };
        let key = file_key(s.tenant.as_deref(), &s.file_id);
        let (meter, _) = self.store(&key, body, rules).await?;
        let mime = meter
            .mime
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into());
        self.set_session(
            &s.id,
            IN_PROGRESS,
            Some((meter.size, &meter.checksum(), &mime)),
        )
        .await?;
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
        let (Some(size), Some(checksum), Some(mime)) =
            (s.received_size, s.checksum.clone(), s.mime_type.clone())
        else {
            return Err(StorageError::InvalidRequest(format!(
                "nothing was uploaded for file `{file_id}`; PUT its contents to the upload URL first"
            )));
        };
        let info = self
            .finish_file(caller, file_id, size, &mime, &checksum)
            .await?;
        self.drop_session(&s).await?;
        Ok(info)
    }

    // ---- chunked upload ----

    /// `POST /upload/chunked`.
    pub async fn chunked_init(
        &self,
        caller: &Caller,
        req: ChunkedInit,
    ) -> Result<Value, StorageError> {
        let user = Self::user_of(caller)?;
        if req.filename.trim().is_empty() {
            return Err(StorageError::InvalidRequest(
                "`filename` is required".into(),
            ));
        }
        if req.total_size == 0 {
            return Err(StorageError::InvalidRequest(
                "`totalSize` must be at least 1; upload an empty file with a presigned URL".into(),
            ));
        }
        self.check_size(req.total_size)?;
        self.check_quota(caller.tenant.as_deref(), req.total_size)
            .await?;
        self.allowed_types(req.object.as_deref(), req.field.as_deref())?;
        let chunk = req.chunk_size.unwrap_or(MIN_CHUNK_SIZE).max(MIN_CHUNK_SIZE);
        let chunks = req.total_size.div_ceil(chunk);
        let name = safe_name(&req.filename);
        let scope = req.scope.clone().unwrap_or_else(|| "user".into());
        let file_id = self
            .create_pending(
                caller,
                &name,
                req.total_size,
                req.mime_type.as_deref(),
                &scope,
            )
            .await?;
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| {
            StorageError::Backend(format!("no randomness for the resume token: {e}"))
        })?;
        let resume = hex::encode(raw);
        let now = now_ms();
        let expires_at =
            now.saturating_add(i(self.settings.upload_session_ttl_seconds).saturating_mul(1000));
        let id = uuid::Uuid::new_v4().to_string();
        self.insert_session(&Session {
            id: id.clone(),
            file_id: file_id.clone(),
            kind: CHUNKED.into(),
            tenant: caller.tenant.clone(),
            user,
            filename: name,
            declared_mime: req.mime_type.clone(),
            total_size: req.total_size,
            chunk_size: chunk,
            total_chunks: chunks,
            resume_token_hash: Some(sha_hex(&resume)),
            status: IN_PROGRESS.into(),
            object_name: req.object.clone(),
            field_name: req.field.clone(),
            received_size: None,
            checksum: None,
            mime_type: None,
            created_at: now,
            expires_at,
        })
        .await?;
        Ok(json!({
            "uploadId": id,
            "resumeToken": resume,
            "fileId": file_id,
            "totalChunks": chunks,
            "chunkSize": chunk,
            "expiresAt": iso(expires_at),
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
        if s.status != IN_PROGRESS {
            return Err(StorageError::Conflict(format!(
                "upload `{}` is {}",
                s.id, s.status
            )));
        }
        if index >= s.total_chunks {
            return Err(StorageError::InvalidRequest(format!(
                "chunk {index} is out of range; upload `{}` has chunks 0 to {}",
                s.id,
                s.total_chunks - 1
            )));
        }
        let expected = if index + 1 == s.total_chunks {
            s.total_size - s.chunk_size * (s.total_chunks - 1)
        } else {
            s.chunk_size
        };
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
        let rules = Rules {
            limit: expected,
            exact: Some(expected),
            no_sniff: true,
            ..Rules::default()
        };
        let (meter, _) = self.store(&part_key(&s.id, index), body, rules).await?;
        let etag = meter.checksum();
        let w = self.s()?.engine.writer();
        // A part sent again (a retry after a lost answer) replaces the first.
        let sql = Sql::with(
            w.dialect(),
            &format!("DELETE FROM {PARTS_TABLE} WHERE upload_id = ? AND idx = ?"),
            vec![s.id.as_str().into(), i(index).into()],
        )?;
        w.execute(sql).await?;
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

    /// `POST /upload/chunked/:id/complete`: joins the parts into the file.
    pub async fn chunked_complete(
        &self,
        caller: &Caller,
        upload: &str,
        named: &[PartRef],
    ) -> Result<Value, StorageError> {
        let s = self.own_session(caller, "id", upload, CHUNKED).await?;
        if s.status != IN_PROGRESS {
            return Err(StorageError::Conflict(format!(
                "upload `{}` is {}",
                s.id, s.status
            )));
        }
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
            let stored = parts.iter().find(|q| q.0 == p.chunk_index);
            match (stored, p.e_tag.as_deref()) {
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
        self.set_session(&s.id, COMPLETING, None).await?;
        let result = self.join_parts(caller, &s).await;
        match result {
            Ok(v) => {
                self.drop_session(&s).await?;
                Ok(v)
            }
            Err(e) => {
                // The parts are still there: the client may complete again.
                self.set_session(&s.id, IN_PROGRESS, None).await?;
                Err(e)
            }
        }
    }

    async fn join_parts(&self, caller: &Caller, s: &Session) -> Result<Value, StorageError> {
        let st = self.s()?;
        let blobs = st.blobs.clone();
        let id = s.id.clone();
        // Each part is opened only when the previous one is consumed: one open file at a time.
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
        let rules = Rules {
            limit: s.total_size,
            exact: Some(s.total_size),
            declared: s.declared_mime.clone(),
            allowed: self.allowed_types(s.object_name.as_deref(), s.field_name.as_deref())?,
            no_sniff: false,
        };
        let key = file_key(s.tenant.as_deref(), &s.file_id);
        let (meter, _) = self.store(&key, Box::pin(joined), rules).await?;
        let mime = meter
            .mime
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into());
        let info = self
            .finish_file(caller, &s.file_id, meter.size, &mime, &meter.checksum())
            .await?;
        Ok(json!({
            "fileId": info.file_id,
            "key": key,
            "size": info.size,
            "mimeType": info.mime_type,
            "url": download_url_path(&info.file_id),
        }))
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
        Ok(n)
    }
}
