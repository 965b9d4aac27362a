//! Health aggregation: worst status wins, failed plugins degrade, slow probes count as unhealthy.

use std::time::Duration;

use objectos_kernel::{HealthReport, HealthStatus, Kernel, ManualClock, Timeouts};

use crate::support::{Log, Man, Start, TestPlugin};

async fn health_of(plugins: Vec<TestPlugin>) -> objectos_kernel::KernelHealth {
    let mut b = Kernel::builder().timeouts(Timeouts {
        health: Duration::from_secs(2),
        ..Timeouts::default()
    });
    for p in plugins {
        b = b.plugin(p);
    }
    let kernel = b.build().unwrap();
    kernel.boot().await.unwrap();
    kernel.health().await
}

#[tokio::test]
async fn all_healthy() {
    let log = Log::default();
    let h = health_of(vec![
        TestPlugin::new(Man::new("a", "1.0.0").build(), &log),
        TestPlugin::new(Man::new("b", "2.0.0").build(), &log),
    ])
    .await;
    assert_eq!(h.status, HealthStatus::Healthy);
    assert_eq!(h.plugins.len(), 2);
    assert_eq!(h.plugins[1].version, "2.0.0");
}

#[tokio::test]
async fn worst_plugin_status_wins() {
    let log = Log::default();
    let h =
        health_of(vec![
            TestPlugin::new(Man::new("a", "1.0.0").build(), &log).health(
                HealthReport::with_status(HealthStatus::Degraded, "slow disk"),
            ),
            TestPlugin::new(Man::new("b", "1.0.0").build(), &log).health(
                HealthReport::with_status(HealthStatus::Unhealthy, "no connection"),
            ),
        ])
        .await;
    assert_eq!(h.status, HealthStatus::Unhealthy);
    assert_eq!(h.plugins[0].report.message.as_deref(), Some("slow disk"));

    let h = health_of(vec![
        TestPlugin::new(Man::new("a", "1.0.0").build(), &log).health(HealthReport::with_status(
            HealthStatus::Recovering,
            "reconnecting",
        )),
    ])
    .await;
    assert_eq!(h.status, HealthStatus::Degraded);
}

#[tokio::test]
async fn failed_plugin_degrades_the_kernel() {
    let log = Log::default();
    let h = health_of(vec![
        TestPlugin::new(Man::new("a", "1.0.0").build(), &log).start(Start::Fail),
        TestPlugin::new(Man::new("b", "1.0.0").dep("a", "*").build(), &log),
        TestPlugin::new(Man::new("c", "1.0.0").build(), &log),
    ])
    .await;
    assert_eq!(h.status, HealthStatus::Degraded);
    assert_eq!(h.plugins[0].report.status, HealthStatus::Failed);
    assert_eq!(
        h.plugins[0].report.message.as_deref(),
        Some("database unreachable")
    );
    assert_eq!(h.plugins[1].report.status, HealthStatus::Failed);
    assert!(
        h.plugins[1]
            .report
            .message
            .as_deref()
            .unwrap()
            .starts_with("skipped: it depends on `a`")
    );
    assert_eq!(h.plugins[2].report.status, HealthStatus::Healthy);
}

#[tokio::test(start_paused = true)]
async fn slow_probe_counts_as_unhealthy() {
    let log = Log::default();
    let h = health_of(vec![
        TestPlugin::new(Man::new("stuck", "1.0.0").build(), &log).health_hangs(),
        TestPlugin::new(Man::new("ok", "1.0.0").build(), &log),
    ])
    .await;
    assert_eq!(h.status, HealthStatus::Unhealthy);
    assert_eq!(
        h.plugins[0].report.message.as_deref(),
        Some("health probe did not answer within 2s")
    );
    assert_eq!(h.plugins[1].report.status, HealthStatus::Healthy);
}

#[tokio::test]
async fn not_running_is_failed() {
    let start = chrono::DateTime::parse_from_rfc3339("2025-01-02T03:04:05Z")
        .unwrap()
        .to_utc();
    let clock = std::sync::Arc::new(ManualClock::new(start));
    let kernel = Kernel::builder().clock(clock).build().unwrap();
    assert_eq!(kernel.context().start_time, start);
    assert_eq!(kernel.health().await.status, HealthStatus::Failed);
    kernel.boot().await.unwrap();
    assert_eq!(kernel.health().await.status, HealthStatus::Healthy);
    kernel.shutdown().await;
    assert_eq!(kernel.health().await.status, HealthStatus::Failed);
}
