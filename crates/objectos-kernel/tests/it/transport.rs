//! The cross-node transport seam: a plugin contributes the transport in `init`, the kernel
//! installs it before any `start`; an in-memory hub connects two kernels.

use std::sync::Arc;
use std::time::Duration;

use objectos_kernel::{
    Event, EventTransport, InboundSink, Kernel, KernelError, PluginError, TransportContribution,
    async_trait,
};
use parking_lot::Mutex;

use crate::support::{Log, Man, TestPlugin};

/// Connects the nodes of one test: what one node publishes is delivered to every other node.
#[derive(Debug, Default)]
struct Hub {
    nodes: Mutex<Vec<(usize, InboundSink)>>,
}

/// One node's end of the [`Hub`].
#[derive(Debug)]
struct HubTransport {
    hub: Arc<Hub>,
    node: usize,
}

#[async_trait]
impl EventTransport for HubTransport {
    fn name(&self) -> &str {
        "memory-hub"
    }

    async fn publish(&self, event: &Event) -> Result<(), KernelError> {
        let others: Vec<InboundSink> = self
            .hub
            .nodes
            .lock()
            .iter()
            .filter(|(n, _)| *n != self.node)
            .map(|(_, s)| s.clone())
            .collect();
        for sink in others {
            sink.deliver(event.clone()).await?;
        }
        Ok(())
    }

    fn subscribe(&self, inbound: InboundSink) {
        self.hub.nodes.lock().push((self.node, inbound));
    }
}

/// A plugin that contributes `node`'s end of `hub` as the transport.
fn transport_plugin(id: &str, hub: &Arc<Hub>, node: usize, log: &Log) -> TestPlugin {
    let hub = hub.clone();
    TestPlugin::new(Man::new(id, "1.0.0").build(), log).on_init(move |cx| {
        cx.contribute(TransportContribution(Arc::new(HubTransport {
            hub: hub.clone(),
            node,
        })))
    })
}

/// A plugin recording every `orders.*` event it receives (asynchronous lane).
fn listener(id: &str, seen: &Arc<Mutex<Vec<String>>>, log: &Log) -> TestPlugin {
    let seen = seen.clone();
    TestPlugin::new(
        Man::new(id, "1.0.0")
            .permissions(&["events.subscribe"])
            .subscribes(&["orders.*", "kernel.ready"])
            .build(),
        log,
    )
    .on_init(move |cx| {
        let orders = seen.clone();
        cx.subscribe("orders.*", move |e: Arc<Event>| {
            let seen = orders.clone();
            async move {
                seen.lock().push(e.name.clone());
                Ok::<(), PluginError>(())
            }
        })?;
        let seen = seen.clone();
        cx.subscribe("kernel.ready", move |e: Arc<Event>| {
            let seen = seen.clone();
            async move {
                seen.lock().push(e.name.clone());
                Ok::<(), PluginError>(())
            }
        })?;
        Ok(())
    })
}

async fn eventually(f: impl Fn() -> bool) -> bool {
    for _ in 0..200 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

#[tokio::test]
async fn a_contributed_transport_connects_two_kernels() {
    let hub = Arc::new(Hub::default());
    let log = Log::default();
    let seen_a = Arc::new(Mutex::new(Vec::new()));
    let seen_b = Arc::new(Mutex::new(Vec::new()));
    let publisher = TestPlugin::new(
        Man::new("shop", "1.0.0")
            .permissions(&["events.publish"])
            .emits(&["orders.*"])
            .build(),
        &log,
    );
    let shop = publisher.handle_slot();
    let a = Kernel::builder()
        .plugin(transport_plugin("redis-ish", &hub, 1, &log))
        .plugin(listener("listener", &seen_a, &log))
        .plugin(publisher)
        .build()
        .unwrap();
    let b = Kernel::builder()
        .plugin(transport_plugin("redis-ish", &hub, 2, &log))
        .plugin(listener("listener", &seen_b, &log))
        .build()
        .unwrap();
    b.boot().await.unwrap();
    let report = a.boot().await.unwrap();
    assert!(report.plugins.iter().all(|p| p.success));
    assert_eq!(a.bus().transport_name(), Some("memory-hub"));
    // Installed during boot: both nodes joined the hub before any start.
    assert_eq!(hub.nodes.lock().len(), 2);

    let shop = shop.lock().clone().unwrap();
    let local = shop
        .publish(shop.event("orders.placed", serde_json::json!({"id": 1})))
        .await
        .unwrap();
    assert_eq!(local, 1, "the local subscriber got it");
    assert!(eventually(|| seen_b.lock().contains(&"orders.placed".to_owned())).await);
    assert!(eventually(|| seen_a.lock().contains(&"orders.placed".to_owned())).await);
    // Never echoed back: node A saw its own event once.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let count = |v: &Arc<Mutex<Vec<String>>>, name: &str| {
        v.lock().iter().filter(|n| n.as_str() == name).count()
    };
    assert_eq!(count(&seen_a, "orders.placed"), 1);
    assert_eq!(count(&seen_b, "orders.placed"), 1);
    // Lifecycle events stay on their node: each saw only its own `kernel.ready`.
    assert_eq!(count(&seen_a, "kernel.ready"), 1);
    assert_eq!(count(&seen_b, "kernel.ready"), 1);

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn inbound_events_are_retried_like_local_ones() {
    // At least once across nodes: a failing remote handler is retried, as for a local event.
    let hub = Arc::new(Hub::default());
    let log = Log::default();
    let attempts = Arc::new(Mutex::new(0u32));
    let counter = attempts.clone();
    let flaky = TestPlugin::new(
        Man::new("flaky", "1.0.0")
            .permissions(&["events.subscribe"])
            .subscribes(&["orders.*"])
            .build(),
        &log,
    )
    .on_init(move |cx| {
        let counter = counter.clone();
        cx.subscribe_with(
            "orders.*",
            move |_e: Arc<Event>| {
                let counter = counter.clone();
                async move {
                    let mut n = counter.lock();
                    *n += 1;
                    if *n < 2 {
                        Err(PluginError::msg("not yet"))
                    } else {
                        Ok(())
                    }
                }
            },
            objectos_kernel::SubscribeOptions {
                retry: objectos_kernel::RetryPolicy {
                    base: Duration::from_millis(1),
                    ..objectos_kernel::RetryPolicy::default()
                },
                ..objectos_kernel::SubscribeOptions::default()
            },
        )?;
        Ok(())
    });
    let a = Kernel::builder()
        .plugin(transport_plugin("t", &hub, 1, &log))
        .build()
        .unwrap();
    let b = Kernel::builder()
        .plugin(transport_plugin("t", &hub, 2, &log))
        .plugin(flaky)
        .build()
        .unwrap();
    a.boot().await.unwrap();
    b.boot().await.unwrap();
    a.bus()
        .publish(objectos_kernel::new_event(
            "orders.placed",
            "test",
            serde_json::json!({}),
        ))
        .await
        .unwrap();
    assert!(eventually(|| *attempts.lock() == 2).await);
    assert!(b.bus().dead_letters().is_empty().await);
    a.shutdown().await;
    b.shutdown().await;
}

/// Records, in its `start`, how many nodes had joined the hub.
struct Probe {
    manifest: objectos_kernel::PluginManifest,
    hub: Arc<Hub>,
    joined: Arc<Mutex<Option<usize>>>,
}

#[async_trait]
impl objectos_kernel::Plugin for Probe {
    fn manifest(&self) -> &objectos_kernel::PluginManifest {
        &self.manifest
    }

    fn init(&self, _cx: &mut objectos_kernel::InitContext<'_>) -> Result<(), PluginError> {
        Ok(())
    }

    async fn start(&self, _cx: &objectos_kernel::StartContext) -> Result<(), PluginError> {
        *self.joined.lock() = Some(self.hub.nodes.lock().len());
        Ok(())
    }
}

#[tokio::test]
async fn the_transport_is_installed_before_any_start() {
    let hub = Arc::new(Hub::default());
    let log = Log::default();
    let joined = Arc::new(Mutex::new(None));
    // Registered first and with no dependency on the transport's plugin, so it starts first.
    let kernel = Kernel::builder()
        .plugin(Probe {
            manifest: Man::new("probe", "1.0.0").build(),
            hub: hub.clone(),
            joined: joined.clone(),
        })
        .plugin(transport_plugin("t", &hub, 1, &log))
        .build()
        .unwrap();
    assert_eq!(kernel.start_order(), ["probe", "t"]);
    kernel.boot().await.unwrap();
    assert_eq!(*joined.lock(), Some(1));
    kernel.shutdown().await;
}

#[tokio::test]
async fn two_transports_fail_the_boot_naming_both() {
    let hub = Arc::new(Hub::default());
    let log = Log::default();
    let kernel = Kernel::builder()
        .plugin(transport_plugin("com.acme.redis", &hub, 1, &log))
        .plugin(transport_plugin("com.acme.nats", &hub, 2, &log))
        .build()
        .unwrap();
    let err = kernel.boot().await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, KernelError::DuplicateTransport { .. }),
        "{text}"
    );
    assert!(
        text.contains("com.acme.redis") && text.contains("com.acme.nats"),
        "{text}"
    );
    // Nothing started, nothing joined the hub.
    assert!(!log.entries().iter().any(|e| e.starts_with("start:")));
    assert!(hub.nodes.lock().is_empty());
    assert!(kernel.bus().is_closed());
}

#[tokio::test]
async fn a_host_transport_and_a_plugin_transport_conflict() {
    let hub = Arc::new(Hub::default());
    let log = Log::default();
    let kernel = Kernel::builder()
        .transport(Arc::new(objectos_kernel::LocalTransport))
        .plugin(transport_plugin("com.acme.redis", &hub, 1, &log))
        .build()
        .unwrap();
    let text = kernel.boot().await.unwrap_err().to_string();
    assert!(
        text.contains("KernelBuilder::transport") && text.contains("com.acme.redis"),
        "{text}"
    );
}
