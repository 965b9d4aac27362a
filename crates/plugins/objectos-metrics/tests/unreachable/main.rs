//! A collector that is not there: requests are answered as usual, the spans are dropped and
//! counted (`objectos_tracing_spans_dropped_total`). Its own binary, since it installs the
//! process's `tracing` subscriber.

#[cfg(test)]
#[allow(dead_code)]
#[path = "../it/support.rs"]
mod support;

#[cfg(test)]
mod tests {
    use objectos_metrics::TracingConfig;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    use crate::support::{Harness, TOKEN};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_collector_leaves_requests_alone() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = TracingConfig {
            enabled: true,
            endpoint: format!("http://127.0.0.1:{port}"),
            timeout_seconds: 2,
            ..TracingConfig::default()
        };
        let (layer, tracing) = objectos_metrics::otel::layer(&config, "9.9.9-test").unwrap();
        tracing_subscriber::registry()
            .with(layer)
            .try_init()
            .unwrap();
        let h = Harness::with_token().await;
        for i in 0..5 {
            let (status, body) = h
                .http(
                    "POST",
                    "/api/v1/data/contact",
                    &[],
                    Some(&format!(r#"{{"name":"n{i}"}}"#)),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
        let flusher = tracing.clone();
        tokio::task::spawn_blocking(move || flusher.flush())
            .await
            .unwrap();
        let auth = format!("Bearer {TOKEN}");
        let (status, body) = h
            .http("GET", "/metrics", &[("authorization", &auth)], None)
            .await;
        assert_eq!(status, 200, "{body}");
        let s = crate::support::Samples::parse(&body);
        // Five requests, each with its data and SQL spans, plus the boot: all dropped.
        assert!(
            s.sum(objectos_metrics::otel::SPANS_DROPPED, &[]) >= 5.0,
            "{body}"
        );
        h.stop().await;
        tokio::task::spawn_blocking(move || tracing.shutdown())
            .await
            .unwrap();
    }
}
