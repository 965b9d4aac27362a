//! The S3-compatible backend (`storage.backend: s3`) through `object_store`: uploads stream as
//! multipart uploads (parts of 10 MiB, at most a few in flight, aborted when the stream fails, so
//! nothing partial is ever visible), downloads stream with byte ranges. Works with AWS and with
//! self-hosted stores (MinIO, Ceph, moto) through `endpoint`, `pathStyle` and `allowHttp`.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use objectos_kernel::KernelError;
use objectos_kernel::contracts::{BlobMeta, BlobRead, BlobStore, ByteStream};

use crate::config::S3Settings;
use crate::error::StorageError;
use crate::local::is_safe_key;

/// Bytes per multipart part (S3's smallest is 5 MiB).
const PART_SIZE: usize = 10 * 1024 * 1024;

/// Parts uploaded at once: bounds the memory an upload holds to about this many parts.
const PARTS_IN_FLIGHT: usize = 2;

/// A bucket as a blob store.
#[derive(Debug)]
pub struct S3BlobStore {
    store: AmazonS3,
    prefix: String,
}

/// Opens the bucket named in `settings` (no request is made until the first use).
pub fn open(settings: &S3Settings) -> Result<Arc<dyn BlobStore>, StorageError> {
    Ok(Arc::new(S3BlobStore::open(settings)?))
}

impl S3BlobStore {
    pub fn open(settings: &S3Settings) -> Result<Self, StorageError> {
        // reqwest uses rustls without a provider of its own: the process's, ring (a host may
        // have installed it already, which is fine).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(settings.bucket.trim())
            .with_virtual_hosted_style_request(!settings.path_style)
            .with_allow_http(settings.allow_http);
        if let Some(region) = &settings.region {
            b = b.with_region(region);
        }
        if let Some(endpoint) = &settings.endpoint {
            b = b.with_endpoint(endpoint);
        }
        if let Some(id) = &settings.access_key_id {
            b = b.with_access_key_id(id.expose());
        }
        if let Some(secret) = &settings.secret_access_key {
            b = b.with_secret_access_key(secret.expose());
        }
        let store = b.build().map_err(|e| {
            StorageError::Config(format!("storage.s3 (bucket `{}`): {e}", settings.bucket))
        })?;
        let prefix = settings
            .prefix
            .as_deref()
            .map(|p| p.trim_matches('/'))
            .filter(|p| !p.is_empty())
            .map(|p| format!("{p}/"))
            .unwrap_or_default();
        Ok(Self { store, prefix })
    }

    fn err(key: &str, message: impl Into<String>) -> KernelError {
        KernelError::Blob {
            backend: "s3".into(),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    fn path(&self, key: &str) -> Result<Path, KernelError> {
        if !is_safe_key(key) {
            return Err(Self::err(key, "not a safe object key"));
        }
        Path::parse(format!("{}{key}", self.prefix)).map_err(|e| Self::err(key, e.to_string()))
    }

    fn meta_of(key: &str, m: &object_store::ObjectMeta) -> BlobMeta {
        BlobMeta {
            key: key.to_owned(),
            size: m.size,
            etag: m.e_tag.clone(),
            last_modified: Some(m.last_modified),
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn backend(&self) -> &str {
        "s3"
    }

    async fn put(&self, key: &str, mut body: ByteStream) -> Result<BlobMeta, KernelError> {
        let path = self.path(key)?;
        let upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(|e| Self::err(key, e.to_string()))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    // The parts sent so far are discarded by the store; the key stays as it was.
                    let _ = writer.abort().await;
                    return Err(Self::err(key, format!("the upload failed: {e}")));
                }
            };
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = writer.abort().await;
                return Err(Self::err(key, e.to_string()));
            }
            writer.put(chunk);
        }
        writer
            .finish()
            .await
            .map_err(|e| Self::err(key, e.to_string()))?;
        let m = self
            .store
            .head(&path)
            .await
            .map_err(|e| Self::err(key, e.to_string()))?;
        Ok(Self::meta_of(key, &m))
    }

    async fn get(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<BlobRead>, KernelError> {
        let path = self.path(key)?;
        let options = GetOptions {
            range: range.clone().map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = match self.store.get_opts(&path, options).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) if range.is_some() => {
                return Err(Self::err(
                    key,
                    format!("range outside the object's bytes: {e}"),
                ));
            }
            Err(e) => return Err(Self::err(key, e.to_string())),
        };
        let meta = Self::meta_of(key, &result.meta);
        let served = range.map(|_| result.range.clone());
        let body = result.into_stream().map_err(std::io::Error::other);
        Ok(Some(BlobRead {
            meta,
            range: served,
            body: Box::pin(body),
        }))
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, KernelError> {
        let path = self.path(key)?;
        match self.store.head(&path).await {
            Ok(m) => Ok(Some(Self::meta_of(key, &m))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Self::err(key, e.to_string())),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), KernelError> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Self::err(key, e.to_string())),
        }
    }
}
