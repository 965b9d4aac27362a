//! OTLP over TLS: spans reach a receiver that serves a certificate of a private CA when
//! `caFile` names that CA, and do not when only the built-in roots are trusted. The receiver is
//! `objectos_testkit::otlp` over TLS with the committed test certificate
//! (`tests/fixtures/tls`, CN and SAN 127.0.0.1 and localhost). Its own binary, so the layers it
//! builds stay apart from the other tests'; each run uses a scoped subscriber.
//!
//! Mutual TLS: a receiver that requires a client certificate of its own test CA
//! (`client-ca.pem`) gets nothing from an exporter without one, and the spans of an exporter
//! that shows `client.pem` with `client.key` (`certFile`, `keyFile`).

#[cfg(test)]
mod tests {
    use objectos_metrics::TracingConfig;
    use objectos_testkit::otlp::Receiver;
    use tracing_subscriber::layer::SubscriberExt as _;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

    /// Exports one span named `name` through a layer built from `config`, and waits until the
    /// exporter has either delivered it or given up (a flush returns after the attempt).
    async fn export_one(config: TracingConfig, name: &'static str) {
        let (layer, tracing) = objectos_metrics::otel::layer(&config, "9.9.9-test").unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            // The layer exports ObjectOS targets only.
            tracing::info_span!(target: "objectos_tls_test", "tls.probe", otel.name = name)
                .in_scope(|| {
                    tracing::debug_span!(target: "objectos_tls_test", "tls.child").in_scope(|| ());
                });
        });
        tokio::task::spawn_blocking(move || {
            tracing.flush();
            tracing.shutdown();
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spans_reach_a_tls_collector_trusted_through_ca_file() {
        let cert = std::fs::read(format!("{FIXTURES}/server.pem")).unwrap();
        let key = std::fs::read(format!("{FIXTURES}/server.key")).unwrap();
        let (receiver, addr) = Receiver::start_tls(&cert, &key).await;
        let base = TracingConfig {
            enabled: true,
            sampling_ratio: 1.0,
            timeout_seconds: 5,
            service_name: "objectos-tls-test".into(),
            ..TracingConfig::default()
        };

        // The built-in roots do not know the test CA: the handshake fails, nothing arrives.
        export_one(
            TracingConfig {
                endpoint: format!("https://localhost:{}", addr.port()),
                ..base.clone()
            },
            "untrusted",
        )
        .await;
        assert!(
            receiver.spans().iter().all(|s| s.name != "untrusted"),
            "{:#?}",
            receiver.spans()
        );

        // With the CA: by address and by name (both are in the certificate), parent and child.
        for (host, name) in [("127.0.0.1", "trusted-ip"), ("localhost", "trusted-name")] {
            export_one(
                TracingConfig {
                    endpoint: format!("https://{host}:{}", addr.port()),
                    ca_file: Some(format!("{FIXTURES}/ca.pem")),
                    ..base.clone()
                },
                name,
            )
            .await;
            let spans = receiver
                .wait_until(std::time::Duration::from_secs(10), |spans| {
                    spans.iter().any(|s| s.name == name)
                })
                .await;
            let probe = objectos_testkit::otlp::one(&spans, name, |s| s.name == name);
            assert_eq!(probe.service, "objectos-tls-test");
            let children = objectos_testkit::otlp::children(&spans, probe);
            assert_eq!(children.len(), 1, "{spans:#?}");
            assert_eq!(children[0].name, "tls.child");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_collector_requiring_a_client_certificate_gets_spans_only_with_one() {
        let read = |name: &str| std::fs::read(format!("{FIXTURES}/{name}")).unwrap();
        let (receiver, addr) = Receiver::start_mtls(
            &read("server.pem"),
            &read("server.key"),
            &read("client-ca.pem"),
        )
        .await;
        let base = TracingConfig {
            enabled: true,
            endpoint: format!("https://127.0.0.1:{}", addr.port()),
            ca_file: Some(format!("{FIXTURES}/ca.pem")),
            sampling_ratio: 1.0,
            timeout_seconds: 5,
            service_name: "objectos-mtls-test".into(),
            ..TracingConfig::default()
        };

        // The server is trusted, but the exporter shows no certificate: refused.
        export_one(base.clone(), "anonymous").await;
        // A certificate the receiver's client CA did not issue (the server's own): refused too.
        export_one(
            TracingConfig {
                cert_file: Some(format!("{FIXTURES}/server.pem")),
                key_file: Some(format!("{FIXTURES}/server.key")),
                ..base.clone()
            },
            "stranger",
        )
        .await;
        // The client certificate of the client CA: its spans arrive.
        export_one(
            TracingConfig {
                cert_file: Some(format!("{FIXTURES}/client.pem")),
                key_file: Some(format!("{FIXTURES}/client.key")),
                ..base.clone()
            },
            "mutual",
        )
        .await;
        let spans = receiver
            .wait_until(std::time::Duration::from_secs(10), |spans| {
                spans.iter().any(|s| s.name == "mutual")
            })
            .await;
        let probe = objectos_testkit::otlp::one(&spans, "mutual", |s| s.name == "mutual");
        assert_eq!(probe.service, "objectos-mtls-test");
        assert_eq!(objectos_testkit::otlp::children(&spans, probe).len(), 1);
        assert!(
            spans
                .iter()
                .all(|s| s.name != "anonymous" && s.name != "stranger"),
            "{spans:#?}"
        );
    }
}
