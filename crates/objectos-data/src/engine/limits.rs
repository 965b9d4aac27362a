//! Write limits that keep one caller from starving the others: records per bulk request, how
//! long one operation may hold a SQLite file's single writer, and write rates per organization
//! and per user (token buckets, counted in records written).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::context::OpContext;
use crate::error::{DataError, Result};

/// The limits every write goes through (`data:` in `objectos.yml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WriteLimits {
    /// Most records one `createMany`, `batch`, `updateMany` or `deleteMany` may write; more is
    /// refused with 413 `BATCH_TOO_LARGE` before anything runs. The spec's batch limit (and our
    /// cross-object batch's) is 200.
    pub max_batch_records: usize,
    /// Longest one operation may hold a SQLite file's writer, in milliseconds; an operation
    /// still running then is rolled back and answered 413 `OPERATION_TOO_LARGE` (everybody
    /// else's writes queue behind it meanwhile). 0 turns the bound off. PostgreSQL writers do
    /// not exclude each other, so it does not apply there.
    pub max_write_millis: u64,
    /// Records per second one organization may write (0: unlimited).
    pub per_organization_per_second: u32,
    /// Records per second one user may write (0: unlimited).
    pub per_user_per_second: u32,
    /// Records a caller may write in a burst above its rate (0: one second's worth, and at
    /// least `maxBatchRecords` so a full bulk request can pass an idle bucket).
    pub burst: u32,
}

impl Default for WriteLimits {
    fn default() -> Self {
        Self {
            max_batch_records: 200,
            max_write_millis: 5_000,
            per_organization_per_second: 0,
            per_user_per_second: 0,
            burst: 0,
        }
    }
}

impl WriteLimits {
    /// Checks the values; the message names the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.max_batch_records == 0 {
            return Err("maxBatchRecords must be at least 1".into());
        }
        if self.max_batch_records > 100_000 {
            return Err("maxBatchRecords must be at most 100000".into());
        }
        Ok(())
    }

    /// The bound on holding the writer, if any.
    pub(crate) fn write_deadline(&self) -> Option<Duration> {
        (self.max_write_millis > 0).then(|| Duration::from_millis(self.max_write_millis))
    }

    fn burst_for(&self, rate: u32) -> f64 {
        let floor = rate.max(self.max_batch_records.min(u32::MAX as usize) as u32);
        f64::from(if self.burst == 0 { floor } else { self.burst })
    }
}

/// Refuses a bulk request over the record limit.
pub(crate) fn check_batch_size(limits: &WriteLimits, object: &str, got: usize) -> Result<()> {
    if got > limits.max_batch_records {
        return Err(DataError::TooManyRecords {
            object: object.to_owned(),
            limit: limits.max_batch_records,
            got,
        });
    }
    Ok(())
}

/// One token bucket: `tokens` may go below zero after a bulk request larger than what was left,
/// which makes the caller wait longer for the next one instead of refusing a request that the
/// burst could never hold.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before idle (full) ones are dropped.
const PRUNE_AT: usize = 10_000;

/// Write rate limits per organization and per user.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    buckets: Mutex<HashMap<(bool, String), Bucket>>,
}

impl RateLimiter {
    /// Takes `cost` records from the caller's organization and user buckets, or says how long
    /// to wait. Internal work (the system principal) and cascades (part of an operation already
    /// counted) are not limited.
    pub(crate) fn admit(&self, limits: &WriteLimits, cx: &OpContext, cost: usize) -> Result<()> {
        if cx.cascade_of.is_some() {
            return Ok(());
        }
        let Some(user) = cx.principal.user_id() else {
            return Ok(());
        };
        let org = limits.per_organization_per_second;
        let per_user = limits.per_user_per_second;
        if org == 0 && per_user == 0 {
            return Ok(());
        }
        let cost = cost.max(1) as f64;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > PRUNE_AT {
            // A full bucket holds nothing worth keeping: it is what a new one starts as.
            buckets.retain(|(is_org, _), b| {
                let rate = if *is_org { org } else { per_user };
                let refill = now.duration_since(b.at).as_secs_f64() * f64::from(rate);
                b.tokens + refill < limits.burst_for(rate)
            });
        }
        let mut keys: Vec<((bool, String), u32)> = Vec::with_capacity(2);
        if org > 0
            && let Some(tenant) = &cx.tenant
        {
            keys.push(((true, tenant.clone()), org));
        }
        if per_user > 0 {
            keys.push(((false, user.to_owned()), per_user));
        }
        // Check every bucket first so a refusal takes nothing from any of them.
        let mut wait = 0.0_f64;
        let mut refilled = Vec::with_capacity(keys.len());
        for (key, rate) in &keys {
            let burst = limits.burst_for(*rate);
            let b = buckets.get(key).copied().unwrap_or(Bucket {
                tokens: burst,
                at: now,
            });
            let tokens =
                (b.tokens + now.duration_since(b.at).as_secs_f64() * f64::from(*rate)).min(burst);
            // A request larger than the burst passes a full bucket (and empties it below zero).
            let need = cost.min(burst);
            if tokens < need {
                wait = wait.max((need - tokens) / f64::from(*rate));
            }
            refilled.push(tokens);
        }
        if wait > 0.0 {
            let secs = wait.ceil() as u64;
            let scope = if keys.iter().any(|((is_org, _), _)| *is_org) && keys.len() == 1 {
                "organization"
            } else {
                "organization or user"
            };
            return Err(DataError::RateLimited {
                message: format!(
                    "Too many writes for this {scope}; retry in {secs} second(s) (data.rateLimit in objectos.yml)"
                ),
                retry_after_secs: secs.max(1),
            });
        }
        for ((key, _), tokens) in keys.into_iter().zip(refilled) {
            buckets.insert(
                key,
                Bucket {
                    tokens: tokens - cost,
                    at: now,
                },
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Principal;

    fn cx(user: &str, org: &str) -> OpContext {
        OpContext {
            principal: Principal::User {
                id: user.into(),
                roles: vec![],
                permission_sets: vec![],
                is_admin: false,
            },
            tenant: Some(org.into()),
            locale: None,
            request_id: None,
            cascade_of: None,
            correlation_id: None,
            causation_id: None,
        }
    }

    #[test]
    fn a_bucket_admits_its_burst_then_refuses_with_a_wait() {
        let limits = WriteLimits {
            per_organization_per_second: 10,
            max_batch_records: 5,
            burst: 10,
            ..WriteLimits::default()
        };
        let r = RateLimiter::default();
        for _ in 0..10 {
            r.admit(&limits, &cx("u1", "o1"), 1).unwrap();
        }
        let err = r.admit(&limits, &cx("u2", "o1"), 1).unwrap_err();
        assert_eq!(err.http_status(), 429);
        assert_eq!(err.retry_after_secs(), Some(1));
        // Another organization has its own bucket.
        r.admit(&limits, &cx("u3", "o2"), 1).unwrap();
    }

    #[test]
    fn a_bulk_request_larger_than_the_burst_passes_a_full_bucket_only() {
        let limits = WriteLimits {
            per_user_per_second: 2,
            max_batch_records: 200,
            burst: 4,
            ..WriteLimits::default()
        };
        let r = RateLimiter::default();
        r.admit(&limits, &cx("u1", "o1"), 100).unwrap();
        let err = r.admit(&limits, &cx("u1", "o1"), 1).unwrap_err();
        // 96 records in debt at 2 a second.
        assert!(err.retry_after_secs().unwrap() >= 48, "{err}");
    }

    #[test]
    fn limits_off_by_default_and_the_batch_cap_names_both_numbers() {
        let limits = WriteLimits::default();
        let r = RateLimiter::default();
        for _ in 0..1000 {
            r.admit(&limits, &cx("u1", "o1"), 200).unwrap();
        }
        let err = check_batch_size(&limits, "note", 60_000).unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("BATCH_TOO_LARGE", 413));
        assert!(err.to_string().contains("200") && err.to_string().contains("60000"));
    }
}
