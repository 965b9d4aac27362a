//! Streaming between HTTP bodies and files for the local backend, without copies of our own and
//! overlapped with the disk: writes gather the body's frames (kept as they arrived, never copied
//! into a buffer) into batches written by positional writes on the blocking pool while the next
//! batch arrives, with the data synced to disk in the background every [`SYNC_EVERY`] bytes so
//! the final `fdatasync` has little left to do; reads hand out fresh chunks read by a blocking
//! thread of the download's up to [`READ_AHEAD`] chunks ahead, so the disk reads overlap the
//! network sends. Hashing is not done here: see [`crate::meter`].

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use objectos_kernel::contracts::ByteStream;
use sha2::{Digest as _, Sha256};
use tokio::task::JoinHandle;

/// Bytes gathered before a write is started while the previous one is still running: one trip
/// to the blocking pool per MiB instead of one per frame of a few KiB.
const BATCH: usize = 1024 * 1024;
/// Bytes gathered at most while a write runs; past this the body waits for the disk. With one
/// batch in flight, an upload holds at most about twice this in memory.
const MAX_GATHER: usize = 4 * 1024 * 1024;
/// Bytes written between background `fdatasync`s: the page cache starts writing to the disk
/// while the body still arrives, instead of all at the end.
const SYNC_EVERY: u64 = 16 * 1024 * 1024;
/// Bytes per chunk read for a download.
const READ_CHUNK: usize = 2 * 1024 * 1024;
/// Chunks read ahead of the network at most.
const READ_AHEAD: usize = 2;

async fn joined<T>(task: JoinHandle<std::io::Result<T>>) -> std::io::Result<T> {
    task.await
        .map_err(|e| std::io::Error::other(format!("the file task failed: {e}")))?
}

fn write_batch(file: &File, batch: &[Bytes], mut at: u64) -> std::io::Result<()> {
    for chunk in batch {
        file.write_all_at(chunk, at)?;
        at += chunk.len() as u64;
    }
    Ok(())
}

/// Writes `body` into `file` from `offset` with positional writes (other writers may fill
/// other ranges of the same file at the same time) and syncs the data before answering how many
/// bytes were written. On an error of the body or the disk, the writes under way are waited for
/// before answering, so nothing writes into the file once this returned.
pub(crate) async fn write_stream(
    file: File,
    offset: u64,
    mut body: ByteStream,
) -> std::io::Result<u64> {
    let file = Arc::new(file);
    let mut at = offset;
    let mut batch: Vec<Bytes> = Vec::new();
    let mut gathered = 0usize;
    let mut unsynced = 0u64;
    let mut write: Option<JoinHandle<std::io::Result<()>>> = None;
    let mut sync: Option<JoinHandle<std::io::Result<()>>> = None;
    let outcome: std::io::Result<()> = async {
        loop {
            let ended = match body.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    gathered += chunk.len();
                    batch.push(chunk);
                    false
                }
                None => true,
            };
            let idle = write.as_ref().is_none_or(JoinHandle::is_finished);
            if gathered > 0 && (ended || gathered >= MAX_GATHER || (gathered >= BATCH && idle)) {
                if let Some(w) = write.take() {
                    joined(w).await?;
                }
                if unsynced >= SYNC_EVERY && sync.as_ref().is_none_or(JoinHandle::is_finished) {
                    if let Some(s) = sync.take() {
                        joined(s).await?;
                    }
                    let f = file.clone();
                    sync = Some(tokio::task::spawn_blocking(move || f.sync_data()));
                    unsynced = 0;
                }
                let (f, b, start) = (file.clone(), std::mem::take(&mut batch), at);
                write = Some(tokio::task::spawn_blocking(move || {
                    write_batch(&f, &b, start)
                }));
                at += gathered as u64;
                unsynced += gathered as u64;
                gathered = 0;
            }
            if ended {
                return Ok(());
            }
        }
    }
    .await;
    // Whatever happened, nothing may still write into the file once this returns.
    let wrote = match write {
        Some(w) => joined(w).await,
        None => Ok(()),
    };
    let synced = match sync {
        Some(s) => joined(s).await,
        None => Ok(()),
    };
    outcome?;
    wrote?;
    synced?;
    joined(tokio::task::spawn_blocking(move || file.sync_data())).await?;
    Ok(at - offset)
}

/// `state` continued with the bytes of `file` from `from` to its end, read by positional reads
/// into one buffer.
pub(crate) fn hash_from(file: &File, mut state: Sha256, from: u64) -> std::io::Result<Sha256> {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut at = from;
    loop {
        let n = match file.read_at(&mut buf, at) {
            Ok(0) => return Ok(state),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        state.update(&buf[..n]);
        at += n as u64;
    }
}

/// One chunk of at most `chunk` bytes read from where `file` stands.
fn read_chunk(mut file: &File, left: u64, chunk: usize) -> std::io::Result<Bytes> {
    let want = usize::try_from(left).map_or(chunk, |l| l.min(chunk));
    // Read into spare capacity: nothing is zeroed first, and the buffer becomes the frame.
    let mut buf = Vec::with_capacity(want);
    match (&mut file).take(want as u64).read_to_end(&mut buf) {
        Ok(0) => Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the file is shorter than when it was opened",
        )),
        Ok(_) => Ok(Bytes::from(buf)),
        Err(e) => Err(e),
    }
}

/// The `len` bytes of `file` from where it stands (the caller seeks), as a stream of chunks
/// read by a blocking thread of its own up to [`READ_AHEAD`] chunks ahead of the network; the
/// thread stops at the end, at an error, or when the stream is dropped.
pub(crate) fn read_stream(file: File, len: u64) -> ByteStream {
    let (chunks, received) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut left = len;
        while left > 0 {
            let read = read_chunk(&file, left, READ_CHUNK);
            let failed = read.is_err();
            if let Ok(c) = &read {
                left = left.saturating_sub(c.len() as u64);
            }
            if chunks.blocking_send(read).is_err() || failed {
                return;
            }
        }
    });
    Box::pin(futures_util::stream::unfold(received, |mut r| async move {
        r.recv().await.map(|item| (item, r))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(total: usize, frame: usize) -> (Vec<u8>, ByteStream) {
        let data: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
        let chunks: Vec<std::io::Result<Bytes>> = data
            .chunks(frame)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        (data, Box::pin(futures_util::stream::iter(chunks)))
    }

    #[tokio::test]
    async fn writes_at_offsets_and_reads_back_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // Larger than a sync interval and not a multiple of any batch or chunk size.
        let total = 2 * SYNC_EVERY as usize + 12_345;
        let (data, body) = frames(total, 70_001);
        let file = File::create(&path).unwrap();
        file.set_len(total as u64 + 10).unwrap();
        let second = File::options().write(true).open(&path).unwrap();
        assert_eq!(write_stream(second, 10, body).await.unwrap(), total as u64);
        let (head, body) = frames(10, 3);
        assert_eq!(write_stream(file, 0, body).await.unwrap(), 10);
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&on_disk[..10], &head[..]);
        assert!(on_disk[10..] == data[..]);

        let mut read = read_stream(File::open(&path).unwrap(), total as u64 + 10);
        let mut back = Vec::new();
        let mut chunks = 0;
        while let Some(c) = read.next().await {
            back.extend_from_slice(&c.unwrap());
            chunks += 1;
        }
        assert!(back == on_disk);
        assert_eq!(chunks, (total + 10).div_ceil(READ_CHUNK));
        // A file shorter than announced ends the stream with an error.
        let mut short = read_stream(File::open(&path).unwrap(), total as u64 + 11);
        let mut failed = false;
        while let Some(c) = short.next().await {
            failed |= c.is_err();
        }
        assert!(failed);
    }

    #[tokio::test]
    async fn a_failing_body_fails_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let body: ByteStream = Box::pin(futures_util::stream::iter(vec![
            Ok(Bytes::from(vec![1u8; 3 * BATCH])),
            Err(std::io::Error::other("connection dropped")),
        ]));
        let file = File::create(dir.path().join("f")).unwrap();
        assert!(write_stream(file, 0, body).await.is_err());
    }
}
