//! The outbox dispatcher: publishes committed outbox rows to the event sink, oldest first,
//! marks them delivered and prunes old delivered rows.

use std::sync::Arc;

use super::DataEngine;
use super::checkpoint::RepeatedWarning;
use crate::db::Dialect;
use crate::error::Result;
use crate::outbox::{self, DispatcherHandle, EventSink};

impl DataEngine {
    /// Publishes every pending outbox row to `sink` once, oldest first, marking delivered rows.
    /// Returns how many were delivered; stops at the first failure (the rest stay pending).
    ///
    /// Rows go in batches of up to 256: one read, one `publish_many`, one UPDATE marking the
    /// delivered prefix. A crash between publishing and marking delivers those rows again on the
    /// next pass (at least once; consumers de-duplicate on the event id).
    ///
    /// On PostgreSQL, where several servers may share the database, the read is a claim
    /// (`outbox::claim`): rows another node holds under a live lease are left to it, and so is
    /// every later row of the same record, so in the normal case each row is published by one
    /// node and a record's events in order; rows a failed publish did not deliver are released
    /// for the next pass. On SQLite (one process per file) the read claims nothing.
    pub async fn dispatch_pending(&self, sink: &dyn EventSink) -> Result<usize> {
        let dialect = self.inner.dialect;
        let mut delivered = 0;
        loop {
            let (batch, claim) = match dialect {
                Dialect::Sqlite => (
                    outbox::pending(&self.inner.db, dialect, outbox::BATCH).await?,
                    None,
                ),
                Dialect::Postgres => {
                    let c = outbox::claim(&self.inner.write, outbox::BATCH).await?;
                    (c.rows, Some(c.token))
                }
            };
            if batch.is_empty() {
                return Ok(delivered);
            }
            let full = batch.len() as u64 == outbox::BATCH;
            let traced: Vec<outbox::Published> = if outbox::tracing_published() {
                batch.iter().map(outbox::Published::of).collect()
            } else {
                Vec::new()
            };
            let stamps: Vec<_> = batch.iter().map(|p| p.event.metadata.timestamp).collect();
            let (ids, events): (Vec<i64>, Vec<_>) =
                batch.into_iter().map(|p| (p.id, p.event)).unzip();
            let (done, failed) = match sink.publish_many(events).await {
                Ok(()) => (ids.len(), false),
                Err((n, e)) => {
                    tracing::warn!(outbox_id = ids.get(n).copied().unwrap_or_default(), error = %e, "Outbox event could not be published; it stays pending and is retried.");
                    (n.min(ids.len()), true)
                }
            };
            outbox::trace_published(traced.get(..done).unwrap_or_default(), claim.as_deref());
            crate::observe::outbox_published(stamps.get(..done).unwrap_or_default());
            {
                let _g = if dialect == Dialect::Sqlite {
                    Some(self.lock_writer().await)
                } else {
                    None
                };
                outbox::mark_dispatched(&self.inner.write, dialect, &ids[..done]).await?;
            }
            if let Some(token) = &claim
                && done < ids.len()
            {
                outbox::release(&self.inner.write, token, &ids[done..]).await?;
            }
            delivered += done;
            if failed || !full {
                return Ok(delivered);
            }
        }
    }

    /// Deletes delivered rows older than an hour, a chunk at a time, taking the write lock per chunk.
    async fn prune_outbox(&self) -> Result<u64> {
        let dialect = self.inner.dialect;
        let cutoff = outbox::prune_cutoff();
        let mut total = 0;
        loop {
            let n = {
                let _g = if dialect == Dialect::Sqlite {
                    Some(self.lock_writer().await)
                } else {
                    None
                };
                outbox::prune_chunk(&self.inner.write, dialect, &cutoff).await?
            };
            total += n;
            if n < outbox::PRUNE_CHUNK {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Spawns the dispatcher: it delivers leftovers at once, then shortly after commits (several
    /// commits per pass when they come quickly) and on a poll, until stopped.
    pub fn start_dispatcher(&self, sink: Arc<dyn EventSink>) -> DispatcherHandle {
        let stop = Arc::new(tokio::sync::Notify::new());
        let engine = self.clone();
        let stop2 = stop.clone();
        let task = tokio::spawn(async move {
            let mut failures = RepeatedWarning::new("Outbox dispatch pass failed; retrying.");
            let mut last_prune = std::time::Instant::now();
            loop {
                if last_prune.elapsed() > std::time::Duration::from_secs(60) {
                    last_prune = std::time::Instant::now();
                    if let Err(e) = engine.prune_outbox().await {
                        tracing::warn!(error = %e, "Pruning delivered outbox rows failed.");
                    }
                }
                if let Err(e) = engine.dispatch_pending(sink.as_ref()).await {
                    failures.warn(&e.to_string());
                }
                tokio::select! {
                    _ = stop2.notified() => break,
                    _ = engine.inner.outbox_notify.notified() => {
                        tokio::select! {
                            _ = stop2.notified() => break,
                            _ = tokio::time::sleep(outbox::COALESCE) => {}
                        }
                    }
                    _ = tokio::time::sleep(outbox::POLL_INTERVAL) => {}
                }
            }
        });
        DispatcherHandle { stop, task }
    }
}
