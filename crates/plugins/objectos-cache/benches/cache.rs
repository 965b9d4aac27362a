//! Cache benchmarks: an in-process hit, a hit on the Redis backend's in-process first level,
//! and a Redis round trip (a first-level miss that asks Redis). The Redis cases run when
//! `OBJECTOS_TEST_REDIS_URL` is set.
//!
//! `cargo bench -p objectos-cache --bench cache -- --warm-up-time 1 --measurement-time 3`

// Benchmark setup may unwrap: a failure there is a broken benchmark, not input to handle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use objectos_cache::{CacheConfig, ObjectCache};
use objectos_kernel::contracts::Cache;

fn config() -> CacheConfig {
    CacheConfig {
        prefix: format!("bench-{}", uuid::Uuid::new_v4().simple()),
        ..CacheConfig::default()
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let value = vec![7u8; 64];

    let memory: Arc<dyn Cache> = Arc::new(ObjectCache::memory(&config()));
    rt.block_on(memory.set("bench", "key", value.clone(), None))
        .unwrap();
    c.bench_function("cache/memory hit (64 B)", |b| {
        b.iter(|| {
            // The memory backend never awaits: polling once completes the future.
            let v = futures_util::FutureExt::now_or_never(memory.get("bench", black_box("key")));
            black_box(v)
        })
    });

    let Ok(url) = std::env::var("OBJECTOS_TEST_REDIS_URL") else {
        eprintln!("OBJECTOS_TEST_REDIS_URL is not set: the Redis cases are skipped");
        return;
    };
    let redis = rt.block_on(async {
        let cache = Arc::new(ObjectCache::redis(&config(), &url, "bench-node").unwrap());
        cache.start();
        assert!(cache.wait_until_listening(Duration::from_secs(5)).await);
        cache
            .set("bench", "key", value.clone(), None)
            .await
            .unwrap();
        cache
    });
    c.bench_function("cache/redis first-level hit (64 B)", |b| {
        // A first-level hit does not await either.
        b.iter(|| {
            let v = futures_util::FutureExt::now_or_never(redis.get("bench", black_box("key")));
            black_box(v)
        })
    });
    c.bench_function("cache/redis round trip (first-level miss)", |b| {
        b.iter(|| {
            black_box(
                rt.block_on(redis.get("bench", black_box("absent")))
                    .unwrap(),
            )
        })
    });
    redis.stop();
}

criterion_group!(benches, bench);
criterion_main!(benches);
