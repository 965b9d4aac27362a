//! The Redis level: values shared by every node, and the invalidation channel
//! (`<prefix>:invalidations`) that keeps every node's in-process level honest.
//!
//! How a node knows it hears the channel: every quarter of the staleness bound it publishes a
//! heartbeat carrying its node id and the (node-local, monotonic) time it was sent, and reads it
//! back on its own subscription. Redis delivers a subscriber's messages in the order it
//! executed the `PUBLISH`es, so once a heartbeat sent at `H` is back, every invalidation
//! published before `H` has been applied. A node whose last returned heartbeat is more than half
//! the bound old is deaf: it reports `degraded` and tells callers to ignore local copies older
//! than the bound (`Cache::max_local_age`), so a value revoked on another node at `t` is used at
//! most until `t + bound` (while it hears, `t > H` gives `now - t < now - H <= bound / 2`).
//!
//! A new subscription (after a restart of Redis, a killed connection, a network cut) may have
//! missed invalidations however short the gap was: the first own heartbeat it reads back drops
//! the whole in-process level and tells every subscriber that each of its namespaces was
//! invalidated (a resync), before anything read through it counts as current.
//!
//! Invalidations this node cannot publish wait in a bounded set and go out with the next
//! heartbeat that gets through; while any wait the node reports `degraded`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool_redis::redis::{self, AsyncConnectionConfig};
use deadpool_redis::{Manager, Pool, Runtime};
use futures_util::StreamExt;
use objectos_kernel::contracts::{Invalidation, InvalidationOrigin};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::CacheError;
use crate::local::Local;

/// Most invalidations kept while Redis cannot be reached; beyond it they collapse into one
/// whole-namespace invalidation per namespace.
const MAX_PENDING: usize = 10_000;

/// One message on the invalidation channel.
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    /// The sending node: a node ignores its own invalidations and reads its own heartbeats.
    node: String,
    #[serde(flatten)]
    body: Body,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Body {
    Invalidate {
        namespace: String,
        key: Option<String>,
    },
    /// Microseconds since the sender's start (only the sender reads it).
    Heartbeat { sent_us: u64 },
}

/// The connection to Redis and what this node knows about hearing it.
pub(crate) struct RedisLink {
    pool: Pool,
    client: redis::Client,
    /// The URL with its password replaced, for health and logs.
    pub(crate) shown_url: String,
    prefix: String,
    channel: String,
    pub(crate) node_id: String,
    pub(crate) bound: Duration,
    timeout: Duration,
    started: Instant,
    /// `1 +` the send time (µs since `started`) of the newest own heartbeat read back; 0: none.
    heard: AtomicU64,
    subscribed: AtomicBool,
    last_error: Mutex<Option<String>>,
    pending: Mutex<HashSet<(String, Option<String>)>>,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("url", &self.shown_url)
            .field("node_id", &self.node_id)
            .field("hearing", &self.hearing())
            .finish_non_exhaustive()
    }
}

/// `objectos-cache@<node id>`, with anything but letters, digits, `.`, `_` and `-` replaced
/// (Redis refuses spaces in a client's library name).
pub fn client_name(node_id: &str) -> String {
    let node: String = node_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("objectos-cache@{node}")
}

fn redis_err(e: impl std::fmt::Display) -> CacheError {
    CacheError::Redis(e.to_string())
}

impl RedisLink {
    /// Prepares the pool and the client; connects nothing yet (see [`RedisLink::run`]).
    pub(crate) fn new(
        url: &str,
        prefix: &str,
        node_id: &str,
        bound: Duration,
        timeout: Duration,
    ) -> Result<Self, CacheError> {
        let shown_url = objectos_kernel::cluster::redact_url(url);
        // The redis crate's parse errors may quote the URL: say only which setting is wrong.
        let bad_url = |_| {
            CacheError::Config(format!(
                "the Redis URL {shown_url} is not a valid redis:// URL"
            ))
        };
        // The subscription names itself in `CLIENT LIST` (`lib-name=objectos-cache@<node>`), so an
        // operator (or a test) can tell the nodes' subscriptions apart.
        let info = redis::IntoConnectionInfo::into_connection_info(url).map_err(bad_url)?;
        let settings = info
            .redis_settings()
            .clone()
            .set_lib_name(client_name(node_id), env!("CARGO_PKG_VERSION"));
        let client = redis::Client::open(info.set_redis_settings(settings)).map_err(bad_url)?;
        let conn_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let manager = Manager::new_with_config(url, conn_config).map_err(bad_url)?;
        let pool = Pool::builder(manager)
            .max_size(16)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| CacheError::Config(format!("the Redis pool: {e}")))?;
        Ok(Self {
            pool,
            client,
            shown_url,
            prefix: prefix.to_owned(),
            channel: format!("{prefix}:invalidations"),
            node_id: node_id.to_owned(),
            bound,
            timeout,
            started: Instant::now(),
            heard: AtomicU64::new(0),
            subscribed: AtomicBool::new(false),
            last_error: Mutex::new(None),
            pending: Mutex::new(HashSet::new()),
        })
    }

    fn micros(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether this node hears every invalidation (see the module documentation).
    pub(crate) fn hearing(&self) -> bool {
        let heard = self.heard.load(Ordering::Acquire);
        if heard == 0 || !self.subscribed.load(Ordering::Acquire) {
            return false;
        }
        let age = self.micros().saturating_sub(heard - 1);
        u128::from(age) <= self.bound.as_micros() / 2
    }

    /// How many invalidations of this node wait to be published.
    pub(crate) fn pending(&self) -> usize {
        self.pending.lock().len()
    }

    /// Why the link is not healthy, or `None`.
    pub(crate) fn problem(&self) -> Option<String> {
        let pending = self.pending();
        if self.hearing() && pending == 0 {
            return None;
        }
        let cause = self
            .last_error
            .lock()
            .clone()
            .unwrap_or_else(|| "connecting".to_owned());
        let mut reason = if self.hearing() {
            String::new()
        } else {
            format!(
                "cannot hear invalidations from other nodes through Redis ({cause}); local entries older than {} ms are not used",
                self.bound.as_millis()
            )
        };
        if pending > 0 {
            if !reason.is_empty() {
                reason.push_str("; ");
            }
            reason.push_str(&format!(
                "{pending} invalidation(s) of this node wait to be sent"
            ));
        }
        Some(reason)
    }

    fn fail(&self, what: &str, e: impl std::fmt::Display) {
        let message = format!("{what}: {e}");
        let mut last = self.last_error.lock();
        if last.as_deref() != Some(message.as_str()) {
            tracing::warn!(redis = %self.shown_url, node = %self.node_id, error = %message, "Cache: Redis is not reachable; serving from the local level.");
        }
        *last = Some(message);
    }

    /// The Redis key of a value.
    fn value_key(&self, namespace: &str, key: &str) -> String {
        format!("{}:v:{namespace}:{key}", self.prefix)
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, CacheError> {
        self.pool.get().await.map_err(redis_err)
    }

    /// Runs `f` bounded by the command timeout.
    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        tokio::time::timeout(self.timeout, f).await.map_err(|_| {
            CacheError::Redis(format!("no answer within {} ms", self.timeout.as_millis()))
        })?
    }

    /// The value and its remaining time to live.
    pub(crate) async fn get(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Option<Duration>)>, CacheError> {
        let k = self.value_key(namespace, key);
        let r = self
            .bounded(async {
                let mut conn = self.conn().await?;
                let (value, pttl): (Option<Vec<u8>>, i64) = redis::pipe()
                    .cmd("GET")
                    .arg(&k)
                    .cmd("PTTL")
                    .arg(&k)
                    .query_async(&mut conn)
                    .await
                    .map_err(redis_err)?;
                Ok(value.map(|v| {
                    let ttl = u64::try_from(pttl).ok().map(Duration::from_millis);
                    (v, ttl)
                }))
            })
            .await;
        if let Err(e) = &r {
            self.fail("GET", e);
        }
        r
    }

    /// Stores a value and tells the other nodes to drop their copy; on failure the
    /// invalidation waits (the value then lives in this node's level only, and the waiting
    /// invalidation removes the older value from Redis when it goes out).
    pub(crate) async fn set(&self, namespace: &str, key: &str, value: &[u8], ttl: Duration) {
        let k = self.value_key(namespace, key);
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let r = self
            .bounded(async {
                let mut conn = self.conn().await?;
                redis::cmd("SET")
                    .arg(&k)
                    .arg(value)
                    .arg("PX")
                    .arg(millis)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(redis_err)
            })
            .await;
        match r {
            // The new value is in Redis: the others only drop their copy.
            Ok(()) => {
                let sent = self
                    .bounded(async {
                        let mut conn = self.conn().await?;
                        self.publish(&mut conn, &self.invalidation(namespace, Some(key)))
                            .await
                    })
                    .await;
                if let Err(e) = sent {
                    self.fail("invalidate", e);
                    self.defer(namespace, Some(key));
                }
            }
            Err(e) => {
                self.fail("SET", e);
                self.defer(namespace, Some(key));
            }
        }
    }

    /// Removes the key (or the namespace) from Redis and tells the other nodes; on failure it
    /// waits for the next heartbeat that gets through.
    pub(crate) async fn invalidate(&self, namespace: &str, key: Option<&str>) {
        if !self.hearing() {
            // Redis is known to be away: do not make the caller wait for a timeout.
            self.defer(namespace, key);
            return;
        }
        if let Err(e) = self.bounded(self.send_invalidation(namespace, key)).await {
            self.fail("invalidate", e);
            self.defer(namespace, key);
        }
    }

    async fn send_invalidation(
        &self,
        namespace: &str,
        key: Option<&str>,
    ) -> Result<(), CacheError> {
        let mut conn = self.conn().await?;
        match key {
            Some(key) => {
                redis::cmd("DEL")
                    .arg(self.value_key(namespace, key))
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(redis_err)?;
            }
            None => {
                // Namespaces and the prefix are plain names, so the pattern has no glob
                // characters but the final `*`.
                let pattern = format!("{}:v:{namespace}:*", self.prefix);
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut conn)
                        .await
                        .map_err(redis_err)?;
                    if !keys.is_empty() {
                        redis::cmd("UNLINK")
                            .arg(&keys)
                            .query_async::<()>(&mut conn)
                            .await
                            .map_err(redis_err)?;
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
        }
        self.publish(&mut conn, &self.invalidation(namespace, key))
            .await
    }

    fn invalidation(&self, namespace: &str, key: Option<&str>) -> Message {
        Message {
            node: self.node_id.clone(),
            body: Body::Invalidate {
                namespace: namespace.to_owned(),
                key: key.map(str::to_owned),
            },
        }
    }

    async fn publish(
        &self,
        conn: &mut deadpool_redis::Connection,
        message: &Message,
    ) -> Result<(), CacheError> {
        let payload = serde_json::to_vec(message).map_err(redis_err)?;
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async::<i64>(conn)
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    fn defer(&self, namespace: &str, key: Option<&str>) {
        let mut pending = self.pending.lock();
        pending.insert((namespace.to_owned(), key.map(str::to_owned)));
        if pending.len() > MAX_PENDING {
            let namespaces: HashSet<(String, Option<String>)> =
                pending.drain().map(|(ns, _)| (ns, None)).collect();
            *pending = namespaces;
        }
    }

    /// Publishes what waits; what fails again stays.
    async fn flush_pending(&self) {
        let items: Vec<(String, Option<String>)> = self.pending.lock().drain().collect();
        for (i, (ns, key)) in items.iter().enumerate() {
            if let Err(e) = self
                .bounded(self.send_invalidation(ns, key.as_deref()))
                .await
            {
                self.fail("invalidate", e);
                for (ns, key) in &items[i..] {
                    self.defer(ns, key.as_deref());
                }
                return;
            }
        }
    }

    /// The heartbeat and the subscription, until the task is aborted.
    pub(crate) async fn run(self: Arc<Self>, local: Arc<Local>) {
        let beat = tokio::spawn(self.clone().beat());
        // Abort the heartbeat with the listener (the caller aborts this future's task).
        let _beat = AbortOnDrop(beat);
        self.listen(&local).await;
    }

    fn heartbeat_interval(&self) -> Duration {
        (self.bound / 4).max(Duration::from_millis(20))
    }

    async fn beat(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.heartbeat_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let message = Message {
                node: self.node_id.clone(),
                body: Body::Heartbeat {
                    sent_us: self.micros(),
                },
            };
            let sent = self
                .bounded(async {
                    let mut conn = self.conn().await?;
                    self.publish(&mut conn, &message).await
                })
                .await;
            match sent {
                Ok(()) => {
                    if self.pending() > 0 {
                        self.flush_pending().await;
                    }
                }
                Err(e) => self.fail("heartbeat", e),
            }
        }
    }

    async fn listen(&self, local: &Local) {
        let mut backoff = Backoff::default();
        // Silence this long means the subscription is gone even if TCP has not said so.
        let silence = self.heartbeat_interval() * 4;
        loop {
            let connected = tokio::time::timeout(self.timeout, async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(&self.channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            })
            .await;
            match connected {
                Ok(Ok(mut pubsub)) => {
                    self.subscribed.store(true, Ordering::Release);
                    let mut fresh = true;
                    let mut stream = pubsub.on_message();
                    loop {
                        match tokio::time::timeout(silence, stream.next()).await {
                            Ok(Some(msg)) => {
                                if self.handle(local, msg.get_payload_bytes(), &mut fresh) {
                                    backoff = Backoff::default();
                                }
                            }
                            Ok(None) => {
                                self.fail("subscription", "the connection was closed");
                                break;
                            }
                            Err(_) => {
                                self.fail(
                                    "subscription",
                                    format!("no message for {} ms", silence.as_millis()),
                                );
                                break;
                            }
                        }
                    }
                    self.subscribed.store(false, Ordering::Release);
                }
                Ok(Err(e)) => self.fail("subscribe", e),
                Err(_) => self.fail(
                    "subscribe",
                    format!("no connection within {} ms", self.timeout.as_millis()),
                ),
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// Applies one message; true when it was this node's own heartbeat.
    fn handle(&self, local: &Local, payload: &[u8], fresh: &mut bool) -> bool {
        let Ok(message) = serde_json::from_slice::<Message>(payload) else {
            tracing::debug!(channel = %self.channel, "Cache: ignored a message that is not ours.");
            return false;
        };
        let own = message.node == self.node_id;
        match message.body {
            Body::Invalidate { namespace, key } if !own => {
                local.invalidate(&Invalidation {
                    namespace,
                    key,
                    origin: InvalidationOrigin::Remote,
                });
                false
            }
            Body::Invalidate { .. } => false,
            Body::Heartbeat { .. } if !own => false,
            Body::Heartbeat { sent_us } => {
                if std::mem::take(fresh) {
                    self.resync(local);
                }
                self.heard.fetch_max(sent_us + 1, Ordering::AcqRel);
                let mut last = self.last_error.lock();
                if last.take().is_some() {
                    tracing::info!(redis = %self.shown_url, node = %self.node_id, "Cache: hearing invalidations through Redis again.");
                }
                true
            }
        }
    }

    /// After a gap in the subscription: nothing held locally can be trusted.
    fn resync(&self, local: &Local) {
        local.clear();
        for namespace in local.subscribed_namespaces() {
            local.notify(&Invalidation {
                namespace,
                key: None,
                origin: InvalidationOrigin::Remote,
            });
        }
    }
}

/// Reconnection delays: 50 ms doubling to 5 s, each with up to a quarter of random jitter so
/// nodes cut off together do not reconnect in step.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: Duration::from_millis(50),
        }
    }
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(5));
        let jitter_range = u64::try_from(base.as_micros() / 4).unwrap_or(0).max(1);
        let random =
            u64::try_from(uuid::Uuid::new_v4().as_u128() & u128::from(u64::MAX)).unwrap_or(0);
        base + Duration::from_micros(random % jitter_range)
    }
}

/// Aborts the task when dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_five_seconds() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first < Duration::from_millis(63));
        for _ in 0..20 {
            b.next_delay();
        }
        let late = b.next_delay();
        assert!(late >= Duration::from_secs(5) && late <= Duration::from_millis(6250));
    }

    #[test]
    fn messages_round_trip() {
        let m = Message {
            node: "n1".into(),
            body: Body::Invalidate {
                namespace: "auth.sessions".into(),
                key: None,
            },
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"node":"n1","kind":"invalidate","namespace":"auth.sessions","key":null}"#
        );
        let back: Message = serde_json::from_str(&text).unwrap();
        assert!(matches!(back.body, Body::Invalidate { key: None, .. }));
    }
}
