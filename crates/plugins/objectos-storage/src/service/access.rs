//! Reading files: who may read a file (through the records whose file fields hold it, else its
//! owner), the same check for a file value written into a record, the signed download URL and
//! the signed raw read.
//!
//! One rule decides both a download and an attachment ([`StorageService::may_read`]), so a user
//! can attach only files they could download already: otherwise writing another user's file id
//! into a record one may edit would make the file readable through that record.

use chrono::Utc;
use objectos_data::store::{Sql, Store};
use objectos_data::{Principal, Record, WriteTx};
use objectos_kernel::contracts::{Access, Caller};
use objectos_spec::query::Filter;

use super::{Download, RAW_PATH, StorageService, file_key, i, number, tenant_segment, text};
use crate::error::StorageError;
use crate::schema::FILE_OBJECT;
use crate::sign::{Claims, Op};

/// Where the read check runs its queries: the engine's pools (a download), or the transaction
/// of a write in progress (the check of file values written into a record: it must not wait for
/// a second connection, which an in-memory SQLite database does not have).
#[derive(Clone, Copy)]
pub(crate) enum Via<'a> {
    Pools,
    Write(WriteTx<'a>),
}

/// What the read check needs of a `sys_file` record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FileFacts {
    pub(crate) id: String,
    pub(crate) status: Option<String>,
    pub(crate) organization: Option<String>,
    pub(crate) owner: Option<String>,
    pub(crate) mime_type: Option<String>,
}

impl FileFacts {
    fn of(rec: &Record) -> Self {
        Self {
            id: text(rec, "id").unwrap_or_default(),
            status: text(rec, "status"),
            organization: text(rec, "organization_id"),
            owner: text(rec, "owner_id"),
            mime_type: text(rec, "mime_type"),
        }
    }
}

fn authz_failed(e: objectos_kernel::PluginError) -> StorageError {
    StorageError::Backend(format!("permissions: {e}"))
}

impl StorageService {
    /// `(object, field)` of every file field (`file`, `image`, `avatar`, `video`, `audio`),
    /// single or `multiple`, outside `sys_file` itself.
    fn file_fields(&self) -> Result<Vec<(String, String)>, StorageError> {
        let snap = self.s()?.engine.metadata();
        Ok(snap
            .objects()
            .filter(|o| o.name != FILE_OBJECT)
            .flat_map(|o| {
                o.fields
                    .iter()
                    .filter(|(_, f)| f.kind.is_media())
                    .map(|(name, _)| (o.name.clone(), name.clone()))
            })
            .collect())
    }

    /// Counts `object`'s records of `tenant` matching `filter`, as the system (no hooks decide:
    /// the caller's restrictions are in `filter`).
    async fn count(
        &self,
        via: Via<'_>,
        tenant: Option<&str>,
        object: &str,
        filter: Filter,
    ) -> Result<u64, StorageError> {
        let st = self.s()?;
        let cx = Self::system_cx(tenant);
        Ok(match via {
            Via::Pools => st.engine.count(&cx, object, filter).await?,
            Via::Write(tx) => st.engine.count_within(tx, &cx, object, &filter).await?,
        })
    }

    /// Whether `caller` may read `file`: it must be ready and in the caller's organization (in
    /// none when the caller has none). Then, when records of the organization hold it in a file
    /// field (a single value, or one element of a `multiple` list), the caller must be allowed
    /// to read one of them and that field, as the `Authorizer` answers (its row filter and
    /// field access; without a permissions plugin every member reads them). A file no record
    /// holds is its owner's. Administrators of its organization read it always.
    pub(crate) async fn may_read(
        &self,
        via: Via<'_>,
        caller: &Caller,
        file: &FileFacts,
    ) -> Result<bool, StorageError> {
        let st = self.s()?;
        if file.status.as_deref() != Some("ready") || file.organization != caller.tenant {
            return Ok(false);
        }
        let user = match &caller.principal {
            Principal::Anonymous => return Ok(false),
            Principal::System { .. } => return Ok(true),
            Principal::User { id, .. } => id.clone(),
        };
        if Self::is_privileged(caller) && st.authorizer.is_none() {
            return Ok(true);
        }
        let tenant = caller.tenant.as_deref();
        let mut referenced = false;
        for (object, field) in self.file_fields()? {
            // `eq` on a `multiple` field (a JSON list) matches a list holding the id.
            let holds = Filter::eq(field.clone(), file.id.clone());
            if self.count(via, tenant, &object, holds.clone()).await? == 0 {
                continue;
            }
            referenced = true;
            let Some(authz) = &st.authorizer else {
                // Without a permissions plugin every member reads every record of the
                // organization.
                return Ok(true);
            };
            let readable = authz
                .field_access(caller, &object)
                .map_err(authz_failed)?
                .readable
                .iter()
                .any(|f| f == &field);
            if !readable {
                continue;
            }
            // The same question as `Authorizer::allowed(Read, object, record)` for each holder,
            // asked once: does one of them pass the caller's row filter.
            let Some(rows) = authz
                .row_filter(caller, Access::Read, &object)
                .map_err(authz_failed)?
            else {
                continue;
            };
            if matches!(rows, Filter::True)
                || self.count(via, tenant, &object, holds.and(rows)).await? > 0
            {
                return Ok(true);
            }
        }
        Ok(!referenced && (Self::is_privileged(caller) || file.owner.as_deref() == Some(&user)))
    }

    /// The ready file `file_id` if `caller` may read it; every refusal is "not found", so ids
    /// cannot be probed.
    async fn readable(&self, caller: &Caller, file_id: &str) -> Result<Record, StorageError> {
        Self::user_of(caller)?;
        let rec = self.file_record(caller.tenant.as_deref(), file_id).await?;
        if !self
            .may_read(Via::Pools, caller, &FileFacts::of(&rec))
            .await?
        {
            return Err(StorageError::FileNotFound(file_id.to_owned()));
        }
        Ok(rec)
    }

    /// The file `file_id` as a record being written in `tx` may reference it: `Some` with its
    /// facts when `caller` may read it ([`Self::may_read`], through the write's transaction),
    /// `None` when it does not exist, is not ready, belongs to another organization or is
    /// not the caller's to read, which a refusal must not tell apart.
    pub(crate) async fn attachable(
        &self,
        tx: WriteTx<'_>,
        caller: &Caller,
        file_id: &str,
    ) -> Result<Option<FileFacts>, StorageError> {
        let sql = Sql::with(
            tx.dialect(),
            &format!(
                "SELECT status, organization_id, owner_id, mime_type FROM {FILE_OBJECT} WHERE id = ?"
            ),
            vec![file_id.into()],
        )?;
        let Some(row) = tx.fetch_optional(sql).await? else {
            return Ok(None);
        };
        let facts = FileFacts {
            id: file_id.to_owned(),
            status: row.get(0)?,
            organization: row.get(1)?,
            owner: row.get(2)?,
            mime_type: row.get(3)?,
        };
        Ok(self
            .may_read(Via::Write(tx), caller, &facts)
            .await?
            .then_some(facts))
    }

    /// `GET /files/:id/url`: a signed, expiring download URL.
    pub async fn download_url(
        &self,
        caller: &Caller,
        file_id: &str,
    ) -> Result<String, StorageError> {
        let rec = self.readable(caller, file_id).await?;
        let id = text(&rec, "id").unwrap_or_default();
        let token = self.signer.sign(&Claims {
            file: format!("{}:{id}", tenant_segment(caller.tenant.as_deref())),
            op: Op::Get,
            expires: Utc::now().timestamp() + i(self.settings.url_ttl_seconds),
        });
        Ok(format!("{RAW_PATH}{token}"))
    }

    /// `GET /_local/raw/:token`: the contents the token was signed for.
    pub async fn get_raw(
        &self,
        token: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Download, StorageError> {
        let claims = self
            .signer
            .verify(token, Op::Get, Utc::now().timestamp())
            .ok_or(StorageError::InvalidToken)?;
        let (tenant_seg, id) = claims
            .file
            .split_once(':')
            .ok_or(StorageError::InvalidToken)?;
        let st = self.s()?;
        // The record is read across organizations, then held to the one the token names.
        let rec = self.file_record(None, id).await?;
        let tenant = text(&rec, "organization_id");
        if tenant_segment(tenant.as_deref()) != tenant_seg
            || text(&rec, "status").as_deref() != Some("ready")
        {
            return Err(StorageError::FileNotFound(id.to_owned()));
        }
        let key = file_key(tenant.as_deref(), id);
        let read = st
            .blobs
            .get(&key, range)
            .await?
            .ok_or_else(|| StorageError::FileNotFound(id.to_owned()))?;
        Ok(Download {
            name: text(&rec, "name").unwrap_or_else(|| "file".into()),
            mime_type: text(&rec, "mime_type").unwrap_or_else(|| "application/octet-stream".into()),
            read,
        })
    }

    /// The size of the file a `GET` token names, for answering a range past its end.
    pub async fn raw_size(&self, token: &str) -> Option<u64> {
        let claims = self.signer.verify(token, Op::Get, Utc::now().timestamp())?;
        let (_, id) = claims.file.split_once(':')?;
        let rec = self.file_record(None, id).await.ok()?;
        Some(number(rec.get("size")))
    }
}
