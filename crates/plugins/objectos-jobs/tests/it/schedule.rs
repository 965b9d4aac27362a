//! `*.job.yml` schedules: refused at load when broken (file and YAML path), unknown handlers
//! reported after start, and each tick run once across two nodes on one database.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use objectos_data::{DataConfig, DataEngine};
use objectos_kernel::contracts::{JobFilter, handler_fn};
use parking_lot::Mutex;

use crate::support::{Harness, Options, fast_settings};

#[tokio::test]
async fn broken_job_files_are_refused_with_file_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("metadata");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(
        meta.join("nightly.job.yml"),
        "name: nightly\nschedule: '61 * * * *'\nhandler: reports.build\n",
    )
    .unwrap();
    std::fs::write(
        meta.join("berlin.job.yml"),
        "name: berlin\nschedule:\n  type: cron\n  expression: '0 3 * * *'\n  timezone: Europe/Atlantis\nhandler: reports.build\n",
    )
    .unwrap();
    std::fs::write(
        meta.join("often.job.yml"),
        "name: often\nschedule:\n  type: interval\n  intervalMs: 10\nhandler: reports.build\n",
    )
    .unwrap();
    let db = objectos_testkit::TestDatabase::sqlite_file();
    let opened = DataEngine::open(DataConfig {
        database_url: db.url.clone(),
        metadata_dirs: vec![meta],
        include_base: false,
        max_connections: 2,
        auto_migrate: true,
        owned: vec![objectos_jobs::schema().owned_by(objectos_jobs::PLUGIN_ID)],
    })
    .await;
    let Err(err) = opened else {
        panic!("broken job files must be refused");
    };
    let text = err.to_string();
    assert!(text.contains("nightly.job.yml"), "{text}");
    assert!(
        text.contains("invalid cron expression `61 * * * *`"),
        "{text}"
    );
    assert!(text.contains("berlin.job.yml"), "{text}");
    assert!(text.contains("schedule.timezone"), "{text}");
    assert!(text.contains("Europe/Atlantis"), "{text}");
    assert!(text.contains("often.job.yml"), "{text}");
    assert!(text.contains("schedule.intervalMs"), "{text}");
    db.cleanup().await;
}

#[tokio::test]
async fn unknown_handlers_are_reported_with_the_file() {
    let db = objectos_testkit::TestDatabase::sqlite_file();
    let h = Harness::boot(
        &db.url,
        Options {
            files: vec![(
                "cleanup.job.yml".into(),
                "name: cleanup\nschedule: '*/5 * * * *'\nhandler: no.such.handler\n".into(),
            )],
            ..Options::default()
        },
    )
    .await;
    let problems = h.service.check_schedules();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("cleanup.job.yml"), "{}", problems[0]);
    assert!(problems[0].contains("handler: no plugin registers a job handler `no.such.handler`"));
    h.stop().await;
    db.cleanup().await;
}

const EVERY_SECOND: &str = "\
name: heartbeat
label: Heartbeat
schedule:
  type: interval
  intervalMs: 1000
handler: test.tick
retryPolicy:
  maxRetries: 0
";

/// Two nodes with the same schedule on one database: every tick runs exactly once; when the
/// leading node stops, the other takes over.
async fn tick_runs_once_across_two_nodes(url: &str) {
    let seen: Arc<Mutex<BTreeMap<i64, usize>>> = Arc::default();
    let node = |seen: Arc<Mutex<BTreeMap<i64, usize>>>| Options {
        settings: fast_settings(),
        handlers: vec![(
            "test.tick".into(),
            handler_fn(move |cx| {
                let seen = seen.clone();
                async move {
                    let tick = cx.payload["tick"].as_i64().unwrap_or(-1);
                    *seen.lock().entry(tick).or_default() += 1;
                    Ok(())
                }
            }),
        )],
        files: vec![("heartbeat.job.yml".into(), EVERY_SECOND.into())],
        ..Options::default()
    };
    let a = Harness::boot(url, node(seen.clone())).await;
    let b = Harness::boot(url, node(seen.clone())).await;
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    // Stop one node (the leader or not): the other goes on ticking.
    a.stop().await;
    let before = seen.lock().len();
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let after = seen.lock().clone();
    assert!(before >= 2, "ticks before the stop: {after:?}");
    assert!(
        after.len() >= before + 2,
        "ticks went on after the stop: {after:?}"
    );
    assert!(
        after.values().all(|n| *n == 1),
        "a tick ran twice: {after:?}"
    );
    let jobs = b.queue.list(JobFilter::default()).await.unwrap();
    assert!(
        jobs.items
            .iter()
            .all(|j| j.schedule.as_deref() == Some("heartbeat"))
    );
    b.stop().await;
}
on_both!(tick_runs_once_across_two_nodes);
