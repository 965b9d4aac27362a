//! The names of the built-in metrics, `objectos_<plugin>_<what>_<unit>` (plugin.md 8.2).
//!
//! Crates record through the `metrics` facade (`metrics::counter!`, `gauge!`, `histogram!`)
//! with these names written out; the constants are what the dashboard in
//! `docs/grafana/objectos.json` and the tests refer to. A duration is a histogram in seconds
//! whose name ends in `_seconds` (the exporter gives every such metric the configured buckets),
//! a counter ends in `_total`.

/// Counter: HTTP requests answered, by `route` (the matched route template, never the raw
/// path), `method` and `status`.
pub const HTTP_REQUESTS: &str = "objectos_http_requests_total";
/// Histogram: time from the first hoop to the answer, by `route` and `method`.
pub const HTTP_DURATION: &str = "objectos_http_request_duration_seconds";
/// Gauge: requests being served now.
pub const HTTP_IN_FLIGHT: &str = "objectos_http_requests_in_flight";

/// Histogram: duration of one engine operation, by `operation` (find, get, count, create,
/// update, delete, aggregate, batch); recorded by objectos-data.
pub const DATA_OPERATION_DURATION: &str = "objectos_data_operation_duration_seconds";
/// Histogram: writes committed together by one SQLite group commit; recorded by objectos-data.
pub const DATA_GROUP_COMMIT_SIZE: &str = "objectos_data_group_commit_size";
/// Gauge: connections of the read pool, by `state` (`in_use`, `idle`); read at scrape time.
pub const DATA_POOL_CONNECTIONS: &str = "objectos_data_pool_connections";
/// Gauge: the read pool's configured maximum.
pub const DATA_POOL_MAX: &str = "objectos_data_pool_max_connections";
/// Gauge: outbox rows not yet published; read at scrape time.
pub const DATA_OUTBOX_BACKLOG: &str = "objectos_data_outbox_backlog";
/// Counter: outbox events published; recorded by objectos-data's dispatcher.
pub const DATA_OUTBOX_DISPATCHED: &str = "objectos_data_outbox_dispatched_total";
/// Histogram: time from the write that produced an outbox event to its publication.
pub const DATA_OUTBOX_LAG: &str = "objectos_data_outbox_dispatch_lag_seconds";

/// Gauge: 1 while a plugin reports `healthy`, else 0, by `plugin`; read at scrape time.
pub const KERNEL_PLUGIN_HEALTHY: &str = "objectos_kernel_plugin_healthy";
/// Gauge: always 1, labelled with `version` (the server's).
pub const BUILD_INFO: &str = "objectos_build_info";
/// Gauge: seconds since the metrics plugin started.
pub const UPTIME: &str = "objectos_kernel_uptime_seconds";
/// Counter: scrapes refused (no or a wrong token, an address outside `allow`).
pub const SCRAPES_REFUSED: &str = "objectos_metrics_scrapes_refused_total";
/// Counter: spans dropped because the OTLP collector did not take them (`metrics.tracing`).
pub const TRACING_SPANS_DROPPED: &str = "objectos_tracing_spans_dropped_total";
/// Histogram: how long a write waited for a database connection (PostgreSQL's pool, SQLite's
/// single writer), by `pool` (`write`); recorded by objectos-data.
pub const DATA_POOL_WAIT: &str = "objectos_data_pool_wait_seconds";

/// Gauge: events queued for asynchronous subscribers and not yet handled; read at scrape time.
pub const EVENTS_QUEUE_DEPTH: &str = "objectos_events_queue_depth";
/// Counter: events sent to the dead-letter store after every retry failed; read at scrape time
/// from the kernel's bus (since the kernel started).
pub const EVENTS_DEAD_LETTERS: &str = "objectos_events_dead_letters_total";

/// Counter: object-level permission decisions, by `operation` (read, create, edit, delete) and
/// `decision` (allow, deny); recorded by objectos-permissions.
pub const PERMISSIONS_DECISIONS: &str = "objectos_permissions_decisions_total";
/// Counter: effective-permission look-ups answered from the cache (hit ratio: hits over hits
/// plus misses); recorded by objectos-permissions.
pub const PERMISSIONS_CACHE_HITS: &str = "objectos_permissions_cache_hits_total";
/// Counter: effective-permission look-ups computed anew.
pub const PERMISSIONS_CACHE_MISSES: &str = "objectos_permissions_cache_misses_total";

/// Counter: successful sign-ins (sessions opened); recorded by objectos-auth.
pub const AUTH_SIGN_INS: &str = "objectos_auth_sign_ins_total";
/// Counter: failed sign-ins (wrong password, unknown email, wrong second factor, locked,
/// disabled or unverified account); recorded by objectos-auth.
pub const AUTH_SIGN_IN_FAILURES: &str = "objectos_auth_sign_in_failures_total";
/// Counter: emails locked after repeated failures; recorded by objectos-auth.
pub const AUTH_LOCKOUTS: &str = "objectos_auth_lockouts_total";
/// Gauge: sessions usable now (not revoked, within their absolute and idle timeouts), counted
/// in the shared session table after every sign-in, sign-out and revocation and every 30 s;
/// every node reports the cluster's total. Recorded by objectos-auth.
pub const AUTH_SESSIONS_ACTIVE: &str = "objectos_auth_sessions_active";

/// Histogram: time to append one audit row (hash chain included), by `path` (`write`: in the
/// data write's transaction, `own`: bus events); recorded by objectos-audit.
pub const AUDIT_APPEND_DURATION: &str = "objectos_audit_append_duration_seconds";

/// Counter: jobs written to the job table, by `queue`; recorded by objectos-jobs.
pub const JOBS_ENQUEUED: &str = "objectos_jobs_enqueued_total";
/// Counter: job attempts started, by `handler`; recorded by objectos-jobs.
pub const JOBS_STARTED: &str = "objectos_jobs_started_total";
/// Counter: jobs completed, by `handler`; recorded by objectos-jobs.
pub const JOBS_COMPLETED: &str = "objectos_jobs_completed_total";
/// Counter: job attempts that failed (then retried, dead-lettered or cancelled), by `handler`;
/// recorded by objectos-jobs.
pub const JOBS_FAILED: &str = "objectos_jobs_failed_total";
/// Counter: jobs moved to the dead-letter store, by `handler`; recorded by objectos-jobs.
pub const JOBS_DEAD_LETTERED: &str = "objectos_jobs_dead_lettered_total";
/// Histogram: one job attempt's handler time, by `handler`; recorded by objectos-jobs.
pub const JOBS_RUN_DURATION: &str = "objectos_jobs_run_duration_seconds";
/// Gauge: jobs due and not yet claimed, by `queue`, counted in the shared table at each
/// heartbeat (every node reports the cluster's total); recorded by objectos-jobs.
pub const JOBS_QUEUE_DEPTH: &str = "objectos_jobs_queue_depth";

/// Every built-in name above: what the dashboard may use (checked by the test below).
pub const ALL: &[&str] = &[
    HTTP_REQUESTS,
    HTTP_DURATION,
    HTTP_IN_FLIGHT,
    DATA_OPERATION_DURATION,
    DATA_GROUP_COMMIT_SIZE,
    DATA_POOL_CONNECTIONS,
    DATA_POOL_MAX,
    DATA_OUTBOX_BACKLOG,
    DATA_OUTBOX_DISPATCHED,
    DATA_OUTBOX_LAG,
    KERNEL_PLUGIN_HEALTHY,
    BUILD_INFO,
    UPTIME,
    SCRAPES_REFUSED,
    TRACING_SPANS_DROPPED,
    DATA_POOL_WAIT,
    EVENTS_QUEUE_DEPTH,
    EVENTS_DEAD_LETTERS,
    PERMISSIONS_DECISIONS,
    PERMISSIONS_CACHE_HITS,
    PERMISSIONS_CACHE_MISSES,
    AUTH_SIGN_INS,
    AUTH_SIGN_IN_FAILURES,
    AUTH_LOCKOUTS,
    AUTH_SESSIONS_ACTIVE,
    AUDIT_APPEND_DURATION,
    JOBS_ENQUEUED,
    JOBS_STARTED,
    JOBS_COMPLETED,
    JOBS_FAILED,
    JOBS_DEAD_LETTERED,
    JOBS_RUN_DURATION,
    JOBS_QUEUE_DEPTH,
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::ALL;

    /// The metric names a PromQL expression mentions (`objectos_...`), with the series suffixes
    /// of a histogram (`_bucket`, `_sum`, `_count`) taken off when the rest is a known name.
    fn names_in(expr: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = expr;
        while let Some(at) = rest.find("objectos_") {
            let tail = &rest[at..];
            let len = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..len];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| ALL.contains(b)))
                .unwrap_or(name);
            out.push(base.to_owned());
            rest = &tail[len..];
        }
        out
    }

    /// `docs/grafana/objectos.json` is valid JSON, every metric a panel queries is a built-in
    /// name (a typo or a renamed metric would leave a panel empty without anyone noticing), and
    /// every built-in name has a panel.
    #[test]
    fn the_dashboard_uses_exactly_the_built_in_names() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../docs/grafana/objectos.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut used = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            assert!(
                ids.insert(panel["id"].as_i64().unwrap()),
                "duplicate id: {panel}"
            );
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "a panel without queries: {panel}");
            for t in targets {
                let expr = t["expr"].as_str().unwrap();
                let names = names_in(expr);
                assert!(!names.is_empty(), "no metric in {expr}");
                used.extend(names);
            }
        }
        let known: BTreeSet<String> = ALL.iter().map(|s| (*s).to_owned()).collect();
        let unknown: Vec<&String> = used.difference(&known).collect();
        assert!(
            unknown.is_empty(),
            "the dashboard queries unknown metrics: {unknown:?}"
        );
        let missing: Vec<&String> = known.difference(&used).collect();
        assert!(missing.is_empty(), "metrics without a panel: {missing:?}");
    }

    #[test]
    fn histogram_series_map_to_their_name() {
        assert_eq!(
            names_in(
                "rate(objectos_http_request_duration_seconds_bucket{a=\"b\"}[1m]) / objectos_data_outbox_backlog"
            ),
            [
                "objectos_http_request_duration_seconds",
                "objectos_data_outbox_backlog"
            ]
        );
    }
}
