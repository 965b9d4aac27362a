//! The blob-store contract (service `file-storage`): file contents as objects under a key,
//! streamed both ways so a large file never sits in memory.
//!
//! The storage plugin implements it over a local directory or an S3-compatible store and keeps
//! what a file is (name, owner, MIME type, checksum) as records; other plugins (notification
//! attachments, exports) write and read contents through this contract without knowing the
//! backend. Keys are `/`-separated relative paths chosen by the caller (never user input as is).

use std::fmt;
use std::ops::Range;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::Stream;

use crate::error::KernelError;

/// A stream of byte chunks; an error ends it (the reader or the writer failed).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// What the store knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub key: String,
    /// Bytes in the whole object.
    pub size: u64,
    /// The backend's version tag, when it has one.
    pub etag: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
}

/// An object being read: its metadata, the range served (`None`: all of it) and the bytes.
pub struct BlobRead {
    pub meta: BlobMeta,
    pub range: Option<Range<u64>>,
    pub body: ByteStream,
}

impl fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobRead")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// Where file contents live, registered by the storage plugin under `file-storage`.
///
/// Writes are whole-object: [`BlobStore::put`] stores the stream under the key only once the
/// stream ended without error (a failed or dropped upload leaves no partial object behind, and
/// an existing object under the key stays until the new one is complete).
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug + 'static {
    /// The backend's short name for health and logs: `local` or `s3`.
    fn backend(&self) -> &str;

    /// Stores the bytes of `body` under `key`, replacing any object there.
    async fn put(&self, key: &str, body: ByteStream) -> Result<BlobMeta, KernelError>;

    /// Reads `key`, or the bytes `range` of it (end exclusive, clamped to the object's size; a
    /// range starting at or past the end is an error). `None` when there is no such object.
    async fn get(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<BlobRead>, KernelError>;

    /// The object's metadata, `None` when there is none.
    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, KernelError>;

    /// Removes `key`; removing a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), KernelError>;
}
