//! The queue's metrics, recorded through the `metrics` facade (the metrics plugin exports them
//! as `objectos_jobs_*`; without it they cost nothing): jobs enqueued per queue, attempts
//! started, completed, failed and dead-lettered per handler, attempt durations, and the jobs
//! due and waiting per queue. Handler and queue names are registered or configured names, so
//! their label values are bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use parking_lot::Mutex;

/// Counter: jobs written to the table, by `queue` (schedule ticks included; an enqueue inside a
/// transaction that later rolls back is counted too).
pub const ENQUEUED: &str = "objectos_jobs_enqueued_total";
/// Counter: attempts started, by `handler`.
pub const STARTED: &str = "objectos_jobs_started_total";
/// Counter: jobs completed, by `handler`.
pub const COMPLETED: &str = "objectos_jobs_completed_total";
/// Counter: attempts that failed (retried, dead-lettered or cancelled after), by `handler`.
pub const FAILED: &str = "objectos_jobs_failed_total";
/// Counter: jobs moved to the dead-letter store, by `handler`.
pub const DEAD_LETTERED: &str = "objectos_jobs_dead_lettered_total";
/// Histogram: one attempt's handler time in seconds, by `handler`.
pub const DURATION: &str = "objectos_jobs_run_duration_seconds";
/// Gauge: jobs due and not yet claimed (`pending`), by `queue`; counted in the shared table at
/// each heartbeat, so every node reports the cluster's total.
pub const QUEUE_DEPTH: &str = "objectos_jobs_queue_depth";

pub(crate) fn enqueued(queue: &str, n: usize) {
    metrics::counter!(ENQUEUED, "queue" => queue.to_owned())
        .increment(u64::try_from(n).unwrap_or(u64::MAX));
}

pub(crate) fn started(handler: &str) {
    metrics::counter!(STARTED, "handler" => handler.to_owned()).increment(1);
}

/// One attempt ended after `elapsed` in its handler: `completed`, or a failure that
/// `dead` moved to the dead-letter store.
pub(crate) fn finished(handler: &str, elapsed: Duration, completed: bool, dead: bool) {
    let handler = handler.to_owned();
    metrics::histogram!(DURATION, "handler" => handler.clone()).record(elapsed.as_secs_f64());
    if completed {
        metrics::counter!(COMPLETED, "handler" => handler).increment(1);
        return;
    }
    metrics::counter!(FAILED, "handler" => handler.clone()).increment(1);
    if dead {
        metrics::counter!(DEAD_LETTERED, "handler" => handler).increment(1);
    }
}

/// The queues the depth gauge was last set for, so a queue that emptied reads 0 rather than
/// its last value.
#[derive(Debug, Default)]
pub(crate) struct Depth {
    seen: Mutex<BTreeSet<String>>,
}

impl Depth {
    pub(crate) fn set(&self, depth: &BTreeMap<String, u64>) {
        let mut seen = self.seen.lock();
        for q in seen.iter().filter(|q| !depth.contains_key(*q)) {
            metrics::gauge!(QUEUE_DEPTH, "queue" => q.clone()).set(0.0);
        }
        for (q, n) in depth {
            // A count fits an f64 exactly far beyond any queue's length.
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!(QUEUE_DEPTH, "queue" => q.clone()).set(*n as f64);
        }
        *seen = depth.keys().cloned().collect();
    }
}
