//! Integration tests of the notification plugin in a real kernel (data, http, notification) on
//! SQLite and, with `OBJECTOS_TEST_POSTGRES_URL`, PostgreSQL: mail delivered to a real SMTP
//! server on loopback (`aiosmtpd`; skipped when it is not installed unless
//! `OBJECTOS_TEST_REQUIRE_SMTP` is set), templates, an SMTP outage, the client's inbox routes,
//! `email/send` permissions, templates refused at load, signed webhooks (called and declared),
//! SMS and push through HTTP providers, preferences and unsubscribe links, and idempotency keys
//! under concurrent sends.

// The harness and helpers are test code too: a failed setup should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod channels;
mod inbox;
mod mail;
mod support;
mod webhook;

/// Runs `$body(TestDatabase)` on SQLite as `$sqlite` and on PostgreSQL as `$pg` (ignored at
/// build time without the PostgreSQL variable).
#[macro_export]
macro_rules! on_both {
    ($sqlite:ident, $pg:ident, $body:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            $body(objectos_testkit::TestDatabase::sqlite_file()).await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(
            not(objectos_pg),
            ignore = "needs PostgreSQL: set OBJECTOS_TEST_POSTGRES_URL"
        )]
        async fn $pg() {
            if let Some(db) = objectos_testkit::TestDatabase::postgres("notification").await {
                $body(db).await
            }
        }
    };
}

#[test]
fn manifest_passes_the_spec_audit() {
    let problems: Vec<String> = objectos_spec::validate_manifest(&objectos_notification::MANIFEST)
        .into_iter()
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect();
    assert_eq!(problems, Vec::<String>::new());
}
