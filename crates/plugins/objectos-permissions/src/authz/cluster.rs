//! Assignment changes between nodes, through the kernel's `Cache` contract (service `cache`)
//! when a cache plugin is installed; without one nothing here runs and each node's assignments
//! change only through its own writes, as before.
//!
//! - A change made here (assign, unassign, a member removed) is published as an invalidation of
//!   [`CLUSTER_NAMESPACE`] keyed by the user and organization.
//! - One heard from another node reloads that user's assignments in that organization from the
//!   database and drops every cached decision; a whole-namespace invalidation (the cache's
//!   resync after a gap in its subscription) reloads them all.
//! - While the cache reports it may be missing invalidations (`max_local_age()` is the staleness
//!   bound), the assignments are reloaded every half bound, so a permission removed on another
//!   node is refused here within the bound.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use objectos_kernel::contracts::{
    Cache, Invalidation, InvalidationOrigin, InvalidationSubscription,
};

use super::{Authz, load_assignments};
use crate::error::PermissionsError;

/// The cache namespace of assignment changes; keys are `[user, organization]` as JSON (the
/// organization `""` for contexts without a tenant).
pub const CLUSTER_NAMESPACE: &str = "permissions.assignments";

/// How often the refresher looks at the cache's state.
const CHECK_EVERY: Duration = Duration::from_millis(50);

/// Kept by [`Authz`] while attached; dropping it stops listening.
pub(super) struct ClusterLink {
    cache: Arc<dyn Cache>,
    _subscription: InvalidationSubscription,
    refresher: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ClusterLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLink")
            .field("backend", &self.cache.backend())
            .finish_non_exhaustive()
    }
}

impl Drop for ClusterLink {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

fn key(user: &str, org: &str) -> String {
    serde_json::json!([user, org]).to_string()
}

impl Authz {
    /// Joins the cluster through `cache` (once; a second call is ignored). Call after
    /// [`Authz::attach`], inside a Tokio runtime.
    pub fn attach_cache(self: &Arc<Self>, cache: Arc<dyn Cache>) {
        if self.cluster.get().is_some() {
            return;
        }
        // Weak: the link lives inside `Authz`, which must stay free to drop.
        let authz = Arc::downgrade(self);
        let subscription = cache.on_invalidate(
            CLUSTER_NAMESPACE,
            Arc::new(move |inv: &Invalidation| {
                // Our own changes are in our map already.
                if inv.origin == InvalidationOrigin::Remote {
                    let (authz, inv) = (authz.clone(), inv.clone());
                    // The callback must not wait: the reload is a query.
                    tokio::spawn(async move { apply(&authz, &inv).await });
                }
            }),
        );
        let refresher = tokio::spawn(refresh_while_deaf(Arc::downgrade(self), cache.clone()));
        let _ = self.cluster.set(ClusterLink {
            cache,
            _subscription: subscription,
            refresher,
        });
    }

    /// Tells the other nodes that `user`'s assignments in `org` changed (nothing without a
    /// cache service; a failure is logged, the cache retries it when Redis is back).
    pub(super) async fn publish_change(&self, user: &str, org: &str) {
        let Some(link) = self.cluster.get() else {
            return;
        };
        if let Err(e) = link
            .cache
            .invalidate(CLUSTER_NAMESPACE, &key(user, org))
            .await
        {
            tracing::warn!(error = %e, "Could not tell the other nodes that an assignment changed.");
        }
    }

    /// Re-reads the stored assignments (all, or one user's in one organization) and drops
    /// every cached decision.
    async fn reload_assignments(&self, only: Option<(&str, &str)>) -> Result<(), PermissionsError> {
        let engine = self.engine.get().ok_or_else(|| {
            PermissionsError::Store("the data engine is not started yet".to_owned())
        })?;
        let fresh = load_assignments(engine, only).await?;
        {
            let mut map = self.assignments.write();
            match only {
                Some((user, org)) => {
                    let pair = (user.to_owned(), org.to_owned());
                    map.remove(&pair);
                    map.extend(fresh);
                }
                None => *map = fresh,
            }
        }
        self.invalidate();
        Ok(())
    }
}

/// Applies one invalidation heard from another node.
async fn apply(authz: &Weak<Authz>, inv: &Invalidation) {
    let Some(authz) = authz.upgrade() else {
        return;
    };
    let pair: Option<(String, String)> = inv
        .key
        .as_deref()
        .and_then(|k| serde_json::from_str(k).ok());
    let result = match &pair {
        Some((user, org)) => authz.reload_assignments(Some((user, org))).await,
        // A whole namespace, or a key this version cannot read: reload everything.
        None => authz.reload_assignments(None).await,
    };
    if let Err(e) = result {
        // Decisions still drop, so nothing stale is reused from the cache; the map is the
        // last one read.
        authz.invalidate();
        tracing::warn!(error = %e, "Could not reload permission assignments changed on another node.");
    }
}

/// While the cache cannot hear the other nodes, re-reads every assignment each half bound.
async fn refresh_while_deaf(authz: Weak<Authz>, cache: Arc<dyn Cache>) {
    let mut last = Instant::now();
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let Some(bound) = cache.max_local_age() else {
            continue;
        };
        if last.elapsed() < bound / 2 {
            continue;
        }
        let Some(authz) = authz.upgrade() else {
            return;
        };
        last = Instant::now();
        if let Err(e) = authz.reload_assignments(None).await {
            authz.invalidate();
            tracing::warn!(error = %e, "Could not refresh permission assignments while the cluster cache is degraded.");
        }
    }
}
