//! Start-up checks of the metrics plugin's settings that need the file system: a trace CA file
//! that cannot be read stops the kernel, naming its key.

use objectos_metrics::{MetricsConfig, MetricsPlugin, TracingConfig};
use objectos_testkit::TestKernel;

#[tokio::test]
async fn an_unreadable_ca_file_stops_the_start_naming_its_key() {
    let config = MetricsConfig {
        token_env: "OBJECTOS_TEST_METRICS_TOKEN_UNSET".into(),
        tracing: TracingConfig {
            enabled: true,
            endpoint: "https://127.0.0.1:4317".into(),
            ca_file: Some("/nonexistent/objectos-test-ca.pem".into()),
            ..TracingConfig::default()
        },
        ..MetricsConfig::default()
    };
    let err = TestKernel::builder()
        .without_session()
        .plugin(MetricsPlugin::new(config))
        .try_boot()
        .await
        .err()
        .unwrap_or_default();
    assert!(
        err.contains("metrics.tracing.caFile") && err.contains("/nonexistent/objectos-test-ca.pem"),
        "{err}"
    );
}
