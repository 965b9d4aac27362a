//! Integration tests of the i18n plugin: bundles and Fluent files loaded with the objects
//! (problems located), locale negotiation, the client's routes, translated metadata per
//! `Accept-Language` with its ETag and `Vary`, and reloads. The kernel tests run on SQLite and,
//! with `OBJECTOS_TEST_POSTGRES_URL`, on PostgreSQL (marked ignored at build time without it).

#[cfg(test)]
mod support;

#[cfg(test)]
mod loading;
#[cfg(test)]
mod routes;

/// Runs `$body(TestDatabase)` on a SQLite file as `$sqlite` and on a fresh PostgreSQL schema as
/// `$pg`; the PostgreSQL test is ignored when the crate was built without the variable
/// (`cfg(objectos_pg)`, from the build script), so the runner counts it as skipped.
#[macro_export]
macro_rules! on_both {
    ($sqlite:ident, $pg:ident, $body:path) => {
        #[tokio::test]
        async fn $sqlite() {
            $body(objectos_testkit::TestDatabase::sqlite_file()).await
        }

        #[tokio::test]
        #[cfg_attr(
            not(objectos_pg),
            ignore = "needs PostgreSQL: set OBJECTOS_TEST_POSTGRES_URL"
        )]
        async fn $pg() {
            if let Some(db) = objectos_testkit::TestDatabase::postgres("i18n").await {
                $body(db).await
            }
        }
    };
}
