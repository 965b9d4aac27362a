//! What metrics and tracing cost one request: a booted kernel (data on a SQLite file, HTTP,
//! metrics) answers `GET /api/v1/data/contact/{id}` on one keep-alive connection, with the
//! `tracing` subscriber the server builds (a log layer at `info` into a sink, plus the
//! OpenTelemetry layer when tracing is on). The variant comes from `OBJECTOS_BENCH_VARIANT`:
//!
//! - `off`: `metrics.enabled: false`, no trace layer (the baseline);
//! - `metrics`: the default set-up (metrics on, tracing off);
//! - `tracing-0` / `tracing-1`: metrics on and `metrics.tracing` at sampling 0.0 / 1.0,
//!   exporting to an OTLP receiver on loopback.
//!
//! It prints wall-clock and process CPU time per request over `OBJECTOS_BENCH_REQUESTS`
//! requests (default 5000) after 300 warm-up requests. CPU time on a shared machine moves with
//! the load; the steady figure is the instruction count: run the binary under
//! `valgrind --tool=callgrind` with 0 and with N requests and divide the difference by N
//! (docs/benchmarks.md, "Metrics").
//!
//! `cargo bench -p objectos-metrics --bench request --no-run`, then run the binary it names.

// Benchmark setup may unwrap: a failure there is a broken benchmark, not input to handle.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use objectos_metrics::{MetricsConfig, MetricsPlugin, TracingConfig};
use objectos_testkit::TestKernel;
use objectos_testkit::otlp::Receiver;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, Registry};

const CONTACT_YML: &str = "\
name: contact
label: Contact
fields:
  name:
    type: text
    label: Name
";

/// One keep-alive connection; each call sends one request and reads its whole answer.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: SocketAddr) -> Self {
        let writer = TcpStream::connect(addr).unwrap();
        writer.set_nodelay(true).unwrap();
        Self {
            reader: BufReader::new(writer.try_clone().unwrap()),
            writer,
        }
    }

    /// Status and body of one request (the answer must carry a `content-length`).
    fn send(&mut self, method: &str, path: &str, body: &str) -> (u16, String) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.writer.write_all(head.as_bytes()).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, String::from_utf8(body).unwrap())
    }
}

/// User plus system CPU time of the process so far, in clock ticks (1/100 s on Linux).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces) start after the last `)`.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the file, 11 and 12 after the command name.
    field(11) + field(12)
}

fn main() {
    let variant = std::env::var("OBJECTOS_BENCH_VARIANT").unwrap_or_else(|_| "metrics".into());
    let requests: usize = std::env::var("OBJECTOS_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let sampling = match variant.as_str() {
        "off" | "metrics" => None,
        "tracing-0" => Some(0.0),
        "tracing-1" => Some(1.0),
        other => panic!("OBJECTOS_BENCH_VARIANT: unknown variant {other}"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();

    // The server's subscriber: log lines at info (here into a sink), the trace layer when on.
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::sink)
        .with_filter(EnvFilter::new("info"))
        .boxed();
    let mut layers: Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync> = log;
    let mut tracing = None;
    let mut tracing_config = TracingConfig::default();
    if let Some(ratio) = sampling {
        let (_receiver, addr) = rt.block_on(Receiver::start());
        tracing_config = TracingConfig {
            enabled: true,
            endpoint: format!("http://{addr}"),
            sampling_ratio: ratio,
            ..TracingConfig::default()
        };
        let (layer, t) = objectos_metrics::otel::layer_beside_logs(
            &tracing_config,
            "bench",
            tracing_subscriber::filter::LevelFilter::INFO,
        )
        .unwrap();
        // Outside the log layer, as the server adds it.
        layers = layers.and_then(layer).boxed();
        tracing = Some(t);
    }
    tracing_subscriber::registry().with(layers).init();

    let tk = rt.block_on(
        TestKernel::builder()
            .file("contact.object.yml", CONTACT_YML)
            .without_session()
            .plugin(MetricsPlugin::new(MetricsConfig {
                enabled: variant != "off",
                token_env: "OBJECTOS_BENCH_METRICS_TOKEN_UNSET".into(),
                tracing: tracing_config,
                ..MetricsConfig::default()
            }))
            .boot(),
    );
    let addr = tk.addr();
    let report = rt.block_on(async move {
        tokio::task::spawn_blocking(move || {
            let mut conn = Conn::open(addr);
            let (status, body) = conn.send("POST", "/api/v1/data/contact", r#"{"name":"Ada"}"#);
            assert_eq!(status, 201, "{body}");
            let created: serde_json::Value = serde_json::from_str(&body).unwrap();
            let id = created["record"]["id"]
                .as_str()
                .or(created["id"].as_str())
                .unwrap()
                .to_owned();
            let path = format!("/api/v1/data/contact/{id}");
            for _ in 0..300 {
                assert_eq!(conn.send("GET", &path, "").0, 200);
            }
            let (wall, cpu) = (Instant::now(), cpu_ticks());
            for _ in 0..requests {
                assert_eq!(conn.send("GET", &path, "").0, 200);
            }
            (wall.elapsed(), cpu_ticks() - cpu)
        })
        .await
        .unwrap()
    });
    let (wall, ticks) = report;
    if requests > 0 {
        let n = requests as f64;
        eprintln!(
            "{variant}: {requests} requests, {:.1} us wall and {:.1} us CPU (client included) per request",
            wall.as_secs_f64() * 1e6 / n,
            ticks as f64 * 10_000.0 / n,
        );
    }
    rt.block_on(tk.stop());
    if let Some(t) = tracing {
        t.shutdown();
    }
}
