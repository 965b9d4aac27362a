//! The cache contract (service `cache`): namespaced byte or JSON values with a time to live,
//! statistics, and invalidations that reach every node.
//!
//! Two kinds of users share it. A plugin may keep values in the cache itself ([`Cache::get`],
//! [`Cache::set`]); and a plugin that keeps its own in-process cache (the auth plugin's resolved
//! sessions, the permissions plugin's decisions) uses it only as the cluster's invalidation
//! channel: it calls [`Cache::invalidate`] or [`Cache::invalidate_namespace`] whenever it drops
//! something locally, listens through [`Cache::on_invalidate`] for what other nodes dropped, and
//! while [`Cache::max_local_age`] is `Some(bound)` (this node may be missing invalidations)
//! treats its own entries older than `bound` as misses.
//!
//! The kernel only defines the contract; the `objectos-cache` plugin implements it (in process,
//! or Redis with an in-process first level).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::KernelError;

/// Whether the cache does everything it promises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum CacheState {
    Healthy,
    /// Still serving (from the local level), but something is missing: `reason` says what,
    /// e.g. that the shared store is unreachable and invalidations from other nodes may be lost.
    Degraded {
        reason: String,
    },
}

impl CacheState {
    pub fn is_healthy(&self) -> bool {
        matches!(self, Self::Healthy)
    }
}

/// Where an invalidation was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InvalidationOrigin {
    /// On this node (a subscriber that invalidated its own copy already may skip it).
    Local,
    /// On another node, received through the shared store.
    Remote,
}

/// One invalidation: a key of a namespace, or (`key: None`) the whole namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invalidation {
    pub namespace: String,
    pub key: Option<String>,
    pub origin: InvalidationOrigin,
}

/// Called for every invalidation of the namespace it was registered for, local or remote. It
/// runs on the cache's delivery task: it must return quickly (spawn anything slow) and must
/// not call back into the cache synchronously in a way that waits for delivery.
pub type InvalidationCallback = Arc<dyn Fn(&Invalidation) + Send + Sync>;

/// Counters of one namespace (or of the whole cache).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NamespaceStats {
    pub hits: u64,
    pub misses: u64,
    /// Entries held by this node (the local level; Redis keys are not counted).
    pub keys: u64,
}

/// Statistics since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// `memory` or `redis`.
    pub backend: String,
    pub total: NamespaceStats,
    pub namespaces: BTreeMap<String, NamespaceStats>,
}

/// Keeps an [`Cache::on_invalidate`] registration alive; dropping it unregisters the callback.
pub struct InvalidationSubscription {
    cancel: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl InvalidationSubscription {
    /// A subscription that runs `cancel` once when dropped.
    pub fn new(cancel: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self {
            cancel: Some(Box::new(cancel)),
        }
    }
}

impl fmt::Debug for InvalidationSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvalidationSubscription")
            .field("active", &self.cancel.is_some())
            .finish()
    }
}

impl Drop for InvalidationSubscription {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel();
        }
    }
}

/// A cache shared by the plugins of a node and, with a shared backend, by every node.
///
/// Namespaces and keys are free text (a namespace is usually the plugin's name and area, e.g.
/// `auth.sessions`). Values are bytes; [`get_json`](trait.Cache.html#method.get_json) and
/// [`set_json`](trait.Cache.html#method.set_json) (on `dyn Cache`) encode JSON.
#[async_trait]
pub trait Cache: Send + Sync + fmt::Debug + 'static {
    /// The backend's short name for health and discovery: `memory` or `redis`.
    fn backend(&self) -> &str;

    /// Healthy, or degraded with the reason.
    fn state(&self) -> CacheState;

    /// How old a local copy of shared state may be before it must be re-read. `None` while this
    /// node hears every invalidation (a copy stays valid until invalidated or expired);
    /// `Some(bound)` while it may be missing some (the shared store is unreachable), so a value
    /// revoked on another node is never used more than `bound` after it was revoked.
    fn max_local_age(&self) -> Option<Duration>;

    /// The value under `key`, if present and not expired.
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, KernelError>;

    /// Stores `value` under `key` for `ttl` (`None`: the backend's default time to live).
    /// Other nodes drop their local copy of the key.
    async fn set(
        &self,
        namespace: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), KernelError>;

    /// Removes `key` here and on every node (an [`Invalidation`] of the key).
    async fn invalidate(&self, namespace: &str, key: &str) -> Result<(), KernelError>;

    /// Removes every key of `namespace` here and on every node.
    async fn invalidate_namespace(&self, namespace: &str) -> Result<(), KernelError>;

    /// Hits, misses and keys, in total and per namespace.
    fn stats(&self) -> CacheStats;

    /// Calls `callback` for every invalidation of `namespace` (local and remote) until the
    /// returned subscription is dropped.
    fn on_invalidate(
        &self,
        namespace: &str,
        callback: InvalidationCallback,
    ) -> InvalidationSubscription;
}

impl dyn Cache {
    /// Removes `key` here and on every node: [`Cache::invalidate`] under the map name.
    pub async fn delete(&self, namespace: &str, key: &str) -> Result<(), KernelError> {
        self.invalidate(namespace, key).await
    }

    /// The JSON value under `key`; an entry that does not decode as `T` counts as absent.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<T>, KernelError> {
        Ok(self
            .get(namespace, key)
            .await?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// Stores `value` as JSON (see [`Cache::set`]).
    pub async fn set_json<T: Serialize + ?Sized>(
        &self,
        namespace: &str,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), KernelError> {
        let bytes = serde_json::to_vec(value).map_err(|e| KernelError::Cache {
            backend: self.backend().to_owned(),
            message: format!("the value for `{namespace}`/`{key}` does not encode as JSON: {e}"),
        })?;
        self.set(namespace, key, bytes, ttl).await
    }
}
