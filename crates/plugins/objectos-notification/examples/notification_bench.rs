//! The notification plugin's benchmark (`cargo xtask bench notifications` runs it in a release
//! build): the request-path cost of queueing one email (`queue_email`: check, render, store the
//! record and its contents, hand it over; p50/p99 over mails queued one at a time) and the
//! throughput of delivering mail to a local SMTP sink (a minimal SMTP server in this program,
//! so the sink is never the bottleneck), on a SQLite file and, with
//! `OBJECTOS_TEST_POSTGRES_URL`, on a fresh PostgreSQL schema. Prints one JSON line per
//! database.

// A measuring program, like a test: a failed step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use objectos_data::{DataConfig, DataPlugin, OpContext};
use objectos_kernel::Kernel;
use objectos_kernel::contracts::EmailRequest;
use objectos_notification::config::{Security, Transport};
use objectos_notification::{NotificationPlugin, NotificationSettings};
use objectos_spec::query::Filter;
use objectos_testkit::TestDatabase;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const LATENCY_MAILS: usize = 2_000;
const THROUGHPUT_MAILS: usize = 5_000;

/// A minimal SMTP server that accepts every message and counts them.
async fn smtp_sink(received: Arc<AtomicUsize>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let received = received.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r);
                w.write_all(b"220 sink ESMTP\r\n").await.ok();
                let mut line = String::new();
                let mut in_data = false;
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            received.fetch_add(1, Ordering::Relaxed);
                            w.write_all(b"250 OK queued\r\n").await.ok();
                        }
                        continue;
                    }
                    let cmd = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match cmd.as_str() {
                        "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            w.write_all(b"221 bye\r\n").await.ok();
                            return;
                        }
                        _ => b"250 OK\r\n",
                    };
                    if w.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn mail(n: usize) -> EmailRequest {
    EmailRequest {
        to: vec![format!("user{n}@example.com")],
        subject: format!("Invoice {n}"),
        text: Some("Your invoice is attached.".into()),
        html: Some("<p>Your invoice is attached.</p>".into()),
        tenant: Some("org1".into()),
        ..EmailRequest::default()
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    (sorted[i] * 1000.0).round() / 1000.0
}

async fn run(label: &str, db: TestDatabase) -> serde_json::Value {
    let received = Arc::new(AtomicUsize::new(0));
    let port = smtp_sink(received.clone()).await;
    let mut settings = NotificationSettings::default();
    settings.email.transport = Transport::Smtp;
    settings.email.smtp.host = "127.0.0.1".into();
    settings.email.smtp.port = Some(port);
    settings.email.smtp.security = Security::None;
    settings.email.from = "Bench <bench@example.com>".into();
    let dir = tempfile::tempdir().unwrap();
    let data = DataPlugin::new(DataConfig {
        database_url: db.url.clone(),
        metadata_dirs: vec![dir.path().to_path_buf()],
        include_base: false,
        max_connections: 16,
        auto_migrate: true,
        owned: Vec::new(),
    });
    let handle = data.handle();
    let plugin = NotificationPlugin::new(settings);
    let cell = plugin.service_cell();
    let kernel = Arc::new(
        Kernel::builder()
            .plugin(data)
            .plugin(plugin)
            .build()
            .unwrap(),
    );
    let report = kernel.boot().await.unwrap();
    assert!(report.all_started(), "{report:?}");
    let service = cell.get().unwrap().clone();
    let engine = handle.engine().unwrap().clone();
    let mut cx = OpContext::system("bench");
    cx.tenant = Some("org1".into());
    let sent = |engine: objectos_data::DataEngine, cx: OpContext| async move {
        engine
            .count(&cx, "sys_email", Filter::eq("status", "sent"))
            .await
            .unwrap()
    };

    // Warm-up, then the request-path latency of one enqueue at a time. Deliveries run in the
    // background meanwhile, as they would behind real requests.
    for n in 0..200 {
        service.queue_email(mail(n)).await.unwrap();
    }
    let mut lat = Vec::with_capacity(LATENCY_MAILS);
    for n in 0..LATENCY_MAILS {
        let t = Instant::now();
        service.queue_email(mail(n)).await.unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let before = 200 + LATENCY_MAILS;
    let deadline = Instant::now() + Duration::from_secs(300);
    while (sent(engine.clone(), cx.clone()).await as usize) < before {
        assert!(
            Instant::now() < deadline,
            "the warm-up mails were not all sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Throughput: mails queued by 32 concurrent callers, until the last one is sent.
    let start = Instant::now();
    let sink_before = received.load(Ordering::Relaxed);
    let next = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..32)
        .map(|_| {
            let service = service.clone();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= THROUGHPUT_MAILS {
                        return;
                    }
                    service.queue_email(mail(n)).await.unwrap();
                }
            })
        })
        .collect();
    for c in callers {
        c.await.unwrap();
    }
    let queued_secs = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(600);
    while (sent(engine.clone(), cx.clone()).await as usize) < before + THROUGHPUT_MAILS {
        assert!(Instant::now() < deadline, "the mails were not all sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let delivered = received.load(Ordering::Relaxed) - sink_before;
    lat.sort_by(f64::total_cmp);
    let row = json!({
        "database": label,
        "latencyMails": LATENCY_MAILS,
        "enqueueP50Ms": pct(&lat, 0.50),
        "enqueueP99Ms": pct(&lat, 0.99),
        "mails": THROUGHPUT_MAILS,
        "received": delivered,
        "queuedPerSec": (THROUGHPUT_MAILS as f64 / queued_secs).round(),
        "sentPerSec": (THROUGHPUT_MAILS as f64 / secs).round(),
    });
    kernel.shutdown().await;
    drop(engine);
    db.cleanup().await;
    row
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    println!("{}", run("SQLite file", TestDatabase::sqlite_file()).await);
    if let Some(db) = TestDatabase::postgres("notifbench").await {
        println!("{}", run("PostgreSQL", db).await);
    }
}
