//! Sampling decided by the HTTP hoop, at `samplingRatio: 0.0`: a request without a client
//! `traceparent` (or with a malformed one) builds no OpenTelemetry span and records no trace id,
//! and its record event carries no trace context; a client's sampled `traceparent` is followed
//! (its request, data and SQL spans reach the collector, its event carries the trace on); an
//! unsampled one is followed too (nothing exported, but its trace id is in the log lines and its
//! event carries the trace with the "not sampled" flag). Its own binary, since it installs the
//! process's `tracing` subscriber.

#[cfg(test)]
#[allow(dead_code)]
#[path = "../it/support.rs"]
mod support;

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use objectos_kernel::SubscribeOptions;
    use objectos_metrics::{MetricsConfig, TracingConfig};
    use objectos_spec::Event;
    use objectos_testkit::otlp::{Receiver, children, one};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};

    use crate::support::Harness;

    const SAMPLED: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const UNSAMPLED: &str = "0af7651916cd43dd8448eb211c80319c";
    const PARENT: &str = "00f067aa0ba902b7";

    /// The log lines, as written.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        /// The lines of the request with this id.
        fn of(&self, request_id: &str) -> Vec<String> {
            String::from_utf8_lossy(&self.0.lock().unwrap())
                .lines()
                .filter(|l| l.contains(&format!("request_id={request_id}")))
                .map(str::to_owned)
                .collect()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_hoop_samples_before_the_request_span_exists() {
        let (receiver, addr) = Receiver::start().await;
        let config = TracingConfig {
            enabled: true,
            endpoint: format!("http://{addr}"),
            sampling_ratio: 0.0,
            service_name: "objectos-sampling-test".into(),
            ..TracingConfig::default()
        };
        // As the server builds it: log lines (here with the hoop's debug line, which is written
        // inside the request span and so shows its fields) beside the trace layer.
        let logs = Capture::default();
        let filter = EnvFilter::new("warn,objectos_http=debug");
        let level = filter
            .max_level_hint()
            .unwrap_or(tracing_subscriber::filter::LevelFilter::TRACE);
        let writer = logs.clone();
        let log_layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .with_filter(filter)
            .boxed();
        let (traces, tracing) =
            objectos_metrics::otel::layer_beside_logs(&config, "9.9.9-test", level).unwrap();
        tracing_subscriber::registry()
            .with(log_layer.and_then(traces))
            .try_init()
            .unwrap();

        let h = Harness::boot(MetricsConfig {
            token_env: "OBJECTOS_TEST_METRICS_TOKEN_UNSET".into(),
            tracing: config.clone(),
            ..MetricsConfig::default()
        })
        .await;
        // What each record event carries.
        let carried: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let keep = carried.clone();
        h.tk.kernel
            .bus()
            .subscribe(
                "test.sampling",
                "data.contact.created",
                move |event: Arc<Event>| {
                    let keep = keep.clone();
                    async move {
                        keep.lock()
                            .unwrap()
                            .push(event.traceparent().map(str::to_owned));
                        Ok(())
                    }
                },
                SubscribeOptions::default(),
            )
            .unwrap();

        let sampled = format!("00-{SAMPLED}-{PARENT}-01");
        let unsampled = format!("00-{UNSAMPLED}-{PARENT}-00");
        for (request_id, traceparent) in [
            ("plain-1", None),
            ("malformed-1", Some("00-not-a-trace-01")),
            ("sampled-1", Some(sampled.as_str())),
            ("unsampled-1", Some(unsampled.as_str())),
        ] {
            let mut headers = vec![("x-request-id", request_id)];
            headers.extend(traceparent.map(|tp| ("traceparent", tp)));
            let (status, body) = h
                .http(
                    "POST",
                    "/api/v1/data/contact",
                    &headers,
                    Some(r#"{"name":"Ada"}"#),
                )
                .await;
            assert_eq!(status, 201, "{request_id}: {body}");
        }
        for _ in 0..200 {
            if carried.lock().unwrap().len() >= 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        h.stop().await;
        let flusher = tracing.clone();
        tokio::task::spawn_blocking(move || flusher.flush())
            .await
            .unwrap();

        // Only the client's sampled trace was exported: its request, data operation and SQL.
        let spans = receiver.spans();
        assert!(
            spans.iter().all(|s| s.trace_id == SAMPLED),
            "a span of another trace was exported: {spans:#?}"
        );
        let request = one(&spans, "the sampled request", |s| {
            s.attr("http.route").is_some()
        });
        assert_eq!(request.parent_id, PARENT);
        let ops = children(&spans, request);
        let create = ops
            .iter()
            .find(|s| s.name == "data.create")
            .unwrap_or_else(|| panic!("no data.create under the request: {spans:#?}"));
        assert!(
            children(&spans, create).iter().any(|s| s.name == "INSERT"),
            "{spans:#?}"
        );

        // The events: the sampled trace carried on, the unsampled one too (flag 00), none for
        // the requests that started a trace nobody records.
        let mut carried = carried.lock().unwrap().clone();
        carried.sort();
        assert_eq!(carried.len(), 4, "{carried:?}");
        assert_eq!(carried[..2], [None, None], "{carried:?}");
        let with: Vec<&str> = carried.iter().flatten().map(String::as_str).collect();
        assert!(
            with.iter()
                .any(|tp| tp.starts_with(&format!("00-{SAMPLED}-")) && tp.ends_with("-01")),
            "{with:?}"
        );
        assert!(
            with.iter()
                .any(|tp| tp.starts_with(&format!("00-{UNSAMPLED}-")) && tp.ends_with("-00")),
            "{with:?}"
        );

        // The log lines: a trace id only where it correlates something.
        for (request_id, trace_id) in [
            ("plain-1", None),
            ("malformed-1", None),
            ("sampled-1", Some(SAMPLED)),
            ("unsampled-1", Some(UNSAMPLED)),
        ] {
            let lines = logs.of(request_id);
            assert!(!lines.is_empty(), "no log line of {request_id}");
            for line in lines {
                match trace_id {
                    Some(id) => assert!(line.contains(&format!("trace_id=\"{id}\"")), "{line}"),
                    None => assert!(!line.contains("trace_id="), "{line}"),
                }
            }
        }
        tokio::task::spawn_blocking(move || tracing.shutdown())
            .await
            .unwrap();
    }
}
