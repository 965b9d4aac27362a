//! Events between two kernels over the real Redis.

use std::collections::HashSet;
use std::time::Duration;

use objectos_spec::HealthStatus;

use crate::support::{Node, Proxy, Stream, eventually, kill_clients_named, redis_url, settings};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(objectos_redis), ignore = "needs OBJECTOS_TEST_REDIS_URL")]
async fn events_reach_the_other_node_and_never_come_back() {
    let stream = Stream::unique();
    let a = Node::start("node-a", &redis_url(), settings(&stream)).await;
    let b = Node::start("node-b", &redis_url(), settings(&stream)).await;
    a.wait_state("connected", WAIT).await;
    b.wait_state("connected", WAIT).await;

    let mut sent = HashSet::new();
    for n in 0..5 {
        sent.insert(a.publish("test.thing.created", n).await.id);
    }
    assert!(
        eventually(WAIT, || b.count() == 5).await,
        "node b saw {} of 5",
        b.count()
    );
    assert_eq!(b.ids().into_iter().collect::<HashSet<_>>(), sent);
    let from_b = b.publish("test.thing.updated", 9).await;
    assert!(
        eventually(WAIT, || a.count() == 6).await,
        "node a saw {}",
        a.count()
    );
    // Give an echo time to arrive: each node still holds exactly its own five (or one)
    // plus the other's.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(a.count(), 6, "node a got an event twice");
    assert_eq!(b.count(), 6, "node b got an event twice");
    assert!(a.ids().contains(&from_b.id));
    let event = b.seen.lock()[0].clone();
    assert_eq!(event.metadata.source, "node-a");
    assert_eq!(event.payload["n"], 0);

    let report = a.report().await;
    assert_eq!(report.status, HealthStatus::Healthy);
    assert_eq!(report.backend_state(), Some(("redis", "connected")));
    assert_eq!(report.details["published"], 5);
    assert_eq!(report.details["received"], 1);
    assert!(report.serves("events", &[]));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(objectos_redis), ignore = "needs OBJECTOS_TEST_REDIS_URL")]
async fn a_killed_connection_resumes_from_the_last_id_without_losing_events() {
    let stream = Stream::unique();
    let a = Node::start("kill-a", &redis_url(), settings(&stream)).await;
    let b = Node::start("kill-b", &redis_url(), settings(&stream)).await;
    a.wait_state("connected", WAIT).await;
    b.wait_state("connected", WAIT).await;
    a.publish("test.before.kill", 0).await;
    assert!(eventually(WAIT, || b.count() == 1).await);

    let name = format!("objectos-events:{}", b.id);
    assert_eq!(kill_clients_named(&name).await, 1, "b's reader connection");
    // And a's writer: the next batch finds its connection dead and must still get through.
    let writer = format!("objectos-events-writer:{}", a.id);
    assert_eq!(
        kill_clients_named(&writer).await,
        1,
        "a's writer connection"
    );
    // Published while b is reconnecting: b must read them from where it stopped.
    let mut sent = HashSet::new();
    for n in 1..=50 {
        sent.insert(a.publish("test.during.kill", n).await.id);
    }
    assert!(
        eventually(WAIT, || b.count() == 51).await,
        "b saw {} of 51 after the kill",
        b.count()
    );
    let got: HashSet<String> = b.ids().into_iter().skip(1).collect();
    assert_eq!(got, sent);
    b.wait_state("connected", WAIT).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(objectos_redis), ignore = "needs OBJECTOS_TEST_REDIS_URL")]
async fn redis_down_at_start_serves_locally_reports_degraded_and_recovers() {
    let stream = Stream::unique();
    let proxy = Proxy::start(false).await;
    let a = Node::start("down-a", &proxy.url(), settings(&stream)).await;
    // The node started although Redis is unreachable, and its own events flow locally.
    let local = a.publish("test.while.down", 1).await;
    assert!(
        eventually(WAIT, || a.count() == 1).await,
        "local delivery works"
    );
    a.wait_state("reconnecting", WAIT).await;
    let report = a.report().await;
    assert_eq!(report.status, HealthStatus::Degraded);
    let error = report.details["lastError"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "{report:?}");
    assert_eq!(report.details["waiting"], 1, "{report:?}");
    assert_eq!(
        a.kernel.health().await.status,
        HealthStatus::Degraded,
        "the node reports degraded"
    );

    let b = Node::start("down-b", &redis_url(), settings(&stream)).await;
    b.wait_state("connected", WAIT).await;
    proxy.set_up(true);
    a.wait_state("connected", WAIT).await;
    // What a queued while cut off reaches b once Redis is back.
    assert!(
        eventually(WAIT, || b.ids().contains(&local.id)).await,
        "the event published while Redis was down reached b"
    );
    let from_b = b.publish("test.after.recovery", 2).await;
    assert!(eventually(WAIT, || a.ids().contains(&from_b.id)).await);
    assert_eq!(a.report().await.status, HealthStatus::Healthy);

    // Cut again while running: a degrades, keeps serving locally, and recovers.
    proxy.set_up(false);
    a.wait_state("reconnecting", WAIT).await;
    let again = a.publish("test.second.outage", 3).await;
    assert!(eventually(WAIT, || a.ids().contains(&again.id)).await);
    proxy.set_up(true);
    a.wait_state("connected", WAIT).await;
    assert!(
        eventually(WAIT, || b.ids().contains(&again.id)).await,
        "the event of the second outage reached b"
    );
    a.stop().await;
    b.stop().await;
}
