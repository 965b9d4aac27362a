//! The state of a chunked upload in this process: its lock (part writes against completion)
//! and the running SHA-256 that parts arriving in order continue on the local backend, so that
//! completion reads back only what came out of order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::Sha256;

/// Per chunked upload, in this process: its lock and its running hash. The local backend serves
/// one process; several processes on one folder are not coordinated.
#[derive(Debug, Default)]
pub(crate) struct UploadLocks(Mutex<HashMap<String, Arc<UploadState>>>);

impl UploadLocks {
    pub(super) fn of(&self, upload: &str) -> Arc<UploadState> {
        match self.0.lock() {
            Ok(mut map) => map.entry(upload.to_owned()).or_default().clone(),
            // A poisoned map still hands out a state; it only loses the sharing (and the
            // running hash, which completion then makes again from the file).
            Err(_) => Arc::default(),
        }
    }

    pub(super) fn forget(&self, upload: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(upload);
        }
    }
}

/// One chunked upload's state in this process.
#[derive(Debug, Default)]
pub(super) struct UploadState {
    /// Part writes hold it shared, completion exclusively, so completion never reads a part
    /// being written (and a part never writes into a completed file).
    pub(super) lock: tokio::sync::RwLock<()>,
    running: Mutex<Running>,
}

/// The SHA-256 of the assembled file's first `to` bytes, continued by each part that arrives
/// in order (on the local backend), so completion reads again only what came out of order, and
/// the usual in-order upload is never read back to be hashed. A part written again over bytes
/// already hashed, or being hashed, breaks it for good: completion then hashes the whole file.
/// Only in memory: after a restart, completion hashes from the start.
#[derive(Debug, Default)]
struct Running {
    state: Sha256,
    to: u64,
    /// The end of the part continuing it, while one does.
    feeding: Option<u64>,
    broken: bool,
}

impl UploadState {
    fn running(&self) -> std::sync::MutexGuard<'_, Running> {
        // The state is a few plain fields, consistent after any panic between them.
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A part of `len` bytes at `offset` starts: the state it continues when it comes next in
    /// order (the part then feeds it until [`Feeding`] ends).
    pub(super) fn feed(self: &Arc<Self>, offset: u64, len: u64) -> Feeding {
        let mut r = self.running();
        let mut start = None;
        if offset < r.to || r.feeding.is_some_and(|end| offset < end) {
            r.broken = true;
        } else if !r.broken && r.feeding.is_none() && offset == r.to {
            r.feeding = Some(offset + len);
            start = Some(r.state.clone());
        }
        Feeding {
            upload: start.is_some().then(|| self.clone()),
            start,
        }
    }

    /// The running hash and how far it goes, when completion can continue it.
    pub(super) fn hashed(&self) -> Option<(Sha256, u64)> {
        let r = self.running();
        (!r.broken && r.feeding.is_none()).then(|| (r.state.clone(), r.to))
    }
}

/// A part feeding the running hash; ends it as it was unless [`Feeding::advance`]d (a part
/// that failed, or was dropped half-way, leaves it untouched).
pub(super) struct Feeding {
    upload: Option<Arc<UploadState>>,
    /// The state the part continues.
    pub(super) start: Option<Sha256>,
}

impl Feeding {
    /// The part was stored: the running hash now covers it.
    pub(super) fn advance(mut self, state: Sha256) {
        if let Some(upload) = self.upload.take() {
            let mut r = upload.running();
            if let Some(end) = r.feeding.take()
                && !r.broken
            {
                r.state = state;
                r.to = end;
            }
        }
    }
}

impl Drop for Feeding {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            upload.running().feeding = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use sha2::Digest as _;

    use super::*;

    fn state_after(parts: &[&[u8]]) -> Sha256 {
        let mut s = Sha256::new();
        for p in parts {
            s.update(p);
        }
        s
    }

    #[test]
    fn the_running_hash_follows_parts_in_order_and_breaks_on_a_rewrite() {
        let upload = Arc::new(UploadState::default());
        // Part 1 first: ahead of the hash, so it does not feed it.
        assert!(upload.feed(4, 4).start.is_none());
        // Part 0 feeds it; while it does, part 1 (ahead) still does not.
        let first = upload.feed(0, 4);
        assert!(first.start.is_some());
        assert!(
            upload.hashed().is_none(),
            "not usable while a part feeds it"
        );
        assert!(upload.feed(4, 4).start.is_none());
        first.advance(state_after(&[b"abcd"]));
        let (state, to) = upload.hashed().unwrap();
        assert_eq!(to, 4);
        assert_eq!(state.finalize(), state_after(&[b"abcd"]).finalize());
        // A part that fails (dropped without advancing) leaves it as it was.
        drop(upload.feed(4, 4));
        assert_eq!(upload.hashed().unwrap().1, 4);
        let second = upload.feed(4, 4);
        second.advance(state_after(&[b"abcd", b"efgh"]));
        assert_eq!(upload.hashed().unwrap().1, 8);
        // Part 0 sent again over hashed bytes: broken for good, completion hashes it all.
        assert!(upload.feed(0, 4).start.is_none());
        assert!(upload.hashed().is_none());
        assert!(upload.feed(8, 4).start.is_none());

        // A rewrite of the range being fed breaks it too, and the feeding part cannot mend it.
        let other = Arc::new(UploadState::default());
        let feeding = other.feed(0, 4);
        assert!(other.feed(0, 4).start.is_none());
        feeding.advance(state_after(&[b"abcd"]));
        assert!(other.hashed().is_none());
    }
}
