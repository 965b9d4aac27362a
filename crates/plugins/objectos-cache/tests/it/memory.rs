//! The in-process backend: TTL, namespaces, statistics, invalidation callbacks, JSON values.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use objectos_cache::ObjectCache;
use objectos_kernel::contracts::{Cache, CacheState, InvalidationOrigin};

use crate::support::{Seen, config};

fn cache() -> Arc<dyn Cache> {
    Arc::new(ObjectCache::memory(&config(1000)))
}

#[tokio::test]
async fn set_get_and_ttl() {
    let c = cache();
    assert_eq!(c.backend(), "memory");
    assert_eq!(c.state(), CacheState::Healthy);
    assert_eq!(c.max_local_age(), None);
    c.set("ns", "a", b"1".to_vec(), None).await.unwrap();
    c.set(
        "ns",
        "short",
        b"2".to_vec(),
        Some(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    assert_eq!(c.get("ns", "a").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(c.get("ns", "short").await.unwrap(), Some(b"2".to_vec()));
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(c.get("ns", "short").await.unwrap(), None, "expired");
    assert_eq!(c.get("ns", "a").await.unwrap(), Some(b"1".to_vec()));
    // Overwriting replaces the value and its time to live.
    c.set("ns", "a", b"3".to_vec(), Some(Duration::from_millis(50)))
        .await
        .unwrap();
    assert_eq!(c.get("ns", "a").await.unwrap(), Some(b"3".to_vec()));
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(c.get("ns", "a").await.unwrap(), None);
}

#[tokio::test]
async fn namespaces_are_separate_and_invalidate_alone() {
    let c = cache();
    c.set("one", "k", b"1".to_vec(), None).await.unwrap();
    c.set("one", "k2", b"1b".to_vec(), None).await.unwrap();
    c.set("two", "k", b"2".to_vec(), None).await.unwrap();
    // A namespace that is a prefix of another must not take the other's entries with it.
    c.set("one.more", "k", b"3".to_vec(), None).await.unwrap();
    assert_eq!(c.get("two", "k").await.unwrap(), Some(b"2".to_vec()));
    c.invalidate("one", "k").await.unwrap();
    assert_eq!(c.get("one", "k").await.unwrap(), None);
    assert_eq!(c.get("one", "k2").await.unwrap(), Some(b"1b".to_vec()));
    c.set("one", "k", b"1".to_vec(), None).await.unwrap();
    c.invalidate_namespace("one").await.unwrap();
    assert_eq!(c.get("one", "k").await.unwrap(), None);
    assert_eq!(c.get("one", "k2").await.unwrap(), None);
    assert_eq!(c.get("two", "k").await.unwrap(), Some(b"2".to_vec()));
    assert_eq!(c.get("one.more", "k").await.unwrap(), Some(b"3".to_vec()));
    c.delete("two", "k").await.unwrap();
    assert_eq!(c.get("two", "k").await.unwrap(), None);
}

#[tokio::test]
async fn statistics_count_hits_misses_and_keys_per_namespace() {
    let c = cache();
    c.set("a", "1", vec![1], None).await.unwrap();
    c.set("a", "2", vec![2], None).await.unwrap();
    c.set("a", "2", vec![3], None).await.unwrap(); // replaced: still two keys
    c.set("b", "1", vec![1], None).await.unwrap();
    c.get("a", "1").await.unwrap();
    c.get("a", "1").await.unwrap();
    c.get("a", "nope").await.unwrap();
    c.get("b", "nope").await.unwrap();
    let s = c.stats();
    assert_eq!(s.backend, "memory");
    let a = s.namespaces["a"];
    assert_eq!((a.hits, a.misses, a.keys), (2, 1, 2));
    let b = s.namespaces["b"];
    assert_eq!((b.hits, b.misses, b.keys), (0, 1, 1));
    assert_eq!((s.total.hits, s.total.misses, s.total.keys), (2, 2, 3));
    c.invalidate_namespace("a").await.unwrap();
    assert_eq!(c.stats().namespaces["a"].keys, 0);
}

#[tokio::test]
async fn subscribers_hear_invalidations_until_dropped() {
    let c = cache();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let sub = c.on_invalidate(
        "auth.sessions",
        Arc::new(move |inv| s.lock().push((inv.key.clone(), inv.origin))),
    );
    let other = Arc::new(AtomicUsize::new(0));
    let o = other.clone();
    let _other_sub = c.on_invalidate(
        "elsewhere",
        Arc::new(move |_| {
            o.fetch_add(1, Ordering::SeqCst);
        }),
    );
    c.invalidate("auth.sessions", "t1").await.unwrap();
    c.invalidate_namespace("auth.sessions").await.unwrap();
    assert_eq!(
        *seen.lock(),
        vec![
            (Some("t1".to_owned()), InvalidationOrigin::Local),
            (None, InvalidationOrigin::Local)
        ]
    );
    assert_eq!(other.load(Ordering::SeqCst), 0);
    drop(sub);
    c.invalidate("auth.sessions", "t2").await.unwrap();
    assert_eq!(
        seen.lock().len(),
        2,
        "no call after the subscription is dropped"
    );
}

#[tokio::test]
async fn json_values_and_bad_namespaces() {
    let c = cache();
    c.set_json("j", "k", &serde_json::json!({"a": [1, 2]}), None)
        .await
        .unwrap();
    let v: Option<serde_json::Value> = c.get_json("j", "k").await.unwrap();
    assert_eq!(v, Some(serde_json::json!({"a": [1, 2]})));
    // Bytes that are not JSON of the asked type read as absent.
    c.set("j", "raw", b"\xff".to_vec(), None).await.unwrap();
    let v: Option<serde_json::Value> = c.get_json("j", "raw").await.unwrap();
    assert_eq!(v, None);
    let err = c.get("has space", "k").await.unwrap_err().to_string();
    assert!(err.contains("namespace `has space` is invalid"), "{err}");
    assert!(c.set("a:b", "k", vec![], None).await.is_err());
}
