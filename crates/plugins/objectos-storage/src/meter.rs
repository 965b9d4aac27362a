//! A stream wrapper that measures what passes through it on the way to the blob store: size
//! (refused past a limit), SHA-256 (a file's checksum) or CRC-64/NVME (a chunked upload's part
//! eTag), and the MIME type sniffed from the first bytes (refused when a field does not allow
//! it). A refusal ends the stream with an error, so the store keeps nothing; the reason is left
//! in the shared [`Meter`] for the caller to answer with.
//!
//! SHA-256 runs at about the speed of the disk copy the transfer is measured against, so it runs
//! on a blocking thread of its own ([`HashPipe`]), fed with the body's frames (shared, never
//! copied) in batches while the store writes them: the request's task only counts, sniffs and
//! forwards. Small bodies are hashed in place when they end, without a thread. A part is not
//! hashed with SHA-256 for itself: its eTag is a CRC-64/NVME (`crc-fast` with SIMD, 9 to 13
//! times SHA-256's speed here: docs/benchmarks.md), cheap enough to compute on the request's
//! task, so a part costs one SHA-256 pass at most (when it continues the file's running hash),
//! not two.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use objectos_kernel::contracts::ByteStream;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::StorageError;
use crate::sniff::{SNIFF_LEN, sniff};

/// Bytes gathered before they are handed to the hashing thread (and below which a body is
/// hashed in place when it ends).
const HASH_BATCH: usize = 1024 * 1024;
/// Batches queued for the hashing thread at most: past this the body waits for the hash, so an
/// upload holds at most about this many batches for it.
const HASH_QUEUE: usize = 4;

/// A SHA-256 fed batch by batch and computed on a blocking thread, started with the first full
/// batch. Its state can be a continued one (a file assembled from parts hashed as they come).
#[derive(Debug)]
pub struct HashPipe {
    /// The state until the thread starts (and the whole hash of a small body).
    state: Option<Sha256>,
    pending: Vec<Bytes>,
    pending_len: usize,
    worker: Option<(mpsc::Sender<Vec<Bytes>>, JoinHandle<Sha256>)>,
}

impl Default for HashPipe {
    fn default() -> Self {
        Self::continuing(Sha256::new())
    }
}

/// A batch to hand to a hashing thread, once the meter's lock is released.
struct Handoff(mpsc::Sender<Vec<Bytes>>, Vec<Bytes>);

impl Handoff {
    async fn send(self) -> Result<(), StorageError> {
        self.0
            .send(self.1)
            .await
            .map_err(|_| StorageError::Backend("the hashing thread stopped".into()))
    }
}

impl HashPipe {
    /// A hash that continues `state`.
    pub fn continuing(state: Sha256) -> Self {
        Self {
            state: Some(state),
            pending: Vec::new(),
            pending_len: 0,
            worker: None,
        }
    }

    /// Adds `chunk`; a full batch comes back to be sent (outside any lock).
    fn push(&mut self, chunk: &Bytes) -> Option<Handoff> {
        self.pending_len += chunk.len();
        self.pending.push(chunk.clone());
        if self.pending_len < HASH_BATCH {
            return None;
        }
        self.pending_len = 0;
        let batch = std::mem::take(&mut self.pending);
        let sender = match &self.worker {
            Some((sender, _)) => sender.clone(),
            None => {
                let (sender, mut batches) = mpsc::channel::<Vec<Bytes>>(HASH_QUEUE);
                let mut state = self.state.take().unwrap_or_default();
                let thread = tokio::task::spawn_blocking(move || {
                    while let Some(batch) = batches.blocking_recv() {
                        for chunk in batch {
                            state.update(&chunk);
                        }
                    }
                    state
                });
                self.worker = Some((sender.clone(), thread));
                sender
            }
        };
        Some(Handoff(sender, batch))
    }

    /// The state once every byte passed: what is left is sent, and the thread waited for.
    pub async fn finish(&mut self) -> Result<Sha256, StorageError> {
        let pending = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        match self.worker.take() {
            None => {
                let mut state = self.state.take().unwrap_or_default();
                for chunk in pending {
                    state.update(&chunk);
                }
                Ok(state)
            }
            Some((sender, thread)) => {
                if !pending.is_empty() {
                    Handoff(sender, pending).send().await?;
                } else {
                    drop(sender);
                }
                thread
                    .await
                    .map_err(|e| StorageError::Backend(format!("the hashing thread failed: {e}")))
            }
        }
    }
}

/// What a stream must satisfy.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Most bytes accepted; more is [`StorageError::TooLarge`].
    pub limit: u64,
    /// When set, exactly this many bytes (a chunk of a chunked upload).
    pub exact: Option<u64>,
    /// The client's claimed type, used only to name text precisely (see [`sniff`]).
    pub declared: Option<String>,
    /// MIME types allowed (`image/*` patterns too); any when `None`.
    pub allowed: Option<Vec<String>>,
    /// Skip sniffing (parts of a chunked upload are sniffed when joined).
    pub no_sniff: bool,
}

/// What was measured.
#[derive(Debug)]
pub struct Meter {
    pub size: u64,
    /// The SHA-256 of the bytes, continuing a given state: a whole file's, or the running hash of
    /// a file assembled from parts that a part continues. `None` for a part that does not.
    hash: Option<HashPipe>,
    /// The CRC-64/NVME of the bytes, for a part (its eTag).
    crc: Option<crc_fast::Digest>,
    head: Vec<u8>,
    pub mime: Option<String>,
    /// Why the stream was ended, when it was.
    pub failure: Option<StorageError>,
}

/// A meter of a whole file: its SHA-256 ([`Meter::checksum`]).
impl Default for Meter {
    fn default() -> Self {
        Self {
            size: 0,
            hash: Some(HashPipe::default()),
            crc: None,
            head: Vec::new(),
            mime: None,
            failure: None,
        }
    }
}

impl Meter {
    /// A meter of one part of a chunked upload: its eTag ([`Meter::part_etag`]), and, when
    /// `running` is given, that SHA-256 state continued with the part's bytes
    /// ([`Meter::continued`]).
    pub fn part(running: Option<Sha256>) -> Self {
        Self {
            hash: running.map(HashPipe::continuing),
            crc: Some(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme)),
            ..Self::default()
        }
    }

    /// The SHA-256 of what passed, hex, once the stream ended (waits for the hashing thread).
    pub async fn checksum(&mut self) -> Result<String, StorageError> {
        let state = self
            .continued()
            .await?
            .ok_or_else(|| StorageError::Backend("a part meter has no SHA-256".into()))?;
        Ok(hex::encode(state.finalize()))
    }

    /// The SHA-256 state continued with what passed, once the stream ended: a file's from the
    /// start, a part's from the state given to [`Meter::part`] (`None` without one).
    pub async fn continued(&mut self) -> Result<Option<Sha256>, StorageError> {
        match &mut self.hash {
            Some(pipe) => Ok(Some(pipe.finish().await?)),
            None => Ok(None),
        }
    }

    /// A part's eTag: the CRC-64/NVME of its bytes, 16 hex digits (`None` for a file meter).
    pub fn part_etag(&self) -> Option<String> {
        self.crc.map(|crc| format!("{:016x}", crc.finalize()))
    }
}

/// Whether `mime` matches one of `allowed` (`type/subtype`, `type/*` or `*/*`).
pub fn mime_allowed(mime: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|a| {
        let a = a.trim().to_ascii_lowercase();
        a == "*/*"
            || a == mime
            || a.strip_suffix("/*")
                .is_some_and(|major| mime.split('/').next() == Some(major))
    })
}

/// The type of content starting with `head` (at least [`SNIFF_LEN`] bytes of it, or all), or
/// why `rules` refuse it.
pub fn judge(head: &[u8], rules: &Rules) -> Result<String, StorageError> {
    let mime = sniff(head, rules.declared.as_deref());
    if let Some(allowed) = &rules.allowed
        && !mime_allowed(&mime, allowed)
    {
        return Err(StorageError::UnsupportedType(format!(
            "the content is `{mime}`, which this field does not accept; allowed: {}",
            allowed.join(", ")
        )));
    }
    Ok(mime)
}

fn sniffed(meter: &mut Meter, rules: &Rules) -> Result<(), StorageError> {
    if rules.no_sniff || meter.mime.is_some() {
        return Ok(());
    }
    let mime = judge(&meter.head, rules)?;
    meter.head = Vec::new();
    meter.mime = Some(mime);
    Ok(())
}

/// Measures `chunk`; the batch due to the hashing thread comes back, to be sent once the lock
/// is released.
fn step(
    meter: &Mutex<Meter>,
    rules: &Rules,
    chunk: &Bytes,
) -> Result<Option<Handoff>, StorageError> {
    let mut m = meter
        .lock()
        .map_err(|_| StorageError::Backend("meter lock poisoned".into()))?;
    m.size += chunk.len() as u64;
    let bound = rules.exact.unwrap_or(rules.limit).min(rules.limit);
    if m.size > bound {
        return Err(StorageError::TooLarge(match rules.exact {
            Some(n) => format!("more than the {n} bytes announced for this part"),
            None => format!("the file is larger than the limit of {} bytes", rules.limit),
        }));
    }
    if !rules.no_sniff && m.mime.is_none() {
        let take = (SNIFF_LEN - m.head.len()).min(chunk.len());
        m.head.extend_from_slice(&chunk[..take]);
        if m.head.len() >= SNIFF_LEN {
            sniffed(&mut m, rules)?;
        }
    }
    if let Some(crc) = &mut m.crc {
        crc.update(chunk);
    }
    Ok(m.hash.as_mut().and_then(|p| p.push(chunk)))
}

fn finish(meter: &Mutex<Meter>, rules: &Rules) -> Result<(), StorageError> {
    let mut m = meter
        .lock()
        .map_err(|_| StorageError::Backend("meter lock poisoned".into()))?;
    if let Some(n) = rules.exact
        && m.size != n
    {
        return Err(StorageError::InvalidRequest(format!(
            "the part has {} bytes; expected {n}",
            m.size
        )));
    }
    sniffed(&mut m, rules)
}

fn fail(meter: &Mutex<Meter>, e: StorageError) -> std::io::Error {
    let message = e.to_string();
    if let Ok(mut m) = meter.lock() {
        m.failure = Some(e);
    }
    std::io::Error::other(message)
}

/// `inner` measured into `meter` under `rules`.
pub fn metered(inner: ByteStream, meter: Arc<Mutex<Meter>>, rules: Rules) -> ByteStream {
    // Shared, not cloned per frame: the rules hold strings.
    let rules = Arc::new(rules);
    // State: the inner stream, or `None` once it ended or failed.
    let stream = futures_util::stream::unfold(Some(inner), move |state| {
        let meter = meter.clone();
        let rules = rules.clone();
        async move {
            let mut inner = state?;
            match inner.next().await {
                Some(Ok(chunk)) => match step(&meter, &rules, &chunk) {
                    Ok(handoff) => {
                        if let Some(handoff) = handoff
                            && let Err(e) = handoff.send().await
                        {
                            return Some((Err(fail(&meter, e)), None));
                        }
                        Some((Ok(chunk), Some(inner)))
                    }
                    Err(e) => Some((Err(fail(&meter, e)), None)),
                },
                Some(Err(e)) => Some((Err(e), None)),
                None => match finish(&meter, &rules) {
                    Ok(()) => None,
                    Err(e) => Some((Err(fail(&meter, e)), None)),
                },
            }
        }
    });
    Box::pin(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(parts: Vec<&'static [u8]>) -> ByteStream {
        Box::pin(futures_util::stream::iter(
            parts.into_iter().map(|p| Ok(Bytes::from_static(p))),
        ))
    }

    async fn drain(mut s: ByteStream) -> Result<u64, std::io::Error> {
        let mut n = 0;
        while let Some(c) = s.next().await {
            n += c?.len() as u64;
        }
        Ok(n)
    }

    #[tokio::test]
    async fn measures_and_refuses() {
        let m = Arc::new(Mutex::new(Meter::default()));
        let rules = Rules {
            limit: 100,
            ..Rules::default()
        };
        assert_eq!(
            drain(metered(of(vec![b"%PDF-1.4", b" rest"]), m.clone(), rules))
                .await
                .unwrap(),
            13
        );
        let mut m = Arc::try_unwrap(m).unwrap().into_inner().unwrap();
        assert_eq!(m.mime.as_deref(), Some("application/pdf"));
        assert_eq!(
            m.checksum().await.unwrap(),
            hex::encode(Sha256::digest(b"%PDF-1.4 rest"))
        );

        let m = Arc::new(Mutex::new(Meter::default()));
        let rules = Rules {
            limit: 4,
            ..Rules::default()
        };
        assert!(
            drain(metered(of(vec![b"abc", b"def"]), m.clone(), rules))
                .await
                .is_err()
        );
        assert!(matches!(
            m.lock().unwrap().failure,
            Some(StorageError::TooLarge(_))
        ));

        let m = Arc::new(Mutex::new(Meter::default()));
        let rules = Rules {
            limit: 100,
            allowed: Some(vec!["image/*".into()]),
            ..Rules::default()
        };
        assert!(
            drain(metered(of(vec![b"%PDF-1.4"]), m.clone(), rules))
                .await
                .is_err()
        );
        assert!(matches!(
            m.lock().unwrap().failure,
            Some(StorageError::UnsupportedType(_))
        ));

        let m = Arc::new(Mutex::new(Meter::default()));
        let rules = Rules {
            limit: 100,
            exact: Some(5),
            no_sniff: true,
            ..Rules::default()
        };
        assert!(
            drain(metered(of(vec![b"abc"]), m.clone(), rules))
                .await
                .is_err()
        );
        assert!(mime_allowed("image/png", &["image/*".into()]));
        assert!(!mime_allowed("application/pdf", &["image/png".into()]));
    }

    #[tokio::test]
    async fn large_bodies_are_hashed_on_a_thread_and_a_part_continues_the_running_hash() {
        // Several batches in frames that do not divide a batch, and a tail below one.
        let data: Vec<u8> = (0..3 * HASH_BATCH + 4321)
            .map(|i| (i % 251) as u8)
            .collect();
        let (head, rest) = data.split_at(1000);
        let frames = || -> ByteStream {
            Box::pin(futures_util::stream::iter(
                rest.chunks(70_001)
                    .map(|c| Ok(Bytes::copy_from_slice(c)))
                    .collect::<Vec<std::io::Result<Bytes>>>(),
            ))
        };
        let rules = Rules {
            limit: u64::MAX,
            no_sniff: true,
            ..Rules::default()
        };
        // A whole file: its SHA-256, and no eTag.
        let m = Arc::new(Mutex::new(Meter::default()));
        drain(metered(frames(), m.clone(), rules.clone()))
            .await
            .unwrap();
        let mut m = Arc::try_unwrap(m).unwrap().into_inner().unwrap();
        assert_eq!(m.part_etag(), None);
        assert_eq!(
            m.checksum().await.unwrap(),
            hex::encode(Sha256::digest(rest))
        );
        // A part continuing the running hash: its eTag is its own CRC-64/NVME, and the state
        // it was given comes back continued with its bytes.
        let mut before = Sha256::new();
        before.update(head);
        let m = Arc::new(Mutex::new(Meter::part(Some(before))));
        assert_eq!(
            drain(metered(frames(), m.clone(), rules.clone()))
                .await
                .unwrap(),
            rest.len() as u64
        );
        let mut m = Arc::try_unwrap(m).unwrap().into_inner().unwrap();
        assert_eq!(
            m.part_etag().unwrap(),
            format!("{:016x}", crc_fast::crc64_nvme(rest))
        );
        let whole = m.continued().await.unwrap().unwrap().finalize();
        assert_eq!(hex::encode(whole), hex::encode(Sha256::digest(&data)));
        // A part that does not continue it computes no SHA-256 at all.
        let m = Arc::new(Mutex::new(Meter::part(None)));
        drain(metered(frames(), m.clone(), rules)).await.unwrap();
        let mut m = Arc::try_unwrap(m).unwrap().into_inner().unwrap();
        assert!(m.continued().await.unwrap().is_none());
        assert!(m.checksum().await.is_err());
        assert_eq!(
            m.part_etag().unwrap(),
            format!("{:016x}", crc_fast::crc64_nvme(rest))
        );
    }

    #[test]
    fn a_part_etag_is_the_crc_64_nvme_of_its_bytes() {
        // The catalogue's check value of CRC-64/NVME (the CRC of `123456789`), so the eTag is
        // the standard algorithm any client can compute, whatever crate computes it here.
        let mut m = Meter::part(None);
        if let Some(crc) = &mut m.crc {
            crc.update(b"1234");
            crc.update(b"56789");
        }
        assert_eq!(m.part_etag().as_deref(), Some("ae8b14860a799888"));
    }
}
