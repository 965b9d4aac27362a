//! An in-memory cache of resolved session tokens, so a signed-in request costs no database
//! round trip to authenticate.
//!
//! Correctness rests on two bounds:
//! - Every write of this crate's tables through [`crate::store::Db`] bumps a write generation
//!   (the epoch) after it commits, and an entry is used only while the epoch is the one read
//!   before the entry's rows were loaded. A sign-out, revocation, ban, role or membership
//!   change made on this node therefore takes effect on the next request.
//! - Entries live at most `auth.sessionCacheSeconds`, which bounds how long a change made on
//!   another node (or written straight into the tables) goes unseen.
//! - With a `cache` service installed (the kernel's `Cache` contract; see [`ClusterLink`]),
//!   other nodes' changes arrive within milliseconds: every epoch bump here is published as an
//!   invalidation of [`NAMESPACE`], and one heard from another node bumps the epoch here. While
//!   the cache reports it may be missing invalidations (`max_local_age()` is the staleness
//!   bound), entries cached longer ago than the bound are not used, so a session revoked on
//!   another node is refused here within the bound. Without the service nothing changes.
//!
//! Keys are the token's SHA-256 digest, never the token. The idle timeout is checked against
//! activity seen in memory; the stored `last_seen_at` is refreshed at most every
//! [`activity_interval`], which is all the idle timeout (minutes) needs.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use objectos_kernel::contracts::{Cache, InvalidationOrigin, InvalidationSubscription};
use objectos_spec::security::SessionPolicy;

use crate::service::{Resolved, minutes};

/// Most tokens kept at once; beyond it the least useful entries are evicted.
const MAX_ENTRIES: u64 = 100_000;

/// The cache namespace whose invalidations carry "the auth tables changed" between nodes.
pub(crate) const NAMESPACE: &str = "auth.sessions";

/// The write generation of the auth tables: cached resolutions older than the last bump are not
/// used. A bump also wakes the task that tells the other nodes (when a cache service is attached).
#[derive(Debug, Default)]
pub(crate) struct Epoch {
    value: AtomicU64,
    changed: tokio::sync::Notify,
}

impl Epoch {
    pub(crate) fn get(&self) -> u64 {
        self.value.load(Ordering::Acquire)
    }

    /// A write made on this node: stale here, and on the other nodes once the task publishes.
    pub(crate) fn bump(&self) {
        self.value.fetch_add(1, Ordering::AcqRel);
        // Stores a permit when the task is busy publishing, so bursts coalesce into one more
        // message instead of being lost.
        self.changed.notify_one();
    }

    /// A write made on another node: stale here only (publishing it again would echo).
    fn bump_from_elsewhere(&self) {
        self.value.fetch_add(1, Ordering::AcqRel);
    }
}

/// The cluster side of the cache, present when a `cache` service was found at start.
struct ClusterLink {
    cache: Arc<dyn Cache>,
    _subscription: InvalidationSubscription,
    publisher: tokio::task::JoinHandle<()>,
}

impl Drop for ClusterLink {
    fn drop(&mut self) {
        self.publisher.abort();
    }
}

/// One resolved session token.
#[derive(Debug)]
pub(crate) struct CachedSession {
    pub(crate) resolved: Resolved,
    pub(crate) created: i64,
    pub(crate) expires: i64,
    /// Latest activity seen by this node (epoch milliseconds).
    last_seen: AtomicI64,
    /// Activity time last written to the session row.
    stored_last_seen: AtomicI64,
    epoch: u64,
    /// When this node cached it: what the staleness bound is measured against.
    cached_at: Instant,
}

impl CachedSession {
    pub(crate) fn new(
        resolved: Resolved,
        created: i64,
        expires: i64,
        stored_last_seen: i64,
        epoch: u64,
    ) -> Self {
        Self {
            resolved,
            created,
            expires,
            last_seen: AtomicI64::new(stored_last_seen),
            stored_last_seen: AtomicI64::new(stored_last_seen),
            epoch,
            cached_at: Instant::now(),
        }
    }

    /// Whether the session is still within its lifetime and timeouts at `now`.
    pub(crate) fn alive(&self, now: i64, policy: &SessionPolicy) -> bool {
        alive(
            now,
            self.created,
            self.last_seen.load(Ordering::Relaxed),
            self.expires,
            policy,
        )
    }

    /// Records activity at `now`; true when this caller should write it to the session row
    /// (at most one caller per interval wins the exchange).
    pub(crate) fn touch(&self, now: i64, policy: &SessionPolicy) -> bool {
        self.last_seen.fetch_max(now, Ordering::Relaxed);
        let stored = self.stored_last_seen.load(Ordering::Relaxed);
        now - stored >= activity_interval(policy)
            && self
                .stored_last_seen
                .compare_exchange(stored, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }
}

/// Whether a session created at `created`, last active at `last_seen`, ending at `expires`
/// is usable at `now` under `policy`.
pub(crate) fn alive(
    now: i64,
    created: i64,
    last_seen: i64,
    expires: i64,
    policy: &SessionPolicy,
) -> bool {
    now < expires
        && now - created < minutes(policy.absolute_timeout)
        && now - last_seen < minutes(policy.idle_timeout)
}

/// How stale the stored activity time may get: a tenth of the idle timeout, between one second
/// and one minute, so the stored value never shortens a session's idle time by more than that.
pub(crate) fn activity_interval(policy: &SessionPolicy) -> i64 {
    (minutes(policy.idle_timeout) / 10).clamp(1_000, 60_000)
}

/// The cache (disabled when `auth.sessionCacheSeconds` is 0).
pub(crate) struct SessionCache {
    map: Option<moka::sync::Cache<String, Arc<CachedSession>>>,
    cluster: OnceLock<ClusterLink>,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("enabled", &self.map.is_some())
            .field("cluster", &self.cluster.get().map(|l| l.cache.backend()))
            .finish_non_exhaustive()
    }
}

impl SessionCache {
    pub(crate) fn new(seconds: u32) -> Self {
        let map = (seconds > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(Duration::from_secs(u64::from(seconds)))
                .build()
        });
        Self {
            map,
            cluster: OnceLock::new(),
        }
    }

    /// Joins the cluster through `cache`: bumps of `epoch` are published to the other nodes and
    /// theirs bump it here. Once only (a second call is ignored); needs a Tokio runtime.
    pub(crate) fn attach(&self, cache: Arc<dyn Cache>, epoch: Arc<Epoch>) {
        if self.cluster.get().is_some() {
            return;
        }
        let heard = epoch.clone();
        let subscription = cache.on_invalidate(
            NAMESPACE,
            Arc::new(move |inv| {
                // Our own invalidations come back as `Local`: the epoch moved already.
                if inv.origin == InvalidationOrigin::Remote {
                    heard.bump_from_elsewhere();
                }
            }),
        );
        let publish_to = cache.clone();
        let publisher = tokio::spawn(async move {
            loop {
                epoch.changed.notified().await;
                // One namespace-wide message per burst of writes: the epoch is global, so the
                // other nodes drop every cached resolution, as this node does.
                if let Err(e) = publish_to.invalidate_namespace(NAMESPACE).await {
                    tracing::warn!(error = %e, "Could not tell the other nodes that sessions changed.");
                }
            }
        });
        let _ = self.cluster.set(ClusterLink {
            cache,
            _subscription: subscription,
            publisher,
        });
    }

    /// The entry for `token_hash`, if cached under the current write generation `epoch` (and,
    /// while the cluster cache may be missing invalidations, cached within the staleness bound).
    pub(crate) fn get(&self, token_hash: &str, epoch: u64) -> Option<Arc<CachedSession>> {
        let map = self.map.as_ref()?;
        let entry = map.get(token_hash)?;
        let too_old = self
            .cluster
            .get()
            .and_then(|l| l.cache.max_local_age())
            .is_some_and(|bound| entry.cached_at.elapsed() > bound);
        if entry.epoch == epoch && !too_old {
            Some(entry)
        } else {
            map.invalidate(token_hash);
            None
        }
    }

    pub(crate) fn insert(&self, token_hash: String, entry: CachedSession) {
        if let Some(map) = &self.map {
            map.insert(token_hash, Arc::new(entry));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved() -> Resolved {
        Resolved {
            user_id: "u".into(),
            email: "u@example.com".into(),
            is_admin: false,
            tenant: Some("o".into()),
            org_role: Some("member".into()),
            session_id: Some("s".into()),
            api_key_id: None,
            scopes: Vec::new(),
        }
    }

    #[test]
    fn entries_from_an_older_generation_are_not_used() {
        let cache = SessionCache::new(5);
        cache.insert("h".into(), CachedSession::new(resolved(), 0, 10, 0, 7));
        assert!(cache.get("h", 7).is_some());
        assert!(cache.get("h", 8).is_none());
        // Dropped, not just hidden: the older generation never comes back.
        assert!(cache.get("h", 7).is_none());
    }

    #[test]
    fn disabled_cache_keeps_nothing() {
        let cache = SessionCache::new(0);
        cache.insert("h".into(), CachedSession::new(resolved(), 0, 10, 0, 1));
        assert!(cache.get("h", 1).is_none());
    }

    #[test]
    fn timeouts_use_activity_seen_in_memory() {
        let policy = SessionPolicy {
            idle_timeout: 1,
            absolute_timeout: 10,
            ..SessionPolicy::default()
        };
        let e = CachedSession::new(resolved(), 0, i64::MAX, 0, 1);
        assert!(e.alive(59_999, &policy));
        assert!(!e.alive(60_000, &policy));
        // Activity at 50 s keeps it alive to 110 s; one writer per interval (6 s here), but
        // every touch counts as activity.
        assert!(e.touch(50_000, &policy));
        assert!(!e.touch(50_001, &policy));
        assert!(e.alive(110_000, &policy));
        assert!(!e.alive(110_001, &policy));
        // The absolute timeout holds whatever the activity.
        assert!(e.touch(599_000, &policy));
        assert!(!e.alive(600_000, &policy));
    }
}
