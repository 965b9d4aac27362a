//! The Redis backend against the real Redis (`OBJECTOS_TEST_REDIS_URL`): two caches with
//! different node ids on one Redis, invalidations between them, a killed subscription, and a
//! node cut off from Redis by a relay that stops forwarding.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use objectos_cache::{CacheConfig, ObjectCache};
use objectos_kernel::contracts::{Cache, CacheState, InvalidationOrigin};

use crate::support::{Relay, Seen, config, eventually, redis_url};

const SECOND: Duration = Duration::from_secs(1);

async fn node(config: &CacheConfig, url: &str, id: &str) -> Arc<ObjectCache> {
    let c = Arc::new(ObjectCache::redis(config, url, id).unwrap());
    c.start();
    assert!(
        c.wait_until_listening(Duration::from_secs(5)).await,
        "{id} hears the channel"
    );
    c
}

fn unique(name: &str) -> String {
    format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A plain connection to the test Redis, for what a test does behind the caches' back.
async fn admin() -> deadpool_redis::Connection {
    deadpool_redis::Config::from_url(redis_url())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap()
        .get()
        .await
        .unwrap()
}

/// Kills, with `CLIENT KILL ID`, the subscription connections Redis lists as coming from
/// `relay` (the node behind it), leaving every other client of the shared Redis alone (other
/// tests subscribe at the same time). Returns how many were killed.
async fn kill_subscription(relay: &Relay) -> usize {
    let mut conn = admin().await;
    let list: String = deadpool_redis::redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    let ours: Vec<String> = relay
        .upstream_addrs()
        .iter()
        .map(|a| format!("addr={a}"))
        .collect();
    let mut killed = 0;
    for line in list
        .lines()
        .filter(|l| l.split(' ').any(|f| ours.iter().any(|o| o == f)))
    {
        let client_id = line
            .split(' ')
            .find_map(|f| f.strip_prefix("id="))
            .unwrap()
            .to_owned();
        let n: i64 = deadpool_redis::redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(&client_id)
            .query_async(&mut conn)
            .await
            .unwrap();
        killed += usize::try_from(n).unwrap();
    }
    killed
}

#[tokio::test]
#[cfg_attr(not(objectos_redis), ignore = "needs OBJECTOS_TEST_REDIS_URL")]
async fn values_are_shared_and_invalidations_reach_the_other_node_within_a_second() {
    let cfg = config(1000);
    let url = redis_url();
    let (id1, id2) = (unique("n1"), unique("n2"));
    let n1 = node(&cfg, &url, &id1).await;
    let n2 = node(&cfg, &url, &id2).await;
    assert_eq!(n1.backend(), "redis");
    assert_eq!(n1.state(), CacheState::Healthy);
    assert_eq!(n1.max_local_age(), None);

    n1.set("sessions", "t", b"v1".to_vec(), None).await.unwrap();
    assert_eq!(n2.get("sessions", "t").await.unwrap(), Some(b"v1".to_vec()));
    // n2 now holds it locally; n1 changes it, and n2 must drop its copy.
    n1.set("sessions", "t", b"v2".to_vec(), None).await.unwrap();
    let n = n2.clone();
    let took = eventually(SECOND, async || {
        n.get("sessions", "t").await.unwrap() == Some(b"v2".to_vec())
    })
    .await;
    assert!(took.is_some(), "n2 saw the new value within a second");

    n2.invalidate("sessions", "t").await.unwrap();
    let n = n1.clone();
    assert!(
        eventually(SECOND, async || n
            .get("sessions", "t")
            .await
            .unwrap()
            .is_none())
        .await
        .is_some(),
        "the key is gone on n1 (and in Redis)"
    );

    // A whole namespace: Redis keys too, while other namespaces stay.
    for k in ["a", "b", "c"] {
        n1.set("perm", k, k.as_bytes().to_vec(), None)
            .await
            .unwrap();
    }
    n1.set("other", "a", b"x".to_vec(), None).await.unwrap();
    for k in ["a", "b", "c"] {
        assert!(n2.get("perm", k).await.unwrap().is_some());
    }
    n2.invalidate_namespace("perm").await.unwrap();
    let n = n1.clone();
    assert!(
        eventually(SECOND, async || {
            n.get("perm", "a").await.unwrap().is_none()
                && n.get("perm", "c").await.unwrap().is_none()
        })
        .await
        .is_some()
    );
    assert_eq!(n1.get("other", "a").await.unwrap(), Some(b"x".to_vec()));
    // Time to live in Redis.
    n1.set("ttl", "k", b"x".to_vec(), Some(Duration::from_millis(100)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(n2.get("ttl", "k").await.unwrap(), None);
    let s = n2.stats();
    assert_eq!(s.backend, "redis");
    assert!(s.namespaces["perm"].hits >= 3);
}

#[tokio::test]
#[cfg_attr(not(objectos_redis), ignore = "needs OBJECTOS_TEST_REDIS_URL")]
async fn subscribers_hear_other_nodes_and_a_node_skips_its_own_messages() {
    let cfg = config(1000);
    let url = redis_url();
    let n1 = node(&cfg, &url, &unique("n1")).await;
    let n2 = node(&cfg, &url, &unique("n2")).await;
    let seen1: Seen = Arc::default();
    let seen2: Seen = Arc::default();
    let s = seen1.clone();
    let _sub1 = n1.on_invalidate(
        "auth.sessions",
        Arc::new(move |inv| s.lock().push((inv.key.clone(), inv.origin))),
    );
    let s = seen2.clone();
    let _sub2 = n2.on_invalidate(
        "auth.sessions",
        Arc::new(move |inv| s.lock().push((inv.key.clone(), inv.origin))),
    );
    n1.invalidate_namespace("auth.sessions").await.unwrap();
    n1.invalidate("auth.sessions", "tok").await.unwrap();
    let s = seen2.clone();
    assert!(
        eventually(SECOND, async || s.lock().len() == 2)
            .await
            .is_some(),
        "n2 heard both within a second"
    );
    assert_eq!(
        *seen2.lock(),
        vec![
            (None, InvalidationOrigin::Remote),
            (Some("tok".to_owned()), InvalidationOrigin::Remote)
        ]
    );
    // n1 heard its own two once each, locally, and not again from Redis.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        *seen1.lock(),
        vec![
            (None, InvalidationOrigin::Local),
            (Some("tok".to_owned()), InvalidationOrigin::Local)
        ]
    );
}

#[tokio::test]
#[cfg_attr(not(objectos_redis), ignore = "needs OBJECTOS_TEST_REDIS_URL")]
async fn a_killed_subscription_resyncs_what_it_missed() {
    let cfg = config(1000);
    let url = redis_url();
    // n2 reaches Redis through a relay, so its connections can be told from everyone else's.
    let relay = Relay::start(&url, true).await;
    let n1 = node(&cfg, &url, &unique("n1")).await;
    let n2 = node(&cfg, &relay.url(), &unique("n2")).await;
    let resyncs = Arc::new(AtomicUsize::new(0));
    let r = resyncs.clone();
    let _sub = n2.on_invalidate(
        "perm",
        Arc::new(move |inv| {
            if inv.key.is_none() && inv.origin == InvalidationOrigin::Remote {
                r.fetch_add(1, Ordering::SeqCst);
            }
        }),
    );
    n1.set("perm", "k", b"old".to_vec(), None).await.unwrap();
    assert_eq!(n2.get("perm", "k").await.unwrap(), Some(b"old".to_vec()));
    // Kill n2's subscription and change the value while n2 cannot subscribe again (the relay
    // forwards nothing for a moment): the message is lost for n2, which must still drop its
    // copy once it is back.
    relay.set_cut(true);
    assert_eq!(kill_subscription(&relay).await, 1);
    n1.set("perm", "k", b"new".to_vec(), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    relay.set_cut(false);
    let n = n2.clone();
    assert!(
        eventually(Duration::from_secs(3), async || {
            n.get("perm", "k").await.unwrap() == Some(b"new".to_vec())
        })
        .await
        .is_some(),
        "n2 serves the new value once it is subscribed again"
    );
    let r = resyncs.clone();
    assert!(
        eventually(SECOND, async || r.load(Ordering::SeqCst) >= 1)
            .await
            .is_some(),
        "subscribers were told to drop everything of the namespace"
    );
    assert_eq!(n2.state(), CacheState::Healthy);
}

#[tokio::test]
#[cfg_attr(not(objectos_redis), ignore = "needs OBJECTOS_TEST_REDIS_URL")]
async fn a_node_cut_off_from_redis_keeps_serving_within_the_staleness_bound_and_recovers() {
    let cfg = config(400);
    let url = redis_url();
    let relay = Relay::start(&url, true).await;
    let n1 = node(&cfg, &url, &unique("n1")).await;
    // n2 reaches Redis through the relay only.
    let n2 = node(&cfg, &relay.url(), &unique("n2")).await;
    n1.set("sessions", "t", b"valid".to_vec(), None)
        .await
        .unwrap();
    assert_eq!(
        n2.get("sessions", "t").await.unwrap(),
        Some(b"valid".to_vec())
    );

    relay.set_cut(true);
    // While n2 may still hear (the last heartbeat is recent) or not, its local copy stays
    // usable for at most the bound; n1 revokes meanwhile and n2 never hears of it.
    n1.invalidate("sessions", "t").await.unwrap();
    let n = n2.clone();
    assert!(
        eventually(SECOND, async || matches!(
            n.state(),
            CacheState::Degraded { .. }
        ))
        .await
        .is_some(),
        "n2 reports degraded"
    );
    assert_eq!(n2.max_local_age(), Some(Duration::from_millis(400)));
    if let CacheState::Degraded { reason } = n2.state() {
        assert!(reason.contains("400 ms"), "{reason}");
        assert!(
            !reason.contains("redis://"),
            "no URL in the reason: {reason}"
        );
    }
    // More than the bound after the copy was stored (and after the revocation), n2 no longer
    // uses it: a miss, answered at once (no wait for Redis).
    tokio::time::sleep(Duration::from_millis(450)).await;
    let started = std::time::Instant::now();
    assert_eq!(n2.get("sessions", "t").await.unwrap(), None);
    assert!(started.elapsed() < Duration::from_millis(100));
    // Fresh local values still work while cut off (set keeps it locally; the invalidation for
    // the others waits).
    n2.set("sessions", "fresh", b"x".to_vec(), None)
        .await
        .unwrap();
    assert_eq!(
        n2.get("sessions", "fresh").await.unwrap(),
        Some(b"x".to_vec())
    );

    relay.set_cut(false);
    let n = n2.clone();
    assert!(
        eventually(Duration::from_secs(10), async || n.state()
            == CacheState::Healthy)
        .await
        .is_some(),
        "n2 recovers by itself"
    );
    assert_eq!(n2.max_local_age(), None);
    // The resync dropped what n2 held; the waiting invalidation reached n1 (and Redis).
    let n = n1.clone();
    assert!(
        eventually(SECOND, async || n
            .get("sessions", "fresh")
            .await
            .unwrap()
            .is_none())
        .await
        .is_some()
    );
}

/// Needs no Redis: nothing listens on the port.
#[tokio::test]
async fn a_redis_that_is_away_at_start_is_degraded_not_fatal() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let c =
        ObjectCache::redis(&config(500), &format!("redis://127.0.0.1:{port}"), "lonely").unwrap();
    c.start();
    assert!(!c.wait_until_listening(Duration::from_millis(300)).await);
    assert!(matches!(c.state(), CacheState::Degraded { .. }));
    c.set("ns", "k", b"v".to_vec(), None).await.unwrap();
    assert_eq!(c.get("ns", "k").await.unwrap(), Some(b"v".to_vec()));
    c.invalidate("ns", "k").await.unwrap();
    assert_eq!(c.get("ns", "k").await.unwrap(), None);
}
