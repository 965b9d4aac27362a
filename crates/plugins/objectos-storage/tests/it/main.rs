//! Integration tests of the storage plugin in a real kernel (data, http, storage) on SQLite and,
//! with `OBJECTOS_TEST_POSTGRES_URL`, PostgreSQL: every upload shape, downloads refused for a
//! hidden record or field, limits (413, 415), unsafe names, signed URL expiry and tampering.

// The harness and helpers are test code too: a failed setup should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod attach;
mod s3;
mod support;
mod uploads;

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
            if let Some(db) = objectos_testkit::TestDatabase::postgres("storage").await {
                $body(db).await
            }
        }
    };
}

#[test]
fn manifest_passes_the_spec_audit() {
    let problems: Vec<String> = objectos_spec::validate_manifest(&objectos_storage::MANIFEST)
        .into_iter()
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect();
    assert_eq!(problems, Vec::<String>::new());
}
