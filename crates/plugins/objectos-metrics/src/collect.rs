//! Gauges read at scrape time: what is cheaper to ask for when Prometheus asks than to keep
//! current on every change (plugin health, the database pool, the outbox backlog).

use objectos_data::DataEngine;
use objectos_spec::{HealthStatus, KernelHealth};

use crate::names;

/// `objectos_kernel_plugin_healthy{plugin}`: 1 for `healthy`, 0 for anything else.
pub fn plugin_health(health: &KernelHealth) {
    for p in &health.plugins {
        let up = if p.report.status == HealthStatus::Healthy {
            1.0
        } else {
            0.0
        };
        metrics::gauge!(names::KERNEL_PLUGIN_HEALTHY, "plugin" => p.id.clone()).set(up);
    }
}

/// The event bus's queues and dead letters.
pub fn events(handle: &objectos_kernel::PluginHandle) {
    let stats = handle.event_stats();
    metrics::gauge!(names::EVENTS_QUEUE_DEPTH).set(stats.queued as f64);
    metrics::counter!(names::EVENTS_DEAD_LETTERS).absolute(stats.dead_lettered);
}

/// The read pool's connections and the outbox backlog.
pub async fn database(engine: &DataEngine) {
    if let Some(pool) = engine.pool_stats() {
        metrics::gauge!(names::DATA_POOL_CONNECTIONS, "state" => "in_use")
            .set(f64::from(pool.in_use));
        metrics::gauge!(names::DATA_POOL_CONNECTIONS, "state" => "idle").set(f64::from(pool.idle));
        metrics::gauge!(names::DATA_POOL_MAX).set(f64::from(pool.max));
    }
    match engine.outbox_backlog().await {
        Ok(n) => metrics::gauge!(names::DATA_OUTBOX_BACKLOG).set(n as f64),
        // The scrape still answers with everything else; the gauge keeps its last value.
        Err(e) => tracing::debug!(error = %e, "Outbox backlog not read for the metrics scrape."),
    }
}
