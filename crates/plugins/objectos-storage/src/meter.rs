//! A stream wrapper that measures what passes through it on the way to the blob store: size
//! (refused past a limit), SHA-256, and the MIME type sniffed from the first bytes (refused when
//! a field does not allow it). A refusal ends the stream with an error, so the store keeps
//! nothing; the reason is left in the shared [`Meter`] for the caller to answer with.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use objectos_kernel::contracts::ByteStream;
use sha2::{Digest, Sha256};

use crate::error::StorageError;
use crate::sniff::{SNIFF_LEN, sniff};

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
#[derive(Debug, Default)]
pub struct Meter {
    pub size: u64,
    hasher: Sha256,
    head: Vec<u8>,
    pub mime: Option<String>,
    /// Why the stream was ended, when it was.
    pub failure: Option<StorageError>,
}

impl Meter {
    /// The SHA-256 of what passed, hex; only meaningful once the stream ended.
    pub fn checksum(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
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

fn sniffed(meter: &mut Meter, rules: &Rules) -> Result<(), StorageError> {
    if rules.no_sniff || meter.mime.is_some() {
        return Ok(());
    }
    let mime = sniff(&meter.head, rules.declared.as_deref());
    meter.head = Vec::new();
    if let Some(allowed) = &rules.allowed
        && !mime_allowed(&mime, allowed)
    {
        return Err(StorageError::UnsupportedType(format!(
            "the content is `{mime}`, which this field does not accept; allowed: {}",
            allowed.join(", ")
        )));
    }
    meter.mime = Some(mime);
    Ok(())
}

fn step(meter: &Mutex<Meter>, rules: &Rules, chunk: &Bytes) -> Result<(), StorageError> {
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
    m.hasher.update(chunk);
    if !rules.no_sniff && m.mime.is_none() {
        let take = (SNIFF_LEN - m.head.len()).min(chunk.len());
        m.head.extend_from_slice(&chunk[..take]);
        if m.head.len() >= SNIFF_LEN {
            sniffed(&mut m, rules)?;
        }
    }
    Ok(())
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
                    Ok(()) => Some((Ok(chunk), Some(inner))),
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
        let m = Arc::try_unwrap(m).unwrap().into_inner().unwrap();
        assert_eq!(m.mime.as_deref(), Some("application/pdf"));
        assert_eq!(m.checksum(), hex::encode(Sha256::digest(b"%PDF-1.4 rest")));

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
}
