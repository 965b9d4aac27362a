//! The queue's semantics: retries with backoff, timeouts, cancellation, dead letters and
//! replay, idempotency keys, priorities and concurrency limits, transactional enqueue, lease
//! expiry.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use objectos_data::OpContext;
use objectos_jobs::table::{JobTable, now_ms};
use objectos_kernel::contracts::{
    EnqueueRequest, JobError, JobFailure, JobFilter, JobStatus, RetryPolicy, handler_fn,
};
use parking_lot::Mutex;
use serde_json::json;

use crate::support::{Harness, Options, fast_settings};

fn policy(max_attempts: u32, backoff_ms: u64) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        backoff: Duration::from_millis(backoff_ms),
        multiplier: 2.0,
        max_delay: Duration::from_secs(10),
        jitter: false,
    }
}

/// Options with one handler, `name`, that succeeds and counts its runs.
fn counting(name: &str) -> (Arc<AtomicUsize>, Options) {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let handler = handler_fn(move |_| {
        let r = r.clone();
        async move {
            r.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    (runs, Options::handlers(vec![(name.to_owned(), handler)]))
}

/// Fails twice (retryably), then succeeds: three attempts, the gaps growing with the backoff;
/// with two attempts allowed the job is dead-lettered, and a replay runs it to completion.
async fn retry_backoff_dead_letter_replay(url: &str) {
    let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let s = starts.clone();
    let h = Harness::boot(
        url,
        Options::handlers(vec![(
            "flaky".into(),
            handler_fn(move |cx| {
                let s = s.clone();
                async move {
                    s.lock().push(Instant::now());
                    if cx.attempt < 3 {
                        Err(JobFailure::retry(format!("attempt {} failed", cx.attempt)))
                    } else {
                        Ok(())
                    }
                }
            }),
        )]),
    )
    .await;
    let id = h
        .enqueue(EnqueueRequest {
            retry: Some(policy(3, 200)),
            ..EnqueueRequest::new("flaky", json!({"n": 1}))
        })
        .await;
    let info = h.wait_status(&id, JobStatus::Completed).await;
    assert_eq!(info.attempts, 3);
    let t = starts.lock().clone();
    assert_eq!(t.len(), 3);
    assert!(
        t[1] - t[0] >= Duration::from_millis(200),
        "{:?}",
        t[1] - t[0]
    );
    assert!(
        t[2] - t[1] >= Duration::from_millis(400),
        "{:?}",
        t[2] - t[1]
    );

    // Two attempts only: dead after the second failure, with the last error kept.
    starts.lock().clear();
    let id = h
        .enqueue(EnqueueRequest {
            retry: Some(policy(2, 50)),
            ..EnqueueRequest::new("flaky", json!({"n": 2}))
        })
        .await;
    let dead = h.wait_status(&id, JobStatus::Dead).await;
    assert_eq!(dead.attempts, 2);
    assert_eq!(dead.error.as_deref(), Some("attempt 2 failed"));
    let letters = h.queue.dead_letters(10, 0).await.unwrap();
    assert!(letters.items.iter().any(|j| j.id == id));
    // Retrying or replaying is refused for a job that is not dead / failed.
    let done = h
        .queue
        .list(JobFilter {
            status: Some(JobStatus::Completed),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert!(matches!(
        h.queue.replay(&done.items[0].id).await,
        Err(JobError::InvalidState {
            status: JobStatus::Completed,
            ..
        })
    ));
    // Replay: fresh attempts; this handler fails attempts 1 and 2 again, so give it room.
    h.queue.replay(&id).await.unwrap();
    let info = h.wait_status(&id, JobStatus::Dead).await;
    assert_eq!(info.attempts, 2, "a replay starts counting again");
    h.stop().await;
}
on_both!(retry_backoff_dead_letter_replay);

/// A fatal failure is dead-lettered at once, whatever attempts remain.
async fn fatal_failure_is_not_retried(url: &str) {
    let h = Harness::boot(
        url,
        Options::handlers(vec![(
            "bad".into(),
            handler_fn(|_| async { Err(JobFailure::fatal("malformed payload")) }),
        )]),
    )
    .await;
    let id = h
        .enqueue(EnqueueRequest {
            retry: Some(policy(5, 10)),
            ..EnqueueRequest::new("bad", json!(null))
        })
        .await;
    let info = h.wait_status(&id, JobStatus::Dead).await;
    assert_eq!(info.attempts, 1);
    assert_eq!(info.error.as_deref(), Some("malformed payload"));
    h.stop().await;
}
on_both!(fatal_failure_is_not_retried);

/// An attempt over its time limit is stopped (its cancel flag set) and counts as a retryable
/// failure.
async fn timeout_stops_the_attempt(url: &str) {
    let saw_cancel = Arc::new(AtomicUsize::new(0));
    let seen = saw_cancel.clone();
    let h = Harness::boot(
        url,
        Options::handlers(vec![(
            "slow".into(),
            handler_fn(move |cx| {
                let seen = seen.clone();
                async move {
                    // A cooperative handler: watches its flag in a task of its own.
                    let flag = cx.cancel.clone();
                    tokio::spawn(async move {
                        flag.cancelled().await;
                        seen.fetch_add(1, Ordering::SeqCst);
                    });
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(())
                }
            }),
        )]),
    )
    .await;
    let started = Instant::now();
    let id = h
        .enqueue(EnqueueRequest {
            retry: Some(policy(2, 10)),
            timeout: Some(Duration::from_millis(200)),
            ..EnqueueRequest::new("slow", json!(null))
        })
        .await;
    let info = h.wait_status(&id, JobStatus::Dead).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(info.attempts, 2);
    assert_eq!(info.error.as_deref(), Some("timed out after 200 ms"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(saw_cancel.load(Ordering::SeqCst), 2);
    h.stop().await;
}
on_both!(timeout_stops_the_attempt);

/// Cancelling a waiting job, a running job (its handler sees the flag), and refusing to cancel
/// a finished one.
async fn cancel_waiting_and_running(url: &str) {
    let h = Harness::boot(
        url,
        Options::handlers(vec![
            (
                "wait".into(),
                handler_fn(|cx| async move {
                    cx.cancel.cancelled().await;
                    Ok(())
                }),
            ),
            ("noop".into(), handler_fn(|_| async { Ok(()) })),
        ]),
    )
    .await;
    // Waiting (delayed an hour).
    let later = h
        .enqueue(EnqueueRequest {
            delay: Some(Duration::from_secs(3600)),
            ..EnqueueRequest::new("noop", json!(null))
        })
        .await;
    assert_eq!(
        h.queue.get(&later).await.unwrap().unwrap().status,
        JobStatus::Scheduled
    );
    let c = h.queue.cancel(&later).await.unwrap();
    assert_eq!(c.status, JobStatus::Cancelled);
    // Running.
    let running = h.enqueue(EnqueueRequest::new("wait", json!(null))).await;
    h.wait_status(&running, JobStatus::Running).await;
    let c = h.queue.cancel(&running).await.unwrap();
    assert!(c.cancel_requested);
    let info = h.wait_status(&running, JobStatus::Cancelled).await;
    assert_eq!(info.attempts, 1);
    // Finished: 409-worthy.
    let done = h.enqueue(EnqueueRequest::new("noop", json!(null))).await;
    h.wait_status(&done, JobStatus::Completed).await;
    assert!(matches!(
        h.queue.cancel(&done).await,
        Err(JobError::InvalidState {
            status: JobStatus::Completed,
            ..
        })
    ));
    assert!(matches!(
        h.queue.cancel("nope").await,
        Err(JobError::NotFound(_))
    ));
    // A cancelled job can be retried.
    h.queue.retry(&later).await.unwrap();
    h.wait_status(&later, JobStatus::Completed).await;
    h.stop().await;
}
on_both!(cancel_waiting_and_running);

/// A second enqueue with the key of a pending job returns the first id and writes nothing;
/// after the first finished, the key is free again. Unknown handlers are refused.
async fn idempotency_keys(url: &str) {
    let (runs, options) = counting("count");
    let h = Harness::boot(url, options).await;
    let req = || EnqueueRequest {
        idempotency_key: Some("invoice-42".into()),
        delay: Some(Duration::from_millis(300)),
        ..EnqueueRequest::new("count", json!(null))
    };
    let first = h.queue.enqueue(req()).await.unwrap();
    assert!(first.created);
    let second = h.queue.enqueue(req()).await.unwrap();
    assert!(!second.created);
    assert_eq!(first.id, second.id);
    h.wait_status(&first.id, JobStatus::Completed).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let total = h.queue.list(JobFilter::default()).await.unwrap().total;
    assert_eq!(total, 1, "the second enqueue wrote nothing");
    // Finished: the key is free.
    let third = h.queue.enqueue(req()).await.unwrap();
    assert!(third.created);
    assert_ne!(third.id, first.id);
    h.wait_status(&third.id, JobStatus::Completed).await;
    // Unknown handler: refused, nothing written.
    assert!(matches!(
        h.queue
            .enqueue(EnqueueRequest::new("no.such.handler", json!(null)))
            .await,
        Err(JobError::UnknownHandler(_))
    ));
    assert_eq!(h.queue.list(JobFilter::default()).await.unwrap().total, 2);
    h.stop().await;
}
on_both!(idempotency_keys);

/// A key belongs to its organization: two organizations enqueuing with the same key get a job
/// each, as do system jobs (no organization); again in the same scope, `created: false` and
/// the first job. Cancelling A's job frees A's key only.
async fn idempotency_keys_are_per_organization(url: &str) {
    let h = Harness::boot(
        url,
        Options::handlers(vec![("noop".into(), handler_fn(|_| async { Ok(()) }))]),
    )
    .await;
    let req = |org: Option<&str>| EnqueueRequest {
        idempotency_key: Some("invoice-42".into()),
        organization_id: org.map(str::to_owned),
        delay: Some(Duration::from_secs(3600)),
        ..EnqueueRequest::new("noop", json!({ "org": org }))
    };
    let scopes = [Some("org-a"), Some("org-b"), None];
    let mut firsts = Vec::new();
    for org in scopes {
        let first = h.queue.enqueue(req(org)).await.unwrap();
        assert!(first.created, "{org:?}");
        firsts.push(first.id);
    }
    assert_eq!(firsts.len(), 3);
    assert!(firsts[0] != firsts[1] && firsts[1] != firsts[2] && firsts[0] != firsts[2]);
    for (org, first) in scopes.iter().zip(&firsts) {
        let again = h.queue.enqueue(req(*org)).await.unwrap();
        assert!(!again.created, "{org:?}");
        assert_eq!(&again.id, first, "{org:?}");
        let info = h.queue.get(first).await.unwrap().unwrap();
        assert_eq!(info.organization_id.as_deref(), *org);
        assert_eq!(info.payload, json!({ "org": org }));
    }
    // The same through a write transaction (the path record interceptors take).
    let in_tx = h
        .queue
        .enqueue_in(&h.engine.writer(), req(Some("org-b")))
        .await
        .unwrap();
    assert!(!in_tx.created);
    assert_eq!(in_tx.id, firsts[1]);
    assert_eq!(h.queue.list(JobFilter::default()).await.unwrap().total, 3);

    // A's job cancelled: A's key is free, B's and the system's are still held.
    h.queue.cancel(&firsts[0]).await.unwrap();
    let a_again = h.queue.enqueue(req(Some("org-a"))).await.unwrap();
    assert!(a_again.created);
    assert!(!firsts.contains(&a_again.id));
    for (org, first) in scopes[1..].iter().zip(&firsts[1..]) {
        let again = h.queue.enqueue(req(*org)).await.unwrap();
        assert!(!again.created, "{org:?}");
        assert_eq!(&again.id, first, "{org:?}");
    }
    h.stop().await;
}
on_both!(idempotency_keys_are_per_organization);

/// A queue limited to one worker never runs two jobs at once; among due jobs the higher
/// priority runs first.
async fn priorities_and_concurrency(url: &str) {
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let order: Arc<Mutex<Vec<i64>>> = Arc::default();
    let (a, p, o) = (active.clone(), peak.clone(), order.clone());
    let mut settings = fast_settings();
    settings
        .queues
        .insert("narrow".into(), objectos_jobs::QueueSettings { workers: 1 });
    let h = Harness::boot(
        url,
        Options {
            settings,
            handlers: vec![(
                "track".into(),
                handler_fn(move |cx| {
                    let (a, p, o) = (a.clone(), p.clone(), o.clone());
                    async move {
                        let now = a.fetch_add(1, Ordering::SeqCst) + 1;
                        p.fetch_max(now, Ordering::SeqCst);
                        o.lock().push(cx.payload["p"].as_i64().unwrap_or(0));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        a.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    }
                }),
            )],
            ..Options::default()
        },
    )
    .await;
    // All become due together (same run_at), so the order is by priority alone.
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(400);
    let mut ids = Vec::new();
    for p in [1, 5, 3, 9, 7] {
        ids.push(
            h.enqueue(EnqueueRequest {
                queue: Some("narrow".into()),
                priority: p,
                run_at: Some(at),
                ..EnqueueRequest::new("track", json!({"p": p}))
            })
            .await,
        );
    }
    for id in &ids {
        h.wait_status(id, JobStatus::Completed).await;
    }
    assert_eq!(peak.load(Ordering::SeqCst), 1);
    assert_eq!(*order.lock(), vec![9, 7, 5, 3, 1]);
    h.stop().await;
}
on_both!(priorities_and_concurrency);

/// Enqueued inside a record write's transaction: the job exists iff the record commits.
async fn transactional_enqueue(url: &str) {
    let h = Harness::boot(
        url,
        Options::handlers(vec![(
            "test.order".into(),
            handler_fn(|_| async { Ok(()) }),
        )]),
    )
    .await;
    let cx = OpContext::system("test");
    let ok = h
        .engine
        .create(
            &cx,
            "order",
            json!({"name": "ok"}).as_object().unwrap().clone(),
        )
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    let failed = h
        .engine
        .create(
            &cx,
            "order",
            json!({"name": "FAIL"}).as_object().unwrap().clone(),
        )
        .await;
    assert!(failed.is_err());
    let jobs = h.queue.list(JobFilter::default()).await.unwrap();
    assert_eq!(jobs.total, 1, "{jobs:?}");
    assert_eq!(jobs.items[0].payload, json!({"name": "ok"}));
    h.wait_status(&jobs.items[0].id, JobStatus::Completed).await;
    h.stop().await;
}
on_both!(transactional_enqueue);

/// A job claimed by a worker that vanished (its lease never renewed) comes back after the
/// lease and completes here; its attempt counts.
async fn lease_expiry_redelivers(url: &str) {
    let (runs, options) = counting("once");
    let h = Harness::boot(url, options).await;
    // A queue this node has no workers for yet, so only the vanished worker claims it.
    let table = JobTable::new(h.engine.clone());
    let job = objectos_jobs::table::NewJob {
        id: objectos_jobs::service::new_id(),
        handler: "once".into(),
        queue: "orphans".into(),
        priority: 0,
        payload: "{}".into(),
        retry: policy(3, 10),
        timeout_ms: 0,
        idempotency_key: None,
        schedule: None,
        run_at_ms: now_ms(),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        organization_id: Some("org-a".into()),
    };
    table
        .insert_rows(&h.engine.writer(), std::slice::from_ref(&job))
        .await
        .unwrap();
    let claimed = table
        .claim("orphans", 10, "crashed-node/0", now_ms() + 300)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // The enqueuer's trace context comes back with every claim of the row.
    assert_eq!(claimed[0].traceparent, job.traceparent);
    assert_eq!(
        h.queue.get(&job.id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    let info = h.wait_status(&job.id, JobStatus::Completed).await;
    assert_eq!(info.attempts, 2, "the vanished worker's attempt counts");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // The vanished worker cannot record anything any more.
    assert_eq!(
        table
            .complete("crashed-node/0", &[(job.id.clone(), false)])
            .await
            .unwrap(),
        0
    );
    h.stop().await;
}
on_both!(lease_expiry_redelivers);

/// Many jobs through batched claims and completions all complete, once each.
async fn many_jobs_complete_once(url: &str) {
    let (runs, options) = counting("noop");
    let h = Harness::boot(url, options).await;
    let ids = h
        .service
        .enqueue_many(
            (0..2000)
                .map(|i| EnqueueRequest::new("noop", json!({"i": i})))
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 2000);
    for _ in 0..500 {
        let counts = h.queue.counts().await.unwrap();
        if counts.get("completed").copied() == Some(2000) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let counts = h.queue.counts().await.unwrap();
    assert_eq!(counts.get("completed").copied(), Some(2000), "{counts:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 2000);
    h.stop().await;
}
on_both!(many_jobs_complete_once);

/// The indexes of the job table, sorted (SQLite's automatic primary-key index shown as
/// `pkey`, PostgreSQL's named `sys_job_run_pkey`).
async fn job_table_indexes(engine: &objectos_data::DataEngine) -> Vec<String> {
    use objectos_data::store::Store;
    let text = match engine.dialect() {
        objectos_data::Dialect::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
        }
        objectos_data::Dialect::Postgres => {
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ?"
        }
    };
    let sql = objectos_data::store::Sql::with(engine.dialect(), text, vec!["sys_job_run".into()])
        .unwrap();
    let mut out: Vec<String> = engine
        .pool()
        .fetch_all(sql)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let name = r.get::<String>(0).unwrap();
            if name.starts_with("sqlite_autoindex_") || name.ends_with("_pkey") {
                "pkey".to_owned()
            } else {
                name
            }
        })
        .collect();
    out.sort();
    out
}

/// The job table goes without the system-field indexes no query of the plugin uses
/// (`schema::UNINDEXED_SYSTEM_FIELDS`): a database the previous release created loses them at
/// the next start, its jobs kept, and keeps the primary key, the claim and due-time indexes
/// and `organization_id`'s (organization administrators' lists).
async fn job_table_indexes_are_lean(url: &str) {
    use objectos_data::store::Store;
    // What the previous release declared for the table: the object and its fillfactor.
    let previous = objectos_data::PluginSchema::new()
        .object(
            "objects/sys_job_run.object.yml",
            include_str!("../../objects/sys_job_run.object.yml"),
        )
        .storage(
            objectos_data::TableStorage::new(objectos_jobs::schema::OBJECT)
                .fillfactor(objectos_jobs::schema::JOB_FILLFACTOR),
        )
        .owned_by(objectos_jobs::PLUGIN_ID);
    let engine = objectos_data::DataEngine::open(objectos_data::DataConfig {
        database_url: url.to_owned(),
        metadata_dirs: Vec::new(),
        include_base: false,
        max_connections: 2,
        auto_migrate: true,
        owned: vec![previous],
    })
    .await
    .unwrap();
    let before = job_table_indexes(&engine).await;
    eprintln!("{:?} before: {before:?}", engine.dialect());
    assert_eq!(
        before,
        [
            "ix_sys_job_run_created_at",
            "ix_sys_job_run_organization_id",
            "ix_sys_job_run_owner_id",
            "ix_sys_job_run_queue_status_priority_rank_run_at_ms",
            "ix_sys_job_run_status_run_at_ms",
            "ix_sys_job_run_updated_at",
            "pkey",
        ]
    );
    let w = engine.writer();
    let insert = objectos_data::store::Sql::with(
        w.dialect(),
        "INSERT INTO \"sys_job_run\" (\"id\", \"handler\", \"queue\", \"status\") VALUES (?, ?, ?, ?)",
        vec![
            "old-job".into(),
            "noop".into(),
            "default".into(),
            "completed".into(),
        ],
    )
    .unwrap();
    assert_eq!(w.execute(insert).await.unwrap(), 1);
    drop(engine);

    let h = Harness::boot(url, Options::default()).await;
    let after = job_table_indexes(&h.engine).await;
    eprintln!("{:?} after: {after:?}", h.engine.dialect());
    assert_eq!(
        after,
        [
            "ix_sys_job_run_organization_id",
            "ix_sys_job_run_queue_status_priority_rank_run_at_ms",
            "ix_sys_job_run_status_run_at_ms",
            "pkey",
        ]
    );
    let kept = objectos_data::store::Sql::with(
        h.engine.dialect(),
        "SELECT COUNT(*) FROM \"sys_job_run\" WHERE \"id\" = ?",
        vec!["old-job".into()],
    )
    .unwrap();
    let row = h.engine.pool().fetch_optional(kept).await.unwrap().unwrap();
    assert_eq!(row.get::<i64>(0).unwrap(), 1);
    assert!(h.engine.plan_migration().await.unwrap().is_empty());
    h.stop().await;
}
on_both!(job_table_indexes_are_lean);
