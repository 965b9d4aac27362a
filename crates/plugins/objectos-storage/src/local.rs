//! The local-directory blob store: each object is a file under the root, written to a
//! temporary file first and renamed into place once the whole stream arrived, so a dropped
//! upload never leaves a partial object and readers never see one being written.

use std::io::SeekFrom;
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use objectos_kernel::KernelError;
use objectos_kernel::contracts::{BlobMeta, BlobRead, BlobStore, ByteStream};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Bytes read per chunk when streaming a file out.
const READ_CHUNK: usize = 1024 * 1024;
/// Bytes gathered before one write to the file (see `write_tmp`).
const WRITE_BUFFER: usize = 1024 * 1024;

/// Folder under the root holding files being written.
const TMP_DIR: &str = ".tmp";

/// A blob store over a directory.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

/// Whether `key` is a safe relative path: `/`-separated segments of letters, digits, `.`, `_`
/// and `-`, none of them empty, `.` or `..` (keys are made by the plugin, but a store refuses
/// anything that could leave its root all the same).
pub fn is_safe_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 1024
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
        && !key.starts_with(TMP_DIR)
}

impl LocalBlobStore {
    /// A store rooted at `root` (created, with its temporary folder, when missing).
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, KernelError> {
        let root = root.into();
        tokio::fs::create_dir_all(root.join(TMP_DIR))
            .await
            .map_err(|e| KernelError::Blob {
                backend: "local".into(),
                key: String::new(),
                message: format!("cannot create the folder {}: {e}", root.display()),
            })?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn err(key: &str, message: impl Into<String>) -> KernelError {
        KernelError::Blob {
            backend: "local".into(),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    fn path(&self, key: &str) -> Result<PathBuf, KernelError> {
        if is_safe_key(key) {
            Ok(self.root.join(key))
        } else {
            Err(Self::err(key, "not a safe object key"))
        }
    }

    fn meta_of(key: &str, m: &std::fs::Metadata) -> BlobMeta {
        let modified: Option<DateTime<Utc>> = m.modified().ok().map(DateTime::<Utc>::from);
        BlobMeta {
            key: key.to_owned(),
            size: m.len(),
            etag: modified.map(|t| format!("{:x}-{:x}", m.len(), t.timestamp_micros())),
            last_modified: modified,
        }
    }

    async fn write_tmp(
        &self,
        key: &str,
        tmp: &Path,
        mut body: ByteStream,
    ) -> Result<(), KernelError> {
        let file = tokio::fs::File::create(tmp)
            .await
            .map_err(|e| Self::err(key, format!("cannot create a temporary file: {e}")))?;
        // HTTP bodies arrive in frames of a few KiB, and every write of a tokio file is a trip
        // to the blocking pool: gathered into WRITE_BUFFER-sized writes, a 256 MiB upload costs
        // 256 trips instead of tens of thousands.
        let mut file = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Self::err(key, format!("the upload failed: {e}")))?;
            file.write_all(&chunk)
                .await
                .map_err(|e| Self::err(key, format!("write failed: {e}")))?;
        }
        file.flush()
            .await
            .map_err(|e| Self::err(key, format!("write failed: {e}")))?;
        file.get_ref()
            .sync_data()
            .await
            .map_err(|e| Self::err(key, format!("write failed: {e}")))?;
        Ok(())
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    fn backend(&self) -> &str {
        "local"
    }

    async fn put(&self, key: &str, body: ByteStream) -> Result<BlobMeta, KernelError> {
        let path = self.path(key)?;
        let tmp = self
            .root
            .join(TMP_DIR)
            .join(uuid::Uuid::new_v4().simple().to_string());
        if let Err(e) = self.write_tmp(key, &tmp, body).await {
            // Best effort: the cleanup task removes leftovers of a crash.
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| Self::err(key, format!("cannot create its folder: {e}")))?;
        }
        if let Err(e) = tokio::fs::rename(&tmp, &path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(Self::err(key, format!("cannot move it into place: {e}")));
        }
        let m = tokio::fs::metadata(&path)
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
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Self::err(key, e.to_string())),
        };
        let m = file
            .metadata()
            .await
            .map_err(|e| Self::err(key, e.to_string()))?;
        let meta = Self::meta_of(key, &m);
        let range = match range {
            Some(r) if r.start >= meta.size || r.start >= r.end => {
                return Err(Self::err(
                    key,
                    format!(
                        "range {}-{} is outside the object's {} bytes",
                        r.start, r.end, meta.size
                    ),
                ));
            }
            Some(r) => Some(r.start..r.end.min(meta.size)),
            None => None,
        };
        let (start, len) = range
            .as_ref()
            .map_or((0, meta.size), |r| (r.start, r.end - r.start));
        if start > 0 {
            file.seek(SeekFrom::Start(start))
                .await
                .map_err(|e| Self::err(key, e.to_string()))?;
        }
        let body = futures_util::stream::unfold((file, len), |(mut file, left)| async move {
            if left == 0 {
                return None;
            }
            let want = usize::try_from(left).map_or(READ_CHUNK, |l| l.min(READ_CHUNK));
            let mut buf = vec![0u8; want];
            match file.read(&mut buf).await {
                Ok(0) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file is shorter than when it was opened",
                    )),
                    (file, 0),
                )),
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), (file, left - n as u64)))
                }
                Err(e) => Some((Err(e), (file, 0))),
            }
        });
        Ok(Some(BlobRead {
            meta,
            range,
            body: Box::pin(body),
        }))
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, KernelError> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(Self::meta_of(key, &m))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::err(key, e.to_string())),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), KernelError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Self::err(key, e.to_string())),
        }
        // Folders left empty go too (a finished chunked upload's), up to the root; a folder
        // still holding something refuses, which ends the walk.
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root || tokio::fs::remove_dir(d).await.is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(parts: Vec<&'static [u8]>) -> ByteStream {
        Box::pin(futures_util::stream::iter(
            parts.into_iter().map(|p| Ok(Bytes::from_static(p))),
        ))
    }

    async fn collect(read: BlobRead) -> Vec<u8> {
        let mut out = Vec::new();
        let mut body = read.body;
        while let Some(c) = body.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn put_get_range_head_delete_and_a_failed_put_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).await.unwrap();
        let meta = store
            .put("a/b.bin", stream(vec![b"hello ", b"world"]))
            .await
            .unwrap();
        assert_eq!(meta.size, 11);
        let all = store.get("a/b.bin", None).await.unwrap().unwrap();
        assert_eq!(collect(all).await, b"hello world");
        let part = store.get("a/b.bin", Some(6..100)).await.unwrap().unwrap();
        assert_eq!(part.range, Some(6..11));
        assert_eq!(collect(part).await, b"world");
        assert!(store.get("a/b.bin", Some(11..12)).await.is_err());
        assert_eq!(store.head("a/b.bin").await.unwrap().unwrap().size, 11);

        let failing: ByteStream = Box::pin(futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"partial")),
            Err(std::io::Error::other("connection dropped")),
        ]));
        assert!(store.put("a/c.bin", failing).await.is_err());
        assert!(store.head("a/c.bin").await.unwrap().is_none());
        assert_eq!(
            std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(),
            0
        );

        store.delete("a/b.bin").await.unwrap();
        store.delete("a/b.bin").await.unwrap();
        assert!(store.get("a/b.bin", None).await.unwrap().is_none());
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", ".tmp/x", "a\0b", ""] {
            assert!(store.head(bad).await.is_err(), "{bad:?}");
        }
    }
}
