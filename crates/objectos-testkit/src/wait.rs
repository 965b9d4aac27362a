//! Bounded polling: wait for a condition that another task makes true, and fail instead of
//! hanging when it never does. The bounds are limits, not timing assertions.

use std::time::{Duration, Instant};

/// Polls `cond` every 10 ms until it holds or `limit` passes; whether it held (checked once more
/// at the end).
pub async fn until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// Polls the async `check` every 5 ms until it holds or `limit` passes; how long that took.
pub async fn until_async(
    limit: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if check().await {
            return Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}
