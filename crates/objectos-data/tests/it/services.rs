//! The PostgreSQL half of this suite, as the test runner counts it.
//!
//! Most tests here run their scenario on SQLite and then, when `OBJECTOS_TEST_POSTGRES_URL` is
//! set, again on PostgreSQL, inside one test. Without the variable this test is marked ignored
//! (`cfg(objectos_pg)`, from the build script), so the runner's summary shows a skipped test
//! instead of a run that passed on SQLite alone looking complete; the tests that need
//! PostgreSQL only carry the same mark. With the variable, it checks the server answers, so a
//! misconfigured run fails here by name.

#[tokio::test]
#[cfg_attr(
    not(objectos_pg),
    ignore = "OBJECTOS_TEST_POSTGRES_URL is not set: the PostgreSQL runs of this suite are skipped"
)]
async fn postgresql() {
    use sea_orm::ConnectionTrait;
    let url = crate::pg_url().expect("OBJECTOS_TEST_POSTGRES_URL was set when this test was built");
    let db = sea_orm::Database::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("the PostgreSQL server of OBJECTOS_TEST_POSTGRES_URL: {e}"));
    db.execute_unprepared("SELECT 1").await.unwrap();
    db.close().await.unwrap();
}
