//! Event bus: pattern matching, sync dispatch, isolation, async delivery, backpressure, retries, dead letters, transport.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use objectos_kernel::{
    Backoff, DeadLetterStore, Event, EventBus, EventBusConfig, EventPattern, EventTransport,
    InboundSink, KernelError, MemoryDeadLetterStore, PluginError, RetryPolicy, SubscribeOptions,
    new_event,
};
use parking_lot::Mutex;
use tokio::sync::{Semaphore, mpsc};

use crate::support::{Log, eventually};

fn ev(name: &str) -> Event {
    new_event(name, "test", serde_json::json!({"n": name}))
}

#[test]
fn pattern_matching_table() {
    let table: &[(&str, &str, bool)] = &[
        ("data.account.created", "data.account.created", true),
        ("data.account.created", "data.account.updated", false),
        ("data.account.created", "data.account", false),
        ("data.account.created", "data.account.created.x", false),
        ("data.*.created", "data.account.created", true),
        ("data.*.created", "data.contact.created", true),
        ("data.*.created", "data.account.updated", false),
        ("data.*.created", "data.created", false),
        ("data.*.created", "data.a.b.created", false),
        ("*", "ready", true),
        ("*", "kernel.ready", false),
        ("*.ready", "kernel.ready", true),
        ("data.**", "data.created", true),
        ("data.**", "data.account.created", true),
        ("data.**", "data", false),
        ("data.**", "datas.created", false),
        ("**", "anything.at.all", true),
        ("**", "x", true),
        ("data.*.**", "data.account.created", true),
        ("data.*.**", "data.account", false),
    ];
    for (pattern, name, expected) in table {
        let p = EventPattern::parse(pattern).unwrap();
        assert_eq!(p.matches(name), *expected, "`{pattern}` vs `{name}`");
    }
}

#[test]
fn pattern_coverage_table() {
    let table: &[(&str, &str, bool)] = &[
        ("data.**", "data.*.created", true),
        ("data.**", "data.account", true),
        ("data.**", "data", false),
        ("data.**", "data.**", true),
        ("data.*", "data.account", true),
        ("data.*", "data.*", true),
        ("data.*", "data.**", false),
        ("data.account", "data.*", false),
        ("**", "kernel.ready", true),
        ("kernel.ready", "kernel.ready", true),
    ];
    for (declared, requested, expected) in table {
        let d = EventPattern::parse(declared).unwrap();
        let r = EventPattern::parse(requested).unwrap();
        assert_eq!(d.covers(&r), *expected, "`{declared}` covers `{requested}`");
    }
}

/// Record events are `data.<object>.<verb>` (built by the spec's helper), so a subscriber picks
/// a verb across objects or an object across verbs with one `*`.
#[test]
fn record_events_select_by_verb_and_by_object() {
    use objectos_spec::event::data::{ALL, RecordVerb, event_name, object_pattern, verb_pattern};
    let bus = EventBus::default();
    let log = Log::default();
    for pattern in [
        verb_pattern(RecordVerb::Updated),
        object_pattern("account"),
        ALL.to_owned(),
    ] {
        let l = log.clone();
        let tag = pattern.clone();
        bus.subscribe_sync("p", &pattern, move |e| {
            l.push(format!("{tag} <- {}", e.name));
            Ok(())
        })
        .unwrap();
    }
    for (object, verb) in [
        ("account", RecordVerb::Created),
        ("account", RecordVerb::Updated),
        ("contact", RecordVerb::Updated),
        ("contact", RecordVerb::Deleted),
    ] {
        assert!(bus.publish_sync(&ev(&event_name(object, verb))).is_empty());
    }
    assert!(bus.publish_sync(&ev("data.account")).is_empty());
    assert_eq!(
        log.entries(),
        [
            "data.account.* <- data.account.created",
            "data.*.* <- data.account.created",
            "data.*.updated <- data.account.updated",
            "data.account.* <- data.account.updated",
            "data.*.* <- data.account.updated",
            "data.*.updated <- data.contact.updated",
            "data.*.* <- data.contact.updated",
            "data.*.* <- data.contact.deleted",
        ]
    );
}

#[test]
fn invalid_patterns_are_errors() {
    for bad in [
        "",
        "Data.created",
        "data..created",
        "data.**.created",
        "data created",
    ] {
        assert!(
            matches!(
                EventPattern::parse(bad),
                Err(KernelError::InvalidEventName { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn retry_delays() {
    let base = Duration::from_millis(10);
    let p = |backoff| RetryPolicy {
        max_retries: 3,
        backoff,
        base,
        max_delay: Duration::from_millis(35),
    };
    assert_eq!(p(Backoff::Fixed).delay(3), base);
    assert_eq!(p(Backoff::Linear).delay(3), Duration::from_millis(30));
    assert_eq!(p(Backoff::Exponential).delay(1), Duration::from_millis(10));
    assert_eq!(p(Backoff::Exponential).delay(2), Duration::from_millis(20));
    assert_eq!(p(Backoff::Exponential).delay(3), Duration::from_millis(35));
    assert_eq!(
        p(Backoff::Exponential).delay(100),
        Duration::from_millis(35)
    );
    assert_eq!(RetryPolicy::default().max_retries, 3);
}

#[test]
fn sync_dispatch_runs_in_subscription_order() {
    let bus = EventBus::default();
    let log = Log::default();
    for (tag, pattern) in [
        ("1", "data.account.created"),
        ("2", "data.*.created"),
        ("3", "data.**"),
        ("4", "data.account.created"),
        ("5", "auth.*"),
    ] {
        let l = log.clone();
        bus.subscribe_sync("p", pattern, move |e| {
            l.push(format!("{tag}:{}", e.name));
            Ok(())
        })
        .unwrap();
    }
    assert!(bus.publish_sync(&ev("data.account.created")).is_empty());
    assert!(bus.publish_sync(&ev("data.contact.created")).is_empty());
    assert!(bus.publish_sync(&ev("auth.login")).is_empty());
    assert!(bus.publish_sync(&ev("nothing.here")).is_empty());
    assert_eq!(
        log.entries(),
        [
            "1:data.account.created",
            "2:data.account.created",
            "3:data.account.created",
            "4:data.account.created",
            "2:data.contact.created",
            "3:data.contact.created",
            "5:auth.login"
        ]
    );
}

#[test]
fn failing_and_panicking_sync_handlers_are_isolated() {
    let bus = EventBus::default();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    bus.subscribe_sync("first", "x.y", move |_| {
        r.fetch_add(1, Ordering::SeqCst);
        Ok(())
    })
    .unwrap();
    bus.subscribe_sync("boom", "x.*", |_| panic!("handler blew up"))
        .unwrap();
    bus.subscribe_sync("err", "x.y", |_| Err(PluginError::msg("nope")))
        .unwrap();
    let r = ran.clone();
    bus.subscribe_sync("last", "**", move |_| {
        r.fetch_add(1, Ordering::SeqCst);
        Ok(())
    })
    .unwrap();
    let errors = bus.publish_sync(&ev("x.y"));
    assert_eq!(ran.load(Ordering::SeqCst), 2);
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].subscriber, "`boom` on `x.*`");
    assert!(
        matches!(&errors[0].error, PluginError::Panicked { message, .. } if message == "handler blew up")
    );
    assert_eq!(
        errors[1].to_string(),
        "handler `err` on `x.y` failed on event `x.y`: nope"
    );
}

#[test]
fn unsubscribe_stops_delivery() {
    let bus = EventBus::default();
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    let id = bus
        .subscribe_sync("p", "a.b", move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
    bus.publish_sync(&ev("a.b"));
    assert!(bus.unsubscribe(id));
    assert!(!bus.unsubscribe(id));
    bus.publish_sync(&ev("a.b"));
    assert_eq!(n.load(Ordering::SeqCst), 1);
    assert_eq!(bus.subscription_count(), 0);
}

#[test]
fn subscribing_async_outside_a_runtime_is_an_error() {
    let bus = EventBus::default();
    let err = bus
        .subscribe(
            "p",
            "a.b",
            |_e: Arc<Event>| async { Ok(()) },
            SubscribeOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, KernelError::NoRuntime { .. }));
}

#[tokio::test]
async fn async_delivery_in_order() {
    let bus = EventBus::default();
    let (tx, mut rx) = mpsc::unbounded_channel();
    bus.subscribe(
        "p",
        "data.*.created",
        move |e: Arc<Event>| {
            let tx = tx.clone();
            async move {
                tx.send(e.name.clone()).unwrap();
                Ok(())
            }
        },
        SubscribeOptions::default(),
    )
    .unwrap();
    assert_eq!(bus.publish(ev("data.a.created")).await.unwrap(), 1);
    assert_eq!(bus.publish(ev("data.a.updated")).await.unwrap(), 0);
    assert_eq!(bus.try_publish(ev("data.b.created")).unwrap(), 1);
    assert_eq!(rx.recv().await.unwrap(), "data.a.created");
    assert_eq!(rx.recv().await.unwrap(), "data.b.created");
    assert_eq!(bus.close(Duration::from_secs(1)).await, 0);
    assert!(matches!(
        bus.publish(ev("data.c.created")).await,
        Err(KernelError::BusClosed { .. })
    ));
}

#[tokio::test]
async fn backpressure_with_a_small_queue() {
    let bus = EventBus::default();
    let gate = Arc::new(Semaphore::new(0));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let done = Arc::new(AtomicUsize::new(0));
    let (g, d) = (gate.clone(), done.clone());
    bus.subscribe(
        "slow",
        "work.item",
        move |_e: Arc<Event>| {
            let (g, d, s) = (g.clone(), d.clone(), started_tx.clone());
            async move {
                s.send(()).unwrap();
                g.acquire().await.unwrap().forget();
                d.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        },
        SubscribeOptions {
            capacity: 1,
            ..SubscribeOptions::default()
        },
    )
    .unwrap();

    // The first event is taken by the handler, which now blocks; the second fills the queue.
    bus.try_publish(ev("work.item")).unwrap();
    started.recv().await.unwrap();
    bus.try_publish(ev("work.item")).unwrap();
    let full = bus.try_publish(ev("work.item")).unwrap_err();
    assert_eq!(
        full.to_string(),
        "event `work.item` was not published: the queue of `slow` on `work.item` is full; retry later or use `publish().await` to wait"
    );

    // `publish().await` waits for room instead of failing.
    let waiting = bus.publish(ev("work.item"));
    tokio::pin!(waiting);
    assert!(futures_util::poll!(&mut waiting).is_pending());
    gate.add_permits(1);
    assert_eq!(waiting.await.unwrap(), 1);
    gate.add_permits(2);
    assert!(eventually(|| done.load(Ordering::SeqCst) == 3).await);
}

#[tokio::test]
async fn try_publish_is_all_or_nothing() {
    let bus = EventBus::default();
    let gate = Arc::new(Semaphore::new(0));
    let got = Arc::new(AtomicUsize::new(0));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let g = gate.clone();
    bus.subscribe(
        "slow",
        "t.x",
        move |_e: Arc<Event>| {
            let (g, s) = (g.clone(), started_tx.clone());
            async move {
                s.send(()).unwrap();
                g.acquire().await.unwrap().forget();
                Ok(())
            }
        },
        SubscribeOptions {
            capacity: 1,
            ..SubscribeOptions::default()
        },
    )
    .unwrap();
    let c = got.clone();
    bus.subscribe(
        "fast",
        "t.*",
        move |_e: Arc<Event>| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        },
        SubscribeOptions::default(),
    )
    .unwrap();
    bus.try_publish(ev("t.x")).unwrap();
    started.recv().await.unwrap();
    bus.try_publish(ev("t.x")).unwrap();
    assert!(eventually(|| got.load(Ordering::SeqCst) == 2).await);
    assert!(
        matches!(bus.try_publish(ev("t.x")), Err(KernelError::QueueFull { subscribers, .. }) if subscribers.len() == 1)
    );
    // The fast subscriber did not get the refused event.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(got.load(Ordering::SeqCst), 2);
    gate.add_permits(10);
}

#[tokio::test]
async fn failing_async_handler_is_retried_then_dead_lettered() {
    let store = Arc::new(MemoryDeadLetterStore::default());
    let bus = EventBus::new(EventBusConfig {
        dead_letters: store.clone(),
        ..EventBusConfig::default()
    });
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    let retry = RetryPolicy {
        max_retries: 2,
        backoff: Backoff::Fixed,
        base: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    bus.subscribe(
        "flaky",
        "job.run",
        move |_e: Arc<Event>| {
            let a = a.clone();
            async move {
                a.fetch_add(1, Ordering::SeqCst);
                Err(PluginError::msg("smtp down"))
            }
        },
        SubscribeOptions {
            retry,
            ..SubscribeOptions::default()
        },
    )
    .unwrap();
    // A second subscriber on the same event is not affected.
    let ok = Arc::new(AtomicUsize::new(0));
    let o = ok.clone();
    bus.subscribe(
        "fine",
        "job.*",
        move |_e: Arc<Event>| {
            let o = o.clone();
            async move {
                o.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        },
        SubscribeOptions::default(),
    )
    .unwrap();
    bus.publish(ev("job.run")).await.unwrap();
    let mut len = 0;
    for _ in 0..400 {
        len = store.len().await;
        if len == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(len, 1);
    let letter = store.list(10).await.remove(0);
    assert_eq!(letter.retries, 2);
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(letter.event.name, "job.run");
    assert_eq!(letter.error, "smtp down");
    assert_eq!(letter.subscriber, "`flaky` on `job.run`");
    assert!(letter.first_failed_at <= letter.last_failed_at);
    assert_eq!(ok.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn panicking_async_handler_is_dead_lettered_and_recovering_one_is_not() {
    let store = Arc::new(MemoryDeadLetterStore::default());
    let bus = EventBus::new(EventBusConfig {
        dead_letters: store.clone(),
        ..EventBusConfig::default()
    });
    bus.subscribe(
        "panicky",
        "a.b",
        |_e: Arc<Event>| async { panic!("kaboom") },
        SubscribeOptions {
            retry: RetryPolicy::none(),
            ..SubscribeOptions::default()
        },
    )
    .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let retry = RetryPolicy {
        max_retries: 3,
        backoff: Backoff::Linear,
        base: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    bus.subscribe(
        "recovers",
        "a.b",
        move |_e: Arc<Event>| {
            let c = c.clone();
            async move {
                if c.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(PluginError::msg("first try fails"))
                } else {
                    Ok(())
                }
            }
        },
        SubscribeOptions {
            retry,
            ..SubscribeOptions::default()
        },
    )
    .unwrap();
    bus.publish(ev("a.b")).await.unwrap();
    assert!(eventually(|| calls.load(Ordering::SeqCst) == 2).await);
    bus.close(Duration::from_secs(1)).await;
    let letters = store.list(10).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].retries, 0);
    assert_eq!(letters[0].error, "handler panicked: kaboom");
}

#[derive(Debug, Default)]
struct RecordingTransport {
    published: Mutex<Vec<String>>,
    inbound: Mutex<Option<InboundSink>>,
}

#[async_trait]
impl EventTransport for RecordingTransport {
    fn name(&self) -> &str {
        "recording"
    }
    async fn publish(&self, event: &Event) -> Result<(), KernelError> {
        self.published.lock().push(event.name.clone());
        Ok(())
    }
    fn subscribe(&self, inbound: InboundSink) {
        *self.inbound.lock() = Some(inbound);
    }
}

#[tokio::test]
async fn transport_seam_is_called_both_ways() {
    let transport = Arc::new(RecordingTransport::default());
    let bus = EventBus::new(EventBusConfig {
        transport: Some(transport.clone()),
        ..EventBusConfig::default()
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    bus.subscribe(
        "p",
        "**",
        move |e: Arc<Event>| {
            let tx = tx.clone();
            async move {
                tx.send(format!("{}:{}", e.name, e.metadata.source))
                    .unwrap();
                Ok(())
            }
        },
        SubscribeOptions::default(),
    )
    .unwrap();
    bus.publish(ev("local.one")).await.unwrap();
    assert_eq!(rx.recv().await.unwrap(), "local.one:test");
    assert_eq!(*transport.published.lock(), ["local.one"]);

    // An event from another node reaches local subscribers and is not sent back out.
    let sink = transport.inbound.lock().clone().unwrap();
    assert_eq!(
        sink.deliver(new_event("remote.two", "node-b", serde_json::json!(null)))
            .await
            .unwrap(),
        1
    );
    assert_eq!(rx.recv().await.unwrap(), "remote.two:node-b");
    assert_eq!(*transport.published.lock(), ["local.one"]);

    bus.try_publish(ev("local.three")).unwrap();
    assert!(eventually(|| transport.published.lock().len() == 2).await);
}

/// A `local_only` subscriber (one that writes into storage every node shares) gets this node's
/// events and none that the transport brought from another node; the others get both.
#[tokio::test]
async fn local_only_subscribers_skip_events_from_other_nodes() {
    let transport = Arc::new(RecordingTransport::default());
    let bus = EventBus::new(EventBusConfig {
        transport: Some(transport.clone()),
        ..EventBusConfig::default()
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    for (label, local_only) in [("shared", true), ("per-node", false)] {
        let tx = tx.clone();
        bus.subscribe(
            label,
            "auth.**",
            move |e: Arc<Event>| {
                let tx = tx.clone();
                async move {
                    tx.send(format!("{label}:{}", e.name)).unwrap();
                    Ok(())
                }
            },
            SubscribeOptions {
                local_only,
                ..SubscribeOptions::default()
            },
        )
        .unwrap();
    }
    let sink = transport.inbound.lock().clone().unwrap();
    assert_eq!(
        sink.deliver(new_event("auth.login", "node-b", serde_json::json!(null)))
            .await
            .unwrap(),
        1
    );
    bus.publish(ev("auth.logout")).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(rx.recv().await.unwrap());
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "per-node:auth.login",
            "per-node:auth.logout",
            "shared:auth.logout"
        ]
    );
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn dead_letter_store_is_bounded() {
    let store = MemoryDeadLetterStore::new(2);
    for i in 0..3 {
        let now = chrono::Utc::now();
        store
            .put(objectos_kernel::DeadLetter {
                event: ev(&format!("e.n{i}")),
                subscriber: "s".into(),
                error: "x".into(),
                retries: 0,
                first_failed_at: now,
                last_failed_at: now,
            })
            .await
            .unwrap();
    }
    let names: Vec<String> = store
        .list(10)
        .await
        .into_iter()
        .map(|d| d.event.name)
        .collect();
    assert_eq!(names, ["e.n1", "e.n2"]);
    assert!(!store.is_empty().await);
}

#[tokio::test]
async fn inline_async_handler_is_queued_and_retried() {
    let store = Arc::new(MemoryDeadLetterStore::default());
    let bus = EventBus::new(EventBusConfig {
        dead_letters: store.clone(),
        ..EventBusConfig::default()
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let retry = RetryPolicy {
        max_retries: 1,
        backoff: Backoff::Fixed,
        base: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
    };
    bus.subscribe_inline(
        "counter",
        "c.*",
        move |e| {
            s.lock().push(e.name.clone());
            if e.name == "c.bad" {
                Err(PluginError::msg("bad"))
            } else {
                Ok(())
            }
        },
        SubscribeOptions {
            capacity: 2,
            retry,
            ..SubscribeOptions::default()
        },
    )
    .unwrap();
    bus.publish(ev("c.one")).await.unwrap();
    bus.publish(ev("c.bad")).await.unwrap();
    bus.publish(ev("c.two")).await.unwrap();
    bus.close(Duration::from_secs(1)).await;
    assert_eq!(*seen.lock(), ["c.one", "c.bad", "c.bad", "c.two"]);
    assert_eq!(store.list(10).await[0].retries, 1);
}

fn numbered(name: &str, n: u64) -> Arc<Event> {
    Arc::new(new_event(name, "test", serde_json::json!(n)))
}

/// Records `(name, n)` of every event a subscriber sees.
fn recorder(
    bus: &EventBus,
    owner: &str,
    pattern: &str,
    capacity: usize,
) -> Arc<Mutex<Vec<(String, u64)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    bus.subscribe_inline(
        owner,
        pattern,
        move |e| {
            s.lock().push((e.name.clone(), e.payload.as_u64().unwrap()));
            Ok(())
        },
        SubscribeOptions {
            capacity,
            ..SubscribeOptions::default()
        },
    )
    .unwrap();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_many_keeps_order_per_subscriber_across_names() {
    let bus = EventBus::default();
    let all = recorder(&bus, "all", "a.*", 16);
    let xs = recorder(&bus, "xs", "a.x", 16);
    // Runs of equal names of various lengths, so routing is shared within a run only.
    let events: Vec<Arc<Event>> = (0..1000u64)
        .map(|n| numbered(if (n / 7) % 3 == 0 { "a.y" } else { "a.x" }, n))
        .collect();
    let expected_x = events.iter().filter(|e| e.name == "a.x").count();
    let delivered = bus.publish_many(&events).await.unwrap();
    assert_eq!(delivered, events.len() + expected_x);
    assert!(eventually(|| all.lock().len() == events.len()).await);
    assert!(eventually(|| xs.lock().len() == expected_x).await);
    let all_n: Vec<u64> = all.lock().iter().map(|(_, n)| *n).collect();
    assert_eq!(all_n, (0..1000).collect::<Vec<_>>());
    let xs = xs.lock().clone();
    assert!(xs.iter().all(|(name, _)| name == "a.x"));
    assert!(xs.windows(2).all(|w| w[0].1 < w[1].1));
    assert_eq!(bus.publish_many(&[]).await.unwrap(), 0);
}

#[tokio::test]
async fn publish_many_waits_for_room_in_a_small_queue() {
    let bus = EventBus::default();
    let gate = Arc::new(Semaphore::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (g, s) = (gate.clone(), seen.clone());
    bus.subscribe(
        "slow",
        "work.item",
        move |e: Arc<Event>| {
            let (g, s) = (g.clone(), s.clone());
            async move {
                g.acquire().await.unwrap().forget();
                s.lock().push(e.payload.as_u64().unwrap());
                Ok(())
            }
        },
        SubscribeOptions {
            capacity: 2,
            ..SubscribeOptions::default()
        },
    )
    .unwrap();
    let events: Vec<Arc<Event>> = (0..10).map(|n| numbered("work.item", n)).collect();
    let publishing = bus.publish_many(&events);
    tokio::pin!(publishing);
    // Ten events cannot fit a queue of two while the handler is blocked.
    for _ in 0..5 {
        assert!(futures_util::poll!(&mut publishing).is_pending());
        tokio::task::yield_now().await;
    }
    // While the batch waits, a single try_publish finds the queue full.
    assert!(matches!(
        bus.try_publish(ev("work.item")),
        Err(KernelError::QueueFull { .. })
    ));
    gate.add_permits(100);
    assert_eq!(publishing.await.unwrap(), 10);
    assert!(eventually(|| seen.lock().len() == 10).await);
    assert_eq!(*seen.lock(), (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn publish_many_isolates_a_failing_subscriber() {
    let store = Arc::new(MemoryDeadLetterStore::default());
    let bus = EventBus::new(EventBusConfig {
        dead_letters: store.clone(),
        ..EventBusConfig::default()
    });
    bus.subscribe(
        "panicky",
        "a.b",
        |e: Arc<Event>| async move {
            if e.payload.as_u64() == Some(3) {
                panic!("kaboom on 3")
            }
            Err(PluginError::msg("always fails"))
        },
        SubscribeOptions {
            retry: RetryPolicy::none(),
            capacity: 4,
            ..SubscribeOptions::default()
        },
    )
    .unwrap();
    let good = recorder(&bus, "good", "a.b", 4);
    let events: Vec<Arc<Event>> = (0..20).map(|n| numbered("a.b", n)).collect();
    assert_eq!(bus.publish_many(&events).await.unwrap(), 40);
    assert!(eventually(|| good.lock().len() == 20).await);
    bus.close(Duration::from_secs(1)).await;
    let letters = store.list(100).await;
    assert_eq!(letters.len(), 20);
    assert_eq!(
        letters
            .iter()
            .filter(|l| l.error == "handler panicked: kaboom on 3")
            .count(),
        1
    );
    assert!(matches!(
        bus.publish_many(&events).await,
        Err(KernelError::BusClosed { .. })
    ));
}

#[tokio::test]
async fn unsubscribing_while_a_batch_waits_releases_the_publisher() {
    let bus = EventBus::default();
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let id = bus
        .subscribe(
            "slow",
            "work.item",
            move |_e: Arc<Event>| {
                let g = g.clone();
                async move {
                    g.acquire().await.unwrap().forget();
                    Ok(())
                }
            },
            SubscribeOptions {
                capacity: 1,
                ..SubscribeOptions::default()
            },
        )
        .unwrap();
    let events: Vec<Arc<Event>> = (0..5).map(|n| numbered("work.item", n)).collect();
    let publishing = bus.publish_many(&events);
    tokio::pin!(publishing);
    assert!(futures_util::poll!(&mut publishing).is_pending());
    // The waiting publisher keeps the queue alive; the worker keeps draining it once unblocked.
    assert!(bus.unsubscribe(id));
    gate.add_permits(100);
    assert_eq!(publishing.await.unwrap(), 5);
}
