//! Test helpers: configurations with unique prefixes; polling and the TCP relay that cuts a node
//! off from Redis come from `objectos-testkit`.

use std::sync::Arc;

use objectos_cache::CacheConfig;
use objectos_kernel::contracts::InvalidationOrigin;

/// What a test's invalidation callback saw: key and origin of each call.
pub(crate) type Seen = Arc<parking_lot::Mutex<Vec<(Option<String>, InvalidationOrigin)>>>;

/// The test Redis URL (only called by tests built with `cfg(objectos_redis)`).
pub(crate) fn redis_url() -> String {
    std::env::var("OBJECTOS_TEST_REDIS_URL").expect("OBJECTOS_TEST_REDIS_URL")
}

/// A configuration whose Redis keys and channel no other test shares.
pub(crate) fn config(staleness_ms: u64) -> CacheConfig {
    CacheConfig {
        prefix: format!("test-{}", uuid::Uuid::new_v4().simple()),
        staleness_ms,
        redis_timeout_ms: 200,
        ..CacheConfig::default()
    }
}

/// Polls `check` every 5 ms until it holds or `within` passes; returns how long it took.
pub(crate) use objectos_testkit::wait::until_async as eventually;

/// A TCP relay to Redis that can cut this node off (`set_cut`).
pub(crate) use objectos_testkit::TcpRelay as Relay;
