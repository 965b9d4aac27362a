//! In-memory token buckets keyed by IP or email, driven by the kernel clock (testable without sleeps).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

/// Buckets of `capacity` tokens refilled at `capacity` per minute.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: DateTime<Utc>,
}

/// Entries kept before full buckets are pruned (bounds memory under a flood of distinct keys).
const MAX_KEYS: usize = 100_000;

impl RateLimiter {
    pub(crate) fn new() -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `key`'s bucket; `Err(seconds)` says when the next token arrives.
    pub(crate) fn take(&self, key: &str, per_minute: u32, now: DateTime<Utc>) -> Result<(), u64> {
        let capacity = f64::from(per_minute.max(1));
        let rate_per_sec = capacity / 60.0;
        let mut map = self.buckets.lock();
        if map.len() >= MAX_KEYS {
            map.retain(|_, b| {
                let elapsed = (now - b.updated).num_milliseconds().max(0) as f64 / 1000.0;
                b.tokens + elapsed * rate_per_sec < capacity
            });
        }
        let bucket = map.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = (now - bucket.updated).num_milliseconds().max(0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * rate_per_sec).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - bucket.tokens) / rate_per_sec).ceil();
            Err(wait.max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_empties_and_refills() {
        let rl = RateLimiter::new();
        let t0 = Utc::now();
        for _ in 0..3 {
            rl.take("ip:1", 3, t0).unwrap();
        }
        let wait = rl.take("ip:1", 3, t0).unwrap_err();
        assert_eq!(wait, 20);
        rl.take("ip:2", 3, t0).unwrap();
        rl.take("ip:1", 3, t0 + chrono::TimeDelta::seconds(20))
            .unwrap();
    }
}
