//! Two permission services ("nodes") on one database whose assignments are linked through a
//! `cache` service: an assignment changed on one reaches the other, at once while the cache
//! hears invalidations and within the staleness bound while it does not.
//!
//! The `cache` service is a test double of the kernel's `Cache` contract that hands each
//! invalidation straight to the other node (or drops it while that node is "deaf"); this crate
//! may not depend on the cache plugin, whose Redis path is tested against the real Redis there.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use objectos_kernel::KernelError;
use objectos_kernel::contracts::{
    Cache, CacheState, CacheStats, Invalidation, InvalidationCallback, InvalidationOrigin,
    InvalidationSubscription,
};
use objectos_permissions::{AssignmentKind, Authz, AuthzConfig};

use crate::{each_backend, sys_a};

const BOUND: Duration = Duration::from_millis(200);

/// Subscribers of every node: (node, id, callback).
type Wire = Arc<Mutex<Vec<(usize, u64, InvalidationCallback)>>>;

struct Linked {
    node: usize,
    wire: Wire,
    next: AtomicU64,
    deaf: AtomicBool,
}

impl std::fmt::Debug for Linked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linked").field("node", &self.node).finish()
    }
}

impl Linked {
    fn broadcast(&self, namespace: &str, key: Option<&str>, peers: &[Arc<Linked>]) {
        let subs: Vec<(usize, InvalidationCallback)> = self
            .wire
            .lock()
            .unwrap()
            .iter()
            .map(|(n, _, cb)| (*n, cb.clone()))
            .collect();
        for (node, cb) in subs {
            let local = node == self.node;
            if !local
                && peers
                    .iter()
                    .any(|p| p.node == node && p.deaf.load(Ordering::SeqCst))
            {
                continue;
            }
            cb(&Invalidation {
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

/// A node's cache: `Linked` plus the list of all nodes (to know who is deaf).
#[derive(Debug)]
struct NodeCache {
    me: Arc<Linked>,
    all: Arc<Mutex<Vec<Arc<Linked>>>>,
}

#[objectos_kernel::async_trait]
impl Cache for NodeCache {
    fn backend(&self) -> &str {
        "linked"
    }
    fn state(&self) -> CacheState {
        CacheState::Healthy
    }
    fn max_local_age(&self) -> Option<Duration> {
        self.me.deaf.load(Ordering::SeqCst).then_some(BOUND)
    }
    async fn get(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>, KernelError> {
        Ok(None)
    }
    async fn set(
        &self,
        _: &str,
        _: &str,
        _: Vec<u8>,
        _: Option<Duration>,
    ) -> Result<(), KernelError> {
        Ok(())
    }
    async fn invalidate(&self, ns: &str, key: &str) -> Result<(), KernelError> {
        let all = self.all.lock().unwrap().clone();
        self.me.broadcast(ns, Some(key), &all);
        Ok(())
    }
    async fn invalidate_namespace(&self, ns: &str) -> Result<(), KernelError> {
        let all = self.all.lock().unwrap().clone();
        self.me.broadcast(ns, None, &all);
        Ok(())
    }
    fn stats(&self) -> CacheStats {
        CacheStats::default()
    }
    fn on_invalidate(&self, _ns: &str, cb: InvalidationCallback) -> InvalidationSubscription {
        let id = self.me.next.fetch_add(1, Ordering::SeqCst);
        self.me.wire.lock().unwrap().push((self.me.node, id, cb));
        let wire = self.me.wire.clone();
        InvalidationSubscription::new(move || {
            wire.lock().unwrap().retain(|(_, i, _)| *i != id);
        })
    }
}

async fn eventually(within: Duration, check: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn assignment_changes_reach_the_other_node() {
    each_backend(|env| async move {
        let wire: Wire = Arc::default();
        let all: Arc<Mutex<Vec<Arc<Linked>>>> = Arc::default();
        let node = |n| {
            let me = Arc::new(Linked {
                node: n,
                wire: wire.clone(),
                next: AtomicU64::new(1),
                deaf: AtomicBool::new(false),
            });
            all.lock().unwrap().push(me.clone());
            Arc::new(NodeCache {
                me,
                all: all.clone(),
            })
        };
        let (c1, c2) = (node(1), node(2));
        let a = env.authz.clone();
        let b = Arc::new(Authz::new(AuthzConfig::default()));
        b.attach(env.engine.clone()).await.unwrap();
        a.attach_cache(c1.clone());
        b.attach_cache(c2.clone());
        let on_b = |set: &str| {
            b.assignments_of("u9", Some("org_a"))
                .0
                .contains(&set.to_owned())
        };

        a.assign("u9", AssignmentKind::PermissionSet, "manager", &sys_a())
            .await
            .unwrap();
        assert!(eventually(Duration::from_secs(1), || on_b("manager")).await);
        a.unassign("u9", AssignmentKind::PermissionSet, "manager", &sys_a())
            .await
            .unwrap();
        assert!(eventually(Duration::from_secs(1), || !on_b("manager")).await);

        // Node 2 deaf: it hears nothing, but re-reads the assignments within the bound.
        c2.me.deaf.store(true, Ordering::SeqCst);
        a.assign("u9", AssignmentKind::PermissionSet, "manager", &sys_a())
            .await
            .unwrap();
        assert!(
            eventually(Duration::from_secs(2), || on_b("manager")).await,
            "a deaf node picks the change up by refreshing"
        );
        env
    })
    .await;
}
