//! The WAL checkpointer of a SQLite file: periodic checkpoints, a WAL restart under sustained
//! writes, and truncation once a full disk has room again.

use std::sync::atomic::Ordering;

use super::{DataEngine, Inner};
use crate::db;

/// Checkpoints the WAL of a SQLite file every [`db::CHECKPOINT_INTERVAL`] for as long as the
/// engine lives (the connections run with `wal_autocheckpoint=0`; see [`db::checkpoint`]), and
/// keeps the WAL from growing without bound (see [`db::WAL_RESTART_FRAMES`]).
pub(super) fn spawn_checkpointer(inner: std::sync::Weak<Inner>) {
    tokio::spawn(async move {
        let mut failures = RepeatedWarning::new("WAL checkpoint failed; retrying.");
        let mut tick = tokio::time::interval(db::CHECKPOINT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let engine = DataEngine { inner };
            if engine.inner.storage_full.load(Ordering::Acquire) {
                engine.reclaim_wal(&mut failures).await;
                continue;
            }
            let result = match db::checkpoint(&engine.inner.db).await {
                Ok(frames) if frames >= db::WAL_RESTART_FRAMES => {
                    // The bulk is copied; with the writer held (a group left open is committed
                    // first) nothing new arrives, so this one copies the last few frames and
                    // the next write transaction starts the WAL over.
                    let writer = engine.lock_writer().await;
                    let r = db::checkpoint(&engine.inner.db).await;
                    drop(writer);
                    r
                }
                other => other,
            };
            match result {
                Ok(_) => {}
                // The pool was closed (shutdown, or a test closing it): nothing left to do.
                Err(sea_orm::DbErr::ConnectionAcquire(
                    sea_orm::ConnAcquireErr::ConnectionClosed,
                )) => {
                    return;
                }
                Err(e) => failures.warn(&e.to_string()),
            }
        }
    });
}

/// A warning that repeats while a condition lasts (a full disk fails every checkpoint, five
/// times a second, and every outbox pass): logged the first time, then at most once per
/// [`REPEAT_WARNING`] with the number of repeats in between.
pub(super) struct RepeatedWarning {
    message: &'static str,
    last: Option<std::time::Instant>,
    suppressed: u64,
}

const REPEAT_WARNING: std::time::Duration = std::time::Duration::from_secs(30);

impl RepeatedWarning {
    pub(super) fn new(message: &'static str) -> Self {
        Self {
            message,
            last: None,
            suppressed: 0,
        }
    }

    pub(super) fn warn(&mut self, error: &str) {
        match self.last {
            Some(t) if t.elapsed() < REPEAT_WARNING => self.suppressed += 1,
            _ => {
                tracing::warn!(error, repeats = self.suppressed, "{}", self.message);
                self.last = Some(std::time::Instant::now());
                self.suppressed = 0;
            }
        }
    }
}

impl DataEngine {
    /// After a write failed on a full disk: with the writer held, copies the WAL into the
    /// database and truncates it (`wal_checkpoint(TRUNCATE)`), so the space the WAL took comes
    /// back and writes succeed again as soon as the disk has room, without a restart. Under
    /// steady writes the WAL otherwise only starts over past [`db::WAL_RESTART_FRAMES`], which a
    /// nearly full disk may never hold.
    async fn reclaim_wal(&self, failures: &mut RepeatedWarning) {
        let writer = self.lock_writer().await;
        let r = db::checkpoint_truncate(&self.inner.db).await;
        drop(writer);
        match r {
            Ok(true) => {
                self.inner.storage_full.store(false, Ordering::Release);
                tracing::info!("The WAL was truncated after the disk was full; writes can go on.");
            }
            // Readers still use the WAL: try again on the next tick.
            Ok(false) => {}
            Err(e) => failures.warn(&e.to_string()),
        }
    }
}
