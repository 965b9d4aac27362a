//! The `/metrics` scrape with 100 routes (target: < 5 ms): a booted kernel (data on a SQLite
//! file, HTTP, metrics), series for 100 route templates recorded through the facade as the
//! hoop records them (2 methods, 2 statuses, a latency histogram each), then one scrape over
//! HTTP per iteration: the scrape-time gauges (outbox backlog query, pool, bus), the rendering
//! and the transfer, as Prometheus pays them.
//!
//! `cargo bench -p objectos-metrics --bench scrape -- --warm-up-time 1 --measurement-time 3`.

// Benchmark setup may unwrap: a failure there is a broken benchmark, not input to handle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use criterion::{Criterion, criterion_group, criterion_main};
use objectos_metrics::{MetricsConfig, MetricsPlugin, names};
use objectos_testkit::TestKernel;

/// One scrape over HTTP/1.0 (the answer ends with the connection); the body's length.
fn scrape(addr: SocketAddr) -> usize {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")
        .unwrap();
    let mut raw = Vec::with_capacity(256 * 1024);
    stream.read_to_end(&mut raw).unwrap();
    assert!(raw.starts_with(b"HTTP/1.0 200") || raw.starts_with(b"HTTP/1.1 200"));
    raw.len()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tk = rt.block_on(
        TestKernel::builder()
            .plugin(MetricsPlugin::new(MetricsConfig {
                // Loopback may scrape without a token.
                token_env: "OBJECTOS_BENCH_METRICS_TOKEN_UNSET".into(),
                ..MetricsConfig::default()
            }))
            .boot(),
    );
    for i in 0..100 {
        let route = format!("/api/v1/bench{i}/{{id}}");
        for method in ["GET", "POST"] {
            for status in ["200", "404"] {
                metrics::counter!(names::HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status)
                    .increment(1);
            }
            metrics::histogram!(names::HTTP_DURATION, "route" => route.clone(), "method" => method)
                .record(0.002);
        }
    }
    let addr = tk.addr();
    let bytes = scrape(addr);
    eprintln!("scrape size with 100 routes: {bytes} bytes");
    c.bench_function("metrics scrape, 100 routes, over HTTP", |b| {
        b.iter(|| scrape(addr))
    });
    rt.block_on(tk.stop());
}

criterion_group!(benches, bench);
criterion_main!(benches);
