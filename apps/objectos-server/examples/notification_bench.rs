//! The notification benchmark (`cargo xtask bench notifications` runs it in a release build):
//! the notification plugin with the jobs plugin, as the server runs them (a send writes the
//! `sys_email` record, its contents and its `notification.deliver` job in one transaction; the
//! jobs plugin's workers deliver to a local SMTP sink), on a SQLite file and, with
//! `OBJECTOS_TEST_POSTGRES_URL`, on a fresh PostgreSQL schema. It lives in the server package
//! because only the server may link two plugins. Prints one JSON line per database.
//!
//! Figures, all of `queue_email` (check, render, the one transaction, the hand-over to the
//! queue's workers), with deliveries running in the background as they would behind requests:
//! - `offered`: an open loop at a fixed offered rate (`OBJECTOS_NOTIFICATION_BENCH_RATE`, mails
//!   per second, default 200) below saturation; each send starts at its scheduled time whatever
//!   the earlier ones do, and its latency counts from that time (a late start counts against it).
//!   This is the request-path figure: a server answering requests at that rate.
//! - `serial`: one send at a time, the next as soon as the previous returned.
//! - `saturated`: 32 callers sending back to back; the latency there is mostly waiting behind
//!   the other callers, so it measures queueing, not the cost of a send. Its throughput, and the
//!   rate at which the mails reach the SMTP sink, are the throughput figures.
//!
//! `OBJECTOS_NOTIFICATION_BENCH_JOBS=0` runs without the jobs plugin (the notification plugin
//! then delivers in its own tasks), for comparison.

// A measuring program, like a test: a failed step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The server package builds without these plugins too (`--no-default-features`).
#[cfg(all(feature = "plugin-jobs", feature = "plugin-notification"))]
use bench::main;

#[cfg(not(all(feature = "plugin-jobs", feature = "plugin-notification")))]
fn main() {
    eprintln!(
        "notification_bench needs the plugin-jobs and plugin-notification features (default)"
    );
    std::process::exit(2);
}

#[cfg(all(feature = "plugin-jobs", feature = "plugin-notification"))]
mod bench {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use objectos_data::{DataConfig, DataPlugin, OpContext};
    use objectos_jobs::{JobsPlugin, JobsSettings};
    use objectos_kernel::Kernel;
    use objectos_kernel::contracts::EmailRequest;
    use objectos_notification::config::{Security, Transport};
    use objectos_notification::{NotificationPlugin, NotificationService, NotificationSettings};
    use objectos_spec::query::Filter;
    use objectos_testkit::TestDatabase;
    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    const WARM_UP: usize = 200;
    const SERIAL_MAILS: usize = 2_000;
    const OFFERED_MAILS: usize = 3_000;
    const THROUGHPUT_MAILS: usize = 5_000;
    const CALLERS: usize = 32;

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

    /// p50, p99 and max of `lat` (milliseconds), rounded to microseconds.
    fn percentiles(mut lat: Vec<f64>) -> serde_json::Value {
        lat.sort_by(f64::total_cmp);
        let at = |p: f64| {
            let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
            (lat[i] * 1000.0).round() / 1000.0
        };
        json!({"p50": at(0.50), "p99": at(0.99), "max": at(1.0)})
    }

    fn env_flag(name: &str, default: bool) -> bool {
        std::env::var(name)
            .ok()
            .map_or(default, |v| !matches!(v.as_str(), "0" | "false" | "no"))
    }

    async fn wait_sent(engine: &objectos_data::DataEngine, n: usize, what: &str) {
        let mut cx = OpContext::system("bench");
        cx.tenant = Some("org1".into());
        let deadline = Instant::now() + Duration::from_secs(600);
        while (engine
            .count(&cx, "sys_email", Filter::eq("status", "sent"))
            .await
            .unwrap() as usize)
            < n
        {
            assert!(
                Instant::now() < deadline,
                "{what}: the mails were not all sent"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The open loop: `count` sends at `rate` per second, each timed from its scheduled start.
    async fn offered(service: &NotificationService, rate: f64, count: usize) -> Vec<f64> {
        let start = tokio::time::Instant::now() + Duration::from_millis(10);
        let gap = Duration::from_secs_f64(1.0 / rate);
        let mut sends = Vec::with_capacity(count);
        for n in 0..count {
            let at = start + gap * n as u32;
            tokio::time::sleep_until(at).await;
            let service = service.clone();
            sends.push(tokio::spawn(async move {
                service.queue_email(mail(n)).await.unwrap();
                at.elapsed().as_secs_f64() * 1000.0
            }));
        }
        let mut lat = Vec::with_capacity(count);
        for s in sends {
            lat.push(s.await.unwrap());
        }
        lat
    }

    async fn run(label: &str, db: TestDatabase, with_jobs: bool, rate: f64) -> serde_json::Value {
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
        let mut builder = Kernel::builder().plugin(data);
        if with_jobs {
            // As shipped (16 workers a queue, batched claims).
            builder = builder.plugin(JobsPlugin::new(JobsSettings::default()));
        }
        let kernel = Arc::new(builder.plugin(plugin).build().unwrap());
        let report = kernel.boot().await.unwrap();
        assert!(report.all_started(), "{report:?}");
        let service = cell.get().unwrap().clone();
        assert_eq!(service.uses_job_queue(), with_jobs);
        let engine = handle.engine().unwrap().clone();

        for n in 0..WARM_UP {
            service.queue_email(mail(n)).await.unwrap();
        }
        wait_sent(&engine, WARM_UP, "warm-up").await;
        let mut total = WARM_UP;

        // Below saturation: the request-path figure.
        let offered_lat = offered(&service, rate, OFFERED_MAILS).await;
        total += OFFERED_MAILS;
        wait_sent(&engine, total, "offered").await;

        // One at a time, deliveries of the earlier ones running meanwhile.
        let mut serial = Vec::with_capacity(SERIAL_MAILS);
        for n in 0..SERIAL_MAILS {
            let t = Instant::now();
            service.queue_email(mail(n)).await.unwrap();
            serial.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        total += SERIAL_MAILS;
        wait_sent(&engine, total, "serial").await;

        // Saturation: 32 callers back to back, until the last mail is sent.
        let start = Instant::now();
        let sink_before = received.load(Ordering::Relaxed);
        let next = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let service = service.clone();
                let next = next.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= THROUGHPUT_MAILS {
                            return lat;
                        }
                        let t = Instant::now();
                        service.queue_email(mail(n)).await.unwrap();
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                })
            })
            .collect();
        let mut saturated = Vec::with_capacity(THROUGHPUT_MAILS);
        for c in callers {
            saturated.extend(c.await.unwrap());
        }
        let queued_secs = start.elapsed().as_secs_f64();
        total += THROUGHPUT_MAILS;
        wait_sent(&engine, total, "throughput").await;
        let secs = start.elapsed().as_secs_f64();
        let delivered = received.load(Ordering::Relaxed) - sink_before;
        assert!(delivered >= THROUGHPUT_MAILS, "the sink got {delivered}");
        let row = json!({
            "database": label,
            "jobs": with_jobs,
            "offeredRate": rate,
            "offeredMails": OFFERED_MAILS,
            "offered": percentiles(offered_lat),
            "serialMails": SERIAL_MAILS,
            "serial": percentiles(serial),
            "callers": CALLERS,
            "mails": THROUGHPUT_MAILS,
            "saturated": percentiles(saturated),
            "queuedPerSec": (THROUGHPUT_MAILS as f64 / queued_secs).round(),
            "sentPerSec": (THROUGHPUT_MAILS as f64 / secs).round(),
        });
        kernel.shutdown().await;
        drop(engine);
        db.cleanup().await;
        row
    }

    #[tokio::main(flavor = "multi_thread")]
    pub(crate) async fn main() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let with_jobs = env_flag("OBJECTOS_NOTIFICATION_BENCH_JOBS", true);
        let rate: f64 = std::env::var("OBJECTOS_NOTIFICATION_BENCH_RATE")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|r: &f64| *r > 0.0)
            .unwrap_or(200.0);
        let only = std::env::var("OBJECTOS_NOTIFICATION_BENCH_ONLY").unwrap_or_default();
        if only.is_empty() || only == "sqlite" {
            println!(
                "{}",
                run("SQLite file", TestDatabase::sqlite_file(), with_jobs, rate).await
            );
        }
        if (only.is_empty() || only == "postgres")
            && let Some(db) = TestDatabase::postgres("notifbench").await
        {
            println!("{}", run("PostgreSQL", db, with_jobs, rate).await);
        }
    }
}
