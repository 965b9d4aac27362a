//! Two nodes (two kernels on one database) whose session caches are linked through a `cache`
//! service: a session revoked on node 1 is refused on node 2 after the invalidation, and within
//! the staleness bound when node 2 cannot hear invalidations.
//!
//! The `cache` service here is a test double of the kernel's `Cache` contract that hands each
//! invalidation straight to the other node (or drops it while that node is "deaf"): this crate
//! may not depend on the cache plugin. The Redis path itself (pub/sub, heartbeats, a killed
//! subscription, a cut network) is tested against the real Redis in `objectos-cache`, and two
//! real `objectos serve` processes on one Redis in `tests/security`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use objectos_auth::{AuthConfig, AuthPlugin, AuthService, RequestMeta};
use objectos_data::{DataConfig, DataPlugin};
use objectos_kernel::contracts::{
    Cache, CacheState, CacheStats, Invalidation, InvalidationCallback, InvalidationOrigin,
    InvalidationSubscription,
};
use objectos_kernel::{InitContext, Kernel, KernelError, Plugin, PluginError, async_trait};
use objectos_spec::{PluginManifest, RuntimeMode};

use crate::support::{PASSWORD, test_config};

const BOUND: Duration = Duration::from_millis(300);

type Subscribers = Vec<(u64, String, InvalidationCallback)>;

/// The wire between the nodes' caches.
#[derive(Default)]
struct Wire {
    nodes: Mutex<Vec<Weak<LinkedCache>>>,
    /// Every invalidation sent over the wire: namespace and key (`None`: the whole namespace).
    sent: Mutex<Vec<(String, Option<String>)>>,
}

/// One node's `cache` service: invalidations go to this node's subscribers (`Local`) and to the
/// other nodes' (`Remote`), unless the receiving node is deaf.
struct LinkedCache {
    wire: Arc<Wire>,
    subscribers: Arc<Mutex<Subscribers>>,
    next: AtomicU64,
    deaf: AtomicBool,
}

impl std::fmt::Debug for LinkedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkedCache").finish_non_exhaustive()
    }
}

impl LinkedCache {
    fn join(wire: &Arc<Wire>) -> Arc<Self> {
        let me = Arc::new(Self {
            wire: wire.clone(),
            subscribers: Arc::default(),
            next: AtomicU64::new(1),
            deaf: AtomicBool::new(false),
        });
        wire.nodes.lock().unwrap().push(Arc::downgrade(&me));
        me
    }

    fn deliver(&self, inv: &Invalidation) {
        let subs: Vec<InvalidationCallback> = self
            .subscribers
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, ns, _)| *ns == inv.namespace)
            .map(|(_, _, cb)| cb.clone())
            .collect();
        for cb in subs {
            cb(inv);
        }
    }

    fn broadcast(&self, namespace: &str, key: Option<&str>) {
        self.wire
            .sent
            .lock()
            .unwrap()
            .push((namespace.to_owned(), key.map(str::to_owned)));
        let nodes: Vec<Arc<LinkedCache>> = self
            .wire
            .nodes
            .lock()
            .unwrap()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for node in nodes {
            let local = std::ptr::eq(Arc::as_ptr(&node), self);
            if !local && node.deaf.load(Ordering::SeqCst) {
                continue;
            }
            node.deliver(&Invalidation {
                namespace: namespace.to_owned(),
                key: key.map(str::to_owned),
                origin: if local {
                    InvalidationOrigin::Local
                } else {
                    InvalidationOrigin::Remote
                },
            });
        }
    }
}

#[async_trait]
impl Cache for LinkedCache {
    fn backend(&self) -> &str {
        "linked"
    }
    fn state(&self) -> CacheState {
        if self.deaf.load(Ordering::SeqCst) {
            CacheState::Degraded {
                reason: "deaf".into(),
            }
        } else {
            CacheState::Healthy
        }
    }
    fn max_local_age(&self) -> Option<Duration> {
        self.deaf.load(Ordering::SeqCst).then_some(BOUND)
    }
    async fn get(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>, KernelError> {
        Ok(None)
    }
    async fn set(
        &self,
        ns: &str,
        key: &str,
        _: Vec<u8>,
        _: Option<Duration>,
    ) -> Result<(), KernelError> {
        self.broadcast(ns, Some(key));
        Ok(())
    }
    async fn invalidate(&self, ns: &str, key: &str) -> Result<(), KernelError> {
        self.broadcast(ns, Some(key));
        Ok(())
    }
    async fn invalidate_namespace(&self, ns: &str) -> Result<(), KernelError> {
        self.broadcast(ns, None);
        Ok(())
    }
    fn stats(&self) -> CacheStats {
        CacheStats::default()
    }
    fn on_invalidate(&self, ns: &str, cb: InvalidationCallback) -> InvalidationSubscription {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        self.subscribers
            .lock()
            .unwrap()
            .push((id, ns.to_owned(), cb));
        let subs = Arc::downgrade(&self.subscribers);
        InvalidationSubscription::new(move || {
            if let Some(s) = subs.upgrade() {
                s.lock().unwrap().retain(|(i, _, _)| *i != id);
            }
        })
    }
}

struct CachePlugin(Arc<LinkedCache>);

const CACHE_MANIFEST: PluginManifest = PluginManifest {
    provides: &["cache"],
    ..PluginManifest::new("com.example.linked-cache", "Linked cache", "0.1.0")
};

#[async_trait]
impl Plugin for CachePlugin {
    fn manifest(&self) -> &PluginManifest {
        &CACHE_MANIFEST
    }
    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        cx.register::<dyn Cache>("cache", self.0.clone())?;
        Ok(())
    }
}

struct Node {
    kernel: Kernel,
    auth: objectos_auth::AuthHandle,
    cache: Arc<LinkedCache>,
}

impl Node {
    async fn boot(url: &str, wire: &Arc<Wire>, config: AuthConfig) -> Node {
        let cache = LinkedCache::join(wire);
        let auth = AuthPlugin::new(config);
        let handle = auth.handle();
        let kernel = Kernel::builder()
            .mode(RuntimeMode::Test)
            .plugin(DataPlugin::new(DataConfig {
                database_url: url.to_owned(),
                metadata_dirs: Vec::new(),
                include_base: true,
                max_connections: 2,
                auto_migrate: true,
                owned: Vec::new(),
            }))
            .plugin(auth)
            .plugin(CachePlugin(cache.clone()))
            .build()
            .unwrap();
        let report = kernel.boot().await.unwrap();
        assert!(report.all_started(), "{report:?}");
        Node {
            kernel,
            auth: handle,
            cache,
        }
    }

    fn service(&self) -> &AuthService {
        self.auth.service().unwrap()
    }

    async fn accepts(&self, token: &str) -> bool {
        self.service()
            .resolve(token, &RequestMeta::default())
            .await
            .unwrap()
            .is_some()
    }
}

/// Polls until node 2 refuses `token`; how long that took, or `None` after `within`.
async fn refused_within(node: &Node, token: &str, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if !node.accepts(token).await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test]
async fn a_session_revoked_on_one_node_is_refused_on_the_other() {
    let db = objectos_testkit::TestDatabase::sqlite_file();
    let wire = Arc::new(Wire::default());
    // A minute of session cache: without the invalidation node 2 would accept the revoked
    // session for that long.
    let config = AuthConfig {
        session_cache_seconds: 60,
        ..test_config()
    };
    let n1 = Node::boot(&db.url, &wire, config.clone()).await;
    let n2 = Node::boot(&db.url, &wire, config).await;
    let meta = RequestMeta::default();
    n1.service()
        .create_account("ada@example.com", PASSWORD, None, true, false)
        .await
        .unwrap();

    // Heard: the sign-out on node 1 reaches node 2's cache at once.
    let signed = n1
        .service()
        .sign_in("ada@example.com", PASSWORD, None, &meta)
        .await
        .unwrap();
    assert!(n2.accepts(&signed.token).await, "cached on node 2 now");
    let who = n1
        .service()
        .resolve(&signed.token, &meta)
        .await
        .unwrap()
        .unwrap();
    n1.service().sign_out(&who, &meta).await.unwrap();
    let took = refused_within(&n2, &signed.token, Duration::from_secs(1)).await;
    assert!(
        took.is_some(),
        "node 2 refused the revoked session within a second"
    );
    // The sign-out concerned Ada alone: the other nodes were told to drop her cached sessions,
    // not everyone's.
    let sent = wire.sent.lock().unwrap().clone();
    assert!(
        sent.contains(&("auth.sessions".to_owned(), Some(who.user_id.clone()))),
        "{sent:?}"
    );
    assert!(
        !sent.contains(&("auth.sessions".to_owned(), None)),
        "no namespace-wide invalidation for a sign-out: {sent:?}"
    );

    // Deaf: node 2 hears nothing, but entries older than the bound are not used.
    let signed = n1
        .service()
        .sign_in("ada@example.com", PASSWORD, None, &meta)
        .await
        .unwrap();
    assert!(n2.accepts(&signed.token).await);
    n2.cache.deaf.store(true, Ordering::SeqCst);
    let who = n1
        .service()
        .resolve(&signed.token, &meta)
        .await
        .unwrap()
        .unwrap();
    n1.service().sign_out(&who, &meta).await.unwrap();
    // Refused once node 2's copy is older than the bound (300 ms), far sooner than the
    // minute the session cache would otherwise keep it.
    let took = refused_within(&n2, &signed.token, Duration::from_secs(3)).await;
    assert!(
        took.is_some(),
        "node 2 refused the revoked session while deaf"
    );

    n1.kernel.shutdown().await;
    n2.kernel.shutdown().await;
    db.cleanup().await;
}
