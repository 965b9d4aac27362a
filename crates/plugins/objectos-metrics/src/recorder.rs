//! The process-wide Prometheus recorder behind the `metrics` facade.
//!
//! `metrics` has one global recorder per process, so the first kernel that starts this plugin
//! installs it (with that kernel's buckets) and every later one in the same process (tests boot
//! several) shares it: counters then add up across kernels, which is why the tests compare
//! before and after instead of absolute values.

use std::sync::OnceLock;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::{MetricsError, Result};
use crate::names;

static HANDLE: OnceLock<std::result::Result<PrometheusHandle, String>> = OnceLock::new();

/// The installed recorder's handle, installing it on the first call.
pub fn install(buckets: &[f64]) -> Result<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), buckets)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_size".into()), SIZE_BUCKETS)
                })
                .and_then(PrometheusBuilder::install_recorder)
                .map_err(|e| e.to_string())?;
            describe();
            // From now on crates may keep their handles instead of looking series up per call.
            objectos_kernel::recorder::mark_installed();
            Ok(handle)
        })
        .clone()
        .map_err(MetricsError::Recorder)
}

/// Buckets of the `*_size` histograms (writes per group commit and the like).
const SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// `# HELP` lines of the built-in metrics.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::HTTP_REQUESTS,
        Unit::Count,
        "HTTP requests answered, by route template, method and status."
    );
    describe_histogram!(
        names::HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency, by route template and method."
    );
    describe_gauge!(
        names::HTTP_IN_FLIGHT,
        Unit::Count,
        "HTTP requests being served."
    );
    describe_histogram!(
        names::DATA_OPERATION_DURATION,
        Unit::Seconds,
        "Data engine operation latency, by operation."
    );
    describe_histogram!(
        names::DATA_GROUP_COMMIT_SIZE,
        Unit::Count,
        "Writes committed by one SQLite group commit."
    );
    describe_gauge!(
        names::DATA_POOL_CONNECTIONS,
        Unit::Count,
        "Read pool connections, by state (in_use, idle)."
    );
    describe_gauge!(names::DATA_POOL_MAX, Unit::Count, "Read pool maximum size.");
    describe_gauge!(
        names::DATA_OUTBOX_BACKLOG,
        Unit::Count,
        "Outbox rows not yet published."
    );
    describe_counter!(
        names::DATA_OUTBOX_DISPATCHED,
        Unit::Count,
        "Outbox events published."
    );
    describe_histogram!(
        names::DATA_OUTBOX_LAG,
        Unit::Seconds,
        "Time from a write to the publication of its outbox event."
    );
    describe_gauge!(
        names::KERNEL_PLUGIN_HEALTHY,
        Unit::Count,
        "1 while the plugin reports healthy, else 0."
    );
    describe_gauge!(
        names::BUILD_INFO,
        Unit::Count,
        "Build information (always 1)."
    );
    describe_gauge!(
        names::UPTIME,
        Unit::Seconds,
        "Seconds since the metrics plugin started."
    );
    describe_histogram!(
        names::DATA_POOL_WAIT,
        Unit::Seconds,
        "Time a write waited for a database connection, by pool."
    );
    describe_gauge!(
        names::EVENTS_QUEUE_DEPTH,
        Unit::Count,
        "Events queued for asynchronous subscribers."
    );
    describe_counter!(
        names::EVENTS_DEAD_LETTERS,
        Unit::Count,
        "Events sent to the dead-letter store."
    );
    describe_counter!(
        names::PERMISSIONS_DECISIONS,
        Unit::Count,
        "Object permission decisions, by operation and decision."
    );
    describe_counter!(
        names::PERMISSIONS_CACHE_HITS,
        Unit::Count,
        "Effective permissions answered from the cache."
    );
    describe_counter!(
        names::PERMISSIONS_CACHE_MISSES,
        Unit::Count,
        "Effective permissions computed anew."
    );
    describe_counter!(names::AUTH_SIGN_INS, Unit::Count, "Successful sign-ins.");
    describe_counter!(
        names::AUTH_SIGN_IN_FAILURES,
        Unit::Count,
        "Failed sign-ins."
    );
    describe_counter!(
        names::AUTH_LOCKOUTS,
        Unit::Count,
        "Emails locked after repeated failed sign-ins."
    );
    describe_histogram!(
        names::AUDIT_APPEND_DURATION,
        Unit::Seconds,
        "Time to append one audit row, by path."
    );
    describe_counter!(
        names::TRACING_SPANS_DROPPED,
        Unit::Count,
        "Spans dropped because the OTLP collector did not take them."
    );
    describe_counter!(
        names::SCRAPES_REFUSED,
        Unit::Count,
        "Scrapes refused for a missing or wrong token or an address outside the allow list."
    );
}
