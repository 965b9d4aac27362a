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
