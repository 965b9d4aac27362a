//! Metrics the engine records through the `metrics` facade: operation latency, group-commit
//! size, outbox dispatch. Names follow `objectos_<plugin>_<what>_<unit>`; the metrics plugin
//! installs the recorder, and without one every call here is a no-op.

use std::time::Instant;

/// Histogram: duration of one engine operation, by `operation`.
pub(crate) const OPERATION_DURATION: &str = "objectos_data_operation_duration_seconds";
/// Histogram: writes committed together by one SQLite group commit.
pub(crate) const GROUP_COMMIT_SIZE: &str = "objectos_data_group_commit_size";
/// Counter: outbox events published.
pub(crate) const OUTBOX_DISPATCHED: &str = "objectos_data_outbox_dispatched_total";
/// Histogram: time from the write to the publication of its outbox event.
pub(crate) const OUTBOX_LAG: &str = "objectos_data_outbox_dispatch_lag_seconds";

/// Records an operation's duration when dropped, however the operation ends (an error, a
/// cancelled request future).
#[must_use = "the timer records when dropped"]
pub(crate) struct OpTimer {
    operation: &'static str,
    started: Instant,
}

impl OpTimer {
    pub(crate) fn start(operation: &'static str) -> Self {
        Self {
            operation,
            started: Instant::now(),
        }
    }
}

impl Drop for OpTimer {
    fn drop(&mut self) {
        metrics::histogram!(OPERATION_DURATION, "operation" => self.operation)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// A group commit of `members` writes went through.
pub(crate) fn group_committed(members: usize) {
    metrics::histogram!(GROUP_COMMIT_SIZE).record(members as f64);
}

/// Outbox events written at `stamps` were published now.
pub(crate) fn outbox_published(stamps: &[chrono::DateTime<chrono::Utc>]) {
    if stamps.is_empty() {
        return;
    }
    let now = chrono::Utc::now();
    metrics::counter!(OUTBOX_DISPATCHED).increment(stamps.len() as u64);
    let lag = metrics::histogram!(OUTBOX_LAG);
    for t in stamps {
        lag.record((now - *t).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6);
    }
}
