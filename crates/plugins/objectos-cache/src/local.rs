//! The in-process level: a moka cache of every namespace's entries (the whole cache in memory
//! mode, the first level in front of Redis), the per-namespace counters, and the invalidation
//! subscribers.
//!
//! Keys are `<namespace>\u{1f}<key>`: namespaces are plain names (no control characters), so the
//! first unit separator always ends the namespace and a namespace's entries share a prefix.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use objectos_kernel::contracts::{
    Invalidation, InvalidationCallback, InvalidationSubscription, NamespaceStats,
};
use parking_lot::RwLock;

const SEP: char = '\u{1f}';

/// One cached value.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) value: Vec<u8>,
    /// When this node stored it: what the staleness bound is measured against.
    pub(crate) stored_at: Instant,
    ttl: Duration,
}

/// Per-entry time to live.
struct PerEntryTtl;

impl moka::Expiry<String, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Counters of one namespace.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    keys: AtomicI64,
    /// Bumped by every invalidation of the namespace: a value read from Redis is kept locally
    /// only if no invalidation arrived while it was being read (it might be the old value).
    generation: AtomicU64,
}

impl Counters {
    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn snapshot(&self) -> NamespaceStats {
        NamespaceStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            keys: u64::try_from(self.keys.load(Ordering::Relaxed)).unwrap_or(0),
        }
    }
}

type Subscribers = HashMap<String, Vec<(u64, InvalidationCallback)>>;

/// The in-process level.
pub(crate) struct Local {
    map: moka::sync::Cache<String, Arc<Entry>>,
    counters: Arc<RwLock<HashMap<String, Arc<Counters>>>>,
    subscribers: Arc<RwLock<Subscribers>>,
    next_subscriber: AtomicU64,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("entries", &self.map.entry_count())
            .finish_non_exhaustive()
    }
}

fn composite(namespace: &str, key: &str) -> String {
    let mut k = String::with_capacity(namespace.len() + 1 + key.len());
    k.push_str(namespace);
    k.push(SEP);
    k.push_str(key);
    k
}

fn counters_of(
    counters: &RwLock<HashMap<String, Arc<Counters>>>,
    namespace: &str,
) -> Arc<Counters> {
    if let Some(c) = counters.read().get(namespace) {
        return c.clone();
    }
    counters
        .write()
        .entry(namespace.to_owned())
        .or_default()
        .clone()
}

impl Local {
    pub(crate) fn new(max_entries: u64) -> Self {
        let counters: Arc<RwLock<HashMap<String, Arc<Counters>>>> = Arc::default();
        let on_removal = counters.clone();
        let map = moka::sync::Cache::builder()
            .max_capacity(max_entries)
            .expire_after(PerEntryTtl)
            .support_invalidation_closures()
            // Every insert counts one key and every removal (replaced, expired, evicted,
            // invalidated) takes it back, so `keys` is what the namespace holds once moka has
            // run its pending maintenance (see `stats`).
            .eviction_listener(move |key: Arc<String>, _v, _cause: RemovalCause| {
                if let Some((ns, _)) = key.split_once(SEP) {
                    counters_of(&on_removal, ns)
                        .keys
                        .fetch_sub(1, Ordering::Relaxed);
                }
            })
            .build();
        Self {
            map,
            counters,
            subscribers: Arc::default(),
            next_subscriber: AtomicU64::new(1),
        }
    }

    pub(crate) fn counters(&self, namespace: &str) -> Arc<Counters> {
        counters_of(&self.counters, namespace)
    }

    /// The entry under `key`; with `max_age`, an entry stored longer ago counts as absent (and is
    /// dropped).
    pub(crate) fn get(
        &self,
        namespace: &str,
        key: &str,
        max_age: Option<Duration>,
    ) -> Option<Arc<Entry>> {
        let k = composite(namespace, key);
        let entry = self.map.get(&k)?;
        if let Some(max) = max_age
            && entry.stored_at.elapsed() > max
        {
            self.map.invalidate(&k);
            return None;
        }
        Some(entry)
    }

    pub(crate) fn insert(&self, namespace: &str, key: &str, value: Vec<u8>, ttl: Duration) {
        self.counters(namespace)
            .keys
            .fetch_add(1, Ordering::Relaxed);
        self.map.insert(
            composite(namespace, key),
            Arc::new(Entry {
                value,
                stored_at: Instant::now(),
                ttl,
            }),
        );
    }

    /// Drops `key` (or, with `None`, the whole namespace) and tells the subscribers.
    pub(crate) fn invalidate(&self, inv: &Invalidation) {
        self.counters(&inv.namespace)
            .generation
            .fetch_add(1, Ordering::AcqRel);
        match &inv.key {
            Some(key) => self.map.invalidate(&composite(&inv.namespace, key)),
            None => {
                let mut prefix = inv.namespace.clone();
                prefix.push(SEP);
                // Fails only when closures are not enabled, which `new` does; fall back to
                // dropping everything rather than keeping entries that must go.
                if self
                    .map
                    .invalidate_entries_if(move |k, _| k.starts_with(&prefix))
                    .is_err()
                {
                    self.map.invalidate_all();
                }
            }
        }
        self.notify(inv);
    }

    /// Drops every entry and every namespace's generation moves on (after this node may have
    /// missed invalidations); subscribers get nothing (see `RedisLink` for the resync).
    pub(crate) fn clear(&self) {
        for c in self.counters.read().values() {
            c.generation.fetch_add(1, Ordering::AcqRel);
        }
        self.map.invalidate_all();
    }

    /// Calls the subscribers of `inv.namespace` (outside the lock, so a callback may subscribe).
    pub(crate) fn notify(&self, inv: &Invalidation) {
        let callbacks: Vec<InvalidationCallback> = self
            .subscribers
            .read()
            .get(&inv.namespace)
            .map(|v| v.iter().map(|(_, cb)| cb.clone()).collect())
            .unwrap_or_default();
        for cb in callbacks {
            cb(inv);
        }
    }

    /// The namespaces someone listens to.
    pub(crate) fn subscribed_namespaces(&self) -> Vec<String> {
        self.subscribers.read().keys().cloned().collect()
    }

    pub(crate) fn subscribe(
        &self,
        namespace: &str,
        callback: InvalidationCallback,
    ) -> InvalidationSubscription {
        let id = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        self.subscribers
            .write()
            .entry(namespace.to_owned())
            .or_default()
            .push((id, callback));
        let subscribers = Arc::downgrade(&self.subscribers);
        let namespace = namespace.to_owned();
        InvalidationSubscription::new(move || {
            if let Some(subscribers) = subscribers.upgrade() {
                let mut subs = subscribers.write();
                if let Some(list) = subs.get_mut(&namespace) {
                    list.retain(|(i, _)| *i != id);
                    if list.is_empty() {
                        subs.remove(&namespace);
                    }
                }
            }
        })
    }

    /// Every namespace's counters, and their sum.
    pub(crate) fn stats(&self) -> (NamespaceStats, BTreeMap<String, NamespaceStats>) {
        self.map.run_pending_tasks();
        let mut total = NamespaceStats::default();
        let mut out = BTreeMap::new();
        for (ns, c) in self.counters.read().iter() {
            let s = c.snapshot();
            total.hits += s.hits;
            total.misses += s.misses;
            total.keys += s.keys;
            out.insert(ns.clone(), s);
        }
        (total, out)
    }
}
