//! [`ObjectCache`]: the `Cache` contract on the in-process level alone (memory) or in front of
//! Redis.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use objectos_kernel::KernelError;
use objectos_kernel::contracts::{
    Cache, CacheState, CacheStats, Invalidation, InvalidationCallback, InvalidationOrigin,
    InvalidationSubscription,
};
use parking_lot::Mutex;

use crate::config::{CacheConfig, is_plain_name};
use crate::error::CacheError;
use crate::local::Local;
use crate::redis::{AbortOnDrop, RedisLink};

/// The cache service (registered as `cache`).
#[derive(Debug)]
pub struct ObjectCache {
    local: Arc<Local>,
    link: Option<Arc<RedisLink>>,
    default_ttl: Duration,
    task: Mutex<Option<AbortOnDrop>>,
}

fn check_namespace(namespace: &str) -> Result<(), KernelError> {
    if is_plain_name(namespace) {
        Ok(())
    } else {
        Err(CacheError::Namespace(namespace.to_owned()).into())
    }
}

impl ObjectCache {
    /// The in-process cache: invalidations reach this node only.
    pub fn memory(config: &CacheConfig) -> Self {
        Self {
            local: Arc::new(Local::new(config.max_entries)),
            link: None,
            default_ttl: Duration::from_secs(config.default_ttl_secs),
            task: Mutex::new(None),
        }
    }

    /// Redis at `url` with an in-process first level; `node_id` must be unique per node.
    /// Connects nothing until [`ObjectCache::start`].
    pub fn redis(config: &CacheConfig, url: &str, node_id: &str) -> Result<Self, CacheError> {
        let link = RedisLink::new(
            url,
            &config.prefix,
            node_id,
            Duration::from_millis(config.staleness_ms),
            Duration::from_millis(config.redis_timeout_ms),
        )?;
        Ok(Self {
            link: Some(Arc::new(link)),
            ..Self::memory(config)
        })
    }

    /// Starts the subscription and the heartbeat (Redis only; needs a Tokio runtime). Calling
    /// it again does nothing.
    pub fn start(&self) {
        let Some(link) = &self.link else {
            return;
        };
        let mut task = self.task.lock();
        if task.is_none() {
            *task = Some(AbortOnDrop(tokio::spawn(
                link.clone().run(self.local.clone()),
            )));
        }
    }

    /// Waits until the node hears invalidations (true), at most `within`; true at once in memory
    /// mode.
    pub async fn wait_until_listening(&self, within: Duration) -> bool {
        let Some(link) = &self.link else {
            return true;
        };
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if link.hearing() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the subscription and the heartbeat.
    pub fn stop(&self) {
        self.task.lock().take();
    }

    /// The node id in Redis mode.
    pub fn node_id(&self) -> Option<&str> {
        self.link.as_ref().map(|l| l.node_id.as_str())
    }

    /// Where the values live, for health: `memory`, or `redis` with the redacted URL.
    pub fn describe(&self) -> String {
        match &self.link {
            None => "memory (this node only)".to_owned(),
            Some(l) => format!("redis ({}) with an in-process first level", l.shown_url),
        }
    }

    /// The local level may be used without asking Redis (`None` in memory mode).
    fn hearing(&self) -> Option<bool> {
        self.link.as_ref().map(|l| l.hearing())
    }

    fn local_invalidate(&self, namespace: &str, key: Option<&str>) {
        self.local.invalidate(&Invalidation {
            namespace: namespace.to_owned(),
            key: key.map(str::to_owned),
            origin: InvalidationOrigin::Local,
        });
    }
}

#[async_trait]
impl Cache for ObjectCache {
    fn backend(&self) -> &str {
        if self.link.is_some() {
            "redis"
        } else {
            "memory"
        }
    }

    fn state(&self) -> CacheState {
        match self.link.as_ref().and_then(|l| l.problem()) {
            None => CacheState::Healthy,
            Some(reason) => CacheState::Degraded { reason },
        }
    }

    fn max_local_age(&self) -> Option<Duration> {
        match &self.link {
            Some(l) if !l.hearing() => Some(l.bound),
            _ => None,
        }
    }

    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, KernelError> {
        check_namespace(namespace)?;
        let counters = self.local.counters(namespace);
        if let Some(entry) = self.local.get(namespace, key, self.max_local_age()) {
            counters.hit();
            return Ok(Some(entry.value.clone()));
        }
        // Only Redis mode goes on, and only while Redis is heard: a node cut off answers from
        // its own level at once instead of waiting for a timeout on every miss.
        let (Some(link), Some(true)) = (&self.link, self.hearing()) else {
            counters.miss();
            return Ok(None);
        };
        let generation = counters.generation();
        match link.get(namespace, key).await {
            Ok(Some((value, ttl))) => {
                counters.hit();
                // Kept locally only if no invalidation of the namespace arrived meanwhile: the
                // value read may be the one it removed.
                if counters.generation() == generation {
                    let ttl = ttl.map_or(self.default_ttl, |t| t.min(self.default_ttl));
                    self.local.insert(namespace, key, value.clone(), ttl);
                }
                Ok(Some(value))
            }
            // A failed read is a miss: the caller recomputes, which is always correct.
            Ok(None) | Err(_) => {
                counters.miss();
                Ok(None)
            }
        }
    }

    async fn set(
        &self,
        namespace: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), KernelError> {
        check_namespace(namespace)?;
        let ttl = ttl
            .unwrap_or(self.default_ttl)
            .max(Duration::from_millis(1));
        if let Some(link) = &self.link {
            link.set(namespace, key, &value, ttl).await;
        }
        self.local.insert(namespace, key, value, ttl);
        Ok(())
    }

    async fn invalidate(&self, namespace: &str, key: &str) -> Result<(), KernelError> {
        check_namespace(namespace)?;
        self.local_invalidate(namespace, Some(key));
        if let Some(link) = &self.link {
            link.invalidate(namespace, Some(key)).await;
        }
        Ok(())
    }

    async fn invalidate_namespace(&self, namespace: &str) -> Result<(), KernelError> {
        check_namespace(namespace)?;
        self.local_invalidate(namespace, None);
        if let Some(link) = &self.link {
            link.invalidate(namespace, None).await;
        }
        Ok(())
    }

    fn stats(&self) -> CacheStats {
        let (total, namespaces) = self.local.stats();
        CacheStats {
            backend: self.backend().to_owned(),
            total,
            namespaces,
        }
    }

    fn on_invalidate(
        &self,
        namespace: &str,
        callback: InvalidationCallback,
    ) -> InvalidationSubscription {
        self.local.subscribe(namespace, callback)
    }
}
