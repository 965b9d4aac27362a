//! Sign-in lockout, counted per normalised email address (its SHA-256) in
//! `_objectos_auth_attempt`, whether or not an account has that address: an unknown email
//! locks after the same number of failures, with the same answer, as a real one, so lockout
//! does not reveal which addresses have accounts. The counts live in the database, so every
//! server process of a deployment sees the same lock.

use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::service::{AuthService, minutes, ms};
use crate::store::{get_i, get_oi, i, s};

/// Failures older than this no longer count towards a lock (and their rows may be pruned).
const FORGET_AFTER_MS: i64 = 24 * 60 * 60 * 1000;
/// Stale rows are pruned after this many counted failures (bounds the table under a flood of
/// distinct made-up addresses, which the per-IP rate limit already slows down).
const PRUNE_EVERY: u64 = 256;

/// The attempt row of one email.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempts {
    pub(crate) locked_until: Option<i64>,
}

impl AuthService {
    /// The email's attempt row, if failures were counted since its last success.
    pub(crate) async fn attempt_row(&self, email_key: &str) -> Result<Option<Attempts>> {
        Ok(self
            .db()
            .one(
                r#"SELECT "locked_until" FROM "_objectos_auth_attempt" WHERE "email_hash" = ?"#,
                vec![s(email_key)],
            )
            .await?
            .map(|row| Attempts {
                locked_until: get_oi(&row, 0),
            }))
    }

    // The attempt table plays no part in resolving a session, so its writes go through
    // `exec_uncached`: a sign-in (which clears the failures) must not drop every cached session.

    /// Counts one failure; `Some(seconds)` when it locks the email for that long.
    pub(crate) async fn count_failure(&self, email_key: &str) -> Result<Option<u64>> {
        let now = ms(self.now());
        let lock = &self.config().lockout;
        // One atomic statement, so concurrent failures are all counted; a count left from more
        // than a day ago starts over.
        let row = self
            .db()
            .one(
                r#"INSERT INTO "_objectos_auth_attempt" ("email_hash", "failed_count", "updated_at") VALUES (?, 1, ?) ON CONFLICT ("email_hash") DO UPDATE SET "failed_count" = CASE WHEN "_objectos_auth_attempt"."updated_at" < ? THEN 1 ELSE "_objectos_auth_attempt"."failed_count" + 1 END, "updated_at" = excluded."updated_at" RETURNING "failed_count""#,
                vec![s(email_key), i(now), i(now - FORGET_AFTER_MS)],
            )
            .await?;
        let failed = match &row {
            Some(r) => get_i(r, 0)?,
            None => 1,
        };
        if self.inner_failures().fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.db()
                .exec_uncached(
                    r#"DELETE FROM "_objectos_auth_attempt" WHERE "updated_at" < ? AND ("locked_until" IS NULL OR "locked_until" < ?)"#,
                    vec![i(now - FORGET_AFTER_MS), i(now)],
                )
                .await?;
        }
        if failed < i64::from(lock.max_failed_attempts) {
            return Ok(None);
        }
        self.db()
            .exec_uncached(
                r#"UPDATE "_objectos_auth_attempt" SET "failed_count" = 0, "locked_until" = ? WHERE "email_hash" = ?"#,
                vec![i(now + minutes(lock.lock_minutes)), s(email_key)],
            )
            .await?;
        Ok(Some(u64::from(lock.lock_minutes) * 60))
    }

    /// Forgets the email's failures (a successful sign-in, a new password).
    pub(crate) async fn clear_failures(&self, email_key: &str) -> Result<()> {
        self.db()
            .exec_uncached(
                r#"DELETE FROM "_objectos_auth_attempt" WHERE "email_hash" = ?"#,
                vec![s(email_key)],
            )
            .await?;
        Ok(())
    }
}
