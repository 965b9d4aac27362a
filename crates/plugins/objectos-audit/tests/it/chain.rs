//! Tamper evidence and retention: verification finds the first broken link; pruning moves the
//! anchor so the rest still verifies.

use serde_json::json;

use crate::support::{Harness, all_events, rec, user_cx};

async fn make_events(h: &Harness, n: usize) {
    let cx = user_cx("alice");
    for i in 0..n {
        h.engine
            .create(&cx, "task", rec(json!({"title": format!("t{i}")})))
            .await
            .unwrap();
    }
}

async fn tamper_scenario(h: &Harness) {
    make_events(h, 5).await;
    let report = h.store.verify(None).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.tenants, report.events), (1, 5));
    let events = all_events(h).await;
    for w in events.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash);
    }
    assert_eq!(events[0].prev_hash, objectos_audit::GENESIS_HASH);

    // Edit one column of row 3 with raw SQL: the hash no longer matches at seq 3.
    let n = h
        .raw("UPDATE _objectos_audit_event SET actor_id = 'mallory' WHERE seq = 3")
        .await;
    assert_eq!(n, 1);
    let report = h.store.verify(None).await.unwrap();
    assert_eq!(report.broken.len(), 1, "{report:?}");
    let b = &report.broken[0];
    assert_eq!(b.seq, 3);
    assert_eq!(b.event_id.as_deref(), Some(events[2].id.as_str()));
    assert!(b.reason.contains("hash does not match"), "{}", b.reason);
    h.raw("UPDATE _objectos_audit_event SET actor_id = 'alice' WHERE seq = 3")
        .await;
    assert!(h.store.verify(None).await.unwrap().ok());

    // Recomputing the hash of the edited row is caught at the next row's prev_hash.
    let mut forged = events[1].clone();
    forged.actor.id = Some("mallory".into());
    forged.hash = forged.compute_hash();
    h.raw(&format!(
        "UPDATE _objectos_audit_event SET actor_id = 'mallory', hash = '{}' WHERE seq = 2",
        forged.hash
    ))
    .await;
    let report = h.store.verify(None).await.unwrap();
    assert_eq!(report.broken[0].seq, 3, "{report:?}");
    assert!(report.broken[0].reason.contains("prev_hash"));
    h.raw(&format!(
        "UPDATE _objectos_audit_event SET actor_id = 'alice', hash = '{}' WHERE seq = 2",
        events[1].hash
    ))
    .await;

    // A deleted row in the middle is a gap; a deleted last row disagrees with the head.
    h.raw("DELETE FROM _objectos_audit_event WHERE seq = 5")
        .await;
    let report = h.store.verify(Some("")).await.unwrap();
    assert_eq!(report.broken[0].seq, 5, "{report:?}");
    assert!(report.broken[0].reason.contains("head"));
    h.raw("DELETE FROM _objectos_audit_event WHERE seq = 2")
        .await;
    let report = h.store.verify(None).await.unwrap();
    assert_eq!(report.broken[0].seq, 2, "{report:?}");
    assert!(report.broken[0].reason.contains("rows missing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_sqlite() {
    let h = Harness::sqlite().await;
    tamper_scenario(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(objectos_pg),
    ignore = "needs PostgreSQL: set OBJECTOS_TEST_POSTGRES_URL"
)]
async fn tampering_postgres() {
    if let Some(h) = Harness::postgres().await {
        tamper_scenario(&h).await;
        h.stop().await;
    }
}

async fn retention_scenario(h: &Harness) {
    make_events(h, 3).await;
    let events = all_events(h).await;
    // Everything up to and including the third event is older than the cutoff.
    let cutoff = {
        let last = chrono::DateTime::parse_from_rfc3339(&events[2].timestamp).unwrap();
        (last + chrono::Duration::milliseconds(1))
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    make_events(h, 2).await;
    let id = {
        let e = all_events(h).await;
        e[3].record_id.clone().unwrap()
    };
    h.engine
        .update(
            &user_cx("alice"),
            "task",
            &id,
            rec(json!({"title": "changed"})),
            None,
        )
        .await
        .unwrap();
    let report = h.store.prune_before(&cutoff).await.unwrap();
    assert_eq!(report.events, 3);
    let left = all_events(h).await;
    assert_eq!(left.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5, 6]);
    let v = h.store.verify(None).await.unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.events, 3);
    // The chain continues after pruning, and tampering is still found.
    make_events(h, 1).await;
    assert!(h.store.verify(None).await.unwrap().ok());
    h.raw("UPDATE _objectos_audit_event SET object = 'x' WHERE seq = 4")
        .await;
    assert_eq!(h.store.verify(None).await.unwrap().broken[0].seq, 4);
    // A second pass with nothing old enough removes nothing.
    assert_eq!(h.store.prune_before(&cutoff).await.unwrap().events, 0);
    // The plugin's own pass keeps recent rows.
    let r = objectos_audit::prune_once(&h.engine, 180).await.unwrap();
    assert_eq!(r.events, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_sqlite() {
    let h = Harness::sqlite().await;
    retention_scenario(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(objectos_pg),
    ignore = "needs PostgreSQL: set OBJECTOS_TEST_POSTGRES_URL"
)]
async fn retention_postgres() {
    if let Some(h) = Harness::postgres().await {
        retention_scenario(&h).await;
        h.stop().await;
    }
}

/// The cached chain head: appends through it are one statement while it holds; when something
/// else moved the head (an append in its own transaction, a write rolled back after appending)
/// the next append notices, re-reads it, and the chain stays intact.
async fn head_cache_scenario(h: &Harness) {
    use objectos_audit::store::{HeadCache, append_cached, append_own};
    use objectos_audit::{Actor, AuditEvent};
    let writer = h.engine.writer();
    let cache = HeadCache::default();
    let event = |n: u32| {
        let mut ev = AuditEvent::new(
            format!("test.cached{n}"),
            Actor {
                kind: "system".into(),
                id: None,
                reason: None,
                ip_address: None,
                user_agent: None,
            },
        );
        ev.tenant_id = Some("cache-t".into());
        ev
    };
    // First append fills the cache through the locking path; the next two hit it.
    for n in 0..3 {
        append_cached(&writer, event(n), &cache).await.unwrap();
    }
    assert_eq!(cache.hits(), 2);
    // Another writer moves the head: the cached append misses, writes nothing twice, recovers.
    append_own(&h.engine, event(10)).await.unwrap();
    let ev = append_cached(&writer, event(3), &cache).await.unwrap();
    assert_eq!(cache.hits(), 2);
    assert_eq!(ev.seq, 5);
    // A transaction that appended and rolled back leaves the cache ahead of the database.
    {
        let tx = h.engine.begin_own_transaction().await.unwrap();
        append_cached(&tx, event(4), &cache).await.unwrap();
        tx.rollback().await.unwrap();
    }
    let ev = append_cached(&writer, event(5), &cache).await.unwrap();
    assert_eq!(ev.seq, 6);
    append_cached(&writer, event(6), &cache).await.unwrap();
    let report = h.store.verify(Some("cache-t")).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events, 7);
}

#[tokio::test]
async fn head_cache_sqlite() {
    let h = Harness::sqlite().await;
    head_cache_scenario(&h).await;
    h.stop().await;
}

#[tokio::test]
#[cfg_attr(
    not(objectos_pg),
    ignore = "needs PostgreSQL: set OBJECTOS_TEST_POSTGRES_URL"
)]
async fn head_cache_postgres() {
    if let Some(h) = Harness::postgres().await {
        head_cache_scenario(&h).await;
        h.stop().await;
    }
}
