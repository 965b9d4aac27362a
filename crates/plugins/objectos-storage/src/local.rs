//! The local-directory blob store: each object is a file under the root, written to a
//! temporary file first and renamed into place once the whole stream arrived and is on disk, so
//! a dropped upload never leaves a partial object and readers never see one being written.
//! Chunked uploads are assembled in place: each part is written at its offset of one file under
//! the temporary folder, renamed into place once complete (no second write of the bytes).
//! The byte moving itself is [`crate::fileio`]'s.

use std::io::{Read as _, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use objectos_kernel::KernelError;
use objectos_kernel::contracts::{BlobMeta, BlobRead, BlobStore, ByteStream};
use sha2::Sha256;
use tokio::io::AsyncSeekExt;

use crate::fileio::{hash_from, read_stream, write_stream};

/// Folder under the root holding files being written.
const TMP_DIR: &str = ".tmp";
/// Folder under [`TMP_DIR`] holding the files chunked uploads are assembled in.
const ASSEMBLY_DIR: &str = "assembly";

/// What [`LocalBlobStore::measure_assembly`] read.
#[derive(Debug)]
pub struct Measured {
    pub size: u64,
    pub head: Vec<u8>,
    pub state: Sha256,
    /// Whether it was read from the object (moved into place already).
    pub moved: bool,
}

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

    /// The file of chunked upload `name` being assembled (see [`Self::write_part`]).
    fn assembly_path(&self, name: &str) -> Result<PathBuf, KernelError> {
        if is_safe_key(name) && !name.contains('/') {
            Ok(self.root.join(TMP_DIR).join(ASSEMBLY_DIR).join(name))
        } else {
            Err(Self::err(name, "not a safe upload name"))
        }
    }

    /// Moves a finished temporary file to `path` (its folder made when missing), then syncs the
    /// folder so the rename itself survives a power cut.
    async fn move_into_place(&self, key: &str, tmp: &Path, path: &Path) -> Result<(), KernelError> {
        let parent = path.parent().unwrap_or(&self.root).to_path_buf();
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(|e| Self::err(key, format!("cannot create its folder: {e}")))?;
        tokio::fs::rename(tmp, path)
            .await
            .map_err(|e| Self::err(key, format!("cannot move it into place: {e}")))?;
        // Best effort: a folder cannot be synced on every system.
        let _ = tokio::task::spawn_blocking(move || std::fs::File::open(parent)?.sync_all()).await;
        Ok(())
    }

    /// Writes `body` at `offset` of the file assembling chunked upload `name` (made, `total`
    /// bytes long, by the first part to arrive). Parts may arrive in any order and at the same
    /// time: each writes only its own range, and its data is on disk when this answers. The
    /// file stays under the temporary folder, never readable as an object, until
    /// [`Self::commit_assembly`].
    pub async fn write_part(
        &self,
        name: &str,
        total: u64,
        offset: u64,
        body: ByteStream,
    ) -> Result<u64, KernelError> {
        let path = self.assembly_path(name)?;
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = std::fs::File::options()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            if file.metadata()?.len() < total {
                file.set_len(total)?;
            }
            Ok(file)
        })
        .await
        .map_err(|e| Self::err(name, e.to_string()))?
        .map_err(|e| Self::err(name, format!("cannot open the upload's file: {e}")))?;
        write_stream(file, offset, body)
            .await
            .map_err(|e| Self::err(name, format!("the part failed: {e}")))
    }

    /// The `total` bytes assembled for chunked upload `name`, as a stream.
    pub async fn read_assembly(&self, name: &str, total: u64) -> Result<ByteStream, KernelError> {
        let path = self.assembly_path(name)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| Self::err(name, format!("the upload's file is missing: {e}")))?
            .into_std()
            .await;
        Ok(read_stream(file, total))
    }

    /// What completing chunked upload `name` needs from its assembled file (or, when an earlier
    /// completion moved it into place and failed after, from the object `key`): its first
    /// `head_len` bytes and `state` continued with its bytes from `from` on (`state` being the
    /// SHA-256 of the bytes before `from`, hashed as the parts came). Read on a blocking thread;
    /// nothing before `from` is read but the head.
    pub async fn measure_assembly(
        &self,
        name: &str,
        key: &str,
        state: Sha256,
        from: u64,
        head_len: usize,
    ) -> Result<Measured, KernelError> {
        let (assembly, object) = (self.assembly_path(name)?, self.path(key)?);
        let err_name = name.to_owned();
        tokio::task::spawn_blocking(move || -> Result<Measured, KernelError> {
            let (file, moved) = match std::fs::File::open(&assembly) {
                Ok(f) => (f, false),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    match std::fs::File::open(&object) {
                        Ok(f) => (f, true),
                        Err(_) => {
                            return Err(Self::err(
                                &err_name,
                                format!("the upload's file is missing: {e}"),
                            ));
                        }
                    }
                }
                Err(e) => return Err(Self::err(&err_name, e.to_string())),
            };
            let read = |e: std::io::Error| Self::err(&err_name, format!("cannot read it: {e}"));
            let size = file.metadata().map_err(read)?.len();
            let mut head = Vec::with_capacity(head_len);
            (&file)
                .take(head_len as u64)
                .read_to_end(&mut head)
                .map_err(read)?;
            let state = hash_from(&file, state, from).map_err(read)?;
            Ok(Measured {
                size,
                head,
                state,
                moved,
            })
        })
        .await
        .map_err(|e| Self::err(name, e.to_string()))?
    }

    /// Makes the file assembled for chunked upload `name` the object `key`, by a rename: no
    /// byte is copied, and the object appears whole or not at all.
    pub async fn commit_assembly(&self, name: &str, key: &str) -> Result<BlobMeta, KernelError> {
        let tmp = self.assembly_path(name)?;
        let path = self.path(key)?;
        self.move_into_place(key, &tmp, &path).await?;
        let m = tokio::fs::metadata(&path)
            .await
            .map_err(|e| Self::err(key, e.to_string()))?;
        Ok(Self::meta_of(key, &m))
    }

    /// Removes what was assembled for chunked upload `name`, if anything.
    pub async fn discard_assembly(&self, name: &str) -> Result<(), KernelError> {
        match tokio::fs::remove_file(self.assembly_path(name)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Self::err(name, e.to_string())),
        }
    }

    /// Removes temporary files (uploads cut off by a crash, assemblies of sessions whose
    /// records are gone) untouched for `max_age`; returns how many.
    pub async fn sweep_temporary(&self, max_age: std::time::Duration) -> usize {
        let dirs = [
            self.root.join(TMP_DIR),
            self.root.join(TMP_DIR).join(ASSEMBLY_DIR),
        ];
        tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            for dir in dirs {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let stale = entry.metadata().is_ok_and(|m| {
                        m.is_file()
                            && m.modified()
                                .ok()
                                .and_then(|t| t.elapsed().ok())
                                .is_some_and(|age| age >= max_age)
                    });
                    if stale && std::fs::remove_file(entry.path()).is_ok() {
                        removed += 1;
                    }
                }
            }
            removed
        })
        .await
        .unwrap_or(0)
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
        let written = match tokio::fs::File::create(&tmp).await {
            Ok(file) => write_stream(file.into_std().await, 0, body)
                .await
                .map_err(|e| Self::err(key, format!("the upload failed: {e}"))),
            Err(e) => Err(Self::err(
                key,
                format!("cannot create a temporary file: {e}"),
            )),
        };
        let placed = match written {
            Ok(_) => self.move_into_place(key, &tmp, &path).await,
            Err(e) => Err(e),
        };
        if let Err(e) = placed {
            // Best effort: `sweep_temporary` removes what a crash leaves.
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
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
        let body = read_stream(file.into_std().await, len);
        Ok(Some(BlobRead { meta, range, body }))
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
    use bytes::Bytes;
    use futures_util::StreamExt;

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

    #[tokio::test]
    async fn parts_are_assembled_in_place_and_committed_by_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).await.unwrap();
        // Out of order, the second part first; nothing is an object until the commit.
        store
            .write_part("up1", 11, 6, stream(vec![b"wor", b"ld"]))
            .await
            .unwrap();
        store
            .write_part("up1", 11, 0, stream(vec![b"hello "]))
            .await
            .unwrap();
        assert!(store.head("a/up1").await.unwrap().is_none());
        let mut joined = store.read_assembly("up1", 11).await.unwrap();
        let mut out = Vec::new();
        while let Some(c) = joined.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        assert_eq!(out, b"hello world");
        let meta = store.commit_assembly("up1", "a/up1").await.unwrap();
        assert_eq!(meta.size, 11);
        let read = store.get("a/up1", None).await.unwrap().unwrap();
        assert_eq!(collect(read).await, b"hello world");
        // Committed once: the assembly is gone, a second commit fails, discarding is a no-op.
        assert!(store.commit_assembly("up1", "a/up1").await.is_err());
        store.discard_assembly("up1").await.unwrap();
        store
            .write_part("up2", 4, 0, stream(vec![b"abcd"]))
            .await
            .unwrap();
        store.discard_assembly("up2").await.unwrap();
        assert!(store.read_assembly("up2", 4).await.is_err());
        for bad in ["../x", "a/b", ""] {
            assert!(
                store
                    .write_part(bad, 1, 0, stream(vec![b"x"]))
                    .await
                    .is_err()
            );
        }
        // Temporary files untouched long enough are swept; fresh ones stay.
        store
            .write_part("up3", 1, 0, stream(vec![b"x"]))
            .await
            .unwrap();
        assert_eq!(
            store
                .sweep_temporary(std::time::Duration::from_secs(3600))
                .await,
            0
        );
        assert_eq!(store.sweep_temporary(std::time::Duration::ZERO).await, 1);
    }
}
