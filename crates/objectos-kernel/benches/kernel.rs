//! Kernel benchmarks: service lookup, synchronous dispatch, asynchronous throughput and boot.
//!
//! Run with a short measurement time on the shared machine:
//! `cargo bench -p objectos-kernel --bench kernel -- --warm-up-time 1 --measurement-time 3`.

// Benchmark setup may unwrap: a failure there is a broken benchmark, not input to handle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use objectos_kernel::{
    Event, EventBus, InitContext, Kernel, Plugin, PluginError, PluginHandle, PluginManifest,
    ServiceRegistry, StartContext, SubscribeOptions, async_trait, new_event,
};
use objectos_spec::PluginDependency;

trait Cache: Send + Sync {
    fn hit(&self) -> u64;
}

struct MemCache;
impl Cache for MemCache {
    fn hit(&self) -> u64 {
        1
    }
}

fn frozen_registry() -> ServiceRegistry {
    let reg = ServiceRegistry::new();
    // Some neighbours so the maps are not trivially small.
    for i in 0..20u32 {
        reg.register::<u32>("filler", &format!("svc-{i}"), Arc::new(i))
            .unwrap();
    }
    reg.register::<dyn Cache>("cache-plugin", "cache", Arc::new(MemCache))
        .unwrap();
    reg.freeze();
    reg
}

struct Grabber {
    manifest: PluginManifest,
    slot: Arc<parking_lot::Mutex<Option<PluginHandle>>>,
}

#[async_trait]
impl Plugin for Grabber {
    fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }
    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        if self.manifest.provides.contains(&"cache") {
            cx.register::<dyn Cache>("cache", Arc::new(MemCache))?;
        }
        Ok(())
    }
    async fn start(&self, cx: &StartContext) -> Result<(), PluginError> {
        *self.slot.lock() = Some(cx.handle());
        Ok(())
    }
}

fn lookup(c: &mut Criterion) {
    let reg = frozen_registry();
    let mut g = c.benchmark_group("lookup");
    g.bench_function("typed_ref", |b| {
        b.iter(|| black_box(reg.get_entry::<dyn Cache>().unwrap().1.hit()))
    });
    g.bench_function("typed_arc", |b| {
        b.iter(|| black_box(reg.get::<dyn Cache>().unwrap().hit()))
    });
    g.bench_function("named_ref", |b| {
        b.iter(|| {
            black_box(
                reg.get_named_ref::<dyn Cache>(black_box("cache"))
                    .unwrap()
                    .hit(),
            )
        })
    });

    // Through a plugin's capability-checked handle.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let slot = Arc::new(parking_lot::Mutex::new(None));
    let mut provider = PluginManifest::new("provider", "provider", "1.0.0");
    provider.provides = &["cache"];
    let mut user = PluginManifest::new("user", "user", "1.0.0");
    user.requires = &["data", "metadata", "cache"];
    user.dependencies = &[];
    let mut data = PluginManifest::new("data", "data", "1.0.0");
    data.provides = &["data", "metadata"];
    let kernel = Kernel::builder()
        .plugin(Grabber {
            manifest: provider,
            slot: Arc::default(),
        })
        .plugin(DataPlugin { manifest: data })
        .plugin(Grabber {
            manifest: user,
            slot: slot.clone(),
        })
        .build()
        .unwrap();
    assert!(rt.block_on(kernel.boot()).unwrap().all_started());
    let handle = slot.lock().clone().unwrap();
    g.bench_function("handle_typed", |b| {
        b.iter(|| black_box(handle.get::<dyn Cache>().unwrap().hit()))
    });
    g.bench_function("handle_named", |b| {
        b.iter(|| {
            black_box(
                handle
                    .get_named::<dyn Cache>(black_box("cache"))
                    .unwrap()
                    .hit(),
            )
        })
    });
    g.finish();
}

struct DataPlugin {
    manifest: PluginManifest,
}

#[async_trait]
impl Plugin for DataPlugin {
    fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }
    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        cx.register::<u32>("data", Arc::new(1))?;
        cx.register::<u64>("metadata", Arc::new(2))
    }
}

fn sync_dispatch(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish_sync");
    for n in [1usize, 10, 100] {
        let bus = EventBus::default();
        let hits = Arc::new(AtomicU64::new(0));
        for _ in 0..n {
            let h = hits.clone();
            bus.subscribe_sync("bench", "data.account.created", move |_| {
                h.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
            .unwrap();
        }
        // Unrelated subscribers so routing is not trivially a single entry.
        bus.subscribe_sync("bench", "auth.*", |_| Ok(())).unwrap();
        let event = new_event("data.account.created", "bench", serde_json::Value::Null);
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("subscribers", n), &event, |b, e| {
            b.iter(|| black_box(bus.publish_sync(black_box(e))))
        });
    }
    g.finish();
}

/// Publishes through bounded queues to one subscriber and waits until it has seen every event.
///
/// `current_thread` measures the bus itself (publisher and subscriber share a thread, so no
/// wake-up crosses cores); `two_threads` adds the cross-thread hand-off, which on a loaded
/// two-core machine is dominated by waking the parked subscriber.
fn async_throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish_async");
    g.throughput(Throughput::Elements(1));
    for threads in ["current_thread", "two_threads"] {
        let rt = if threads == "current_thread" {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        } else {
            // One worker for the subscriber plus the `block_on` thread for the publisher.
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap()
        };
        let bus = EventBus::default();
        let seen = Arc::new(AtomicU64::new(0));
        let (s1, s2) = (seen.clone(), seen.clone());
        rt.block_on(async {
            bus.subscribe(
                "bench",
                "data.*.created",
                move |_e: Arc<Event>| {
                    s1.fetch_add(1, Ordering::Relaxed);
                    async { Ok(()) }
                },
                SubscribeOptions {
                    capacity: 4096,
                    ..SubscribeOptions::default()
                },
            )
            .unwrap();
            bus.subscribe_inline(
                "bench",
                "data.account.updated",
                move |_e| {
                    s2.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                },
                SubscribeOptions {
                    capacity: 4096,
                    ..SubscribeOptions::default()
                },
            )
            .unwrap();
        });
        // Distinct events, as in real traffic: one shared `Arc` would make publisher and
        // subscriber fight over a single reference count.
        let pool = |name: &str| -> Vec<Arc<Event>> {
            (0..8192)
                .map(|_| Arc::new(new_event(name, "bench", serde_json::Value::Null)))
                .collect()
        };
        for (handler, events) in [
            ("future", pool("data.account.created")),
            ("inline", pool("data.account.updated")),
        ] {
            g.bench_function(BenchmarkId::new(threads, handler), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let target = seen.load(Ordering::Relaxed) + iters;
                        let start = Instant::now();
                        for e in events.iter().cycle().take(iters as usize) {
                            bus.publish(e.clone()).await.unwrap();
                        }
                        while seen.load(Ordering::Relaxed) < target {
                            tokio::task::yield_now().await;
                        }
                        start.elapsed()
                    })
                })
            });
        }
    }
    g.finish();
}

/// The target setup: a two-worker runtime, events published by one spawned task and consumed by
/// one subscriber task; an event counts once its handler has run. Both the single `publish` and
/// the batched `publish_many` (256 events per call) are measured, against a future handler and an
/// inline one.
fn async_two_workers(c: &mut Criterion) {
    const BATCH: usize = 256;
    let mut g = c.benchmark_group("publish_async_2w");
    g.throughput(Throughput::Elements(1));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bus = EventBus::default();
    let seen = Arc::new(AtomicU64::new(0));
    let (s1, s2) = (seen.clone(), seen.clone());
    rt.block_on(async {
        bus.subscribe(
            "bench",
            "data.*.created",
            move |_e: Arc<Event>| {
                s1.fetch_add(1, Ordering::Relaxed);
                async { Ok(()) }
            },
            SubscribeOptions {
                capacity: 4096,
                ..SubscribeOptions::default()
            },
        )
        .unwrap();
        bus.subscribe_inline(
            "bench",
            "data.account.updated",
            move |_e| {
                s2.fetch_add(1, Ordering::Relaxed);
                Ok(())
            },
            SubscribeOptions {
                capacity: 4096,
                ..SubscribeOptions::default()
            },
        )
        .unwrap();
    });
    let pool = |name: &str| -> Arc<Vec<Arc<Event>>> {
        Arc::new(
            (0..8192)
                .map(|_| Arc::new(new_event(name, "bench", serde_json::Value::Null)))
                .collect(),
        )
    };
    for (handler, events) in [
        ("future", pool("data.account.created")),
        ("inline", pool("data.account.updated")),
    ] {
        for mode in ["single", "batch"] {
            g.bench_function(BenchmarkId::new(mode, handler), |b| {
                b.iter_custom(|iters| {
                    let (bus, seen, events) = (bus.clone(), seen.clone(), events.clone());
                    let publisher = rt.spawn(async move {
                        let target = seen.load(Ordering::Relaxed) + iters;
                        let mut left = iters as usize;
                        let start = Instant::now();
                        if mode == "single" {
                            for e in events.iter().cycle().take(left) {
                                bus.publish(e.clone()).await.unwrap();
                            }
                        } else {
                            for chunk in events.chunks(BATCH).cycle() {
                                if left == 0 {
                                    break;
                                }
                                let n = chunk.len().min(left);
                                bus.publish_many(&chunk[..n]).await.unwrap();
                                left -= n;
                            }
                        }
                        while seen.load(Ordering::Relaxed) < target {
                            tokio::task::yield_now().await;
                        }
                        start.elapsed()
                    });
                    rt.block_on(publisher).unwrap()
                })
            });
        }
    }
    g.finish();
}

struct Noop {
    manifest: PluginManifest,
}

#[async_trait]
impl Plugin for Noop {
    fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }
    fn init(&self, _cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        Ok(())
    }
}

fn boot(c: &mut Criterion) {
    // A chain: plugin i depends on plugin i-1; registered in reverse so the sort has work to do.
    let manifests: Vec<PluginManifest> = (0..100)
        .map(|i| {
            let id: &'static str = Box::leak(format!("com.bench.p{i}").into_boxed_str());
            let mut m = PluginManifest::new(id, id, "1.0.0");
            if i > 0 {
                let dep: &'static str = Box::leak(format!("com.bench.p{}", i - 1).into_boxed_str());
                m.dependencies = Box::leak(Box::new([PluginDependency {
                    id: dep,
                    version: "^1",
                    optional: false,
                }]));
            }
            m
        })
        .rev()
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("boot");
    g.measurement_time(Duration::from_secs(2));
    g.bench_function("100_noop_plugins_chain", |b| {
        b.iter(|| {
            let mut builder = Kernel::builder();
            for m in &manifests {
                builder = builder.plugin(Noop { manifest: *m });
            }
            let kernel = builder.build().unwrap();
            let report = rt.block_on(kernel.boot()).unwrap();
            black_box(report.plugins.len())
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    lookup,
    sync_dispatch,
    async_throughput,
    async_two_workers,
    boot
);
criterion_main!(benches);
