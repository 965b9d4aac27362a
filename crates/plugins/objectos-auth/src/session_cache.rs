//! An in-memory cache of resolved session tokens, so a signed-in request costs no database
//! round trip to authenticate.
//!
//! Correctness rests on two bounds:
//! - Every write of this crate's tables through [`crate::store::Db`] bumps a write generation
//!   (the [`Epoch`]) after it commits, and an entry is used only while no bump that concerns it
//!   came after the sequence read before the entry's rows were loaded. A write that names the
//!   user it concerns (their sessions, memberships, role) makes only that user's entries stale;
//!   any other write makes every entry stale. A sign-out, revocation, ban, role or membership
//!   change made on this node therefore takes effect on the next request.
//! - Entries live at most `auth.sessionCacheSeconds`, which bounds how long a change made on
//!   another node (or written straight into the tables) goes unseen.
//! - With a `cache` service installed (the kernel's `Cache` contract; see [`ClusterLink`]),
//!   other nodes' changes arrive within milliseconds: every epoch bump here is published as an
//!   invalidation of [`NAMESPACE`] (keyed by the user for a user bump), and one heard from
//!   another node bumps the epoch here. While
//!   the cache reports it may be missing invalidations (`max_local_age()` is the staleness
//!   bound), entries cached longer ago than the bound are not used, so a session revoked on
//!   another node is refused here within the bound. Without the service nothing changes.
//!
//! Keys are the token's SHA-256 digest, never the token. The idle timeout is checked against
//! activity seen in memory; the stored `last_seen_at` is refreshed at most every
//! [`activity_interval`], which is all the idle timeout (minutes) needs.

use std::collections::{HashMap, HashSet};
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

/// The write generation of the auth tables: cached resolutions loaded before a write that
/// concerns them are not used. A bump also wakes the task that tells the other nodes (when a
/// cache service is attached).
///
/// Every bump advances one sequence. A resolution remembers the sequence read before its rows
/// were loaded, and is stale once a bump after that read concerns it: a global bump (a write
/// whose reach is unknown) concerns every resolution, a user bump only that user's. A user bump
/// is remembered for `keep` (the cache's entry lifetime, see [`Epoch::keep_for`]); a resolution
/// older than that is refused by its age anyway, so forgetting the bump then cannot revive it.
#[derive(Debug, Default)]
pub(crate) struct Epoch {
    /// Advanced by every bump.
    sequence: AtomicU64,
    /// The sequence value of the last global bump.
    global: AtomicU64,
    /// Per user id: the sequence value of the user's last bump, and when it happened.
    users: parking_lot::Mutex<HashMap<String, (u64, Instant)>>,
    /// How long a user bump must be remembered, in milliseconds (0 until [`Epoch::keep_for`]).
    keep_ms: AtomicU64,
    /// What the publisher still has to tell the other nodes.
    unpublished: parking_lot::Mutex<Unpublished>,
    changed: tokio::sync::Notify,
}

/// Bumps made here since the publisher last ran.
#[derive(Debug, Default)]
struct Unpublished {
    global: bool,
    users: HashSet<String>,
}

/// User bumps remembered before the old ones are looked at for removal.
const USER_BUMPS_BEFORE_PRUNE: usize = 4_096;

impl Epoch {
    /// The sequence now: read it before loading the rows a resolution is built from.
    pub(crate) fn get(&self) -> u64 {
        self.sequence.load(Ordering::Acquire)
    }

    /// Remember user bumps for at least `lifetime` (the session cache's entry lifetime).
    pub(crate) fn keep_for(&self, lifetime: Duration) {
        let ms = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
        self.keep_ms.store(ms, Ordering::Release);
    }

    /// Whether a resolution of `user_id` loaded after reading `sequence` is still current.
    pub(crate) fn current(&self, sequence: u64, user_id: &str) -> bool {
        if self.global.load(Ordering::Acquire) > sequence {
            return false;
        }
        self.users
            .lock()
            .get(user_id)
            .is_none_or(|(bumped, _)| *bumped <= sequence)
    }

    /// A write made on this node whose reach is unknown: every resolution is stale, here and
    /// on the other nodes once the task publishes.
    pub(crate) fn bump(&self) {
        self.bump_global();
        self.unpublished.lock().global = true;
        // Stores a permit when the task is busy publishing, so bursts coalesce into one more
        // message instead of being lost.
        self.changed.notify_one();
    }

    /// A write made on this node that concerns `user_id` only (their sessions, email or
    /// memberships): only their resolutions are stale.
    pub(crate) fn bump_user(&self, user_id: &str) {
        self.bump_one_user(user_id);
        self.unpublished.lock().users.insert(user_id.to_owned());
        self.changed.notify_one();
    }

    fn bump_global(&self) {
        let now = self.sequence.fetch_add(1, Ordering::AcqRel) + 1;
        self.global.fetch_max(now, Ordering::AcqRel);
    }

    fn bump_one_user(&self, user_id: &str) {
        let mut users = self.users.lock();
        // Under the lock, so the stored value never goes backwards for a user.
        let now = self.sequence.fetch_add(1, Ordering::AcqRel) + 1;
        if users.len() >= USER_BUMPS_BEFORE_PRUNE {
            let keep = Duration::from_millis(self.keep_ms.load(Ordering::Acquire));
            users.retain(|_, (_, at)| at.elapsed() <= keep);
        }
        users.insert(user_id.to_owned(), (now, Instant::now()));
    }

    /// A write made on another node: stale here only (publishing it again would echo).
    fn bump_from_elsewhere(&self, user_id: Option<&str>) {
        match user_id {
            Some(user) => self.bump_one_user(user),
            None => self.bump_global(),
        }
    }

    /// Takes what has not been published yet.
    fn take_unpublished(&self) -> Unpublished {
        std::mem::take(&mut *self.unpublished.lock())
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
    /// The [`Epoch`] sequence read before the rows were loaded.
    sequence: u64,
    /// When that sequence was read: the entry's age (lifetime and staleness bound) counts from
    /// there, never from the later insert, so a forgotten user bump cannot outlive it.
    read_at: Instant,
}

impl CachedSession {
    pub(crate) fn new(
        resolved: Resolved,
        created: i64,
        expires: i64,
        stored_last_seen: i64,
        (sequence, read_at): (u64, Instant),
    ) -> Self {
        Self {
            resolved,
            created,
            expires,
            last_seen: AtomicI64::new(stored_last_seen),
            stored_last_seen: AtomicI64::new(stored_last_seen),
            sequence,
            read_at,
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
    /// The entries' lifetime, counted from when their sequence was read.
    lifetime: Duration,
    epoch: Arc<Epoch>,
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
    /// A cache whose entries live `seconds`, judged current against `epoch` (the auth tables'
    /// write generation, see [`crate::store::Db`]).
    pub(crate) fn new(seconds: u32, epoch: Arc<Epoch>) -> Self {
        let lifetime = Duration::from_secs(u64::from(seconds));
        epoch.keep_for(lifetime);
        let map = (seconds > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(lifetime)
                .build()
        });
        Self {
            map,
            lifetime,
            epoch,
            cluster: OnceLock::new(),
        }
    }

    /// Joins the cluster through `cache`: bumps of the epoch are published to the other nodes
    /// and theirs bump it here. Once only (a second call is ignored); needs a Tokio runtime.
    pub(crate) fn attach(&self, cache: Arc<dyn Cache>) {
        if self.cluster.get().is_some() {
            return;
        }
        let heard = self.epoch.clone();
        let subscription = cache.on_invalidate(
            NAMESPACE,
            Arc::new(move |inv| {
                // Our own invalidations come back as `Local`: the epoch moved already. A key is
                // the user whose resolutions changed; none means all of them.
                if inv.origin == InvalidationOrigin::Remote {
                    heard.bump_from_elsewhere(inv.key.as_deref());
                }
            }),
        );
        let publish_to = cache.clone();
        let epoch = self.epoch.clone();
        let publisher = tokio::spawn(async move {
            loop {
                epoch.changed.notified().await;
                // One message per burst of writes: namespace-wide when any write's reach was
                // unknown, else one per user concerned, so a sign-out on one node does not cost
                // every other user their cached resolution on every node.
                let todo = epoch.take_unpublished();
                let sent = if todo.global {
                    publish_to.invalidate_namespace(NAMESPACE).await
                } else {
                    let mut sent = Ok(());
                    for user in &todo.users {
                        sent = sent.and(publish_to.invalidate(NAMESPACE, user).await);
                    }
                    sent
                };
                if let Err(e) = sent {
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

    /// The sequence to remember with a resolution about to be loaded, and when it was read.
    pub(crate) fn read_sequence(&self) -> (u64, Instant) {
        (self.epoch.get(), Instant::now())
    }

    /// The entry for `token_hash`, if no write concerning its user was made since its rows were
    /// read (and, while the cluster cache may be missing invalidations, read within the
    /// staleness bound).
    pub(crate) fn get(&self, token_hash: &str) -> Option<Arc<CachedSession>> {
        let map = self.map.as_ref()?;
        let entry = map.get(token_hash)?;
        let age = entry.read_at.elapsed();
        let too_old = age > self.lifetime
            || self
                .cluster
                .get()
                .and_then(|l| l.cache.max_local_age())
                .is_some_and(|bound| age > bound);
        if !too_old && self.epoch.current(entry.sequence, &entry.resolved.user_id) {
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

    fn resolved_for(user: &str) -> Resolved {
        Resolved {
            user_id: user.into(),
            ..resolved()
        }
    }

    fn put(cache: &SessionCache, hash: &str, user: &str, read: (u64, Instant)) {
        let entry = CachedSession::new(resolved_for(user), 0, 10, 0, read);
        cache.insert(hash.into(), entry);
    }

    /// Ada's token `a` and Bob's `b`, cached under the sequence now.
    fn cache_ada_and_bob(cache: &SessionCache) {
        let read = cache.read_sequence();
        put(cache, "a", "ada", read);
        put(cache, "b", "bob", read);
    }

    fn cache(seconds: u32) -> (SessionCache, Arc<Epoch>) {
        let epoch = Arc::new(Epoch::default());
        (SessionCache::new(seconds, epoch.clone()), epoch)
    }

    #[test]
    fn a_global_bump_after_the_read_makes_every_entry_stale() {
        let (cache, epoch) = cache(5);
        let read = cache.read_sequence();
        cache.insert("h".into(), CachedSession::new(resolved(), 0, 10, 0, read));
        assert!(cache.get("h").is_some());
        epoch.bump();
        assert!(cache.get("h").is_none());
        // Dropped, not just hidden: nothing brings it back.
        assert!(cache.get("h").is_none());
    }

    #[test]
    fn a_user_bump_makes_only_that_users_entries_stale() {
        let (cache, epoch) = cache(5);
        cache_ada_and_bob(&cache);
        epoch.bump_user("ada");
        assert!(cache.get("a").is_none(), "ada's session changed");
        assert!(cache.get("b").is_some(), "bob's did not");
        assert_eq!(
            epoch.take_unpublished().users,
            HashSet::from(["ada".to_owned()])
        );
    }

    #[test]
    fn a_bump_between_the_read_and_the_insert_still_counts() {
        // The rows were read before the write committed: the entry must not be used.
        let (cache, epoch) = cache(5);
        let read = cache.read_sequence();
        epoch.bump_user("ada");
        put(&cache, "a", "ada", read);
        assert!(cache.get("a").is_none());
        // Read after the write: current.
        let read = cache.read_sequence();
        put(&cache, "a", "ada", read);
        assert!(cache.get("a").is_some());
    }

    #[test]
    fn bumps_heard_from_other_nodes_count_and_are_not_published_again() {
        let (cache, epoch) = cache(5);
        cache_ada_and_bob(&cache);
        epoch.bump_from_elsewhere(Some("ada"));
        assert!(cache.get("a").is_none());
        assert!(cache.get("b").is_some());
        epoch.bump_from_elsewhere(None);
        assert!(cache.get("b").is_none());
        let todo = epoch.take_unpublished();
        assert!(!todo.global && todo.users.is_empty(), "nothing to echo");
    }

    #[test]
    fn forgotten_user_bumps_cannot_revive_an_entry() {
        // Pruning only forgets bumps older than the entries' lifetime, and an entry is judged
        // by the age of its read, so an entry read before a forgotten bump is already refused.
        let (cache, epoch) = cache(1);
        let read = (
            cache.read_sequence().0,
            Instant::now() - Duration::from_secs(2),
        );
        epoch.bump_user("ada");
        epoch.users.lock().clear();
        put(&cache, "a", "ada", read);
        assert!(cache.get("a").is_none());
    }

    #[test]
    fn disabled_cache_keeps_nothing() {
        let (cache, _) = cache(0);
        let read = cache.read_sequence();
        cache.insert("h".into(), CachedSession::new(resolved(), 0, 10, 0, read));
        assert!(cache.get("h").is_none());
    }

    #[test]
    fn timeouts_use_activity_seen_in_memory() {
        let policy = SessionPolicy {
            idle_timeout: 1,
            absolute_timeout: 10,
            ..SessionPolicy::default()
        };
        let e = CachedSession::new(resolved(), 0, i64::MAX, 0, (1, Instant::now()));
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
